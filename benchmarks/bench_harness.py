"""Harness overhead: blasprof's timed figure against an independent tight matmul loop.

For n=64 and n=256 float64 on 1 thread, each round takes one blasprof point
(``profiler.measure.timing.time_gemm``) and then one independent measurement: a bare
``np.matmul(a, b, out=c)`` loop timed with ``time.perf_counter`` under threadpoolctl's own
limit, with the same loop count and the same number of samples as blasprof chose, summarised
by the median. Rounds alternate (A B A B ...) so that drift on a shared machine hits both.
The figure is the ratio of blasprof's median seconds per GEMM (median over rounds) to the
tight loop's; the goal is 1.00 +/- 0.03.

Second, the cost of interleaving: the same thread counts (every count up to the usable
CPUs) at n=256 and n=1024 timed as blasprof does it (``time_points``: calibrate each count,
then sample the counts in interleaved rounds) and as blasprof did before (one block per
count: warm up, calibrate, take every sample), alternating. The figure is the ratio of the
median wall times; the goal is at most 1.1.

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
    from profiler.measure.timing import ThreadLimiter, Workspace, time_gemm
    from profiler.settings import TimingSettings

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


def _blocks(workspace: Any, counts: Sequence[int], limiter: Any, settings: Any) -> None:
    """Each count in one block, as the harness timed them before rounds were interleaved."""
    import numpy as np

    a, b, c = workspace.a, workspace.b, workspace.c
    for threads in counts:
        with limiter.limit(threads):
            for _ in range(settings.warmup):
                np.matmul(a, b, out=c)
            loops = 1
            while True:
                t0 = time.perf_counter()
                for _ in range(loops):
                    np.matmul(a, b, out=c)
                if time.perf_counter() - t0 >= settings.min_time:
                    break
                loops *= 2
            for _ in range(settings.samples):
                for _ in range(loops):
                    np.matmul(a, b, out=c)


def measure_interleaving(n: int, rounds: int, min_time: float, samples: int) -> dict[str, Any]:
    """Wall time of interleaved rounds against one block per count, alternating."""
    import os

    from profiler.measure.timing import ThreadLimiter, Workspace, time_points
    from profiler.settings import TimingSettings

    settings = TimingSettings(min_time=min_time, samples=samples)
    counts = list(range(1, len(os.sched_getaffinity(0)) + 1))
    limiter = ThreadLimiter()
    workspace = Workspace(n, "float64")
    interleaved: list[float] = []
    blocks: list[float] = []
    for i in range(rounds):
        for kind in ("interleaved", "blocks")[:: 1 if i % 2 == 0 else -1]:
            t0 = time.perf_counter()
            if kind == "interleaved":
                time_points(workspace, counts, limiter, settings)
            else:
                _blocks(workspace, counts, limiter, settings)
            (interleaved if kind == "interleaved" else blocks).append(time.perf_counter() - t0)
    return {
        "n": n,
        "counts": counts,
        "rounds": rounds,
        "interleaved_s": interleaved,
        "blocks_s": blocks,
        "ratio": median(interleaved) / median(blocks),
    }


def run(quick: bool = False) -> dict[str, Any]:
    rounds = 4 if quick else 10
    min_time, samples = 0.1, 5  # blasprof's default TimingSettings
    sizes = [measure_size(n, rounds, min_time, samples) for n in SIZES]
    cost = [measure_interleaving(n, 3 if quick else 6, min_time, samples) for n in (256, 1024)]
    goals = [
        Goal(
            name=f"harness overhead n={s['n']}",
            measured=f"{s['ratio']:.3f}",
            goal=f"1.00 +/- {GOAL_TOLERANCE:.2f}",
            met=abs(s["ratio"] - 1.0) <= GOAL_TOLERANCE,
            note=f"per-round {s['per_round_ratio_min']:.3f}..{s['per_round_ratio_max']:.3f}",
        )
        for s in sizes
    ] + [
        Goal(
            name=f"interleaved / one block per count, n={c['n']}",
            measured=f"{c['ratio']:.3f}",
            goal="<= 1.10",
            met=c["ratio"] <= 1.10,
            note=f"counts {','.join(map(str, c['counts']))}; medians of {c['rounds']} each",
        )
        for c in cost
    ]
    return {
        "name": NAME,
        "environment": environment(),
        "sizes": sizes,
        "interleaving": cost,
        "goals": goals,
    }


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
