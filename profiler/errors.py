"""The project's exceptions: one base class and a few specific kinds.

Only the command line turns these into exit codes: a ``UsageError`` (the input was wrong)
exits 2, any other ``BlasprofError`` (the work failed) exits 1.
"""

from __future__ import annotations

__all__ = [
    "BlasprofError",
    "UsageError",
    "DatabaseError",
    "DatabaseUnavailable",
    "NotFound",
    "JobError",
]


class BlasprofError(Exception):
    """Base class of every error blasprof raises on purpose."""

    exit_code = 1


class UsageError(BlasprofError, ValueError):
    """The input was wrong; the message says what was given and what is accepted."""

    exit_code = 2


class NotFound(UsageError):
    """A named thing (calibration id, node type) does not exist."""


class DatabaseError(BlasprofError):
    """The database could be opened but an operation on it failed."""


class DatabaseUnavailable(UsageError):
    """The database URL cannot be opened: bad URL, missing driver, corrupt or locked file."""


class JobError(BlasprofError):
    """A calibration job could not be submitted, or failed in a way that loses its result."""
