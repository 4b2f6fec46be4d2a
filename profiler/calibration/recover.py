"""Calibrations that outlived the command that started them: where their jobs are, and
storing what has ended.

Batch jobs are found again through their backend (``reattach``) and stored as they end.
A calibration of this machine (``debug``, ``local``) whose blasprof process is gone (killed,
or it could not reach the database) is recovered from what its tasks left in the job
folder: each task's result file, else the points of its checkpoint (stored as partial).
Both are safe to repeat and to run from several shells at once: a job's result is claimed
before it is stored, and an orphaned calibration is claimed by one collector (``db.ownership``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs import states
from jobs.base import Outcome
from jobs.registry import get_backend, ran_on_batch
from profiler.calibration.finish import CalibrationReport, collect_one, finish, finish_preset
from profiler.errors import UsageError
from profiler.statuses import PENDING, RUNNING

if TYPE_CHECKING:
    from db import CalibrationRecord, Database, JobRecord
    from jobs.base import Backend, Handle
    from jobs.task import TaskSpec
    from profiler.calibration.sink import Sink

__all__ = ["collect", "job_statuses"]


class _Reattacher:
    """Handles on stored jobs, one backend per (executor, folder) so that their states
    come from as few batch-system calls as possible."""

    def __init__(self) -> None:
        self._backends: dict[tuple[str, str], Backend | None] = {}

    def backend(self, executor: str, folder: str) -> Backend | None:
        key = (executor, folder)
        if key not in self._backends:
            try:
                self._backends[key] = get_backend(executor, Path(folder))
            except UsageError:  # an executor this blasprof does not know
                self._backends[key] = None
        return self._backends[key]

    def handle(self, job: JobRecord, executor: str) -> Handle | None:
        if not job.external_id or not job.folder:
            return None
        backend = self.backend(executor, job.folder)
        return backend.reattach(job.external_id) if backend is not None else None


def _calibration_ids(database: Database, ids: Sequence[int]) -> list[int]:
    if ids:
        for cal_id in ids:
            database.get_calibration(cal_id)  # NotFound names the id
        return list(ids)
    pending = set(database.calibration_ids_with_pending_jobs())
    return sorted(pending | set(database.unfinished_calibration_ids()))


def job_statuses(database: Database, ids: Sequence[int]) -> list[dict[str, Any]]:
    """Where each job of the calibrations is (default: those not finished)."""
    from jobs.checkpoint import checkpoint_path, read_checkpoint

    reattacher = _Reattacher()
    docs: list[dict[str, Any]] = []
    for cal_id in _calibration_ids(database, ids):
        record = database.get_calibration(cal_id)
        owner, orphaned = _owner_state(database, record)
        jobs = []
        for job in record.jobs:
            handle = None if job.result_stored else reattacher.handle(job, record.executor)
            points = None
            state = handle.state() if handle is not None else job.state
            hostname = job.hostname
            reason = job.reason or (handle.waiting_reason() if handle else None)
            if not job.result_stored:
                checkpoint: str | Path | None = None
                if handle is not None:
                    checkpoint = handle.spec.checkpoint
                elif job.folder and not ran_on_batch(record.executor):
                    # a job of this machine: where its task keeps its points (see _recover)
                    checkpoint = checkpoint_path(job.folder, job.array_index or 0)
                    state = _here_state(reattacher, record.executor, job, state)
                left = read_checkpoint(checkpoint) if checkpoint else None
                points = len(left.measurements) if left is not None else 0
                if left is not None and not hostname:
                    hostname = (left.node or {}).get("hostname")
                if orphaned:
                    if state != states.RUNNING:
                        state = states.INTERRUPTED  # its task stopped when its blasprof went
                    reason = f"{orphaned}; its job folder holds {points} point(s)"
            jobs.append(
                {
                    "id": job.id,
                    "external_id": job.external_id,
                    "state": state,
                    "hostname": hostname if isinstance(hostname, str) else None,
                    "result_stored": job.result_stored,
                    "points_so_far": points,
                    "reason": reason,
                }
            )
        docs.append(
            {
                "calibration_id": cal_id,
                "node_type": record.node_type,
                "status": record.status,
                "executor": record.executor,
                "owner": owner,
                "jobs": jobs,
            }
        )
    return docs


def _here_state(reattacher: _Reattacher, executor: str, job: JobRecord, stored: str) -> str:
    """A job of this machine that no handle reaches: running while its process runs; once
    that is gone, what was stored (its result, once collected, says how it ended)."""
    if job.folder and job.external_id and stored in (states.PENDING, states.RUNNING):
        backend = reattacher.backend(executor, job.folder)
        if backend is not None and backend.running(job.external_id):
            return states.RUNNING
    return stored


def _owner_state(database: Database, record: CalibrationRecord) -> tuple[str | None, str | None]:
    """For an unfinished calibration of this machine: whether the blasprof that stores it
    is ``alive``, ``gone`` or ``elsewhere`` (None: not such a calibration, or none was
    recorded), and what to do when it is gone."""
    from jobs.owner import GONE, Owner

    if ran_on_batch(record.executor) or record.status not in (RUNNING, PENDING):
        return None, None
    seen = database.calibration_owner(record.id)
    if seen is None:
        return None, None
    owner = Owner(*seen)
    state = owner.state()
    if state != GONE:
        return state, None
    return state, (
        f"its blasprof (pid {owner.pid} on {owner.host}) is gone; `blasprof collect "
        f"{record.id}` stores what it measured"
    )


def collect(
    database: Database, ids: Sequence[int], sink: Sink
) -> tuple[list[dict[str, Any]], list[CalibrationReport]]:
    """Store the results of jobs that have ended; finish calibrations whose jobs all ended.
    Returns a document per calibration and the report of each one this call finished.

    Safe to run again, and from several processes at once: a result is stored once.
    """
    reattacher = _Reattacher()
    docs: list[dict[str, Any]] = []
    finished: list[CalibrationReport] = []
    for cal_id in _calibration_ids(database, ids):
        record = database.get_calibration(cal_id)
        if ran_on_batch(record.executor):
            counts, why = _collect_batch(database, record, reattacher, sink), None
        else:
            counts, why = _recover(database, record, reattacher, sink)
        stored, waiting, unreachable = counts
        doc: dict[str, Any] = {
            "calibration_id": cal_id,
            "node_type": record.node_type,
            "stored_now": stored,
            "still_running": waiting,
            "not_collectable": unreachable,
        }
        if (
            not waiting
            and not unreachable
            and not database.pending_jobs(cal_id)
            and record.status in (RUNNING, PENDING)
        ):
            report: CalibrationReport | None = finish(database, cal_id, sink, error=why)
        elif ids and not waiting and not unreachable:
            # asked for by id: one that ended without its preset gets it now
            report = finish_preset(database, cal_id, sink)
        else:
            report = None
        if report is not None:
            finished.append(report)
            doc["status"] = report.status
            doc["preset_files"] = [str(p) for p in report.preset_paths]
            if report.adoption is not None:
                doc["preset_adopted"] = report.adoption.adopted
                doc["preset_note"] = report.adoption.note
        else:
            doc["status"] = database.get_calibration(cal_id).status
            doc["preset_files"] = []
        docs.append(doc)
    return docs, finished


def _collect_batch(
    database: Database, record: CalibrationRecord, reattacher: _Reattacher, sink: Sink
) -> tuple[int, int, int]:
    stored, waiting, unreachable = 0, 0, 0
    for job in database.pending_jobs(record.id):
        handle = reattacher.handle(job, record.executor)
        if handle is None:
            unreachable += 1
        elif not handle.done():
            waiting += 1
        elif collect_one(database, handle, job.id) is not None:
            stored += 1
    if unreachable:
        sink.warn(
            f"calibration {record.id}: {unreachable} job(s) of executor "
            f"{record.executor} cannot be found again"
        )
    return stored, waiting, unreachable


class _LeftBehind:
    """A task of a calibration whose blasprof is gone, seen through what it left behind."""

    def __init__(self, spec: TaskSpec, external_id: str, reason: str) -> None:
        self.spec = spec
        self.external_id = external_id
        self._reason = reason

    def state(self) -> str:
        return states.INTERRUPTED

    def done(self) -> bool:
        return True

    def waiting_reason(self) -> str | None:
        return None

    def outcome(self) -> Outcome:
        return Outcome(states.INTERRUPTED, reason=self._reason)

    def cancel(self) -> None:
        return None


def _recover(
    database: Database, record: CalibrationRecord, reattacher: _Reattacher, sink: Sink
) -> tuple[tuple[int, int, int], str | None]:
    """A calibration of this machine: store what its tasks left once its blasprof is gone.

    Returns (stored, still running, not collectable) and why it ended early.
    """
    from jobs.checkpoint import checkpoint_path
    from jobs.owner import ALIVE, ELSEWHERE, Owner
    from jobs.task import TaskSpec
    from profiler.settings import SweepSettings

    pending = database.pending_jobs(record.id)
    if record.status not in (RUNNING, PENDING):
        return (0, 0, 0), None
    seen = database.calibration_owner(record.id)
    if seen is None:
        sink.warn(
            f"calibration {record.id}: no blasprof process is recorded for it, so it cannot "
            "be told whether one still stores it; it is left as it is"
        )
        return (0, 0, len(pending) or 1), None
    owner = Owner(*seen)
    state = owner.state()
    if state == ELSEWHERE:
        sink.warn(
            f"calibration {record.id} runs on host {owner.host}: run `blasprof collect "
            f"{record.id}` there"
        )
        return (0, 0, len(pending) or 1), None
    if state == ALIVE:
        return (0, len(pending) or 1, 0), None
    running = [
        job
        for job in pending
        if job.folder
        and job.external_id
        and (backend := reattacher.backend(record.executor, job.folder)) is not None
        and backend.running(job.external_id)
    ]
    if running:  # its tasks stop within a second or so of their blasprof being gone
        return (0, len(pending), 0), None
    if not database.claim_calibration(record.id, seen, tuple(Owner.current())):
        return (0, len(pending) or 1, 0), None  # another collector took it over just now
    why = (
        f"its blasprof process (pid {owner.pid} on {owner.host}) ended before storing it; "
        "stored from its job folder by `blasprof collect`"
    )
    settings = SweepSettings.from_dict(record.settings)
    stored = 0
    for job in pending:
        checkpoint = checkpoint_path(job.folder or ".", job.array_index or 0)
        spec = TaskSpec(record.node_type, settings, str(checkpoint))
        left = _LeftBehind(spec, job.external_id or "", why)
        if collect_one(database, left, job.id) is not None:
            stored += 1
    return (stored, 0, 0), why
