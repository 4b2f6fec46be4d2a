"""Reads for the history views: points of a selection, each node's latest figures, the
presets in force, and the BLAS stacks behind them.

Every function takes an open ``Session`` and returns plain records (``profiler.history``,
``profiler.fleet``, ``CurrentPreset``). The queries are shaped for the indexes of
migration ``0003_history_indexes``: a type's calibrations by time, each node's newest job,
a job's points; the one-million-point benchmark (``benchmarks/bench_queries.py``) keeps
them honest.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import BlasEnvironment, Calibration, Job, MeasurementRow, Node, NodeType, PresetRow
from profiler.errors import NotFound
from profiler.fleet import NodeFigures
from profiler.history import Point, Selection, blas_labels, blas_matches
from profiler.preset import Preset

__all__ = [
    "CurrentPreset",
    "blas_by_environment",
    "current_presets",
    "environments_matching",
    "latest_node_points",
    "select_points",
]

_CHUNK = 500


@dataclass(frozen=True)
class CurrentPreset:
    """The newest preset of a node type, with the calibration it came from."""

    node_type: str
    preset: Preset
    stored_at: dt.datetime
    calibration_id: int
    calibration_created_at: dt.datetime
    calibration_status: str
    blas: tuple[str, ...]


def select_points(
    session: Session, selection: Selection, *, with_samples: bool = True
) -> list[Point]:
    """Every verified GEMM point of the calibrations ``selection`` names, oldest first.

    Ids that do not exist and a node type that does not exist are ``NotFound``.
    """
    ids = _selected_ids(session, selection)
    calibrations = {
        cal_id: (name, created_at, verdict)
        for chunk in _chunks(ids)
        for cal_id, name, created_at, verdict in session.execute(
            select(Calibration.id, NodeType.name, Calibration.created_at, Calibration.verdict)
            .join(NodeType, Calibration.node_type_id == NodeType.id)
            .where(Calibration.id.in_(chunk))
        )
    }
    columns = [
        Job.calibration_id, Job.hostname, Job.id, MeasurementRow.dtype, MeasurementRow.n,
        MeasurementRow.threads, MeasurementRow.gflops, Job.blas_environment_id,
    ]  # fmt: skip
    if with_samples:
        columns.append(MeasurementRow.samples)
    labels = {env: ", ".join(names) for env, names in blas_by_environment(session).items()}
    points = []
    # Core rows, not ORM ones: a month of a type is tens of thousands of points.
    connection = session.connection()
    for chunk in _chunks(ids):
        rows = connection.execute(
            select(*columns)
            .select_from(MeasurementRow)
            .join(Job, MeasurementRow.job_id == Job.id)
            .where(
                Job.calibration_id.in_(chunk),
                MeasurementRow.kernel == "gemm",
                MeasurementRow.threads_verified.is_(True),
                MeasurementRow.workers == 1,
            )
            .order_by(Job.id, MeasurementRow.id)
        )
        for row in rows:
            name, created_at, verdict = calibrations[row[0]]
            points.append(
                Point(
                    calibration_id=row[0],
                    node_type=name,
                    created_at=created_at,
                    hostname=row[1],
                    job_id=row[2],
                    dtype=row[3],
                    n=row[4],
                    threads=row[5],
                    gflops=row[6],
                    samples=tuple(row[8]) if with_samples else (),
                    blas=labels.get(row[7], "") if row[7] is not None else "",
                    verdict=verdict,
                )
            )
    points.sort(key=lambda p: (p.created_at, p.calibration_id))
    return points


def latest_node_points(session: Session, node_type: str | None = None) -> list[NodeFigures]:
    """Each node's figures from its newest job that stored points (of one type, or all)."""
    if node_type is not None:
        _node_type_id(session, node_type)
    ranked = (
        select(
            Job.id.label("job_id"),
            func.row_number()
            .over(partition_by=Job.node_id, order_by=(Job.finished_at.desc(), Job.id.desc()))
            .label("rank"),
        )
        .join(Node, Job.node_id == Node.id)
        .join(NodeType, Node.node_type_id == NodeType.id)
        .where(
            Job.result_stored.is_(True),
            select(MeasurementRow.id).where(MeasurementRow.job_id == Job.id).exists(),
        )
    )
    if node_type is not None:
        ranked = ranked.where(NodeType.name == node_type)
    ranked_sq = ranked.subquery()
    jobs = session.execute(
        select(Job.id, Job.calibration_id, Job.finished_at, Job.blas_environment_id,
               Node.hostname, NodeType.name)
        .join(ranked_sq, ranked_sq.c.job_id == Job.id)
        .join(Node, Job.node_id == Node.id)
        .join(NodeType, Node.node_type_id == NodeType.id)
        .where(ranked_sq.c.rank == 1)
        .order_by(NodeType.name, Node.hostname)
    ).all()  # fmt: skip
    figures: dict[int, dict[tuple[str, int, int], float]] = {job[0]: {} for job in jobs}
    for chunk in _chunks(list(figures)):
        for job_id, dtype, n, threads, gflops in session.execute(
            select(
                MeasurementRow.job_id, MeasurementRow.dtype, MeasurementRow.n,
                MeasurementRow.threads, MeasurementRow.gflops,
            ).where(
                MeasurementRow.job_id.in_(chunk),
                MeasurementRow.kernel == "gemm",
                MeasurementRow.threads_verified.is_(True),
                MeasurementRow.workers == 1,
            )
        ):  # fmt: skip
            key = (dtype, n, threads)
            # a point measured twice in one job (search, then refine): its better figure
            figures[job_id][key] = max(gflops, figures[job_id].get(key, 0.0))
    labels = blas_by_environment(session)
    return [
        NodeFigures(
            node_type=name,
            hostname=hostname,
            calibration_id=cal_id,
            job_id=job_id,
            finished_at=finished_at,
            blas=", ".join(labels.get(env, ())) if env is not None else "",
            figures=figures[job_id],
        )
        for job_id, cal_id, finished_at, env, hostname, name in jobs
    ]


def current_presets(session: Session, node_type: str | None = None) -> list[CurrentPreset]:
    """The preset jobs get for each node type (or for one): the newest adopted one, with its
    calibration, by type name."""
    if node_type is not None:
        _node_type_id(session, node_type)
    ranked = select(
        PresetRow.id.label("preset_id"),
        func.row_number()
        .over(
            partition_by=PresetRow.node_type_id,
            order_by=(PresetRow.created_at.desc(), PresetRow.id.desc()),
        )
        .label("rank"),
    ).where(PresetRow.adopted.is_(True))
    if node_type is not None:
        ranked = ranked.join(NodeType, PresetRow.node_type_id == NodeType.id).where(
            NodeType.name == node_type
        )
    ranked_sq = ranked.subquery()
    rows = session.execute(
        select(NodeType.name, PresetRow.data, PresetRow.created_at, Calibration.id,
               Calibration.created_at, Calibration.status)
        .join(ranked_sq, ranked_sq.c.preset_id == PresetRow.id)
        .join(NodeType, PresetRow.node_type_id == NodeType.id)
        .join(Calibration, PresetRow.calibration_id == Calibration.id)
        .where(ranked_sq.c.rank == 1)
        .order_by(NodeType.name)
    ).all()  # fmt: skip
    stacks = _calibration_blas(session, [row[3] for row in rows])
    return [
        CurrentPreset(
            node_type=name,
            preset=Preset.from_dict(data),
            stored_at=stored_at,
            calibration_id=cal_id,
            calibration_created_at=created_at,
            calibration_status=status,
            blas=stacks.get(cal_id, ()),
        )
        for name, data, stored_at, cal_id, created_at, status in rows
    ]


def blas_by_environment(session: Session) -> dict[int, tuple[str, ...]]:
    """Every stored BLAS stack's labels by id (a small table: one row per stack seen)."""
    return {
        env_id: blas_labels(libraries or [])
        for env_id, libraries in session.execute(
            select(BlasEnvironment.id, BlasEnvironment.libraries)
        )
    }


def environments_matching(session: Session, text: str) -> list[int]:
    """Ids of the stored BLAS stacks that ``--blas text`` names."""
    return [
        env_id
        for env_id, libraries in session.execute(
            select(BlasEnvironment.id, BlasEnvironment.libraries)
        )
        if blas_matches(libraries or [], text)
    ]


# -- helpers ------------------------------------------------------------------------------


def _calibration_blas(session: Session, ids: Iterable[int]) -> dict[int, tuple[str, ...]]:
    labels = blas_by_environment(session)
    found: dict[int, set[str]] = {}
    for chunk in _chunks(list(ids)):
        for cal_id, env in session.execute(
            select(Job.calibration_id, Job.blas_environment_id)
            .distinct()
            .where(Job.calibration_id.in_(chunk), Job.blas_environment_id.is_not(None))
        ):
            found.setdefault(cal_id, set()).update(labels.get(env, ()))
    return {k: tuple(sorted(v)) for k, v in found.items()}


def _node_type_id(session: Session, name: str) -> int:
    found = session.scalars(select(NodeType.id).where(NodeType.name == name)).first()
    if found is None:
        known = ", ".join(session.scalars(select(NodeType.name).order_by(NodeType.name)))
        raise NotFound(f"no node type {name!r} in the database; known: {known or 'none yet'}")
    return found


def _selected_ids(session: Session, selection: Selection) -> list[int]:
    if selection.calibration_ids:
        wanted = list(dict.fromkeys(selection.calibration_ids))
        found = set(session.scalars(select(Calibration.id).where(Calibration.id.in_(wanted))))
        missing = [i for i in wanted if i not in found]
        if missing:
            raise NotFound(f"no calibration with id {missing[0]}; `blasprof list` shows the ids")
        return wanted
    if selection.node_type is None:
        raise NotFound("a selection needs calibration ids or a node type")
    query = select(Calibration.id).where(
        Calibration.node_type_id == _node_type_id(session, selection.node_type)
    )
    if selection.start is not None:
        query = query.where(Calibration.created_at >= selection.start)
    if selection.end is not None:
        query = query.where(Calibration.created_at < selection.end)
    return list(session.scalars(query.order_by(Calibration.created_at, Calibration.id)))


def _chunks(ids: list[Any]) -> Iterable[list[Any]]:
    return (ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK))
