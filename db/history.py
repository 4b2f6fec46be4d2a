"""Reads for the history views: points of a selection, each node's latest figures, the
presets in force, and the BLAS stacks behind them.

Every function takes an open ``Connection`` and returns plain records
(``profiler.history.selection``, ``profiler.history.fleet``, ``CurrentPreset``). The queries are
shaped for the indexes of migration ``0003_history_indexes``: a type's calibrations by time,
each node's newest job, a job's points; the one-million-point benchmark
(``benchmarks/bench_queries.py``) keeps them honest.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, or_, select

from db import checked
from db.errors import BadRow
from db.rows import readable
from db.tables import (
    blas_environments,
    calibrations,
    jobs,
    measurements,
    node_types,
    nodes,
    presets,
)
from profiler.choice.preset import Preset
from profiler.errors import NotFound
from profiler.history.fleet import NodeFigures
from profiler.history.selection import Point, Selection, blas_kernels, blas_labels, blas_matches
from profiler.settings import NUMPY_BLAS

__all__ = [
    "CurrentPreset",
    "blas_by_environment",
    "current_presets",
    "environments_matching",
    "latest_node_points",
    "of_library",
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


def of_library(label: str) -> ColumnElement[bool]:
    """The measurements of the library ``label``: NULL is numpy's (every point stored
    before points named their library)."""
    if label == NUMPY_BLAS:
        return or_(measurements.c.blas.is_(None), measurements.c.blas == NUMPY_BLAS)
    return measurements.c.blas == label


def select_points(
    connection: Connection, selection: Selection, *, with_samples: bool = True
) -> list[Point]:
    """Every verified GEMM point of the calibrations ``selection`` names, oldest first.

    Ids that do not exist and a node type that does not exist are ``NotFound``.
    """
    ids = _selected_ids(connection, selection)
    about = {
        row[0]: _about(*row)
        for chunk in _chunks(ids)
        for row in connection.execute(
            select(
                calibrations.c.id,
                node_types.c.id,
                node_types.c.name,
                *readable(calibrations.c.created_at),
                calibrations.c.verdict,
            )
            .join(node_types, calibrations.c.node_type_id == node_types.c.id)
            .where(calibrations.c.id.in_(chunk))
        )
    }
    columns = [
        jobs.c.calibration_id, jobs.c.hostname, jobs.c.id, measurements.c.dtype,
        measurements.c.n, measurements.c.threads, measurements.c.gflops,
        jobs.c.blas_environment_id, measurements.c.id,
    ]  # fmt: skip
    if with_samples:
        columns += readable(measurements.c.samples, measurements.c.runs)
    environments = _environments(connection)
    labels = {env: ", ".join(blas_labels(libraries)) for env, libraries in environments}
    kernels = {env: ", ".join(blas_kernels(libraries)) for env, libraries in environments}
    points = []
    for chunk in _chunks(ids):
        rows = connection.execute(
            select(*columns)
            .select_from(measurements)
            .join(jobs, measurements.c.job_id == jobs.c.id)
            .where(
                jobs.c.calibration_id.in_(chunk),
                measurements.c.kernel == "gemm",
                measurements.c.threads_verified.is_(True),
                measurements.c.workers == 1,
                of_library(selection.library),
            )
            .order_by(jobs.c.id, measurements.c.id)
        )
        for row in rows:
            name, created_at, verdict = about[row[0]]
            at = checked.row_at("measurements", row[8])
            hosts = checked.row_at("jobs", row[2])
            points.append(
                Point(
                    calibration_id=row[0],
                    node_type=name,
                    created_at=created_at,
                    hostname=hosts.text("hostname", row[1], optional=True),
                    job_id=row[2],
                    dtype=at.text("dtype", row[3]),
                    n=at.positive("n", row[4]),
                    threads=at.positive("threads", row[5]),
                    gflops=at.number("gflops", row[6]),
                    samples=at.numbers("samples", row[9]) if with_samples else (),
                    blas=labels.get(row[7], "") if row[7] is not None else "",
                    verdict=verdict,
                    runs=_run_gflops(at, row[4], row[10]) if with_samples else (),
                    blas_kernel=kernels.get(row[7], "") if row[7] is not None else "",
                )
            )
    points.sort(key=lambda p: (p.created_at, p.calibration_id))
    return points


def _about(
    cal_id: int, type_id: int, name: object, created_at: object, verdict: object
) -> tuple[str, dt.datetime, str | None]:
    """A calibration's node type, time and verdict, checked."""
    name = checked.row_at("node_types", type_id).text("name", name)
    at = checked.row_at("calibrations", cal_id)
    return name, at.timestamp("created_at", created_at), at.text("verdict", verdict, optional=True)  # type: ignore[return-value]


def latest_node_points(connection: Connection, node_type: str | None = None) -> list[NodeFigures]:
    """Each node's figures from its newest job that stored points (of one type, or all)."""
    if node_type is not None:
        _node_type_id(connection, node_type)
    ranked = (
        select(jobs.c.id.label("job_id"), _rank(jobs.c.id, jobs.c.node_id, jobs.c.finished_at))
        .join(nodes, jobs.c.node_id == nodes.c.id)
        .join(node_types, nodes.c.node_type_id == node_types.c.id)
        .where(
            jobs.c.result_stored.is_(True),
            select(measurements.c.id).where(measurements.c.job_id == jobs.c.id).exists(),
        )
    )
    if node_type is not None:
        ranked = ranked.where(node_types.c.name == node_type)
    ranked_sq = ranked.subquery()
    latest = [
        _latest(*row)
        for row in connection.execute(
            select(jobs.c.id, jobs.c.calibration_id, *readable(jobs.c.finished_at),
                   jobs.c.blas_environment_id, nodes.c.id, nodes.c.hostname, node_types.c.id,
                   node_types.c.name)
            .join(ranked_sq, ranked_sq.c.job_id == jobs.c.id)
            .join(nodes, jobs.c.node_id == nodes.c.id)
            .join(node_types, nodes.c.node_type_id == node_types.c.id)
            .where(ranked_sq.c.rank == 1)
            .order_by(node_types.c.name, nodes.c.hostname)
        )
    ]  # fmt: skip
    figures: dict[int, dict[tuple[str, int, int], float]] = {job[0]: {} for job in latest}
    for chunk in _chunks(list(figures)):
        for row_id, job_id, dtype, n, threads, gflops in connection.execute(
            select(
                measurements.c.id, measurements.c.job_id, measurements.c.dtype, measurements.c.n,
                measurements.c.threads, measurements.c.gflops,
            ).where(
                measurements.c.job_id.in_(chunk),
                measurements.c.kernel == "gemm",
                measurements.c.threads_verified.is_(True),
                measurements.c.workers == 1,
            )
        ):  # fmt: skip
            at = checked.row_at("measurements", row_id)
            key = (at.text("dtype", dtype), at.positive("n", n), at.positive("threads", threads))
            # a point measured twice in one job (search, then refine): its better figure
            figures[job_id][key] = max(at.number("gflops", gflops), figures[job_id].get(key, 0.0))
    labels = blas_by_environment(connection)
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
        for job_id, cal_id, finished_at, env, hostname, name in latest
    ]


def _latest(
    job_id: int, cal_id: int, finished: object, env: int | None, node_id: int, host: object,
    type_id: int, name: object,
) -> tuple[int, int, Any, int | None, str, str]:  # fmt: skip
    """A node's newest job, checked: (job, calibration, finished_at, BLAS stack, host, type)."""
    name = checked.row_at("node_types", type_id).text("name", name)
    finished = checked.row_at("jobs", job_id).timestamp("finished_at", finished, optional=True)
    host = checked.row_at("nodes", node_id).text("hostname", host)
    return job_id, cal_id, finished, env, host, name


def current_presets(
    connection: Connection, node_type: str | None = None, *, bad: list[BadRow] | None = None
) -> list[CurrentPreset]:
    """The preset jobs get for each node type (or for one): the newest adopted one, with its
    calibration, by type name. A preset that cannot be read is a ``BadRow``; given ``bad``,
    it is left out and its error appended there instead, so the others can be shown."""
    if node_type is not None:
        _node_type_id(connection, node_type)
    ranked = select(
        presets.c.id.label("preset_id"),
        _rank(presets.c.id, presets.c.node_type_id, presets.c.created_at),
    ).where(presets.c.adopted.is_(True))
    if node_type is not None:
        ranked = ranked.join(node_types, presets.c.node_type_id == node_types.c.id).where(
            node_types.c.name == node_type
        )
    ranked_sq = ranked.subquery()
    rows = connection.execute(
        select(presets.c.id, node_types.c.id, node_types.c.name,
               *readable(presets.c.data, presets.c.created_at), calibrations.c.id,
               *readable(calibrations.c.created_at), calibrations.c.status)
        .join(ranked_sq, ranked_sq.c.preset_id == presets.c.id)
        .join(node_types, presets.c.node_type_id == node_types.c.id)
        .join(calibrations, presets.c.calibration_id == calibrations.c.id)
        .where(ranked_sq.c.rank == 1)
        .order_by(node_types.c.name)
    ).all()  # fmt: skip
    stacks = _calibration_blas(connection, [row[5] for row in rows])
    current = []
    for preset_id, type_id, name, data, stored_at, cal_id, created_at, status in rows:
        at, cal = checked.row_at("presets", preset_id), checked.row_at("calibrations", cal_id)
        try:
            checked.row_at("node_types", type_id).text("name", name)
            preset = checked.preset(data, at)
            if preset.node_type != name:
                raise at.bad("data.node_type", preset.node_type, f"its node type {name!r}")
            current.append(
                CurrentPreset(
                    node_type=name,
                    preset=preset,
                    stored_at=at.timestamp("created_at", stored_at),
                    calibration_id=cal_id,
                    calibration_created_at=cal.timestamp("created_at", created_at),
                    calibration_status=cal.text("status", status),
                    blas=stacks.get(cal_id, ()),
                )
            )
        except BadRow as e:
            if bad is None:
                raise
            bad.append(e)
    return current


def _run_gflops(at: Any, n: int, raw: object) -> tuple[float, ...]:
    from profiler.results import gemm_flops

    return tuple(gemm_flops(n) / r.median_s / 1e9 for r in checked.runs_of(at, raw))


def blas_by_environment(connection: Connection) -> dict[int, tuple[str, ...]]:
    """Every stored BLAS stack's labels by id (a small table: one row per stack seen)."""
    return {env_id: blas_labels(libraries) for env_id, libraries in _environments(connection)}


def environments_matching(connection: Connection, text: str) -> list[int]:
    """Ids of the stored BLAS stacks that ``--blas text`` names."""
    return [
        env_id for env_id, libraries in _environments(connection) if blas_matches(libraries, text)
    ]


def _environments(connection: Connection) -> list[tuple[int, list[dict[str, Any]]]]:
    """Every stored BLAS stack's libraries, each checked to be a list of JSON objects whose
    label fields are text."""
    out = []
    for env_id, libraries in connection.execute(
        select(blas_environments.c.id, *readable(blas_environments.c.libraries))
    ):
        at = checked.row_at("blas_environments", env_id)
        if not isinstance(libraries, list):
            raise at.bad("libraries", getattr(libraries, "raw", libraries), "a JSON list")
        for i, lib in enumerate(libraries):
            at.mapping(f"libraries[{i}]", lib)
            for key in ("user_api", "internal_api", "version", "threading_layer"):
                at.text(f"libraries[{i}].{key}", lib.get(key), optional=True)
        out.append((env_id, libraries))
    return out


# -- helpers ------------------------------------------------------------------------------


def _calibration_blas(connection: Connection, ids: Iterable[int]) -> dict[int, tuple[str, ...]]:
    labels = blas_by_environment(connection)
    found: dict[int, set[str]] = {}
    for chunk in _chunks(list(ids)):
        for cal_id, env in connection.execute(
            select(jobs.c.calibration_id, jobs.c.blas_environment_id)
            .distinct()
            .where(jobs.c.calibration_id.in_(chunk), jobs.c.blas_environment_id.is_not(None))
        ):
            found.setdefault(cal_id, set()).update(labels.get(env, ()))
    return {k: tuple(sorted(v)) for k, v in found.items()}


def type_names(connection: Connection) -> list[str]:
    """Every node type name in the database, sorted; one that is not text is a ``BadRow``."""
    names = []
    for type_id, name in connection.execute(
        select(node_types.c.id, node_types.c.name).order_by(node_types.c.name)
    ):
        names.append(checked.row_at("node_types", type_id).text("name", name))
    return names


def _node_type_id(connection: Connection, name: str) -> int:
    found = connection.scalars(select(node_types.c.id).where(node_types.c.name == name)).first()
    if found is None:
        known = ", ".join(type_names(connection))
        raise NotFound(f"no node type {name!r} in the database; known: {known or 'none yet'}")
    return found


def _selected_ids(connection: Connection, selection: Selection) -> list[int]:
    if selection.calibration_ids:
        wanted = list(dict.fromkeys(selection.calibration_ids))
        found = set(
            connection.scalars(select(calibrations.c.id).where(calibrations.c.id.in_(wanted)))
        )
        missing = [i for i in wanted if i not in found]
        if missing:
            raise NotFound(f"no calibration with id {missing[0]}; `blasprof list` shows the ids")
        return wanted
    if selection.node_type is None:
        raise NotFound("a selection needs calibration ids or a node type")
    # The window is applied here, not in SQL: a time that is not one would otherwise drop
    # its calibration from every window without a word (a type has a few hundred at most).
    rows = connection.execute(
        select(calibrations.c.id, *readable(calibrations.c.created_at))
        .where(calibrations.c.node_type_id == _node_type_id(connection, selection.node_type))
        .order_by(calibrations.c.id)
    )
    chosen = []
    for cal_id, created_at in rows:
        when = checked.row_at("calibrations", cal_id).timestamp("created_at", created_at)
        if (selection.start is None or when >= selection.start) and (
            selection.end is None or when < selection.end
        ):
            chosen.append((when, cal_id))
    return [cal_id for _, cal_id in sorted(chosen)]


def _rank(row_id: Any, group: Any, when: Any) -> Any:
    """``rank``: 1 for the newest row of each ``group`` (by ``when``, then by id), 2 for the
    one before it, ..."""
    return (
        func.row_number()
        .over(partition_by=group, order_by=(when.desc(), row_id.desc()))
        .label("rank")
    )


def _chunks(ids: list[Any]) -> Iterable[list[Any]]:
    return (ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK))
