"""The initial schema: node types, nodes, BLAS environments, calibrations, jobs,
measurements and presets.

Revision ID: 0001
Revises:
Create Date: 2024-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CALIBRATION_STATUSES = ("pending", "running", "complete", "partial", "failed", "cancelled")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "node_types",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_node_types")),
        sa.UniqueConstraint("name", name=op.f("uq_node_types_name")),
    )
    op.create_table(
        "blas_environments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("summary", sa.String(500), nullable=False),
        sa.Column("libraries", sa.JSON(), nullable=False),
        sa.Column("numpy_version", sa.String(64), nullable=False),
        sa.Column("numpy_blas", sa.JSON(), nullable=False),
        sa.Column("first_seen", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blas_environments")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_blas_environments_fingerprint")),
    )
    op.create_table(
        "nodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_type_id", sa.Integer(), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("cpu_model", sa.String(255), nullable=False),
        sa.Column("microarchitecture", sa.String(64), nullable=True),
        sa.Column("sockets", sa.Integer(), nullable=False),
        sa.Column("physical_cores", sa.Integer(), nullable=False),
        sa.Column("logical_cpus", sa.Integer(), nullable=False),
        sa.Column("numa_nodes", sa.Integer(), nullable=False),
        sa.Column("memory_total_bytes", sa.BigInteger(), nullable=False),
        sa.Column("first_seen", _utc(), nullable=False),
        sa.Column("last_seen", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_type_id"],
            ["node_types.id"],
            name=op.f("fk_nodes_node_type_id_node_types"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nodes")),
        sa.UniqueConstraint(
            "node_type_id", "hostname", name=op.f("uq_nodes_node_type_id_hostname")
        ),
    )
    op.create_table(
        "calibrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_type_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("executor", sa.String(32), nullable=False),
        sa.Column("profile", sa.String(32), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.Column("blasprof_version", sa.String(64), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in CALIBRATION_STATUSES) + ")",
            name=op.f("ck_calibrations_status"),
        ),
        sa.ForeignKeyConstraint(
            ["node_type_id"],
            ["node_types.id"],
            name=op.f("fk_calibrations_node_type_id_node_types"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calibrations")),
    )
    op.create_index(op.f("ix_calibrations_created_at"), "calibrations", ["created_at"])
    op.create_index(op.f("ix_calibrations_node_type_id"), "calibrations", ["node_type_id"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("calibration_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=True),
        sa.Column("array_index", sa.Integer(), nullable=True),
        sa.Column("hostname", sa.String(255), nullable=True),
        sa.Column("node_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("log_tail", sa.Text(), nullable=True),
        sa.Column("folder", sa.Text(), nullable=True),
        sa.Column("submitted_at", _utc(), nullable=False),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.Column("node_info", sa.JSON(), nullable=True),
        sa.Column("verification", sa.JSON(), nullable=True),
        sa.Column("blas_environment_id", sa.Integer(), nullable=True),
        sa.Column("result_stored", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["blas_environment_id"],
            ["blas_environments.id"],
            name=op.f("fk_jobs_blas_environment_id_blas_environments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["calibration_id"],
            ["calibrations.id"],
            name=op.f("fk_jobs_calibration_id_calibrations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.id"], name=op.f("fk_jobs_node_id_nodes"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(op.f("ix_jobs_calibration_id"), "jobs", ["calibration_id"])
    op.create_table(
        "measurements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("kernel", sa.String(32), nullable=False),
        sa.Column("dtype", sa.String(16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("threads", sa.Integer(), nullable=False),
        sa.Column("median_s", sa.Double(), nullable=False),
        sa.Column("min_s", sa.Double(), nullable=False),
        sa.Column("cv", sa.Double(), nullable=False),
        sa.Column("gflops", sa.Double(), nullable=False),
        sa.Column("samples", sa.JSON(), nullable=False),
        sa.Column("loops", sa.Integer(), nullable=False),
        sa.Column("threads_verified", sa.Boolean(), nullable=False),
        sa.Column("threads_observed", sa.JSON(), nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_measurements_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_measurements")),
    )
    op.create_index(op.f("ix_measurements_job_id"), "measurements", ["job_id"])
    op.create_table(
        "presets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("calibration_id", sa.Integer(), nullable=False),
        sa.Column("node_type_id", sa.Integer(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["calibration_id"],
            ["calibrations.id"],
            name=op.f("fk_presets_calibration_id_calibrations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["node_type_id"],
            ["node_types.id"],
            name=op.f("fk_presets_node_type_id_node_types"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_presets")),
    )
    op.create_index(op.f("ix_presets_calibration_id"), "presets", ["calibration_id"])
    op.create_index(
        op.f("ix_presets_node_type_id_created_at"), "presets", ["node_type_id", "created_at"]
    )


def downgrade() -> None:
    for table in (
        "presets",
        "measurements",
        "jobs",
        "calibrations",
        "nodes",
        "blas_environments",
        "node_types",
    ):
        op.drop_table(table)
