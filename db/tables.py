"""The database schema as SQLAlchemy Core tables: calibrations and what they measured.

This is the one description of the schema. The readers (``db.queries``, ``db.history``,
``db.ownership``) query these tables with Core alone, so a command that only reads never
imports the ORM; the writers (``db.store``) use the ORM classes of ``db.models``, mapped
onto these same tables.

The schema is owned by Alembic (``db/migrations``); a test compares these tables with the
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
    Column,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.engine import Dialect

from profiler.statuses import CALIBRATION_STATUSES

__all__ = [
    "CALIBRATION_STATUSES",
    "SCHEMA_REVISION",
    "UTCDateTime",
    "blas_environments",
    "calibrations",
    "jobs",
    "measurements",
    "metadata",
    "node_types",
    "nodes",
    "presets",
    "utcnow",
]

#: the Alembic revision these tables describe (the head of ``db/migrations``): opening a
#: database compares it with ``alembic_version`` without importing Alembic; a test checks it
SCHEMA_REVISION = "0007_measurement_blas"


NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: every table, with constraint names that follow one convention (Alembic needs names)
metadata = MetaData(naming_convention=NAMING_CONVENTION)


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


def _id() -> Column[int]:
    return Column("id", Integer, primary_key=True)


def _required(name: str, kind: Any, *args: Any, **kwargs: Any) -> Column[Any]:
    """A NOT NULL column (the default in what follows is a column that may be NULL)."""
    return Column(name, kind, *args, nullable=False, **kwargs)


def _parent(name: str, target: str, ondelete: str, *, required: bool = True) -> Column[int]:
    """A foreign key to ``target`` (``table.column``)."""
    return Column(name, ForeignKey(target, ondelete=ondelete), nullable=not required)


#: a kind of node (a Slurm partition or a name the user chose) that gets one preset
node_types = Table(
    "node_types",
    metadata,
    _id(),
    _required("name", String(200), unique=True),
    _required("created_at", UTCDateTime, default=utcnow),
)

#: one host of a node type, as its latest probe described it
nodes = Table(
    "nodes",
    metadata,
    _id(),
    _parent("node_type_id", "node_types.id", "CASCADE"),
    _required("hostname", String(255)),
    _required("cpu_model", String(255), default=""),
    Column("microarchitecture", String(64)),
    _required("sockets", Integer, default=0),
    _required("physical_cores", Integer, default=0),
    _required("logical_cpus", Integer, default=0),
    _required("numa_nodes", Integer, default=0),
    _required("memory_total_bytes", BigInteger, default=0),
    _required("first_seen", UTCDateTime, default=utcnow),
    _required("last_seen", UTCDateTime, default=utcnow),
    UniqueConstraint("node_type_id", "hostname"),
)

#: a BLAS stack as threadpoolctl saw it plus numpy's build, stored once per fingerprint;
#: the fingerprint hashes what identifies the stack (libraries, versions, threading layers,
#: paths, numpy version and build), not the thread counts a process happened to run with
blas_environments = Table(
    "blas_environments",
    metadata,
    _id(),
    _required("fingerprint", String(64), unique=True),
    _required("libraries", JSON),
    _required("numpy_version", String(64), default=""),
    _required("numpy_blas", JSON),
    _required("first_seen", UTCDateTime, default=utcnow),
)

#: one ``blasprof calibrate`` run for one node type; its id is the one users see
calibrations = Table(
    "calibrations",
    metadata,
    _id(),
    _parent("node_type_id", "node_types.id", "CASCADE"),
    _required("status", String(16)),
    _required("executor", String(32)),
    _required("profile", String(32)),
    _required("settings", JSON),
    _required("created_at", UTCDateTime, default=utcnow),
    Column("finished_at", UTCDateTime),
    _required("blasprof_version", String(64), default=""),
    Column("error", Text),
    # quiet or noisy over all its nodes (None until it is finished, or when unknown)
    Column("verdict", String(16)),
    # The blasprof process that stores this calibration (see db.ownership): its host, pid
    # and start time, so that a pid reused by another process is not taken for it.
    Column("owner_host", String(255)),
    Column("owner_pid", Integer),
    Column("owner_started", Double),
    CheckConstraint(
        "status IN (" + ", ".join(f"'{s}'" for s in CALIBRATION_STATUSES) + ")",
        name="status",
    ),
    Index(None, "created_at"),
    # `list --node-type`, `compare --node-type T WINDOW`: one type's calibrations by time
    Index(None, "node_type_id", "created_at"),
)

#: one node task of a calibration: its batch-system identity, state and stored result
jobs = Table(
    "jobs",
    metadata,
    _id(),
    Column(
        "calibration_id",
        ForeignKey("calibrations.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("external_id", String(128)),
    Column("array_index", Integer),
    Column("hostname", String(255)),
    _parent("node_id", "nodes.id", "SET NULL", required=False),
    _required("state", String(32)),
    Column("reason", Text),
    Column("log_tail", Text),
    Column("folder", Text),
    _required("submitted_at", UTCDateTime, default=utcnow),
    Column("finished_at", UTCDateTime),
    Column("node_info", JSON),
    Column("verification", JSON),
    # how busy the node was while it measured (``profiler.measure.conditions.Conditions``)
    Column("conditions", JSON),
    _parent("blas_environment_id", "blas_environments.id", "SET NULL", required=False),
    _required("result_stored", Boolean, default=False),
    # `nodes`: each node's latest job; `list --blas`: the jobs of a BLAS stack
    Index(None, "node_id", "finished_at"),
    Index(None, "blas_environment_id"),
)

#: one benchmark point of one job (``profiler.results.Measurement`` as a row)
measurements = Table(
    "measurements",
    metadata,
    _id(),
    _parent("job_id", "jobs.id", "CASCADE"),
    _required("kernel", String(32)),
    _required("dtype", String(16)),
    _required("n", Integer),
    _required("threads", Integer),
    _required("median_s", Double),
    _required("min_s", Double),
    _required("cv", Double),
    _required("gflops", Double),
    _required("samples", JSON),
    _required("loops", Integer),
    _required("threads_verified", Boolean),
    _required("threads_observed", JSON),
    _required("phase", String(32), default="full"),
    # processes measured at once: 1 for the thread sweep, W for a layout point
    _required("workers", Integer, default=1, server_default=text("1")),
    # each worker process's figure and samples (``profiler.results.Run``); NULL: one run
    Column("runs", JSON),
    # the BLAS library the point ran on (a ``profiler.blas`` label); NULL: numpy's
    Column("blas", String(64)),
    # A job's points by job; `list` counts them and takes the best float64 figure from this
    # index alone, without reading the rows (their samples are most of the table's bytes).
    Index(None, "job_id", "dtype", "workers", "gflops"),
)

#: a preset derived from a calibration; ``data`` is ``profiler.choice.preset.Preset.to_dict()``;
#: ``adopted`` says whether jobs get it (a noisy or unverified calibration may not replace a
#: clean one), ``quality`` what its calibration was worth and ``note`` why it was (not)
#: adopted
presets = Table(
    "presets",
    metadata,
    _id(),
    Column(
        "calibration_id",
        ForeignKey("calibrations.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    _parent("node_type_id", "node_types.id", "CASCADE"),
    _required("created_at", UTCDateTime, default=utcnow),
    _required("data", JSON),
    _required("adopted", Boolean, default=True, server_default=true()),
    Column("quality", String(32)),
    Column("note", Text),
    Index(None, "node_type_id", "created_at"),
)
