"""The node task: what runs on the compute node, and the one place its result is built.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.checkpoint import append, read_checkpoint, save_result

if TYPE_CHECKING:
    from profiler.conditions import Conditions
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
    from profiler.results import Measurement, NodeInfo

    checkpoint = read_checkpoint(spec.checkpoint)
    points = [Measurement.from_dict(p) for p in checkpoint.measurements]
    node = NodeInfo.from_dict(checkpoint.node) if checkpoint.node else None
    status = "partial" if points else "failed"
    return build_result(spec, node, points, status, _now(), error=error)


def _prepare_environment(max_threads: int | None) -> None:
    """Give every BLAS a pool big enough for the largest count, before numpy loads it."""
    import os

    from profiler.budget import thread_environment

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
    """The task itself. The conditions are watched from the sweep's start to the end of the
    layouts; the checkpoint says which phase runs."""
    _prepare_environment(spec.max_threads)

    from profiler.conditions import Watch
    from profiler.errors import UsageError
    from profiler.preset import derive
    from profiler.probe import probe
    from profiler.sweep import check_memory, resolve_threads, run_sweep
    from profiler.verify import verify_preset

    started = _now()
    checkpoint = Path(spec.checkpoint)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    settings = spec.settings
    previous = _install_term_handler()
    measurements: list[Measurement] = []
    node = None
    watch = None
    try:
        node = probe()
        append(checkpoint, "node", node=node.to_dict())
        try:
            counts = resolve_threads(settings.threads, node.usable_cpus)
            check_memory(settings, node.memory_available_bytes)
        except UsageError as exc:
            return build_result(spec, node, [], "failed", started, error=str(exc)).to_dict()

        def on_point(m: Measurement) -> None:
            measurements.append(m)
            append(checkpoint, "point", point=m.to_dict())
            if spec.stop_event is not None and spec.stop_event.is_set():
                raise KeyboardInterrupt

        append(checkpoint, "phase", name="sweep")
        # the whole affinity mask: the sweep's threads are not pinned, and others on any of
        # these CPUs compete with them
        watch = Watch(node.affinity_cpus).start()
        outcome = run_sweep(
            settings, counts, physical_cores=node.usable_cores or None, on_point=on_point
        )
        notes: list[str] = []
        if outcome.completed and settings.layouts and node.usable_cpus > 1:
            notes += _layouts(settings, node, checkpoint, on_point)
        conditions = watch.stop([m.samples for m in measurements])
        verification = None
        if outcome.completed and spec.verify:
            append(checkpoint, "phase", name="verification")
            try:
                preset = derive(
                    measurements,
                    node_type=spec.node_type,
                    calibrated_cpus=node.usable_cpus,
                    tolerance=settings.tolerance,
                )
            except ValueError as exc:  # no point whose thread count held: nothing to verify
                notes.append(f"not verified: {exc}")
            else:
                verification = verify_preset(preset, measurements, settings)
        status = "complete" if outcome.completed else "partial"
        return build_result(
            spec,
            node,
            measurements,
            status,
            started,
            verification=verification,
            error="; ".join(filter(None, [outcome.error, *notes])) or None,
            conditions=conditions,
        ).to_dict()
    except KeyboardInterrupt:
        conditions = watch.stop([m.samples for m in measurements]) if watch else None
        return build_result(
            spec, node, measurements, "partial", started, error="interrupted", conditions=conditions
        ).to_dict()
    finally:
        append(checkpoint, "end")
        _restore_term_handler(previous)


def _layouts(
    settings: SweepSettings,
    node: NodeInfo,
    checkpoint: Path,
    on_point: Callable[[Measurement], None],
) -> list[str]:
    """Measure the job layouts after a complete sweep; what went wrong becomes a note, and
    the sweep stays complete (its points are the preset's; layouts only add rows)."""
    from profiler.layouts import LayoutError, run_layouts
    from profiler.preset import class_of

    append(checkpoint, "phase", name="layouts")
    largest = {}
    for n in settings.sizes:
        largest[class_of(n)[0]] = n
    try:
        _, notes = run_layouts(
            settings,
            sorted(largest.values()),
            node.affinity_cpus[: node.usable_cpus],
            available_bytes=node.memory_available_bytes,
            on_point=on_point,
        )
    except (LayoutError, OSError) as exc:
        return [f"layouts not measured: {exc}"]
    return [f"layouts: {note}" for note in notes]


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
