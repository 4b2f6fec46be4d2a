"""`blasprof probe`: what this node is."""

from profiler.cli import display
from profiler.cli._common import handle_errors
from profiler.cli.options import JsonOption


@handle_errors
def probe_command(json_output: JsonOption = False) -> None:
    """Show this node: CPU, topology, memory, usable CPUs, Slurm allocation, BLAS, numpy.

    Example:  blasprof probe --json | jq .peak_gflops_f64
    """
    from profiler.probe import probe

    info = probe()
    if json_output:
        display.print_json(info.to_dict())
    else:
        from profiler.cli import display_node

        display_node.print_probe(info)
