"""The database schema: SQLAlchemy 2.0 typed models for calibrations and what they measured.

The schema is owned by Alembic (``db/migrations``); a test compares these models with the
migrated schema so the two cannot drift. Columns that hold nested records use the generic
``JSON`` type so that SQLite and PostgreSQL both work, and every timestamp is stored in UTC
and read back timezone-aware.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from profiler.statuses import CALIBRATION_STATUSES

__all__ = [
    "CALIBRATION_STATUSES",
    "SCHEMA_REVISION",
    "Base",
    "UTCDateTime",
    "utcnow",
    "NodeType",
    "Node",
    "BlasEnvironment",
    "Calibration",
    "Job",
    "MeasurementRow",
    "PresetRow",
]

#: the Alembic revision these models describe (the head of ``db/migrations``): opening a
#: database compares it with ``alembic_version`` without importing Alembic; a test checks it
SCHEMA_REVISION = "0004_calibration_owner"


NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """The current time, timezone-aware, in UTC."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always returned timezone-aware.

    SQLite has no timezone type and hands back naive values; PostgreSQL keeps the zone.
    Naive datetimes given to the database are taken to be UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base whose constraint names follow one convention (Alembic needs names)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class NodeType(Base):
    """A kind of node (a Slurm partition or a name the user chose) that gets one preset."""

    __tablename__ = "node_types"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Node(Base):
    """One host of a node type, as its latest probe described it."""

    __tablename__ = "nodes"
    __table_args__ = (UniqueConstraint("node_type_id", "hostname"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_type_id: Mapped[int] = mapped_column(ForeignKey("node_types.id", ondelete="CASCADE"))
    hostname: Mapped[str] = mapped_column(String(255))
    cpu_model: Mapped[str] = mapped_column(String(255), default="")
    microarchitecture: Mapped[str | None] = mapped_column(String(64))
    sockets: Mapped[int] = mapped_column(Integer, default=0)
    physical_cores: Mapped[int] = mapped_column(Integer, default=0)
    logical_cpus: Mapped[int] = mapped_column(Integer, default=0)
    numa_nodes: Mapped[int] = mapped_column(Integer, default=0)
    memory_total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class BlasEnvironment(Base):
    """A BLAS stack as threadpoolctl saw it plus numpy's build, stored once per fingerprint.

    The fingerprint hashes what identifies the stack (libraries, versions, threading layers,
    paths, numpy version and build), not the thread counts a process happened to run with.
    """

    __tablename__ = "blas_environments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    summary: Mapped[str] = mapped_column(String(500), default="")
    libraries: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    numpy_version: Mapped[str] = mapped_column(String(64), default="")
    numpy_blas: Mapped[dict[str, Any]] = mapped_column(JSON)
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Calibration(Base):
    """One ``blasprof calibrate`` run for one node type; its id is the one users see."""

    __tablename__ = "calibrations"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in CALIBRATION_STATUSES) + ")",
            name="status",
        ),
        Index(None, "created_at"),
        # `list --node-type`, `compare --node-type T WINDOW`: one type's calibrations by time
        Index(None, "node_type_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_type_id: Mapped[int] = mapped_column(ForeignKey("node_types.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    executor: Mapped[str] = mapped_column(String(32))
    profile: Mapped[str] = mapped_column(String(32))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    blasprof_version: Mapped[str] = mapped_column(String(64), default="")
    error: Mapped[str | None] = mapped_column(Text)
    #: quiet or noisy over all its nodes (None until it is finished, or when unknown)
    verdict: Mapped[str | None] = mapped_column(String(16))
    # The blasprof process that stores this calibration (see db.ownership): its host, pid
    # and start time, so that a pid reused by another process is not taken for it.
    owner_host: Mapped[str | None] = mapped_column(String(255))
    owner_pid: Mapped[int | None] = mapped_column(Integer)
    owner_started: Mapped[float | None] = mapped_column(Double)


class Job(Base):
    """One node task of a calibration: its batch-system identity, state and stored result."""

    __tablename__ = "jobs"
    __table_args__ = (
        # `nodes`: each node's latest job; `list --blas`: the jobs of a BLAS stack
        Index(None, "node_id", "finished_at"),
        Index(None, "blas_environment_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    calibration_id: Mapped[int] = mapped_column(
        ForeignKey("calibrations.id", ondelete="CASCADE"), index=True
    )
    external_id: Mapped[str | None] = mapped_column(String(128))
    array_index: Mapped[int | None] = mapped_column(Integer)
    hostname: Mapped[str | None] = mapped_column(String(255))
    node_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    log_tail: Mapped[str | None] = mapped_column(Text)
    folder: Mapped[str | None] = mapped_column(Text)
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    node_info: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    verification: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: how busy the node was while it measured (``profiler.conditions.Conditions``)
    conditions: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    blas_environment_id: Mapped[int | None] = mapped_column(
        ForeignKey("blas_environments.id", ondelete="SET NULL")
    )
    result_stored: Mapped[bool] = mapped_column(Boolean, default=False)


class MeasurementRow(Base):
    """One benchmark point of one job (``profiler.results.Measurement`` as a row)."""

    __tablename__ = "measurements"
    # A job's points by job; `list` counts them and takes the best float64 figure from this
    # index alone, without reading the rows (their samples are most of the table's bytes).
    __table_args__ = (Index(None, "job_id", "dtype", "workers", "gflops"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    kernel: Mapped[str] = mapped_column(String(32))
    dtype: Mapped[str] = mapped_column(String(16))
    n: Mapped[int] = mapped_column(Integer)
    threads: Mapped[int] = mapped_column(Integer)
    median_s: Mapped[float] = mapped_column(Double)
    min_s: Mapped[float] = mapped_column(Double)
    cv: Mapped[float] = mapped_column(Double)
    gflops: Mapped[float] = mapped_column(Double)
    samples: Mapped[list[float]] = mapped_column(JSON)
    loops: Mapped[int] = mapped_column(Integer)
    threads_verified: Mapped[bool] = mapped_column(Boolean)
    threads_observed: Mapped[list[int]] = mapped_column(JSON)
    phase: Mapped[str] = mapped_column(String(32), default="full")
    #: processes measured at once: 1 for the thread sweep, W for a layout point
    workers: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))


class PresetRow(Base):
    """A preset derived from a calibration; ``data`` is ``profiler.preset.Preset.to_dict()``."""

    __tablename__ = "presets"
    __table_args__ = (Index(None, "node_type_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    calibration_id: Mapped[int] = mapped_column(
        ForeignKey("calibrations.id", ondelete="CASCADE"), index=True
    )
    node_type_id: Mapped[int] = mapped_column(ForeignKey("node_types.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: whether jobs get this preset (a noisy or unverified calibration may not replace a
    #: clean one); what its calibration was worth, and why it was (not) adopted
    adopted: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    quality: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
