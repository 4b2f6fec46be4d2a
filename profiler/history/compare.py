"""Comparing two sets of stored measurements: medians, bootstrap intervals, regressions.

Each side of a comparison is a set of ``profiler.history.selection.Point``s (one calibration or
many). For every (node type, dtype, size, threads) both sides measured, a side's figure is the
median over its nodes of each node's median run, and its spread a bootstrap interval of that
figure: the nodes are kept, and each node's runs are resampled (its samples, when it has one
run), so the spread is that of the measurements, not the differences between nodes. B is a
regression when it is slower than A by more than its floor *and* its whole interval lies
below A's: a difference within the spread of either side never counts. A node's values are its
calibrations' figures when it has several, else its one calibration's worker runs (the
spread between processes, which is what jobs meet), else its samples.

The floor is the tolerance, or the point's noise floor where that is higher: the change
that 95% of consecutive quiet calibrations of the node type before B stay within
(``noise_floors``), since a machine whose processes land in different states changes that
much with nothing changed. A point whose floor or whose interval on either side is wider
than ``TOO_VARIABLE`` of its figure cannot be judged and is said so, never a regression.
What else differs between the sides (the BLAS stack, its kernel, the node type, the
calibrations' conditions verdicts) is listed in ``Comparison.differences``.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from profiler.history.selection import Point, sample_gflops
from profiler.settings import REGRESSION_TOLERANCE

__all__ = [
    "CONFIDENCE",
    "TOO_VARIABLE",
    "noise_floors",
    "Comparison",
    "Difference",
    "Figure",
    "Row",
    "compare",
]

#: B slower than A by more than this fraction (and beyond the spread) is a regression
#: the coverage of the bootstrap intervals
CONFIDENCE = 0.95
_RESAMPLES = 500
#: resampled values held at once (the bootstrap runs in chunks of this many)
_CHUNK = 500_000

REGRESSION, SLOWER, SAME, FASTER, ONLY_A, ONLY_B, VARIABLE = (
    "regression", "slower", "same", "faster", "only-a", "only-b", "too-variable",
)  # fmt: skip
#: a point whose noise floor, or interval on either side, spans more than this fraction of
#: its figure is too variable to judge
TOO_VARIABLE = 0.5
Key = tuple[str, str, int, int]


@dataclass(frozen=True)
class Figure:
    """One side's figure for one point: median GFLOP/s, its interval and what is behind it."""

    gflops: float
    low: float
    high: float
    measurements: int
    samples: int

    def to_json(self) -> dict[str, Any]:
        return {
            "gflops": self.gflops,
            "low": self.low,
            "high": self.high,
            "measurements": self.measurements,
            "samples": self.samples,
        }


@dataclass(frozen=True)
class Row:
    """Both sides' figures for one (node type, dtype, n, threads), and the verdict."""

    node_type: str
    dtype: str
    n: int
    threads: int
    a: Figure | None
    b: Figure | None
    change: float | None
    verdict: str
    #: the slowdown a regression must exceed here, and where it comes from: "tolerance" or
    #: "history" (the node type's noise floor)
    floor: float = 0.0
    floor_source: str = "tolerance"

    def to_json(self) -> dict[str, Any]:
        return {
            "node_type": self.node_type,
            "dtype": self.dtype,
            "n": self.n,
            "threads": self.threads,
            "a": self.a.to_json() if self.a else None,
            "b": self.b.to_json() if self.b else None,
            "change": self.change,
            "verdict": self.verdict,
            "floor": self.floor,
            "floor_source": self.floor_source,
        }


@dataclass(frozen=True)
class Difference:
    """Something other than speed that differs between A and B (``what``: blas, node_type,
    conditions)."""

    what: str
    a: tuple[str, ...]
    b: tuple[str, ...]

    def message(self) -> str:
        a = ", ".join(self.a) or "unknown"
        b = ", ".join(self.b) or "unknown"
        return f"{self.what.replace('_', ' ')} differs: A has {a}; B has {b}"

    def to_json(self) -> dict[str, Any]:
        return {"what": self.what, "a": list(self.a), "b": list(self.b)}


@dataclass(frozen=True)
class Comparison:
    """Every point of A against B, what else differs, and the rule that judged them."""

    rows: tuple[Row, ...]
    differences: tuple[Difference, ...]
    tolerance: float
    confidence: float = CONFIDENCE

    @property
    def regressions(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.verdict == REGRESSION)

    def to_json(self) -> dict[str, Any]:
        return {
            "tolerance": self.tolerance,
            "confidence": self.confidence,
            "regressions": len(self.regressions),
            "differences": [d.to_json() for d in self.differences],
            "rows": [r.to_json() for r in self.rows],
        }


def compare(
    a: Sequence[Point],
    b: Sequence[Point],
    *,
    tolerance: float = REGRESSION_TOLERANCE,
    resamples: int = _RESAMPLES,
    seed: int = 0,
    floors: dict[tuple[str, int, int], float] | None = None,
) -> Comparison:
    """Compare the points of A and B key by key (see the module's docstring); ``floors``
    are the noise floors by (dtype, n, threads) (``noise_floors``).

    When each side holds a single node type and they differ, points are matched on
    (dtype, n, threads) and the node types are listed as a difference. The bootstrap uses
    a fixed ``seed``, so the same data always gives the same answer.
    """
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance}")
    types_a = sorted({p.node_type for p in a})
    types_b = sorted({p.node_type for p in b})
    differences = []
    cross = len(types_a) == 1 and len(types_b) == 1 and types_a != types_b
    if cross:
        differences.append(Difference("node_type", tuple(types_a), tuple(types_b)))
    blas_a = tuple(sorted({p.blas for p in a if p.blas}))
    blas_b = tuple(sorted({p.blas for p in b if p.blas}))
    if blas_a != blas_b:
        differences.append(Difference("blas", blas_a, blas_b))
    verdicts_a = tuple(sorted({p.verdict or "not judged" for p in a}))
    verdicts_b = tuple(sorted({p.verdict or "not judged" for p in b}))
    if verdicts_a != verdicts_b:
        differences.append(Difference("conditions", verdicts_a, verdicts_b))
    kernels_a = tuple(sorted({p.blas_kernel for p in a if p.blas_kernel}))
    kernels_b = tuple(sorted({p.blas_kernel for p in b if p.blas_kernel}))
    if kernels_a != kernels_b:
        differences.append(Difference("blas_kernel", kernels_a, kernels_b))
    label = f"{types_a[0]} -> {types_b[0]}" if cross else None
    groups_a = _groups(a, label)
    groups_b = _groups(b, label)
    keys = sorted(set(groups_a) | set(groups_b))
    figures = _figures([groups_a.get(k) for k in keys] + [groups_b.get(k) for k in keys],
                       resamples, seed)  # fmt: skip
    rows = []
    for i, key in enumerate(keys):
        fa, fb = figures[i], figures[len(keys) + i]
        noise = (floors or {}).get(key[1:], 0.0)
        rows.append(_row(key, fa, fb, tolerance, noise))
    return Comparison(tuple(rows), tuple(differences), tolerance)


def _groups(points: Iterable[Point], label: str | None) -> dict[Key, list[Point]]:
    groups: defaultdict[Key, list[Point]] = defaultdict(list)
    for p in points:
        groups[(label or p.node_type, p.dtype, p.n, p.threads)].append(p)
    return groups


def _width(f: Figure) -> float:
    return (f.high - f.low) / f.gflops if f.gflops > 0 else float("inf")


def _row(key: Key, a: Figure | None, b: Figure | None, tolerance: float, noise: float = 0.0) -> Row:
    change = None
    floor, source = (noise, "history") if noise > tolerance else (tolerance, "tolerance")
    if a is None or b is None:
        verdict = ONLY_B if a is None else ONLY_A
    else:
        change = b.gflops / a.gflops - 1 if a.gflops > 0 else None
        if change is None or abs(change) <= floor:
            verdict = SAME
        elif change < 0 and b.high < a.low:
            too_wide = max(floor, _width(a), _width(b)) > TOO_VARIABLE
            verdict = VARIABLE if too_wide else REGRESSION
        elif change < 0:
            verdict = SLOWER
        else:
            verdict = FASTER if b.low > a.high else SAME
    return Row(*key, a=a, b=b, change=change, verdict=verdict, floor=floor, floor_source=source)


#: the median of |change| is 0.674 sigma for normal noise; 1.96 sigma bounds 95% of changes
_FLOOR_PER_MEDIAN = 1.96 / 0.6745


def noise_floors(history: Sequence[Point]) -> dict[tuple[str, int, int], float]:
    """How far each (dtype, n, threads) moves between consecutive quiet calibrations in
    ``history`` when nothing changed: the change that 95% of such pairs stay within,
    estimated robustly from the median of their absolute relative changes (a point needs
    at least two pairs)."""
    figures: defaultdict[tuple[str, int, int], dict[int, list[float]]] = defaultdict(dict)
    for p in sorted(history, key=lambda p: (p.created_at, p.calibration_id)):
        if p.verdict == "quiet":
            figures[(p.dtype, p.n, p.threads)].setdefault(p.calibration_id, []).append(p.gflops)
    floors = {}
    for key, by_calibration in figures.items():
        values = [statistics.median(v) for v in by_calibration.values()]
        changes = [abs(b / a - 1) for a, b in pairwise(values) if a > 0]
        if len(changes) >= 2:
            floors[key] = _FLOOR_PER_MEDIAN * statistics.median(changes)
    return floors


def _host_values(points: Sequence[Point]) -> tuple[bool, list[list[float]]]:
    """Per host, what its spread is drawn from: its calibrations' figures when it has
    several, else its one calibration's worker runs, else that one process's samples; and
    whether every host's values are worker runs (whose figure is their harmonic mean, the
    mean time, so that is what is resampled)."""
    by_host: defaultdict[str, list[Point]] = defaultdict(list)
    for p in points:
        by_host[p.hostname or f"job {p.job_id}"].append(p)
    values, all_runs = [], True
    for _, runs in sorted(by_host.items()):
        if len(runs) > 1:
            values.append([p.gflops for p in runs])
            all_runs = False
        elif len(runs[0].runs) > 1:
            values.append(list(runs[0].runs))
        else:
            values.append(sample_gflops(runs[0].n, runs[0].samples) or [runs[0].gflops])
            all_runs = False
    return all_runs, sorted(values, key=len)


def _figures(
    groups: Sequence[list[Point] | None], resamples: int, seed: int
) -> list[Figure | None]:
    """Each group's figure and bootstrap interval.

    The figure is the median over hosts of each host's median run. The bootstrap keeps the
    hosts (both sides usually measured the same nodes: which nodes they are is not noise)
    and resamples within each host, then takes the median over hosts again. Groups of the
    same shape are resampled together, in chunks, so that numpy does the loops.
    """
    import numpy as np

    shapes: defaultdict[tuple[bool, tuple[int, ...]], list[tuple[int, list[list[float]]]]]
    shapes = defaultdict(list)
    for i, points in enumerate(groups):
        if points:
            runs, values = _host_values(points)
            shapes[(runs, tuple(len(v) for v in values))].append((i, values))
    rng = np.random.default_rng(seed)
    quantiles = [(1 - CONFIDENCE) / 2 * 100, (1 + CONFIDENCE) / 2 * 100]
    bounds: dict[int, tuple[float, float]] = {}
    for (runs, shape), members in sorted(shapes.items()):
        per_chunk = max(1, _CHUNK // (resamples * sum(shape)))
        for start in range(0, len(members), per_chunk):
            chunk = members[start : start + per_chunk]
            host_medians = []
            for length in sorted(set(shape)):  # hosts with as many values resample together
                hosts = [h for h, size in enumerate(shape) if size == length]
                data = np.array([[values[h] for h in hosts] for _, values in chunk])
                picks = rng.integers(0, length, size=(len(chunk), resamples, len(hosts), length))
                drawn = np.take_along_axis(data[:, None, :, :], picks, axis=3)
                if runs:  # the harmonic mean: what the runs' figure is
                    host_medians.append(1.0 / np.mean(1.0 / drawn, axis=-1))
                else:
                    host_medians.append(_median_last(drawn))
            medians = _median_last(np.concatenate(host_medians, axis=2))
            lows, highs = np.percentile(medians, quantiles, axis=1)
            for (i, _), lo, hi in zip(chunk, lows, highs, strict=True):
                bounds[i] = (float(lo), float(hi))
    figures: list[Figure | None] = []
    for i, points in enumerate(groups):
        if not points:
            figures.append(None)
            continue
        by_host: defaultdict[str, list[float]] = defaultdict(list)
        for p in points:
            by_host[p.hostname or f"job {p.job_id}"].append(p.gflops)
        median = statistics.median(statistics.median(v) for v in by_host.values())
        lo, hi = bounds[i]
        figures.append(
            Figure(
                gflops=median,
                low=min(lo, median),
                high=max(hi, median),
                measurements=len(points),
                samples=sum(len(p.samples) or 1 for p in points),
            )
        )
    return figures


def _median_last(array: Any) -> Any:
    """The median along the last axis, by sorting: on many short rows numpy's sort is
    several times faster than its median."""
    import numpy as np

    ordered = np.sort(array, axis=-1)
    size = ordered.shape[-1]
    return (ordered[..., (size - 1) // 2] + ordered[..., size // 2]) / 2
