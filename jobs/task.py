"""The node task: what runs on the compute node, plus the checkpoint it leaves behind.

``run_node_task`` imports nothing heavy before it has set the thread environment for the
largest count it will test, so OpenBLAS starts with a pool large enough. It writes every
point to a JSON-lines checkpoint as soon as it is measured (the login shell reads it for
progress, and to keep what was measured if the job dies), and returns a plain, versioned
``NodeResult`` dict. It never touches the database.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from profiler.results import Measurement, NodeInfo
    from profiler.sweep import SweepSettings

__all__ = ["TaskSpec", "run_node_task", "read_checkpoint", "Checkpoint"]

#: a fresh process started from the preset must reach this fraction of the sweep's figure
VERIFY_MIN_RATIO = 0.9

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


@dataclass(frozen=True)
class TaskSpec:
    """One node's calibration: which node type, what to sweep, where to leave the checkpoint."""

    node_type: str
    settings: dict[str, Any]
    checkpoint: str
    verify: bool = True
    index: int = 0
    max_threads: int | None = None
    #: the node this task must run on (batch executors; None: any node of the type)
    host: str | None = None
    stop_event: threading.Event | None = field(default=None, compare=False, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["stop_event"] = None  # events do not cross process boundaries
        return state


@dataclass
class Checkpoint:
    """What a checkpoint file holds: the node record and the points measured so far."""

    node: dict[str, Any] | None
    measurements: list[dict[str, Any]]
    finished: bool


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint; a torn last line (the job died mid-write) is ignored."""
    node, points, finished = None, [], False
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return Checkpoint(None, [], False)
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        kind = record.get("kind")
        if kind == "node":
            node = record["node"]
        elif kind == "point":
            points.append(record["point"])
        elif kind == "end":
            finished = True
    return Checkpoint(node, points, finished)


def _append(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()


def _prepare_environment(max_threads: int | None) -> None:
    """Give every BLAS a pool big enough for the largest count, before numpy loads it."""
    if "numpy" in sys.modules or not max_threads:
        return
    for name in THREAD_ENV:
        os.environ[name] = str(max_threads)


class _Stop(Exception):
    pass


def run_node_task(spec: TaskSpec) -> dict[str, Any]:
    """Probe the node, sweep, verify the preset in a fresh process; return the result dict."""
    _prepare_environment(spec.max_threads)

    from profiler.errors import UsageError
    from profiler.preset import derive
    from profiler.probe import probe
    from profiler.results import NodeResult
    from profiler.sweep import SweepSettings, check_memory, resolve_threads, run_sweep

    started = _now()
    checkpoint = Path(spec.checkpoint)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    settings = SweepSettings.from_dict(spec.settings)
    previous = _install_term_handler()
    measurements: list[Measurement] = []
    node = None
    try:
        node = probe()
        _append(checkpoint, {"kind": "node", "node": node.to_dict()})
        try:
            counts = resolve_threads(settings.threads, node.usable_cpus)
            check_memory(settings, node.memory_available_bytes)
        except UsageError as exc:
            return _result(spec, node, [], "failed", started, settings, error=str(exc))

        def on_point(m: Measurement) -> None:
            measurements.append(m)
            _append(checkpoint, {"kind": "point", "point": m.to_dict()})
            if spec.stop_event is not None and spec.stop_event.is_set():
                raise KeyboardInterrupt

        outcome = run_sweep(
            settings, counts, physical_cores=node.usable_cores or None, on_point=on_point
        )
        status = "complete" if outcome.completed else "partial"
        verification = None
        if outcome.completed and spec.verify:
            preset = derive(
                outcome.measurements,
                node_type=spec.node_type,
                calibrated_cpus=node.usable_cpus,
                tolerance=settings.tolerance,
            )
            verification = verify_preset(preset, outcome.measurements, settings)
        return NodeResult(
            node_type=spec.node_type,
            node=node,
            measurements=tuple(outcome.measurements),
            status=status,
            started_at=started,
            finished_at=_now(),
            settings=settings.to_dict(),
            verification=verification,
            error=outcome.error,
        ).to_dict()
    except KeyboardInterrupt:
        return _result(spec, node, measurements, "partial", started, settings, "interrupted")
    finally:
        _append(checkpoint, {"kind": "end"})
        _restore_term_handler(previous)


def _result(
    spec: TaskSpec,
    node: NodeInfo | None,
    measurements: Sequence[Measurement],
    status: str,
    started: str,
    settings: SweepSettings,
    error: str | None = None,
) -> dict[str, Any]:
    from profiler.results import NodeResult

    return NodeResult(
        node_type=spec.node_type,
        node=node,
        measurements=tuple(measurements),
        status=status,
        started_at=started,
        finished_at=_now(),
        settings=settings.to_dict(),
        error=error,
    ).to_dict()


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


def verify_preset(preset: Any, measurements: Any, settings: Any) -> Any:
    """Start a fresh Python with the preset's variables and time its default class's size."""
    from profiler.render import THREAD_VARIABLES
    from profiler.results import Verification

    size_class = preset.size_class(preset.default_class)
    dtype = "float64" if "float64" in size_class.per_dtype else sorted(size_class.per_dtype)[0]
    threads = size_class.threads
    sweep_points = [
        m
        for m in measurements
        if m.n == size_class.measured_n and m.dtype == dtype and m.threads == threads
    ]
    sweep_gflops = max((m.gflops for m in sweep_points), default=0.0)
    env = dict(os.environ)
    env.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    command = [
        sys.executable,
        "-m",
        "profiler.verify",
        str(size_class.measured_n),
        dtype,
        str(max(settings.timing.min_time, 0.1)),
        str(max(3, settings.timing.samples)),
    ]
    # A shared machine is noisy: one retry before calling the preset unverified.
    for _attempt in range(2):
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
            data = json.loads(done.stdout.strip().splitlines()[-1])
        except (subprocess.SubprocessError, json.JSONDecodeError, IndexError, OSError) as exc:
            return Verification(
                n=size_class.measured_n,
                dtype=dtype,
                threads=threads,
                sweep_gflops=sweep_gflops,
                fresh_gflops=0.0,
                threads_observed=(),
                ratio=0.0,
                passed=False,
                note=f"the fresh process failed: {exc}",
            )
        fresh = float(data["gflops"])
        observed = tuple(int(t) for t in data["threads_observed"])
        ratio = fresh / sweep_gflops if sweep_gflops else 0.0
        threads_ok = bool(observed) and all(t == threads for t in observed)
        passed = threads_ok and ratio >= VERIFY_MIN_RATIO
        if passed or not threads_ok:
            break
    note = "" if threads_ok else f"the fresh process ran {observed} threads, not {threads}"
    if threads_ok and not passed:
        note = f"the fresh process reached {ratio:.0%} of the sweep's figure"
    return Verification(
        n=size_class.measured_n,
        dtype=dtype,
        threads=threads,
        sweep_gflops=sweep_gflops,
        fresh_gflops=fresh,
        threads_observed=observed,
        ratio=ratio,
        passed=passed,
        note=note,
    )
