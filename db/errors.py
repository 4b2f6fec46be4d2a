"""Turning SQLAlchemy's and the drivers' exceptions into blasprof's, in one line each.

A failure to reach, open or lock the database becomes ``DatabaseUnavailable`` (the URL or
the database's state is the problem); anything else the database refused becomes
``DatabaseError``. Messages keep the driver's first line, without SQLAlchemy's links, with
the password masked, and add what to do.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc

from profiler.errors import BlasprofError, DatabaseError, DatabaseUnavailable

__all__ = ["URL_HELP", "mask_unparsed", "translated"]

URL_HELP = (
    "give an SQLAlchemy URL such as sqlite:////abs/path/blasprof.sqlite or "
    "postgresql+psycopg://user:password@host:5432/dbname with --db or BLASPROF_DB"
)


@contextmanager
def translated(shown: str, doing: str, *, password: str | None = None) -> Iterator[None]:
    """Turn SQLAlchemy's and the driver's exceptions into blasprof's, in one line.

    Failures to reach or lock the database become ``DatabaseUnavailable``; anything else
    the database refused becomes ``DatabaseError``. While opening, everything is the former.
    """
    try:
        yield
    except BlasprofError:
        raise
    except sa_exc.SQLAlchemyError as e:
        reason, unavailable = _explain(e, password)
        if unavailable or doing == "cannot open" or isinstance(e, sa_exc.InterfaceError):
            raise DatabaseUnavailable(f"{doing} database {shown}: {reason}") from None
        raise DatabaseError(f"{doing} database {shown}: {reason}") from None


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
)


def _explain(e: Exception, password: str | None) -> tuple[str, bool]:
    """The driver's first line plus what to do, password masked; and whether it is fatal."""
    orig = getattr(e, "orig", None) or e
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    reason = lines[0] if lines else type(orig).__name__
    reason = re.sub(r"\s*\(Background on this error at: [^)]*\)", "", reason)
    if password:
        reason = reason.replace(password, "***")
    lowered = " ".join(lines).lower()
    for needle, hint in _UNAVAILABLE:
        if needle in lowered:
            return f"{reason}; {hint}", True
    return f"{reason}; check the URL given with --db or BLASPROF_DB", False


def mask_unparsed(raw: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", raw)
