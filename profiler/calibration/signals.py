"""How a signal ends a calibration: noted when it comes, acted on where nothing is lost.

While ``calibrate`` runs, Ctrl-C (SIGINT), SIGTERM and a hang-up (SIGHUP, the login shell
went away) are only noted. The waiting loop sees the note and stops the tasks on this
machine (or stops waiting on a batch system); what was measured is then stored to the end,
however many signals follow, and the command exits 130. A signal raised as an exception
instead could land between the end of the sweep and the store, and lose the points.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["INTERRUPTED_EXIT", "Signals", "noted"]

#: the exit code of a command ended by a signal (128 + SIGINT), whatever the signal
INTERRUPTED_EXIT = 130
_NOTED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Signals:
    """The first signal received while installed, if any; true once one came."""

    def __init__(self) -> None:
        self.received: int | None = None

    def __bool__(self) -> bool:
        return self.received is not None

    @property
    def name(self) -> str:
        """``SIGTERM``, ``SIGINT``, ...; empty before any signal."""
        return signal.Signals(self.received).name if self.received is not None else ""

    def raise_if_received(self) -> None:
        """Raise ``KeyboardInterrupt`` when a signal came: for points where stopping now
        loses nothing (before anything is submitted, while waiting)."""
        if self:
            raise KeyboardInterrupt


@contextmanager
def noted() -> Iterator[Signals]:
    """Note SIGINT, SIGTERM and SIGHUP instead of acting on them, inside the block."""
    signals = Signals()
    if threading.current_thread() is not threading.main_thread():
        yield signals
        return

    def note(signum: int, frame: object) -> None:
        if signals.received is None:
            signals.received = signum

    previous = {sig: signal.signal(sig, note) for sig in _NOTED}
    try:
        yield signals
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
