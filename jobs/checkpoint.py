"""What a node task leaves in its job folder: the checkpoint (its node record and every
point, as JSON lines) and, once it has ended, its whole result.

The task appends a line as soon as it knows something (``node`` once, then a ``point`` per
measurement and a ``phase`` as each phase starts, then ``end``), so the login shell can
show progress and a job that dies keeps what it measured. A torn last line (the job died
mid-write) is ignored when read. The result file (``task-N.result.json`` beside
``task-N.points.jsonl``) holds the finished result, verification included, for whoever
stores it if the process that started the task cannot.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from profiler.files import replace

__all__ = [
    "Checkpoint",
    "append",
    "checkpoint_path",
    "load_result",
    "read_checkpoint",
    "result_path",
    "save_result",
]

_POINTS_SUFFIX = ".points.jsonl"


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint file holds: the node record and the points measured so far."""

    node: dict[str, Any] | None
    measurements: tuple[dict[str, Any], ...]
    #: what the task was doing when it last said: sweep, layouts, verification (or None)
    phase: str | None = None


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint; a missing file is an empty one."""
    node, points, phase = None, [], None
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return Checkpoint(None, ())
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict):
            continue
        kind = record.get("kind")
        if kind == "node":
            node = record["node"]
        elif kind == "point":
            points.append(record["point"])
        elif kind == "phase":
            phase = str(record.get("name"))
    return Checkpoint(node, tuple(points), phase)


def append(path: Path, kind: str, **record: Any) -> None:
    """Append one record of ``kind`` and flush it (a new file is readable by the user only:
    what the umask allows does not matter)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as fh:
        fh.write(json.dumps({"kind": kind, **record}) + "\n")
        fh.flush()


def checkpoint_path(folder: str | Path, index: int) -> Path:
    """The checkpoint of task ``index`` of a calibration whose job folder is ``folder``."""
    return Path(folder) / f"task-{index}{_POINTS_SUFFIX}"


def result_path(checkpoint: str | Path) -> Path:
    """Where the task whose checkpoint is ``checkpoint`` leaves its result."""
    path = Path(checkpoint)
    stem = path.name.removesuffix(_POINTS_SUFFIX)
    return path.with_name(f"{stem}.result.json")


def save_result(checkpoint: str | Path, result: dict[str, Any]) -> Path:
    """Write ``result`` beside ``checkpoint``, atomically; return its path."""
    path = result_path(checkpoint)
    replace(path, lambda fh: json.dump(result, fh))
    return path


def load_result(checkpoint: str | Path) -> dict[str, Any] | None:
    """The result a task left beside ``checkpoint``; None when there is none (or it is
    unreadable: the checkpoint still holds the points)."""
    try:
        data = json.loads(result_path(checkpoint).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
