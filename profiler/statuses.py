"""The statuses a calibration can have: its one vocabulary, for the database's check, the
store, and ``list --status``.

``running`` until every job has ended; then ``complete`` (every job finished its sweep),
``partial`` (some points, not all), ``failed`` (no point), or ``cancelled`` (interrupted
before any point). ``pending`` is kept for calibrations recorded before they were submitted.
"""

from __future__ import annotations

__all__ = ["CALIBRATION_STATUSES"]

CALIBRATION_STATUSES = ("pending", "running", "complete", "partial", "failed", "cancelled")
