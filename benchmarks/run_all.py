"""Run every blasprof benchmark and print one table of figures against their goals.

Each benchmark module has a ``main(argv)`` that prints its own table, writes
``benchmarks/results/<name>.json`` and returns its payload; this script runs them in turn,
prints the combined goal table and writes ``benchmarks/results/latest.json`` (the goal rows of
every benchmark, where its full JSON is, and the environment). About 6 minutes on 2 cores;
``--quick`` takes about half that.

Run: ``python benchmarks/run_all.py [--quick] [--only NAME,...]`` (names: the keys of
``BENCHMARKS``).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from _common import RESULTS_DIR, Goal, environment, parser, print_goals, write_result

# Start-up first: it is the shortest and the most sensitive to a machine warmed by the others.
BENCHMARKS = {
    "cli_startup": "bench_cli_startup",
    "harness": "bench_harness",
    "peak": "bench_peak",
    "search": "bench_search",
    "layouts": "bench_layouts",
    "conditions": "bench_conditions",
    "queries": "bench_queries",
    "preset_value": "bench_preset_value",
    "libraries": "bench_libraries",
}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument(
        "--only",
        default=",".join(BENCHMARKS),
        help=f"comma-separated subset of: {', '.join(BENCHMARKS)}",
    )
    args = p.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        p.error(f"--only: unknown {', '.join(unknown)}; accepted: {', '.join(BENCHMARKS)}")
    sub_argv = [flag for flag, on in (("--quick", args.quick), ("--no-write", args.no_write)) if on]

    started = time.perf_counter()
    goals: list[Goal] = []
    seconds: dict[str, float] = {}
    for name in chosen:
        print(f"\n=== {name} ===")
        t0 = time.perf_counter()
        payload = importlib.import_module(BENCHMARKS[name]).main(sub_argv)
        seconds[name] = round(time.perf_counter() - t0, 1)
        goals.extend(payload["goals"])
    total = time.perf_counter() - started

    print(f"\n=== summary ({total:.0f} s{', quick' if args.quick else ''}) ===")
    print_goals("blasprof benchmarks", goals)
    summary = {
        "name": "latest",
        "environment": environment(),
        "quick": args.quick,
        "seconds": seconds,
        "total_seconds": round(total, 1),
        "files": {name: str(RESULTS_DIR / f"{name}.json") for name in chosen},
        "goals": goals,
    }
    if not args.no_write:
        print(f"\nwrote {write_result('latest', summary)}")
    return summary | {"goals": [asdict(g) for g in goals]}


if __name__ == "__main__":
    main()
