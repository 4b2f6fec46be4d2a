"""Points whose runs split into states: said, with the figure of each state, not hidden.

Some machines (a VM whose vCPUs the host moves) run a point at one speed in one process and
at another in the next. A point is ``unstable`` when its runs' figures span more than
``UNSTABLE_RATIO`` (fastest over slowest) and that gap is more than the runs' own samples
can explain. Its runs are split at the widest gap between neighbouring figures into a slow
and a fast state, each with its figure (the harmonic mean of its runs) and how many runs
saw it.

Adoption rule: the choice is derived again with every unstable point in its slow state,
then in its fast state. If each size class chooses the same count in both, the choice
holds in every state and the calibration is judged as usual; if not, the conditions say
which class flips and the calibration counts as noisy: its preset is adopted where no clean
one exists (so a node that is always unstable still gets one) and does not replace a clean
one.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from profiler.results import Measurement, gemm_flops
from profiler.stats import differs, uncertainty

__all__ = ["UNSTABLE_RATIO", "choice_flips", "unstable_points"]

#: runs of one point whose fastest is this much above the slowest may be in two states
UNSTABLE_RATIO = 1.25


def _split(m: Measurement) -> tuple[list[int], list[int]] | None:
    """The run indexes of the slow and the fast state, or None when the runs agree."""
    if m.workers != 1 or len(m.runs) < 2:
        return None
    figures = m.run_gflops
    order = sorted(range(len(figures)), key=figures.__getitem__)
    slowest, fastest = order[0], order[-1]
    if figures[fastest] < figures[slowest] * UNSTABLE_RATIO:
        return None
    if not differs(
        figures[fastest], uncertainty(m.runs[fastest].samples),
        figures[slowest], uncertainty(m.runs[slowest].samples),
    ):  # fmt: skip
        return None
    gaps = [figures[order[i + 1]] / figures[order[i]] for i in range(len(order) - 1)]
    cut = gaps.index(max(gaps)) + 1
    return order[:cut], order[cut:]


def _state(m: Measurement, indexes: Sequence[int]) -> Measurement:
    runs = tuple(m.runs[i] for i in indexes)
    mean = statistics.fmean(r.median_s for r in runs)
    return replace(m, runs=runs, median_s=mean, gflops=gemm_flops(m.n) / mean / 1e9)


def unstable_points(measurements: Sequence[Measurement]) -> list[dict[str, Any]]:
    """Each unstable point: where it is, and the figure of each state and its runs."""
    found = []
    for m in measurements:
        split = _split(m)
        if split is None:
            continue
        states = [_state(m, part) for part in split]
        found.append(
            {
                "n": m.n, "dtype": m.dtype, "threads": m.threads,
                "states": [{"gflops": round(s.gflops, 2), "runs": len(s.runs)} for s in states],
                "runs": len(m.runs),
            }
        )  # fmt: skip
    return found


def choice_flips(
    measurements: Sequence[Measurement], *, node_type: str, calibrated_cpus: int, tolerance: float
) -> list[str]:
    """The size classes whose count differs between the slow and the fast state of the
    unstable points (none: the choice holds in every state), each said in a few words."""
    from profiler.choice.preset import derive

    splits = {i: _split(m) for i, m in enumerate(measurements)}
    if not any(splits.values()):
        return []
    chosen = []
    for side in (0, 1):
        points = [
            _state(m, split[side]) if (split := splits[i]) else m
            for i, m in enumerate(measurements)
        ]
        preset = derive(
            points, node_type=node_type, calibrated_cpus=calibrated_cpus, tolerance=tolerance
        )
        chosen.append({c.name: c.threads for c in preset.size_classes})
    slow, fast = chosen
    return [
        f"{name}: {slow[name]} threads in the slow state, {fast.get(name)} in the fast"
        for name in slow
        if slow[name] != fast.get(name)
    ]
