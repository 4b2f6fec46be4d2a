"""A BLAS library other than numpy's, measured in a run's worker process: its GEMM on the
worker's numpy operands, its threads set through its own function, and the threads it
really ran counted from the process's per-thread CPU clocks (its own report, and
threadpoolctl's, can lie: Debian's OpenMP OpenBLAS reports 2 threads while running 1, and
threadpoolctl does not see ATLAS or the reference BLAS at all).

``LibraryLimiter`` stands where ``profiler.measure.timing.ThreadLimiter`` stands for numpy,
so ``time_points`` times every library through the same interleaved rounds; ``check_result``
refuses a library whose product is wrong, so a broken build is a failed run, not a figure.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from profiler.blas.base import Member
    from profiler.measure.timing import Workspace

__all__ = ["LibraryLimiter", "check_result", "gemm_of", "settle"]

#: how long the threads are watched while a count is checked: long enough that a thread
#: that shares the work has used a visible share of CPU time on a busy machine
_WATCH_S = 0.05
#: a product this far from float64's (relative to its largest entry) is not a GEMM
_TOLERANCE = {"float32": 1e-3, "float64": 1e-9}


def gemm_of(member: Member) -> Callable[..., None]:
    """``member``'s GEMM with ``np.matmul``'s call shape (``gemm(a, b, out=c)``), its
    arguments converted once per set of operands (a worker times one set)."""
    # the operands are held with their call, so their ids cannot name other arrays later
    prepared: dict[tuple[int, int, int], tuple[Any, Callable[[], None]]] = {}

    def gemm(a: Any, b: Any, out: Any) -> None:
        key = (id(a), id(b), id(out))
        if key not in prepared:
            prepared[key] = ((a, b, out), member.gemm_call(a, b, out))
        prepared[key][1]()

    return gemm


class LibraryLimiter:
    """Sets a loaded library's threads through its own function, and reads back the
    threads that really ran a few of its GEMMs.

    ``others`` are the threads that another library started before this one loaded
    (numpy's OpenBLAS, imported for the operands, starts its pool at import, and its
    threads spin for about a tenth of a second before they sleep): they are not counted.
    """

    def __init__(self, member: Member, others: Iterable[int] = ()) -> None:
        self._member = member
        self._others = set(others)
        self.set_by_api = False

    def limit(self, threads: int) -> contextlib.AbstractContextManager[None]:
        # a library without such a function (ATLAS, the reference BLAS) runs what it runs;
        # the threads that ran say so
        self.set_by_api = self._member.set_threads(threads)
        return contextlib.nullcontext()

    def observed(self, work: Callable[[], None] | None = None) -> tuple[int, ...]:
        """The threads that shared ``work`` (run again for ``_WATCH_S`` at least); () when
        the system has no per-thread clocks or there is no work to watch."""
        from profiler.blas.worker import thread_cpu, threads_that_ran

        if work is None:
            return ()
        work()  # the library starts its threads outside the watched time
        before, start = thread_cpu(), time.perf_counter()
        calls = 0
        while calls < 2 or time.perf_counter() - start < _WATCH_S:
            work()
            calls += 1
        after = {tid: cpu for tid, cpu in thread_cpu().items() if tid not in self._others}
        ran = threads_that_ran(before, after)
        return (ran,) if ran else ()


def settle(most_s: float = 1.0) -> None:
    """Wait (at most ``most_s``) until no thread but this one burns CPU: a pthreads OpenBLAS
    starts its pool when it loads, and the pool spins for about a tenth of a second before
    it sleeps, which would be counted as threads that shared the first GEMMs."""
    import os

    from profiler.blas.worker import thread_cpu

    main = os.getpid()
    deadline = time.perf_counter() + most_s
    while time.perf_counter() < deadline:
        before = thread_cpu()
        time.sleep(_WATCH_S)
        after = thread_cpu()
        busy = [t for t in after if t != main and after[t] - before.get(t, 0.0) > 0.2 * _WATCH_S]
        if not busy:
            return


def check_result(workspace: Workspace) -> str | None:
    """Why the product in ``workspace.c`` is not ``a @ b`` (computed in float64 by numpy),
    or None when it is."""
    import numpy as np

    reference = workspace.a.astype("float64") @ workspace.b.astype("float64")
    scale = max(float(np.max(np.abs(reference))), 1e-300)
    error = float(np.max(np.abs(workspace.c - reference))) / scale
    if not error <= _TOLERANCE[workspace.dtype]:  # NaN too
        return f"its product differs from numpy's by {error:.2g} (relative)"
    return None
