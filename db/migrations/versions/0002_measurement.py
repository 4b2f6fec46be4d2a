"""What a calibration's figures are worth: the conditions they were measured in, layout
points, and whether a preset was adopted.

- jobs.conditions: how busy the node was while it measured (JSON, with its verdict);
- calibrations.verdict: quiet or noisy over all its nodes;
- measurements.workers: processes measured at once (1 for the thread sweep);
- presets.adopted, presets.quality, presets.note: whether the preset serves jobs, what its
  calibration was worth (clean, unverified, noisy, verification failed) and why.

Revision ID: 0002_measurement
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_measurement"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("conditions", sa.JSON(), nullable=True))
    with op.batch_alter_table("calibrations") as batch:
        batch.add_column(sa.Column("verdict", sa.String(16), nullable=True))
    with op.batch_alter_table("measurements") as batch:
        batch.add_column(
            sa.Column("workers", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
    with op.batch_alter_table("presets") as batch:
        batch.add_column(
            sa.Column("adopted", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(sa.Column("quality", sa.String(32), nullable=True))
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("presets") as batch:
        batch.drop_column("note")
        batch.drop_column("quality")
        batch.drop_column("adopted")
    with op.batch_alter_table("measurements") as batch:
        batch.drop_column("workers")
    with op.batch_alter_table("calibrations") as batch:
        batch.drop_column("verdict")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("conditions")
