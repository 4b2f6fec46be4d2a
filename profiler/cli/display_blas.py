"""The per-library part of ``show`` and ``calibrate``: each other library's chosen counts,
which library is fastest per size class, and the warning where the system default BLAS is
far slower than another library on the node."""

from __future__ import annotations

from typing import Any

from profiler.cli.display import console, safe

__all__ = ["print_libraries"]


def print_libraries(doc: dict[str, Any]) -> None:
    """What ``doc`` (the ``show --json`` document) says per library; nothing for a
    calibration of numpy's alone."""
    out = console()
    preset = doc.get("preset") or {}
    for lib in preset.get("libraries") or ():
        counts = ", ".join(
            f"{c['name']} {c['threads']} ({c['gflops']:.1f} GFLOP/s)" for c in lib["size_classes"]
        )
        variables = ", ".join(lib.get("variables") or ()) or "none: its threads are fixed"
        out.print(safe(f"  {lib['label']}: {counts}; set by {variables}"), soft_wrap=True)
    rows = doc.get("fastest") or []
    if rows:
        out.print("[bold]fastest BLAS per size class[/] (each at its own chosen count):")
    for row in rows:
        others = ", ".join(f"{x['blas']} {x['gflops']:.1f}" for x in row["libraries"][1:])
        best = row["libraries"][0]
        out.print(
            safe(
                f"  {row['size_class']:>6} (n = {row['measured_n']}): {best['blas']} "
                f"{best['gflops']:.1f} GFLOP/s on {best['threads']}; then {others}"
            ),
            soft_wrap=True,
        )
    for line in doc.get("blas_warnings") or ():
        out.print(f"[bold yellow]warning:[/] {safe(line)}", soft_wrap=True)
