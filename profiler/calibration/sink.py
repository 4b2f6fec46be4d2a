"""Where the calibration lifecycle reports: a ``Sink`` the caller passes in.

The lifecycle never prints. It says what a user should know (``warn``: one line each), shows
how far a long phase has come (``progress``), and names the command that stores what is
left for later (``collect_hint``), all through the sink it is given, as Alembic's commands
print through their config. The command line passes one that writes to the terminal;
``Quiet`` keeps the lines for a script or a test and shows no progress.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Protocol

__all__ = ["Progress", "Quiet", "Sink"]


class Progress(Protocol):
    """A phase's progress: points done out of a total, and what happens now."""

    def update(
        self,
        completed: int | None = None,
        description: str | None = None,
        total: int | None = None,
    ) -> None: ...

    def finish(self, completed: int, description: str = "done") -> None: ...


class Sink(Protocol):
    """What the lifecycle reports to."""

    def warn(self, line: str) -> None:
        """One line a user should read (it goes to stderr on a terminal)."""

    def progress(self, label: str, total: int) -> AbstractContextManager[Progress]:
        """A progress display for the block inside."""

    def collect_hint(self, ids: Iterable[int]) -> str:
        """The command line that stores calibrations ``ids`` later."""


class _NoProgress:
    def update(
        self,
        completed: int | None = None,
        description: str | None = None,
        total: int | None = None,
    ) -> None:
        return None

    def finish(self, completed: int, description: str = "done") -> None:
        return None


class Quiet:
    """A sink that keeps the warnings in ``lines`` and shows no progress."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def warn(self, line: str) -> None:
        self.lines.append(line)

    @contextlib.contextmanager
    def progress(self, label: str, total: int) -> Iterator[Progress]:
        yield _NoProgress()

    def collect_hint(self, ids: Iterable[int]) -> str:
        return "blasprof collect " + " ".join(str(i) for i in ids)
