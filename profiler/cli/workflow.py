"""The application layer of ``calibrate``: check the request, submit, wait, store, finish.

Plain functions over a ``Database`` and the executors, testable without the command line:
``build_request`` checks the options once; ``run_calibration`` plans, submits, waits, and
hands each task's outcome to ``profiler.cli.finishing``, which stores it and turns it into
a status, a preset and its files. Commands call these and ``profiler.cli.display``.

Once the tasks have ended, storing runs to its end whatever signal comes (see
``profiler.cli.signals``). When the database still refuses the results after its retries,
the command fails with where the results are and the command that stores them.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs import states
from jobs.checkpoint import checkpoint_path
from jobs.registry import backend_class, choose, get_backend
from profiler.cli import display
from profiler.cli._common import collect_command, ensure_dir
from profiler.cli.finishing import CalibrationReport, check_preset_files, collect_one, finish
from profiler.cli.options import parse_dtypes, parse_sizes, parse_threads
from profiler.errors import DatabaseError, DatabaseUnavailable, JobError, UsageError
from profiler.names import check_node_type
from profiler.paths import JOBS_DIR_MODE, PRESETS_DIR_MODE, jobs_dir, presets_dir
from profiler.settings import PROFILES, SweepSettings, with_overrides
from profiler.statuses import FAILED, RUNNING

if TYPE_CHECKING:
    from db import Database
    from jobs.base import Backend, Handle
    from jobs.cluster import Cluster, NodeType
    from jobs.task import TaskSpec
    from profiler.cli.signals import Signals

__all__ = [
    "CalibrationRequest",
    "build_request",
    "run_calibration",
    "wait_for",
]


@dataclass(frozen=True)
class CalibrationRequest:
    """A calibration checked at the edge: everything ``run_calibration`` needs."""

    executor: str
    node_types: tuple[str, ...]
    settings: SweepSettings
    verify: bool = True
    cluster: Cluster | None = None
    nodes_per_type: int | None = None
    all_nodes: bool = False
    #: adopt the preset even if the node was busy or the preset did not verify
    force: bool = False
    #: calibrate this machine although this process may use fewer CPUs than it has
    partial_node: bool = False

    @property
    def batch(self) -> bool:
        """Whether the jobs run elsewhere and outlive this process."""
        return backend_class(self.executor).batch


def build_request(
    *,
    executor: str,
    node_types: Sequence[str],
    profile: str,
    sizes: str | None = None,
    dtypes: str | None = None,
    threads: str | None = None,
    min_time: float | None = None,
    samples: int | None = None,
    runs: int | None = None,
    exhaustive: bool = False,
    tolerance: float | None = None,
    verify: bool = True,
    cluster: Path | None = None,
    nodes_per_type: int | None = None,
    all_nodes: bool = False,
    wait: bool = True,
    layouts: bool | None = None,
    force: bool = False,
    partial_node: bool = False,
) -> CalibrationRequest:
    """Parse and check the options; every problem is a UsageError naming the option."""
    if min_time is not None and not 0 < min_time <= 60:
        raise UsageError(f"--min-time: must be > 0 and at most 60 seconds, got {min_time}")
    if samples is not None and not 1 <= samples <= 1000:
        raise UsageError(f"--samples: must be 1 to 1000, got {samples}")
    if tolerance is not None and not 0 <= tolerance < 1:
        raise UsageError(f"--tolerance: must be in [0, 1), got {tolerance}")
    settings = with_overrides(
        PROFILES[profile],
        sizes=parse_sizes(sizes) if sizes is not None else None,
        dtypes=parse_dtypes(dtypes) if dtypes is not None else None,
        threads=parse_threads(threads) if threads is not None else None,
        min_time=min_time,
        samples=samples,
        runs=runs,
        strategy="exhaustive" if exhaustive else None,
        tolerance=tolerance,
        layouts=layouts,
    )
    names = tuple(check_node_type(n) for n in node_types)
    if len(set(names)) != len(names):
        raise UsageError("--node-type: the same node type is named twice")
    if nodes_per_type is not None and not 1 <= nodes_per_type <= 10_000:
        raise UsageError(f"--nodes-per-type: must be 1 to 10000, got {nodes_per_type}")
    if all_nodes and nodes_per_type is not None:
        raise UsageError("--all-nodes and --nodes-per-type: give one of them")
    loaded = None
    if cluster is not None:
        from jobs.cluster import load_cluster

        loaded = load_cluster(cluster)
    backend = choose(executor, cluster_given=loaded is not None)
    if backend.batch:
        assert loaded is not None  # choose refuses a batch backend without a cluster file
        names = names or tuple(loaded.node_types)
        for name in names:
            cpus = loaded.node_type(name).cpus_per_task
            if settings.threads != "all" and cpus and max(settings.threads) > cpus:
                raise UsageError(
                    f"--threads: {max(settings.threads)} is more than the {cpus} CPUs a job of "
                    f"node type {name} gets (cpus_per_task in {loaded.path}); accepted: 1 to "
                    f"{cpus}, or 'all'"
                )
    else:
        if len(names) > 1:
            raise UsageError(
                f"--executor {backend.name} calibrates this machine only, so give at most one "
                "--node-type (several node types need a batch executor and --cluster)"
            )
        if nodes_per_type not in (None, 1) or all_nodes:
            option = "--all-nodes" if all_nodes else "--nodes-per-type"
            raise UsageError(f"{option}: only with a batch executor such as --executor slurm")
        if not wait:
            raise UsageError(
                "--no-wait: only with a batch executor such as --executor slurm (local runs "
                "end with the command)"
            )
    if partial_node and backend.batch:
        raise UsageError(
            "--partial-node: only for this machine (a batch job gets the CPUs its node type "
            "asks for in the cluster file)"
        )
    return CalibrationRequest(
        backend.name, names, settings, verify, loaded, nodes_per_type, all_nodes, force,
        partial_node,
    )  # fmt: skip


@dataclass(frozen=True)
class _Submitted:
    """One node type's calibration in flight: its id, backend, handles and job rows."""

    calibration_id: int
    node_type: str
    backend: Backend
    handles: tuple[Handle, ...]
    rows: tuple[int, ...]


def run_calibration(
    request: CalibrationRequest,
    database: Database,
    *,
    show_progress: bool = True,
    wait: bool = True,
    signals: Signals | None = None,
) -> list[CalibrationReport]:
    """Calibrate, store and write presets; returns one report per node type.

    Without ``wait`` (batch executors only) the jobs are recorded as pending and left to
    ``blasprof collect``. Ctrl-C (or a signal noted in ``signals``) while waiting on a
    batch system stops the waiting, not the jobs; on this machine it stops the jobs, which
    hand back what they measured. A ``JobError`` says so when the results cannot be stored.
    """
    settings = request.settings
    # Where results and presets go is checked before anything runs.
    presets = ensure_dir(presets_dir(), PRESETS_DIR_MODE)
    base = request.cluster.folder if request.cluster and request.cluster.folder else jobs_dir()
    ensure_dir(base, JOBS_DIR_MODE)
    if request.batch:
        assert request.cluster is not None
        cluster = request.cluster
        lister = get_backend(request.executor, base, cluster=cluster)
        check_preset_files(presets, request.node_types)
        submitted = []
        for name in request.node_types:
            node_type = cluster.node_type(name)
            hosts = _hosts(request, lister, node_type)
            if signals is not None and not submitted:  # later: the wait says how to collect
                signals.raise_if_received()
            submitted.append(_submit(request, database, name, hosts, node_type.cpus_per_task, base))
        max_threads = max(cluster.node_type(n).cpus_per_task or 1 for n in request.node_types)
    else:
        from profiler.names import default_node_type

        max_threads, cpu_model, logical = _check_here(settings)
        node_type_name = request.node_types[0] if request.node_types else None
        name = node_type_name or default_node_type(cpu_model, logical)
        if not request.partial_node:
            _check_whole_node(name, logical)
        check_preset_files(presets, [name])
        if signals is not None:
            signals.raise_if_received()
        submitted = [_submit(request, database, name, [None], max_threads, base)]
    if not wait:
        return [CalibrationReport(s.calibration_id, s.node_type, RUNNING) for s in submitted]
    interrupted = wait_for(
        submitted, settings, max_threads, show_progress=show_progress, stop=signals
    )
    if interrupted and request.batch:
        display.err(
            "stopped waiting; the jobs keep running. Collect them later: "
            + collect_command([s.calibration_id for s in submitted])
        )
        return [CalibrationReport(s.calibration_id, s.node_type, RUNNING) for s in submitted]
    try:
        reports = []
        for s in submitted:
            for handle, row in zip(s.handles, s.rows, strict=True):
                collect_one(database, handle, row)
            reports.append(finish(database, s.calibration_id, interrupted=interrupted))
    except (DatabaseError, DatabaseUnavailable) as exc:
        raise _not_stored(submitted, exc) from None
    return reports


def _hosts(request: CalibrationRequest, lister: Backend, node_type: NodeType) -> list[str | None]:
    """Where a node type's tasks go: every node up (``--all-nodes``), N distinct nodes
    (``--nodes-per-type N`` or the file's ``nodes``), each pinned to its node, or, for one
    node, wherever Slurm starts it first. Nodes are those that match the type's constraint."""
    wanted = request.nodes_per_type or node_type.nodes
    if not request.all_nodes and wanted == 1:
        return [None]  # sbatch --constraint picks among the matching nodes
    up = lister.nodes(node_type)
    where = f"node type {node_type.name} (partition {node_type.partition}" + (
        f", constraint {node_type.constraint!r})" if node_type.constraint else ")"
    )
    if request.all_nodes:
        if not up:
            raise JobError(
                f"--all-nodes: {where} has no node that can take a job now "
                "(all down or drained, or none with those features?)"
            )
        return list(up)
    if len(up) < wanted:
        option = (
            f"--nodes-per-type {wanted}"
            if request.nodes_per_type
            else f"nodes = {wanted} in {request.cluster.path if request.cluster else 'the file'}"
        )
        shown = ", ".join(up[:10]) + (", ..." if len(up) > 10 else "")
        raise UsageError(
            f"{option}: {where} has {len(up)} node(s) that can take a job now"
            + (f" ({shown})" if up else "")
            + ", and each task needs a node of its own; "
            + (f"give at most {len(up)}, or --all-nodes" if up else "wait for nodes to come up")
        )
    return list(up[:wanted])


def _not_stored(submitted: Sequence[_Submitted], exc: Exception) -> JobError:
    """The work is done but the database refused it: say where the results are and how to
    store them once the database answers again."""
    from jobs.checkpoint import result_path

    files = []
    for s in submitted:
        for handle in s.handles:
            checkpoint = Path(handle.spec.checkpoint)
            result = result_path(checkpoint)
            files.append(str(result if result.exists() else checkpoint))
    shown = ", ".join(files[:4]) + (f" and {len(files) - 4} more" if len(files) > 4 else "")
    command = collect_command([s.calibration_id for s in submitted])
    return JobError(f"{exc}. Nothing measured is lost: it is in {shown}; store it with: {command}")


def _check_here(settings: SweepSettings) -> tuple[int, str, int]:
    """Checks that need this machine: CPUs, memory. Returns the largest thread count to
    test, the CPU model and the logical CPU count."""
    import psutil

    from profiler.jobstart.budget import usable_cpus
    from profiler.measure.probe import collect_cpu
    from profiler.measure.sweep import check_memory, resolve_threads

    counts = resolve_threads(settings.threads, usable_cpus())
    check_memory(settings, int(psutil.virtual_memory().available))
    cpu = collect_cpu()
    return max(counts), cpu.model, cpu.logical_cpus


def _check_whole_node(node_type: str, logical: int) -> None:
    """Refuse a calibration of this machine that may use fewer CPUs than it has: its
    preset would hold every job of the node type to those CPUs' thread counts."""
    from profiler.jobstart.budget import usable_cpus

    usable = usable_cpus()
    if usable < logical:
        raise UsageError(
            f"this process may use {usable} of this node's {logical} CPUs (a taskset mask or "
            f"a cgroup CPU quota), so its preset would give every job of node type "
            f"{node_type} at most {usable} thread(s); calibrate where the whole node is free, "
            "or give --partial-node to calibrate these CPUs as they are"
        )


def _submit(
    request: CalibrationRequest,
    database: Database,
    node_type: str,
    hosts: Sequence[str | None],
    max_threads: int | None,
    base: Path,
) -> _Submitted:
    """One node type's calibration: its row, its folder, its tasks submitted and recorded.

    A failure to submit finishes the calibration as failed before it is raised.
    """
    from jobs.owner import Owner
    from jobs.task import TaskSpec

    cal_id = database.create_calibration(
        node_type,
        executor=request.executor,
        profile=request.settings.profile,
        settings={**request.settings.to_dict(), **({"force": True} if request.force else {})},
        status=RUNNING,
        owner=tuple(Owner.current()),
    )
    try:
        folder = ensure_dir(base / str(cal_id), JOBS_DIR_MODE)
        folder.chmod(JOBS_DIR_MODE)
        specs: list[TaskSpec] = [
            TaskSpec(
                node_type=node_type,
                settings=request.settings,
                checkpoint=str(checkpoint_path(folder, i)),
                verify=request.verify,
                max_threads=max_threads,
                host=host,
            )
            for i, host in enumerate(hosts)
        ]
        backend = get_backend(request.executor, folder, cluster=request.cluster)
        handles = backend.submit(specs)
    except BaseException as exc:
        database.finish_calibration(cal_id, FAILED, error=str(exc) or type(exc).__name__)
        raise
    rows = [
        database.add_job(
            cal_id,
            external_id=h.external_id,
            folder=str(folder),
            state=states.PENDING,
            array_index=i,
        )
        for i, h in enumerate(handles)
    ]
    return _Submitted(cal_id, node_type, backend, tuple(handles), tuple(rows))


def wait_for(
    submitted: Sequence[_Submitted],
    settings: SweepSettings,
    max_threads: int,
    *,
    show_progress: bool = True,
    poll_s: float = 0.2,
    stop: Signals | None = None,
) -> bool:
    """Wait for every task, showing the points measured; True when the user pressed Ctrl-C
    (or a signal was noted in ``stop``).

    On Ctrl-C, tasks on this machine are asked to stop (and given a moment to hand back
    their points); batch jobs are left running.
    """
    from jobs.checkpoint import read_checkpoint
    from profiler.measure.sweep import planned_points

    handles = [h for s in submitted for h in s.handles]
    batch = any(s.backend.batch for s in submitted)
    total = planned_points(settings, range(1, max_threads + 1)) * len(handles)
    interrupted = False
    with display.progress("calibrating", total, enabled=show_progress) as bar:
        try:
            while True:
                if stop is not None:
                    stop.raise_if_received()
                counts, last, planned = 0, "", 0
                for h in handles:
                    checkpoint = read_checkpoint(h.spec.checkpoint)
                    counts += len(checkpoint.measurements)
                    last = _doing(checkpoint.phase, checkpoint.measurements) or last
                    # once a task has said how many CPUs it has, plan for those
                    cpus = (checkpoint.node or {}).get("usable_cpus")
                    cpus = cpus if isinstance(cpus, int) and cpus > 0 else max_threads
                    planned += planned_points(settings, range(1, cpus + 1))
                if planned != total:
                    total = planned
                    bar.update(total=total)
                if batch:  # batch jobs: say where they are
                    found = Counter(st for s in submitted for st in s.backend.poll(s.handles))
                    last = " ".join(f"{n} {st}" for st, n in sorted(found.items())) + (
                        f"; {last}" if last else ""
                    )
                bar.update(min(counts, total), last)
                if all(h.done() for h in handles):
                    bar.finish(counts)
                    break
                time.sleep(poll_s)
        except KeyboardInterrupt:
            interrupted = True
            if batch:
                bar.update(description="stopped waiting")
            else:
                bar.update(description="interrupted: keeping the points measured")
                _stop(handles)
    return interrupted


def _doing(phase: str | None, points: Sequence[dict[str, Any]]) -> str:
    """What a task is doing, for the progress line."""
    if phase == "verification":
        return "verifying the preset in a fresh process"
    if not points:
        return ""
    m = points[-1]
    what = f"n={m['n']} {m['dtype']} {m['threads']} thr {m['gflops']:.1f} GFLOP/s"
    if phase == "layouts":
        return f"layouts: {m.get('workers', 1)} x {what}"
    return what


def _stop(handles: Sequence[Handle], grace_s: float = 20.0) -> None:
    """Ask running tasks to stop and give them a moment to hand back what they measured."""
    for h in handles:
        with contextlib.suppress(Exception):
            h.cancel()
    deadline = time.monotonic() + grace_s
    with contextlib.suppress(KeyboardInterrupt):
        while time.monotonic() < deadline and not all(h.done() for h in handles):
            time.sleep(0.1)
