"""`blasprof nodes`: every node of a type with its latest figures; slow ones flagged."""

from typing import Annotated

import typer

from profiler.cli import display
from profiler.cli._common import handle_errors, open_db
from profiler.cli.options import JsonOption, NodeTypeOption, check_tolerance
from profiler.settings import SLOW_NODE_FLOOR


@handle_errors
def nodes_command(
    node_type: NodeTypeOption = None,
    floor: Annotated[
        float,
        typer.Option(help="A suspect is also at least this fraction below the type's median."),
    ] = SLOW_NODE_FLOOR,
    json_output: JsonOption = False,
) -> None:
    """The fleet view: each node's latest figures against its siblings of the same type.

    A node's standing is the median, over the points it measured, of its GFLOP/s over the
    type's median there. A node whose standing is below the type's median by more than
    3.5 robust standard deviations (1.4826 x MAD) and by more than --floor is a suspect.

    Examples:  blasprof nodes     blasprof nodes --node-type typea --json
    """
    from profiler.history.fleet import standings

    check_tolerance(floor, "--floor")
    reports = standings(open_db().latest_node_points(node_type), floor=floor)
    if json_output:
        display.print_json([r.to_json() for r in reports])
    elif not reports:
        print("no node has stored figures yet; run `blasprof calibrate` first")
    else:
        from profiler.cli.display_history import print_fleet

        print_fleet(reports)
