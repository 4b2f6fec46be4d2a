"""Which nodes of a type are slower than their siblings: robust outliers over latest figures.

Each node brings its latest figures, one GFLOP/s per (dtype, n, threads). For every point
measured by enough nodes the type's median is the reference; a node's standing is the
median, over its points, of its figure over that reference (1.0: typical, 0.8: 20% slower).
Across the nodes of a type, a node is a suspect when its standing lies below the type's
median standing by more than ``threshold`` robust standard deviations (1.4826 x the median
absolute deviation, the Iglewicz-Hoaglin rule) and by more than ``floor``, so that a fleet
of near-identical nodes does not flag a node for a fraction of a percent.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from profiler.settings import SLOW_NODE_FLOOR
from profiler.stats import robust_sigma

__all__ = ["MIN_NODES", "FleetReport", "NodeFigures", "NodeStanding", "standings"]

#: fewer nodes than this and no node is judged
MIN_NODES = 3
#: robust standard deviations below the median
THRESHOLD = 3.5

PointKey = tuple[str, int, int]


@dataclass(frozen=True)
class NodeFigures:
    """A node's latest stored figures: GFLOP/s per (dtype, n, threads) of its newest job."""

    node_type: str
    hostname: str
    calibration_id: int
    job_id: int
    finished_at: dt.datetime | None
    blas: str
    figures: dict[PointKey, float]


@dataclass(frozen=True)
class NodeStanding:
    """How one node compares with its type: standing (its figures over the type's medians),
    how far that is from the type's typical standing, and whether it is a suspect."""

    node: NodeFigures
    standing: float | None
    off: float | None
    robust_z: float | None
    points: int
    suspect: bool
    reference: float | None

    def to_json(self) -> dict[str, Any]:
        n = self.node
        return {
            "node_type": n.node_type,
            "hostname": n.hostname,
            "calibration_id": n.calibration_id,
            "job_id": n.job_id,
            "finished_at": n.finished_at.isoformat() if n.finished_at else None,
            "blas": n.blas,
            "standing": self.standing,
            "off": self.off,
            "robust_z": self.robust_z,
            "points_compared": self.points,
            "suspect": self.suspect,
            "reference_gflops": self.reference,
            "figures": [
                {"dtype": d, "n": size, "threads": t, "gflops": g}
                for (d, size, t), g in sorted(n.figures.items())
            ],
        }


@dataclass(frozen=True)
class FleetReport:
    """One node type: every node's standing, the margin used, and the reference point."""

    node_type: str
    nodes: tuple[NodeStanding, ...]
    margin: float | None
    reference_point: PointKey | None
    reference_median: float | None
    note: str = ""

    @property
    def suspects(self) -> tuple[NodeStanding, ...]:
        return tuple(s for s in self.nodes if s.suspect)

    def to_json(self) -> dict[str, Any]:
        ref = self.reference_point
        return {
            "node_type": self.node_type,
            "margin": self.margin,
            "reference_point": (
                {
                    "dtype": ref[0],
                    "n": ref[1],
                    "threads": ref[2],
                    "median_gflops": self.reference_median,
                }
                if ref
                else None
            ),
            "note": self.note,
            "suspects": [s.node.hostname for s in self.suspects],
            "nodes": [s.to_json() for s in self.nodes],
        }


def standings(
    nodes: Sequence[NodeFigures],
    *,
    threshold: float = THRESHOLD,
    floor: float = SLOW_NODE_FLOOR,
    min_nodes: int = MIN_NODES,
) -> list[FleetReport]:
    """One report per node type, nodes slowest first (see the module's docstring)."""
    by_type: defaultdict[str, list[NodeFigures]] = defaultdict(list)
    for node in nodes:
        by_type[node.node_type].append(node)
    return [
        _judge_type(name, members, threshold, floor, min_nodes)
        for name, members in sorted(by_type.items())
    ]


def _judge_type(
    name: str, nodes: list[NodeFigures], threshold: float, floor: float, min_nodes: int
) -> FleetReport:
    values: defaultdict[PointKey, list[float]] = defaultdict(list)
    for node in nodes:
        for key, gflops in node.figures.items():
            if gflops > 0:
                values[key].append(gflops)
    needed = min(min_nodes, len(nodes))
    medians = {k: statistics.median(v) for k, v in values.items() if len(v) >= needed}
    reference = max(medians, key=lambda k: (len(values[k]), medians[k]), default=None)
    standings: list[float | None] = []
    counts = []
    for node in nodes:
        ratios = [g / medians[k] for k, g in node.figures.items() if k in medians and g > 0]
        standings.append(statistics.median(ratios) if ratios else None)
        counts.append(len(ratios))
    judged = [s for s in standings if s is not None]
    margin = None
    note = ""
    if len(judged) < min_nodes:
        note = f"{len(judged)} node(s) with figures: at least {min_nodes} are needed to judge"
        centre, spread = (statistics.median(judged) if judged else None), None
    else:
        centre = statistics.median(judged)
        spread = robust_sigma(judged, centre)
        margin = max(floor, threshold * spread / centre)
    result = []
    for node, standing, count in zip(nodes, standings, counts, strict=True):
        off = standing / centre - 1 if standing is not None and centre else None
        z = (standing - centre) / spread if standing is not None and centre and spread else None
        suspect = margin is not None and off is not None and off < -margin
        result.append(
            NodeStanding(
                node=node,
                standing=standing,
                off=off,
                robust_z=z,
                points=count,
                suspect=suspect,
                reference=node.figures.get(reference) if reference else None,
            )
        )
    result.sort(key=lambda s: (s.off is None, s.off if s.off is not None else 0, s.node.hostname))
    return FleetReport(
        node_type=name,
        nodes=tuple(result),
        margin=margin,
        reference_point=reference,
        reference_median=medians.get(reference) if reference else None,
        note=note,
    )
