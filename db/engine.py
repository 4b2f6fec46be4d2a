"""Opening the database: URL resolution, engine set-up, migrations, and the ``Database`` facade.

``open_database`` is the only way in. It resolves the URL (argument, ``BLASPROF_DB``, or
SQLite in the data dir), connects once so that a bad URL fails here with one clear line,
and brings the schema to Alembic's head, under a lock so that two processes opening a fresh
database at once do not both create it. Every failure of the database itself reaches the
caller as ``profiler.errors.DatabaseUnavailable`` or ``DatabaseError``, never as a
SQLAlchemy traceback. ``Database`` turns plain arguments into sessions and sessions back
into plain records; the writes live in ``db.store`` and the reads in ``db.queries``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import URL, Engine, create_engine, event, make_url, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from db import queries, store
from db.queries import CalibrationRecord, CalibrationSummary, JobRecord
from profiler.errors import BlasprofError, DatabaseError, DatabaseUnavailable
from profiler.paths import data_dir
from profiler.preset import Preset
from profiler.results import NodeResult

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_S",
    "Database",
    "open_database",
    "resolve_url",
    "upgrade",
]

DEFAULT_BUSY_TIMEOUT_S = 5.0
MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")
# Any constant works as long as every blasprof process uses the same one.
_PG_MIGRATION_LOCK = 0x626C6173  # "blas"
_URL_HELP = (
    "give an SQLAlchemy URL such as sqlite:////abs/path/blasprof.sqlite or "
    "postgresql+psycopg://user:password@host:5432/dbname with --db or BLASPROF_DB"
)


def _database_dir() -> Path:
    """The data dir (``profiler.paths.data_dir``), created; a failure says what to set."""
    path = data_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
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


def open_database(
    url: str | None = None,
    *,
    migrate: bool = True,
    busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
) -> Database:
    """Open (and, with ``migrate``, create or upgrade) the database at ``url``.

    Without ``migrate`` a schema that is not at this blasprof's head is refused with the
    command that upgrades it. Raises ``DatabaseUnavailable`` with one line naming the URL.
    """
    engine, shown = _connect(resolve_url(url), busy_timeout_s)
    try:
        _migrate(engine, shown, apply=migrate)
    except BaseException:
        engine.dispose()
        raise
    return Database(engine, shown)


def upgrade(
    url: str | None = None, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S
) -> tuple[str | None, str]:
    """Bring the schema at ``url`` to head; return (revision before, revision after)."""
    engine, shown = _connect(resolve_url(url), busy_timeout_s)
    try:
        return _migrate(engine, shown, apply=True)
    finally:
        engine.dispose()


class Database:
    """An open blasprof database; every method takes and returns plain data."""

    def __init__(self, engine: Engine, shown_url: str) -> None:
        self._engine = engine
        self._write_engine = engine.execution_options(blasprof_write=True)
        self.url = shown_url

    def __repr__(self) -> str:
        return f"Database({self.url!r})"

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release every pooled connection."""
        self._engine.dispose()

    # -- writes -------------------------------------------------------------------------

    def create_calibration(
        self,
        node_type: str,
        *,
        executor: str,
        profile: str,
        settings: dict[str, Any],
        status: str = "running",
    ) -> int:
        """Record a new calibration of ``node_type``; return the id users will see."""
        with self._write() as session:
            return store.create_calibration(
                session,
                node_type,
                executor=executor,
                profile=profile,
                settings=settings,
                status=status,
            )

    def add_job(
        self,
        calibration_id: int,
        *,
        external_id: str | None,
        folder: str | None,
        state: str,
        array_index: int | None = None,
    ) -> int:
        """Record a submitted node task; return its row id."""
        with self._write() as session:
            return store.add_job(
                session,
                calibration_id,
                external_id=external_id,
                folder=folder,
                state=state,
                array_index=array_index,
            )

    def store_node_result(
        self,
        job_row_id: int,
        result: NodeResult,
        *,
        state: str | None = None,
        reason: str | None = None,
        log_tail: str | None = None,
    ) -> bool:
        """Store one node's result and its job's end state once; False if already stored."""
        with self._write() as session:
            return store.store_node_result(
                session, job_row_id, result, state=state, reason=reason, log_tail=log_tail
            )

    def finish_calibration(
        self, calibration_id: int, status: str, error: str | None = None
    ) -> bool:
        """Finish a pending or running calibration; False if it was finished already."""
        with self._write() as session:
            return store.finish_calibration(session, calibration_id, status, error)

    def store_preset(self, calibration_id: int, preset: Preset) -> int:
        """Store a preset derived from ``calibration_id``; return its row id."""
        with self._write() as session:
            return store.store_preset(session, calibration_id, preset)

    # -- reads --------------------------------------------------------------------------

    def list_calibrations(
        self,
        node_type: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[CalibrationSummary]:
        """Calibrations, newest first, optionally of one node type and created since a time."""
        with self._read() as session:
            return queries.list_calibrations(session, node_type=node_type, since=since, limit=limit)

    def get_calibration(self, calibration_id: int) -> CalibrationRecord:
        """Everything about one calibration; ``NotFound`` if there is no such id."""
        with self._read() as session:
            return queries.get_calibration(session, calibration_id)

    def latest_preset(self, node_type: str) -> Preset | None:
        """The newest preset stored for ``node_type``, or None."""
        with self._read() as session:
            return queries.latest_preset(session, node_type)

    def node_type_names(self) -> list[str]:
        """Every node type known to the database, sorted."""
        with self._read() as session:
            return queries.node_type_names(session)

    def pending_jobs(self, calibration_id: int | None = None) -> list[JobRecord]:
        """Jobs whose result is not stored yet and that did not fail: what collect looks at."""
        with self._read() as session:
            return queries.pending_jobs(session, calibration_id)

    def calibration_ids_with_pending_jobs(self) -> list[int]:
        """Ids of calibrations that still have pending jobs, ascending."""
        with self._read() as session:
            return queries.calibration_ids_with_pending_jobs(session)

    # -- sessions -----------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with (
            _translated(self.url, "cannot read from", password=self._engine.url.password),
            Session(self._engine) as session,
        ):
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        # On SQLite the write engine begins with BEGIN IMMEDIATE: the write lock is taken
        # before the first read, so concurrent writers queue on the busy timeout instead
        # of failing on a stale WAL snapshot.
        with (
            _translated(self.url, "cannot write to", password=self._engine.url.password),
            Session(self._write_engine) as session,
            session.begin(),
        ):
            yield session


# -- connecting ---------------------------------------------------------------------------


def _connect(raw_url: str, busy_timeout_s: float) -> tuple[Engine, str]:
    """Create an engine for ``raw_url`` and prove it connects; return it and the shown URL."""
    try:
        url = make_url(raw_url)
    except (sa_exc.ArgumentError, ValueError):
        raise DatabaseUnavailable(
            f"cannot open database {_mask_unparsed(raw_url)!r}: not a valid database URL; "
            f"{_URL_HELP}"
        ) from None
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite":
        _check_sqlite_path(url, shown)
    try:
        engine = _create_engine(url, busy_timeout_s)
    except sa_exc.NoSuchModuleError:
        raise DatabaseUnavailable(
            f"cannot open database {shown}: unknown database kind {url.drivername!r}; "
            f"blasprof supports sqlite and postgresql+psycopg; {_URL_HELP}"
        ) from None
    except ImportError as e:
        raise DatabaseUnavailable(
            f"cannot open database {shown}: the driver for {url.drivername!r} is not installed "
            f"({e}); install it (for PostgreSQL: pip install 'blasprof[postgres]' and use "
            "postgresql+psycopg://)"
        ) from None
    except (sa_exc.ArgumentError, TypeError, ValueError) as e:
        raise DatabaseUnavailable(f"cannot open database {shown}: {e}; {_URL_HELP}") from None
    try:
        with _translated(shown, "cannot open", password=url.password), engine.connect():
            pass
    except BaseException:
        engine.dispose()
        raise
    return engine, shown


def _create_engine(url: URL, busy_timeout_s: float) -> Engine:
    backend = url.get_backend_name()
    if backend == "sqlite":
        memory = url.database in (None, "", ":memory:")
        kwargs: dict[str, Any] = {"connect_args": {"timeout": busy_timeout_s}}
        if memory:
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"]["check_same_thread"] = False
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine, busy_timeout_s, wal=not memory)
        return engine
    if (
        backend == "postgresql"
        and url.get_driver_name() in ("psycopg", "psycopg2")
        and "connect_timeout" not in url.query
    ):
        return create_engine(url, connect_args={"connect_timeout": 10})
    return create_engine(url)


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
            if wal:
                cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get("blasprof_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _check_sqlite_path(url: URL, shown: str) -> None:
    database = url.database
    if not database or database == ":memory:" or url.query.get("uri"):
        return
    path = Path(database).expanduser()
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


# -- migrating ----------------------------------------------------------------------------


def _migrate(engine: Engine, shown: str, *, apply: bool) -> tuple[str | None, str]:
    """Bring the schema to head (or, without ``apply``, check it is there)."""
    scripts = ScriptDirectory(str(MIGRATIONS_DIR))
    head = scripts.get_current_head()
    assert head is not None, "blasprof ships at least one migration"
    with _translated(shown, "cannot open"):
        with engine.connect() as connection:
            before = MigrationContext.configure(connection).get_current_revision()
        if before == head:
            return before, head
        _check_known(scripts, before, shown)
        if not apply:
            raise DatabaseUnavailable(
                f"database {shown} has schema revision {before or 'none'} but this blasprof "
                f"needs {head}; run `blasprof db upgrade`"
            )
        with engine.execution_options(blasprof_write=True).begin() as connection:
            # The migration runs inside this transaction, after the lock: a second process
            # that opened the same fresh database waits here, then finds it at head.
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
                )
            current = MigrationContext.configure(connection).get_current_revision()
            if current != head:
                _check_known(scripts, current, shown)
                config = Config()
                config.set_main_option("script_location", str(MIGRATIONS_DIR))
                config.attributes["connection"] = connection
                try:
                    command.upgrade(config, "head")
                except CommandError as e:
                    raise DatabaseError(
                        f"cannot upgrade database {shown}: {e}; nothing was changed"
                    ) from None
    return before, head


def _check_known(scripts: ScriptDirectory, revision: str | None, shown: str) -> None:
    if revision is None:
        return
    try:
        scripts.get_revision(revision)
    except CommandError:
        raise DatabaseUnavailable(
            f"database {shown} has schema revision {revision}, which this blasprof does not "
            "know: it was written by a newer blasprof; upgrade blasprof"
        ) from None


# -- errors -------------------------------------------------------------------------------


@contextmanager
def _translated(shown: str, doing: str, *, password: str | None = None) -> Iterator[None]:
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


def _mask_unparsed(raw: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", raw)
