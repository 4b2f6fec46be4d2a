"""The one seam the command line uses: ``open_database`` and the ``Database`` it returns.

``Database`` opens a session per call and hands it to a function of ``db.store`` (writes,
in one transaction that takes the write lock up front) or ``db.queries`` (reads). Its
methods are those functions bound to a session, so their signatures and documentation live
in one place; every failure of the database reaches the caller as one of blasprof's errors
(``db.errors``), never as a SQLAlchemy traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from db import history, queries, store
from db.engine import DEFAULT_BUSY_TIMEOUT_S, WRITE, connect, resolve_url
from db.errors import translated
from db.models import SCHEMA_REVISION

__all__ = ["Database", "open_database", "upgrade"]

P = ParamSpec("P")
R = TypeVar("R")


def _bound(
    *, write: bool
) -> Callable[[Callable[Concatenate[Session, P], R]], Callable[Concatenate[Database, P], R]]:
    """A ``Database`` method that calls ``func`` with a session of its own."""

    def bind(func: Callable[Concatenate[Session, P], R]) -> Callable[Concatenate[Database, P], R]:
        @functools.wraps(func)
        def method(self: Database, *args: P.args, **kwargs: P.kwargs) -> R:
            with self._session(write=write) as session:
                return func(session, *args, **kwargs)

        return method

    return bind


_write = _bound(write=True)
_read = _bound(write=False)


class Database:
    """An open blasprof database; every method takes and returns plain data."""

    def __init__(self, engine: Engine, shown_url: str) -> None:
        self._engine = engine
        self._write_engine = engine.execution_options(**{WRITE: True})
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

    create_calibration = _write(store.create_calibration)
    add_job = _write(store.add_job)
    store_node_result = _write(store.store_node_result)
    finish_calibration = _write(store.finish_calibration)
    store_preset = _write(store.store_preset)

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

    @contextmanager
    def _session(self, *, write: bool) -> Iterator[Session]:
        # On SQLite a write begins with BEGIN IMMEDIATE: the write lock is taken before the
        # first read, so concurrent writers queue on the busy timeout instead of failing on
        # a stale WAL snapshot.
        doing = "cannot write to" if write else "cannot read from"
        with translated(self.url, doing, password=self._engine.url.password):
            if not write:
                with Session(self._engine) as session:
                    yield session
                return
            with Session(self._write_engine) as session, session.begin():
                yield session


def open_database(
    url: str | None = None,
    *,
    migrate: bool = True,
    busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
) -> Database:
    """Open (and, with ``migrate``, create or upgrade) the database at ``url``.

    ``url`` defaults to ``BLASPROF_DB``, else SQLite in the data dir. Without ``migrate``
    a schema that is not at this blasprof's head is refused with the
    command that upgrades it. Raises ``DatabaseUnavailable`` with one line naming the URL.
    """
    engine, shown = connect(resolve_url(url), busy_timeout_s)
    try:
        if _stored_revision(engine) != SCHEMA_REVISION:
            # Alembic is imported only here: a database already at head costs one query.
            from db.migrate import to_head

            to_head(engine, shown, apply=migrate)
    except BaseException:
        engine.dispose()
        raise
    return Database(engine, shown)


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
    from db.migrate import to_head

    engine, shown = connect(resolve_url(url), busy_timeout_s)
    try:
        return to_head(engine, shown, apply=True)
    finally:
        engine.dispose()
