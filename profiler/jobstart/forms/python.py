"""The Python form: a module with no dependencies that a job imports before numpy.

Its rule is not a copy: the module embeds the source of ``profiler.jobstart.budget.JOB_START`` (and,
for the dispatcher, ``profiler.jobstart.detect.JOB_START``), so it runs the very functions
``blasprof env`` runs. Values from the preset are Python data written with ``repr``; free
text (CPU model, BLAS) is data in ``INFO`` or a comment, never part of a docstring.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from profiler.jobstart import budget, detect
from profiler.jobstart.forms.checked import Bundle, comment, rule_constants

if TYPE_CHECKING:
    from profiler.choice.preset import Preset

__all__ = ["render_py"]

_DOC = '''"""blasprof preset: import it before numpy; it sets the BLAS/OpenMP thread variables.

On import it applies the rule of ``blasprof env`` to this process: the node type, the CPUs
the job was given and its process layout. Then:

- ``threads(workers=N)``: threads per process when this process starts N processes
  sharing its CPUs (a launcher's own count multiplies N);
- ``init_worker(N)``: a pool initializer (multiprocessing, concurrent.futures) giving each
  of N workers its share, through threadpoolctl when a BLAS is already loaded;
- ``environment(workers=N)``: the variables for a child process started with N siblings.
"""'''

_API = '''

def _plan(workers=None, size_class=None, env=None):
    workers = None if workers is None else int(workers)
    return plan(os.environ if env is None else env, PRESETS, NODE_TYPE, workers, size_class)


def threads(workers=None, size_class=None):
    """Threads per process when this process starts ``workers`` processes sharing its CPUs
    (None: the layout the environment describes)."""
    return _plan(workers, size_class)["threads"]


def environment(workers=None, size_class=None):
    """``os.environ`` as a child process sharing the CPUs with ``workers`` siblings needs it."""
    env = dict(os.environ)
    done = _plan(workers, size_class, env)
    for name in done["unset"]:
        env.pop(name, None)
    env.update(done["set"])
    return env


def apply(workers=None, size_class=None, quiet=False):
    """Set the thread variables in this process; returns what was done (see ``plan``)."""
    done = _plan(workers, size_class)
    for name in done["unset"]:
        os.environ.pop(name, None)
    os.environ.update(done["set"])
    if not quiet:
        for note in NOTES + done["notes"]:
            print("blasprof: " + note, file=sys.stderr)
    return done


_LIMITS = []


def init_worker(workers=None, size_class=None):
    """Pool initializer: this worker's share of the CPUs when ``workers`` processes share
    them, applied to the variables and, when a BLAS is already loaded (a forked pool after
    numpy), through threadpoolctl."""
    done = apply(workers, size_class, quiet=True)
    if not any(name in sys.modules for name in ("numpy", "scipy", "torch")):
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print(
            "blasprof: threadpoolctl is not installed: a BLAS loaded before the pool started "
            "keeps its thread count (pip install threadpoolctl)",
            file=sys.stderr,
        )
        return
    _LIMITS.append(threadpool_limits(limits=done["threads"]))


if "numpy" in sys.modules:
    print(
        "blasprof: numpy was imported before the preset: its BLAS has already read its thread "
        "count; import the preset first",
        file=sys.stderr,
    )
APPLIED = apply()
THREADS = APPLIED["threads"]
'''


def _info(presets: dict[str, Preset]) -> dict[str, dict[str, Any]]:
    """Free text, kept as data only."""
    return {
        name: {
            "cpu_model": str(p.cpu_model),
            "blas": str(p.blas),
            "created_at": str(p.created_at),
            "calibration_id": p.calibration_id if type(p.calibration_id) is int else None,
        }
        for name, p in presets.items()
    }


def _source(functions: tuple[Any, ...]) -> str:
    return "\n\n".join(inspect.getsource(f).strip("\n") for f in functions)


def render_py(
    b: Bundle, directory: str, file_name: str, presets: dict[str, Preset] | None = None
) -> str:
    """The Python module of bundle ``b``; ``presets`` supply the INFO data."""
    what = f"node type {b.single_type}" if b.single_type else f"every node type ({b.names()})"
    module = file_name[: -len(".py")]
    head = [
        f"# blasprof preset for {what}. Import it before numpy:",
        "#   PYTHONPATH=" + comment(directory) + f" python -c 'import {module}'",
        "# Written by `blasprof presets write`; nothing here but the os and sys modules.",
    ]
    for e in b.entries:
        head += ["#", *(f"# {line}" for line in e.summary)]
    constants = {
        **rule_constants(),
        "PRESETS": b.presets(),
        "RULES": b.rules.data() if b.rules is not None else None,
        "INFO": _info({n: p for n, p in (presets or {}).items() if n in b.presets()}),
    }
    body = [
        "\n".join(head),
        _DOC,
        "import os\nimport sys\n",
        "\n".join(f"{name} = {value!r}" for name, value in constants.items()),
        "",
        _source(budget.JOB_START),
        _source(detect.JOB_START),
        "",
    ]
    if b.single_type:
        body.append(f"NODE_TYPE, NOTES = {b.single_type!r}, []")
    else:
        body.append("NODE_TYPE, NOTES = detect(os.environ, RULES)")
    return "\n\n".join(body).rstrip("\n") + "\n" + _API
