"""Choosing a thread count from measured curves: the one rule every choice in blasprof uses.

A size class holds several curves (one per measured size and dtype, GFLOP/s against
threads). The count chosen is the smallest one that is as good as the best on every curve:
within ``tolerance`` of the curve's best, or within the measured spread of it (a
difference the spread cannot tell from noise never decides, so the smaller count wins the
tie). Where no count is that good on every curve, the count with the smallest worst-case
loss wins, and the choice says which curve loses how much.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from profiler.results import Measurement
from profiler.stats import differs

__all__ = ["Choice", "Curve", "choose", "curves_of"]

#: a curve: thread count -> the point measured there
Curve = Mapping[int, Measurement]


@dataclass(frozen=True)
class Choice:
    """The count chosen for some curves, how each curve fares with it, and whether every
    curve stays within the tolerance (or the spread) of its own best."""

    threads: int
    within_tolerance: bool
    #: per curve key, the loss at the chosen count relative to that curve's best (0 = best)
    losses: Mapping[tuple[int, str], float]

    def worst_loss(self, dtype: str | None = None) -> float:
        """The largest loss over the curves (of ``dtype`` if given)."""
        values = [v for (_n, d), v in self.losses.items() if dtype in (None, d)]
        return max(values, default=0.0)


def curves_of(points: Sequence[Measurement]) -> dict[tuple[int, str], dict[int, Measurement]]:
    """Points grouped into curves keyed by (n, dtype); of two points at one count, the faster."""
    curves: dict[tuple[int, str], dict[int, Measurement]] = {}
    for m in points:
        curve = curves.setdefault((m.n, m.dtype), {})
        if m.threads not in curve or m.gflops > curve[m.threads].gflops:
            curve[m.threads] = m
    return curves


def _as_good(point: Measurement, best: Measurement, tolerance: float) -> bool:
    if point.gflops >= best.gflops * (1 - tolerance):
        return True
    return not differs(point.gflops, point.uncertainty, best.gflops, best.uncertainty)


def choose(curves: Mapping[tuple[int, str], Curve], tolerance: float) -> Choice:
    """The count for ``curves``: the smallest as good as the best on every curve, else the
    one with the smallest worst-case loss (the smaller count on a tie).

    Only counts measured on every curve are candidates; a search measures its coarse
    ladder on every curve, so there always are some.
    """
    if not curves:
        raise ValueError("no curves to choose a thread count from")
    best = {key: max(curve.values(), key=lambda m: m.gflops) for key, curve in curves.items()}
    common = set.intersection(*(set(curve) for curve in curves.values()))
    if not common:
        common = set.union(*(set(curve) for curve in curves.values()))

    def losses(t: int) -> dict[tuple[int, str], float]:
        out = {}
        for key, curve in curves.items():
            point = curve.get(t)
            out[key] = 1.0 if point is None else max(0.0, 1 - point.gflops / best[key].gflops)
        return out

    def good_everywhere(t: int) -> bool:
        return all(
            t in curve and _as_good(curve[t], best[key], tolerance) for key, curve in curves.items()
        )

    feasible = sorted(t for t in common if good_everywhere(t))
    if feasible:
        return Choice(feasible[0], True, losses(feasible[0]))
    # Losses within a thousandth are a tie, which the smaller count wins.
    threads = min(common, key=lambda t: (round(max(losses(t).values()), 3), t))
    return Choice(threads, False, losses(threads))
