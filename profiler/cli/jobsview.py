"""`blasprof status` and `blasprof collect`: calibrations whose jobs outlived the command.

`calibrate --no-wait` (or Ctrl-C while waiting on Slurm) leaves jobs recorded as pending.
`status` asks the batch system where they are; `collect` stores the results of those that
ended and finishes each calibration whose jobs have all ended. Storing is claimed per job in
the database, so several `collect` runs at once never store a result twice.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

from profiler.cli._common import (
    JsonOption,
    check_id,
    console,
    err,
    handle_errors,
    open_db,
    print_json,
)

if TYPE_CHECKING:
    from db import Database, JobRecord
    from jobs import Handle

IdsArgument = Annotated[
    list[int] | None,
    typer.Argument(
        metavar="[ID]...", help="Calibration ids (default: every one with pending jobs)."
    ),
]


def _calibration_ids(database: Database, ids: list[int] | None) -> list[int]:
    if ids:
        _check_ids(ids)
        for cal_id in ids:
            database.get_calibration(cal_id)  # NotFound names the id
        return ids
    return database.calibration_ids_with_pending_jobs()


def _handle(job: JobRecord, executor: str) -> Handle | None:
    """A live handle on a pending job, where its executor allows one from another process."""
    if executor != "slurm" or not job.external_id or not job.folder:
        return None
    from jobs.slurm import reattach

    return reattach(job.external_id, job.folder)


def _live_state(job: JobRecord, executor: str) -> tuple[str, Handle | None]:
    if job.result_stored:
        return job.state, None
    handle = _handle(job, executor)
    return (handle.state() if handle else job.state), handle


def _waiting_reason(handle: Handle | None) -> str | None:
    """Why a batch job still waits, where the executor can say (Slurm's pending reason)."""
    reason = getattr(handle, "waiting_reason", None)
    return reason() if reason is not None else None


def _points(job: JobRecord, handle: Handle | None) -> int:
    if handle is None:
        return 0
    from jobs import read_checkpoint

    return len(read_checkpoint(handle.spec.checkpoint).measurements)


@handle_errors
def status_command(ids: IdsArgument = None, json_output: JsonOption = False) -> None:
    """Show where each job of a calibration is: pending, running, ended, stored.

    Examples:  blasprof status     blasprof status 12 13 --json
    """
    database = open_db()
    cal_ids = _calibration_ids(database, ids)
    docs: list[dict[str, Any]] = []
    for cal_id in cal_ids:
        record = database.get_calibration(cal_id)
        jobs = []
        for job in record.jobs:
            state, handle = _live_state(job, record.executor)
            jobs.append(
                {
                    "id": job.id,
                    "external_id": job.external_id,
                    "state": state,
                    "hostname": job.hostname,
                    "result_stored": job.result_stored,
                    "points_so_far": _points(job, handle) if not job.result_stored else None,
                    "reason": job.reason or _waiting_reason(handle),
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
    if json_output:
        print_json(docs)
        return
    if not docs:
        print("no calibration has pending jobs")
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 2, 0, 0))
    for col in ("calibration", "node type", "job", "state", "host", "stored", "points", "reason"):
        table.add_column(col, no_wrap=True)
    for doc in docs:
        for j in doc["jobs"]:
            table.add_row(
                f"{doc['calibration_id']} ({doc['status']})",
                doc["node_type"],
                str(j["external_id"]),
                j["state"],
                j["hostname"] or "-",
                "yes" if j["result_stored"] else "no",
                "" if j["points_so_far"] is None else str(j["points_so_far"]),
                j["reason"] or "",
            )
    console().print(table)


@handle_errors
def collect_command(ids: IdsArgument = None, json_output: JsonOption = False) -> None:
    """Store the results of jobs that have ended; finish calibrations whose jobs all ended.

    Safe to run again, and from several shells at once: a result is stored once.

    Examples:  blasprof collect     blasprof collect 12 --json
    """
    from profiler.cli.calibrate import collect_one, finish

    database = open_db()
    cal_ids = _calibration_ids(database, ids)
    docs: list[dict[str, Any]] = []
    for cal_id in cal_ids:
        record = database.get_calibration(cal_id)
        stored, waiting, unreachable = 0, 0, 0
        for job in database.pending_jobs(cal_id):
            handle = _handle(job, record.executor)
            if handle is None:
                unreachable += 1
                continue
            if not handle.done():
                waiting += 1
                continue
            if collect_one(database, handle, job.id) is not None:
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
            err(
                f"calibration {cal_id}: {unreachable} job(s) of executor {record.executor} "
                "cannot be collected from another process (only Slurm jobs can)"
            )
    if json_output:
        print_json(docs)
        return
    if not docs:
        print("nothing to collect: no calibration has pending jobs")
        return
    for d in docs:
        line = (
            f"calibration {d['calibration_id']} ({d['node_type']}): stored {d['stored_now']} "
            f"result(s) now, {d['still_running']} job(s) still running"
            + (f", {d['not_collectable']} not collectable" if d["not_collectable"] else "")
            + f"; status {d['status']}"
        )
        print(line)
        if d["preset_files"]:
            print(f"  presets written to {os.path.dirname(d['preset_files'][0])}")
    if any(d["still_running"] for d in docs):
        print("run `blasprof collect` again later for the jobs still running")


def _check_ids(ids: list[int] | None) -> None:
    for cal_id in ids or []:
        check_id(cal_id)
