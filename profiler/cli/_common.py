"""What every command shares: the global options, error handling, files and the database."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from profiler.cli.display import err
from profiler.errors import BlasprofError, UsageError

if TYPE_CHECKING:
    from db import Database

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


def ensure_dir(path: Path, mode: int = 0o755) -> Path:
    """Create ``path`` (and parents) or say, in one line, why it cannot be a directory."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=mode)
    except FileExistsError:
        raise UsageError(f"cannot use {path} as a directory: a file of that name exists") from None
    except OSError as exc:
        raise UsageError(f"cannot create directory {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write in {path}: permission denied")
    return path


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new, never half."""
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a directory; give a file path")
    ensure_dir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"cannot write in {path.parent}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
