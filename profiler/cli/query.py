"""`blasprof list`, `show` and `best`: past calibrations and the presets in force.

A stored row that cannot be read fails ``show`` (a calibration is shown whole or not at
all); ``list`` and ``best`` show every other calibration or node type, then name each one
they left out on stderr and exit 1.
"""

from typing import TYPE_CHECKING, Annotated

import typer

from profiler.cli import display
from profiler.cli._common import handle_errors, open_db
from profiler.cli.options import (
    MAX_ID,
    JsonOption,
    NodeTypeOption,
    Status,
    TableFormatOption,
    check_id,
    output_format,
    parse_since,
)

if TYPE_CHECKING:
    from db import Database
    from db.errors import BadRow


@handle_errors
def list_command(
    node_type: NodeTypeOption = None,
    since: Annotated[
        str | None, typer.Option(help="Only calibrations newer than this: 30d, 12h, a date.")
    ] = None,
    status: Annotated[
        Status | None, typer.Option(help="Only calibrations with this status.")
    ] = None,
    blas: Annotated[
        str | None,
        typer.Option(help="Only calibrations run on this BLAS: openblas, 0.3.26, openblas@0.3.26."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, max=MAX_ID, help="At most this many (the newest).")
    ] = None,
    json_output: JsonOption = False,
    fmt: TableFormatOption = None,
) -> None:
    """List past calibrations, newest first.

    Examples:  blasprof list --since 30d     blasprof list --node-type typea --json

      blasprof list --blas openblas@0.3.26 --status complete --format csv
    """
    from profiler.history.selection import check_blas_filter

    how = output_format(json_output, fmt)
    when = parse_since(since) if since is not None else None
    database, bad = open_db(), []
    rows = database.list_calibrations(
        node_type=node_type,
        since=when,
        status=status.value if status else None,
        blas=check_blas_filter(blas) if blas is not None else None,
        limit=limit,
        bad=bad,
    )
    if how == "json":
        display.print_json([r.summary_json() for r in rows])
    elif how == "csv":
        from profiler.cli.display_history import calibration_list_csv

        calibration_list_csv(rows)
    elif rows:
        display.print_calibration_list(rows)
    elif not bad:
        print("no calibrations match; run `blasprof calibrate` to make one")
    _left_out(database, bad, "calibration(s) left out of the list")


@handle_errors
def show_command(
    calibration_id: Annotated[
        int, typer.Argument(metavar="ID", help="Calibration id (see `blasprof list`).")
    ],
    json_output: JsonOption = False,
    fmt: TableFormatOption = None,
) -> None:
    """Show one calibration: nodes, BLAS, every point, curves of GFLOP/s against threads,
    and the preset chosen. --format csv prints one row per measurement.

    Example:  blasprof show 3 --json | jq '.measurements[] | [.n, .threads, .gflops]'
    """
    how = output_format(json_output, fmt)
    doc = open_db().get_calibration(check_id(calibration_id)).to_json()
    if how == "json":
        display.print_json(doc)
        return
    from profiler.cli import display_history

    if how == "csv":
        display_history.measurements_csv(doc)
    else:
        from profiler.cli import display_node

        display_node.print_calibration(doc)
        display_history.print_curves(doc)


@handle_errors
def best_command(
    node_type: NodeTypeOption = None,
    json_output: JsonOption = False,
) -> None:
    """The thread counts in force now: per node type, size class and job layout, and the
    calibration each came from.

    Examples:  blasprof best     blasprof best --node-type typea --json
    """
    database, bad = open_db(), []
    current = database.current_presets(node_type, bad=bad)
    if json_output:
        display.print_json(
            [
                {
                    "node_type": cp.node_type,
                    "calibration_id": cp.calibration_id,
                    "calibration_created_at": cp.calibration_created_at.isoformat(),
                    "calibration_status": cp.calibration_status,
                    "preset_stored_at": cp.stored_at.isoformat(),
                    "blas": list(cp.blas),
                    "calibrated_cpus": cp.preset.calibrated_cpus,
                    "size_classes": [
                        {
                            "name": c.name,
                            "max_n": c.max_n,
                            "measured_n": c.measured_n,
                            "threads": c.threads,
                            "gflops": c.gflops,
                            "best_threads": c.best_threads,
                            "best_gflops": c.best_gflops,
                            "sizes": list(c.sizes),
                            "dtypes": list(c.dtypes),
                            "losses": c.losses,
                            "within_tolerance": c.within_tolerance,
                            # where each class's choice comes from
                            "calibration_id": c.calibration_id
                            or cp.preset.calibration_id
                            or cp.calibration_id,
                        }
                        for c in cp.preset.size_classes
                    ],
                    "layouts": {
                        name: [{"workers": w, "threads": t} for w, t in rows]
                        for name, rows in cp.preset.layout_table().items()
                    },
                }
                for cp in current
            ]
        )
    elif current:
        from profiler.cli.display_history import print_best

        print_best(current)
    elif not bad:
        print("no presets stored yet; run `blasprof calibrate` to make one")
    _left_out(database, bad, "node type(s) left out above: their preset cannot be read")


def _left_out(database: "Database", bad: "list[BadRow]", what: str) -> None:
    """One line per stored row that was left out, then exit 1 (nothing to do if none)."""
    if not bad:
        return
    for e in bad:
        display.err(f"error: {e.at(database.url)}")
    display.err(f"{len(bad)} {what}")
    raise typer.Exit(1)
