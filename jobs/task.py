"""The node task: what a job runs on the compute node, and the one place its result is built.

The measuring is ``profiler.measure.pipeline``; the task around it owns what is about
running as a job: the checkpoint, signals, the owner watch and the result file.
``run_node_task`` imports nothing heavy before it has set the thread environment for the
largest count it will test, so OpenBLAS starts with a pool large enough. It writes every
point to the checkpoint (``jobs.checkpoint``) as soon as it is measured and returns a
plain, versioned ``NodeResult`` dict, which it also leaves in the job folder. It never
touches the database. ``recovered_result`` builds the result of a task that could not
return one, from its checkpoint.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.checkpoint import append, read_checkpoint, save_result
from profiler.statuses import FAILED, PARTIAL

if TYPE_CHECKING:
    from profiler.measure.conditions import Conditions
    from profiler.results import Measurement, NodeInfo, NodeResult, Verification
    from profiler.settings import SweepSettings

__all__ = ["TaskSpec", "build_result", "recovered_result", "run_node_task"]


@dataclass(frozen=True)
class TaskSpec:
    """One node's calibration: which node type, what to sweep, where to leave the checkpoint."""

    node_type: str
    settings: SweepSettings
    checkpoint: str
    verify: bool = True
    #: the largest thread count the task may test (its job's CPUs); None: this process's
    max_threads: int | None = None
    #: the node this task must run on (batch executors; None: any node of the type)
    host: str | None = None
    #: the process (host, pid, start time) whose end stops the task: the blasprof that
    #: started a local calibration (None: the task outlives its submitter, as batch jobs do)
    watch: tuple[str, int, float] | None = None
    stop_event: threading.Event | None = field(default=None, compare=False, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["stop_event"] = None  # events do not cross process boundaries
        return state


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def build_result(
    spec: TaskSpec,
    node: NodeInfo | None,
    measurements: Sequence[Measurement],
    status: str,
    started_at: str,
    *,
    verification: Verification | None = None,
    error: str | None = None,
    conditions: Conditions | None = None,
) -> NodeResult:
    """The result of ``spec``'s task, finished now."""
    from profiler.results import NodeResult

    return NodeResult(
        node_type=spec.node_type,
        node=node,
        measurements=tuple(measurements),
        status=status,
        started_at=started_at,
        finished_at=_now(),
        settings=spec.settings,
        verification=verification,
        error=error,
        conditions=conditions.to_dict() if conditions is not None else None,
    )


def recovered_result(spec: TaskSpec, error: str) -> NodeResult:
    """What a task that returned nothing measured, read back from its checkpoint."""
    from profiler.measure.runs import latest_reports
    from profiler.results import Measurement, NodeInfo

    checkpoint = read_checkpoint(spec.checkpoint)
    points = latest_reports([Measurement.from_dict(p) for p in checkpoint.measurements])
    node = NodeInfo.from_dict(checkpoint.node) if checkpoint.node else None
    status = PARTIAL if points else FAILED
    return build_result(spec, node, points, status, _now(), error=error)


def _prepare_environment(max_threads: int | None) -> None:
    """Give every BLAS a pool big enough for the largest count, before numpy loads it."""
    import os

    from profiler.jobstart.budget import thread_environment

    if "numpy" in sys.modules or not max_threads:
        return
    os.environ.update(thread_environment(max_threads))


def run_node_task(spec: TaskSpec) -> dict[str, Any]:
    """Probe the node, sweep (and measure layouts), verify the preset in a fresh process;
    return the result dict.

    The result is also left beside the checkpoint (``jobs.checkpoint.save_result``), so
    that it can be stored even if the process that started the task cannot; and the task
    stops, keeping its points, when the process it watches (``spec.watch``) is gone.
    """
    unwatch = _watch_owner(spec.watch)
    try:
        result = _run_node_task(spec)
    finally:
        if unwatch is not None:
            unwatch.set()
    with contextlib.suppress(OSError):
        save_result(spec.checkpoint, result)
    return result


def _run_node_task(spec: TaskSpec) -> dict[str, Any]:
    """The task itself: the pipeline of ``profiler.measure``, every point checkpointed as it
    comes and the phase that runs noted, SIGTERM and a stop request turned into the
    pipeline's interruption (it keeps what was measured)."""
    _prepare_environment(spec.max_threads)

    from profiler.measure.pipeline import measure_node

    started = _now()
    checkpoint = Path(spec.checkpoint)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    previous = _install_term_handler()
    try:
        outcome = measure_node(
            spec.settings, spec.node_type, _Checkpointing(spec), verify=spec.verify
        )
        return build_result(
            spec,
            outcome.node,
            outcome.measurements,
            outcome.status,
            started,
            verification=outcome.verification,
            error=outcome.error,
            conditions=outcome.conditions,
        ).to_dict()
    finally:
        append(checkpoint, "end")
        _restore_term_handler(previous)


class _Checkpointing:
    """The pipeline's progress, written to the task's checkpoint as it comes."""

    def __init__(self, spec: TaskSpec) -> None:
        self.path = Path(spec.checkpoint)
        self.stop_event = spec.stop_event

    def node(self, node: NodeInfo) -> None:
        append(self.path, "node", node=node.to_dict())

    def phase(self, name: str) -> None:
        append(self.path, "phase", name=name)

    def point(self, measurement: Measurement) -> None:
        append(self.path, "point", point=measurement.to_dict())
        if self.stop_event is not None and self.stop_event.is_set():
            raise KeyboardInterrupt


def _watch_owner(owner: tuple[str, int, float] | None) -> threading.Event | None:
    """When the blasprof that started this task is gone (killed with SIGKILL, say), stop the
    sweep as a SIGTERM does, keeping what was measured: nobody would store what it measures
    after that. (SIGINT is ignored in local tasks: Ctrl-C is their blasprof's to handle.)"""
    if owner is None or threading.current_thread() is not threading.main_thread():
        return None
    import os

    from jobs.owner import Owner, watch

    return watch(Owner(*owner), lambda: os.kill(os.getpid(), signal.SIGTERM))


def _install_term_handler() -> Any:
    """SIGTERM (scancel, a time limit) stops the sweep like Ctrl-C, keeping what was measured."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:
        return None


def _restore_term_handler(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)
