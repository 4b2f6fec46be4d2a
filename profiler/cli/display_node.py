"""What ``probe``, ``calibrate`` and ``show`` print about one node and one calibration:
the node's hardware and software, the conditions of the run, the points, the layouts and
the choice with its reasons.

The companion of ``profiler.cli.display``, whose rules it follows: every string that came
from a machine or the database goes through ``safe`` (shown as text, never as markup).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from profiler.cli.display import console, safe
from profiler.cli.display_blas import print_libraries
from profiler.results import blas_label
from profiler.settings import CHOICE_TOLERANCE, NUMPY_BLAS
from profiler.statuses import QUIET, VERDICT_UNKNOWN

if TYPE_CHECKING:
    from profiler.results import NodeInfo

__all__ = ["print_calibration", "print_probe", "print_rows"]


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


def print_rows(rows: Sequence[tuple[str, str]]) -> None:
    """Two columns, the keys aligned; a line ends where its value ends (no padding to the
    terminal's width, no wrapping), so that piped output is as grep and cut expect."""
    width = max((len(key) for key, _ in rows), default=0)
    for key, value in rows:
        print(f"{safe(key, markup=False):<{width}}  {safe(value, markup=False)}".rstrip())


def print_probe(info: NodeInfo) -> None:
    """This node as two columns."""
    rows = [
        ("host", info.hostname),
        ("cpu", f"{info.cpu_model} ({info.vendor}, {info.microarchitecture or 'unknown uarch'})"),
        (
            "microarchitecture",
            f"{info.microarchitecture or 'unknown'} (from {info.microarchitecture_source or '?'})",
        ),
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
        ("numpy build", _numpy_build(info)),
        (
            "cpuid",
            f"family {info.cpu_family} model {info.cpu_model_number} stepping {info.cpu_stepping}",
        ),
        ("caches", ", ".join(f"{k} {_size(v)}" for k, v in info.caches.items()) or "-"),
        (
            "hypervisor",
            f"{info.hypervisor or 'none (bare metal)'}"
            + (f" (from {info.hypervisor_source})" if info.hypervisor_source else ""),
        ),
    ]
    rows += sorted(info.slurm.items())
    for lib in info.blas:
        rows.append(
            (
                lib.user_api,
                f"{blas_label(lib)} arch={lib.architecture or '?'} threads={lib.num_threads} "
                f"{lib.filepath}",
            )
        )
    if not info.blas:
        rows.append(("blas", "no BLAS library found by threadpoolctl"))
    rows += _library_rows(info)
    scopes = sorted({f"{lib.internal_api}: {lib.limit_scope}" for lib in info.blas})
    if scopes:
        rows.append(("limit scope", "threadpoolctl limits act on " + "; ".join(scopes)))
    if info.blas_max_threads:
        ceiling = f"numpy's OpenBLAS was built for at most {info.blas_max_threads} threads"
        if info.usable_cpus > info.blas_max_threads:
            ceiling += f"; WARNING: {info.usable_cpus} usable CPUs exceed it"
        rows.append(("thread ceiling", ceiling))
    print_rows(rows)


def _library_rows(info: NodeInfo) -> list[tuple[str, str]]:
    """One row per BLAS library on the node (``blas:LABEL``), after one that says how many
    were found and which one ``libblas.so.3`` resolves to."""
    libs = info.libraries
    provider = next((lib["label"] for lib in libs if lib.get("is_libblas_so_3")), None)
    if info.libblas_so_3 is None:
        generic = "no libblas.so.3 in the linker's cache"
    else:
        generic = f"libblas.so.3 -> {provider or 'a library no member knows'} ({info.libblas_so_3})"
    rows = [("libraries", f"{len(libs)} BLAS libraries on this node; {generic}")]
    for lib in libs:
        if lib.get("error"):
            rows.append(
                (f"blas:{lib['label']}", f"{lib['title']}: unusable ({lib['error']}) {lib['path']}")
            )
            continue
        variables = " > ".join(lib.get("variables") or ()) or "none (always 1 thread)"
        parts = [
            f"{lib['title']} {lib.get('version') or '?'}",
            f"threading={lib.get('threading') or '?'}",
            f"kernel={lib.get('architecture') or '?'}",
            f"variables: {variables}",
            f"threads set by {lib.get('threads_api') or '-'}",
            f"gemm {lib.get('gemm_symbol') or '?'}"
            + (" (64-bit integers)" if lib.get("ilp64") else ""),
        ]
        if not lib.get("tested", True):
            parts.append("untested here")
        rows.append((f"blas:{lib['label']}", "; ".join(parts) + f"; {lib['path']}"))
    return rows


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def _numpy_build(info: NodeInfo) -> str:
    blas = info.numpy_blas.get("blas") or {}
    simd = info.numpy_blas.get("simd") or {}
    parts = [f"BLAS {blas.get('name') or '?'} {blas.get('version') or ''}".strip()]
    if simd:
        parts.append(
            "SIMD baseline " + " ".join(simd.get("baseline", []) or ["-"])
            + ", found " + " ".join(simd.get("found", []) or ["-"])
        )  # fmt: skip
    return "; ".join(parts)


# -- calibrations ---------------------------------------------------------------------------


def _node_of(doc: dict[str, Any]) -> NodeInfo | None:
    from profiler.results import NodeInfo

    for job in doc.get("jobs", []):
        if job.get("node_info"):
            return NodeInfo.from_dict(job["node_info"])
    return None


def print_calibration(doc: dict[str, Any]) -> None:
    """A calibration (the `show --json` document) as tables and a few lines of why."""
    out = console()
    node = _node_of(doc)
    hosts = sorted({n["hostname"] for n in doc.get("nodes", [])}) or ["-"]
    out.print(
        f"[bold]calibration {doc['calibration_id']}[/] node type [bold]{safe(doc['node_type'])}[/] "
        f"status [bold]{safe(doc['status'])}[/] executor {safe(doc.get('executor'))} profile "
        f"{safe(doc.get('profile'))} on {safe(', '.join(hosts))}"
    )
    for n_doc in doc.get("nodes", []):
        libs = "; ".join(blas_label(b) for b in n_doc.get("blas", []))
        out.print(
            f"  {safe(n_doc['hostname'])}: {safe(n_doc.get('cpu_model'))}, "
            f"{safe(n_doc.get('cores'))} cores; {safe(libs or 'no BLAS found')}"
        )
    _print_conditions(doc.get("conditions"))
    points = [m for m in doc.get("measurements", []) if m.get("workers", 1) == 1]
    preset = doc.get("preset") or {}
    if not points:
        out.print("no measurements")
    by_blas: dict[str, list[dict[str, Any]]] = {}
    for m in points:
        by_blas.setdefault(m.get("blas", NUMPY_BLAS), []).append(m)
    own = {lib["label"]: lib for lib in preset.get("libraries") or ()}
    for label, group in by_blas.items():
        if len(by_blas) > 1:
            out.print(f"[bold]{safe(label)}[/]:")
        chosen = preset if label == preset.get("default_blas", NUMPY_BLAS) else own.get(label, {})
        _print_points(group, chosen, node)
    layouts = [m for m in doc.get("measurements", []) if m.get("phase", "").startswith("layout")]
    if layouts:
        _print_layouts(layouts, preset)
    if preset:
        print_choice(preset)
    print_libraries(doc)
    for job in doc.get("jobs", []):
        v = job.get("verification")
        if v:
            mark = "verified" if v["passed"] else "NOT verified"
            out.print(
                safe(
                    f"preset {mark} in a fresh process: n={v['n']} {v['dtype']} on "
                    f"{v['threads']} threads {v['fresh_gflops']:.1f} GFLOP/s = "
                    f"{v['ratio']:.0%} of the sweep's {v['sweep_gflops']:.1f}"
                    + (f" ({v['note']})" if v.get("note") else "")
                ),
                soft_wrap=True,
            )
        if job.get("state") not in (None, "COMPLETED") or job.get("reason"):
            out.print(
                safe(
                    f"job {job.get('external_id')}: {job.get('state')}"
                    + (f": {job['reason']}" if job.get("reason") else "")
                ),
                soft_wrap=True,
            )
    if preset and doc.get("preset_note"):
        adopted = doc.get("preset_adopted", True)
        label = "[bold]preset adopted[/]" if adopted else "[bold red]preset NOT adopted[/]"
        out.print(f"{label} ({safe(str(doc.get('preset_quality')))}): ", end="")
        # one logical line, however long: a script reading the output gets it whole
        out.print(safe(doc["preset_note"], markup=False), markup=False, soft_wrap=True)


def _print_conditions(conditions: dict[str, Any] | None) -> None:
    """The verdict on the node's conditions, with its reasons and figures."""
    out = console()
    if not conditions:
        out.print("conditions: not measured")
        return
    verdict = safe(conditions.get("verdict", VERDICT_UNKNOWN))
    style = "green" if verdict == QUIET else "bold red"
    figures = []
    for c in conditions.get("nodes", []):
        others, steal = c.get("others_cpu_fraction"), c.get("steal_fraction")
        before, after = c.get("load_before") or ["?"], c.get("load_after") or ["?"]
        parts = [f"load {before[0]} -> {after[0]}"]
        if others is not None:
            parts.append(f"others took {others:.0%} of the CPU time")
        if steal:
            parts.append(f"steal {steal:.0%}")
        parts.append(f"{c.get('outlier_fraction') or 0:.0%} outlier samples")
        parts += list(c.get("notes", ()))
        figures.append(safe(f"{c.get('hostname', '?')}: " + ", ".join(map(str, parts))))
    out.print(f"conditions: [{style}]{verdict}[/]")
    for reason in conditions.get("reasons", []):
        out.print(safe(f"  ! {reason}"))
    for line in figures:
        out.print(f"  {line}")
    unstable = [u for c in conditions.get("nodes", []) for u in c.get("unstable") or ()]
    for u in unstable:
        states = " and ".join(
            f"{s['gflops']:.1f} GFLOP/s in {s['runs']} of {u['runs']} runs" for s in u["states"]
        )
        out.print(safe(f"  unstable: n={u['n']} {u['dtype']} on {u['threads']} threads: {states}"))
    if unstable:
        out.print(
            "  unstable points: a job's speed at that count varies that much from one run to "
            "the next; an exclusive node (--exclusive) or pinned threads (OMP_PROC_BIND=close, "
            "OMP_PLACES=cores) may steady it"
        )


def _print_points(
    points: Sequence[dict[str, Any]], preset: dict[str, Any], node: NodeInfo | None
) -> None:
    """GFLOP/s per (dtype, n) and thread count; the count chosen for each size's class."""
    from rich.table import Table

    out = console()
    chosen = {}
    for c in preset.get("size_classes", []):
        for n in c.get("sizes") or [c["measured_n"]]:
            chosen[n] = c["threads"]
    threads = sorted({m["threads"] for m in points})
    out.print("GEMM GFLOP/s (percent of theoretical peak); * = chosen for the size's class")
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
        line = [safe(dtype), safe(n)]
        for t in threads:
            m = cells.get(t)
            if m is None:
                line.append("")
                continue
            text = f"{m['gflops']:.1f}"
            if len(m.get("runs") or ()) > 1:
                text += f" ±{m.get('spread', 0.0):.0%}"
            peak = node.peak_gflops(dtype, t) if node else None
            if peak:
                text += f" ({m['gflops'] / peak:.0%})"
            if not m.get("threads_verified", True):
                text += " !"
            if m.get("outliers"):
                text += " ~"
            if chosen.get(n) == t:
                text = f"[bold green]{text} *[/]"
            line.append(text)
        table.add_row(*line)
    out.print(table)
    if node and node.peak_gflops_f64:
        out.print(f"theoretical peak: {safe(node.peak_note)}")
        if any(
            (peak := node.peak_gflops(m["dtype"], m["threads"])) and m["gflops"] > peak
            for m in points
        ):
            out.print(
                "  above 100%: the cores ran faster than that clock (turbo/boost), "
                "so the peak is understated"
            )
    elif node:
        out.print(f"theoretical peak {safe(node.peak_note)}")
    if any(not m.get("threads_verified", True) for m in points):
        out.print(
            "! = the thread limit did not hold (numpy's: threadpoolctl reported another "
            "count; another library: another count of threads ran)"
        )
    runs = max((len(m.get("runs") or ()) for m in points), default=0)
    if runs > 1:
        out.print(
            f"± = the spread between the point's {runs} worker processes (standard deviation "
            "of their times over the mean, which is the figure): a job's speed at that count "
            "varies about that much from one run to the next"
        )
    if any(m.get("outliers") for m in points):
        out.print("~ = some samples were outliers (kept; each run's median is its figure)")


def _print_layouts(points: Sequence[dict[str, Any]], preset: dict[str, Any]) -> None:
    """Measured layouts: aggregate GFLOP/s of W processes x T threads, the oversubscribed
    contrast beside, the T the preset chose for each W marked."""
    from rich.table import Table

    out = console()
    chosen = {
        (x.get("size_class"), x["workers"]): x["threads"]
        for x in preset.get("layouts", [])
        if x.get("size_class")
    }
    classes = {n: c["name"] for c in preset.get("size_classes", []) for n in c.get("sizes", [])}
    table = Table()
    for col in ("n", "processes", "threads each", "aggregate GFLOP/s", "at the BLAS default"):
        table.add_column(col, justify="right")
    contrast = {
        (m["n"], m["workers"]): m["gflops"]
        for m in points
        if m.get("phase") == "layout-oversubscribed"
    }
    for m in sorted(
        (m for m in points if m.get("phase") == "layout"),
        key=lambda m: (m["n"], m["workers"], m["threads"]),
    ):
        mark = chosen.get((classes.get(m["n"]), m["workers"])) == m["threads"]
        text = f"{m['gflops']:.1f}" + (" *" if mark else "")
        over = contrast.get((m["n"], m["workers"]))
        table.add_row(
            str(m["n"]),
            str(m["workers"]),
            str(m["threads"]),
            f"[bold green]{text}[/]" if mark else text,
            f"{over:.1f}" if over is not None else "-",
        )
    out.print("job layouts measured (processes x threads each, all at once); * = chosen")
    out.print(table)


def print_choice(preset: dict[str, Any]) -> None:
    """The count chosen per size class, and what it costs each dtype where no count is
    within the tolerance of every dtype's best."""
    out = console()
    tol = preset.get("tolerance", CHOICE_TOLERANCE)
    out.print(
        f"[bold]chosen threads[/] (smallest count within {tol:.0%} of every size's and "
        "dtype's best, or within the measured spread):"
    )
    for c in preset.get("size_classes", []):
        bound = f"n <= {c['max_n']}" if c.get("max_n") else "larger"
        sizes = ", ".join(str(n) for n in c.get("sizes") or [c["measured_n"]])
        reference = (c.get("dtypes") or ["float64"])[0]
        why = (
            f"{reference}'s best is {_threads(c['best_threads'])} at {c['best_gflops']:.1f} GFLOP/s"
            if c["best_threads"] != c["threads"]
            else "the fastest"
        )
        losses = c.get("losses") or {}
        cost = ""
        if not c.get("within_tolerance", True):
            cost = "; no count is within the tolerance for every dtype: " + ", ".join(
                f"{d} loses {loss:.0%}" for d, loss in losses.items() if loss > 0
            )
        origin = c.get("calibration_id")
        came = (
            f" (kept from calibration {origin})"
            if origin and origin != preset.get("calibration_id")
            else ""
        )
        out.print(
            safe(
                f"  {c['name']:>6} ({bound}, measured at n = {sizes}): {_threads(c['threads'])}, "
                f"{c['gflops']:.1f} GFLOP/s; {why}{cost}{came}"
            )
        )
    rows = [x for x in preset.get("layouts", []) if x.get("size_class") is None]
    if rows:
        layouts = ", ".join(f"{x['workers']}x{x['threads']}" for x in rows)
        out.print(f"  other job layouts (processes x threads each, derived): {layouts}")


def _threads(count: object) -> str:
    return "1 thread" if count == 1 else f"{count} threads"
