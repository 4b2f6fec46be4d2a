"""Slurm job states for many jobs from one ``squeue`` call, at most once a second.

States come from ``squeue``, never from ``sacct``: without accounting ``sacct`` fails, and
submitit would warn about it on every poll. A finished job stays in ``squeue`` for
MinJobAge seconds only; after that ``lookup`` says Slurm no longer knows it (None), and
the caller reads what the job left behind.
"""

from __future__ import annotations

import subprocess
import threading
import time

from jobs.states import SLURM_FINAL

__all__ = ["Squeue", "array_id"]


def array_id(job_id: str) -> str:
    """The array job id of an array task ``A_i`` (a plain job's own id)."""
    return job_id.split("_")[0]


class Squeue:
    """Job states for every watched job from one ``squeue`` call, at most every ``interval_s``.

    Final states are kept for good; a job that squeue no longer lists is reported as None.
    """

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._watched: set[str] = set()  # array (or plain) job ids still to ask about
        self._unasked: set[str] = set()  # watched since the last call: ask before answering
        self._states: dict[str, tuple[str, str]] = {}
        self._last = float("-inf")
        self._ok = False

    def watch(self, job_id: str) -> None:
        with self._lock:
            cached = self._states.get(job_id)
            if cached is None or cached[0] not in SLURM_FINAL:
                self._watched.add(array_id(job_id))
                self._unasked.add(array_id(job_id))

    def lookup(self, job_id: str) -> tuple[str, str] | None | bool:
        """(state, reason); None: Slurm does not know the job; False: squeue did not answer."""
        with self._lock:
            cached = self._states.get(job_id)
            if cached is not None and cached[0] in SLURM_FINAL:
                return cached
            stale = time.monotonic() - self._last >= self.interval_s
            if stale or array_id(job_id) in self._unasked:
                self._refresh()
            if not self._ok:
                return False
            return self._states.get(job_id)

    def _refresh(self) -> None:
        self._last = time.monotonic()
        ids = sorted(self._watched)
        unasked, self._unasked = self._unasked, set()
        if not ids:
            self._ok = True
            return
        command = ["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T|%r"]
        try:
            done = subprocess.run(
                [*command, "--jobs=" + ",".join(ids)], capture_output=True, text=True, timeout=60
            )
        except (OSError, subprocess.SubprocessError):
            done = None
        if done is None or (done.returncode != 0 and "Invalid job id" not in done.stderr):
            self._ok = False
            self._unasked |= unasked
            return
        self._ok = True
        asked = set(ids)
        seen = set()
        for line in done.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) < 3:
                continue
            job_id, state, reason = parts[0], parts[1].split()[0], parts[2]
            self._states[job_id] = (state, reason)
            seen.add(job_id)
        for job_id, (state, _) in list(self._states.items()):
            if job_id not in seen and array_id(job_id) in asked and state not in SLURM_FINAL:
                del self._states[job_id]  # gone between two calls: MinJobAge passed
        running = {
            array_id(j) for j, (state, _) in self._states.items() if state not in SLURM_FINAL
        }
        self._watched = (self._watched - asked) | (running & asked)
