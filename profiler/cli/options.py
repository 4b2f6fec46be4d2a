"""What the command line accepts: shared options, the choices derived from their
registries, and the parsing of option strings into checked values.

Every parser raises ``UsageError`` with one line naming the option, what was given and what
is accepted. Choices (``--profile``, ``--executor``, ``--format``) come from the tables that
define them, so adding a profile, an executor or a format touches one place.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from jobs.registry import AUTO, BACKENDS
from profiler.errors import UsageError
from profiler.statuses import CALIBRATION_STATUSES

if TYPE_CHECKING:
    from profiler.history.selection import Selection
from profiler.jobstart.forms import FORMATS
from profiler.settings import ALL_THREADS, DTYPES, PROFILES, ThreadCounts

__all__ = [
    "MAX_ID",
    "MAX_SIZE",
    "ExecutorName",
    "Format",
    "Shell",
    "WorkersOption",
    "IdsArgument",
    "JsonOption",
    "NodeTypeArgument",
    "NodeTypeOption",
    "NodeTypesOption",
    "OutputFormat",
    "Profile",
    "Status",
    "TableFormatOption",
    "check_id",
    "check_ids",
    "check_tolerance",
    "output_format",
    "parse_dtypes",
    "parse_selection",
    "parse_since",
    "parse_sizes",
    "parse_threads",
    "parse_window",
]

Profile = StrEnum("Profile", {name: name for name in PROFILES})  # type: ignore[misc]
ExecutorName = StrEnum("ExecutorName", {n: n for n in (AUTO, *BACKENDS)})  # type: ignore[misc]
Format = StrEnum("Format", {name: name for name in FORMATS})  # type: ignore[misc]
Status = StrEnum("Status", {name: name for name in CALIBRATION_STATUSES})  # type: ignore[misc]
#: how a history view prints: a table for people, CSV or JSON for programs
OutputFormat = StrEnum("OutputFormat", {n: n for n in ("table", "csv", "json")})  # type: ignore[misc]
#: the shells `blasprof env` and `wrap` write for: sh (sh, bash, zsh, ksh) and csh (tcsh)
Shell = StrEnum("Shell", {name: name for name in ("sh", "csh")})  # type: ignore[misc]
WorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        max=99999,
        help="Processes this command runs that share its CPUs; under srun or mpirun each "
        "task runs N (default: 1 per launcher task, else BLASPROF_WORKERS, else 1).",
    ),
]

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else there.")
]


def _node_types(value: str | list[str] | None) -> str | list[str] | None:
    """The check every --node-type and NODE_TYPE gets as it is parsed: one line, exit 2."""
    from profiler.names import NODE_TYPE_RULE, is_node_type

    for name in [value] if isinstance(value, str) else value or ():
        if not is_node_type(name):
            raise typer.BadParameter(
                f"{name!r} is not a valid node type name; use {NODE_TYPE_RULE}"
            )
    return value


NodeTypeOption = Annotated[
    str | None,
    typer.Option("--node-type", callback=_node_types, help="Node type name (see `blasprof list`)."),
]
NodeTypesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--node-type",
        callback=_node_types,
        help="Node type name (default: named after this CPU); repeat it for several.",
    ),
]
NodeTypeArgument = Annotated[
    str,
    typer.Argument(
        metavar="NODE_TYPE", callback=_node_types, help="Node type (see `blasprof list`)."
    ),
]
TableFormatOption = Annotated[
    OutputFormat | None,
    typer.Option("--format", help="table (default), csv, or json (the same as --json)."),
]
IdsArgument = Annotated[
    list[int] | None,
    typer.Argument(
        metavar="[ID]...", help="Calibration ids (default: every one with pending jobs)."
    ),
]

#: the largest matrix order blasprof times
MAX_SIZE = 65536


def _split(text: str, what: str) -> list[str]:
    items = [t.strip() for t in re.split(r"\s*,\s*|\s+", text.strip())]
    if not any(items):
        raise UsageError(f"{what}: got an empty list; give comma-separated values")
    if not all(items):
        raise UsageError(f"{what}: {text!r} has an empty item; give comma-separated values")
    return items


def _integer(item: str, what: str, example: str) -> int:
    """An ASCII integer of at most 9 digits (longer ones are typos, and slow to convert)."""
    if not re.fullmatch(r"-?[0-9]{1,9}", item):
        raise UsageError(f"{what}: {item[:40]!r} is not a positive integer; give {example}")
    return int(item)


def parse_sizes(text: str) -> tuple[int, ...]:
    """``"256,1024"`` -> (256, 1024); every size a positive integer up to MAX_SIZE."""
    sizes = []
    for item in _split(text, "--sizes"):
        size = _integer(item, "--sizes", "matrix orders such as 256,1024,4096")
        if size < 1:
            raise UsageError(
                f"--sizes: {item!r} is not a positive integer; give matrix orders such as "
                "256,1024,4096"
            )
        if size > MAX_SIZE:
            raise UsageError(f"--sizes: {item} is larger than the largest supported {MAX_SIZE}")
        sizes.append(size)
    return tuple(sorted(set(sizes)))


def parse_dtypes(text: str) -> tuple[str, ...]:
    """``"float64,float32"`` -> ("float64", "float32"); only the GEMM dtypes blasprof times."""
    dtypes = []
    for item in _split(text, "--dtypes"):
        if item not in DTYPES:
            raise UsageError(f"--dtypes: unknown dtype {item!r}; accepted: {', '.join(DTYPES)}")
        if item not in dtypes:
            dtypes.append(item)
    return tuple(dtypes)


def parse_threads(text: str) -> ThreadCounts:
    """``"1,2,4"`` -> (1, 2, 4); ``"all"`` -> ALL_THREADS (every count up to the usable CPUs)."""
    if text.strip().lower() == ALL_THREADS:
        return ALL_THREADS
    counts = []
    for item in _split(text, "--threads"):
        count = _integer(item, "--threads", "counts such as 1,2,4 or 'all'")
        if count < 1:
            raise UsageError(f"--threads: {item} is below 1; thread counts start at 1")
        counts.append(count)
    return tuple(sorted(set(counts)))


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
    try:  # dates are stored in UTC: one that has no UTC year from 1 to 9999 is refused here
        return when.astimezone(dt.UTC) if when.tzinfo else when.replace(tzinfo=dt.UTC)
    except OverflowError:
        raise UsageError(
            f"--since: {text!r} is outside the years 1 to 9999 once taken to UTC"
        ) from None


#: ids are 32-bit integers in the database (PostgreSQL's ``integer``)
MAX_ID = 2**31 - 1


def check_id(calibration_id: int) -> int:
    """A calibration id as the database can hold it; anything else is a usage error."""
    if not 1 <= calibration_id <= MAX_ID:
        raise UsageError(
            f"calibration id {calibration_id} is out of range; ids are positive integers "
            "(see `blasprof list`)"
        )
    return calibration_id


def check_ids(ids: list[int] | None) -> list[int]:
    """Every id checked (``check_id``); None is an empty list."""
    return [check_id(i) for i in ids or []]


def output_format(json_output: bool, fmt: OutputFormat | None) -> str:
    """``--json`` and ``--format`` as one choice; contradicting each other is refused."""
    if json_output and fmt not in (None, OutputFormat.json):
        raise UsageError(f"--json and --format {fmt.value}: give one of them")
    return "json" if json_output else (fmt.value if fmt is not None else "table")


def check_tolerance(tolerance: float, option: str = "--tolerance") -> float:
    """A fraction in [0, 1): 0.05 is 5%."""
    if not 0 <= tolerance < 1:
        raise UsageError(f"{option}: must be a fraction in [0, 1) such as 0.05, got {tolerance}")
    return tolerance


_WINDOW_END = re.compile(r"now(?:-([0-9]{1,9})([mhdw]))?")


def _instant(text: str, what: str) -> dt.datetime:
    """``now``, ``now-30d`` or an ISO date/time (UTC unless it says otherwise)."""
    text = text.strip()
    match = _WINDOW_END.fullmatch(text)
    now = dt.datetime.now(dt.UTC)
    if match:
        if not match[1]:
            return now
        try:
            return now - dt.timedelta(seconds=int(match[1]) * _UNITS[match[2]])
        except OverflowError:
            raise UsageError(f"{what}: {text!r} reaches back before year 1") from None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{what}: {text[:40]!r} is not a time; accepted: now, now-30d (m, h, d, w) or an "
            "ISO date such as 2026-01-31"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def parse_window(text: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """``START:END`` (either may be empty) -> (start, end); e.g. ``now-30d:now``."""
    if text.count(":") < 1 or not re.fullmatch(r"[0-9A-Za-z:+\-. T]{1,80}", text):
        raise UsageError(f"window {text[:40]!r}: give START:END such as now-30d:now")
    # ISO times have colons of their own: split at the colon that leaves two valid ends
    for i, char in enumerate(text):
        if char != ":":
            continue
        left, right = text[:i], text[i + 1 :]
        try:
            start = _instant(left, "window start") if left.strip() else None
            end = _instant(right, "window end") if right.strip() else None
        except UsageError:
            continue
        if start and end and start >= end:
            raise UsageError(f"window {text!r}: its start is not before its end")
        return start, end
    raise UsageError(
        f"window {text[:40]!r}: give START:END with START and END each now, now-30d "
        "(m, h, d, w) or an ISO date such as 2026-01-31"
    )


def parse_selection(text: str, node_type: str | None, library: str | None = None) -> Selection:
    """One side of ``compare``: ``12``, ``12,13,14`` or a window of ``node_type``, through
    ``library`` (numpy's unless given); ``12:blis-openmp`` names the library of its ids."""
    from profiler.history.selection import Selection
    from profiler.settings import NUMPY_BLAS

    text = text.strip()
    ids_and_library = re.fullmatch(
        r"([0-9]{1,19}(?:\s*,\s*[0-9]{1,19})*)(?::([a-z][a-z0-9-]{0,39}))?", text
    )
    if ids_and_library:
        ids = tuple(check_id(int(i)) for i in ids_and_library.group(1).split(","))
        chosen = ids_and_library.group(2) or library or NUMPY_BLAS
        return Selection(calibration_ids=ids, text=text, library=chosen)
    start, end = parse_window(text)
    if node_type is None:
        raise UsageError(f"window {text!r}: give the node type it is of with --node-type NAME")
    return Selection(
        node_type=node_type, start=start, end=end, text=text, library=library or NUMPY_BLAS
    )
