"""The ORM classes the writers (``db.store``) use, mapped onto the tables of ``db.tables``.

The schema itself is described once, in ``db.tables``; the annotations here only give the
attributes their types. Importing this module imports SQLAlchemy's ORM, which a command that
only reads never needs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import DeclarativeBase, Mapped

from db import tables
from db.tables import CALIBRATION_STATUSES, SCHEMA_REVISION, UTCDateTime, utcnow

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


class Base(DeclarativeBase):
    """Declarative base over the one ``MetaData`` of ``db.tables``."""

    metadata = tables.metadata


class NodeType(Base):
    """A row of ``node_types``."""

    __table__ = tables.node_types

    id: Mapped[int]
    name: Mapped[str]
    created_at: Mapped[dt.datetime]


class Node(Base):
    """A row of ``nodes``."""

    __table__ = tables.nodes

    id: Mapped[int]
    node_type_id: Mapped[int]
    hostname: Mapped[str]
    cpu_model: Mapped[str]
    microarchitecture: Mapped[str | None]
    sockets: Mapped[int]
    physical_cores: Mapped[int]
    logical_cpus: Mapped[int]
    numa_nodes: Mapped[int]
    memory_total_bytes: Mapped[int]
    first_seen: Mapped[dt.datetime]
    last_seen: Mapped[dt.datetime]


class BlasEnvironment(Base):
    """A row of ``blas_environments``."""

    __table__ = tables.blas_environments

    id: Mapped[int]
    fingerprint: Mapped[str]
    libraries: Mapped[list[dict[str, Any]]]
    numpy_version: Mapped[str]
    numpy_blas: Mapped[dict[str, Any]]
    first_seen: Mapped[dt.datetime]


class Calibration(Base):
    """A row of ``calibrations``."""

    __table__ = tables.calibrations

    id: Mapped[int]
    node_type_id: Mapped[int]
    status: Mapped[str]
    executor: Mapped[str]
    profile: Mapped[str]
    settings: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]
    blasprof_version: Mapped[str]
    error: Mapped[str | None]
    verdict: Mapped[str | None]
    owner_host: Mapped[str | None]
    owner_pid: Mapped[int | None]
    owner_started: Mapped[float | None]


class Job(Base):
    """A row of ``jobs``."""

    __table__ = tables.jobs

    id: Mapped[int]
    calibration_id: Mapped[int]
    external_id: Mapped[str | None]
    array_index: Mapped[int | None]
    hostname: Mapped[str | None]
    node_id: Mapped[int | None]
    state: Mapped[str]
    reason: Mapped[str | None]
    log_tail: Mapped[str | None]
    folder: Mapped[str | None]
    submitted_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]
    node_info: Mapped[dict[str, Any] | None]
    verification: Mapped[dict[str, Any] | None]
    conditions: Mapped[dict[str, Any] | None]
    blas_environment_id: Mapped[int | None]
    result_stored: Mapped[bool]


class MeasurementRow(Base):
    """A row of ``measurements``."""

    __table__ = tables.measurements

    id: Mapped[int]
    job_id: Mapped[int]
    kernel: Mapped[str]
    dtype: Mapped[str]
    n: Mapped[int]
    threads: Mapped[int]
    median_s: Mapped[float]
    min_s: Mapped[float]
    cv: Mapped[float]
    gflops: Mapped[float]
    samples: Mapped[list[float]]
    loops: Mapped[int]
    threads_verified: Mapped[bool]
    threads_observed: Mapped[list[int]]
    phase: Mapped[str]
    workers: Mapped[int]
    runs: Mapped[list[dict[str, Any]] | None]
    blas: Mapped[str | None]


class PresetRow(Base):
    """A row of ``presets``."""

    __table__ = tables.presets

    id: Mapped[int]
    calibration_id: Mapped[int]
    node_type_id: Mapped[int]
    created_at: Mapped[dt.datetime]
    data: Mapped[dict[str, Any]]
    adopted: Mapped[bool]
    quality: Mapped[str | None]
    note: Mapped[str | None]
