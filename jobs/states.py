"""The job-state vocabulary every executor reports in: Slurm's words, plus two of our own.

A job is ``PENDING`` or ``RUNNING`` until it ends; it ends ``COMPLETED`` or in one of
``ENDED_WITHOUT_SUCCESS``. ``INTERRUPTED`` (stopped by the user, or it ended without saying
how) and ``LOST`` (the batch system forgot a job that left nothing behind) are blasprof's;
the rest are Slurm's own. ``SLURM_FINAL`` maps every final state Slurm reports to one of ours.
"""

from __future__ import annotations

__all__ = [
    "COMPLETED",
    "ENDED_WITHOUT_SUCCESS",
    "FAILED",
    "FINAL",
    "INTERRUPTED",
    "PENDING",
    "RUNNING",
    "SLURM_FINAL",
    "UNKNOWN",
]

PENDING = "PENDING"
RUNNING = "RUNNING"
UNKNOWN = "UNKNOWN"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
INTERRUPTED = "INTERRUPTED"

#: states after which no result will come
ENDED_WITHOUT_SUCCESS = (
    FAILED,
    "CANCELLED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "NODE_FAIL",
    "PREEMPTED",
    INTERRUPTED,
    "LOST",
)
#: states after which a job never runs again
FINAL = (COMPLETED, *ENDED_WITHOUT_SUCCESS)

#: Slurm's final states, and the name each is reported under
SLURM_FINAL = {
    **{state: state for state in FINAL},
    "DEADLINE": "TIMEOUT",
    "BOOT_FAIL": "NODE_FAIL",
}
