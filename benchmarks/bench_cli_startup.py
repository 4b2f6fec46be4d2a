"""CLI start-up: ``blasprof --help`` against ``python -c "import typer"``.

Runs the console script installed beside ``sys.executable`` with ``--help`` and the same
interpreter importing typer alone, each as a fresh subprocess, interleaved (A B A B ...) so
that drift hits both, after one untimed warm-up of each to fill the page cache. The figure is
the ratio of the medians; the goal is <= 1.3, which holds only while ``--help`` does not pay for
numpy, sqlalchemy or submitit. Where ``shutil.which("blasprof")`` is another file (a pyenv or
asdf shim), it is timed too and shown for information.

Run: ``python benchmarks/bench_cli_startup.py [--quick]``; writes ``results/cli_startup.json``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import Goal, environment, median, print_table, script

NAME = "cli_startup"
GOAL = 1.3


# As after `pip install`, which compiles bytecode: a PYTHONDONTWRITEBYTECODE environment
# would charge blasprof (an editable install here) for compiling its modules on every run,
# while typer's bytecode was written when it was installed. The warm-up run writes it.
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _wall(cmd: Sequence[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_ENV)
    return time.perf_counter() - t0


def _heavy_modules(blasprof: str) -> list[str]:
    """Heavy packages that ``blasprof --help`` imports, read from the interpreter itself."""
    probe = (
        "import sys, runpy; sys.argv = [sys.argv[1], '--help']\n"
        "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "heavy = ('numpy', 'sqlalchemy', 'submitit', 'alembic', 'matplotlib')\n"
        "print(' '.join(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, blasprof], capture_output=True, text=True, check=False
    )
    lines = out.stderr.strip().splitlines()
    return lines[-1].split() if lines else []


def console_script() -> tuple[str, str | None]:
    """The console script installed for this interpreter, and the PATH one if it differs.

    On PATH there may be a shim (pyenv, asdf) that starts a shell and a resolver before Python;
    timing that against ``sys.executable`` would charge blasprof for the shim.
    """
    on_path = shutil.which("blasprof")
    beside = Path(sys.executable).parent / "blasprof"
    if beside.is_file() and os.access(beside, os.X_OK):
        same = on_path is not None and Path(on_path).resolve() == beside.resolve()
        return str(beside), None if same else on_path
    if on_path is None:
        raise SystemExit("blasprof is not installed; install it first: pip install -e .")
    return on_path, None


def run(quick: bool = False) -> dict[str, Any]:
    blasprof, on_path = console_script()
    commands = {
        "blasprof --help": [blasprof, "--help"],
        "python -c 'import typer'": [sys.executable, "-c", "import typer"],
    }
    if on_path is not None:
        commands["blasprof --help (PATH)"] = [on_path, "--help"]
    repeats = 7 if quick else 15
    times: dict[str, list[float]] = {name: [] for name in commands}
    for cmd in commands.values():
        _wall(cmd)
    for _ in range(repeats):
        for name, cmd in commands.items():
            times[name].append(_wall(cmd))
    medians = {name: median(ts) for name, ts in times.items()}
    ratio = medians["blasprof --help"] / medians["python -c 'import typer'"]
    heavy = _heavy_modules(blasprof)
    goals = [
        Goal(
            name="blasprof --help vs import typer",
            measured=f"{ratio:.3f}",
            goal=f"<= {GOAL}",
            met=ratio <= GOAL,
            note="heavy imports: " + (", ".join(heavy) if heavy else "none"),
        )
    ]
    if on_path is not None:
        shim = medians["blasprof --help (PATH)"] / medians["python -c 'import typer'"]
        goals.append(
            Goal(
                name="blasprof --help via PATH",
                measured=f"{shim:.3f}",
                goal="(information)",
                met=None,
                note=f"{on_path} is not this interpreter's script (a shim?)",
            )
        )
    return {
        "name": NAME,
        "environment": environment(),
        "console_script": blasprof,
        "console_script_on_path": on_path,
        "python": sys.executable,
        "repeats": repeats,
        "times_s": times,
        "median_s": medians,
        "ratio": ratio,
        "heavy_modules_imported": heavy,
        "goals": goals,
    }


def report(payload: dict[str, Any]) -> None:
    rows = [
        (name, len(ts), f"{min(ts) * 1e3:.0f}", f"{payload['median_s'][name] * 1e3:.0f}")
        for name, ts in payload["times_s"].items()
    ]
    print_table(
        f"CLI start-up ({payload['repeats']} interleaved runs each)",
        ("command", "runs", "min ms", "median ms"),
        rows,
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    return script(NAME, __doc__, run, report, argv)


if __name__ == "__main__":
    main()
