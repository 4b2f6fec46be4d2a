"""Indexes for the history queries: a type's calibrations by time, each node's latest job,
the jobs of a BLAS stack, and a job's points by dtype, processes and figure (read without
the rows).

Only indexes change: no row is touched. Two single-column indexes become the leading
column of a composite one and are dropped.

Revision ID: 0003_history_indexes
Revises: 0002_measurement
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003_history_indexes"
down_revision: str | None = "0002_measurement"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_calibrations_node_type_id_created_at"),
        "calibrations",
        ["node_type_id", "created_at"],
    )
    op.drop_index(op.f("ix_calibrations_node_type_id"), table_name="calibrations")
    op.create_index(op.f("ix_jobs_node_id_finished_at"), "jobs", ["node_id", "finished_at"])
    op.create_index(op.f("ix_jobs_blas_environment_id"), "jobs", ["blas_environment_id"])
    op.create_index(
        op.f("ix_measurements_job_id_dtype_workers_gflops"),
        "measurements",
        ["job_id", "dtype", "workers", "gflops"],
    )
    op.drop_index(op.f("ix_measurements_job_id"), table_name="measurements")


def downgrade() -> None:
    op.create_index(op.f("ix_measurements_job_id"), "measurements", ["job_id"])
    op.drop_index(op.f("ix_measurements_job_id_dtype_workers_gflops"), table_name="measurements")
    op.drop_index(op.f("ix_jobs_blas_environment_id"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_node_id_finished_at"), table_name="jobs")
    op.create_index(op.f("ix_calibrations_node_type_id"), "calibrations", ["node_type_id"])
    op.drop_index(op.f("ix_calibrations_node_type_id_created_at"), table_name="calibrations")
