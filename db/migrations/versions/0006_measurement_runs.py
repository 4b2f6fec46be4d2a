"""``measurements.runs``: each worker process's figure and samples for a point (a JSON list
of ``profiler.results.Run``); NULL for a point measured in one process, which is what every
older row is, so old calibrations read as one run.

Revision ID: 0006_measurement_runs
Revises: 0005_drop_blas_summary
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_measurement_runs"
down_revision: str | None = "0005_drop_blas_summary"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Not a batch: a nullable column is added in place on SQLite and PostgreSQL alike,
    # without copying the table or touching a row.
    op.add_column("measurements", sa.Column("runs", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("measurements") as batch:
        batch.drop_column("runs")
