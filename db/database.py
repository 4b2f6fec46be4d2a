"""The one seam the command line uses: ``open_database`` and the ``Database`` it returns.

``Database`` opens a session per call and hands it to a function of ``db.store`` (writes:
an ORM session, in one transaction that takes the write lock up front) or of ``db.queries``
and ``db.history`` (reads: a Core connection). Its methods are those functions bound to a
session, so their signatures and documentation live in one place (a write method only names
its function: ``db.store`` and the ORM are imported by the first write, so a command that
only reads never loads them); every failure of the database reaches the caller as one of
blasprof's errors (``db.errors``), never as a SQLAlchemy traceback.

A call that meets a busy database (a lock held elsewhere, a server restarting) is retried,
the whole transaction again, with growing pauses, until ``wait_s`` has passed; only then
does it fail. Readers retry lost connections only: a lock makes them fail after one
lock timeout rather than wait on someone else's transaction.
"""

from __future__ import annotations

import functools
import importlib
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc

from db import history, ownership, queries
from db.engine import (
    DEFAULT_BUSY_TIMEOUT_S,
    WRITE,
    connect,
    read_only,
    resolve_url,
    wait_bound,
)
from db.errors import BadRow, transient, translated
from db.rows import undecodable
from db.tables import SCHEMA_REVISION
from profiler.errors import DatabaseUnavailable

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from db import store, store_preset

__all__ = ["Database", "open_database", "upgrade"]

P = ParamSpec("P")
R = TypeVar("R")


class _Deferred:
    """The functions of a module that is imported on the first call of one of them."""

    def __init__(self, module: str) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):  # copy, pickle and friends probe for these
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return getattr(importlib.import_module(self._module), name)(*args, **kwargs)

        call.__name__ = call.__qualname__ = name
        call.__doc__ = f"``{self._module}.{name}`` (imported on the first call)"
        return call


if not TYPE_CHECKING:
    # the writes need the ORM, which a command that only reads never imports
    store = _Deferred("db.store")
    store_preset = _Deferred("db.store_preset")


def _bound(
    *, write: bool
) -> Callable[[Callable[Concatenate[Any, P], R]], Callable[Concatenate[Database, P], R]]:
    """A ``Database`` method that calls ``func`` with a session of its own: an ORM
    ``Session`` in a write transaction, or a Core ``Connection`` to read."""

    def bind(func: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Database, P], R]:
        @functools.wraps(func)
        def method(self: Database, *args: P.args, **kwargs: P.kwargs) -> R:
            def attempt() -> R:
                if not write:
                    with self._engine.connect() as connection:
                        try:
                            return func(connection, *args, **kwargs)
                        except sa_exc.OperationalError as e:
                            found = undecodable(connection, e)
                            if found is None:
                                raise
                            raise found from None
                with self._session() as session:
                    return func(session, *args, **kwargs)

            if write and self.read_only:
                raise DatabaseUnavailable(
                    f"database {self.url} is opened read-only (mode=ro or immutable in the "
                    "URL) and this command writes to it; give the URL without them"
                )
            doing = "cannot write to" if write else "cannot read from"
            try:
                return _retrying(attempt, self, doing, write=write)
            except BadRow as e:
                raise e.at(self.url) from None

        return method

    return bind


_write = _bound(write=True)
_read = _bound(write=False)


class Database:
    """An open blasprof database; every method takes and returns plain data."""

    def __init__(self, engine: Engine, shown_url: str, wait_s: float = 0.0) -> None:
        self._engine = engine
        self._write_engine = engine.execution_options(**{WRITE: True})
        self.url = shown_url
        #: SQLite opened with mode=ro or immutable: every write is refused before it starts
        self.read_only = read_only(engine.url)
        #: how long one call may keep retrying a busy or briefly unreachable database
        self.wait_s = wait_s

    def __repr__(self) -> str:
        return f"Database({self.url!r})"

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release every pooled connection."""
        self._engine.dispose()

    create_calibration = _write(store.create_calibration)
    add_job = _write(store.add_job)
    store_node_result = _write(store.store_node_result)
    finish_calibration = _write(store.finish_calibration)
    finish_with_preset = _write(store_preset.finish_with_preset)
    store_missing_preset = _write(store_preset.store_missing_preset)
    store_preset = _write(store_preset.store_preset)
    claim_calibration = _write(ownership.claim_calibration)

    list_calibrations = _read(queries.list_calibrations)
    get_calibration = _read(queries.get_calibration)
    latest_preset = _read(queries.latest_preset)
    current_quality = _read(queries.current_quality)
    node_type_names = _read(queries.node_type_names)
    pending_jobs = _read(queries.pending_jobs)
    calibration_ids_with_pending_jobs = _read(queries.calibration_ids_with_pending_jobs)
    select_points = _read(history.select_points)
    latest_node_points = _read(history.latest_node_points)
    current_presets = _read(history.current_presets)
    calibration_owner = _read(ownership.calibration_owner)
    unfinished_calibration_ids = _read(ownership.unfinished_calibration_ids)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """An ORM session in a write transaction, committed when the block ends."""
        from sqlalchemy.orm import Session

        # On SQLite a write begins with BEGIN IMMEDIATE: the write lock is taken before the
        # first read, so concurrent writers queue on the busy timeout instead of failing on
        # a stale WAL snapshot.
        with Session(self._write_engine) as session, session.begin():
            yield session


def _retrying(attempt: Callable[[], R], database: Database, doing: str, *, write: bool) -> R:
    """``attempt()``, again after a growing pause while it fails transiently, for at most
    ``database.wait_s``; the last failure is translated into one of blasprof's errors."""
    started = time.monotonic()
    pause, tries = 0.05, 1
    while True:
        try:
            return attempt()
        except sa_exc.SQLAlchemyError as e:
            waited = time.monotonic() - started
            busy = transient(e, write=write)
            failure = e if not busy or waited + pause > database.wait_s else None
        if failure is not None:
            note = (
                f" (tried {tries} time(s) over {waited:.1f} s; BLASPROF_DB_WAIT_S sets how long)"
                if busy
                else ""
            )
            password = database._engine.url.password
            with translated(database.url, doing, password=password, note=note):
                raise failure
        # jitter: writers that met the same lock do not all come back at the same moment
        time.sleep(pause * random.uniform(0.5, 1.5))
        pause, tries = min(pause * 2, 2.0), tries + 1


def open_database(
    url: str | None = None,
    *,
    migrate: bool = True,
    busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    wait_s: float | None = None,
) -> Database:
    """Open (and, with ``migrate``, create or upgrade) the database at ``url``.

    ``url`` defaults to ``BLASPROF_DB``, else SQLite in the data dir. Without ``migrate``
    a schema that is not at this blasprof's head is refused with the
    command that upgrades it. ``wait_s`` (default ``BLASPROF_DB_WAIT_S``, else 30) bounds
    how long each call retries a busy database; one attempt's busy or lock timeout is at
    most half of it. Raises ``DatabaseUnavailable`` with one line naming the URL.
    """
    database = _connected(url, busy_timeout_s, wait_s)
    try:
        # Alembic is imported only when the schema is not at head: a database already
        # there costs one query.
        if _stored_revision(database._engine) != SCHEMA_REVISION:
            _to_head(database, apply=migrate and not database.read_only)
    except BaseException:
        database.close()
        raise
    return database


def _to_head(database: Database, *, apply: bool) -> tuple[str | None, str]:
    from db.migrate import to_head

    return _retrying(
        lambda: to_head(database._engine, database.url, apply=apply),
        database,
        "cannot open",
        write=True,
    )


def _connected(url: str | None, busy_timeout_s: float, wait_s: float | None) -> Database:
    wait_s = wait_bound() if wait_s is None else wait_s
    # one attempt waits at most half of what all of them may: there is time to try again
    busy = min(busy_timeout_s, wait_s / 2) if wait_s > 0 else busy_timeout_s
    engine, shown = connect(resolve_url(url), busy, wait_s)
    return Database(engine, shown, wait_s)


def _stored_revision(engine: Engine) -> str | None:
    """The schema revision recorded in the database; None when it cannot be read (a new
    or foreign database: ``to_head`` then says what it is)."""
    try:
        with engine.connect() as connection:
            return connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    except sa_exc.SQLAlchemyError:
        return None


def upgrade(
    url: str | None = None, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S
) -> tuple[str | None, str]:
    """Bring the schema at ``url`` to head; return (revision before, revision after)."""
    with _connected(url, busy_timeout_s, None) as database:
        return _to_head(database, apply=True)
