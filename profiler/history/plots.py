"""Drawing calibrations with matplotlib: one calibration's curves, and a node type's trend.

matplotlib is optional (``pip install 'blasprof[plot]'``); it is imported when a plot is
drawn, and its absence is one ``UsageError`` that says how to install it. Figures are drawn
on ``matplotlib.figure.Figure`` objects (no pyplot state) and written atomically: a reader
sees the old file or the new one.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from profiler.errors import UsageError
from profiler.files import replace
from profiler.settings import NUMPY_BLAS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from profiler.history.selection import Point

__all__ = [
    "FIGURE_SIZE",
    "calibration_figure",
    "INSTALL_HINT",
    "PLOT_SUFFIXES",
    "check_output",
    "plot_calibration",
    "plot_history",
    "require_matplotlib",
]

INSTALL_HINT = "pip install 'blasprof[plot]'"
PLOT_SUFFIXES = (".png", ".svg")
#: inches; at 100 dpi a PNG is 900 x 540 pixels
FIGURE_SIZE = (9.0, 5.4)
_DPI = 100


def require_matplotlib() -> type[Figure]:
    """matplotlib's ``Figure``; without matplotlib, one line that says how to install it."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise UsageError(
            f"plot needs matplotlib, which is not installed here; install it with: {INSTALL_HINT}"
        ) from None
    return Figure


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _text(value: object) -> str:
    """A string from the database as a label: control characters escaped, since a glyph
    missing from the font is named, raw, in a warning on the user's terminal."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), str(value))


def _figure() -> Figure:
    figure_class = require_matplotlib()
    import matplotlib

    # Labels carry strings from the database: "$...$" in one must stay text, not math.
    matplotlib.rcParams["text.parse_math"] = False
    return figure_class(figsize=FIGURE_SIZE, dpi=_DPI, layout="constrained")


def check_output(path: Path) -> Path:
    """The file a plot goes to: .png or .svg, in a directory that exists."""
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise UsageError(
            f"-o {path}: the file name must end in {' or '.join(PLOT_SUFFIXES)} (the format)"
        )
    if path.is_dir():
        raise UsageError(f"-o {path}: it is a directory; give a file path")
    if not path.parent.is_dir():
        raise UsageError(f"-o {path}: directory {path.parent} does not exist")
    return path


def _save(figure: Figure, path: Path) -> None:
    fmt = path.suffix.lower().lstrip(".")
    replace(path, binary=True, to_name=lambda tmp: figure.savefig(tmp, format=fmt, dpi=_DPI))


def plot_calibration(doc: dict[str, Any], path: Path) -> None:
    """Draw ``calibration_figure(doc)`` into ``path``."""
    _save(calibration_figure(doc), path)


def calibration_figure(doc: dict[str, Any]) -> Figure:
    """GFLOP/s against threads per (dtype, size) of one calibration (``show --json``'s
    document), each worker run a small dot beside its point's figure; the theoretical peak
    as a dashed line per dtype, the preset's counts marked, whole thread counts on the axis."""
    from matplotlib.ticker import MaxNLocator

    from profiler.results import NodeInfo

    figure = _figure()
    axes = figure.add_subplot()
    # one curve set per library: (library, dtype, n) -> threads -> GFLOP/s
    curves: dict[tuple[str, str, int], dict[int, float]] = {}
    runs: dict[tuple[str, str, int], dict[int, list[float]]] = {}
    for m in doc.get("measurements", []):
        if m.get("threads_verified", True) and m.get("workers", 1) == 1:
            key = (str(m.get("blas", NUMPY_BLAS)), m["dtype"], m["n"])
            curve = curves.setdefault(key, {})
            if m["gflops"] > curve.get(m["threads"], 0.0):
                curve[m["threads"]] = m["gflops"]
                figures = [r.get("gflops") for r in m.get("runs") or ()]
                runs.setdefault(key, {})[m["threads"]] = [
                    g for g in figures if isinstance(g, int | float)
                ]
    preset = doc.get("preset") or {}
    own = [(preset.get("default_blas", NUMPY_BLAS), preset.get("size_classes", []))]
    chosen = {}
    for label, classes in own + [
        (x["label"], x["size_classes"]) for x in preset.get("libraries") or ()
    ]:
        for c in classes:
            for dtype in c.get("dtypes") or c.get("per_dtype", {}):
                for n in c.get("sizes") or [c["measured_n"]]:
                    chosen[(label, dtype, n)] = c["threads"]
    several = len({key[0] for key in curves}) > 1
    for (label, dtype, n), curve in sorted(curves.items()):
        threads = sorted(curve)
        style = "-" if dtype == "float64" else "--"
        name = f"{label} {dtype} n={n}" if several else f"{dtype} n={n}"
        (line,) = axes.plot(
            threads, [curve[t] for t in threads], style, marker="o", label=_text(name)
        )
        spread = runs.get((label, dtype, n), {})
        dots = [(t, g) for t in threads for g in spread.get(t, ()) if len(spread[t]) > 1]
        if dots:
            axes.plot([t for t, _ in dots], [g for _, g in dots], marker=".", markersize=4,
                      linestyle="none", color=line.get_color(), alpha=0.5)  # fmt: skip
        pick = chosen.get((label, dtype, n))
        if pick in curve:
            axes.plot([pick], [curve[pick]], marker="*", markersize=16, color=line.get_color(),
                      markeredgecolor="black", linestyle="none")  # fmt: skip
    node = next(
        (NodeInfo.from_dict(j["node_info"]) for j in doc.get("jobs", []) if j.get("node_info")),
        None,
    )
    if node is not None and node.peak_gflops_f64:
        counts = sorted({t for curve in curves.values() for t in curve})
        for dtype in sorted({d for _, d, _ in curves}):
            peaks = [node.peak_gflops(dtype, t) for t in counts]
            if all(p is not None for p in peaks):
                label = _text(f"theoretical peak {dtype}")
                axes.plot(counts, peaks, ":", color="grey", label=label)
    axes.plot([], [], marker="*", linestyle="none", color="black", label="preset's count")
    axes.plot([], [], marker=".", linestyle="none", color="grey", label="each worker run")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("threads")
    axes.set_ylabel("GFLOP/s")
    title = f"calibration {doc['calibration_id']}: {doc['node_type']} ({doc['status']})"
    axes.set_title(_text(title))
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small", ncols=2)
    return figure


def plot_history(points: Sequence[Point], node_type: str, path: Path) -> None:
    """A node type's trend: per (dtype, size), each calibration's best GFLOP/s (the median
    over its nodes at the best thread count) with the range of its worker runs there as an
    error bar, and a line where the BLAS changed."""
    figure = _figure()
    axes = figure.add_subplot()
    per: defaultdict[tuple[str, int], defaultdict[Any, defaultdict[int, list[float]]]]
    per = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    spread: defaultdict[tuple[str, int, int, int], list[float]] = defaultdict(list)
    when: dict[int, Any] = {}
    blas: dict[int, str] = {}
    for p in points:
        per[(p.dtype, p.n)][p.calibration_id][p.threads].append(p.gflops)
        spread[(p.dtype, p.n, p.calibration_id, p.threads)] += list(p.runs) or [p.gflops]
        when[p.calibration_id] = p.created_at
        blas.setdefault(p.calibration_id, p.blas)
    for (dtype, n), by_calibration in sorted(per.items()):
        ids = sorted(by_calibration, key=lambda i: when[i])
        best, below, above = [], [], []
        for i in ids:
            threads, top = max(
                ((t, statistics.median(v)) for t, v in by_calibration[i].items()),
                key=lambda tv: tv[1],
            )
            values = spread[(dtype, n, i, threads)]
            best.append(top)
            below.append(max(0.0, top - min(values)))
            above.append(max(0.0, max(values) - top))
        axes.errorbar([when[i] for i in ids], best, yerr=[below, above],
                      fmt="-" if dtype == "float64" else "--", marker="o", capsize=3,
                      label=_text(f"{dtype} n={n}"))  # fmt: skip
    ordered = sorted(when, key=lambda i: when[i])
    for before, after in zip(ordered, ordered[1:], strict=False):
        if blas[before] != blas[after]:
            axes.axvline(when[after], color="grey", linestyle=":")
            axes.annotate(
                _text(f"BLAS: {blas[after]}"),
                (when[after], 1),
                xycoords=("data", "axes fraction"),
                rotation=90,
                va="top",
                ha="right",
                fontsize="small",
            )
    axes.set_xlabel("calibration time (UTC)")
    axes.set_ylabel("GFLOP/s at the best thread count")
    axes.set_title(_text(f"{node_type}: {len(ordered)} calibrations"))
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small", ncols=2)
    figure.autofmt_xdate()
    _save(figure, path)
