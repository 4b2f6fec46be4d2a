"""Files blasprof writes: one way to replace a file, and the checks before writing one.

``replace`` is the one atomic write: the new content goes to a temporary file beside the
target, is flushed to disk and renamed over it, so a reader (a job sourcing a preset, a
collector reading a result) sees the old file or the new, never half of one. ``write_text``
adds what a path from outside needs: a symbolic link is written through to its target
(and said), anything but a regular file there (a directory, a device, a FIFO, a socket) is
refused before anything is written, and a missing directory is an error, not something to
create. Directories are created with an explicit mode, whatever the umask.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from profiler.errors import UsageError
from profiler.paths import make_dir

__all__ = [
    "check_output_file",
    "ensure_dir",
    "others_can_write",
    "replace",
    "write_text",
]


def replace(
    path: Path,
    write: Callable[[IO[Any]], None] | None = None,
    *,
    mode: int = 0o644,
    binary: bool = False,
    to_name: Callable[[str], None] | None = None,
    mtime_ns: int | None = None,
) -> Path:
    """Replace ``path`` atomically with what ``write`` writes to the open temporary file
    (or, with ``to_name``, with what it writes to the temporary file's name, for writers
    that open files themselves). ``mtime_ns`` sets the new file's modification time."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        text = {} if binary else {"encoding": "utf-8"}
        with os.fdopen(fd, "wb" if binary else "w", **text) as fh:
            if write is not None:
                write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if to_name is not None:
            to_name(tmp)
        os.chmod(tmp, mode)
        if mtime_ns is not None:
            os.utime(tmp, ns=(mtime_ns, mtime_ns))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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


def write_text(
    path: Path, text: str, mode: int = 0o644, *, say: Callable[[str], None] | None = None
) -> Path:
    """Write ``text`` to the file ``path`` names, atomically, after the checks a path from
    outside needs; ``say`` hears that a symbolic link was written through. Returns the path
    of the file written."""
    target = check_output_file(path)
    if not target.parent.is_dir():  # a typo in a path is not a directory to create
        raise UsageError(f"cannot write {path}: directory {target.parent} does not exist")
    if target != path and say is not None:
        say(f"{path} is a symbolic link: writing its target {target}")
    try:
        return replace(target, lambda fh: fh.write(text), mode=mode)
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None


def others_can_write(directory: Path) -> str | None:
    """A warning when others could change files in ``directory`` (presets that jobs
    execute): it is writable by others, or an ancestor is, without the sticky bit that stops
    them from renaming what is not theirs. None when no one else can."""
    for current in [directory, *directory.parents]:
        try:
            mode = current.stat().st_mode
        except OSError:
            continue
        if not mode & stat.S_IWOTH or (current != directory and mode & stat.S_ISVTX):
            continue
        return (
            f"warning: others can write in {current} (mode {stat.S_IMODE(mode):04o}), so they "
            f"could change what jobs run from the presets in {directory}; "
            f"consider chmod o-w {current}"
        )
    return None
