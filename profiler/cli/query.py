"""`blasprof list` and `blasprof show`: past calibrations."""

from __future__ import annotations

from typing import Annotated

import typer

from profiler.cli import display
from profiler.cli._common import handle_errors, open_db
from profiler.cli.options import JsonOption, NodeTypeOption, check_id, parse_since


@handle_errors
def list_command(
    node_type: NodeTypeOption = None,
    since: Annotated[
        str | None, typer.Option(help="Only calibrations newer than this: 30d, 12h, a date.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """List past calibrations, newest first.

    Examples:  blasprof list --since 30d     blasprof list --node-type typea --json
    """
    if node_type is not None:
        from profiler.names import check_node_type

        check_node_type(node_type)
    when = parse_since(since) if since is not None else None
    rows = open_db().list_calibrations(node_type=node_type, since=when)
    if json_output:
        display.print_json([r.summary_json() for r in rows])
    elif not rows:
        print(
            "no calibrations"
            + (f" for node type {node_type}" if node_type else "")
            + "; run `blasprof calibrate` to make one"
        )
    else:
        display.print_calibration_list(rows)


@handle_errors
def show_command(
    calibration_id: Annotated[
        int, typer.Argument(metavar="ID", help="Calibration id (see `blasprof list`).")
    ],
    json_output: JsonOption = False,
) -> None:
    """Show one calibration: nodes, BLAS, every point, the preset chosen.

    Example:  blasprof show 3 --json | jq '.measurements[] | [.n, .threads, .gflops]'
    """
    doc = open_db().get_calibration(check_id(calibration_id)).to_json()
    if json_output:
        display.print_json(doc)
    else:
        display.print_calibration(doc)
