"""Reads: calibrations, jobs, measurements and presets, returned as frozen plain records.

Each function takes an open ``Connection`` and returns records built from ``profiler``'s
dataclasses (``Measurement``, ``Verification``, ``BlasLibrary``, ``Preset``), never ORM
objects, so callers can keep them after the connection is gone. ``CalibrationRecord.to_json``
is the document ``blasprof show ID --json`` prints.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Integer, Row, Select, and_, case, func, or_, select

from db import checked
from db.errors import BadRow
from db.history import blas_by_environment, environments_matching, of_library, type_names
from db.records import CalibrationRecord, CalibrationSummary, JobRecord, StoredMeasurement
from db.rows import readable
from db.tables import calibrations, jobs, measurements, node_types, presets
from profiler.choice.preset import Preset
from profiler.errors import NotFound

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
    connection: Connection,
    *,
    node_type: str | None = None,
    since: dt.datetime | None = None,
    status: str | None = None,
    blas: str | None = None,
    limit: int | None = None,
    bad: list[BadRow] | None = None,
) -> list[CalibrationSummary]:
    """Calibrations newest first: of one node type, created at or after ``since``, with a
    status, run on a BLAS that ``blas`` names (``profiler.history.selection.blas_matches``), at most
    ``limit`` of them; every filter is optional.

    A calibration whose stored values cannot be read is a ``BadRow``; given ``bad``, it is
    left out and its error appended there instead, so the others can still be listed.
    """
    query = _calibrations().order_by(calibrations.c.created_at.desc(), calibrations.c.id.desc())
    if node_type is not None:
        query = query.where(node_types.c.name == node_type)
    if since is not None:
        if since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
        query = query.where(calibrations.c.created_at >= since)
    if status is not None:
        query = query.where(calibrations.c.status == status)
    if blas is not None:
        # the BLAS stack numpy loaded (openblas@0.3.26), or a library the calibration swept
        stacks = environments_matching(connection, blas)
        swept = (
            select(jobs.c.calibration_id)
            .join(measurements, measurements.c.job_id == jobs.c.id)
            .where(of_library(blas))
        )
        query = query.where(
            or_(
                calibrations.c.id.in_(
                    select(jobs.c.calibration_id).where(jobs.c.blas_environment_id.in_(stacks))
                ),
                calibrations.c.id.in_(swept),
            )
        )
    if limit is not None:
        query = query.limit(limit)
    rows = connection.execute(query).all()
    stats = _stats(connection, [row.id for row in rows])
    summaries = []
    for row in rows:
        try:
            summaries.append(_summary(connection, row, stats))
        except BadRow as e:
            if bad is None:
                raise
            bad.append(e)
    return summaries


def get_calibration(connection: Connection, calibration_id: int) -> CalibrationRecord:
    """Everything about one calibration; ``NotFound`` when the id does not exist."""
    row = connection.execute(_calibrations().where(calibrations.c.id == calibration_id)).first()
    if row is None:
        raise NotFound(f"no calibration with id {calibration_id}; `blasprof list` shows the ids")
    summary = _summary(connection, row, _stats(connection, [calibration_id]))
    job_records = tuple(
        checked.job_record(job, row.node_type)
        for job in connection.execute(
            select(*readable(jobs))
            .where(jobs.c.calibration_id == calibration_id)
            .order_by(jobs.c.id)
        )
    )
    hostnames = {job.id: job.hostname for job in job_records}
    points = tuple(
        StoredMeasurement(
            job_id=m.job_id,
            hostname=hostnames.get(m.job_id),
            measurement=checked.measurement(m),
        )
        for m in connection.execute(
            select(*readable(measurements))
            .join(jobs, measurements.c.job_id == jobs.c.id)
            .where(jobs.c.calibration_id == calibration_id)
            .order_by(measurements.c.id)
        )
    )
    stored = connection.execute(
        select(*readable(presets))
        .where(presets.c.calibration_id == calibration_id)
        .order_by(presets.c.created_at.desc(), presets.c.id.desc())
        .limit(1)
    ).first()
    at = checked.row_at("presets", stored.id) if stored is not None else None
    return CalibrationRecord(
        **{name: getattr(summary, name) for name in CalibrationSummary.__dataclass_fields__},
        **checked.calibration_details(row),
        jobs=job_records,
        measurements=points,
        preset=checked.preset(stored.data, at) if at is not None else None,
        preset_quality=at.text("quality", stored.quality, optional=True) if at else None,
        preset_note=at.text("note", stored.note, optional=True) if at else None,
    )


def latest_preset(connection: Connection, node_type: str) -> Preset | None:
    """The newest adopted preset of ``node_type`` (the one jobs get), or None."""
    found = connection.execute(_adopted(presets.c.id, *readable(presets.c.data), node_type)).first()
    if found is None:
        return None
    return checked.preset(found[1], checked.row_at("presets", found[0]), typed=False)


def current_quality(connection: Connection, node_type: str) -> str | None:
    """What the calibration behind ``node_type``'s adopted preset was worth (``clean``,
    ``noisy``, ...), or None when there is no such preset or it predates the judgement."""
    found = connection.execute(_adopted(presets.c.id, presets.c.quality, node_type)).first()
    if found is None:
        return None
    return checked.row_at("presets", found[0]).text("quality", found[1], optional=True)


def node_type_names(connection: Connection) -> list[str]:
    """Every node type name in the database, sorted."""
    return type_names(connection)


def pending_jobs(connection: Connection, calibration_id: int | None = None) -> list[JobRecord]:
    """Jobs whose result is not stored yet (what ``collect`` looks at), oldest first."""
    query = (
        select(*readable(jobs), node_types.c.name.label("node_type"))
        .join(calibrations, jobs.c.calibration_id == calibrations.c.id)
        .join(node_types, calibrations.c.node_type_id == node_types.c.id)
        .where(*_pending())
        .order_by(jobs.c.id)
    )
    if calibration_id is not None:
        query = query.where(jobs.c.calibration_id == calibration_id)
    return [checked.job_record(row, row.node_type) for row in connection.execute(query)]


def calibration_ids_with_pending_jobs(connection: Connection) -> list[int]:
    """Ids of calibrations that still have pending jobs, ascending."""
    return list(
        connection.scalars(
            select(jobs.c.calibration_id)
            .where(*_pending())
            .distinct()
            .order_by(jobs.c.calibration_id)
        )
    )


# -- helpers ------------------------------------------------------------------------------


def _calibrations() -> Select[Any]:
    """Calibration rows, each with its node type's name as ``node_type``."""
    return select(*readable(calibrations), node_types.c.name.label("node_type")).join(
        node_types, calibrations.c.node_type_id == node_types.c.id
    )


def _adopted(*columns: Any) -> Select[Any]:
    """``columns`` of a node type's adopted preset: its newest adopted one (the last
    argument is the node type's name)."""
    *columns, node_type = columns
    return (
        select(*columns)
        .join(node_types, presets.c.node_type_id == node_types.c.id)
        .where(node_types.c.name == node_type, presets.c.adopted.is_(True))
        .order_by(presets.c.created_at.desc(), presets.c.id.desc())
        .limit(1)
    )


def _pending() -> tuple[Any, ...]:
    # A job's end state is stored with its result, in one transaction: a job without a
    # stored result has not been collected, whatever state it was submitted in.
    return (jobs.c.result_stored.is_(False),)


@dataclass
class _Stats:
    n_jobs: dict[int, int]
    n_measurements: dict[int, int]
    best_gflops: dict[int, float]
    hostnames: dict[int, tuple[str, ...]]
    blas: dict[int, tuple[str, ...]]
    adopted: dict[int, bool]


def _stats(connection: Connection, ids: Iterable[int]) -> _Stats:
    """Per-calibration counts, hosts, BLAS and best float64 GFLOP/s, a few grouped queries
    (the measurement figures come from an index, not the rows)."""
    ids = list(ids)
    stats = _Stats({}, {}, {}, {}, {}, {})
    labels = blas_by_environment(connection) if ids else {}
    for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
        stats.n_jobs.update(
            connection.execute(
                select(jobs.c.calibration_id, func.count(jobs.c.id))
                .where(jobs.c.calibration_id.in_(chunk))
                .group_by(jobs.c.calibration_id)
            ).all()
        )
        # one pass over the index (job_id, dtype, workers, gflops): counts and the best
        # single-process float64 figure
        for calibration_id, count, best in connection.execute(
            select(
                jobs.c.calibration_id,
                func.count(measurements.c.id),
                func.max(
                    case(
                        (
                            and_(measurements.c.dtype == "float64", measurements.c.workers == 1),
                            measurements.c.gflops,
                        )
                    )
                ),
            )
            .join(measurements, measurements.c.job_id == jobs.c.id)
            .where(jobs.c.calibration_id.in_(chunk))
            .group_by(jobs.c.calibration_id)
        ):
            stats.n_measurements[calibration_id] = count
            if best is not None:
                stats.best_gflops[calibration_id] = best
        hosts: defaultdict[int, list[str]] = defaultdict(list)
        for calibration_id, hostname in connection.execute(
            select(jobs.c.calibration_id, jobs.c.hostname)
            .distinct()
            .where(jobs.c.calibration_id.in_(chunk), jobs.c.hostname.is_not(None))
            .order_by(jobs.c.calibration_id, jobs.c.hostname)
        ):
            hosts[calibration_id].append(hostname)
        stats.hostnames.update({k: tuple(v) for k, v in hosts.items()})
        stats.adopted.update(
            connection.execute(
                select(presets.c.calibration_id, func.max(presets.c.adopted.cast(Integer)))
                .where(presets.c.calibration_id.in_(chunk))
                .group_by(presets.c.calibration_id)
            ).all()
        )
        stacks: defaultdict[int, set[str]] = defaultdict(set)
        for calibration_id, env in connection.execute(
            select(jobs.c.calibration_id, jobs.c.blas_environment_id)
            .distinct()
            .where(jobs.c.calibration_id.in_(chunk), jobs.c.blas_environment_id.is_not(None))
        ):
            stacks[calibration_id].update(labels.get(env, ()))
        stats.blas.update({k: tuple(sorted(v)) for k, v in stacks.items()})
    return stats


def _summary(connection: Connection, calibration: Row[Any], stats: _Stats) -> CalibrationSummary:
    cal_id = calibration.id
    best = stats.best_gflops.get(cal_id)
    if best is not None and not (type(best) in (int, float) and math.isfinite(best)):
        _check_figures(connection, cal_id)
    return checked.calibration_summary(
        calibration,
        n_jobs=stats.n_jobs.get(cal_id, 0),
        n_measurements=stats.n_measurements.get(cal_id, 0),
        hostnames=stats.hostnames.get(cal_id, ()),
        best_gflops=best,
        blas=stats.blas.get(cal_id, ()),
        adopted=stats.adopted.get(cal_id),
    )


def _check_figures(connection: Connection, calibration_id: int) -> None:
    """A ``BadRow`` for the measurement whose GFLOP/s made a calibration's best figure
    something other than a number (SQLite keeps text in a REAL column)."""
    at_figures = (
        select(measurements.c.id, measurements.c.gflops)
        .join(jobs, measurements.c.job_id == jobs.c.id)
        .where(jobs.c.calibration_id == calibration_id)
    )
    for row_id, gflops in connection.execute(at_figures):
        checked.row_at("measurements", row_id).number("gflops", gflops)
