"""What a calibration's end comes to for the command that ran it: one rule for ``calibrate``
and ``collect``.

The work failed (exit 1) when a complete calibration gave no preset (no point's thread count
held), or when its preset was not adopted (a noisy node would have replaced a clean preset,
or the preset did not verify). A calibration that ended without completing (its points are
stored, but a preset comes from complete sweeps only) is said too; it fails ``calibrate``,
whose work was the sweep, and not ``collect``, whose work was to store what a sweep left
(a killed calibrate's points, say). Each is said in one line. A calibration still running
(its jobs outlive the command) is neither, nor is one another process finished first (a
second ``collect``, which says how it ended).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from profiler.calibration.finish import CalibrationReport
from profiler.statuses import COMPLETE, RUNNING

__all__ = ["Ending", "ending"]


@dataclass(frozen=True)
class Ending:
    """The exit code and the lines that explain it."""

    code: int
    lines: tuple[str, ...] = ()


def ending(reports: Sequence[CalibrationReport], *, incomplete_fails: bool = True) -> Ending:
    """How the calibrations of ``reports`` end the command (0 done, 1 the work failed);
    ``incomplete_fails``: whether one that did not complete fails it."""
    lines = []
    reports = [r for r in reports if not r.elsewhere]
    for r in reports:
        where = f"calibration {r.calibration_id} ({r.node_type})"
        if r.adoption is not None and not r.adoption.adopted:
            lines.append(f"{where}: {r.adoption.note}")
        elif r.adoption is None and r.status == COMPLETE:
            lines.append(
                f"{where}: no preset could be derived (no point's thread count held; see "
                f"`blasprof show {r.calibration_id}`); jobs keep their preset"
            )
    failed = bool(lines)
    ended_short = [r for r in reports if r.status not in (COMPLETE, RUNNING)]
    if ended_short:
        shown = ", ".join(f"{r.calibration_id} ({r.status})" for r in ended_short)
        lines.append(f"calibration did not complete: {shown}; the points measured are stored")
        failed = failed or incomplete_fails
    return Ending(1 if failed else 0, tuple(lines))
