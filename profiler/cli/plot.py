"""`blasprof plot`: a calibration's curves, or a node type's trend, as PNG or SVG."""

from pathlib import Path
from typing import Annotated

import typer

from profiler.cli._common import handle_errors, open_db
from profiler.cli.options import NodeTypeOption, check_id, parse_since
from profiler.errors import UsageError


@handle_errors
def plot_command(
    calibration_id: Annotated[
        int | None, typer.Argument(metavar="[ID]", help="Calibration id (see `blasprof list`).")
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The image: FILE.png or FILE.svg.")
    ] = Path("blasprof.png"),
    node_type: NodeTypeOption = None,
    history: Annotated[
        bool, typer.Option("--history", help="The node type's trend over its calibrations.")
    ] = False,
    since: Annotated[
        str | None, typer.Option(help="--history: only calibrations newer than this (52w).")
    ] = None,
) -> None:
    """Draw GFLOP/s against threads for one calibration (theoretical peak dashed, the
    preset's counts starred), or --history of a node type. Needs matplotlib:
    pip install 'blasprof[plot]'.

    Examples:

      blasprof plot 3 -o calibration-3.png

      blasprof plot --node-type typea --history --since 26w -o typea.svg
    """
    from profiler.history.plots import check_output, require_matplotlib

    require_matplotlib()
    check_output(output)
    if history:
        if node_type is None or calibration_id is not None:
            raise UsageError("plot --history: give --node-type NAME and no calibration id")
        from profiler.history.selection import Selection

        start = parse_since(since) if since is not None else None
        points = open_db().select_points(
            Selection(node_type=node_type, start=start), with_samples=False
        )
        if not points:
            raise UsageError(f"plot --history: node type {node_type} has no stored points")
        from profiler.history.plots import plot_history

        plot_history(points, node_type, output)
    else:
        if calibration_id is None or node_type is not None or since is not None:
            raise UsageError(
                "plot: give a calibration ID, or --node-type NAME --history for a trend"
            )
        doc = open_db().get_calibration(check_id(calibration_id)).to_json()
        if not doc["measurements"]:
            raise UsageError(f"plot: calibration {calibration_id} has no measurements to draw")
        from profiler.history.plots import plot_calibration

        plot_calibration(doc, output)
    typer.echo(f"wrote {output}", err=True)
