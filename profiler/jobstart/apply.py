"""A preset at job start, from Python: what ``blasprof env``/``run``/``wrap`` do.

The presets directory's ``blasprof.json`` holds the checked values every dispatcher embeds;
``environment`` applies ``profiler.jobstart.budget.plan`` to them exactly as the dispatchers do, and
``shell_lines`` prints the result for ``eval``. ``wrap`` adds the load line to a job script
once; ``slurm_setup`` gives submitit users the same line for ``slurm_setup=``.
``profiler.jobstart.check`` measures whether it took effect.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from profiler.errors import BlasprofError, NotFound, UsageError
from profiler.jobstart.budget import plan
from profiler.jobstart.detect import detect
from profiler.names import check_node_type
from profiler.paths import presets_dir

__all__ = [
    "MARKER",
    "environment",
    "exec_with",
    "load_line",
    "read_presets",
    "run_argv",
    "script_shell",
    "shell_lines",
    "slurm_setup",
    "wrap",
]

#: the comment line ``wrap`` puts above the load line, and by which it knows a wrapped script
MARKER = "# blasprof: BLAS/OpenMP threads for this node, its CPUs and this job's layout"


def read_presets(directory: Path | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(presets, rules) from ``blasprof.json`` of the presets directory, every value checked
    as the forms beside it were (the file may have been edited or damaged since)."""
    from profiler.jobstart.forms.checked import UnsafePreset, comment, from_data

    directory = directory or presets_dir()
    path = directory / "blasprof.json"
    shown = comment(path, 1000)  # BLASPROF_PRESETS may hold control characters
    again = "write it again with `blasprof presets write`"
    try:
        checked = from_data(json.loads(path.read_text()))
    except FileNotFoundError:
        raise NotFound(
            f"no presets in {comment(directory, 1000)} (no blasprof.json); run `blasprof "
            "presets write` or set BLASPROF_PRESETS to the directory they were written to"
        ) from None
    except (OSError, ValueError) as exc:
        if isinstance(exc, UnsafePreset):
            raise BlasprofError(f"{shown}: {exc}; {again}") from None
        why = getattr(exc, "strerror", None) or type(exc).__name__
        raise BlasprofError(f"{shown} is not a blasprof presets file ({why}); {again}") from None
    assert checked.rules is not None
    return checked.presets(), checked.rules.data()


def environment(
    environ: Mapping[str, str],
    node_type: str | None = None,
    workers: int | None = None,
    directory: Path | None = None,
) -> dict[str, Any]:
    """What loading the dispatcher does in ``environ`` (see ``profiler.jobstart.budget.plan``), with
    the node type and the workers given here instead of detected."""
    presets, rules = read_presets(directory)
    notes: list[str] = []
    if node_type is not None:
        check_node_type(node_type)
    else:
        node_type, notes = detect(environ, rules)
    done = plan(environ, presets, node_type, workers=workers)
    done["notes"] = notes + done["notes"]
    return done


def shell_lines(done: Mapping[str, Any], shell: str) -> list[str]:
    """``export``/``unset`` lines (sh), or one line of ``setenv``/``unsetenv`` (csh, whose
    ``eval `...` `` makes one line of its output anyway) for ``eval``; every value quoted."""
    for name, value in done["set"].items():
        # plan's values are counts and checked names; anything else is a bug, not input
        if not (_NAME.fullmatch(name) and _VALUE.fullmatch(value)):
            raise AssertionError(f"unquotable {name}={value!r}")
    if shell == "csh":
        words = [f"unsetenv {n};" for n in done["unset"]]
        return [" ".join(words + [f"setenv {n} '{v}';" for n, v in done["set"].items()])]
    return [f"unset {n}" for n in done["unset"]] + [
        f"export {n}='{v}'" for n, v in done["set"].items()
    ]


_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
_VALUE = re.compile(r"[A-Za-z0-9._:=-]*")  # "=" joins a library label to its count


def load_line(shell: str = "sh", directory: Path | None = None) -> str:
    """The line that loads the dispatcher from a job script of ``shell`` (sh or csh)."""
    path = (directory or presets_dir()).expanduser().resolve()
    if "\n" in str(path) or "\r" in str(path):
        raise UsageError("the presets directory's path holds a line break; use another one")
    if shell == "csh":
        from profiler.jobstart.forms.checked import shell_path

        return f"source '{shell_path(str(path))}/blasprof.csh'"
    return ". " + shlex.quote(f"{path}/blasprof.sh")


def slurm_setup(directory: Path | None = None) -> list[str]:
    """Lines for submitit's ``slurm_setup``: every job loads its node type's preset.

    ``executor.update_parameters(slurm_setup=slurm_setup())``
    """
    return [MARKER, load_line("sh", directory)]


#: interpreters whose scripts can source a preset: sh's family, then csh's
SH_FAMILY = ("sh", "ash", "dash", "bash", "ksh", "ksh93", "mksh", "pdksh", "zsh", "busybox")
CSH_FAMILY = ("csh", "tcsh")


def script_shell(script: str) -> str:
    """``sh`` or ``csh``: the family of the interpreter the script's ``#!`` line names (sh
    without one, as sbatch and ``sh job`` run it); UsageError for any other interpreter."""
    first = script.split("\n", 1)[0]
    if not first.startswith("#!"):
        return "sh"
    words = first[2:].split()
    program = words[0].rpartition("/")[2] if words else ""
    if program == "env":  # #!/usr/bin/env [-S] [NAME=value ...] bash
        rest = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        program = rest[0].rpartition("/")[2] if rest else ""
    if program in SH_FAMILY:
        return "sh"
    if program in CSH_FAMILY:
        return "csh"
    from profiler.jobstart.forms.checked import comment

    raise UsageError(
        f"its #! line runs {comment(program, 40) or 'no program'!r}, not sh, bash, zsh, ksh or "
        "csh: a line that loads the preset would break it; in Python, import blas_preset "
        "first, or start it with `blasprof run -- CMD`"
    )


def wrap(script: str, directory: Path | None = None) -> str:
    """``script`` with the load line after its shebang, comments and ``#SBATCH`` lines;
    unchanged when it has it already. UsageError for a script sh or csh does not run."""
    lines = script.splitlines(keepends=True)
    if any(line.rstrip("\r\n") == MARKER for line in lines):
        return script
    shell = script_shell(script)
    at = 0
    while at < len(lines) and (not lines[at].strip() or lines[at].lstrip().startswith("#")):
        at += 1
    if at and not lines[at - 1].endswith("\n"):
        lines[at - 1] += "\n"
    block = [MARKER + "\n", load_line(shell, directory) + "\n"]
    return "".join(lines[:at] + block + lines[at:])


def run_argv(argv: Sequence[str]) -> str:
    """The program of ``argv`` as found on PATH; a UsageError when there is none."""
    import shutil

    if not argv:
        raise UsageError("give a command after --, e.g. blasprof run -- python job.py")
    found = shutil.which(argv[0])
    if found is None:
        raise UsageError(f"command not found: {argv[0]!r}")
    return found


def exec_with(done: Mapping[str, Any], argv: Sequence[str]) -> None:
    """Replace this process by ``argv`` with the preset's variables applied."""
    program = run_argv(argv)
    env = dict(os.environ)
    for name in done["unset"]:
        env.pop(name, None)
    env.update(done["set"])
    os.execve(program, list(argv), env)
