"""What becomes of a task's outcome: stored once, its calibration finished, presets written.

``collect_one`` stores one task's outcome (a task that returned nothing keeps its
checkpoint's points); ``finish`` turns what is stored into the calibration's status, its
preset and the preset files, the same way whether ``calibrate`` waited or a later
``collect`` found the jobs ended. ``job_statuses`` and ``collect`` serve batch jobs that
outlived the command, from any shell, any number of times.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs import states
from jobs.registry import backend_class, get_backend
from profiler.cli import display
from profiler.cli._common import ensure_dir
from profiler.errors import UsageError
from profiler.paths import presets_dir

if TYPE_CHECKING:
    from db import Database, JobRecord
    from jobs.base import Backend, Handle
    from profiler.preset import Preset
    from profiler.results import NodeResult

__all__ = [
    "CalibrationReport",
    "collect",
    "collect_one",
    "finish",
    "job_statuses",
    "write_presets",
]


@dataclass(frozen=True)
class CalibrationReport:
    """How one node type's calibration ended, and the preset files it wrote."""

    calibration_id: int
    node_type: str
    status: str
    preset_paths: tuple[Path, ...] = ()


def collect_one(database: Database, handle: Handle, row: int) -> NodeResult | None:
    """Store one task's outcome; a task that returned nothing keeps its checkpoint's points.

    Returns the result, or None when another process had stored it already.
    """
    from jobs.task import recovered_result
    from profiler.results import NodeResult

    outcome = handle.outcome() if handle.done() else None
    state = outcome.state if outcome else states.INTERRUPTED
    if outcome is not None and outcome.result is not None:
        result = NodeResult.from_dict(outcome.result)
        if result.status != "complete" and state == states.COMPLETED:
            # the job ran to its end but the sweep did not: say why in the job's state
            state = states.INTERRUPTED if result.error == "interrupted" else states.FAILED
    else:
        error = (outcome.reason if outcome else "interrupted") or state.lower()
        result = recovered_result(handle.spec, error)
    stored = database.store_node_result(
        row,
        result,
        state=state,
        reason=(outcome.reason if outcome else None) or result.error,
        log_tail=outcome.log_tail if outcome else None,
    )
    return result if stored else None


def finish(database: Database, cal_id: int, *, interrupted: bool = False) -> CalibrationReport:
    """Once every job of a calibration has ended: its status, its preset, the preset files.

    Works from what is stored, so ``calibrate`` and a later ``collect`` end the same way.
    Only jobs that completed their sweep feed the preset: a preset from half a sweep would
    replace a good one with a guess.
    """
    from profiler.budget import obeyed_variables
    from profiler.preset import derive
    from profiler.results import NodeInfo

    record = database.get_calibration(cal_id)
    complete = {j.id for j in record.jobs if j.state == states.COMPLETED and j.result_stored}
    if record.jobs and len(complete) == len(record.jobs):
        status = "complete"
    elif record.measurements:
        status = "partial"
    else:
        status = "cancelled" if interrupted else "failed"
    if not database.finish_calibration(
        cal_id, status, error="interrupted by the user" if interrupted else None
    ):  # another collector finished it (and wrote its presets) first
        now = database.get_calibration(cal_id).status
        return CalibrationReport(cal_id, record.node_type, now)
    nodes = [
        NodeInfo.from_dict(j.node_info) for j in record.jobs if j.id in complete and j.node_info
    ]
    points = [m.measurement for m in record.measurements if m.job_id in complete]
    if not nodes or not points:
        return CalibrationReport(cal_id, record.node_type, status)
    node = nodes[0]
    partitions: tuple[str, ...] = ()
    hostnames: tuple[str, ...] = ()
    if _ran_on_batch(record.executor):
        partitions = tuple(sorted({n.slurm.get("SLURM_JOB_PARTITION", "") for n in nodes} - {""}))
        hostnames = tuple(sorted({n.hostname for n in nodes}))
    try:
        preset = derive(
            points,
            node_type=record.node_type,
            calibrated_cpus=min(n.usable_cpus for n in nodes),
            tolerance=float((record.settings or {}).get("tolerance", 0.03)),
            calibration_id=cal_id,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            blas="; ".join(
                f"{b.internal_api} {b.version or '?'} {b.threading_layer or ''}".strip()
                for b in node.blas
                if b.user_api == "blas"
            ),
            cpu_model=node.cpu_model,
            logical_cpus=node.logical_cpus,
            partitions=partitions,
        )
    except ValueError as exc:
        display.err(f"calibration {cal_id}: no preset derived: {exc}")
        return CalibrationReport(cal_id, record.node_type, status)
    # what the job-start rule needs beyond the choice: the variables this BLAS reads, and
    # the calibrated nodes' names as a node-type rule
    libraries = [(b.internal_api, b.threading_layer) for b in node.blas if b.user_api == "blas"]
    preset = dataclasses.replace(preset, variables=obeyed_variables(libraries), hostnames=hostnames)
    database.store_preset(cal_id, preset)
    return CalibrationReport(cal_id, record.node_type, status, write_presets(database, [preset]))


def _ran_on_batch(executor: str) -> bool:
    """Whether a stored calibration ran on a batch system (an unknown executor: no)."""
    try:
        return backend_class(executor).batch
    except UsageError:
        return False


def write_presets(
    database: Database, presets: Sequence[Preset] | None = None, out: Path | None = None
) -> tuple[Path, ...]:
    """Write each of ``presets`` (default: every node type's latest) in every form, and the
    dispatchers over every node type; say on stderr what was left out and why."""
    from profiler.render.files import write_presets as write_files

    directory = ensure_dir((out or presets_dir()).expanduser())
    known: dict[str, Preset] = {}
    for name in database.node_type_names():
        try:
            latest = database.latest_preset(name)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            display.err(
                f"node type {ascii(name)}: its stored preset is unreadable ({type(exc).__name__})"
            )
            continue
        if latest is not None:
            known[name] = latest
    known.update({p.node_type: p for p in presets or ()})
    per_type = None if presets is None else [p.node_type for p in presets]
    paths, warnings = write_files(list(known.values()), directory, per_type)
    for warning in warnings:
        display.err(warning)
    return tuple(paths)


# -- jobs that outlived the command ---------------------------------------------------------


class _Reattacher:
    """Handles on stored jobs, one backend per (executor, folder) so that their states
    come from as few batch-system calls as possible."""

    def __init__(self) -> None:
        self._backends: dict[tuple[str, str], Backend | None] = {}

    def handle(self, job: JobRecord, executor: str) -> Handle | None:
        if not job.external_id or not job.folder:
            return None
        key = (executor, job.folder)
        if key not in self._backends:
            try:
                self._backends[key] = get_backend(executor, Path(job.folder))
            except UsageError:  # an executor this blasprof does not know
                self._backends[key] = None
        backend = self._backends[key]
        return backend.reattach(job.external_id) if backend is not None else None


def _calibration_ids(database: Database, ids: Sequence[int]) -> list[int]:
    if ids:
        for cal_id in ids:
            database.get_calibration(cal_id)  # NotFound names the id
        return list(ids)
    return database.calibration_ids_with_pending_jobs()


def job_statuses(database: Database, ids: Sequence[int]) -> list[dict[str, Any]]:
    """Where each job of the calibrations is (default: those with pending jobs)."""
    from jobs.checkpoint import read_checkpoint

    reattacher = _Reattacher()
    docs: list[dict[str, Any]] = []
    for cal_id in _calibration_ids(database, ids):
        record = database.get_calibration(cal_id)
        jobs = []
        for job in record.jobs:
            handle = None if job.result_stored else reattacher.handle(job, record.executor)
            points = None
            if not job.result_stored:
                checkpoint = handle.spec.checkpoint if handle is not None else None
                points = len(read_checkpoint(checkpoint).measurements) if checkpoint else 0
            jobs.append(
                {
                    "id": job.id,
                    "external_id": job.external_id,
                    "state": handle.state() if handle is not None else job.state,
                    "hostname": job.hostname,
                    "result_stored": job.result_stored,
                    "points_so_far": points,
                    "reason": job.reason or (handle.waiting_reason() if handle else None),
                }
            )
        docs.append(
            {
                "calibration_id": cal_id,
                "node_type": record.node_type,
                "status": record.status,
                "executor": record.executor,
                "jobs": jobs,
            }
        )
    return docs


def collect(database: Database, ids: Sequence[int]) -> list[dict[str, Any]]:
    """Store the results of jobs that have ended; finish calibrations whose jobs all ended.

    Safe to run again, and from several processes at once: a result is stored once.
    """
    reattacher = _Reattacher()
    docs: list[dict[str, Any]] = []
    for cal_id in _calibration_ids(database, ids):
        record = database.get_calibration(cal_id)
        stored, waiting, unreachable = 0, 0, 0
        for job in database.pending_jobs(cal_id):
            handle = reattacher.handle(job, record.executor)
            if handle is None:
                unreachable += 1
            elif not handle.done():
                waiting += 1
            elif collect_one(database, handle, job.id) is not None:
                stored += 1
        doc: dict[str, Any] = {
            "calibration_id": cal_id,
            "node_type": record.node_type,
            "stored_now": stored,
            "still_running": waiting,
            "not_collectable": unreachable,
        }
        if not database.pending_jobs(cal_id) and record.status in ("running", "pending"):
            report = finish(database, cal_id)
            doc["status"] = report.status
            doc["preset_files"] = [str(p) for p in report.preset_paths]
        else:
            doc["status"] = database.get_calibration(cal_id).status
            doc["preset_files"] = []
        docs.append(doc)
        if unreachable:
            display.err(
                f"calibration {cal_id}: {unreachable} job(s) of executor {record.executor} "
                "cannot be collected from another process (only batch jobs can)"
            )
    return docs
