"""`blasprof calibrate`: measure, store, and write presets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from profiler.cli import display
from profiler.cli._common import TerminalSink, handle_errors, open_db
from profiler.cli.options import (
    ExecutorName,
    JsonOption,
    NodeTypesOption,
    Profile,
    parse_dtypes,
    parse_sizes,
    parse_threads,
)
from profiler.statuses import RUNNING

if TYPE_CHECKING:
    from profiler.calibration.finish import CalibrationReport


@handle_errors
def calibrate_command(
    executor: Annotated[
        ExecutorName,
        typer.Option(
            help="Where it runs: debug (this process), local (a separate process), slurm "
            "(jobs per node type), or auto (slurm with --cluster and sbatch, else local)."
        ),
    ] = ExecutorName.auto,
    node_type: NodeTypesOption = None,
    profile: Annotated[
        Profile, typer.Option(help="quick (about a minute), standard or full.")
    ] = Profile.quick,
    sizes: Annotated[
        str | None, typer.Option(help="Matrix orders, e.g. 256,1024,4096 (default: profile's).")
    ] = None,
    dtypes: Annotated[str | None, typer.Option(help="float64,float32 (default: both).")] = None,
    threads: Annotated[
        str | None, typer.Option(help="Thread counts, e.g. 1,2,4, or 'all' (default).")
    ] = None,
    exhaustive: Annotated[
        bool, typer.Option("--exhaustive", help="Measure every thread count, not a search.")
    ] = False,
    min_time: Annotated[
        float | None, typer.Option(help="Minimum seconds per sample (default: profile's).")
    ] = None,
    samples: Annotated[
        int | None, typer.Option(help="Samples per point (default: profile's).")
    ] = None,
    runs: Annotated[
        int | None,
        typer.Option(
            help="Worker processes each point is measured in, spread over the calibration "
            "(default: profile's; 3 quick, 5 standard, 10 full)."
        ),
    ] = None,
    tolerance: Annotated[
        float | None, typer.Option(help="Choose the fewest threads within this of the best.")
    ] = None,
    blas: Annotated[
        str,
        typer.Option(
            help="BLAS libraries to sweep, comma-separated: labels as `blasprof probe` prints "
            "them (numpy, openblas-openmp, blis-openmp, ...), library files, or 'all' (every "
            "library found that can run a GEMM). Each is swept through the same worker runs."
        ),
    ] = "numpy",
    verify: Annotated[
        bool, typer.Option(help="Check the preset in a fresh process started with it.")
    ] = True,
    layouts: Annotated[
        bool | None,
        typer.Option(
            "--layouts/--no-layouts",
            help="Also measure job layouts (W processes x T threads at once); default: on "
            "with the standard and full profiles.",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Adopt the preset even if the node was busy or the preset did not verify.",
        ),
    ] = False,
    partial_node: Annotated[
        bool,
        typer.Option(
            "--partial-node",
            help="Calibrate this machine although this process may use fewer CPUs than it "
            "has (taskset, a cgroup quota); its preset then caps the node type's jobs at "
            "those CPUs. Refused without it.",
        ),
    ] = False,
    cluster: Annotated[
        Path | None,
        typer.Option(
            "--cluster",
            help="TOML file describing the cluster's node types (see deploy/slurm-local).",
            dir_okay=False,
        ),
    ] = None,
    nodes_per_type: Annotated[
        int | None,
        typer.Option(
            help="Slurm: calibrate this many distinct nodes of each type, one job pinned to "
            "each (default: the file's nodes)."
        ),
    ] = None,
    all_nodes: Annotated[
        bool,
        typer.Option(
            "--all-nodes",
            help="Slurm: calibrate every node of each type that is up and has the type's "
            "features (one job per node).",
        ),
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            help="Slurm: --no-wait records the jobs and returns; `blasprof collect` later.",
        ),
    ] = True,
    json_output: JsonOption = False,
) -> None:
    """Measure GEMM speed per size and thread count, store it, and write presets.

    Examples:

      blasprof calibrate --profile quick

      blasprof calibrate --sizes 256,1024,4096 --threads all --json

      blasprof calibrate --node-type login-amd --exhaustive

      blasprof calibrate --blas numpy,openblas-openmp,blis-openmp

      blasprof calibrate --cluster cluster.toml --node-type A --node-type B --no-wait

    A preset is adopted (written for jobs) unless the node was busy while it measured and a
    clean preset exists, or the preset did not verify in a fresh process; then the command
    exits 1 and says why. --force adopts it anyway.
    """
    from profiler.calibration.request import build_request
    from profiler.calibration.run import run_calibration
    from profiler.calibration.signals import noted

    request = build_request(
        executor=executor.value,
        node_types=node_type or [],
        profile=profile.value,
        sizes=parse_sizes(sizes) if sizes is not None else None,
        dtypes=parse_dtypes(dtypes) if dtypes is not None else None,
        threads=parse_threads(threads) if threads is not None else None,
        min_time=min_time,
        samples=samples,
        runs=runs,
        exhaustive=exhaustive,
        tolerance=tolerance,
        verify=verify,
        cluster=cluster,
        nodes_per_type=nodes_per_type,
        all_nodes=all_nodes,
        wait=wait,
        layouts=layouts,
        force=force,
        partial_node=partial_node,
        blas=tuple(part.strip() for part in blas.split(",")),
    )
    database = open_db()
    # A signal from here on is noted, not raised: what was measured is stored first. One
    # that comes once everything is stored interrupts nothing: the command ends as it would
    # have, down to its exit code.
    with noted() as signals:
        reports = run_calibration(
            request,
            database,
            sink=TerminalSink(show_progress=os.isatty(2) or not json_output),
            wait=wait,
            signals=signals,
        )
        stopped_by = signals.name
        docs = [database.get_calibration(r.calibration_id).to_json() for r in reports]
        _report(reports, docs, json_output=json_output, wait=wait, stopped_by=stopped_by)


def _report(
    reports: list[CalibrationReport],
    docs: list[dict[str, Any]],
    *,
    json_output: bool,
    wait: bool,
    stopped_by: str,
) -> None:
    """Print how each calibration ended and exit with what it came to (``stopped_by``: the
    signal that stopped it, empty when none did)."""
    from profiler.calibration.outcome import ending
    from profiler.calibration.signals import INTERRUPTED_EXIT

    for doc, r in zip(docs, reports, strict=True):
        doc["preset_files"] = [str(p) for p in r.preset_paths]
    if json_output:
        display.print_json(docs[0] if len(docs) == 1 else {"calibrations": docs})
    elif any(r.status == RUNNING for r in reports):
        display.print_pending(docs)
    else:
        from profiler.cli import display_node

        for doc, r in zip(docs, reports, strict=True):
            display_node.print_calibration(doc)
            adopted = r.adoption.adopted if r.adoption is not None else None
            display.print_preset_paths(r.node_type, r.status, r.preset_paths, adopted)
    running = any(r.status == RUNNING for r in reports)
    if stopped_by or (running and wait):  # running and waited: Ctrl-C on a batch system
        if not running:
            stored = ", ".join(f"{r.calibration_id} ({r.status})" for r in reports)
            display.err(f"interrupted ({stopped_by}); what was measured is stored: {stored}")
        raise typer.Exit(INTERRUPTED_EXIT)
    ended = ending(reports)
    for line in ended.lines:
        display.err(line)
    if ended.code:
        raise typer.Exit(ended.code)
