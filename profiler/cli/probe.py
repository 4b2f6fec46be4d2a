"""`blasprof probe`: what this node is."""

from __future__ import annotations

from profiler.cli._common import JsonOption, handle_errors, print_json
from profiler.cli._common import console as _console


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


@handle_errors
def probe_command(json_output: JsonOption = False) -> None:
    """Show this node: CPU, topology, memory, usable CPUs, Slurm allocation, BLAS, numpy.

    Example:  blasprof probe --json | jq .peak_gflops_f64
    """
    from rich.table import Table

    from profiler.probe import probe

    info = probe()
    if json_output:
        print_json(info.to_dict())
        return
    console = _console()
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
    for key, value in sorted(info.slurm.items()):
        rows.append((key, value))
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
    console.print(table)


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
