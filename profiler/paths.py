"""Where blasprof keeps its files: the data dir, the presets dir, the local job folders."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_dir", "presets_dir", "jobs_dir"]


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
