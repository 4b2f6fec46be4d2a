"""Writes: calibrations, jobs, node results and presets, each inside the caller's transaction.

Every function takes an open ``Session`` already in a transaction (``db.database.Database``
provides one) and plain records from ``profiler``; nothing here commits. Rows that several
processes may create at once (node types, nodes, BLAS environments) are inserted with the
dialect's "on conflict do nothing" and then read back, so concurrent writers never trip on
a unique constraint.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import numbers
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from db.models import (
    CALIBRATION_STATUSES,
    BlasEnvironment,
    Calibration,
    Job,
    MeasurementRow,
    Node,
    NodeType,
    utcnow,
)
from profiler.errors import DatabaseError, NotFound, UsageError
from profiler.results import NUMPY_BLAS, NodeInfo, NodeResult
from profiler.statuses import COMPLETE, PENDING, RUNNING

if TYPE_CHECKING:
    pass

__all__ = [
    "add_job",
    "calibration_row",
    "blas_fingerprint",
    "create_calibration",
    "finish_calibration",
    "node_type_id",
    "node_type_name",
    "plain_json",
    "store_node_result",
]

# What identifies a BLAS library; the thread count a process ran with does not.
_BLAS_IDENTITY = (
    "user_api",
    "internal_api",
    "version",
    "threading_layer",
    "architecture",
    "filepath",
    "prefix",
)


def create_calibration(
    session: Session,
    node_type: str,
    *,
    executor: str,
    profile: str,
    settings: dict[str, Any],
    status: str = RUNNING,
    created_at: dt.datetime | None = None,
    owner: tuple[str, int, float] | None = None,
) -> int:
    """Insert a calibration (creating its node type if new); return its id.

    ``created_at`` defaults to now; an earlier time records a calibration taken earlier.
    ``owner`` is the (host, pid, start time) of the process that will store its results
    (see ``db.ownership``).
    """
    _check_status(status)
    if not node_type:
        raise UsageError("a calibration needs a node type name; got an empty one")
    calibration = Calibration(
        node_type_id=node_type_id(session, node_type),
        status=status,
        executor=executor,
        profile=profile,
        settings=plain_json(settings),
        created_at=created_at or utcnow(),
        blasprof_version=_blasprof_version(),
    )
    if owner is not None:
        calibration.owner_host, calibration.owner_pid, calibration.owner_started = owner
    session.add(calibration)
    session.flush()
    return calibration.id


def add_job(
    session: Session,
    calibration_id: int,
    *,
    external_id: str | None,
    folder: str | None,
    state: str,
    array_index: int | None = None,
) -> int:
    """Insert a job of ``calibration_id``; return its row id."""
    calibration_row(session, calibration_id)
    job = Job(
        calibration_id=calibration_id,
        external_id=external_id,
        folder=folder,
        state=state,
        array_index=array_index,
        submitted_at=utcnow(),
        result_stored=False,
    )
    session.add(job)
    session.flush()
    return job.id


def store_node_result(
    session: Session,
    job_row_id: int,
    result: NodeResult,
    *,
    state: str | None = None,
    reason: str | None = None,
    log_tail: str | None = None,
) -> bool:
    """Store a node's result for a job exactly once; False if it was stored before.

    The job is claimed first with a conditional UPDATE (``result_stored`` false -> true);
    a second writer, in this process or another, finds nothing to claim once the first
    commits, and stores nothing. Everything else happens in the same transaction, so a
    failure part-way leaves the job unclaimed.
    """
    claimed = session.execute(
        update(Job)
        .where(Job.id == job_row_id, Job.result_stored.is_(False))
        .values(result_stored=True)
        .execution_options(synchronize_session=False)
    ).rowcount
    job = session.get(Job, job_row_id)
    if job is None:
        raise NotFound(f"no job with row id {job_row_id}")
    if not claimed:
        return False
    calibration = calibration_row(session, job.calibration_id)
    node_type = session.get_one(NodeType, calibration.node_type_id)
    if result.node_type != node_type.name:
        raise DatabaseError(
            f"job {job_row_id} belongs to calibration {calibration.id} of node type "
            f"{node_type.name!r}, but the result is for node type {result.node_type!r}"
        )
    if result.node is not None:
        job.node_id = _upsert_node(session, node_type.id, result.node)
        job.blas_environment_id = _blas_environment_id(session, result.node)
        job.hostname = result.node.hostname
        job.node_info = plain_json(result.node.to_dict())
    if result.verification is not None:
        job.verification = plain_json(dataclasses.asdict(result.verification))
    if result.conditions is not None:
        job.conditions = plain_json(result.conditions)
    # The job's state in the batch system's words (COMPLETED, TIMEOUT, ...), stored in the
    # same transaction as the result: a reader never sees one without the other.
    job.state = state or ("COMPLETED" if result.status == COMPLETE else "FAILED")
    if reason or result.error:
        job.reason = reason or result.error
    if log_tail:
        job.log_tail = log_tail
    job.finished_at = _parse_time(result.finished_at) or utcnow()
    if result.measurements:
        session.execute(
            insert(MeasurementRow),
            [_measurement_row(job_row_id, m.to_dict()) for m in result.measurements],
        )
    return True


def finish_calibration(
    session: Session,
    calibration_id: int,
    status: str,
    error: str | None = None,
    verdict: str | None = None,
    *,
    finished_at: dt.datetime | None = None,
) -> bool:
    """Set a calibration's final status, error text, verdict and finish time, once.

    Only a calibration still pending or running is finished (a conditional UPDATE, so of
    two collectors finishing it at once exactly one wins); returns whether this call did.
    """
    _check_status(status)
    calibration_row(session, calibration_id)
    return bool(
        session.execute(
            update(Calibration)
            .where(
                Calibration.id == calibration_id,
                Calibration.status.in_((PENDING, RUNNING)),
            )
            .values(
                status=status, error=error, verdict=verdict, finished_at=finished_at or utcnow()
            )
            .execution_options(synchronize_session=False)
        ).rowcount
    )


def blas_fingerprint(node: NodeInfo) -> str:
    """A hash of what identifies a node's BLAS stack: libraries and numpy's version/build."""
    return hashlib.sha256(
        json.dumps(_blas_identity(node), sort_keys=True, default=str).encode()
    ).hexdigest()


# -- helpers ------------------------------------------------------------------------------


def _check_status(status: str) -> None:
    if status not in CALIBRATION_STATUSES:
        raise UsageError(
            f"unknown calibration status {status!r}; valid: {', '.join(CALIBRATION_STATUSES)}"
        )


def calibration_row(session: Session, calibration_id: int) -> Calibration:
    calibration = session.get(Calibration, calibration_id)
    if calibration is None:
        raise NotFound(f"no calibration with id {calibration_id}; `blasprof list` shows the ids")
    return calibration


def node_type_name(session: Session, calibration_id: int) -> str:
    calibration = calibration_row(session, calibration_id)
    return session.get_one(NodeType, calibration.node_type_id).name


def _insert_missing(
    session: Session, model: type[Any], values: dict[str, Any], keys: list[str]
) -> None:
    """Insert ``values`` unless a row with the same ``keys`` exists (or appears meanwhile)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:
        exists = select(model.id).filter_by(**{k: values[k] for k in keys})
        if session.scalars(exists).first() is None:
            session.execute(insert(model).values(**values))
        return
    session.execute(
        dialect_insert(model).values(**values).on_conflict_do_nothing(index_elements=keys)
    )


def node_type_id(session: Session, name: str) -> int:
    _insert_missing(session, NodeType, {"name": name, "created_at": utcnow()}, ["name"])
    return session.scalars(select(NodeType.id).where(NodeType.name == name)).one()


def _upsert_node(session: Session, node_type_id: int, info: NodeInfo) -> int:
    now = utcnow()
    described = {
        "cpu_model": info.cpu_model,
        "microarchitecture": info.microarchitecture,
        "sockets": info.sockets,
        "physical_cores": info.physical_cores,
        "logical_cpus": info.logical_cpus,
        "numa_nodes": info.numa_nodes,
        "memory_total_bytes": info.memory_total_bytes,
        "last_seen": now,
    }
    key = {"node_type_id": node_type_id, "hostname": info.hostname}
    _insert_missing(session, Node, {**key, **described, "first_seen": now}, list(key))
    node = session.scalars(select(Node).filter_by(**key)).one()
    for name, value in described.items():
        setattr(node, name, value)
    return node.id


def _blas_identity(node: NodeInfo) -> dict[str, Any]:
    libraries = sorted(
        ({k: getattr(lib, k) for k in _BLAS_IDENTITY} for lib in node.blas),
        key=lambda d: json.dumps(d, sort_keys=True, default=str),
    )
    return {
        "libraries": libraries,
        "numpy_version": node.numpy_version,
        "numpy_blas": node.numpy_blas,
    }


def _blas_environment_id(session: Session, node: NodeInfo) -> int:
    fingerprint = blas_fingerprint(node)
    identity = plain_json(_blas_identity(node))
    _insert_missing(
        session,
        BlasEnvironment,
        {
            "fingerprint": fingerprint,
            "libraries": identity["libraries"],
            "numpy_version": node.numpy_version,
            "numpy_blas": identity["numpy_blas"],
            "first_seen": utcnow(),
        },
        ["fingerprint"],
    )
    return session.scalars(
        select(BlasEnvironment.id).where(BlasEnvironment.fingerprint == fingerprint)
    ).one()


def _measurement_row(job_row_id: int, m: dict[str, Any]) -> dict[str, Any]:
    return {
        "job_id": job_row_id,
        "kernel": m["kernel"],
        "dtype": m["dtype"],
        "n": int(m["n"]),
        "threads": int(m["threads"]),
        "median_s": float(m["median_s"]),
        "min_s": float(m["min_s"]),
        "cv": float(m["cv"]),
        "gflops": float(m["gflops"]),
        "samples": [float(s) for s in m["samples"]],
        "loops": int(m["loops"]),
        "threads_verified": bool(m["threads_verified"]),
        "threads_observed": [int(t) for t in m["threads_observed"]],
        "phase": m["phase"],
        "workers": int(m.get("workers", 1)),
        # numpy's, the default, is stored as NULL like every point from before the column
        "blas": None if m.get("blas", NUMPY_BLAS) == NUMPY_BLAS else str(m["blas"]),
        "runs": [
            {
                "median_s": float(r["median_s"]),
                "samples": [float(s) for s in r["samples"]],
                "loops": int(r["loops"]),
                "threads_verified": bool(r["threads_verified"]),
            }
            for r in m.get("runs") or ()
        ]
        or None,
    }


def _parse_time(value: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def plain_json(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples become lists, NaN and infinities None).

    PostgreSQL's JSON refuses NaN, and storing exactly what a read returns keeps records
    equal across a round trip.
    """
    if isinstance(value, dict):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value) if math.isfinite(value) else None
    raise UsageError(f"cannot store a {type(value).__name__} as JSON: {value!r}")


def _blasprof_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("blasprof")
    except PackageNotFoundError:
        return "unknown"
