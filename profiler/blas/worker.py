"""The worker process of the BLAS family: loads one library, and either says what it is
(``describe``) or times one GEMM through it (``gemm``), printing one JSON line.

Run as ``python -m profiler.blas.worker REQUEST`` with REQUEST a JSON object; only
``profiler.blas.run`` starts it, with the environment the measurement needs (a library
reads its thread variables once, when it loads, so each point gets a fresh process).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from profiler.blas import member_named

__all__ = ["main", "thread_cpu", "threads_that_ran"]


def thread_cpu() -> dict[int, float]:
    """CPU seconds of each thread of this process, by thread id (Linux's per-thread CPU
    clocks, nanosecond resolution); {} where the system has none."""
    clocks = {}
    try:
        tids = [int(name) for name in os.listdir("/proc/self/task")]
    except (OSError, ValueError):
        return {}
    for tid in tids:
        try:  # the clock id Linux gives a thread: MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)
            clocks[tid] = time.clock_gettime((~tid << 3) | 6)
        except OSError:  # the thread has ended
            continue
    return clocks


def threads_that_ran(before: dict[int, float], after: dict[int, float]) -> int | None:
    """Threads that each did at least a fifth of the busiest one's work: contention from
    other processes slows every thread alike, so it does not change the count."""
    used = [after[t] - before.get(t, 0.0) for t in after]
    if not used or max(used) <= 0:
        return None
    return sum(1 for u in used if u >= 0.2 * max(used))


def _gemm(member: Any, request: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    n, dtype = int(request["n"]), str(request["dtype"])
    rng = np.random.default_rng(12345)
    a, b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
    c = np.empty((n, n), dtype=dtype)
    threads = request.get("threads")
    set_by_api = member.set_threads(int(threads)) if threads else False
    member.gemm(a, b, c)  # starts the library's threads outside the timed loop
    reps, wall, cpu = 1, 0.0, 0.0
    while True:
        threads_before = thread_cpu()
        start_cpu, start = time.process_time(), time.perf_counter()
        for _ in range(reps):
            member.gemm(a, b, c)
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        threads_after = thread_cpu()
        if wall >= float(request["min_time"]) or reps >= 1 << 20:
            break
        reps *= 2
    # numpy's own BLAS works only now: its spinning threads must not count above
    reference = a.astype("float64") @ b.astype("float64")
    error = float(np.max(np.abs(c - reference)) / max(float(np.max(np.abs(reference))), 1e-300))
    return {
        "gflops": 2.0 * n**3 * reps / wall / 1e9,
        "threads_ran": threads_that_ran(threads_before, threads_after),
        "cpu_per_wall": cpu / wall,
        "cpu_s": cpu,
        "wall_s": wall,
        "reps": reps,
        "relative_error": error,
        "set_by_api": set_by_api,
        "gemm_symbol": member.gemm_symbol(dtype),
    }


def main(argv: list[str]) -> int:
    request = json.loads(argv[1])
    member = member_named(str(request["member"]))(Path(str(request["path"])))
    member.load()
    result = member.describe() if request["action"] == "describe" else _gemm(member, request)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
