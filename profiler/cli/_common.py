"""What every command shares: the global options, error handling and the database.

Files are written through ``profiler.files``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from profiler.cli.display import err
from profiler.errors import BlasprofError

if TYPE_CHECKING:
    from db import Database
    from profiler.cli.display import Bar

F = TypeVar("F", bound=Callable[..., Any])


class State:
    """Options given before the sub-command, shared by all commands."""

    db_url: str | None = None


STATE = State()


def handle_errors(func: F) -> F:
    """Turn blasprof's own errors into one line and an exit code (2 bad input, 1 failure)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except BlasprofError as exc:
            err(f"error: {exc}")
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def open_db(migrate: bool = True) -> Database:
    """The database named by --db / BLASPROF_DB, or the default SQLite file."""
    from db import open_database

    return open_database(STATE.db_url, migrate=migrate)


class TerminalSink:
    """The calibration lifecycle's sink on a terminal: each warning one line on stderr, a
    progress bar when ``show_progress``, and the collect command with the --db given."""

    def __init__(self, show_progress: bool = True) -> None:
        self.show_progress = show_progress

    def warn(self, line: str) -> None:
        err(line)

    def progress(self, label: str, total: int) -> AbstractContextManager[Bar]:
        from profiler.cli.display import progress

        return progress(label, total, enabled=self.show_progress)

    def collect_hint(self, ids: Iterable[int]) -> str:
        """The command that stores calibrations ``ids``, with the --db given (password
        masked)."""
        import shlex

        db = ""
        if STATE.db_url and STATE.db_url != os.environ.get("BLASPROF_DB"):
            from db.errors import mask_unparsed

            db = f"--db {shlex.quote(mask_unparsed(STATE.db_url))} "
        return f"blasprof {db}collect {' '.join(str(i) for i in ids)}"
