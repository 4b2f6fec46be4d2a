"""Harness overhead: blasprof's timed figure against an independent tight matmul loop.

For n=64 and n=256 float64 on 1 thread, each round takes one blasprof point
(``profiler.timing.time_gemm``) and then one independent measurement: a bare
``np.matmul(a, b, out=c)`` loop timed with ``time.perf_counter`` under threadpoolctl's own
limit, with the same loop count and the same number of samples as blasprof chose, summarised
by the median. Rounds alternate (A B A B ...) so that drift on a shared machine hits both.
The figure is the ratio of blasprof's median seconds per GEMM (median over rounds) to the
tight loop's; the goal is 1.00 +/- 0.03.

Run: ``python benchmarks/bench_harness.py [--quick]``; writes ``results/harness.json``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from _common import Goal, environment, median, print_table, script

NAME = "harness"
SIZES = (64, 256)
GOAL_TOLERANCE = 0.03


def _operands(n: int, seed: int = 1) -> tuple[Any, Any, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n)), rng.standard_normal((n, n)), np.empty((n, n))


def _tight_loop(operands: tuple[Any, Any, Any], loops: int, samples: int) -> list[float]:
    """Seconds per GEMM of each sample, timed the way a user would write it by hand."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    a, b, c = operands
    matmul, timer = np.matmul, time.perf_counter
    per_call = []
    with threadpool_limits(limits=1, user_api="blas"):
        matmul(a, b, out=c)
        for _ in range(samples):
            t0 = timer()
            for _ in range(loops):
                matmul(a, b, out=c)
            per_call.append((timer() - t0) / loops)
    return per_call


def measure_size(n: int, rounds: int, min_time: float, samples: int) -> dict[str, Any]:
    """Alternate blasprof's point and the tight loop ``rounds`` times for one size."""
    from profiler.settings import TimingSettings
    from profiler.timing import ThreadLimiter, Workspace, time_gemm

    settings = TimingSettings(min_time=min_time, samples=samples)
    limiter = ThreadLimiter()
    workspace = Workspace(n, "float64")
    operands = _operands(n)
    blasprof_s: list[float] = []
    tight_s: list[float] = []
    loops_used: list[int] = []
    verified = True
    for _ in range(rounds):
        point = time_gemm(workspace, 1, limiter, settings)
        verified = verified and point.threads_verified
        blasprof_s.append(point.median_s)
        loops_used.append(point.loops)
        tight_s.append(median(_tight_loop(operands, point.loops, len(point.samples))))
    ratio = median(blasprof_s) / median(tight_s)
    per_round = sorted(b / t for b, t in zip(blasprof_s, tight_s, strict=True))
    return {
        "n": n,
        "dtype": "float64",
        "threads": 1,
        "rounds": rounds,
        "min_time": min_time,
        "samples": samples,
        "loops": loops_used,
        "threads_verified": verified,
        "blasprof_median_s": median(blasprof_s),
        "tight_median_s": median(tight_s),
        "ratio": ratio,
        "per_round_ratio_min": per_round[0],
        "per_round_ratio_max": per_round[-1],
        "blasprof_s": blasprof_s,
        "tight_s": tight_s,
    }


def run(quick: bool = False) -> dict[str, Any]:
    rounds = 4 if quick else 10
    min_time, samples = 0.1, 5  # blasprof's default TimingSettings
    sizes = [measure_size(n, rounds, min_time, samples) for n in SIZES]
    goals = [
        Goal(
            name=f"harness overhead n={s['n']}",
            measured=f"{s['ratio']:.3f}",
            goal=f"1.00 +/- {GOAL_TOLERANCE:.2f}",
            met=abs(s["ratio"] - 1.0) <= GOAL_TOLERANCE,
            note=f"per-round {s['per_round_ratio_min']:.3f}..{s['per_round_ratio_max']:.3f}",
        )
        for s in sizes
    ]
    return {"name": NAME, "environment": environment(), "sizes": sizes, "goals": goals}


def report(payload: dict[str, Any]) -> None:
    rows = [
        (
            s["n"],
            s["rounds"],
            s["loops"][len(s["loops"]) // 2],
            f"{s['blasprof_median_s'] * 1e6:.2f}",
            f"{s['tight_median_s'] * 1e6:.2f}",
            f"{s['ratio']:.3f}",
            f"{s['per_round_ratio_min']:.3f}..{s['per_round_ratio_max']:.3f}",
        )
        for s in payload["sizes"]
    ]
    print_table(
        "Harness overhead (float64, 1 thread, medians over alternating rounds)",
        ("n", "rounds", "loops", "blasprof us/op", "tight us/op", "ratio", "per-round"),
        rows,
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    return script(NAME, __doc__, run, report, argv)


if __name__ == "__main__":
    main()
