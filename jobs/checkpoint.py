"""The checkpoint a node task leaves behind: its node record and every point, as JSON lines.

The task appends a line as soon as it knows something (``node`` once, then a ``point`` per
measurement and a ``phase`` as each phase starts, then ``end``), so the login shell can
show progress and a job that dies keeps what it measured. A torn last line (the job died
mid-write) is ignored when read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Checkpoint", "append", "read_checkpoint"]


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
    """Append one record of ``kind`` and flush it."""
    with path.open("a") as fh:
        fh.write(json.dumps({"kind": kind, **record}) + "\n")
        fh.flush()
