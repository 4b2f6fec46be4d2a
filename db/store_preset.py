"""Writes of a calibration's preset: finished together with the calibration in one
transaction, stored later for one that ended without it, or stored as given. Each takes an
open ``Session`` already in a transaction, like ``db.store``; nothing here commits."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Calibration, PresetRow, utcnow
from db.store import (
    calibration_row,
    finish_calibration,
    node_type_id,
    node_type_name,
    plain_json,
)
from profiler.choice.preset import Preset
from profiler.errors import NotFound
from profiler.statuses import COMPLETE, PARTIAL

if TYPE_CHECKING:
    from profiler.choice.adoption import Adoption

__all__ = ["PresetChoice", "finish_with_preset", "store_missing_preset", "store_preset"]

#: what a finished calibration's preset came to, given the node type's adopted preset and
#: its quality as they stand inside the finishing transaction: the preset and whether it is
#: adopted, or None when it has none
PresetChoice = Callable[[Preset | None, str | None], "tuple[Preset, Adoption] | None"]


def finish_with_preset(
    session: Session,
    calibration_id: int,
    status: str,
    choose: PresetChoice,
    *,
    error: str | None = None,
    verdict: str | None = None,
) -> tuple[bool, tuple[Preset, Adoption] | None]:
    """Finish a calibration and store its preset in one transaction; return whether this
    call finished it, and what ``choose`` made of it.

    A calibration whose status says it ended always has the preset it derived: a database
    busy or a process killed in between leaves it unfinished, for ``collect`` to finish
    again, instead of complete with its preset lost. The node type's current preset is
    read inside the same transaction, so the choice weighs the preset it replaces.
    """
    if not finish_calibration(session, calibration_id, status, error, verdict):
        return False, None
    return True, _choose_and_store(session, calibration_id, choose)


def store_missing_preset(
    session: Session, calibration_id: int, choose: PresetChoice
) -> tuple[bool, tuple[Preset, Adoption] | None]:
    """Store the preset of a calibration that ended without one (a blasprof older than
    ``finish_with_preset`` could end so); return whether it had none, and what ``choose``
    made of it. Of two collectors at once, one stores it."""
    # the row lock makes a second collector wait here, then find the preset stored
    calibration = session.get(Calibration, calibration_id, with_for_update=True)
    if calibration is None:
        raise NotFound(f"no calibration with id {calibration_id}")
    if calibration.status not in (COMPLETE, PARTIAL):
        return False, None
    if session.scalars(select(PresetRow.id).filter_by(calibration_id=calibration_id)).first():
        return False, None
    return True, _choose_and_store(session, calibration_id, choose)


def _choose_and_store(
    session: Session, calibration_id: int, choose: PresetChoice
) -> tuple[Preset, Adoption] | None:
    """What ``choose`` makes of the node type's current preset, stored."""
    from db.queries import current_quality, latest_preset

    node_type = node_type_name(session, calibration_id)
    connection = session.connection()
    try:
        previous = latest_preset(connection, node_type)
    except (KeyError, TypeError, ValueError, AttributeError):
        previous = None  # an unreadable row cannot be weighed; the new preset replaces it
    current = current_quality(connection, node_type) if previous is not None else None
    chosen = choose(previous, current)
    if chosen is not None:
        preset, adoption = chosen
        store_preset(
            session,
            calibration_id,
            preset,
            adopted=adoption.adopted,
            quality=adoption.quality,
            note=adoption.note,
        )
    return chosen


def store_preset(
    session: Session,
    calibration_id: int,
    preset: Preset,
    *,
    adopted: bool = True,
    quality: str | None = None,
    note: str | None = None,
    created_at: dt.datetime | None = None,
) -> int:
    """Store ``preset`` as derived from ``calibration_id`` (at ``created_at``, default now);
    return its row id.

    ``adopted`` False keeps it on record without serving it to jobs (``latest_preset``
    skips it); ``quality`` says what its calibration was worth and ``note`` why.
    """
    calibration_row(session, calibration_id)
    if preset.calibration_id is None:
        preset = dataclasses.replace(preset, calibration_id=calibration_id)
    row = PresetRow(
        calibration_id=calibration_id,
        node_type_id=node_type_id(session, preset.node_type),
        created_at=created_at or utcnow(),
        data=plain_json(preset.to_dict()),
        adopted=adopted,
        quality=quality,
        note=note,
    )
    session.add(row)
    session.flush()
    return row.id
