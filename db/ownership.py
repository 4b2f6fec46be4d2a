"""Who runs a calibration: the process recorded on its row, and taking a row over once that
process is gone.

A calibration measured on this machine (executors ``debug`` and ``local``) is stored by the
blasprof process that started it. Its host, pid and start time (which tells a pid reused
later from the original) are recorded when the row is created. ``blasprof collect`` takes
over a calibration whose process is gone with ``claim_calibration``: a conditional UPDATE
from the owner it saw to itself, so that of several collectors at once exactly one wins.
Owners are plain ``(host, pid, started)`` tuples; ``jobs.owner`` says whether one still runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Connection, select, update

from db.tables import calibrations
from profiler.errors import NotFound
from profiler.statuses import PENDING, RUNNING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["OwnerRow", "calibration_owner", "claim_calibration", "unfinished_calibration_ids"]

#: (host, pid, process start time in seconds since the epoch)
OwnerRow = tuple[str, int, float]

_UNFINISHED = (PENDING, RUNNING)


def calibration_owner(connection: Connection, calibration_id: int) -> OwnerRow | None:
    """The process recorded as running ``calibration_id``, or None when none was recorded."""
    row = connection.execute(
        select(
            calibrations.c.owner_host, calibrations.c.owner_pid, calibrations.c.owner_started
        ).where(calibrations.c.id == calibration_id)
    ).first()
    if row is None:
        raise NotFound(f"no calibration with id {calibration_id}; `blasprof list` shows the ids")
    host, pid, started = row
    if host is None or pid is None or started is None:
        return None
    return (host, pid, started)


def claim_calibration(
    session: Session, calibration_id: int, seen: OwnerRow | None, new: OwnerRow
) -> bool:
    """Make ``new`` the owner of an unfinished calibration if its owner is still ``seen``.

    Returns whether this call did; False when another process claimed (or finished) it
    first.
    """
    if seen is None:
        same = (calibrations.c.owner_pid.is_(None),)
    else:
        same = (
            calibrations.c.owner_host == seen[0],
            calibrations.c.owner_pid == seen[1],
            calibrations.c.owner_started == seen[2],
        )
    host, pid, started = new
    return bool(
        session.execute(
            update(calibrations)
            .where(
                calibrations.c.id == calibration_id, calibrations.c.status.in_(_UNFINISHED), *same
            )
            .values(owner_host=host, owner_pid=pid, owner_started=started)
        ).rowcount
    )


def unfinished_calibration_ids(connection: Connection) -> list[int]:
    """Ids of calibrations still pending or running, ascending."""
    return list(
        connection.scalars(
            select(calibrations.c.id)
            .where(calibrations.c.status.in_(_UNFINISHED))
            .order_by(calibrations.c.id)
        )
    )
