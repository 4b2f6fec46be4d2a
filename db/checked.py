"""Rows into records, every value checked: where a row read back becomes a calibration
summary, a job, a measurement or a preset (``db.records``). A row another program or an
older blasprof wrote may have any shape; a value that is not what its record needs is a
``BadRow`` naming the table, row and column (``db.rows``).
"""

from __future__ import annotations

from typing import Any

from db.errors import BadRow
from db.records import CalibrationSummary, JobRecord
from db.rows import At, Unreadable, shown
from profiler.choice.preset import Preset
from profiler.names import is_node_type
from profiler.results import (
    NUMPY_BLAS,
    Measurement,
    NodeInfo,
    Run,
    Verification,
    is_blas_label,
)

__all__ = [
    "blas_of",
    "calibration_details",
    "calibration_summary",
    "job_record",
    "measurement",
    "preset",
    "row_at",
    "runs_of",
]


def row_at(table: str, row_id: object) -> At:
    """Where a value of row ``row_id`` of ``table`` comes from, to name it when it is bad."""
    return At(table=table, row_id=row_id)


def calibration_summary(
    row: Any,
    *,
    n_jobs: int,
    n_measurements: int,
    hostnames: tuple[str, ...],
    best_gflops: object,
    blas: tuple[str, ...],
    adopted: object,
) -> CalibrationSummary:
    """A calibrations row (with its node type's name as ``node_type``) and its figures."""
    at = row_at("calibrations", row.id)
    node_type = row_at("node_types", row.node_type_id).text("name", row.node_type)
    for host in hostnames:
        At(f"a jobs row of calibration {row.id}").text("hostname", host)
    return CalibrationSummary(
        id=row.id,
        node_type=node_type,
        status=at.text("status", row.status),
        executor=at.text("executor", row.executor),
        profile=at.text("profile", row.profile),
        created_at=at.timestamp("created_at", row.created_at),
        finished_at=at.timestamp("finished_at", row.finished_at, optional=True),
        n_jobs=n_jobs,
        n_measurements=n_measurements,
        hostnames=hostnames,
        best_gflops=At(f"a measurements row of calibration {row.id}").number(
            "gflops", best_gflops, optional=True
        ),
        blas=blas,
        verdict=at.text("verdict", row.verdict, optional=True),
        preset_adopted=bool(adopted) if adopted is not None else None,
    )


def calibration_details(row: Any) -> dict[str, Any]:
    """The fields of a calibrations row that ``CalibrationRecord`` adds to the summary."""
    at = row_at("calibrations", row.id)
    return {
        "settings": at.mapping("settings", row.settings),
        "blasprof_version": at.text("blasprof_version", row.blasprof_version),
        "error": at.text("error", row.error, optional=True),
    }


def job_record(row: Any, node_type: str) -> JobRecord:
    """A jobs row as a record; its node description checked against ``NodeInfo``."""
    at = row_at("jobs", row.id)
    info = at.mapping("node_info", row.node_info, optional=True)
    node = at.record(NodeInfo, "node_info", info) if info else None
    conditions = row.conditions
    if isinstance(conditions, Unreadable):
        raise at.bad("conditions", conditions.raw, "a JSON object")
    return JobRecord(
        id=row.id,
        calibration_id=row.calibration_id,
        node_type=node_type,
        external_id=at.text("external_id", row.external_id, optional=True),
        array_index=at.integer("array_index", row.array_index, optional=True),
        state=at.text("state", row.state),
        reason=at.text("reason", row.reason, optional=True),
        log_tail=at.text("log_tail", row.log_tail, optional=True),
        folder=at.text("folder", row.folder, optional=True),
        hostname=at.text("hostname", row.hostname, optional=True),
        submitted_at=at.timestamp("submitted_at", row.submitted_at),
        finished_at=at.timestamp("finished_at", row.finished_at, optional=True),
        result_stored=at.flag("result_stored", row.result_stored),
        node_info=info,
        blas=node.blas if node else (),
        verification=_verification(row.verification, at),
        conditions=conditions,
    )


def _verification(raw: Any, at: At) -> Verification | None:
    """A stored verification; None when the row's shape is not one blasprof wrote (older
    rows held other shapes, which ``show`` leaves out rather than refuse)."""
    if isinstance(raw, Unreadable):
        raise at.bad("verification", raw.raw, "a JSON object")
    if not isinstance(raw, dict):
        return None
    try:
        return at.record(Verification, "verification", raw)
    except BadRow:
        return None


def measurement(row: Any) -> Measurement:
    """A measurements row as a ``Measurement``: every figure a finite number."""
    at = row_at("measurements", row.id)
    observed = _list(at, "threads_observed", row.threads_observed)
    return Measurement(
        kernel=at.text("kernel", row.kernel),
        dtype=at.text("dtype", row.dtype),
        n=at.positive("n", row.n),
        threads=at.positive("threads", row.threads),
        median_s=at.number("median_s", row.median_s),
        min_s=at.number("min_s", row.min_s),
        cv=at.number("cv", row.cv),
        samples=at.numbers("samples", row.samples),
        loops=at.integer("loops", row.loops),
        gflops=at.number("gflops", row.gflops),
        threads_verified=at.flag("threads_verified", row.threads_verified),
        threads_observed=tuple(
            at.integer(f"threads_observed[{i}]", t) for i, t in enumerate(observed)
        ),
        phase=at.text("phase", row.phase),
        workers=at.positive("workers", row.workers),
        runs=runs_of(at, getattr(row, "runs", None)),
        blas=blas_of(at, getattr(row, "blas", None)),
    )


def blas_of(at: At, value: object) -> str:
    """A measurement's library label; NULL (every row from before the column) is numpy's."""
    if value is None:
        return NUMPY_BLAS
    if not is_blas_label(value):
        raise at.bad("blas", value, "a BLAS library label (lower-case letters, digits, '-')")
    return str(value)


def runs_of(at: At, value: object) -> tuple[Run, ...]:
    """A measurement's stored runs; NULL (a row from before runs, or a one-process point)
    is none, and the point reads as its one run."""
    if value is None:
        return ()
    runs = []
    for i, raw in enumerate(_list(at, "runs", value)):
        if not isinstance(raw, dict):
            raise at.bad(f"runs[{i}]", raw, "a JSON object")
        if "median_s" not in raw:
            raise at.missing(f"runs[{i}]", "median_s", raw)
        median = at.number(f"runs[{i}].median_s", raw["median_s"])
        if not median > 0:
            raise at.bad(f"runs[{i}].median_s", median, "a positive number")
        runs.append(
            Run(
                median_s=median,
                samples=at.numbers(f"runs[{i}].samples", raw.get("samples", [])),
                loops=at.integer(f"runs[{i}].loops", raw.get("loops", 1)),
                threads_verified=at.flag(
                    f"runs[{i}].threads_verified", raw.get("threads_verified", True)
                ),
            )
        )
    return tuple(runs)


def _list(at: At, column: str, value: object) -> list[Any]:
    if isinstance(value, list):
        return value
    raise at.bad(column, getattr(value, "raw", value), "a JSON list")


def preset(data: object, at: At, *, typed: bool = True) -> Preset:
    """A presets row's ``data`` as a ``Preset``: every field of the type it needs, a node
    type name, at least one size class, and the default class among them.

    ``typed`` False (a preset about to be rendered): only what ``Preset.from_dict`` needs;
    ``profiler.jobstart.forms.checked`` judges every value a preset file embeds, and leaves out or
    refuses, with its own message, what it may not write.
    """
    if isinstance(data, Unreadable):
        raise at.bad("data", data.raw, "a JSON object")
    if typed:
        at.record(Preset, "data", at.mapping("data", data))
    try:
        # from_dict, not the checked instance: it also reads older blasprofs' shapes
        checked = Preset.from_dict(at.mapping("data", data))
    except KeyError as e:
        raise BadRow(at.row, f"data has no {shown(e.args[0])}, which a preset needs") from None
    except (TypeError, ValueError, AttributeError) as e:
        raise BadRow(at.row, f"data is not a preset ({type(e).__name__}: {str(e)[:80]})") from None
    if not typed:
        return checked
    if not is_node_type(checked.node_type):
        raise at.bad("data.node_type", checked.node_type, "a node type name")
    names = [c.name for c in checked.size_classes]
    if checked.default_class not in names:
        raise at.bad("data.default_class", checked.default_class, f"one of its classes {names}")
    return checked
