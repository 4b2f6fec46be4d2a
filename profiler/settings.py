"""What a sweep measures and how precisely: the settings records and the named profiles.

``SweepSettings`` travels from the command line to the node task and back into the stored
result as one frozen record; ``to_dict``/``from_dict`` give its stored form. Thread counts
are either an explicit tuple or ``ALL_THREADS`` (every count up to the CPUs the task may
use). ``PROFILES`` is the one table of named profiles; the CLI's ``--profile`` choices come
from it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from profiler.errors import UsageError

__all__ = [
    "ALL_BLAS",
    "ALL_THREADS",
    "CHOICE_TOLERANCE",
    "DTYPES",
    "NUMPY_BLAS",
    "PROFILES",
    "REGRESSION_TOLERANCE",
    "SLOW_NODE_FLOOR",
    "SweepSettings",
    "ThreadCounts",
    "TimingSettings",
    "check_blas_specs",
    "with_overrides",
]

#: the GEMM dtypes blasprof times
DTYPES = ("float64", "float32")
#: the choice: a count within this fraction of the best counts as good as the best
CHOICE_TOLERANCE = 0.03
#: compare: B slower than A by more than this fraction can be a regression
REGRESSION_TOLERANCE = 0.05
#: nodes: a suspect node is also at least this fraction below its type's median
SLOW_NODE_FLOOR = 0.05
#: the label of numpy's own BLAS: what a point ran on unless it says otherwise, and what
#: every point stored before points named their library ran on
NUMPY_BLAS = "numpy"
#: ``--blas all``: every library the node has that can run a GEMM
ALL_BLAS = "all"
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f-\x9f]{1,1000}")
_LABEL = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
#: every thread count from 1 to the CPUs the task may use
ALL_THREADS: Literal["all"] = "all"
ThreadCounts = tuple[int, ...] | Literal["all"]


@dataclass(frozen=True)
class TimingSettings:
    """How precisely each point is timed."""

    min_time: float = 0.1
    samples: int = 5
    warmup: int = 1
    max_loops: int = 1 << 22

    def __post_init__(self) -> None:
        if not self.min_time > 0:
            raise UsageError(f"min_time must be > 0 seconds, got {self.min_time}")
        if self.samples < 1:
            raise UsageError(f"samples must be >= 1, got {self.samples}")
        if self.warmup < 0:
            raise UsageError(f"warmup must be >= 0, got {self.warmup}")


@dataclass(frozen=True)
class SweepSettings:
    """Everything that decides what a sweep measures and how precisely."""

    profile: str
    sizes: tuple[int, ...]
    dtypes: tuple[str, ...]
    threads: ThreadCounts = ALL_THREADS
    timing: TimingSettings = field(default_factory=TimingSettings)
    strategy: str = "search"
    tolerance: float = CHOICE_TOLERANCE
    #: also measure job layouts (W processes x T threads); see ``profiler.measure.layouts``
    layouts: bool = False
    #: worker processes each point is measured in (``profiler.measure.runs``)
    runs: int = 1
    #: the BLAS libraries to sweep, as ``calibrate --blas`` names them: labels as ``blasprof
    #: probe`` prints them, library files, or ``all``; each node finds its own by these
    blas: tuple[str, ...] = (NUMPY_BLAS,)

    def __post_init__(self) -> None:
        if not 1 <= self.runs <= 100:
            raise UsageError(f"--runs: must be 1 to 100, got {self.runs}")
        check_blas_specs(self.blas)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sizes"] = list(self.sizes)
        d["dtypes"] = list(self.dtypes)
        d["blas"] = list(self.blas)
        d["threads"] = ALL_THREADS if self.threads == ALL_THREADS else list(self.threads)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SweepSettings:
        threads = d.get("threads", ALL_THREADS)
        return cls(
            profile=d["profile"],
            sizes=tuple(d["sizes"]),
            dtypes=tuple(d["dtypes"]),
            threads=ALL_THREADS if threads in (ALL_THREADS, None) else tuple(threads),
            timing=TimingSettings(**d.get("timing", {})),
            strategy=d.get("strategy", "search"),
            tolerance=float(d.get("tolerance", CHOICE_TOLERANCE)),
            layouts=bool(d.get("layouts", False)),
            # a calibration stored before runs measured every point in one process
            runs=int(d.get("runs", 1)),
            # a calibration stored before --blas measured numpy's alone
            blas=tuple(d.get("blas") or (NUMPY_BLAS,)),
        )


def check_blas_specs(specs: tuple[str, ...]) -> None:
    """Refuse a ``--blas`` list that names no library, repeats one, or holds something
    that is neither a label, ``all``, nor the absolute path of a file (whether the node
    has them is the node's to say: it finds its own libraries)."""
    rule = (
        "labels as `blasprof probe` prints them (numpy, blis-openmp, ...), library files, or 'all'"
    )
    if not specs:
        raise UsageError(f"--blas: names no library; give {rule}")
    for spec in specs:
        if not isinstance(spec, str) or not (
            _LABEL.fullmatch(spec) or spec.startswith("/") and _PRINTABLE.fullmatch(spec)
        ):
            shown = str(spec).encode("unicode_escape").decode()[:100]
            raise UsageError(f"--blas: '{shown}' is not a library; give {rule}")
    if len(set(specs)) != len(specs):
        raise UsageError(f"--blas: names a library twice: {', '.join(specs)}")
    if ALL_BLAS in specs and len(specs) > 1:
        raise UsageError("--blas: 'all' already names every library; give it alone")


PROFILES: dict[str, SweepSettings] = {
    "quick": SweepSettings(
        profile="quick",
        sizes=(128, 512, 2048),
        dtypes=DTYPES,
        timing=TimingSettings(min_time=0.05, samples=5),
        runs=3,
    ),
    "standard": SweepSettings(
        profile="standard",
        sizes=(256, 1024, 4096),
        dtypes=DTYPES,
        timing=TimingSettings(min_time=0.2, samples=7),
        layouts=True,
        runs=5,
    ),
    "full": SweepSettings(
        profile="full",
        sizes=(64, 128, 256, 512, 1024, 2048, 4096, 8192),
        dtypes=DTYPES,
        timing=TimingSettings(min_time=0.5, samples=11),
        layouts=True,
        runs=10,
    ),
}


def with_overrides(base: SweepSettings, **overrides: Any) -> SweepSettings:
    """A copy of ``base`` with the given fields replaced (None values are ignored).

    ``min_time``, ``samples`` and ``warmup`` replace fields of ``base.timing``.
    """
    timing_keys = {"min_time", "samples", "warmup"}
    timing_over = {k: v for k, v in overrides.items() if k in timing_keys and v is not None}
    rest = {k: v for k, v in overrides.items() if k not in timing_keys and v is not None}
    timing = replace(base.timing, **timing_over) if timing_over else base.timing
    return replace(base, timing=timing, **rest)
