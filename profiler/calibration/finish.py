"""What becomes of a task's outcome: stored once, its calibration finished, presets written.

``collect_one`` stores one task's outcome (a task that returned nothing keeps the result
it left in its job folder, else its checkpoint's points); ``finish`` turns what is stored
into the calibration's status, its preset and the preset files, the same way whether
``calibrate`` waited or a later ``collect`` found the jobs ended. The status and the preset
are stored in one transaction: a calibration never ends without the preset it derived.
An adopted preset's files are written by ``profiler.calibration.presets``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs import states
from jobs.registry import ran_on_batch
from profiler.results import blas_label
from profiler.statuses import CANCELLED, COMPLETE, FAILED, PARTIAL

if TYPE_CHECKING:
    from db import CalibrationRecord, Database
    from db.store_preset import PresetChoice
    from jobs.base import Handle
    from profiler.calibration.sink import Sink
    from profiler.choice.adoption import Adoption
    from profiler.choice.preset import Preset
    from profiler.results import Measurement, NodeInfo, NodeResult

__all__ = [
    "CalibrationReport",
    "collect_one",
    "finish",
    "finish_preset",
]


@dataclass(frozen=True)
class CalibrationReport:
    """How one node type's calibration ended, whether its preset was adopted (None: it
    has none), and the preset files it wrote. ``elsewhere``: another process (a second
    ``collect``) finished it first, and said how."""

    calibration_id: int
    node_type: str
    status: str
    preset_paths: tuple[Path, ...] = ()
    adoption: Adoption | None = None
    elsewhere: bool = False


def collect_one(database: Database, handle: Handle, row: int) -> NodeResult | None:
    """Store one task's outcome; a task that returned nothing keeps its checkpoint's points.

    Returns the result, or None when another process had stored it already.
    """
    from jobs.checkpoint import load_result
    from jobs.task import recovered_result
    from profiler.results import NodeResult

    outcome = handle.outcome() if handle.done() else None
    state = outcome.state if outcome else states.INTERRUPTED
    returned = outcome.result if outcome is not None else None
    if returned is None:  # the task may have left its result before its return was lost
        returned = load_result(handle.spec.checkpoint)
        if returned is not None and returned.get("status") == COMPLETE:
            state = states.COMPLETED  # what ended it came after the sweep: nothing was lost
    if returned is not None:
        result = NodeResult.from_dict(returned)
        if result.status != COMPLETE and state == states.COMPLETED:
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


def finish(
    database: Database,
    cal_id: int,
    sink: Sink,
    *,
    interrupted: bool = False,
    error: str | None = None,
) -> CalibrationReport:
    """Once every job of a calibration has ended: its status, its verdict, its preset, and
    whether the preset is adopted (then its files are written).

    Works from what is stored, so ``calibrate`` and a later ``collect`` end the same way.
    Only jobs that completed their sweep feed the preset: a preset from half a sweep would
    replace a good one with a guess. A noisy calibration does not replace a clean preset,
    and one whose verification failed is not adopted, unless it was asked with --force
    (``profiler.choice.adoption``). ``error`` says why it ended early, if it did.
    """
    record = database.get_calibration(cal_id)
    complete = [j for j in record.jobs if j.state == states.COMPLETED and j.result_stored]
    if record.jobs and len(complete) == len(record.jobs):
        status = COMPLETE
    elif record.measurements:
        status = PARTIAL
    else:
        status = CANCELLED if interrupted else FAILED
    if interrupted:
        error = "interrupted by the user"
    choose, verdict, underived = _chooser(record)
    finished, chosen = database.finish_with_preset(
        cal_id, status, choose, error=error, verdict=verdict
    )
    if not finished:
        # another collector finished it (and wrote its presets) first
        now = database.get_calibration(cal_id).status
        return CalibrationReport(cal_id, record.node_type, now, elsewhere=True)
    return _ended(database, record, status, chosen, underived, sink)


def finish_preset(database: Database, cal_id: int, sink: Sink) -> CalibrationReport | None:
    """The preset of a calibration that ended without one (as a blasprof before the status
    and the preset were stored together could leave it), derived, stored and written now;
    None when it has one, or has not ended."""
    record = database.get_calibration(cal_id)
    if record.preset is not None or record.status not in (COMPLETE, PARTIAL):
        return None
    choose, _verdict, underived = _chooser(record)
    had_none, chosen = database.store_missing_preset(cal_id, choose)
    if not had_none:
        return None
    return _ended(database, record, record.status, chosen, underived, sink)


def _chooser(record: CalibrationRecord) -> tuple[PresetChoice, str | None, list[str]]:
    """How a calibration's preset is chosen, given the node type's current preset and its
    quality; its verdict; and the list where it says why no preset could be derived."""
    from profiler.choice.adoption import decide, quality
    from profiler.results import NodeInfo

    complete = [j for j in record.jobs if j.state == states.COMPLETED and j.result_stored]
    conditions = record.conditions()
    verdict = conditions["verdict"] if conditions else None
    ids = {j.id for j in complete}
    nodes = [NodeInfo.from_dict(j.node_info) for j in complete if j.node_info]
    points = [m.measurement for m in record.measurements if m.job_id in ids]
    settings = record.settings or {}
    worth, detail = quality(
        verdict, [j.verification for j in complete], conditions["reasons"] if conditions else ()
    )
    underived: list[str] = []

    def choose(previous: Preset | None, current: str | None) -> tuple[Preset, Adoption] | None:
        underived.clear()  # a retried transaction chooses again
        if not nodes or not points:
            return None
        try:
            preset = _derive(record, record.id, nodes, points, settings, previous)
        except ValueError as exc:
            underived.append(str(exc))
            return None
        adoption = decide(
            worth,
            detail,
            current_quality=current,
            current_id=previous.calibration_id if previous else None,
            force=bool(settings.get("force")),
        )
        return preset, adoption

    return choose, verdict, underived


def _ended(
    database: Database,
    record: CalibrationRecord,
    status: str,
    chosen: tuple[Preset, Adoption] | None,
    underived: Sequence[str],
    sink: Sink,
) -> CalibrationReport:
    """The report of a calibration whose preset was just stored; its files written."""
    for why in underived:
        sink.warn(f"calibration {record.id}: no preset derived: {why}")
    if chosen is None:
        return CalibrationReport(record.id, record.node_type, status)
    preset, adoption = chosen
    if not adoption.adopted:
        return CalibrationReport(record.id, record.node_type, status, (), adoption)
    from profiler.calibration.presets import write_presets

    paths = write_presets(database, sink, [preset]).paths
    return CalibrationReport(record.id, record.node_type, status, paths, adoption)


def _derive(
    record: CalibrationRecord,
    cal_id: int,
    nodes: Sequence[NodeInfo],
    points: Sequence[Measurement],
    settings: dict[str, Any],
    previous: Preset | None,
) -> Preset:
    """The preset a finished calibration's points choose (``ValueError`` when none can be),
    with what the job-start rule needs beyond the choice: the variables this BLAS reads,
    and the calibrated nodes' names as a node-type rule."""
    from profiler.choice.preset import derive
    from profiler.jobstart.budget import obeyed_variables
    from profiler.settings import CHOICE_TOLERANCE

    node = nodes[0]
    partitions: tuple[str, ...] = ()
    hostnames: tuple[str, ...] = ()
    if ran_on_batch(record.executor):
        partitions = tuple(sorted({n.slurm.get("SLURM_JOB_PARTITION", "") for n in nodes} - {""}))
        hostnames = tuple(sorted({n.hostname for n in nodes}))
    preset = derive(
        points,
        node_type=record.node_type,
        calibrated_cpus=min(n.usable_cpus for n in nodes),
        tolerance=float(settings.get("tolerance", CHOICE_TOLERANCE)),
        calibration_id=cal_id,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        blas="; ".join(blas_label(b) for b in node.blas if b.user_api == "blas"),
        cpu_model=node.cpu_model,
        logical_cpus=node.logical_cpus,
        partitions=partitions,
        previous=previous,
        variables=_library_variables(node.libraries),
    )
    libraries = [(b.internal_api, b.threading_layer) for b in node.blas if b.user_api == "blas"]
    return dataclasses.replace(preset, variables=obeyed_variables(libraries), hostnames=hostnames)


def _library_variables(libraries: Sequence[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    """Label -> the thread variables that library obeys, strongest first, as the node's
    probe found them (a stored record is plain data: anything else is left out)."""
    found = {}
    for lib in libraries:
        label, names = lib.get("label"), lib.get("variables")
        if isinstance(label, str) and isinstance(names, (list, tuple)):
            found[label] = tuple(str(v) for v in names)
    return found
