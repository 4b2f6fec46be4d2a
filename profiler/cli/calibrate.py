"""`blasprof calibrate`: plan, submit, wait, collect, store, derive and write presets."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from profiler.cli._common import JsonOption, err, handle_errors, open_db, print_json
from profiler.errors import UsageError

if TYPE_CHECKING:
    from db import Database
    from jobs import Handle
    from profiler.preset import Preset
    from profiler.results import NodeResult
    from profiler.sweep import SweepSettings


class Profile(StrEnum):
    quick = "quick"
    standard = "standard"
    full = "full"


class ExecutorName(StrEnum):
    debug = "debug"
    local = "local"


@dataclass(frozen=True)
class CalibrationRequest:
    """A calibration checked at the edge: everything the plain function needs."""

    executor: str
    node_types: tuple[str, ...]
    settings: SweepSettings
    verify: bool = True


@dataclass(frozen=True)
class CalibrationReport:
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
) -> CalibrationRequest:
    """Parse and check the options; every problem is a UsageError naming the option."""
    from profiler.preset import check_node_type
    from profiler.sweep import PROFILES, parse_dtypes, parse_sizes, parse_threads, with_overrides

    if min_time is not None and not min_time > 0:
        raise UsageError(f"--min-time: must be > 0 seconds, got {min_time}")
    if samples is not None and samples < 1:
        raise UsageError(f"--samples: must be at least 1, got {samples}")
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
        from dataclasses import replace

        settings = replace(settings, threads=parse_threads(threads))
    names = tuple(check_node_type(n) for n in node_types)
    if len(set(names)) != len(names):
        raise UsageError("--node-type: the same node type is named twice")
    if executor in ("debug", "local") and len(names) > 1:
        raise UsageError(
            f"--executor {executor} calibrates this machine only, so give at most one "
            "--node-type (several node types need --executor slurm)"
        )
    return CalibrationRequest(executor, names, settings, verify)


def _check_here(settings: SweepSettings) -> tuple[int, str, int, str]:
    """Checks that need this machine: CPUs, memory. Returns facts the plan uses."""
    import psutil

    from profiler.probe import collect_cpu, usable_cpus
    from profiler.sweep import check_memory, resolve_threads

    usable = usable_cpus()
    counts = resolve_threads(settings.threads, usable)
    check_memory(settings, int(psutil.virtual_memory().available))
    cpu = collect_cpu()
    return max(counts), cpu.model, cpu.logical_cpus, f"{len(counts)} thread counts"


def run_calibration(
    request: CalibrationRequest, database: Database, *, show_progress: bool = True
) -> list[CalibrationReport]:
    """Calibrate, store and write presets; returns one report per node type."""
    from jobs import TaskSpec, get_backend
    from profiler.paths import jobs_dir
    from profiler.preset import default_node_type

    max_threads, cpu_model, logical, _ = _check_here(request.settings)
    node_type = (
        request.node_types[0] if request.node_types else default_node_type(cpu_model, logical)
    )
    settings = request.settings
    cal_id = database.create_calibration(
        node_type,
        executor=request.executor,
        profile=settings.profile,
        settings=settings.to_dict(),
        status="running",
    )
    folder = jobs_dir() / str(cal_id)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    spec = TaskSpec(
        node_type=node_type,
        settings=settings.to_dict(),
        checkpoint=str(folder / "task-0.points.jsonl"),
        verify=request.verify,
        max_threads=max_threads,
    )
    handles = get_backend(request.executor, folder).submit([spec])
    rows = [
        database.add_job(
            cal_id, external_id=h.external_id, folder=str(folder), state="RUNNING", array_index=i
        )
        for i, h in enumerate(handles)
    ]
    interrupted = wait_for(handles, settings, max_threads, show_progress=show_progress)
    results = [collect_one(database, h, row) for h, row in zip(handles, rows, strict=True)]
    status = _calibration_status(results, interrupted)
    database.finish_calibration(
        cal_id, status, error="interrupted by the user" if interrupted else None
    )
    paths: tuple[Path, ...] = ()
    preset = derive_preset(database, cal_id, node_type, results)
    if preset is not None:
        database.store_preset(cal_id, preset)
        paths = write_presets(database, [preset])
    return [CalibrationReport(cal_id, node_type, status, paths)]


def _calibration_status(results: Sequence[NodeResult | None], interrupted: bool) -> str:
    stored = [r for r in results if r is not None]
    if stored and all(r.status == "complete" for r in stored) and len(stored) == len(results):
        return "complete"
    if any(r.measurements for r in stored):
        return "partial"
    return "cancelled" if interrupted else "failed"


def wait_for(
    handles: Sequence[Handle],
    settings: SweepSettings,
    max_threads: int,
    *,
    show_progress: bool = True,
    poll_s: float = 0.2,
) -> bool:
    """Wait for every handle, showing points measured; True when the user pressed Ctrl-C."""
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
                progress.update(task, completed=min(counts, total), description=last)
                if all(h.done() for h in handles):
                    progress.update(
                        task, total=max(counts, 1), completed=counts, description="done"
                    )
                    break
                time.sleep(poll_s)
        except KeyboardInterrupt:
            interrupted = True
            progress.update(task, description="interrupted: keeping the points measured")
            _stop(handles)
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
    """Store one task's outcome; a failed task keeps the points of its checkpoint."""
    from jobs import read_checkpoint
    from profiler.results import Measurement, NodeInfo, NodeResult

    outcome = handle.outcome() if handle.done() else None
    result: NodeResult | None = None
    state = outcome.state if outcome else "INTERRUPTED"
    if outcome is not None and outcome.result is not None:
        result = NodeResult.from_dict(outcome.result)
        if result.status != "complete":
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
    database.store_node_result(row, result)
    database.update_job(
        row,
        state=state,
        reason=(outcome.reason if outcome else None) or result.error,
        log_tail=outcome.log_tail if outcome else None,
        hostname=result.node.hostname if result.node else None,
    )
    return result


def derive_preset(
    database: Database, cal_id: int, node_type: str, results: Sequence[NodeResult | None]
) -> Preset | None:
    """The preset for this calibration, or None when nothing usable was measured."""
    import datetime as dt

    from profiler.preset import derive

    # Only nodes that finished their sweep: a preset from half a sweep would replace a good
    # one with a guess.
    complete = [r for r in results if r is not None and r.status == "complete"]
    measurements = [m for r in complete for m in r.measurements]
    nodes = [r.node for r in complete if r.node is not None]
    if not measurements or not nodes:
        return None
    node = nodes[0]
    blas = "; ".join(
        f"{b.internal_api} {b.version or '?'} {b.threading_layer or ''}".strip()
        for b in node.blas
        if b.user_api == "blas"
    )
    try:
        return derive(
            measurements,
            node_type=node_type,
            calibrated_cpus=min(n.usable_cpus for n in nodes),
            tolerance=float(complete[0].settings.get("tolerance", 0.03)),
            calibration_id=cal_id,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            blas=blas,
            cpu_model=node.cpu_model,
            logical_cpus=node.logical_cpus,
        )
    except ValueError as exc:
        err(f"no preset derived: {exc}")
        return None


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
            help="Where the calibration runs: debug (this process) or local (a separate process)."
        ),
    ] = ExecutorName.local,
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
    json_output: JsonOption = False,
) -> None:
    """Measure GEMM speed per size and thread count, store it, and write presets.

    Examples:

      blasprof calibrate --profile quick

      blasprof calibrate --sizes 256,1024,4096 --threads all --json

      blasprof calibrate --node-type login-amd --exhaustive
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
    )
    database = open_db()
    reports = run_calibration(request, database, show_progress=os.isatty(2) or not json_output)
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
