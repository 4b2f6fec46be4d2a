"""`blasprof list` and `blasprof show`: past calibrations."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

import typer

from profiler.cli._common import (
    JsonOption,
    NodeTypeOption,
    check_id,
    console,
    handle_errors,
    open_db,
    print_json,
)
from profiler.errors import UsageError

_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str) -> dt.datetime:
    """``30d``, ``12h``, ``2w``, ``45m`` or an ISO date -> an aware UTC datetime."""
    match = re.fullmatch(r"([0-9]{1,9})([mhdw])", text.strip())
    if match:
        try:
            return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=int(match[1]) * _UNITS[match[2]])
        except OverflowError:
            raise UsageError(f"--since: {text!r} reaches back before year 1") from None
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since: {text!r} is not a duration or a date; accepted: 45m, 12h, 30d, 2w "
            "or an ISO date such as 2026-01-31"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


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
        from profiler.preset import check_node_type

        check_node_type(node_type)
    when = parse_since(since) if since is not None else None
    rows = open_db().list_calibrations(node_type=node_type, since=when)
    if json_output:
        print_json([r.summary_json() for r in rows])
        return
    from rich.table import Table

    if not rows:
        print(
            "no calibrations"
            + (f" for node type {node_type}" if node_type else "")
            + "; run `blasprof calibrate` to make one"
        )
        return
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
        print_json(doc)
        return
    from profiler.cli._report import print_calibration

    print_calibration(doc)
