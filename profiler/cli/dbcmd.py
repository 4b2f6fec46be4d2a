"""`blasprof db ...`: database maintenance."""

import typer

from profiler.cli._common import STATE, handle_errors

db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)


@db_app.command("upgrade")
@handle_errors
def upgrade_command() -> None:
    """Apply the database migrations (also done automatically on first use).

    Example:  blasprof --db postgresql+psycopg://user@dbhost/blasprof db upgrade
    """
    from db import upgrade

    before, after = upgrade(STATE.db_url)
    if before == after:
        print(f"database already at revision {after}")
    else:
        print(f"database upgraded from {before or 'empty'} to {after}")
