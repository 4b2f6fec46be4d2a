"""Which (size, dtype, threads) points to measure, in which order, and when to stop.

The default strategy does not measure every thread count. Per (size, dtype) it measures a
coarse ladder (1, 2, 4, ... plus the physical-core and usable-CPU counts), refines around the
best by bisection while a new point still beats it by more than a quarter of the
tolerance, then bisects for the smallest count within the tolerance of the best, which is
what a preset uses. ``exhaustive`` measures the whole grid. Every batch of counts is timed
in interleaved rounds, and a difference inside the measured spread never decides.
``search_threads`` is a pure function of a ``measure(counts) -> readings`` callable so that
it can be replayed on modelled curves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from profiler.errors import UsageError
from profiler.measure.timing import check_fits, operand_bytes
from profiler.results import Measurement
from profiler.settings import (
    ALL_THREADS,
    CHOICE_TOLERANCE,
    NUMPY_BLAS,
    SweepSettings,
    ThreadCounts,
)
from profiler.stats import differs

if TYPE_CHECKING:
    from profiler.blas.run import Library

__all__ = [
    "Reading",
    "SearchResult",
    "SweepOutcome",
    "check_memory",
    "coarse_ladder",
    "one_at_a_time",
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


#: what a measurement gives the search: GFLOP/s, or (GFLOP/s, relative uncertainty)
Reading = float | tuple[float, float]


@dataclass(frozen=True)
class SearchResult:
    """The points a search measured (in order) and the count it chose."""

    measured: tuple[tuple[int, float], ...]
    chosen: int
    best: int


def one_at_a_time(measure: Callable[[int], Reading]) -> Callable[[Sequence[int]], list[Reading]]:
    """A batch measure for ``search_threads`` from one that measures a single count."""
    return lambda counts: [measure(t) for t in counts]


def search_threads(
    candidates: Sequence[int],
    measure: Callable[[Sequence[int]], Sequence[Reading]],
    *,
    tolerance: float = CHOICE_TOLERANCE,
    anchors: Iterable[int] = (),
    from_the_top: bool = False,
    resolution: float = 0.0,
) -> SearchResult:
    """Find the smallest thread count within ``tolerance`` of the best without the full grid.

    The search starts from a coarse ladder of counts (powers of two, the largest, the
    anchors) or, ``from_the_top``, from the largest count, halving while the smaller count
    is as good: for layouts, where filling the CPUs is usually best and the ladder below it
    would cost most of the points. The last phase narrows down the smallest good count until
    it is within ``resolution`` (a fraction of the count) of the largest count below it
    that is not good; 0 narrows it down to the count.

    ``measure`` takes a batch of counts (measured together, in interleaved rounds) and
    returns one reading per count. A count whose figure is within the tolerance of the
    best, or within the spread of the two figures, counts as good as the best: the
    smallest such count is chosen, and a difference inside the spread never moves the
    search.
    """
    cands = sorted(set(candidates))
    if not cands:
        raise ValueError("no thread counts to search")
    order: list[tuple[int, float]] = []
    seen: dict[int, float] = {}
    error: dict[int, float] = {}

    def at(counts: Sequence[int]) -> None:
        new = [t for t in dict.fromkeys(counts) if t not in seen]
        if not new:
            return
        for t, reading in zip(new, measure(new), strict=True):
            value, spread = reading if isinstance(reading, tuple) else (reading, 0.0)
            seen[t], error[t] = value, spread
            order.append((t, value))

    def good(t: int, top: int) -> bool:
        value, best = seen[t], seen[top]
        return value >= best * (1 - tolerance) or not differs(value, error[t], best, error[top])

    if from_the_top:
        at([cands[-1], cands[-1] // 2] if cands[-1] > 1 else [cands[-1]])
        while True:
            top, low = max(seen, key=seen.__getitem__), min(seen)
            lower = [t for t in cands if t <= low // 2]
            if not lower or not good(low, top):
                break
            at([lower[-1]])
    else:
        at(coarse_ladder(cands, anchors))

    # Refine the peak: bisect towards each measured neighbour of the best, both sides in
    # one batch. A side whose gap is still wider than an eighth of the best count (or the
    # ``resolution``, if coarser) is always bisected: a peak can hide between two points
    # that both fall short of it. A narrower side is bisected while the last batch found a
    # better count (by more than a quarter of the tolerance, and beyond the spread); gains
    # below that cannot move the answer by more than the tolerance.
    improved = True
    while True:
        best = max(seen, key=seen.__getitem__)
        mids = []
        for side in (-1, 1):
            neighbours = [t for t in seen if (t - best) * side > 0]
            if not neighbours:
                continue
            nb = min(neighbours, key=lambda t: abs(t - best))
            between = [t for t in cands if min(best, nb) < t < max(best, nb)]
            wide = abs(nb - best) > max(2, int(best * max(0.125, resolution)))
            if between and between[len(between) // 2] not in seen and (improved or wide):
                mids.append(between[len(between) // 2])
        if not mids:
            break
        at(mids)
        improved = any(
            seen[mid] > seen[best] * (1 + tolerance / 4)
            and differs(seen[mid], error[mid], seen[best], error[best])
            for mid in mids
        )

    # The smallest good count: bisect between it and the measured count below.
    while True:
        top = max(seen, key=seen.__getitem__)
        chosen = min(t for t in seen if good(t, top))
        lower = [t for t in seen if t < chosen]
        between = [t for t in cands if lower and max(lower) < t < chosen]
        if not between or chosen - max(lower) <= chosen * resolution:
            break
        at([between[len(between) // 2]])

    top = max(seen, key=seen.__getitem__)
    chosen = min(t for t in seen if good(t, top))
    return SearchResult(measured=tuple(order), chosen=chosen, best=top)


@dataclass
class SweepOutcome:
    """What a sweep measured, and whether it finished."""

    measurements: list[Measurement]
    completed: bool
    error: str | None = None
    #: runs that failed (a point keeps the runs it has)
    notes: list[str] = field(default_factory=list)


def _search_estimate(counts: int) -> int:
    """An upper estimate of the points a search over ``counts`` thread counts measures."""
    if counts <= 2:
        return counts
    return min(counts, len(coarse_ladder(range(1, counts + 1))) + 2 * counts.bit_length())


def planned_points(settings: SweepSettings, thread_counts: Sequence[int]) -> int:
    """An upper estimate of the points a task will measure, layouts included (for progress
    displays)."""
    from profiler.choice.preset import class_of, worker_counts

    per_curve = len(thread_counts)
    if settings.strategy == "search":
        per_curve = _search_estimate(per_curve)
    total = per_curve * len(settings.sizes) * len(settings.dtypes)
    cpus = max(thread_counts, default=1)
    if settings.layouts and cpus > 1:
        classes = len({class_of(n)[0] for n in settings.sizes})
        total += classes * sum(_search_estimate(cpus // w) + 1 for w in worker_counts(cpus))
    return total


def _report_all(
    points: Sequence[Measurement], on_point: Callable[[Measurement], None] | None
) -> None:
    """Hand every point of a batch to ``on_point``; a stop it asks for (KeyboardInterrupt)
    waits until the whole batch is handed over, so that no measured point is lost."""
    if on_point is None:
        return
    stop: BaseException | None = None
    for m in points:
        try:
            on_point(m)
        except KeyboardInterrupt as exc:
            stop = stop or exc
    if stop is not None:
        raise stop


def run_sweep(
    settings: SweepSettings,
    thread_counts: Sequence[int],
    *,
    physical_cores: int | None = None,
    on_point: Callable[[Measurement], None] | None = None,
    libraries: Mapping[str, Library | None] | None = None,
) -> SweepOutcome:
    """Measure the sweep, reporting each point to ``on_point`` as soon as it is taken.

    ``libraries`` (label -> library; None is numpy's own, the default) are swept one after
    the other. numpy's first pass measures in this process; another library's in a fresh
    worker process per batch of counts (``profiler.measure.runs``: a library loads once per
    process, and a worker has a time limit), so a library that hangs or fails ends its own
    curve with the reason as a note and never the sweep. With ``settings.runs`` > 1 every
    point is then measured again in fresh worker processes, and ``on_point`` gets each
    point again, with its runs so far, as they arrive.
    An interrupt (Ctrl-C, or SIGTERM turned into KeyboardInterrupt by the caller) stops the
    sweep and returns the points already measured with ``completed=False``.
    """
    from profiler.measure.runs import remeasure

    chosen = dict(libraries) if libraries is not None else {NUMPY_BLAS: None}
    done: list[Measurement] = []
    notes: list[str] = []
    anchors = [physical_cores] if physical_cores else []

    try:
        for library in chosen.values():
            for dtype in settings.dtypes:
                for n in settings.sizes:
                    measure = _measure_batch(settings, n, dtype, library, done, on_point)
                    try:
                        if settings.strategy == "exhaustive":
                            measure(thread_counts)
                        else:
                            search_threads(
                                thread_counts, measure, tolerance=settings.tolerance,
                                anchors=anchors,
                            )  # fmt: skip
                    except _RunFailed as exc:
                        notes.append(str(exc))
        if settings.runs > 1 and done:
            others = {k: v for k, v in chosen.items() if v is not None}
            done, failed = remeasure(
                done, settings.runs, settings.timing, on_point=on_point, libraries=others
            )
            notes += failed
    except KeyboardInterrupt:
        return SweepOutcome(done, completed=False, error="interrupted", notes=notes)
    except MemoryError:
        need = max(operand_bytes(n, d) for n in settings.sizes for d in settings.dtypes)
        return SweepOutcome(done, completed=False, error=f"out of memory (needs {need:,} bytes)")
    return SweepOutcome(done, completed=True, notes=notes)


class _RunFailed(Exception):
    """A library's worker gave no figures: its curve for one (size, dtype) ends here."""


def _measure_batch(
    settings: SweepSettings,
    n: int,
    dtype: str,
    library: Library | None,
    done: list[Measurement],
    on_point: Callable[[Measurement], None] | None,
) -> Callable[[Sequence[int]], list[Reading]]:
    """The search's ``measure`` for one (library, size, dtype): numpy's in this process on
    operands allocated once, another library's in a worker process per batch."""
    from profiler.measure.runs import first_pass_timeout, measure_in_worker
    from profiler.measure.timing import ThreadLimiter, Workspace, time_points

    workspace = Workspace(n, dtype) if library is None else None
    limiter = ThreadLimiter() if library is None else None

    def measure(counts: Sequence[int]) -> list[Reading]:
        if workspace is not None and limiter is not None:
            points = time_points(
                workspace, counts, limiter, settings.timing, phase=settings.strategy
            )
        else:
            answer = measure_in_worker(
                n, dtype, counts, settings.timing, phase=settings.strategy, library=library,
                timeout=first_pass_timeout(n, counts, settings.timing),
            )  # fmt: skip
            if isinstance(answer, str):
                raise _RunFailed(answer)
            points = answer
        done.extend(points)
        _report_all(points, on_point)
        return [(m.gflops, m.uncertainty) for m in points]

    return measure
