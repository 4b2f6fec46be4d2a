"""What every command shares: the global options, error handling, files and the database.

Files are written in one way (``write_atomic``): a regular file is replaced atomically, a
symbolic link is written through to its target (and said), anything else (a directory, a
device, a FIFO, a socket) is refused before anything is written. Directories are created
with an explicit mode, whatever the umask.
"""

from __future__ import annotations

import functools
import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from profiler.cli.display import err
from profiler.errors import BlasprofError, UsageError
from profiler.paths import make_dir

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


def collect_command(ids: Iterable[int]) -> str:
    """The command that stores calibrations ``ids``, with the --db given (password masked)."""
    import shlex

    db = ""
    if STATE.db_url and STATE.db_url != os.environ.get("BLASPROF_DB"):
        from db.errors import mask_unparsed

        db = f"--db {shlex.quote(mask_unparsed(STATE.db_url))} "
    return f"blasprof {db}collect {' '.join(str(i) for i in ids)}"


def ensure_dir(path: Path, mode: int = 0o755) -> Path:
    """Create ``path`` (and parents) with ``mode`` or say, in one line, why it cannot be a
    directory."""
    try:
        make_dir(path, mode)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(f"cannot use {path} as a directory: a file of that name exists") from None
    except OSError as exc:
        raise UsageError(f"cannot create directory {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write in {path}: permission denied")
    return path


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


def check_output_file(path: Path) -> Path:
    """The file a write to ``path`` replaces: ``path``, or the target of the symbolic link
    ``path``. Anything but a regular file (or nothing) there is refused (``UsageError``)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    target = path
    if stat.S_ISLNK(mode):
        target = Path(os.path.realpath(path))
        try:
            mode = os.stat(target).st_mode
        except FileNotFoundError:
            return target  # a dangling link: the write creates its target
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    for test, kind in _KINDS:
        if test(mode):
            where = f"{path}" if target == path else f"{path} (a link to {target})"
            raise UsageError(
                f"cannot write {where}: it is {kind}, not a regular file; give the path of a "
                "regular file"
            )
    return target


def write_atomic(path: Path, text: str, mode: int = 0o644) -> Path:
    """Write ``text`` to ``path`` so that readers see the old file or the new, never half.

    A symbolic link is written through to its target (and said on stderr); a directory,
    device, FIFO or socket is refused. Returns the path of the file written.
    """
    target = check_output_file(path)
    if not target.parent.is_dir():  # a typo in a path is not a directory to create
        raise UsageError(f"cannot write {path}: directory {target.parent} does not exist")
    if target != path:
        err(f"{path} is a symbolic link: writing its target {target}")
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"cannot write in {target.parent}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def warn_if_others_can_write(directory: Path) -> None:
    """Warn when others could change files in ``directory`` (presets that jobs execute):
    it is writable by others, or an ancestor is, without the sticky bit that stops them
    from renaming what is not theirs."""
    for current in [directory, *directory.parents]:
        try:
            mode = current.stat().st_mode
        except OSError:
            continue
        if not mode & stat.S_IWOTH or (current != directory and mode & stat.S_ISVTX):
            continue
        err(
            f"warning: others can write in {current} (mode {stat.S_IMODE(mode):04o}), so they "
            f"could change what jobs run from the presets in {directory}; "
            f"consider chmod o-w {current}"
        )
        return
