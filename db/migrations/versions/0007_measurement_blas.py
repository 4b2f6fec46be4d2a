"""``measurements.blas``: the BLAS library a point ran on (a ``profiler.blas`` label such as
``numpy`` or ``blis-openmp``); NULL on every older row, which reads as ``numpy``, the only
library a calibration measured before.

Revision ID: 0007_measurement_blas
Revises: 0006_measurement_runs
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_measurement_blas"
down_revision: str | None = "0006_measurement_runs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column without a default: added in place on SQLite and PostgreSQL, no
    # table copy and no row rewritten (old rows read NULL, which means numpy's).
    op.add_column("measurements", sa.Column("blas", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("measurements") as batch:
        batch.drop_column("blas")
