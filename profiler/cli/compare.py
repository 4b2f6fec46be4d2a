"""`blasprof compare A B`: did B get slower than A? Exit 1 when it did."""

from typing import TYPE_CHECKING, Annotated

import typer

from profiler.cli import display
from profiler.cli._common import handle_errors, open_db
from profiler.cli.options import (
    JsonOption,
    NodeTypeOption,
    TableFormatOption,
    check_tolerance,
    output_format,
    parse_selection,
)
from profiler.errors import UsageError
from profiler.results import is_blas_label
from profiler.settings import REGRESSION_TOLERANCE

if TYPE_CHECKING:
    from db.database import Database
    from profiler.history.selection import Point

_SIDE_HELP = "Calibration id(s) such as 12 or 12,13, or a window such as now-30d:now"


@handle_errors
def compare_command(
    a: Annotated[str, typer.Argument(metavar="A", help=f"{_SIDE_HELP} (the reference).")],
    b: Annotated[str, typer.Argument(metavar="B", help=f"{_SIDE_HELP} (the one judged).")],
    node_type: NodeTypeOption = None,
    tolerance: Annotated[
        float,
        typer.Option(help="B slower than A by more than this fraction can be a regression."),
    ] = REGRESSION_TOLERANCE,
    blas: Annotated[
        str | None,
        typer.Option(
            help="The BLAS library both sides are read through (a label as `blasprof probe` "
            "prints it; default numpy). A side written ID:LABEL names its own."
        ),
    ] = None,
    json_output: JsonOption = False,
    fmt: TableFormatOption = None,
) -> None:
    """Compare two calibrations, or a node type over two time windows, point by point.

    For each (node type, dtype, size, threads): the median GFLOP/s of each side with a 95%
    bootstrap interval from the stored samples, the change, and a verdict. A regression is
    B slower than A by more than --tolerance with B's whole interval below A's; then the
    exit code is 1, so that a script can guard an upgrade with it. Says when the BLAS
    library or version differ between A and B.

    Examples:

      blasprof compare 12 15

      blasprof compare --node-type typea now-60d:now-30d now-30d:now --json

      blasprof compare 12 15 --blas blis-openmp

      blasprof compare 12:numpy 12:blis-openmp   (which library is faster, per point)
    """
    from profiler.history.compare import compare

    how = output_format(json_output, fmt)
    if blas is not None and not is_blas_label(blas):
        raise UsageError(
            f"--blas: {blas[:40]!r} is not a library label; give one as `blasprof probe` "
            "prints it (numpy, blis-openmp, ...)"
        )
    side_a = parse_selection(a, node_type, blas)
    side_b = parse_selection(b, node_type, blas)
    check_tolerance(tolerance)
    database = open_db()
    points_a = database.select_points(side_a)
    points_b = database.select_points(side_b)
    for name, side, points in (("A", side_a, points_a), ("B", side_b, points_b)):
        if not points:
            raise UsageError(
                f"{name} ({side.describe()}) has no stored measurements to compare; "
                "`blasprof list` shows what is stored"
            )
    shared = sorted({p.calibration_id for p in points_a} & {p.calibration_id for p in points_b})
    if shared and side_a.library == side_b.library:
        # allowed (a calibration against itself is a sanity check), but never unnoticed
        display.err(
            f"note: A and B share calibration(s) {', '.join(map(str, shared))}; those points "
            "are compared with themselves"
        )
    result = compare(
        points_a, points_b, tolerance=tolerance, floors=_noise_floors(database, points_b)
    )
    if how == "json":
        doc = result.to_json()
        display.print_json(
            {
                "a": {**side_a.to_json(), **_side_summary(points_a)},
                "b": {**side_b.to_json(), **_side_summary(points_b)},
                **doc,
            }
        )
    elif how == "csv":
        from profiler.cli.display_history import comparison_csv

        comparison_csv(result)
    else:
        from profiler.cli.display_history import print_comparison

        print_comparison(side_a, side_b, result)
    if result.regressions:
        raise typer.Exit(1)


def _noise_floors(
    database: "Database", points_b: "list[Point]"
) -> "dict[tuple[str, int, int], float]":
    """The noise floors of B's node type (one type only) from its calibrations before B."""
    from profiler.history.compare import noise_floors
    from profiler.history.selection import Selection

    types = {p.node_type for p in points_b}
    if len(types) != 1:
        return {}
    first_b = min(p.created_at for p in points_b)
    history = database.select_points(Selection(node_type=types.pop(), end=first_b))
    return noise_floors(history)


def _side_summary(points: "list[Point]") -> dict[str, object]:
    return {
        "calibrations": sorted({p.calibration_id for p in points}),
        "node_types": sorted({p.node_type for p in points}),
        "hosts": sorted({p.hostname for p in points if p.hostname}),
        "blas": sorted({p.blas for p in points if p.blas}),
        "points": len(points),
    }
