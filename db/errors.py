"""Turning SQLAlchemy's and the drivers' exceptions into blasprof's, in one line each.

A failure to reach, open or lock the database becomes ``DatabaseUnavailable`` (the URL or
the database's state is the problem); anything else the database refused becomes
``DatabaseError``. Messages keep the driver's first line, without SQLAlchemy's links, with
the password masked, and add what to do. ``transient`` says which failures are worth
another try (a lock held by someone else, a server that went away for a moment).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc

from profiler.errors import BlasprofError, DatabaseError, DatabaseUnavailable

__all__ = [
    "BadRow",
    "locked",
    "URL_HELP",
    "mask_password",
    "mask_unparsed",
    "transient",
    "translated",
]

URL_HELP = (
    "give an SQLAlchemy URL such as sqlite:////abs/path/blasprof.sqlite or "
    "postgresql+psycopg://user:password@host:5432/dbname with --db or BLASPROF_DB"
)


class BadRow(DatabaseError, ValueError):
    """A stored row holds a value blasprof cannot read back: which row (``row``), and what
    is wrong with which column (``detail``). Exit code 1: the command line was fine. A
    ``ValueError`` too, as the parsers of stored data it replaces raised (callers that skip
    one unreadable preset and write the others catch that)."""

    def __init__(self, row: str, detail: str, database: str = "") -> None:
        self.row, self.detail, self.database = row, detail, database
        where = f"database {database}, {row}" if database else row
        super().__init__(
            f"{where}: {detail}; the row is damaged or was written by another program: "
            "correct or delete it (nothing was changed)"
        )

    def at(self, database: str) -> BadRow:
        """The same error, naming the database it was read from."""
        return BadRow(self.row, self.detail, database)


@contextmanager
def translated(
    shown: str, doing: str, *, password: str | None = None, note: str = ""
) -> Iterator[None]:
    """Turn SQLAlchemy's and the driver's exceptions into blasprof's, in one line.

    Failures to reach or lock the database become ``DatabaseUnavailable``; anything else
    the database refused becomes ``DatabaseError``. While opening, everything is the former.
    ``note`` is added to a failure's message (e.g. how long it was retried).
    """
    try:
        yield
    except BlasprofError:
        raise
    except sa_exc.SQLAlchemyError as e:
        reason, unavailable = _explain(e, password)
        if unavailable or doing == "cannot open" or isinstance(e, sa_exc.InterfaceError):
            raise DatabaseUnavailable(f"{doing} database {shown}: {reason}{note}") from None
        raise DatabaseError(f"{doing} database {shown}: {reason}{note}") from None


# SQLSTATEs (PostgreSQL) after which the same transaction may well succeed. For anyone: a
# server shutting down, crashed or starting up (57P0x) and connection exceptions (class 08).
# For writers also: a lock not granted within lock_timeout, a deadlock or serialization victim.
_CONNECTION_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})
_LOCK_SQLSTATES = frozenset({"55P03", "40001", "40P01"})
_CONNECTION_WORDS = (
    "connection refused",
    "server closed the connection",
    "terminating connection",
    "could not receive data",
    "connection is closed",
    "the database system is",
)
_LOCK_WORDS = ("database is locked", "database table is locked", "database is busy")


def transient(e: BaseException, *, write: bool) -> bool:
    """Whether ``e`` is worth retrying: the database was busy or briefly unreachable.

    Lock waits count for writers only: a reader that waited lock_timeout gives up rather
    than keep a user's ``list`` waiting on someone else's transaction. Only for a database
    that was opened (and so answered) once: a wrong URL fails at once.
    """
    if not isinstance(e, sa_exc.DBAPIError):
        return False
    sqlstate = getattr(e.orig, "sqlstate", None) or ""
    text = str(e.orig).lower()
    if (
        e.connection_invalidated
        or sqlstate.startswith("08")
        or sqlstate in _CONNECTION_SQLSTATES
        or any(words in text for words in _CONNECTION_WORDS)
    ):
        return True
    return write and locked(e)


def locked(e: BaseException) -> bool:
    """Whether ``e`` is a lock another process held beyond the busy or lock timeout."""
    if not isinstance(e, sa_exc.DBAPIError):
        return False
    sqlstate = getattr(e.orig, "sqlstate", None) or ""
    text = str(e.orig).lower()
    return sqlstate in _LOCK_SQLSTATES or any(w in text for w in _LOCK_WORDS)


# (what the driver says, what to do); every one means the database cannot be used as given.
_UNAVAILABLE = (
    (
        "database is locked",
        "another process holds a lock on it beyond the busy timeout; "
        "wait for that process to finish and retry",
    ),
    ("database table is locked", "another process holds a lock on it; retry later"),
    (
        "file is not a database",
        "the file is not a SQLite database (corrupt or another "
        "format); move it aside or choose another path with --db or BLASPROF_DB",
    ),
    ("malformed", "the SQLite file is corrupt; move it aside or choose another path"),
    ("unable to open database file", "check that the file's directory exists and is writable"),
    ("readonly database", "the file or its directory is read-only; choose a writable path"),
    ("connection refused", "is the database server running and listening on that host and port?"),
    ("timeout expired", "the server did not answer; check the host, port and firewall"),
    ("could not translate host name", "the host name does not resolve; check the URL"),
    ("name or service not known", "the host name does not resolve; check the URL"),
    ("password authentication failed", "check the user name and password in the URL"),
    ("server closed the connection", "the server went away; check that it is running"),
    ("terminating connection", "the server went away; check that it is running"),
    ('database "', "create it first (e.g. createdb) or fix the name in the URL"),
    ("lock timeout", "another process holds a lock on it; wait for it to finish and retry"),
    ("statement timeout", "the database did not answer in time; retry later"),
    ("starting up", "the server is starting up; retry in a moment"),
    ("shutting down", "the server is shutting down; check that it is running"),
)


def _explain(e: Exception, password: str | None) -> tuple[str, bool]:
    """The driver's first line plus what to do, password masked; and whether it is fatal."""
    orig = getattr(e, "orig", None) or e
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    reason = lines[0] if lines else type(orig).__name__
    reason = re.sub(r"\s*\(Background on this error at: [^)]*\)", "", reason)
    reason = mask_password(reason, password)
    lowered = " ".join(lines).lower()
    for needle, hint in _UNAVAILABLE:
        if needle in lowered:
            return f"{reason}; {hint}", True
    if "no such table" in lowered or "does not exist" in lowered and "relation" in lowered:
        return f"{reason}; `blasprof db upgrade` says what is missing and what to do", False
    return reason, False


def mask_password(text: str, password: str | None) -> str:
    """``text`` with ``password`` masked where it stands as a password: inside a URL's
    ``user:password@``, after ``password=``, or as a whole word; never inside other words
    (a password ``p`` leaves ``port`` alone)."""
    text = mask_unparsed(text)
    if not password:
        return text
    quoted = re.escape(password)
    text = re.sub(rf"(password\s*=\s*['\"]?){quoted}", r"\1***", text, flags=re.IGNORECASE)
    return re.sub(rf"(?<![\w]){quoted}(?![\w])", "***", text)


def mask_unparsed(raw: str) -> str:
    """``raw`` with the password of any ``scheme://user:password@`` in it masked."""
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", raw)
