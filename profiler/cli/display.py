"""What the commands show: one-line messages, JSON, progress, and the tables of records.

Every command prints through here, so every view follows the same rules: tables fit the
terminal (and are not truncated when piped), ``--json`` prints one document on stdout and
nothing else there, and messages go to stderr prefixed ``blasprof:``. rich is imported
where a view needs it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console
    from rich.progress import Progress

    from db import CalibrationSummary
    from profiler.results import NodeInfo

__all__ = [
    "Bar",
    "console",
    "err",
    "print_calibration",
    "print_calibration_list",
    "print_collected",
    "print_adoption",
    "print_json",
    "print_loading",
    "print_notes",
    "print_pending",
    "print_preset_paths",
    "print_probe",
    "print_status",
    "progress",
]


def err(message: str) -> None:
    """One line on stderr, prefixed so that it is clear who speaks."""
    print(f"blasprof: {message}", file=sys.stderr)


def console(stderr: bool = False) -> Console:
    """A rich console; when not on a terminal, wide enough that tables are not truncated."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 160)


def print_json(doc: Any) -> None:
    """``doc`` as one JSON document on stdout."""
    import json

    json.dump(doc, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


class Bar:
    """A progress bar on stderr: points done out of a total, and what happens now."""

    def __init__(self, progress: Progress, total: int) -> None:
        self._progress = progress
        self._task = progress.add_task("starting", total=total)

    def update(self, completed: int | None = None, description: str | None = None) -> None:
        self._progress.update(self._task, completed=completed, description=description)

    def finish(self, completed: int, description: str = "done") -> None:
        self._progress.update(
            self._task, total=max(completed, 1), completed=completed, description=description
        )


@contextmanager
def progress(label: str, total: int, *, enabled: bool = True) -> Iterator[Bar]:
    """A progress bar titled ``label`` for the block inside; hidden when not ``enabled``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn(f"[bold]{label}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )
    with bar:
        yield Bar(bar, total)


# -- probe ----------------------------------------------------------------------------------


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def _ranges(cpus: tuple[int, ...]) -> str:
    if not cpus:
        return "-"
    parts, start, prev = [], cpus[0], cpus[0]
    for c in [*cpus[1:], None]:
        if c is not None and c == prev + 1:
            prev = c
            continue
        parts.append(f"{start}-{prev}" if prev != start else f"{start}")
        if c is not None:
            start = prev = c
    return ",".join(parts)


def print_probe(info: NodeInfo) -> None:
    """This node as a two-column table."""
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("host", info.hostname),
        ("cpu", f"{info.cpu_model} ({info.vendor}, {info.microarchitecture or 'unknown uarch'})"),
        (
            "topology",
            f"{info.sockets} socket(s), {info.physical_cores} cores, {info.logical_cpus} "
            f"logical CPUs, {info.numa_nodes} NUMA node(s)",
        ),
        ("simd", " ".join(info.simd) or "-"),
        ("clock", f"{info.clock_mhz:.0f} MHz ({info.clock_source})" if info.clock_mhz else "-"),
        (
            "memory",
            f"{_gib(info.memory_total_bytes)} total, {_gib(info.memory_available_bytes)} available",
        ),
        (
            "usable cpus",
            f"{info.usable_cpus} (affinity {_ranges(info.affinity_cpus)}"
            + (f", cgroup quota {info.cgroup_cpu_limit:g}" if info.cgroup_cpu_limit else "")
            + ")",
        ),
        (
            "peak",
            (f"{info.peak_gflops_f64:.1f} GFLOP/s float64: " if info.peak_gflops_f64 else "")
            + info.peak_note,
        ),
        ("numpy", f"{info.numpy_version} (python {info.python_version})"),
    ]
    rows += sorted(info.slurm.items())
    for lib in info.blas:
        rows.append(
            (
                lib.user_api,
                f"{lib.internal_api} {lib.version or '?'} threading={lib.threading_layer or '?'} "
                f"arch={lib.architecture or '?'} threads={lib.num_threads} {lib.filepath}",
            )
        )
    if not info.blas:
        rows.append(("blas", "no BLAS library found by threadpoolctl"))
    for key, value in rows:
        table.add_row(key, value)
    console().print(table)


# -- calibrations ---------------------------------------------------------------------------


def _node_of(doc: dict[str, Any]) -> NodeInfo | None:
    from profiler.results import NodeInfo

    for job in doc.get("jobs", []):
        if job.get("node_info"):
            return NodeInfo.from_dict(job["node_info"])
    return None


def print_calibration(doc: dict[str, Any]) -> None:
    """A calibration (the `show --json` document) as tables and a few lines of why."""
    from rich.table import Table

    out = console()
    node = _node_of(doc)
    preset = doc.get("preset") or {}
    chosen = {}
    for c in preset.get("size_classes", []):
        for dtype, threads in c.get("per_dtype", {}).items():
            chosen[(c["measured_n"], dtype)] = threads
    hosts = sorted({n["hostname"] for n in doc.get("nodes", [])}) or ["-"]
    out.print(
        f"[bold]calibration {doc['calibration_id']}[/] node type [bold]{doc['node_type']}[/] "
        f"status [bold]{doc['status']}[/] executor {doc.get('executor')} profile "
        f"{doc.get('profile')} on {', '.join(hosts)}"
    )
    for n_doc in doc.get("nodes", []):
        libs = "; ".join(
            f"{b['internal_api']} {b.get('version') or '?'} ({b.get('threading_layer') or '?'})"
            for b in n_doc.get("blas", [])
        )
        out.print(
            f"  {n_doc['hostname']}: {n_doc.get('cpu_model')}, "
            f"{n_doc.get('cores')} cores; {libs or 'no BLAS found'}"
        )
    points = doc.get("measurements", [])
    if not points:
        out.print("no measurements")
    threads = sorted({m["threads"] for m in points})
    out.print("GEMM GFLOP/s (percent of theoretical peak); * = chosen")
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
        out.print(table)
    if node and node.peak_gflops_f64:
        out.print(f"theoretical peak: {node.peak_note}")
        if any(
            (peak := node.peak_gflops(m["dtype"], m["threads"])) and m["gflops"] > peak
            for m in points
        ):
            out.print(
                "  above 100%: the cores ran faster than that clock (turbo/boost), "
                "so the peak is understated"
            )
    elif node:
        out.print(f"theoretical peak {node.peak_note}")
    if any(not m.get("threads_verified", True) for m in points):
        out.print("! = the thread limit did not hold (threadpoolctl reported another count)")
    if preset:
        tol = preset.get("tolerance", 0.03)
        out.print(f"[bold]chosen threads[/] (smallest count within {tol:.0%} of the best):")
        for c in preset.get("size_classes", []):
            bound = f"n <= {c['max_n']}" if c.get("max_n") else f"n > {c['measured_n'] // 2}"
            why = (
                f"best is {c['best_threads']} threads at {c['best_gflops']:.1f} GFLOP/s"
                if c["best_threads"] != c["threads"]
                else "the fastest"
            )
            out.print(
                f"  {c['name']:>6} ({bound}, measured at n={c['measured_n']}): "
                f"{c['threads']} threads, {c['gflops']:.1f} GFLOP/s; {why}"
            )
        layouts = ", ".join(f"{x['workers']}x{x['threads']}" for x in preset.get("layouts", []))
        out.print(f"  job layouts (processes x threads each): {layouts}")
    for job in doc.get("jobs", []):
        v = job.get("verification")
        if v:
            mark = "verified" if v["passed"] else "NOT verified"
            out.print(
                f"preset {mark} in a fresh process: n={v['n']} {v['dtype']} on "
                f"{v['threads']} threads {v['fresh_gflops']:.1f} GFLOP/s = {v['ratio']:.0%} of "
                f"the sweep's {v['sweep_gflops']:.1f}"
                + (f" ({v['note']})" if v.get("note") else "")
            )
        if job.get("state") not in (None, "COMPLETED") or job.get("reason"):
            out.print(
                f"job {job.get('external_id')}: {job.get('state')}"
                + (f": {job['reason']}" if job.get("reason") else "")
            )


def print_calibration_list(rows: Sequence[CalibrationSummary]) -> None:
    """``blasprof list``: one line per calibration."""
    from rich.table import Table

    table = Table(box=None, header_style="bold", padding=(0, 2, 0, 0), pad_edge=False)
    for col in ("id", "node type", "status", "exec", "profile", "created (UTC)", "hosts"):
        table.add_column(col, no_wrap=True)
    table.add_column("points", justify="right", no_wrap=True)
    table.add_column("f64 GF/s", justify="right", no_wrap=True)
    for r in rows:
        best = r.best_gflops
        table.add_row(
            str(r.id),
            r.node_type,
            r.status,
            r.executor,
            r.profile,
            r.created_at.strftime("%Y-%m-%d %H:%M"),
            ", ".join(r.hostnames) or "-",
            str(r.n_measurements),
            f"{best:.1f}" if best else "-",
        )
    console().print(table)


def print_preset_paths(node_type: str, status: str, paths: Sequence[Path]) -> None:
    """Where a calibration's presets went and how a job loads them; or why there are none."""
    if not paths:
        print(
            "no preset written: no node finished its sweep; earlier presets are kept"
            if status != "complete"
            else "no preset written: nothing usable was measured"
        )
        return
    directory = paths[0].parent
    if directory.name == "modulefiles":
        directory = directory.parent
    print(f"presets for {node_type} and the dispatchers written to {directory}")
    print_loading(directory)


def print_loading(directory: Path) -> None:
    """How each form in a presets directory is loaded."""
    rows = [
        ("sh, bash, zsh, ksh", f". {directory}/blasprof.sh"),
        ("csh, tcsh", f"source {directory}/blasprof.csh"),
        ("Python", f"PYTHONPATH={directory} and `import blas_preset` before numpy"),
        ("Lmod", f"module use {directory}/modulefiles && module load blasprof"),
        ("any command", 'blasprof run -- CMD...   or   eval "$(blasprof env)"'),
        ("a job script", "blasprof wrap job.sh   (adds the sh line after its #SBATCH header)"),
        ("every job", "deploy/site/taskprolog.sh as Slurm's TaskProlog (see its README)"),
    ]
    print("load them in a job (each picks this node's type, its CPUs and the job layout):")
    for what, how in rows:
        print(f"  {what + ':':<20} {how}")


def print_notes(notes: Sequence[str]) -> None:
    """What a preset says when it loads, one line each on stderr."""
    for note in notes:
        err(note)


def print_adoption(
    ok: bool, libraries: Sequence[dict[str, Any]], why: str, record: str | None
) -> None:
    """`blasprof check`: each BLAS a fresh Python loaded, its threads, and the verdict."""
    print(f"preset: {record or 'none loaded (BLASPROF_PRESET is not set)'}")
    for lib in libraries:
        expected = lib.get("expected")
        verdict = "" if expected is None else ("  ok" if lib["ok"] else f"  NOT {expected}")
        print(
            f"  {lib.get('user_api')}: {lib.get('internal_api')} {lib.get('version') or '?'} "
            f"({lib.get('threading_layer') or '?'}) runs {lib.get('num_threads')} thread(s)"
            f"{verdict}"
        )
    print("the preset took effect" if ok else f"the preset did NOT take effect: {why}")


def print_pending(docs: Sequence[dict[str, Any]]) -> None:
    """Calibrations whose batch jobs outlive the command: their jobs and what to run next."""
    ids = " ".join(str(doc["calibration_id"]) for doc in docs)
    for doc in docs:
        jobs = ", ".join(str(j["external_id"]) for j in doc["jobs"])
        print(f"calibration {doc['calibration_id']} ({doc['node_type']}): Slurm jobs {jobs}")
    print(f"follow them:  blasprof status {ids}")
    print(f"store them:   blasprof collect {ids}   (safe to run again)")


# -- status and collect ---------------------------------------------------------------------


def print_status(docs: Sequence[dict[str, Any]]) -> None:
    """``blasprof status``: one line per job."""
    if not docs:
        print("no calibration has pending jobs")
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 2, 0, 0))
    for col in ("calibration", "node type", "job", "state", "host", "stored", "points", "reason"):
        table.add_column(col, no_wrap=True)
    for doc in docs:
        for j in doc["jobs"]:
            table.add_row(
                f"{doc['calibration_id']} ({doc['status']})",
                doc["node_type"],
                str(j["external_id"]),
                j["state"],
                j["hostname"] or "-",
                "yes" if j["result_stored"] else "no",
                "" if j["points_so_far"] is None else str(j["points_so_far"]),
                j["reason"] or "",
            )
    console().print(table)


def print_collected(docs: Sequence[dict[str, Any]]) -> None:
    """``blasprof collect``: what was stored now, per calibration, and what still runs."""
    import os

    if not docs:
        print("nothing to collect: no calibration has pending jobs")
        return
    for d in docs:
        print(
            f"calibration {d['calibration_id']} ({d['node_type']}): stored {d['stored_now']} "
            f"result(s) now, {d['still_running']} job(s) still running"
            + (f", {d['not_collectable']} not collectable" if d["not_collectable"] else "")
            + f"; status {d['status']}"
        )
        if d["preset_files"]:
            print(f"  presets written to {os.path.dirname(d['preset_files'][0])}")
    if any(d["still_running"] for d in docs):
        print("run `blasprof collect` again later for the jobs still running")
