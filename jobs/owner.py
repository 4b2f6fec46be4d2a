"""Which process owns a calibration on this machine, and whether it still runs.

An ``Owner`` is a process named so that it cannot be mistaken for another: host, pid and
the process's start time (a pid is reused, a pid with its start time is not). The blasprof
process that runs a local calibration records itself as the owner; the node task watches
it and stops (handing back what it measured) when it is gone, and ``blasprof collect``
recovers calibrations whose owner is gone.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["ALIVE", "ELSEWHERE", "GONE", "Owner", "process_running", "watch"]

ALIVE, GONE, ELSEWHERE = "alive", "gone", "elsewhere"
# psutil derives a start time from the boot time and clock ticks; two readings of the same
# process agree exactly, a reused pid starts at least a tick later
_SAME_START_S = 0.005


class Owner(NamedTuple):
    """A process: where it runs, its pid and when it started (seconds since the epoch)."""

    host: str
    pid: int
    started: float

    @classmethod
    def current(cls) -> Owner:
        """This process."""
        import os

        return cls(socket.gethostname(), os.getpid(), _start_time(os.getpid()) or 0.0)

    def state(self) -> str:
        """``ALIVE``, ``GONE`` (ended, or its pid now runs another process) or
        ``ELSEWHERE`` (on another host: this machine cannot tell)."""
        if self.host != socket.gethostname():
            return ELSEWHERE
        started = _start_time(self.pid)
        if started is None or abs(started - self.started) > _SAME_START_S:
            return GONE
        return ALIVE


def _start_time(pid: int) -> float | None:
    """When process ``pid`` started; None when there is no such live process (a zombie,
    killed but not yet reaped by its parent, is not alive)."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def process_running(pid: int, marker: str) -> bool:
    """Whether ``pid`` is a live process whose command line contains ``marker`` (a job
    folder, say), so that a reused pid is not taken for the job."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return marker in " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def watch(owner: Owner, on_gone: Callable[[], None], interval_s: float = 0.5) -> threading.Event:
    """Call ``on_gone`` once, from a daemon thread, when ``owner`` is no longer alive.

    Returns an event that stops the watching when set.
    """
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(interval_s):
            if owner.state() == GONE:
                on_gone()
                return

    threading.Thread(target=run, name="blasprof-owner-watch", daemon=True).start()
    return stop
