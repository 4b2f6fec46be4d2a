"""Drop ``blas_environments.summary``: a label written with every environment and read by
nothing (the reads build their labels from ``libraries``, in one place).

Revision ID: 0005_drop_blas_summary
Revises: 0004_calibration_owner
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_drop_blas_summary"
down_revision: str | None = "0004_calibration_owner"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Not a batch: on SQLite a batch copies the table and drops the old one, and with foreign
    # keys on, that drop sets every job's blas_environment_id to NULL. SQLite 3.35+ (and
    # PostgreSQL) drop a column in place, touching no other row.
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        import sqlite3

        if sqlite3.sqlite_version_info < (3, 35):
            raise RuntimeError(
                f"this upgrade needs SQLite 3.35 or newer to drop a column in place; this "
                f"Python has SQLite {sqlite3.sqlite_version}: upgrade from a newer Python"
            )
    op.drop_column("blas_environments", "summary")


def downgrade() -> None:
    with op.batch_alter_table("blas_environments") as batch:
        batch.add_column(sa.Column("summary", sa.String(500), nullable=False, server_default=""))
