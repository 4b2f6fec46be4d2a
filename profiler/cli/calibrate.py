"""`blasprof calibrate`: plan, submit, wait, collect, store, derive and write presets."""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NamedTuple

import typer

from profiler.cli._common import JsonOption, ensure_dir, err, handle_errors, open_db, print_json
from profiler.errors import JobError, UsageError

if TYPE_CHECKING:
    from db import Database
    from jobs import Handle, TaskSpec
    from jobs.cluster import Cluster
    from profiler.preset import Preset
    from profiler.results import NodeResult
    from profiler.sweep import SweepSettings


class Profile(StrEnum):
    quick = "quick"
    standard = "standard"
    full = "full"


class ExecutorName(StrEnum):
    auto = "auto"
    debug = "debug"
    local = "local"
    slurm = "slurm"


# NamedTuples rather than dataclasses: this module is imported for `blasprof --help`, and
# each dataclass costs a millisecond there.
class CalibrationRequest(NamedTuple):
    """A calibration checked at the edge: everything the plain function needs."""

    executor: str
    node_types: tuple[str, ...]
    settings: SweepSettings
    verify: bool = True
    cluster: Cluster | None = None
    nodes_per_type: int | None = None
    all_nodes: bool = False


class CalibrationReport(NamedTuple):
    calibration_id: int
    node_type: str
    status: str
    preset_paths: tuple[Path, ...]


def build_request(
    *,
    executor: str,
    node_types: Sequence[str],
    profile: str,
    sizes: str | None,
    dtypes: str | None,
    threads: str | None,
    min_time: float | None,
    samples: int | None,
    exhaustive: bool,
    tolerance: float | None,
    verify: bool,
    cluster: Path | None = None,
    nodes_per_type: int | None = None,
    all_nodes: bool = False,
) -> CalibrationRequest:
    """Parse and check the options; every problem is a UsageError naming the option."""
    from profiler.preset import check_node_type
    from profiler.sweep import PROFILES, parse_dtypes, parse_sizes, parse_threads, with_overrides

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
        min_time=min_time,
        samples=samples,
        strategy="exhaustive" if exhaustive else None,
        tolerance=tolerance,
    )
    if threads is not None:
        settings = replace(settings, threads=parse_threads(threads))
    names = tuple(check_node_type(n) for n in node_types)
    if len(set(names)) != len(names):
        raise UsageError("--node-type: the same node type is named twice")
    if nodes_per_type is not None and not 1 <= nodes_per_type <= 10_000:
        raise UsageError(f"--nodes-per-type: must be 1 to 10000, got {nodes_per_type}")
    if all_nodes and nodes_per_type is not None:
        raise UsageError("--all-nodes and --nodes-per-type: give one of them")
    loaded = _load_cluster(cluster) if cluster is not None else None
    executor = _resolve_executor(executor, loaded)
    if executor == "slurm":
        assert loaded is not None  # _resolve_executor refuses slurm without a cluster file
        for name in names:
            loaded.node_type(name)
        names = names or tuple(loaded.node_types)
        for name in names:
            cpus = loaded.node_type(name).cpus_per_task
            if settings.threads and cpus and max(settings.threads) > cpus:
                raise UsageError(
                    f"--threads: {max(settings.threads)} is more than the {cpus} CPUs a job of "
                    f"node type {name} gets (cpus_per_task in {loaded.path}); accepted: 1 to "
                    f"{cpus}, or 'all'"
                )
    else:
        if len(names) > 1:
            raise UsageError(
                f"--executor {executor} calibrates this machine only, so give at most one "
                "--node-type (several node types need --executor slurm and --cluster)"
            )
        if nodes_per_type not in (None, 1) or all_nodes:
            option = "--all-nodes" if all_nodes else "--nodes-per-type"
            raise UsageError(f"{option}: only with --executor slurm")
    return CalibrationRequest(executor, names, settings, verify, loaded, nodes_per_type, all_nodes)


def _load_cluster(path: Path) -> Cluster:
    from jobs.cluster import load_cluster

    return load_cluster(path)


def _resolve_executor(executor: str, cluster: Cluster | None) -> str:
    """``auto``: Slurm when a cluster file is given and sbatch is on PATH, else local."""
    from jobs.slurm import slurm_available

    if executor == "auto":
        if cluster is not None and not slurm_available():
            raise UsageError(
                "--cluster: given, but there is no Slurm here (sbatch is not on PATH); run "
                "from a login node of the cluster, or leave --cluster out to calibrate this "
                "machine"
            )
        return "slurm" if cluster is not None else "local"
    if executor == "slurm":
        if not slurm_available():
            raise UsageError(
                "--executor slurm: no Slurm here (sbatch is not on PATH); run it from a "
                "login node of the cluster, or use --executor local"
            )
        if cluster is None:
            raise UsageError(
                "--executor slurm: needs --cluster FILE describing the node types "
                "(see deploy/slurm-local/cluster.toml)"
            )
    return executor


def _check_here(settings: SweepSettings) -> tuple[int, str, int]:
    """Checks that need this machine: CPUs, memory. Returns facts the plan uses."""
    import psutil

    from profiler.probe import collect_cpu, usable_cpus
    from profiler.sweep import check_memory, resolve_threads

    usable = usable_cpus()
    counts = resolve_threads(settings.threads, usable)
    check_memory(settings, int(psutil.virtual_memory().available))
    cpu = collect_cpu()
    return max(counts), cpu.model, cpu.logical_cpus


class _Submitted(NamedTuple):
    """One node type's calibration in flight: its id, handles and job rows."""

    calibration_id: int
    node_type: str
    handles: list[Handle]
    rows: list[int]


def run_calibration(
    request: CalibrationRequest,
    database: Database,
    *,
    show_progress: bool = True,
    wait: bool = True,
) -> list[CalibrationReport]:
    """Calibrate, store and write presets; returns one report per node type.

    Without ``wait`` (Slurm only) the jobs are recorded as pending and left to
    ``blasprof collect``. Ctrl-C while waiting on Slurm stops the waiting, not the jobs.
    """
    from jobs import get_backend
    from profiler.paths import jobs_dir, presets_dir

    settings = request.settings
    # Where results and presets go is checked before anything runs.
    ensure_dir(presets_dir())
    base = request.cluster.folder if request.cluster and request.cluster.folder else None
    ensure_dir(base or jobs_dir(), 0o700)
    if request.executor == "slurm":
        assert request.cluster is not None
        submitted = [_submit_slurm(request, database, name) for name in request.node_types]
        max_threads = max(
            (request.cluster.node_type(n).cpus_per_task or 1 for n in request.node_types),
            default=1,
        )
    else:
        from profiler.preset import default_node_type

        max_threads, cpu_model, logical = _check_here(settings)
        node_type = (
            request.node_types[0] if request.node_types else default_node_type(cpu_model, logical)
        )
        cal_id, folder = _new_calibration(database, request, node_type, None)
        specs = [_spec(node_type, settings, folder, 0, request.verify, max_threads)]
        try:
            handles = get_backend(request.executor, folder).submit(specs)
        except BaseException as exc:
            database.finish_calibration(cal_id, "failed", error=str(exc) or type(exc).__name__)
            raise
        submitted = [_record_jobs(database, cal_id, node_type, handles, folder)]
    if not wait:
        return [CalibrationReport(s.calibration_id, s.node_type, "running", ()) for s in submitted]
    handles = [h for s in submitted for h in s.handles]
    interrupted = wait_for(
        handles,
        settings,
        max_threads,
        show_progress=show_progress,
        stop_jobs=request.executor != "slurm",
    )
    if interrupted and request.executor == "slurm":
        ids = " ".join(str(s.calibration_id) for s in submitted)
        err(f"stopped waiting; the jobs keep running. Collect them later: blasprof collect {ids}")
        return [CalibrationReport(s.calibration_id, s.node_type, "running", ()) for s in submitted]
    reports = []
    for s in submitted:
        for handle, row in zip(s.handles, s.rows, strict=True):
            collect_one(database, handle, row)
        reports.append(finish(database, s.calibration_id, interrupted=interrupted))
    return reports


def _new_calibration(
    database: Database, request: CalibrationRequest, node_type: str, base: Path | None
) -> tuple[int, Path]:
    from profiler.paths import jobs_dir

    cal_id = database.create_calibration(
        node_type,
        executor=request.executor,
        profile=request.settings.profile,
        settings=request.settings.to_dict(),
        status="running",
    )
    folder = (base or jobs_dir()) / str(cal_id)
    try:
        ensure_dir(folder, 0o700).chmod(0o700)
    except BaseException as exc:
        database.finish_calibration(cal_id, "failed", error=str(exc) or type(exc).__name__)
        raise
    return cal_id, folder


def _spec(
    node_type: str,
    settings: SweepSettings,
    folder: Path,
    index: int,
    verify: bool,
    max_threads: int | None,
) -> TaskSpec:
    from jobs import TaskSpec

    return TaskSpec(
        node_type=node_type,
        settings=settings.to_dict(),
        checkpoint=str(folder / f"task-{index}.points.jsonl"),
        verify=verify,
        index=index,
        max_threads=max_threads,
    )


def _record_jobs(
    database: Database, cal_id: int, node_type: str, handles: Sequence[Handle], folder: Path
) -> _Submitted:
    rows = [
        database.add_job(
            cal_id, external_id=h.external_id, folder=str(folder), state="PENDING", array_index=i
        )
        for i, h in enumerate(handles)
    ]
    return _Submitted(cal_id, node_type, list(handles), rows)


def _submit_slurm(request: CalibrationRequest, database: Database, name: str) -> _Submitted:
    """One node type's tasks as one Slurm array, recorded before anything is awaited."""
    from jobs import get_backend

    assert request.cluster is not None
    node_type = request.cluster.node_type(name)
    hosts: list[str | None]
    if request.all_nodes:
        from jobs.slurm import nodes_of

        hosts = list(nodes_of(node_type))
        if not hosts:
            raise JobError(
                f"--all-nodes: node type {name} (partition {node_type.partition}) has no node "
                "that can take a job now (all down or drained?)"
            )
    else:
        hosts = [None] * (request.nodes_per_type or node_type.nodes)
    cal_id, folder = _new_calibration(database, request, name, request.cluster.folder)
    specs = [
        replace(
            _spec(name, request.settings, folder, i, request.verify, node_type.cpus_per_task),
            host=host,
        )
        for i, host in enumerate(hosts)
    ]
    try:
        handles = get_backend("slurm", folder, cluster=request.cluster).submit(specs)
    except BaseException as exc:
        database.finish_calibration(cal_id, "failed", error=str(exc) or type(exc).__name__)
        raise
    return _record_jobs(database, cal_id, name, handles, folder)


def finish(database: Database, cal_id: int, *, interrupted: bool = False) -> CalibrationReport:
    """Once every job of a calibration has ended: its status, its preset, the preset files.

    Works from what is stored, so ``calibrate`` and a later ``collect`` end the same way.
    Only jobs that completed their sweep feed the preset: a preset from half a sweep would
    replace a good one with a guess.
    """
    import datetime as dt

    from profiler.preset import derive
    from profiler.results import NodeInfo

    record = database.get_calibration(cal_id)
    complete = {j.id for j in record.jobs if j.state == "COMPLETED" and j.result_stored}
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
        return CalibrationReport(cal_id, record.node_type, now, ())
    nodes = [
        NodeInfo.from_dict(j.node_info) for j in record.jobs if j.id in complete and j.node_info
    ]
    points = [m.measurement for m in record.measurements if m.job_id in complete]
    if not nodes or not points:
        return CalibrationReport(cal_id, record.node_type, status, ())
    node = nodes[0]
    settings = record.settings or {}
    partitions: tuple[str, ...] = ()
    if record.executor == "slurm":
        partitions = tuple(sorted({n.slurm.get("SLURM_JOB_PARTITION", "") for n in nodes} - {""}))
    try:
        preset = derive(
            points,
            node_type=record.node_type,
            calibrated_cpus=min(n.usable_cpus for n in nodes),
            tolerance=float(settings.get("tolerance", 0.03)),
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
        err(f"calibration {cal_id}: no preset derived: {exc}")
        return CalibrationReport(cal_id, record.node_type, status, ())
    database.store_preset(cal_id, preset)
    return CalibrationReport(cal_id, record.node_type, status, write_presets(database, [preset]))


def wait_for(
    handles: Sequence[Handle],
    settings: SweepSettings,
    max_threads: int,
    *,
    show_progress: bool = True,
    poll_s: float = 0.2,
    stop_jobs: bool = True,
) -> bool:
    """Wait for every handle, showing points measured; True when the user pressed Ctrl-C.

    On Ctrl-C the jobs are asked to stop (and given a moment to hand back their points)
    when ``stop_jobs``; batch jobs are left running.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from jobs import read_checkpoint
    from profiler.sweep import planned_points

    total = planned_points(settings, range(1, max_threads + 1)) * len(handles)
    progress = Progress(
        TextColumn("[bold]calibrating[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
        disable=not show_progress,
        transient=False,
    )
    interrupted = False
    with progress:
        task = progress.add_task("starting", total=total)
        try:
            while True:
                counts, last = 0, ""
                for h in handles:
                    cp = read_checkpoint(h.spec.checkpoint)
                    counts += len(cp.measurements)
                    if cp.measurements:
                        m = cp.measurements[-1]
                        last = (
                            f"n={m['n']} {m['dtype']} {m['threads']} thr {m['gflops']:.1f} GFLOP/s"
                        )
                if not stop_jobs:  # batch jobs: say where they are
                    states = Counter(h.state() for h in handles)
                    last = " ".join(f"{n} {st}" for st, n in sorted(states.items())) + (
                        f"; {last}" if last else ""
                    )
                progress.update(task, completed=min(counts, total), description=last)
                if all(h.done() for h in handles):
                    progress.update(
                        task, total=max(counts, 1), completed=counts, description="done"
                    )
                    break
                time.sleep(poll_s)
        except KeyboardInterrupt:
            interrupted = True
            if stop_jobs:
                progress.update(task, description="interrupted: keeping the points measured")
                _stop(handles)
            else:
                progress.update(task, description="stopped waiting")
    return interrupted


def _stop(handles: Sequence[Handle], grace_s: float = 20.0) -> None:
    """Ask running tasks to stop and give them a moment to hand back what they measured."""
    for h in handles:
        with contextlib.suppress(Exception):
            h.cancel()
    deadline = time.monotonic() + grace_s
    with contextlib.suppress(KeyboardInterrupt):
        while time.monotonic() < deadline and not all(h.done() for h in handles):
            time.sleep(0.1)


def collect_one(database: Database, handle: Handle, row: int) -> NodeResult | None:
    """Store one task's outcome; a failed task keeps the points of its checkpoint.

    Returns the result, or None when another process had stored it already.
    """
    from jobs import read_checkpoint
    from profiler.results import Measurement, NodeInfo, NodeResult

    outcome = handle.outcome() if handle.done() else None
    result: NodeResult | None = None
    state = outcome.state if outcome else "INTERRUPTED"
    if outcome is not None and outcome.result is not None:
        result = NodeResult.from_dict(outcome.result)
        if result.status != "complete" and state == "COMPLETED":
            # the job ran to its end but the sweep did not: say why in the job's state
            state = "INTERRUPTED" if result.error == "interrupted" else "FAILED"
    else:
        cp = read_checkpoint(handle.spec.checkpoint)
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        result = NodeResult(
            node_type=handle.spec.node_type,
            node=NodeInfo.from_dict(cp.node) if cp.node else None,
            measurements=tuple(Measurement.from_dict(p) for p in cp.measurements),
            status="partial" if cp.measurements else "failed",
            started_at=now,
            finished_at=now,
            settings=handle.spec.settings,
            error=(outcome.reason if outcome else "interrupted") or state.lower(),
        )
    stored = database.store_node_result(
        row,
        result,
        state=state,
        reason=(outcome.reason if outcome else None) or result.error,
        log_tail=outcome.log_tail if outcome else None,
    )
    return result if stored else None


def write_presets(
    database: Database, presets: Sequence[Preset], out: Path | None = None
) -> tuple[Path, ...]:
    """Write each preset in every format, and the dispatchers over every known node type."""
    from profiler.cli._common import write_atomic
    from profiler.paths import presets_dir
    from profiler.render import (
        FORMATS,
        NodeTypeMatch,
        file_name,
        render,
        render_dispatcher_py,
        render_dispatcher_sh,
    )

    directory = (out or presets_dir()).resolve()
    written = []
    for preset in presets:
        for fmt in FORMATS:
            path = directory / file_name(preset.node_type, fmt)
            write_atomic(path, render(preset, fmt))
            written.append(path)
    known: dict[str, Preset] = {}
    for name in database.node_type_names():
        latest = database.latest_preset(name)
        if latest is not None:
            known[name] = latest
    known.update({p.node_type: p for p in presets})
    matches = [
        NodeTypeMatch(p.node_type, p.cpu_model, p.logical_cpus, p.partitions)
        for p in known.values()
    ]
    write_atomic(directory / "blasprof.sh", render_dispatcher_sh(str(directory), matches))
    write_atomic(directory / "blas_preset.py", render_dispatcher_py(matches))
    written += [directory / "blasprof.sh", directory / "blas_preset.py"]
    return tuple(written)


@handle_errors
def calibrate_command(
    executor: Annotated[
        ExecutorName,
        typer.Option(
            help="Where it runs: debug (this process), local (a separate process), slurm "
            "(jobs per node type), or auto (slurm with --cluster and sbatch, else local)."
        ),
    ] = ExecutorName.auto,
    node_type: Annotated[
        list[str] | None,
        typer.Option("--node-type", help="Node type name (default: named after this CPU)."),
    ] = None,
    profile: Annotated[
        Profile, typer.Option(help="quick (about a minute), standard or full.")
    ] = Profile.quick,
    sizes: Annotated[
        str | None, typer.Option(help="Matrix orders, e.g. 256,1024,4096 (default: profile's).")
    ] = None,
    dtypes: Annotated[str | None, typer.Option(help="float64,float32 (default: both).")] = None,
    threads: Annotated[
        str | None, typer.Option(help="Thread counts, e.g. 1,2,4, or 'all' (default).")
    ] = None,
    exhaustive: Annotated[
        bool, typer.Option("--exhaustive", help="Measure every thread count, not a search.")
    ] = False,
    min_time: Annotated[
        float | None, typer.Option(help="Minimum seconds per sample (default: profile's).")
    ] = None,
    samples: Annotated[
        int | None, typer.Option(help="Samples per point (default: profile's).")
    ] = None,
    tolerance: Annotated[
        float | None, typer.Option(help="Choose the fewest threads within this of the best.")
    ] = None,
    verify: Annotated[
        bool, typer.Option(help="Check the preset in a fresh process started with it.")
    ] = True,
    cluster: Annotated[
        Path | None,
        typer.Option(
            "--cluster",
            help="TOML file describing the cluster's node types (see deploy/slurm-local).",
            dir_okay=False,
        ),
    ] = None,
    nodes_per_type: Annotated[
        int | None,
        typer.Option(help="Slurm: calibrate this many nodes of each type (default: file's)."),
    ] = None,
    all_nodes: Annotated[
        bool,
        typer.Option(
            "--all-nodes",
            help="Slurm: calibrate every node of each type that is up (one job per node).",
        ),
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            help="Slurm: --no-wait records the jobs and returns; `blasprof collect` later.",
        ),
    ] = True,
    json_output: JsonOption = False,
) -> None:
    """Measure GEMM speed per size and thread count, store it, and write presets.

    Examples:

      blasprof calibrate --profile quick

      blasprof calibrate --sizes 256,1024,4096 --threads all --json

      blasprof calibrate --node-type login-amd --exhaustive

      blasprof calibrate --cluster cluster.toml --node-type A --node-type B --no-wait
    """
    request = build_request(
        executor=executor.value,
        node_types=node_type or [],
        profile=profile.value,
        sizes=sizes,
        dtypes=dtypes,
        threads=threads,
        min_time=min_time,
        samples=samples,
        exhaustive=exhaustive,
        tolerance=tolerance,
        verify=verify,
        cluster=cluster,
        nodes_per_type=nodes_per_type,
        all_nodes=all_nodes,
    )
    if not wait and request.executor != "slurm":
        raise UsageError("--no-wait: only with --executor slurm (local runs end with the command)")
    database = open_db()
    with _terminate_as_interrupt():
        reports = run_calibration(
            request, database, show_progress=os.isatty(2) or not json_output, wait=wait
        )
    if any(r.status == "running" for r in reports):
        _print_pending(database, reports, json_output)
        if wait:  # Ctrl-C while waiting on Slurm: the jobs go on
            raise typer.Exit(130)
        return
    docs = [database.get_calibration(r.calibration_id).to_json() for r in reports]
    if json_output:
        for doc, r in zip(docs, reports, strict=True):
            doc["preset_files"] = [str(p) for p in r.preset_paths]
        print_json(docs[0] if len(docs) == 1 else {"calibrations": docs})
    else:
        from profiler.cli._report import print_calibration

        for doc, r in zip(docs, reports, strict=True):
            print_calibration(doc)
            _print_paths(r)
    if any(r.status != "complete" for r in reports):
        bad = ", ".join(
            f"{r.calibration_id} ({r.status})" for r in reports if r.status != "complete"
        )
        err(f"calibration did not complete: {bad}; the points measured are stored")
        raise typer.Exit(1)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM or a hang-up (the login shell went away) ends a calibration as Ctrl-C does:
    what was measured is stored, marked partial."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _print_pending(
    database: Database, reports: Sequence[CalibrationReport], json_output: bool
) -> None:
    docs = [database.get_calibration(r.calibration_id).to_json() for r in reports]
    if json_output:
        print_json(docs[0] if len(docs) == 1 else {"calibrations": docs})
        return
    ids = " ".join(str(r.calibration_id) for r in reports)
    for doc in docs:
        jobs = ", ".join(str(j["external_id"]) for j in doc["jobs"])
        print(f"calibration {doc['calibration_id']} ({doc['node_type']}): Slurm jobs {jobs}")
    print(f"follow them:  blasprof status {ids}")
    print(f"store them:   blasprof collect {ids}   (safe to run again)")


def _print_paths(report: CalibrationReport) -> None:
    if not report.preset_paths:
        print(
            "no preset written: no node finished its sweep; earlier presets are kept"
            if report.status != "complete"
            else "no preset written: nothing usable was measured"
        )
        return
    directory = report.preset_paths[0].parent
    names = ", ".join(p.name for p in report.preset_paths)
    print(f"presets written to {directory}: {names}")
    print(f"in a job script:  . {directory / 'blasprof.sh'}")
    print(f"or for this type:  blasprof preset {report.node_type} --format sh")
