"""Alembic environment: runs blasprof's migrations on the connection ``db.engine`` hands in.

``db.engine`` calls Alembic programmatically (no alembic.ini) and passes an open connection
in ``config.attributes["connection"]``, already inside the transaction that holds the
migration lock. Run from the command line instead (``alembic -x url=...``), it connects to
the given URL itself.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from db.tables import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    if context.is_offline_mode():
        url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
            "sqlalchemy.url"
        )
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


_main()
