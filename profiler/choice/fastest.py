"""Which BLAS library is fastest here, per size class: a calibration of several libraries
answers it from each library's own chosen count, and warns when the system default (the
library ``libblas.so.3`` resolves to, which a program linked with ``-lblas`` gets) is far
slower than another library on the node.

Every library's size classes come from the same sweep sizes, so a class's figures compare
like with like: each library at the count its own preset would give it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from profiler.choice.preset import Preset

__all__ = ["SLOW_DEFAULT_RATIO", "Fastest", "fastest_per_class", "slow_default"]

#: the system default is called far slower when another library is this many times faster
SLOW_DEFAULT_RATIO = 2.0


@dataclass(frozen=True)
class Fastest:
    """One size class: each library's figure at its chosen count, and the fastest."""

    size_class: str
    measured_n: int
    #: label -> (threads, GFLOP/s), fastest first
    figures: tuple[tuple[str, int, float], ...]

    @property
    def label(self) -> str:
        return self.figures[0][0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "size_class": self.size_class,
            "measured_n": self.measured_n,
            "fastest": self.label,
            "libraries": [{"blas": b, "threads": t, "gflops": g} for b, t, g in self.figures],
        }


def fastest_per_class(preset: Preset) -> list[Fastest]:
    """Per size class that two libraries or more were measured in, the libraries from the
    fastest down; [] for a calibration of one library."""
    by_class: dict[str, dict[str, tuple[int, float, int]]] = {}
    own = [(preset.default_blas, preset.size_classes)]
    for label, classes in [*own, *((lib.label, lib.size_classes) for lib in preset.libraries)]:
        for c in classes:
            if c.calibration_id in (None, preset.calibration_id):  # measured now, not kept
                by_class.setdefault(c.name, {})[label] = (c.threads, c.gflops, c.measured_n)
    rows = []
    for name, figures in by_class.items():
        if len(figures) < 2:
            continue
        ranked = sorted(figures.items(), key=lambda item: -item[1][1])
        rows.append(
            Fastest(
                size_class=name,
                measured_n=ranked[0][1][2],
                figures=tuple((label, t, g) for label, (t, g, _) in ranked),
            )
        )
    return sorted(rows, key=lambda row: row.measured_n)


def slow_default(rows: Iterable[Fastest], libraries: Iterable[Mapping[str, Any]]) -> list[str]:
    """A line per size class where the library ``libblas.so.3`` resolves to (one of the node's
    ``libraries``, ``profiler.blas.run.Library.to_dict()``) was measured and another ran at
    least SLOW_DEFAULT_RATIO times faster."""
    default = next((lib.get("label") for lib in libraries if lib.get("is_libblas_so_3")), None)
    lines = []
    for row in rows:
        figures = {label: g for label, _, g in row.figures}
        if default not in figures or row.label == default:
            continue
        ratio = figures[row.label] / figures[default] if figures[default] > 0 else float("inf")
        if ratio >= SLOW_DEFAULT_RATIO:
            lines.append(
                f"the system default BLAS ({default}, what libblas.so.3 resolves to and a "
                f"program linked with -lblas gets) is {ratio:.1f}x slower than {row.label} "
                f"for {row.size_class} GEMMs (n = {row.measured_n}: "
                f"{figures[default]:.1f} against {figures[row.label]:.1f} GFLOP/s)"
            )
    return lines
