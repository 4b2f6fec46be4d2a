"""What the history commands show: curves of a calibration, the presets in force, comparisons,
the fleet view, and CSV.

The companion of ``profiler.cli.display`` for ``show``'s curves, ``best``, ``compare``,
``nodes`` and every ``--format csv``. Strings that came from the database (node types, host
names, BLAS labels) reach rich only as ``rich.text.Text``, never as markup; CSV cells that a
spreadsheet would run as a formula are quoted with a leading apostrophe.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from profiler.cli.display import console, safe

if TYPE_CHECKING:
    from db import CalibrationSummary
    from db.history import CurrentPreset
    from profiler.history.compare import Comparison, Figure
    from profiler.history.fleet import FleetReport
    from profiler.history.selection import Selection

__all__ = [
    "calibration_list_csv",
    "comparison_csv",
    "measurements_csv",
    "print_best",
    "print_comparison",
    "print_csv",
    "print_curves",
    "print_fleet",
]

_BLOCKS = " ▁▂▃▄▅▆▇█"
_CHART_ROWS = 4
_CHART_WIDTH = 96


def _text(value: Any) -> Any:
    """A cell or line as text: no markup, and control characters (a line break, an escape)
    shown escaped, so that a stored string cannot forge a line."""
    from rich.text import Text

    return Text("" if value is None else safe(value, markup=False))


def _when(value: Any) -> str:
    """An ISO timestamp (or datetime) as ``YYYY-MM-DD HH:MM``."""
    if value is None:
        return "-"
    text = value if isinstance(value, str) else value.isoformat()
    return text[:16].replace("T", " ")


# -- CSV ------------------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    if isinstance(value, str):
        value = safe(value, markup=False)  # one record a line, no escape sequences
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value  # a spreadsheet would evaluate it
    if isinstance(value, list | tuple):
        return _cell(" ".join(str(v) for v in value))
    return "" if value is None else value


def print_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A header and rows as CSV on stdout."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v) for v in row])


def calibration_list_csv(rows: Sequence[CalibrationSummary]) -> None:
    """``list --format csv``: one row per calibration, the columns of ``list --json``."""
    docs = [r.summary_json() for r in rows]
    header = list(docs[0]) if docs else ["calibration_id"]
    print_csv(header, ([d[k] for k in header] for d in docs))


_POINT_COLUMNS = (
    "job_id", "hostname", "kernel", "dtype", "n", "threads", "gflops", "median_s", "min_s",
    "cv", "loops", "threads_verified", "phase", "spread",
)  # fmt: skip


def measurements_csv(doc: dict[str, Any]) -> None:
    """``show ID --format csv``: one row per stored measurement, each worker run's GFLOP/s
    and its samples last."""
    header = ["calibration_id", "node_type", *_POINT_COLUMNS, "run_gflops", "samples"]
    print_csv(
        header,
        (
            [doc["calibration_id"], doc["node_type"], *(m.get(k) for k in _POINT_COLUMNS),
             [r.get("gflops") for r in m.get("runs") or ()], m.get("samples", [])]
            for m in doc.get("measurements", [])
        ),
    )  # fmt: skip


def comparison_csv(comparison: Comparison) -> None:
    """``compare --format csv``: one row per (node type, dtype, n, threads)."""
    header = [
        "node_type", "dtype", "n", "threads", "a_gflops", "a_low", "a_high", "a_measurements",
        "a_samples", "b_gflops", "b_low", "b_high", "b_measurements", "b_samples", "change",
        "verdict",
    ]  # fmt: skip

    def side(f: Figure | None) -> list[Any]:
        return [f.gflops, f.low, f.high, f.measurements, f.samples] if f else [None] * 5

    print_csv(
        header,
        (
            [r.node_type, r.dtype, r.n, r.threads, *side(r.a), *side(r.b), r.change, r.verdict]
            for r in comparison.rows
        ),
    )


# -- show: curves ---------------------------------------------------------------------------


def _column(level: int, row: int) -> str:
    """The block for chart row ``row`` (0 at the bottom) of a bar ``level`` eighths high."""
    filled = min(8, max(0, level - row * 8))
    return _BLOCKS[filled]


def curve_lines(
    points: dict[int, float], chosen: int | None, title: str, unit: str = "GFLOP/s"
) -> list[str]:
    """A small bar chart of one curve: one column per thread count, tallest = the best."""
    threads = sorted(points)
    top = max(points.values()) if points else 0.0
    if not threads or top <= 0:
        return [f"{title}: nothing measured"]
    best = max(threads, key=lambda t: points[t])
    width = max(len(str(t)) for t in threads) + 1
    labelled = width * len(threads) <= _CHART_WIDTH
    if not labelled:
        width = 1
    levels = {t: round(points[t] / top * _CHART_ROWS * 8) for t in threads}
    axis = f"{top:.1f}"
    pad = len(axis)
    lines = [f"{title}  (best {top:.1f} {unit} at {best} threads"
             + (f"; chosen {chosen})" if chosen is not None else ")")]  # fmt: skip
    for row in reversed(range(_CHART_ROWS)):
        label = axis if row == _CHART_ROWS - 1 else ""
        bars = "".join(_column(levels[t], row).rjust(width) for t in threads)
        lines.append(f"  {label:>{pad}} │{bars}")
    lines.append(f"  {'0':>{pad}} └{'─' * (width * len(threads))}")
    if labelled:
        lines.append(f"  {'':>{pad}}  {''.join(str(t).rjust(width) for t in threads)} threads")
        marks = "".join(
            ("*" if t == chosen else "^" if t == best else "").rjust(width) for t in threads
        )
        if marks.strip():
            lines.append(f"  {'':>{pad}}  {marks}")
    else:
        lines.append(f"  {'':>{pad}}  {threads[0]} .. {threads[-1]} threads")
    return lines


def print_curves(doc: dict[str, Any]) -> None:
    """``show``: GFLOP/s against threads for each (dtype, size), best node per point."""
    curves: dict[tuple[str, int], dict[int, float]] = {}
    for m in doc.get("measurements", []):
        if not m.get("threads_verified", True) or m.get("workers", 1) > 1:
            continue
        curve = curves.setdefault((m["dtype"], m["n"]), {})
        curve[m["threads"]] = max(m["gflops"], curve.get(m["threads"], 0.0))
    if not curves:
        return
    chosen: dict[tuple[str, int], int] = {}
    for c in (doc.get("preset") or {}).get("size_classes", []):
        for dtype in c.get("dtypes") or c.get("per_dtype", {}):
            for n in c.get("sizes") or [c["measured_n"]]:
                chosen[(dtype, n)] = c["threads"]
    lines = ["GFLOP/s against threads (* the preset's count, ^ the fastest):"]
    for (dtype, n), curve in sorted(curves.items()):
        title = safe(f"{dtype} n={n}", markup=False)
        lines += curve_lines(curve, chosen.get((dtype, n)), title)
    from rich.text import Text

    console().print(Text("\n".join(lines)))


# -- best -----------------------------------------------------------------------------------


def print_best(current: Sequence[CurrentPreset]) -> None:
    """``best``: per node type, the threads per size class and per layout in force now."""
    from rich.table import Table

    out = console()
    for cp in current:
        p = cp.preset
        out.print(
            _text(
                f"{cp.node_type}: preset of calibration {cp.calibration_id} "
                f"({_when(cp.calibration_created_at)} UTC, {cp.calibration_status}); "
                f"BLAS {', '.join(cp.blas) or p.blas or 'unknown'}; {p.calibrated_cpus} CPUs"
            )
        )
        table = Table(box=None, header_style="bold", padding=(0, 2, 0, 0), pad_edge=False)
        for col in ("size class", "n up to", "threads", "GFLOP/s", "fastest", "costs"):
            table.add_column(col, no_wrap=True)
        table.add_column("calibration", justify="right")
        for c in p.size_classes:
            table.add_row(
                _text(c.name),
                str(c.max_n) if c.max_n else "-",
                str(c.threads),
                f"{c.gflops:.1f}",
                f"{c.best_threads} thr, {c.best_gflops:.1f}",
                _text(
                    ", ".join(f"{d} -{loss:.0%}" for d, loss in sorted(c.losses.items()) if loss)
                    or "-"
                ),
                str(c.calibration_id or p.calibration_id or cp.calibration_id),
            )
        out.print(table)
        rows = p.layout_table()
        layouts = "; ".join(
            f"{name}: " + ", ".join(f"{w}x{t}" for w, t in rows[name]) for name in rows
        )
        out.print(_text(f"  layouts (processes x threads each): {layouts}"))
        for lib in p.libraries:
            counts = ", ".join(f"{c.name} {c.threads}" for c in lib.size_classes)
            obeys = " > ".join(lib.variables) or "no variable"
            out.print(_text(f"  {lib.label} (obeys {obeys}): {counts}"))


# -- compare --------------------------------------------------------------------------------


def _figure(f: Figure | None) -> str:
    if f is None:
        return "-"
    return f"{f.gflops:.1f} [{f.low:.1f}-{f.high:.1f}] ({f.measurements}/{f.samples})"


def print_comparison(a: Selection, b: Selection, comparison: Comparison) -> None:
    """``compare``: each point of A against B, then what differs and the regressions."""
    from rich.table import Table

    from profiler.history.compare import REGRESSION

    out = console()
    out.print(_text(f"A: {a.describe()}"))
    out.print(_text(f"B: {b.describe()}"))
    table = Table(box=None, header_style="bold", padding=(0, 2, 0, 0), pad_edge=False)
    for col in ("node type", "dtype", "n", "threads", "A GFLOP/s [95%] (runs/samples)"):
        table.add_column(col, no_wrap=True)
    table.add_column("B GFLOP/s [95%] (runs/samples)", no_wrap=True)
    table.add_column("change", justify="right", no_wrap=True)
    table.add_column("floor", justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    for r in comparison.rows:
        table.add_row(
            _text(r.node_type),
            _text(r.dtype),
            str(r.n),
            str(r.threads),
            _figure(r.a),
            _figure(r.b),
            f"{r.change:+.1%}" if r.change is not None else "-",
            f"{r.floor:.1%}" + (" h" if r.floor_source == "history" else ""),
            _text(r.verdict.upper() if r.verdict == REGRESSION else r.verdict),
        )
    out.print(table)
    if any(r.floor_source == "history" for r in comparison.rows):
        out.print(
            "floor h = the node type's noise floor, above the tolerance: the change that 95% "
            "of its consecutive quiet calibrations stay within"
        )
    variable = sum(r.verdict == "too-variable" for r in comparison.rows)
    if variable:
        out.print(
            f"{variable} point(s) too variable to judge (a floor or interval wider than half "
            "the figure): their speed varies that much between runs"
        )
    for difference in comparison.differences:
        out.print(_text(f"note: {difference.message()}"))
    found = comparison.regressions
    rule = (
        f"B slower than A by more than {comparison.tolerance:.0%} (or the point's noise "
        "floor) and its "
        f"{comparison.confidence:.0%} interval wholly below A's"
    )
    if found:
        worst = min(found, key=lambda r: r.change or 0)
        out.print(
            _text(
                f"{len(found)} regression(s) ({rule}); worst: {worst.node_type} {worst.dtype} "
                f"n={worst.n} {worst.threads} threads {worst.change:+.1%}"
            )
        )
    else:
        slower = sum(r.verdict == "slower" for r in comparison.rows)
        out.print(
            _text(
                f"no regression ({rule})"
                + (f"; {slower} point(s) slower but within the spread" if slower else "")
            )
        )


# -- nodes ----------------------------------------------------------------------------------


def print_fleet(reports: Sequence[FleetReport]) -> None:
    """``nodes``: per node type, each node's latest figures against its siblings."""
    from rich.table import Table

    out = console()
    for report in reports:
        ref = report.reference_point
        head = f"{report.node_type}: {len(report.nodes)} node(s)"
        if ref:
            head += (
                f"; reference point {ref[0]} n={ref[1]} {ref[2]} threads, type median "
                f"{report.reference_median:.1f} GFLOP/s"
            )
        if report.margin is not None:
            head += f"; suspect when more than {report.margin:.1%} below the type's median"
        out.print(_text(head))
        if report.note:
            out.print(_text(f"  {report.note}"))
        table = Table(box=None, header_style="bold", padding=(0, 2, 0, 0), pad_edge=False)
        for col in ("node", "calibration", "measured (UTC)", "BLAS", "GFLOP/s at ref"):
            table.add_column(col, no_wrap=True)
        table.add_column("vs median", justify="right", no_wrap=True)
        table.add_column("robust z", justify="right", no_wrap=True)
        table.add_column("verdict", no_wrap=True)
        for s in report.nodes:
            table.add_row(
                _text(s.node.hostname),
                str(s.node.calibration_id),
                _when(s.node.finished_at),
                _text(s.node.blas or "-"),
                f"{s.reference:.1f}" if s.reference is not None else "-",
                f"{s.off:+.1%}" if s.off is not None else "-",
                f"{s.robust_z:+.1f}" if s.robust_z is not None else "-",
                "SUSPECT" if s.suspect else "ok" if s.off is not None else "-",
            )
        out.print(table)
