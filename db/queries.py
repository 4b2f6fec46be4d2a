"""Reads: calibrations, jobs, measurements and presets, returned as frozen plain records.

Each function takes an open ``Session`` and returns records built from ``profiler``'s
dataclasses (``Measurement``, ``Verification``, ``BlasLibrary``, ``Preset``), never ORM
objects, so callers can keep them after the session is gone. ``CalibrationRecord.to_json``
is the document ``blasprof show ID --json`` prints.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, Select, and_, case, func, select
from sqlalchemy.orm import Session

from db.history import blas_by_environment, environments_matching
from db.models import Calibration, Job, MeasurementRow, NodeType, PresetRow
from db.records import CalibrationRecord, CalibrationSummary, JobRecord, StoredMeasurement
from profiler.errors import NotFound
from profiler.preset import Preset
from profiler.results import BlasLibrary, Measurement, Verification

__all__ = [
    "CalibrationRecord",
    "CalibrationSummary",
    "JobRecord",
    "StoredMeasurement",
    "calibration_ids_with_pending_jobs",
    "current_quality",
    "get_calibration",
    "latest_preset",
    "list_calibrations",
    "node_type_names",
    "pending_jobs",
]


def list_calibrations(
    session: Session,
    *,
    node_type: str | None = None,
    since: dt.datetime | None = None,
    status: str | None = None,
    blas: str | None = None,
    limit: int | None = None,
) -> list[CalibrationSummary]:
    """Calibrations newest first: of one node type, created at or after ``since``, with a
    status, run on a BLAS that ``blas`` names (``profiler.history.blas_matches``), at most
    ``limit`` of them; every filter is optional."""
    query = _calibrations().order_by(Calibration.created_at.desc(), Calibration.id.desc())
    if node_type is not None:
        query = query.where(NodeType.name == node_type)
    if since is not None:
        if since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
        query = query.where(Calibration.created_at >= since)
    if status is not None:
        query = query.where(Calibration.status == status)
    if blas is not None:
        stacks = environments_matching(session, blas)
        query = query.where(
            Calibration.id.in_(
                select(Job.calibration_id).where(Job.blas_environment_id.in_(stacks))
            )
        )
    if limit is not None:
        query = query.limit(limit)
    rows = session.execute(query).all()
    stats = _stats(session, [calibration.id for calibration, _ in rows])
    return [_summary(calibration, name, stats) for calibration, name in rows]


def get_calibration(session: Session, calibration_id: int) -> CalibrationRecord:
    """Everything about one calibration; ``NotFound`` when the id does not exist."""
    row = session.execute(_calibrations().where(Calibration.id == calibration_id)).first()
    if row is None:
        raise NotFound(f"no calibration with id {calibration_id}; `blasprof list` shows the ids")
    calibration, node_type = row
    summary = _summary(calibration, node_type, _stats(session, [calibration_id]))
    jobs = tuple(
        _job_record(job, node_type)
        for job in session.scalars(
            select(Job).where(Job.calibration_id == calibration_id).order_by(Job.id)
        )
    )
    hostnames = {job.id: job.hostname for job in jobs}
    measurements = tuple(
        StoredMeasurement(
            job_id=m.job_id, hostname=hostnames.get(m.job_id), measurement=_measurement(m)
        )
        for m in session.scalars(
            select(MeasurementRow)
            .join(Job)
            .where(Job.calibration_id == calibration_id)
            .order_by(MeasurementRow.id)
        )
    )
    preset = session.scalars(
        select(PresetRow)
        .where(PresetRow.calibration_id == calibration_id)
        .order_by(PresetRow.created_at.desc(), PresetRow.id.desc())
        .limit(1)
    ).first()
    return CalibrationRecord(
        **{name: getattr(summary, name) for name in CalibrationSummary.__dataclass_fields__},
        settings=calibration.settings,
        blasprof_version=calibration.blasprof_version,
        error=calibration.error,
        jobs=jobs,
        measurements=measurements,
        preset=Preset.from_dict(preset.data) if preset is not None else None,
        preset_quality=preset.quality if preset is not None else None,
        preset_note=preset.note if preset is not None else None,
    )


def latest_preset(session: Session, node_type: str) -> Preset | None:
    """The newest adopted preset of ``node_type`` (the one jobs get), or None."""
    data = session.scalars(
        select(PresetRow.data)
        .join(NodeType, PresetRow.node_type_id == NodeType.id)
        .where(NodeType.name == node_type, PresetRow.adopted.is_(True))
        .order_by(PresetRow.created_at.desc(), PresetRow.id.desc())
        .limit(1)
    ).first()
    return Preset.from_dict(data) if data is not None else None


def current_quality(session: Session, node_type: str) -> str | None:
    """What the calibration behind ``node_type``'s adopted preset was worth (``clean``,
    ``noisy``, ...), or None when there is no such preset or it predates the judgement."""
    return session.scalars(
        select(PresetRow.quality)
        .join(NodeType, PresetRow.node_type_id == NodeType.id)
        .where(NodeType.name == node_type, PresetRow.adopted.is_(True))
        .order_by(PresetRow.created_at.desc(), PresetRow.id.desc())
        .limit(1)
    ).first()


def node_type_names(session: Session) -> list[str]:
    """Every node type name in the database, sorted."""
    return list(session.scalars(select(NodeType.name).order_by(NodeType.name)))


def pending_jobs(session: Session, calibration_id: int | None = None) -> list[JobRecord]:
    """Jobs whose result is not stored yet (what ``collect`` looks at), oldest first."""
    query = (
        select(Job, NodeType.name)
        .join(Calibration, Job.calibration_id == Calibration.id)
        .join(NodeType, Calibration.node_type_id == NodeType.id)
        .where(*_pending())
        .order_by(Job.id)
    )
    if calibration_id is not None:
        query = query.where(Job.calibration_id == calibration_id)
    return [_job_record(job, name) for job, name in session.execute(query)]


def calibration_ids_with_pending_jobs(session: Session) -> list[int]:
    """Ids of calibrations that still have pending jobs, ascending."""
    return list(
        session.scalars(
            select(Job.calibration_id).where(*_pending()).distinct().order_by(Job.calibration_id)
        )
    )


# -- helpers ------------------------------------------------------------------------------


def _calibrations() -> Select[tuple[Calibration, str]]:
    return select(Calibration, NodeType.name).join(
        NodeType, Calibration.node_type_id == NodeType.id
    )


def _pending() -> tuple[Any, ...]:
    # A job's end state is stored with its result, in one transaction: a job without a
    # stored result has not been collected, whatever state it was submitted in.
    return (Job.result_stored.is_(False),)


@dataclass
class _Stats:
    n_jobs: dict[int, int]
    n_measurements: dict[int, int]
    best_gflops: dict[int, float]
    hostnames: dict[int, tuple[str, ...]]
    blas: dict[int, tuple[str, ...]]
    adopted: dict[int, bool]


def _stats(session: Session, ids: Iterable[int]) -> _Stats:
    """Per-calibration counts, hosts, BLAS and best float64 GFLOP/s, a few grouped queries
    (the measurement figures come from an index, not the rows)."""
    ids = list(ids)
    stats = _Stats({}, {}, {}, {}, {}, {})
    labels = blas_by_environment(session) if ids else {}
    for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
        stats.n_jobs.update(
            session.execute(
                select(Job.calibration_id, func.count(Job.id))
                .where(Job.calibration_id.in_(chunk))
                .group_by(Job.calibration_id)
            ).all()
        )
        # one pass over the index (job_id, dtype, workers, gflops): counts and the best
        # single-process float64 figure
        for calibration_id, count, best in session.execute(
            select(
                Job.calibration_id,
                func.count(MeasurementRow.id),
                func.max(
                    case(
                        (
                            and_(MeasurementRow.dtype == "float64", MeasurementRow.workers == 1),
                            MeasurementRow.gflops,
                        )
                    )
                ),
            )
            .join(MeasurementRow, MeasurementRow.job_id == Job.id)
            .where(Job.calibration_id.in_(chunk))
            .group_by(Job.calibration_id)
        ):
            stats.n_measurements[calibration_id] = count
            if best is not None:
                stats.best_gflops[calibration_id] = best
        hosts: defaultdict[int, list[str]] = defaultdict(list)
        for calibration_id, hostname in session.execute(
            select(Job.calibration_id, Job.hostname)
            .distinct()
            .where(Job.calibration_id.in_(chunk), Job.hostname.is_not(None))
            .order_by(Job.calibration_id, Job.hostname)
        ):
            hosts[calibration_id].append(hostname)
        stats.hostnames.update({k: tuple(v) for k, v in hosts.items()})
        stats.adopted.update(
            session.execute(
                select(PresetRow.calibration_id, func.max(PresetRow.adopted.cast(Integer)))
                .where(PresetRow.calibration_id.in_(chunk))
                .group_by(PresetRow.calibration_id)
            ).all()
        )
        stacks: defaultdict[int, set[str]] = defaultdict(set)
        for calibration_id, env in session.execute(
            select(Job.calibration_id, Job.blas_environment_id)
            .distinct()
            .where(Job.calibration_id.in_(chunk), Job.blas_environment_id.is_not(None))
        ):
            stacks[calibration_id].update(labels.get(env, ()))
        stats.blas.update({k: tuple(sorted(v)) for k, v in stacks.items()})
    return stats


def _summary(calibration: Calibration, node_type: str, stats: _Stats) -> CalibrationSummary:
    best = stats.best_gflops.get(calibration.id)
    return CalibrationSummary(
        id=calibration.id,
        node_type=node_type,
        status=calibration.status,
        executor=calibration.executor,
        profile=calibration.profile,
        created_at=calibration.created_at,
        finished_at=calibration.finished_at,
        n_jobs=stats.n_jobs.get(calibration.id, 0),
        n_measurements=stats.n_measurements.get(calibration.id, 0),
        hostnames=stats.hostnames.get(calibration.id, ()),
        best_gflops=float(best) if best is not None else None,
        blas=stats.blas.get(calibration.id, ()),
        verdict=calibration.verdict,
        preset_adopted=(
            bool(stats.adopted[calibration.id]) if calibration.id in stats.adopted else None
        ),
    )


def _job_record(job: Job, node_type: str) -> JobRecord:
    info = job.node_info
    return JobRecord(
        id=job.id,
        calibration_id=job.calibration_id,
        node_type=node_type,
        external_id=job.external_id,
        array_index=job.array_index,
        state=job.state,
        reason=job.reason,
        log_tail=job.log_tail,
        folder=job.folder,
        hostname=job.hostname,
        submitted_at=job.submitted_at,
        finished_at=job.finished_at,
        result_stored=job.result_stored,
        node_info=info,
        blas=tuple(BlasLibrary.from_dict(b) for b in (info or {}).get("blas", ())),
        verification=_verification(job.verification),
        conditions=job.conditions,
    )


def _verification(raw: Any) -> Verification | None:
    """A stored verification, or None when the row's shape is not one blasprof wrote."""
    if not isinstance(raw, dict):
        return None
    try:
        return Verification.from_dict(raw)
    except (TypeError, ValueError):
        return None


def _measurement(row: MeasurementRow) -> Measurement:
    return Measurement(
        kernel=row.kernel,
        dtype=row.dtype,
        n=row.n,
        threads=row.threads,
        median_s=row.median_s,
        min_s=row.min_s,
        cv=row.cv,
        samples=tuple(row.samples),
        loops=row.loops,
        gflops=row.gflops,
        threads_verified=row.threads_verified,
        threads_observed=tuple(row.threads_observed),
        phase=row.phase,
        workers=row.workers,
    )
