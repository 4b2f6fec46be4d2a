"""Human-readable views of a stored calibration, shared by `calibrate` and `show`."""

from __future__ import annotations

from typing import Any

from profiler.cli._common import console as _console
from profiler.results import NodeInfo


def _peak(doc: dict[str, Any]) -> NodeInfo | None:
    for job in doc.get("jobs", []):
        if job.get("node_info"):
            return NodeInfo.from_dict(job["node_info"])
    return None


def print_calibration(doc: dict[str, Any]) -> None:
    """Print a calibration (the `show --json` document) as tables and a few lines of why."""
    from rich.table import Table

    console = _console()
    node = _peak(doc)
    preset = doc.get("preset") or {}
    chosen = {}
    for c in preset.get("size_classes", []):
        for dtype, threads in c.get("per_dtype", {}).items():
            chosen[(c["measured_n"], dtype)] = threads
    hosts = sorted({n["hostname"] for n in doc.get("nodes", [])}) or ["-"]
    console.print(
        f"[bold]calibration {doc['calibration_id']}[/] node type [bold]{doc['node_type']}[/] "
        f"status [bold]{doc['status']}[/] executor {doc.get('executor')} profile "
        f"{doc.get('profile')} on {', '.join(hosts)}"
    )
    for n_doc in doc.get("nodes", []):
        libs = "; ".join(
            f"{b['internal_api']} {b.get('version') or '?'} ({b.get('threading_layer') or '?'})"
            for b in n_doc.get("blas", [])
        )
        console.print(
            f"  {n_doc['hostname']}: {n_doc.get('cpu_model')}, "
            f"{n_doc.get('cores')} cores; {libs or 'no BLAS found'}"
        )
    points = doc.get("measurements", [])
    if not points:
        console.print("no measurements")
    threads = sorted({m["threads"] for m in points})
    console.print("GEMM GFLOP/s (percent of theoretical peak); * = chosen")
    table = Table()
    table.add_column("dtype")
    table.add_column("n", justify="right")
    for t in threads:
        table.add_column(f"{t} thr", justify="right")
    rows: dict[tuple[str, int], dict[int, dict[str, Any]]] = {}
    for m in points:
        cell = rows.setdefault((m["dtype"], m["n"]), {})
        if m["threads"] not in cell or m["gflops"] > cell[m["threads"]]["gflops"]:
            cell[m["threads"]] = m
    for (dtype, n), cells in sorted(rows.items()):
        line = [dtype, str(n)]
        for t in threads:
            m = cells.get(t)
            if m is None:
                line.append("")
                continue
            text = f"{m['gflops']:.1f}"
            peak = node.peak_gflops(dtype, t) if node else None
            if peak:
                text += f" ({m['gflops'] / peak:.0%})"
            if not m.get("threads_verified", True):
                text += " !"
            if chosen.get((n, dtype)) == t:
                text = f"[bold green]{text} *[/]"
            line.append(text)
        table.add_row(*line)
    if points:
        console.print(table)
    if node and node.peak_gflops_f64:
        console.print(f"theoretical peak: {node.peak_note}")
        if any(
            (peak := node.peak_gflops(m["dtype"], m["threads"])) and m["gflops"] > peak
            for m in points
        ):
            console.print(
                "  above 100%: the cores ran faster than that clock (turbo/boost), "
                "so the peak is understated"
            )
    elif node:
        console.print(f"theoretical peak {node.peak_note}")
    if any(not m.get("threads_verified", True) for m in points):
        console.print("! = the thread limit did not hold (threadpoolctl reported another count)")
    if preset:
        tol = preset.get("tolerance", 0.03)
        console.print(f"[bold]chosen threads[/] (smallest count within {tol:.0%} of the best):")
        for c in preset.get("size_classes", []):
            bound = f"n <= {c['max_n']}" if c.get("max_n") else f"n > {c['measured_n'] // 2}"
            why = (
                f"best is {c['best_threads']} threads at {c['best_gflops']:.1f} GFLOP/s"
                if c["best_threads"] != c["threads"]
                else "the fastest"
            )
            console.print(
                f"  {c['name']:>6} ({bound}, measured at n={c['measured_n']}): "
                f"{c['threads']} threads, {c['gflops']:.1f} GFLOP/s; {why}"
            )
        layouts = ", ".join(f"{x['workers']}x{x['threads']}" for x in preset.get("layouts", []))
        console.print(f"  job layouts (processes x threads each): {layouts}")
    for job in doc.get("jobs", []):
        v = job.get("verification")
        if v:
            mark = "verified" if v["passed"] else "NOT verified"
            console.print(
                f"preset {mark} in a fresh process: n={v['n']} {v['dtype']} on "
                f"{v['threads']} threads {v['fresh_gflops']:.1f} GFLOP/s = {v['ratio']:.0%} of "
                f"the sweep's {v['sweep_gflops']:.1f}"
                + (f" ({v['note']})" if v.get("note") else "")
            )
        if job.get("state") not in (None, "COMPLETED") or job.get("reason"):
            console.print(
                f"job {job.get('external_id')}: {job.get('state')}"
                + (f": {job['reason']}" if job.get("reason") else "")
            )
