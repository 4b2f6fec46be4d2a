"""The vocabularies of a calibration: its statuses, and the verdict on its conditions.

A calibration is ``running`` until every job has ended; then ``complete`` (every job
finished its sweep), ``partial`` (some points, not all), ``failed`` (no point), or
``cancelled`` (interrupted before any point). ``pending`` is kept for calibrations recorded
before they were submitted. A node task's result uses ``complete``, ``partial`` and
``failed`` in the same sense. The conditions a calibration ran under are judged ``quiet``
or ``noisy``, or ``unknown`` where the machine's counters could not be read.

One vocabulary for the database's check, the store, ``list --status`` and every message.
"""

from __future__ import annotations

__all__ = [
    "CALIBRATION_STATUSES",
    "CANCELLED",
    "COMPLETE",
    "FAILED",
    "NOISY",
    "PARTIAL",
    "PENDING",
    "QUIET",
    "RUNNING",
    "VERDICTS",
    "VERDICT_UNKNOWN",
]

PENDING = "pending"
RUNNING = "running"
COMPLETE = "complete"
PARTIAL = "partial"
FAILED = "failed"
CANCELLED = "cancelled"
CALIBRATION_STATUSES = (PENDING, RUNNING, COMPLETE, PARTIAL, FAILED, CANCELLED)

QUIET = "quiet"
NOISY = "noisy"
VERDICT_UNKNOWN = "unknown"
VERDICTS = (QUIET, NOISY, VERDICT_UNKNOWN)
