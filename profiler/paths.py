"""Where blasprof keeps its files: the data dir, the presets dir, the local job folders,
and the modes they are created with."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "DATA_DIR_MODE",
    "JOBS_DIR_MODE",
    "PRESETS_DIR_MODE",
    "data_dir",
    "jobs_dir",
    "make_dir",
    "presets_dir",
]

#: the data dir holds the database and the job folders: the user's alone
DATA_DIR_MODE = 0o700
JOBS_DIR_MODE = 0o700
#: jobs read presets; only the user may change what they execute
PRESETS_DIR_MODE = 0o755


def data_dir() -> Path:
    """``$BLASPROF_HOME``, else the user data dir (``~/.local/share/blasprof`` on Linux)."""
    home = os.environ.get("BLASPROF_HOME")
    if home:
        return Path(home).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("blasprof", appauthor=False))


def presets_dir() -> Path:
    """``$BLASPROF_PRESETS``, else ``<data dir>/presets``."""
    env = os.environ.get("BLASPROF_PRESETS")
    return Path(env).expanduser() if env else data_dir() / "presets"


def jobs_dir() -> Path:
    """Where local and debug job folders go: ``<data dir>/jobs``."""
    return data_dir() / "jobs"


def make_dir(path: Path, mode: int) -> Path:
    """Create ``path`` and its missing parents, each with exactly ``mode``.

    ``mkdir`` alone lets the umask decide (under umask 000 a new dir is world-writable);
    each directory created here is chmod-ed to ``mode`` right after. Directories that
    exist are left as they are. Raises ``OSError`` (``FileExistsError`` when a file or a
    dangling link stands where a directory should be).
    """
    missing = []
    current = path
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode)
        except FileExistsError:
            if directory.is_dir():  # another process made it meanwhile: it is theirs
                continue
            raise
        os.chmod(directory, mode)
    return path
