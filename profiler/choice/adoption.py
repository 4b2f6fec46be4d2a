"""Whether a new preset replaces the one jobs get: what a calibration's figures are worth.

A calibration is ``clean`` when its node was quiet and its preset verified in a fresh
process; ``unverified`` when the check was skipped; ``noisy`` when other work bent the
figures; ``verification failed`` when a fresh process started from the preset did not
reproduce the sweep (far below or far above it). A preset whose verification failed is
never adopted on its own; a noisy or unverified one does not replace a clean one.
``--force`` adopts anyway. Every decision carries one line saying why, and what to do next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from profiler.statuses import NOISY

if TYPE_CHECKING:
    from profiler.results import Verification

__all__ = ["CLEAN", "NOISY", "UNVERIFIED", "VERIFICATION_FAILED", "Adoption", "decide", "quality"]

CLEAN = "clean"
UNVERIFIED = "unverified"
NOISY = NOISY
VERIFICATION_FAILED = "verification failed"

_AGAIN = (
    "measure again on an idle node (or as a Slurm job with --exclusive), "
    "or adopt it anyway with `calibrate --force`"
)


@dataclass(frozen=True)
class Adoption:
    """Whether the preset serves jobs, what its calibration was worth, and why."""

    adopted: bool
    quality: str
    note: str


def quality(
    verdict: str | None, verifications: Sequence[Verification | None], reasons: Sequence[str]
) -> tuple[str, str]:
    """What a calibration is worth, and the detail behind it, from its nodes' conditions
    verdict (with ``reasons``) and the verification of each node that finished."""
    failed = [v for v in verifications if v is not None and not v.passed]
    if failed:
        v = failed[0]
        return VERIFICATION_FAILED, (
            f"a fresh process started from the preset ran n={v.n} {v.dtype} at "
            f"{v.fresh_gflops:.1f} GFLOP/s, {v.ratio:.0%} of the sweep's {v.sweep_gflops:.1f}"
            + (f" ({v.note})" if v.note else "")
        )
    if verdict == NOISY:
        # an unstable choice alone makes a calibration noisy: do not call that node busy
        cause = (
            "the node was busy"
            if any(not r.startswith("unstable:") for r in reasons)
            else ("its figures hold in no single state")
        )
        return NOISY, f"{cause}: " + "; ".join(reasons or ["see the conditions"])
    if verdict == "unknown":  # cannot be told quiet: as good as noisy
        return NOISY, "the node's load could not be judged: " + "; ".join(reasons)
    if not verifications or any(v is None for v in verifications):
        return UNVERIFIED, "the preset was not checked in a fresh process (--no-verify)"
    return CLEAN, "the node was quiet and the preset verified"


def decide(
    worth: str,
    detail: str,
    *,
    current_quality: str | None,
    current_id: int | None,
    force: bool,
) -> Adoption:
    """Whether a preset of quality ``worth`` replaces the current one (of quality
    ``current_quality``, from calibration ``current_id``; both None when there is none)."""
    if force:
        note = "adopted with --force" + ("" if worth == CLEAN else f" although {detail}")
        return Adoption(True, worth, note)
    if worth == VERIFICATION_FAILED:
        kept = (
            f"; jobs keep the preset of calibration {current_id}"
            if current_id is not None
            else "; jobs get no preset for this node type yet"
        )
        return Adoption(False, worth, f"not adopted: {detail}{kept}; {_AGAIN}")
    if worth in (NOISY, UNVERIFIED) and current_quality == CLEAN:
        again = _AGAIN if worth == NOISY else "calibrate again without --no-verify, or --force"
        return Adoption(
            False,
            worth,
            f"not adopted: {detail}; jobs keep the clean preset of calibration "
            f"{current_id}; {again}",
        )
    if worth == NOISY:
        return Adoption(
            True, worth, f"adopted since no clean preset exists, although {detail}; {_AGAIN}"
        )
    return Adoption(True, worth, detail)
