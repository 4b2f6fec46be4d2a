"""Connecting: which database URL, an engine set up for it, and proof that it answers.

``resolve_url`` picks the URL (argument, ``BLASPROF_DB``, or SQLite in the data dir);
``connect`` makes the engine (SQLite: WAL, a busy timeout, writes that take the lock up
front, a new file private to the user; PostgreSQL: connect, lock and statement timeouts, a
ping before a pooled connection is reused) and connects once, so a bad URL fails here with
one clear line instead of later with a traceback. Every wait on a lock is bounded: by the
busy timeout (SQLite) or ``lock_timeout`` (PostgreSQL) per attempt, and by ``wait_bound``
(``BLASPROF_DB_WAIT_S``) for all the attempts of one operation together.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import StaticPool

from db.errors import URL_HELP, mask_unparsed, translated
from profiler.errors import DatabaseUnavailable
from profiler.paths import DATA_DIR_MODE, data_dir, make_dir

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_S",
    "DEFAULT_WAIT_S",
    "WRITE",
    "connect",
    "read_only",
    "resolve_url",
    "wait_bound",
]

DEFAULT_BUSY_TIMEOUT_S = 5.0
#: how long one operation may keep retrying a busy or briefly unreachable database
DEFAULT_WAIT_S = 30.0
#: PostgreSQL: no statement of blasprof's needs longer; a hung one is cut off
STATEMENT_TIMEOUT_S = 120.0
#: the execution option that marks a write transaction (SQLite begins it IMMEDIATE)
WRITE = "blasprof_write"


def _database_dir() -> Path:
    """The data dir (``profiler.paths.data_dir``), created; a failure says what to set."""
    path = data_dir()
    try:
        make_dir(path, DATA_DIR_MODE)
    except OSError as e:
        raise DatabaseUnavailable(
            f"cannot create the blasprof data dir {path}: {e.strerror}; "
            "set BLASPROF_HOME to a writable directory or give --db URL"
        ) from None
    return path


def resolve_url(url: str | None = None) -> str:
    """The database URL to use: ``url``, else ``BLASPROF_DB``, else SQLite in the data dir."""
    if url:
        return url
    env = os.environ.get("BLASPROF_DB")
    if env:
        return env
    return f"sqlite:///{_database_dir() / 'blasprof.sqlite'}"


def wait_bound() -> float:
    """Seconds one database operation may keep retrying: ``BLASPROF_DB_WAIT_S``, default 30."""
    raw = os.environ.get("BLASPROF_DB_WAIT_S", "").strip()
    if not raw:
        return DEFAULT_WAIT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise DatabaseUnavailable(
            f"BLASPROF_DB_WAIT_S: {raw[:40]!r} is not a number of seconds from 0 to 3600"
        )
    return value


def connect(raw_url: str, busy_timeout_s: float, wait_s: float = 0.0) -> tuple[Engine, str]:
    """Create an engine for ``raw_url`` and prove it connects (waiting out a lock for up to
    ``wait_s``); return it and the shown URL."""
    try:
        url = make_url(raw_url)
    except (sa_exc.ArgumentError, ValueError):
        raise DatabaseUnavailable(
            f"cannot open database {mask_unparsed(raw_url)!r}: not a valid database URL; {URL_HELP}"
        ) from None
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite":
        _check_sqlite_path(url, shown)
        url = _as_uri(url)
    try:
        engine = _create_engine(url, busy_timeout_s)
    except sa_exc.NoSuchModuleError:
        raise DatabaseUnavailable(
            f"cannot open database {shown}: unknown database kind {url.drivername!r}; "
            f"blasprof supports sqlite and postgresql+psycopg; {URL_HELP}"
        ) from None
    except ImportError as e:
        raise DatabaseUnavailable(
            f"cannot open database {shown}: the driver for {url.drivername!r} is not installed "
            f"({e}); install it (for PostgreSQL: pip install 'blasprof[postgres]' and use "
            "postgresql+psycopg://)"
        ) from None
    except (sa_exc.ArgumentError, TypeError, ValueError) as e:
        raise DatabaseUnavailable(f"cannot open database {shown}: {e}; {URL_HELP}") from None
    try:
        with translated(shown, "cannot open", password=url.password):
            _first_connection(engine, wait_s)
    except BaseException:
        engine.dispose()
        raise
    return engine, shown


def _first_connection(engine: Engine, wait_s: float) -> None:
    """Connect once; a lock met on the way (SQLite switching a fresh file to WAL while
    another process creates its tables) is waited out for up to ``wait_s``. Anything else
    fails at once: a wrong URL or a server that is not there is not worth waiting for."""
    import random
    import time

    from db.errors import locked

    started, pause = time.monotonic(), 0.05
    while True:
        try:
            with engine.connect():
                return
        except sa_exc.DBAPIError as e:
            if not locked(e) or time.monotonic() - started + pause > wait_s:
                raise
        time.sleep(pause * random.uniform(0.5, 1.5))
        pause = min(pause * 2, 2.0)


def _create_engine(url: URL, busy_timeout_s: float) -> Engine:
    backend = url.get_backend_name()
    if backend == "sqlite":
        memory = url.database in (None, "", ":memory:")
        kwargs: dict[str, Any] = {"connect_args": {"timeout": busy_timeout_s}}
        if memory:
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"]["check_same_thread"] = False
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine, busy_timeout_s, wal=not memory and not read_only(url))
        return engine
    if backend == "postgresql" and url.get_driver_name() in ("psycopg", "psycopg2"):
        # A lock held by another session makes a statement fail after lock_timeout instead
        # of waiting for as long as it is held; options in the URL come last and win.
        options = (
            f"-c lock_timeout={int(busy_timeout_s * 1000)} "
            f"-c statement_timeout={int(STATEMENT_TIMEOUT_S * 1000)}"
        )
        given = url.query.get("options")
        if given:
            options += " " + (given if isinstance(given, str) else " ".join(given))
        connect_args: dict[str, Any] = {"options": options}
        if "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = 10
        return create_engine(url, connect_args=connect_args, pool_pre_ping=True)
    return create_engine(url, pool_pre_ping=backend == "postgresql")


_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table'"
_OURS = {"alembic_version", "calibrations"}


def _configure_sqlite(engine: Engine, busy_timeout_s: float, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling defers BEGIN and cannot take a write lock up
        # front; hand transactions to SQLAlchemy's "begin" event below instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            # WAL is a change to the file: made only to an empty database or blasprof's own
            # (another program's is refused by db.migrate, and must be left as it was).
            tables = {row[0] for row in cursor.execute(_TABLES)}
            if wal and (not tables or tables >= _OURS):
                cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get(WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


#: SQLite's URI parameters (https://sqlite.org/uri.html)
_URI_PARAMETERS = frozenset({"cache", "immutable", "mode", "modeof", "nolock", "psow", "vfs"})


def _as_uri(url: URL) -> URL:
    """``url`` as a ``file:`` URI when it has SQLite URI parameters: pysqlite ignores them
    otherwise (with a warning), and ``?mode=ro`` would open the file read-write."""
    database = url.database
    if not _URI_PARAMETERS & set(url.query) or "uri" in url.query or not database:
        return url
    if database == ":memory:":
        return url
    from urllib.parse import quote

    path = quote(str(Path(database).expanduser()))
    return url.set(database=f"file:{path}").update_query_dict({"uri": "true"})


def read_only(url: URL) -> bool:
    """Whether ``url`` opens an SQLite database read-only (``mode=ro`` or ``immutable=1``)."""
    if url.get_backend_name() != "sqlite":
        return False
    return url.query.get("mode") == "ro" or url.query.get("immutable") in ("1", "true", "yes")


def _check_sqlite_path(url: URL, shown: str) -> None:
    database = url.database
    if not database or database == ":memory:" or url.query.get("uri"):
        return
    path = Path(database).expanduser()
    if read_only(url):
        if not path.is_file():
            raise DatabaseUnavailable(
                f"cannot open database {shown}: {path} is not an existing file, and a database "
                "opened read-only is never created; give the path of an existing one"
            )
        return
    if path.is_dir():
        raise DatabaseUnavailable(
            f"cannot open database {shown}: {path} is a directory; give a file path"
        )
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise DatabaseUnavailable(
            f"cannot open database {shown}: directory {parent} does not exist; "
            "create it or choose another path"
        )
    if not path.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise DatabaseUnavailable(
            f"cannot open database {shown}: directory {parent} is not writable; choose another path"
        )
    _create_private(path, shown)


def _create_private(path: Path, shown: str) -> None:
    """Create a missing SQLite file readable and writable by the user only, whatever the
    umask (SQLite gives its -wal and -shm files the same mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as e:
        raise DatabaseUnavailable(f"cannot open database {shown}: {e.strerror or e}") from None
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
