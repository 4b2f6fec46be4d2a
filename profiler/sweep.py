"""Which (size, dtype, threads) points to measure, in which order, and when to stop.

The default strategy does not measure every thread count. Per (size, dtype) it measures a
coarse ladder (1, 2, 4, ... plus the physical-core and usable-CPU counts), refines around the
best by bisection while a new point still beats it by more than half the tolerance, then
bisects for the smallest count within the tolerance of the best, which is what a preset
uses. ``exhaustive`` measures the whole grid. ``search_threads`` is a pure function of a
``measure(threads) -> GFLOP/s`` callable so that it can be replayed on modelled curves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from profiler.errors import UsageError
from profiler.results import Measurement
from profiler.settings import ALL_THREADS, DEFAULT_TOLERANCE, SweepSettings, ThreadCounts
from profiler.timing import check_fits, operand_bytes

__all__ = [
    "SearchResult",
    "SweepOutcome",
    "check_memory",
    "coarse_ladder",
    "planned_points",
    "resolve_threads",
    "run_sweep",
    "search_threads",
]


def resolve_threads(threads: ThreadCounts, usable_cpus: int) -> tuple[int, ...]:
    """The thread counts to test on a node with ``usable_cpus``; refuse counts above it."""
    if threads == ALL_THREADS:
        return tuple(range(1, usable_cpus + 1))
    too_many = [t for t in threads if t > usable_cpus]
    if too_many:
        raise UsageError(
            f"--threads: {', '.join(map(str, too_many))} is more than the {usable_cpus} CPUs "
            f"this process may use; accepted: 1 to {usable_cpus}, or 'all'"
        )
    return threads


def check_memory(settings: SweepSettings, available_bytes: int) -> None:
    """Refuse the sweep before allocating anything if its largest operands cannot fit."""
    for dtype in settings.dtypes:
        check_fits(max(settings.sizes), dtype, available_bytes)


def coarse_ladder(candidates: Sequence[int], anchors: Iterable[int] = ()) -> list[int]:
    """Powers of two within the candidates, plus the largest, plus the anchors."""
    cands = sorted(set(candidates))
    if not cands:
        return []
    picked = {cands[0], cands[-1]}
    p = 1
    while p <= cands[-1]:
        if p in cands:
            picked.add(p)
        p *= 2
    picked.update(a for a in anchors if a in cands)
    return sorted(picked)


@dataclass(frozen=True)
class SearchResult:
    """The points a search measured (in order) and the count it chose."""

    measured: tuple[tuple[int, float], ...]
    chosen: int
    best: int


def search_threads(
    candidates: Sequence[int],
    measure: Callable[[int], float],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    anchors: Iterable[int] = (),
) -> SearchResult:
    """Find the smallest thread count within ``tolerance`` of the best without the full grid."""
    cands = sorted(set(candidates))
    if not cands:
        raise ValueError("no thread counts to search")
    order: list[tuple[int, float]] = []
    seen: dict[int, float] = {}

    def at(t: int) -> float:
        if t not in seen:
            seen[t] = measure(t)
            order.append((t, seen[t]))
        return seen[t]

    for t in coarse_ladder(cands, anchors):
        at(t)

    # Refine the peak: bisect towards each measured neighbour of the best. Go on while a
    # midpoint beats the best by more than a quarter of the tolerance, or comes within half
    # of it across a gap still wider than an eighth of the best count: a peak can hide
    # between two points that both fall short of it. Gains below that cannot move the
    # answer by more than the tolerance.
    while True:
        best = max(seen, key=seen.__getitem__)
        improved = False
        for side in (-1, 1):
            neighbours = [t for t in seen if (t - best) * side > 0]
            if not neighbours:
                continue
            nb = min(neighbours, key=lambda t: abs(t - best))
            between = [t for t in cands if min(best, nb) < t < max(best, nb)]
            if not between:
                continue
            mid = between[len(between) // 2]
            if mid in seen:
                continue
            value = at(mid)
            beats = value > seen[best] * (1 + tolerance / 4)
            close_across_a_wide_gap = value >= seen[best] * (1 - tolerance / 2) and abs(
                nb - best
            ) > max(2, best // 8)
            improved = improved or beats or close_across_a_wide_gap
        if not improved:
            break

    # The smallest count within tolerance: bisect between it and the measured count below.
    while True:
        top = max(seen.values())
        chosen = min(t for t, g in seen.items() if g >= top * (1 - tolerance))
        lower = [t for t in seen if t < chosen]
        if not lower:
            break
        between = [t for t in cands if max(lower) < t < chosen]
        if not between:
            break
        at(between[len(between) // 2])

    top = max(seen.values())
    chosen = min(t for t, g in seen.items() if g >= top * (1 - tolerance))
    best = max(seen, key=seen.__getitem__)
    return SearchResult(measured=tuple(order), chosen=chosen, best=best)


@dataclass
class SweepOutcome:
    """What a sweep measured, and whether it finished."""

    measurements: list[Measurement]
    completed: bool
    error: str | None = None


def planned_points(settings: SweepSettings, thread_counts: Sequence[int]) -> int:
    """An upper estimate of the points a sweep will measure (for progress displays)."""
    per_curve = len(thread_counts)
    if settings.strategy == "search" and per_curve > 2:
        ladder = len(coarse_ladder(thread_counts))
        per_curve = min(per_curve, ladder + 2 * max(1, len(thread_counts).bit_length()))
    return per_curve * len(settings.sizes) * len(settings.dtypes)


def run_sweep(
    settings: SweepSettings,
    thread_counts: Sequence[int],
    *,
    physical_cores: int | None = None,
    on_point: Callable[[Measurement], None] | None = None,
) -> SweepOutcome:
    """Measure the sweep, reporting each point to ``on_point`` as soon as it is taken.

    An interrupt (Ctrl-C, or SIGTERM turned into KeyboardInterrupt by the caller) stops the
    sweep and returns the points already measured with ``completed=False``.
    """
    from profiler.timing import ThreadLimiter, Workspace, time_gemm

    limiter = ThreadLimiter()
    done: list[Measurement] = []
    anchors = [physical_cores] if physical_cores else []

    def record(m: Measurement) -> Measurement:
        done.append(m)
        if on_point is not None:
            on_point(m)
        return m

    try:
        for dtype in settings.dtypes:
            for n in settings.sizes:
                workspace = Workspace(n, dtype)

                def measure(t: int, ws: Workspace = workspace) -> float:
                    return record(
                        time_gemm(ws, t, limiter, settings.timing, phase=settings.strategy)
                    ).gflops

                if settings.strategy == "exhaustive":
                    for t in thread_counts:
                        measure(t)
                else:
                    search_threads(
                        thread_counts, measure, tolerance=settings.tolerance, anchors=anchors
                    )
                del workspace
    except KeyboardInterrupt:
        return SweepOutcome(done, completed=False, error="interrupted")
    except MemoryError:
        need = max(operand_bytes(n, d) for n in settings.sizes for d in settings.dtypes)
        return SweepOutcome(done, completed=False, error=f"out of memory (needs {need:,} bytes)")
    return SweepOutcome(done, completed=True)
