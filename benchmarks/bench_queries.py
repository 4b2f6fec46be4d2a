"""History queries: the read commands on a million stored measurements, and their start-up.

(a) A SQLite database of a year of weekly calibrations of 10 node types x 20 nodes (200
nodes, 96 points per node: 4 sizes x 2 dtypes x 12 thread counts, 5 samples each; about
one million measurements) is built once through the store API (``tests.history_data``) and
cached in ``benchmarks/results/queries-1m.sqlite`` (``--rebuild`` makes it again). Each
command then runs in this process, imports already warm, as a script calling it would pay
for it on top of start-up: open the database, query, print (to a buffer). Goal: ``list``,
``best``, ``compare`` over a month and ``nodes`` each under 0.5 s (medians).

(b) Start-up: each read command as a fresh process on a small database against
``python -c "import sqlalchemy, typer"``, interleaved, medians; goal <= 1.5x. Shown beside
them for information: ``python -c "import sqlalchemy.orm, typer"``, what SQLAlchemy's ORM
would cost before any blasprof code ran (the reads use Core tables and never import it).

Run: ``python benchmarks/bench_queries.py [--quick] [--rebuild]``; writes
``results/queries.json``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import REPO_ROOT, RESULTS_DIR, Goal, environment, median, parser, print_table
from _common import finish as _finish

NAME = "queries"
QUERY_GOAL_S = 0.5
STARTUP_GOAL = 1.5
TYPES, NODES, WEEKS = 10, 20, 53
BIG = RESULTS_DIR / "queries-1m.sqlite"

sys.path.insert(0, str(REPO_ROOT))  # tests.history_data: the same fleet model the tests use


def _specs() -> list[Any]:
    from tests.history_data import TypeSpec

    return [
        TypeSpec(
            f"type{t:02d}", f"Model CPU {t}", 48, 20.0 + 2 * t,
            tuple(f"type{t:02d}-n{n:03d}" for n in range(NODES)),
            sizes=(256, 1024, 2048, 4096),
            threads=(1, 2, 4, 6, 8, 12, 16, 20, 24, 32, 40, 48),
        )
        for t in range(TYPES)
    ]  # fmt: skip


def build(path: Path, weeks: int = WEEKS) -> dict[str, Any]:
    """The year of calibrations, through the store API; returns what was stored."""
    from db import open_database
    from tests.history_data import store_calibration

    path.unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    rng = random.Random(7)
    now = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    calibrations = 0
    with open_database(f"sqlite:///{path}") as database:
        for week in range(weeks, 0, -1):
            for t, spec in enumerate(_specs()):
                upgraded = t % 2 == 0 and week < weeks // 2  # half the types: a BLAS upgrade
                store_calibration(
                    database, spec, now - dt.timedelta(weeks=week, hours=t), rng=rng,
                    factors={spec.hosts[3]: 0.85}, factor=0.97 if upgraded else 1.0,
                    blas_version="0.3.26" if upgraded else "0.3.21",
                )  # fmt: skip
                calibrations += 1
            print(f"  built week {weeks - week + 1}/{weeks}", end="\r", file=sys.stderr)
    print(file=sys.stderr)
    return {"calibrations": calibrations, "build_s": time.perf_counter() - started}


def _count(path: Path) -> int:
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT count(*) FROM measurements").fetchone()[0]


def _in_process(url: str, args: Sequence[str]) -> tuple[float, int]:
    """One command run in this process: seconds, and its exit code."""
    from profiler.cli import app

    out = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out):
        try:
            code = app(["--db", url, *args], prog_name="blasprof", standalone_mode=False)
        except SystemExit as exc:  # typer.Exit(1) of compare
            code = exc.code
    return time.perf_counter() - started, int(code or 0)


QUERIES = {
    "list": ["list"],
    "list --since 30d": ["list", "--since", "30d"],
    "best": ["best"],
    "compare a month (type03, now-60d:now-30d vs now-30d:now)": [
        "compare", "--node-type", "type03", "now-60d:now-30d", "now-30d:now",
    ],
    "nodes (all 200)": ["nodes"],
    "nodes --node-type type03": ["nodes", "--node-type", "type03"],
    "show (one calibration, 20 nodes)": ["show", "100"],
}  # fmt: skip
GOAL_QUERIES = (
    "list",
    "list --since 30d",
    "best",
    "compare a month (type03, now-60d:now-30d vs now-30d:now)",
    "nodes (all 200)",
)


def _wall(cmd: Sequence[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    return time.perf_counter() - started


def _startup(quick: bool) -> dict[str, list[float]]:
    """Read commands as fresh processes on a small database, interleaved with the baseline."""
    import tempfile

    from db import open_database
    from tests.history_data import store_calibration

    small = Path(tempfile.mkdtemp()) / "small.sqlite"
    spec = _specs()[0]
    with open_database(f"sqlite:///{small}") as database:
        rng = random.Random(1)
        now = dt.datetime.now(dt.UTC)
        for days in (20, 10):
            store_calibration(database, spec, now - dt.timedelta(days=days), rng=rng,
                              hosts=spec.hosts[:4])  # fmt: skip
    exe = str(Path(sys.executable).with_name("blasprof"))
    if not Path(exe).exists():
        exe = shutil.which("blasprof") or exe
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["BLASPROF_DB"] = f"sqlite:///{small}"
    commands = {
        'python -c "import sqlalchemy, typer"': [sys.executable, "-c", "import sqlalchemy, typer"],
        "blasprof list": [exe, "list"],
        "blasprof show 2": [exe, "show", "2"],
        "blasprof best": [exe, "best"],
        "blasprof compare 1 2": [exe, "compare", "1", "2"],
        "blasprof nodes": [exe, "nodes"],
        "blasprof preset type00": [exe, "preset", "type00"],
        'python -c "import sqlalchemy.orm, typer"': [
            sys.executable, "-c", "import sqlalchemy.orm, typer",
        ],
    }  # fmt: skip
    for cmd in commands.values():
        _wall(cmd, env)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(5 if quick else 11):
        for name, cmd in commands.items():
            times[name].append(_wall(cmd, env))
    shutil.rmtree(small.parent, ignore_errors=True)
    return times


def run(quick: bool = False, rebuild: bool = False) -> dict[str, Any]:
    built = None
    if rebuild or not BIG.exists():
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        print(f"building {BIG} (one-off; minutes)", file=sys.stderr)
        built = build(BIG)
    url = f"sqlite:///{BIG}"
    measurements = _count(BIG)
    _in_process(url, ["list", "--limit", "1"])  # imports and page cache, untimed
    repeats = 3 if quick else 7
    query_times: dict[str, list[float]] = {name: [] for name in QUERIES}
    codes: dict[str, int] = {}
    for _ in range(repeats):
        for name, args in QUERIES.items():
            seconds, codes[name] = _in_process(url, args)
            query_times[name].append(seconds)
    startup = _startup(quick)
    base = median(startup['python -c "import sqlalchemy, typer"'])
    goals = [
        Goal(
            name=f"{name} on {measurements:,} measurements",
            measured=f"{median(query_times[name]):.3f} s",
            goal=f"< {QUERY_GOAL_S} s",
            met=median(query_times[name]) < QUERY_GOAL_S,
            note="in-process, warm imports",
        )
        for name in GOAL_QUERIES
    ]
    for name, ts in startup.items():
        if name.startswith("blasprof"):
            ratio = median(ts) / base
            goals.append(
                Goal(
                    name=f"{name} / import sqlalchemy, typer (small db)",
                    measured=f"{ratio:.2f} ({median(ts) * 1e3:.0f} vs {base * 1e3:.0f} ms)",
                    goal=f"<= {STARTUP_GOAL}",
                    met=ratio <= STARTUP_GOAL,
                )
            )
    floor = median(startup['python -c "import sqlalchemy.orm, typer"']) / base
    goals.append(
        Goal(
            name="import sqlalchemy.orm, typer / import sqlalchemy, typer",
            measured=f"{floor:.2f}",
            goal="(information)",
            met=None,
            note="what the ORM would cost; the reads do not import it",
        )
    )
    return {
        "name": NAME,
        "environment": environment(),
        "database": str(BIG),
        "measurements": measurements,
        "built": built,
        "repeats": repeats,
        "query_times_s": query_times,
        "exit_codes": codes,
        "startup_times_s": startup,
        "goals": goals,
    }


def report(payload: dict[str, Any]) -> None:
    rows = [
        (name, payload["exit_codes"][name], f"{min(ts) * 1e3:.0f}", f"{median(ts) * 1e3:.0f}")
        for name, ts in payload["query_times_s"].items()
    ]
    print_table(
        f"Read commands in-process on {payload['measurements']:,} measurements "
        f"({payload['repeats']} runs each)",
        ("command", "exit", "min ms", "median ms"),
        rows,
    )
    rows = [
        (name, f"{min(ts) * 1e3:.0f}", f"{median(ts) * 1e3:.0f}")
        for name, ts in payload["startup_times_s"].items()
    ]
    print_table("Start-up on a small database (fresh processes, interleaved)",
                ("command", "min ms", "median ms"), rows)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rebuild", action="store_true", help="build the big database again")
    args = p.parse_args(argv)
    return _finish(NAME, run(quick=args.quick, rebuild=args.rebuild), report, not args.no_write)


if __name__ == "__main__":
    main()
