"""From measurements to a preset: threads per size class and per job layout.

This module owns the choice (``derive``) and the preset record; ``profiler.render`` turns a
preset into files that job scripts source or import.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from profiler.budget import threads_for
from profiler.results import Measurement
from profiler.settings import DEFAULT_TOLERANCE

__all__ = ["Layout", "Preset", "SizeClass", "derive"]


@dataclass(frozen=True)
class SizeClass:
    """GEMMs of order up to ``max_n`` (inclusive; None: no bound) run on ``threads``."""

    name: str
    max_n: int | None
    measured_n: int
    threads: int
    gflops: float
    best_threads: int
    best_gflops: float
    per_dtype: dict[str, int]


@dataclass(frozen=True)
class Layout:
    """A job layout: ``workers`` processes sharing the CPUs, ``threads`` each.

    ``size_class`` None: the row holds for every class. ``gflops`` is the measured aggregate
    of the layout and ``oversubscribed_gflops`` that of the same processes left at the
    BLAS default; both None when the row was not measured.
    """

    workers: int
    threads: int
    size_class: str | None = None
    gflops: float | None = None
    oversubscribed_gflops: float | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Layout:
        return cls(
            workers=int(d["workers"]),
            threads=int(d["threads"]),
            size_class=d.get("size_class"),
            gflops=d.get("gflops"),
            oversubscribed_gflops=d.get("oversubscribed_gflops"),
        )


@dataclass(frozen=True)
class Preset:
    """The thread settings chosen for one node type."""

    node_type: str
    calibrated_cpus: int
    tolerance: float
    default_class: str
    size_classes: tuple[SizeClass, ...]
    layouts: tuple[Layout, ...]
    calibration_id: int | None = None
    created_at: str = ""
    blas: str = ""
    cpu_model: str = ""
    logical_cpus: int = 0
    partitions: tuple[str, ...] = ()
    #: the thread variables the calibrated BLAS reads (``profiler.budget.obeyed_variables``);
    #: empty: not known
    variables: tuple[str, ...] = ()
    #: node-type rules at job start besides partitions: Slurm features a job may ask for
    #: (``--constraint``) and hostname patterns (``*`` and ``?`` wildcards)
    features: tuple[str, ...] = ()
    hostnames: tuple[str, ...] = ()

    @property
    def default_threads(self) -> int:
        return self.size_class(self.default_class).threads

    def size_class(self, name: str) -> SizeClass:
        for size_class in self.size_classes:
            if size_class.name == name:
                return size_class
        names = ", ".join(c.name for c in self.size_classes)
        raise KeyError(f"unknown size class {name!r}; this preset has: {names}")

    def layout_table(self) -> dict[str, tuple[tuple[int, int], ...]]:
        """Per size class, the (workers, threads per process) rows, ascending in workers.

        The first row is always one process with the class's own count (a layout row for
        one worker does not override it). A row measured for the class wins; a row for
        every class (``size_class`` None) never gives more than the class's own count.
        This table is what every rendered form embeds; ``calibrated_threads`` reads it.
        """
        table = {}
        for c in self.size_classes:
            rows = {1: c.threads}
            for row in self.layouts:
                if row.workers > 1 and row.size_class == c.name:
                    rows[row.workers] = row.threads  # measured for this class
                elif row.workers > 1 and row.size_class is None:
                    rows.setdefault(row.workers, min(row.threads, c.threads))
            table[c.name] = tuple(sorted(rows.items()))
        return table

    def calibrated_threads(self, size_class: str, workers: int) -> int:
        """Threads per process the calibration chose for ``workers`` processes running
        GEMMs of ``size_class``: the row with the most workers not above ``workers``.
        The job's share of CPUs (``profiler.budget.threads_for``) caps it further."""
        rows = self.layout_table()[self.size_class(size_class).name]
        return [t for w, t in rows if w <= max(1, workers)][-1]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["default_threads"] = self.default_threads
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preset:
        return cls(
            node_type=d["node_type"],
            calibrated_cpus=int(d["calibrated_cpus"]),
            tolerance=float(d["tolerance"]),
            default_class=d["default_class"],
            size_classes=tuple(SizeClass(**c) for c in d["size_classes"]),
            layouts=tuple(Layout.from_dict(x) for x in d["layouts"]),
            calibration_id=d.get("calibration_id"),
            created_at=d.get("created_at", ""),
            blas=d.get("blas", ""),
            cpu_model=d.get("cpu_model", ""),
            logical_cpus=int(d.get("logical_cpus", 0)),
            partitions=tuple(d.get("partitions", ())),
            variables=tuple(d.get("variables") or ()),
            features=tuple(d.get("features") or ()),
            hostnames=tuple(d.get("hostnames") or ()),
        )


def _class_names(count: int) -> list[str]:
    if count == 1:
        return ["all"]
    if count == 2:
        return ["small", "large"]
    if count == 3:
        return ["small", "medium", "large"]
    return [f"c{i}" for i in range(count)]


def derive(
    measurements: Iterable[Measurement],
    *,
    node_type: str,
    calibrated_cpus: int,
    tolerance: float = DEFAULT_TOLERANCE,
    calibration_id: int | None = None,
    created_at: str = "",
    blas: str = "",
    cpu_model: str = "",
    logical_cpus: int = 0,
    partitions: tuple[str, ...] = (),
) -> Preset:
    """Choose, per measured size, the smallest thread count within ``tolerance`` of the best.

    Sizes become classes whose bounds are the geometric means between neighbouring
    measured sizes. Across dtypes a class takes the largest of the per-dtype choices, so no
    measured dtype runs slower than ``tolerance`` below its best for want of threads.
    Points whose thread limit did not hold are ignored. The default class is the largest
    size: where BLAS time goes in a job that has large GEMMs at all.
    """
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance}")
    usable = [m for m in measurements if m.threads_verified and m.gflops > 0]
    if not usable:
        raise ValueError("no verified measurements to derive a preset from")

    by_size: dict[int, dict[str, list[Measurement]]] = {}
    for m in usable:
        by_size.setdefault(m.n, {}).setdefault(m.dtype, []).append(m)
    sizes = sorted(by_size)
    names = _class_names(len(sizes))
    classes = []
    for i, n in enumerate(sizes):
        per_dtype: dict[str, int] = {}
        chosen_points: list[Measurement] = []
        best_points: list[Measurement] = []
        for dtype, points in sorted(by_size[n].items()):
            best = _best_per_threads(points)
            top = max(best.values(), key=lambda m: m.gflops)
            good = [m for m in best.values() if m.gflops >= top.gflops * (1 - tolerance)]
            pick = min(good, key=lambda m: m.threads)
            per_dtype[dtype] = pick.threads
            chosen_points.append(pick)
            best_points.append(top)
        threads = max(per_dtype.values())
        reference = _reference_dtype(per_dtype)
        chosen = next(m for m in chosen_points if m.dtype == reference)
        top = next(m for m in best_points if m.dtype == reference)
        chosen_at_threads = _best_per_threads(by_size[n][reference]).get(threads, chosen)
        max_n = math.isqrt(n * sizes[i + 1]) if i + 1 < len(sizes) else None
        classes.append(
            SizeClass(
                name=names[i],
                max_n=max_n,
                measured_n=n,
                threads=threads,
                gflops=chosen_at_threads.gflops,
                best_threads=top.threads,
                best_gflops=top.gflops,
                per_dtype=per_dtype,
            )
        )
    largest = classes[-1].threads
    layouts = tuple(
        Layout(w, threads_for(largest, calibrated_cpus, w)) for w in _worker_counts(calibrated_cpus)
    )
    return Preset(
        node_type=node_type,
        calibrated_cpus=calibrated_cpus,
        tolerance=tolerance,
        default_class=classes[-1].name,
        size_classes=tuple(classes),
        layouts=layouts,
        calibration_id=calibration_id,
        created_at=created_at,
        blas=blas,
        cpu_model=cpu_model,
        logical_cpus=logical_cpus,
        partitions=partitions,
    )


def _best_per_threads(points: Sequence[Measurement]) -> dict[int, Measurement]:
    """One point per thread count: the fastest, when a count was measured twice."""
    best: dict[int, Measurement] = {}
    for m in points:
        if m.threads not in best or m.gflops > best[m.threads].gflops:
            best[m.threads] = m
    return best


def _reference_dtype(per_dtype: dict[str, int]) -> str:
    return "float64" if "float64" in per_dtype else sorted(per_dtype)[0]


def _worker_counts(cpus: int) -> list[int]:
    counts = {1, cpus}
    w = 2
    while w < cpus:
        counts.add(w)
        w *= 2
    return sorted(counts)
