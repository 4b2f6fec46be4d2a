"""`blasprof probe`: what this node is."""

from profiler.cli import display
from profiler.cli._common import handle_errors
from profiler.cli.options import JsonOption


@handle_errors
def probe_command(json_output: JsonOption = False) -> None:
    """Show this node: CPU (and hypervisor), topology, memory, usable CPUs, Slurm
    allocation, numpy, and every BLAS library found on it: version, threading layer,
    kernel, the variables it obeys in order, path, and which one libblas.so.3 resolves to.
    BLASPROF_BLAS_PATH (directories, colon-separated) adds a site's own libraries.

    Example:  blasprof probe --json | jq '.libraries[] | {label, version, variables}'
    """
    from profiler.blas.search import site_path_problems
    from profiler.errors import UsageError
    from profiler.measure.probe import probe

    problems = site_path_problems()
    if problems:
        raise UsageError(problems[0])
    info = probe()
    if json_output:
        display.print_json(info.to_dict())
    else:
        from profiler.cli import display_node

        display_node.print_probe(info)
