"""From measurements to a preset: threads per size class and per job layout.

Size classes have fixed names and bounds (``SIZE_CLASSES``), whatever was measured: a
calibration that measured some classes updates only those and keeps the others, each with
the calibration it came from. Within a class the count is chosen by ``profiler.choice.rule``
over every measured (size, dtype) curve of the class. Layout rows (W processes x T threads)
come from measured layouts where there are some, else they are derived from the class's
count and the CPUs. ``profiler.jobstart.forms`` turns a preset into the files jobs load.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from profiler.choice.rule import choose, curves_of
from profiler.results import Measurement
from profiler.settings import CHOICE_TOLERANCE

__all__ = [
    "threads_for",
    "LAYOUT_PHASE",
    "OVERSUBSCRIBED_PHASE",
    "SIZE_CLASSES",
    "Layout",
    "LibraryPreset",
    "Preset",
    "SizeClass",
    "class_of",
    "derive",
    "worker_counts",
]

#: (name, largest matrix order n of the class); the last has no bound
SIZE_CLASSES: tuple[tuple[str, int | None], ...] = (
    ("small", 256),
    ("medium", 1024),
    ("large", 4096),
    ("huge", None),
)
_CLASS_ORDER = {name: i for i, (name, _) in enumerate(SIZE_CLASSES)}
#: the phase of layout points: W processes of T threads; and of their contrast, each
#: process left at the BLAS default (every CPU)
LAYOUT_PHASE = "layout"
OVERSUBSCRIBED_PHASE = "layout-oversubscribed"


def threads_for(calibrated: int, cpus: int, workers: int = 1) -> int:
    """Threads per process of a layout row: the calibrated count, never more than the
    process's share (the job-start rule, ``profiler.jobstart.budget.plan``, caps it the same way).

    Oversubscription is the expensive mistake (idle OpenBLAS threads spin), so a job that
    runs ``workers`` processes on ``cpus`` CPUs gets at most ``cpus // workers`` each.
    """
    share = max(1, cpus // max(1, workers))
    return max(1, min(calibrated, share))


def class_of(n: int) -> tuple[str, int | None]:
    """The size class (name, bound) a GEMM of order ``n`` belongs to."""
    for name, bound in SIZE_CLASSES:
        if bound is None or n <= bound:
            return name, bound
    raise AssertionError("the last size class has no bound")


@dataclass(frozen=True)
class SizeClass:
    """GEMMs of order up to ``max_n`` (inclusive; None: no bound) run on ``threads``.

    ``gflops``, ``best_threads`` and ``best_gflops`` are those of the reference curve
    (float64 at ``measured_n``, the largest size measured in the class); ``losses`` holds,
    per dtype, the worst loss at ``threads`` against that dtype's best, and
    ``within_tolerance`` whether every curve stayed within the tolerance (or its spread).
    """

    name: str
    max_n: int | None
    measured_n: int
    threads: int
    gflops: float
    best_threads: int
    best_gflops: float
    dtypes: tuple[str, ...] = ()
    sizes: tuple[int, ...] = ()
    losses: dict[str, float] = field(default_factory=dict)
    within_tolerance: bool = True
    #: the calibration whose measurements chose this class's count
    calibration_id: int | None = None

    @property
    def reference_dtype(self) -> str:
        return "float64" if "float64" in self.dtypes or not self.dtypes else sorted(self.dtypes)[0]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SizeClass:
        d = dict(d)
        legacy = d.pop("per_dtype", None)  # presets stored before classes had losses
        if legacy is not None and "dtypes" not in d:
            d["dtypes"] = tuple(sorted(legacy))
        d["dtypes"] = tuple(d.get("dtypes", ()))
        d["sizes"] = tuple(d.get("sizes", ()) or (d["measured_n"],))
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


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
class LibraryPreset:
    """A calibrated BLAS library besides the preset's default one: its size classes, chosen
    from its own curves, and the thread variables it obeys, strongest first. Layout rows
    are the default library's only; at job start this library's count is its class's,
    capped by the process's share (``profiler.jobstart.budget``)."""

    label: str
    variables: tuple[str, ...]
    size_classes: tuple[SizeClass, ...]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LibraryPreset:
        return cls(
            label=d["label"],
            variables=tuple(d.get("variables") or ()),
            size_classes=tuple(SizeClass.from_dict(c) for c in d["size_classes"]),
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
    #  the thread variables the calibrated BLAS reads
    # (``profiler.jobstart.budget.obeyed_variables``);  empty: not known
    variables: tuple[str, ...] = ()
    #: node-type rules at job start besides partitions: Slurm features a job may ask for
    #: (``--constraint``) and hostname patterns (``*`` and ``?`` wildcards)
    features: tuple[str, ...] = ()
    hostnames: tuple[str, ...] = ()
    #: the library whose curves chose ``size_classes`` and ``layouts`` (numpy's OpenBLAS
    #: unless a calibration measured others only)
    default_blas: str = "numpy"
    #: every other calibrated library; a preset stored before they existed has none
    libraries: tuple[LibraryPreset, ...] = ()

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
        This table is what every rendered form embeds; ``profiler.jobstart.budget.plan`` reads it.
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
            size_classes=tuple(SizeClass.from_dict(c) for c in d["size_classes"]),
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
            default_blas=d.get("default_blas") or "numpy",
            libraries=tuple(LibraryPreset.from_dict(x) for x in d.get("libraries") or ()),
        )


def derive(
    measurements: Iterable[Measurement],
    *,
    node_type: str,
    calibrated_cpus: int,
    tolerance: float = CHOICE_TOLERANCE,
    calibration_id: int | None = None,
    created_at: str = "",
    blas: str = "",
    cpu_model: str = "",
    logical_cpus: int = 0,
    partitions: tuple[str, ...] = (),
    previous: Preset | None = None,
    default_blas: str = "numpy",
    variables: dict[str, tuple[str, ...]] | None = None,
) -> Preset:
    """The preset these measurements choose, over ``previous`` for the classes not measured.

    Points whose thread limit did not hold are ignored. The default class is ``large``
    when the preset has it, else its largest: where BLAS time goes in a job that has large
    GEMMs at all. Points are grouped by their library (``Measurement.blas``): those of
    ``default_blas`` (else of the first label measured) choose the size classes and layout
    rows; every other library gets its own size classes, with the thread variables
    ``variables`` gives for its label (strongest first).
    """
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance}")
    groups: dict[str, list[Measurement]] = {}
    for m in measurements:
        if m.threads_verified and m.gflops > 0:
            groups.setdefault(m.blas, []).append(m)
    default_blas = default_blas if default_blas in groups else min(groups, default=default_blas)
    usable = groups.pop(default_blas, [])
    libraries = _libraries(groups, variables or {}, tolerance, calibration_id, previous)
    sweep = [m for m in usable if m.workers == 1 and m.phase not in _LAYOUT_PHASES]
    if not sweep:
        raise ValueError("no verified measurements to derive a preset from")
    by_class: dict[str, list[Measurement]] = {}
    for m in sweep:
        by_class.setdefault(class_of(m.n)[0], []).append(m)
    classes = {
        name: _size_class(name, points, tolerance, calibration_id)
        for name, points in by_class.items()
    }
    layouts = [row for row in _measured_layouts(usable, tolerance) if row.size_class in classes]
    if previous is not None:
        for old in previous.size_classes:
            if old.name in _CLASS_ORDER and old.name not in classes:
                origin = old.calibration_id or previous.calibration_id
                classes[old.name] = dataclasses.replace(old, calibration_id=origin)
                layouts += [r for r in previous.layouts if r.size_class == old.name]
    ordered = tuple(sorted(classes.values(), key=lambda c: _CLASS_ORDER[c.name]))
    default = "large" if "large" in classes else ordered[-1].name
    derived = classes[default].threads
    layouts += [
        Layout(w, threads_for(derived, calibrated_cpus, w))
        for w in (1, *worker_counts(calibrated_cpus))
    ]
    return Preset(
        node_type=node_type,
        calibrated_cpus=calibrated_cpus,
        tolerance=tolerance,
        default_class=default,
        size_classes=ordered,
        layouts=tuple(layouts),
        calibration_id=calibration_id,
        created_at=created_at,
        blas=blas,
        cpu_model=cpu_model,
        logical_cpus=logical_cpus,
        partitions=partitions,
        default_blas=default_blas,
        libraries=libraries,
    )


def _libraries(
    groups: dict[str, list[Measurement]],
    variables: dict[str, tuple[str, ...]],
    tolerance: float,
    calibration_id: int | None,
    previous: Preset | None,
) -> tuple[LibraryPreset, ...]:
    """Each other library's size classes from its own sweep points, over ``previous``'s
    for the classes (and libraries) not measured this time."""
    old = {lib.label: lib for lib in previous.libraries} if previous is not None else {}
    found = {}
    for label, points in groups.items():
        by_class: dict[str, list[Measurement]] = {}
        for m in points:
            if m.workers == 1 and m.phase not in _LAYOUT_PHASES:
                by_class.setdefault(class_of(m.n)[0], []).append(m)
        classes = {
            name: _size_class(name, pts, tolerance, calibration_id)
            for name, pts in by_class.items()
        }
        before = old.get(label)
        for c in before.size_classes if before is not None else ():
            if c.name in _CLASS_ORDER:
                classes.setdefault(c.name, c)
        if classes:
            obeyed = variables.get(label) or (before.variables if before is not None else ())
            ordered = tuple(sorted(classes.values(), key=lambda c: _CLASS_ORDER[c.name]))
            found[label] = LibraryPreset(label, tuple(obeyed), ordered)
    for label, lib in old.items():
        found.setdefault(label, lib)
    return tuple(found[label] for label in sorted(found))


_LAYOUT_PHASES = (LAYOUT_PHASE, OVERSUBSCRIBED_PHASE)


def _size_class(
    name: str, points: Sequence[Measurement], tolerance: float, calibration_id: int | None
) -> SizeClass:
    curves = curves_of(points)
    choice = choose(curves, tolerance)
    dtypes = tuple(sorted({d for _, d in curves}, key=lambda d: (d != "float64", d)))
    reference = dtypes[0]
    measured_n = max(n for n, d in curves if d == reference)
    curve = curves[(measured_n, reference)]
    top = max(curve.values(), key=lambda m: m.gflops)
    at_choice = curve.get(choice.threads, top)
    return SizeClass(
        name=name,
        max_n=dict(SIZE_CLASSES)[name],
        measured_n=measured_n,
        threads=choice.threads,
        gflops=at_choice.gflops,
        best_threads=top.threads,
        best_gflops=top.gflops,
        dtypes=dtypes,
        sizes=tuple(sorted({n for n, _ in curves})),
        losses={d: round(choice.worst_loss(d), 4) for d in dtypes},
        within_tolerance=choice.within_tolerance,
        calibration_id=calibration_id,
    )


def _measured_layouts(points: Sequence[Measurement], tolerance: float) -> list[Layout]:
    """Per class and worker count, the best measured threads per process (chosen by the
    same rule as the sweep), with the oversubscribed setting's figure beside it."""
    rows = []
    grouped: dict[tuple[str, int], list[Measurement]] = {}
    contrast: dict[tuple[str, int], float] = {}
    for m in points:
        key = (class_of(m.n)[0], m.workers)
        if m.phase == LAYOUT_PHASE and m.workers > 1:
            grouped.setdefault(key, []).append(m)
        elif m.phase == OVERSUBSCRIBED_PHASE:
            contrast[key] = max(contrast.get(key, 0.0), m.gflops)
    for (name, workers), group in sorted(grouped.items(), key=lambda kv: kv[0][1]):
        curves = curves_of(group)
        choice = choose(curves, tolerance)
        best = max(
            (c[choice.threads] for c in curves.values() if choice.threads in c),
            key=lambda m: m.gflops,
        )
        rows.append(
            Layout(
                workers=workers,
                threads=choice.threads,
                size_class=name,
                gflops=round(best.gflops, 3),
                oversubscribed_gflops=contrast.get((name, workers)),
            )
        )
    return rows


def worker_counts(cpus: int) -> list[int]:
    """The layouts' worker counts on ``cpus`` CPUs: 2, 4, 8, ... and ``cpus`` itself (the
    ones a calibration measures; a preset has a row for each, after the one-process row)."""
    counts = {cpus} if cpus > 1 else set()
    w = 2
    while w < cpus:
        counts.add(w)
        w *= 2
    return sorted(counts)
