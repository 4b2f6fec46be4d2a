"""Benchmark points: GEMMs of one size and dtype at several thread counts, timed robustly.

Operands live in a ``Workspace`` allocated once per (size, dtype) with a preallocated
output. Threads are limited through threadpoolctl and then read back from threadpoolctl's
own report: a point whose limit did not hold is kept but marked unverified. The loop count
doubles until one sample lasts ``min_time`` (capped, and stored with the point so the run
can be reproduced); then the thread counts are sampled in interleaved rounds, and each
point is summarised by its median, minimum, coefficient of variation and robust spread.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from profiler.errors import UsageError
from profiler.results import NUMPY_BLAS, Measurement, gemm_flops
from profiler.settings import TimingSettings

if TYPE_CHECKING:
    import numpy as np

    from profiler.measure.library import LibraryLimiter

__all__ = [
    "Workspace",
    "ThreadLimiter",
    "operand_bytes",
    "check_fits",
    "gemm_point",
    "time_gemm",
    "time_points",
]


_DEFAULT_TIMING = TimingSettings()


def operand_bytes(n: int, dtype: str) -> int:
    """Bytes for the three n x n operands of one GEMM (a, b and the output)."""
    itemsize = {"float64": 8, "float32": 4}[dtype]
    return 3 * n * n * itemsize


def check_fits(n: int, dtype: str, available_bytes: int, fraction: float = 0.8) -> None:
    """Refuse a size whose operands would not fit in ``fraction`` of the available memory."""
    need = operand_bytes(n, dtype)
    if need > available_bytes * fraction:
        raise UsageError(
            f"size {n} ({dtype}) needs {need:,} bytes for its three operands but only "
            f"{available_bytes:,} bytes of memory are available; choose a smaller --sizes value"
        )


class Workspace:
    """The operands of one (size, dtype): allocated once, filled with random values."""

    def __init__(self, n: int, dtype: str, seed: int = 0) -> None:
        import numpy as np

        rng = np.random.default_rng(seed)
        self.n = n
        self.dtype = dtype
        self.a: np.ndarray = rng.standard_normal((n, n)).astype(dtype)
        self.b: np.ndarray = rng.standard_normal((n, n)).astype(dtype)
        self.c: np.ndarray = np.empty((n, n), dtype=dtype)


class ThreadLimiter:
    """Sets the thread count of every loaded BLAS/OpenMP library and reads it back."""

    def __init__(self) -> None:
        import numpy  # noqa: F401  # the BLAS must be loaded before threadpoolctl looks
        from threadpoolctl import ThreadpoolController

        self._controller = ThreadpoolController()

    @property
    def libraries(self) -> list[dict[str, Any]]:
        return self._controller.info()

    def limit(self, threads: int) -> Any:
        """A context manager that holds the limit; use ``observed()`` inside it."""
        return self._controller.limit(limits=threads)

    def observed(self, work: Callable[[], None] | None = None) -> tuple[int, ...]:
        """The thread count each BLAS library reports now (OpenMP runtimes excluded);
        ``work`` is not needed: numpy's OpenBLAS tells (``LibraryLimiter`` watches it run)."""
        return tuple(
            lib.num_threads for lib in self._controller.lib_controllers if lib.user_api == "blas"
        )


def _time_loops(matmul: Callable[..., Any], a: Any, b: Any, c: Any, loops: int) -> float:
    # Kept as bare as the loop a user would write, so the harness adds nothing to a point.
    timer = time.perf_counter
    it = range(loops)
    t0 = timer()
    for _ in it:
        matmul(a, b, out=c)
    return timer() - t0


def time_points(
    workspace: Workspace,
    thread_counts: Sequence[int | None],
    limiter: ThreadLimiter | LibraryLimiter,
    settings: TimingSettings = _DEFAULT_TIMING,
    *,
    phase: str = "full",
    gemm: Callable[..., Any] | None = None,
    blas: str = NUMPY_BLAS,
) -> list[Measurement]:
    """Time ``c = a @ b`` at each thread count, in interleaved rounds; one point per count.

    ``gemm`` (numpy's matmul unless given, with its call shape) is the library ``blas``
    labels, whose threads ``limiter`` sets and reads back.

    Each count is warmed up and its loop count calibrated first; then each of
    ``settings.samples`` rounds takes one sample of every count, in alternating order, so
    that a machine that slowly gets busier or quieter bends every count alike instead of
    the counts measured last. ``None`` leaves the libraries as the environment configured
    them (how a job started from a preset runs) and records the count they report.
    """
    import contextlib

    import numpy as np

    matmul = gemm or np.matmul
    a, b, c = workspace.a, workspace.b, workspace.c

    def held(threads: int | None) -> Any:
        return limiter.limit(threads) if threads is not None else contextlib.nullcontext()

    counts = list(thread_counts)
    loops: list[int] = []
    observed: list[tuple[int, ...]] = []
    for threads in counts:
        with held(threads):
            for _ in range(settings.warmup):
                matmul(a, b, out=c)
            observed.append(limiter.observed(lambda: matmul(a, b, out=c)))
            n_loops = 1
            while True:
                elapsed = _time_loops(matmul, a, b, c, n_loops)
                if elapsed >= settings.min_time or n_loops >= settings.max_loops:
                    break
                n_loops = min(n_loops * 2, settings.max_loops)
            loops.append(n_loops)
    per_call: list[list[float]] = [[] for _ in counts]
    order = list(range(len(counts)))
    for round_ in range(settings.samples):
        for i in order if round_ % 2 == 0 else reversed(order):
            with held(counts[i]):
                per_call[i].append(_time_loops(matmul, a, b, c, loops[i]) / loops[i])
    points = []
    for threads, seen, n_loops, times in zip(counts, observed, loops, per_call, strict=True):
        count = threads if threads is not None else (seen[0] if seen else 0)
        points.append(
            gemm_point(
                workspace.n, workspace.dtype, count, times, n_loops, seen, phase=phase, blas=blas
            )
        )
    return points


def time_gemm(
    workspace: Workspace,
    threads: int | None,
    limiter: ThreadLimiter,
    settings: TimingSettings = _DEFAULT_TIMING,
    *,
    phase: str = "full",
) -> Measurement:
    """Time ``c = a @ b`` on ``threads`` threads alone (see ``time_points``)."""
    (point,) = time_points(workspace, [threads], limiter, settings, phase=phase)
    return point


def gemm_point(
    n: int,
    dtype: str,
    threads: int,
    per_call: Sequence[float],
    loops: int,
    observed: Sequence[int],
    *,
    phase: str,
    workers: int = 1,
    blas: str = NUMPY_BLAS,
) -> Measurement:
    """The point of ``per_call`` seconds per GEMM of order ``n`` measured on ``threads``
    threads (each of ``workers`` processes), its limit checked against ``observed``."""
    median = statistics.median(per_call)
    mean = statistics.fmean(per_call)
    return Measurement(
        kernel="gemm",
        dtype=dtype,
        n=n,
        threads=threads,
        median_s=median,
        min_s=min(per_call),
        cv=statistics.pstdev(per_call) / mean if mean > 0 else 0.0,
        samples=tuple(per_call),
        loops=loops,
        gflops=gemm_flops(n) / median / 1e9,
        threads_verified=bool(observed) and all(t == threads for t in observed),
        threads_observed=tuple(observed),
        phase=phase,
        workers=workers,
        blas=blas,
    )
