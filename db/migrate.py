"""Migrating: bringing a database's schema to this blasprof's Alembic head, once.

Alembic runs programmatically (no alembic.ini) on a connection handed to
``db/migrations/env.py``, inside one write transaction that first takes a lock (SQLite:
``BEGIN IMMEDIATE``; PostgreSQL: an advisory lock), so two processes opening a fresh
database at once do not both create it. A schema newer than this blasprof knows is refused,
and so is a database that holds another program's tables.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, inspect, text

from db.engine import WRITE
from profiler.errors import DatabaseError, DatabaseUnavailable

__all__ = ["MIGRATIONS_DIR", "to_head"]

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")
# Any constant works as long as every blasprof process uses the same one.
_PG_MIGRATION_LOCK = 0x626C6173  # "blas"


def to_head(engine: Engine, shown: str, *, apply: bool) -> tuple[str | None, str]:
    """Bring the schema to head (or, without ``apply``, check it is there).

    Raises SQLAlchemy's errors as they come (the caller retries and translates them), and
    ``DatabaseUnavailable`` for a database that is not blasprof's or is newer than it.
    """
    scripts = ScriptDirectory(str(MIGRATIONS_DIR))
    head = scripts.get_current_head()
    assert head is not None, "blasprof ships at least one migration"
    with engine.connect() as connection:
        before = MigrationContext.configure(connection).get_current_revision()
        if before != head:
            _check_ours(connection, scripts, before, shown)
    if before == head:
        if apply:
            _check_complete(engine, shown, head)
        return before, head
    if not apply:
        raise DatabaseUnavailable(
            f"database {shown} has schema revision {before or 'none'} but this blasprof "
            f"needs {head}; run `blasprof db upgrade`"
        )
    with engine.execution_options(**{WRITE: True}).begin() as connection:
        # The migration runs inside this transaction, after the lock: a second process
        # that opened the same fresh database waits here, then finds it at head.
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
            )
        current = MigrationContext.configure(connection).get_current_revision()
        if current != head:
            _check_ours(connection, scripts, current, shown)
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            config.attributes["connection"] = connection
            try:
                command.upgrade(config, "head")
            except CommandError as e:
                raise DatabaseError(
                    f"cannot upgrade database {shown}: {e}; nothing was changed"
                ) from None
    _check_complete(engine, shown, head)
    return before, head


def _check_complete(engine: Engine, shown: str, head: str) -> None:
    """Refuse a database at ``head`` that lacks a table of blasprof's (dropped by hand, or
    a restore that missed one): Alembic records revisions, not tables, so it would call
    such a database up to date while every command that reads the table fails."""
    from db.tables import metadata

    with engine.connect() as connection:
        missing = sorted(set(metadata.tables) - set(inspect(connection).get_table_names()))
    if missing:
        raise DatabaseError(
            f"database {shown} is at schema revision {head} but has no table "
            f"{', '.join(missing)}; it was changed outside blasprof: restore it from a backup, "
            "or keep it for reading and store new calibrations in another database (--db); "
            "nothing was changed"
        )


def _check_ours(
    connection: Connection, scripts: ScriptDirectory, revision: str | None, shown: str
) -> None:
    """Refuse a database blasprof would damage: another program's tables (blasprof creates
    its own only in an empty database), or a schema from a newer blasprof."""
    tables = set(inspect(connection).get_table_names())
    if revision is None:
        from db.tables import metadata

        foreign = sorted(tables - {"alembic_version"})
        if foreign and set(foreign) <= set(metadata.tables):
            raise DatabaseError(
                f"database {shown} holds blasprof's tables ({', '.join(foreign)}) but no "
                "schema revision (its alembic_version table is missing or empty), so blasprof "
                "cannot tell which migrations it has: restore it from a backup; nothing was "
                "changed"
            )
        if foreign:
            shown_tables = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise DatabaseUnavailable(
                f"database {shown} holds tables that are not blasprof's ({shown_tables}); "
                "blasprof needs an empty database or one it created: give another with --db "
                "or BLASPROF_DB"
            )
        return
    try:
        scripts.get_revision(revision)
    except CommandError:
        if "calibrations" not in tables:
            raise DatabaseUnavailable(
                f"database {shown} belongs to another program (schema revision {revision!r} "
                "is not blasprof's); give another with --db or BLASPROF_DB"
            ) from None
        raise DatabaseUnavailable(
            f"database {shown} has schema revision {revision}, which this blasprof does not "
            "know: it was written by a newer blasprof; upgrade blasprof"
        ) from None
