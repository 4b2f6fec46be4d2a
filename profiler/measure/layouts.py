"""Job layouts, measured: W processes of T threads each, side by side on the node's CPUs.

A hybrid job (MPI ranks x OpenMP threads, a pool of workers each calling BLAS) runs W
processes at once, and they compete for memory bandwidth and caches in ways a single
process never shows. For each worker count W (2, 4, ..., the usable CPUs) this module
starts W worker processes, each pinned to its own T CPUs with every thread variable at T
before numpy loads, lets them run GEMMs for a window at the same time, and adds up their
throughput; the rounds' aggregates are the samples of one point. The threads per process
are searched like the thread sweep (``profiler.measure.sweep.search_threads``). Beside each layout
the same W processes left at the BLAS default (every CPU, unpinned: what a job gets with
no preset) are measured once, for contrast.

Run as ``python -m profiler.measure.layouts N DTYPE WINDOW_S [CPU ...]`` it is one worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from profiler.choice.preset import LAYOUT_PHASE, OVERSUBSCRIBED_PHASE, worker_counts
from profiler.jobstart.budget import thread_environment

if TYPE_CHECKING:
    from profiler.measure.sweep import Reading
    from profiler.results import Measurement
    from profiler.settings import SweepSettings

__all__ = ["LayoutError", "measure_layout", "run_layouts"]

#: seconds a worker may take to start (load numpy, fill its operands) or to report a round
_STARTUP_S = 300.0
_ROUND_S = 900.0


class LayoutError(RuntimeError):
    """A layout could not be measured: a worker died, hung, or did not fit in memory."""


def measure_layout(
    n: int,
    dtype: str,
    workers: int,
    threads: int,
    cpus: Sequence[int],
    *,
    rounds: int,
    window_s: float,
    pinned: bool = True,
    phase: str = LAYOUT_PHASE,
) -> Measurement:
    """One layout point: ``workers`` processes of ``threads`` threads on ``cpus``.

    Pinned, worker i runs on ``cpus[i*threads:(i+1)*threads]``; unpinned, every worker may
    run on all of ``cpus``.
    """
    from profiler.measure.timing import gemm_point

    procs = []
    try:
        for i in range(workers):
            own = cpus[i * threads : (i + 1) * threads] if pinned else cpus
            env = {**os.environ, **thread_environment(threads)}
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "profiler.measure.layouts", str(n), dtype, str(window_s)]
                    + [str(c) for c in own],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    env=env,
                )
            )
        observed = []
        for p in procs:
            ready = _line(p, _STARTUP_S).split()
            if not ready or ready[0] != "ready":
                raise LayoutError(f"a layout worker did not start (it said {ready!r})")
            observed.extend(int(t) for t in ready[1:])
        per_gemm = []
        for _ in range(rounds):
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.flush()
            throughput = 0.0  # GEMMs per second, all workers together
            for p in procs:
                calls, elapsed = _report(_line(p, _ROUND_S))
                throughput += calls / elapsed
            per_gemm.append(1.0 / throughput)
    finally:
        for p in procs:
            if p.poll() is None:
                try:
                    assert p.stdin is not None
                    p.stdin.write("stop\n")
                    p.stdin.flush()
                except (BrokenPipeError, OSError):
                    pass
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    return gemm_point(n, dtype, threads, per_gemm, 0, observed, phase=phase, workers=workers)


def _line(p: subprocess.Popen[str], timeout_s: float) -> str:
    """The worker's next line; a worker that died or stays silent is a LayoutError."""
    import select

    assert p.stdout is not None
    ready, _, _ = select.select([p.stdout], [], [], timeout_s)
    if not ready:
        raise LayoutError(f"a layout worker said nothing for {timeout_s:.0f} s")
    line = p.stdout.readline()
    if not line:
        code = p.wait(timeout=10)
        raise LayoutError(f"a layout worker ended (exit code {code}) before its round was done")
    return line


def _report(line: str) -> tuple[int, float]:
    try:
        calls, elapsed = line.split()
        return int(calls), float(elapsed)
    except ValueError:
        raise LayoutError(f"a layout worker reported {line.strip()[:80]!r}") from None


def fits(n: int, dtype: str, workers: int, available_bytes: int) -> bool:
    """Whether ``workers`` processes each holding one GEMM's operands (and the temporary a
    worker fills them through) fit in 80% of the available memory."""
    from profiler.measure.timing import operand_bytes

    per_worker = operand_bytes(n, dtype) * 4 // 3 + operand_bytes(n, "float64") // 3
    return workers * per_worker <= available_bytes * 0.8


def run_layouts(
    settings: SweepSettings,
    sizes: Sequence[int],
    cpus: Sequence[int],
    *,
    available_bytes: int | None = None,
    on_point: Callable[[Measurement], None] | None = None,
) -> tuple[list[Measurement], list[str]]:
    """Measure the layouts of every worker count at each of ``sizes`` (one per size class),
    float64, with the oversubscribed contrast beside each; points go to ``on_point`` as
    they are taken. The threads per process are searched, not all measured. Returns the
    points and a note for each layout left out because it would not fit in
    ``available_bytes`` of memory."""
    from profiler.measure.sweep import search_threads

    rounds = max(3, settings.timing.samples)
    window_s = max(0.1, settings.timing.min_time)
    done: list[Measurement] = []

    def record(m: Measurement) -> Measurement:
        done.append(m)
        if on_point is not None:
            on_point(m)
        return m

    notes: list[str] = []
    for n in sizes:
        for workers in worker_counts(len(cpus)):
            if available_bytes is not None and not fits(n, "float64", workers, available_bytes):
                notes.append(f"{workers} processes at n={n} would not fit in memory: skipped")
                continue
            counts = list(range(1, len(cpus) // workers + 1))

            def measure(batch: Sequence[int], n: int = n, w: int = workers) -> list[Reading]:
                points = [
                    measure_layout(n, "float64", w, t, cpus, rounds=rounds, window_s=window_s)
                    for t in batch
                ]
                return [(record(m).gflops, m.uncertainty) for m in points]

            search_threads(
                counts, measure, tolerance=settings.tolerance, from_the_top=True, resolution=0.25
            )
            record(
                measure_layout(
                    n, "float64", workers, len(cpus), cpus, rounds=rounds, window_s=window_s,
                    pinned=False, phase=OVERSUBSCRIBED_PHASE,
                )
            )  # fmt: skip
    return done, notes


def _worker(argv: Sequence[str]) -> int:
    """One layout worker: pin, load numpy, warm up, then run a window per ``go``."""
    n, dtype, window_s = int(argv[0]), argv[1], float(argv[2])
    if len(argv) > 3:
        os.sched_setaffinity(0, {int(c) for c in argv[3:]})
    import numpy as np
    from threadpoolctl import threadpool_info

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype=dtype)
    np.matmul(a, b, out=c)
    observed = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    print("ready", *observed, flush=True)
    timer = time.perf_counter
    for line in sys.stdin:
        if line.strip() != "go":
            break
        calls, start = 0, timer()
        while True:
            np.matmul(a, b, out=c)
            calls += 1
            elapsed = timer() - start
            if elapsed >= window_s:
                break
        print(calls, elapsed, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
