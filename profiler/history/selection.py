"""Past calibrations as the history views see them: selections, stored points, BLAS labels.

A ``Selection`` says which calibrations a side of ``compare`` (or a plot) covers: ids, or a node
type and a time window. A ``Point`` is one stored measurement with where it was taken. These are
plain records: ``db.history`` fills them, ``profiler.history.compare``,
``profiler.history.fleet`` and ``profiler.history.plots`` read them. Nothing here touches a
database.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from profiler.errors import UsageError
from profiler.results import blas_label
from profiler.settings import NUMPY_BLAS

__all__ = [
    "BLAS_FILTER_HELP",
    "Point",
    "Selection",
    "blas_labels",
    "blas_matches",
    "check_blas_filter",
    "sample_gflops",
]

BLAS_FILTER_HELP = "a library (openblas), a version (0.3.26) or both (openblas@0.3.26)"
_BLAS_FILTER = re.compile(r"[A-Za-z0-9._+-]{1,64}(?:[@/][A-Za-z0-9._+-]{1,64})?")


@dataclass(frozen=True)
class Selection:
    """Calibrations by id, or those of ``node_type`` created in [``start``, ``end``)."""

    calibration_ids: tuple[int, ...] = ()
    node_type: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    #: what the user wrote, for messages and JSON
    text: str = ""
    #: the BLAS library whose points are selected (a calibration may measure several)
    library: str = NUMPY_BLAS

    def describe(self) -> str:
        through = f" through {self.library}" if self.library != NUMPY_BLAS else ""
        if self.calibration_ids:
            ids = ", ".join(str(i) for i in self.calibration_ids)
            return f"calibration{'s' if len(self.calibration_ids) > 1 else ''} {ids}{through}"
        start = self.start.strftime("%Y-%m-%d %H:%M") if self.start else "the first"
        end = self.end.strftime("%Y-%m-%d %H:%M") if self.end else "now"
        return f"{self.node_type} from {start} to {end} (UTC){through}"

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "calibration_ids": list(self.calibration_ids),
            "node_type": self.node_type,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "library": self.library,
        }


@dataclass(frozen=True)
class Point:
    """One stored GEMM measurement, with the calibration, node and BLAS stack it came from.

    ``samples`` are seconds per GEMM (empty when the query left them out); ``gflops`` is
    the figure of their median, as stored.
    """

    calibration_id: int
    node_type: str
    created_at: dt.datetime
    hostname: str | None
    job_id: int
    dtype: str
    n: int
    threads: int
    gflops: float
    samples: tuple[float, ...] = ()
    blas: str = ""
    #: the calibration's conditions verdict: quiet, noisy, or None (not judged)
    verdict: str | None = None
    #: each worker run's GFLOP/s (empty: the point was measured in one process)
    runs: tuple[float, ...] = ()
    #: the kernels the BLAS libraries chose, as threadpoolctl reports them (``blas_kernels``)
    blas_kernel: str = ""


def sample_gflops(n: int, samples: Iterable[float]) -> list[float]:
    """Each sample (seconds for one n x n x n GEMM) as GFLOP/s."""
    from profiler.results import gemm_flops

    flops = gemm_flops(n)
    return [flops / s / 1e9 for s in samples if s > 0]


def blas_labels(libraries: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The BLAS libraries of a stored stack as ``name version (threading)`` labels; the
    OpenMP runtimes beside them are left out."""
    labels = []
    for lib in libraries:
        if lib.get("user_api") != "blas":
            continue
        labels.append(blas_label(lib))
    return tuple(sorted(set(labels)))


def blas_kernels(libraries: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The kernel (threadpoolctl's ``architecture``) each BLAS library of a stored stack
    runs, as ``name kernel``: a rebuild or OPENBLAS_CORETYPE can change it alone."""
    kernels = {
        f"{lib.get('internal_api') or '?'} {lib['architecture']}"
        for lib in libraries
        if lib.get("user_api") == "blas" and isinstance(lib.get("architecture"), str)
    }
    return tuple(sorted(kernels))


def check_blas_filter(text: str) -> str:
    """``--blas``: a library name, a version, or ``name@version``; anything else is refused."""
    if not _BLAS_FILTER.fullmatch(text):
        raise UsageError(f"--blas: {text[:40]!r} is not valid; give {BLAS_FILTER_HELP}")
    return text


def blas_matches(libraries: Sequence[Mapping[str, Any]], text: str) -> bool:
    """Whether a stored stack has a BLAS library that ``text`` (see ``check_blas_filter``)
    names: the library's name, its version or a leading part of it (0.3 matches 0.3.26)."""
    name, _, version = text.lower().replace("/", "@").partition("@")
    if not version and name[:1].isdigit():
        name, version = "", name
    for lib in libraries:
        if lib.get("user_api") != "blas":
            continue
        if name and str(lib.get("internal_api") or "").lower() != name:
            continue
        have = str(lib.get("version") or "").lower()
        if version and not (have == version or have.startswith(version + ".")):
            continue
        return True
    return False
