"""The Slurm backend: node tasks as submitit job arrays, and their states read from Slurm.

``SlurmBackend.submit`` groups the tasks by node type (each type has its own partition and
job settings) and sends each group as job arrays through ``submitit.SlurmExecutor``, one
``sbatch`` call per array of at most MaxArraySize tasks. Job names say what they are:
``blasprof-<node type>``.

States come from one ``squeue`` call for all watched jobs (at most once a second), never
from ``sacct``: without accounting it fails, and submitit would warn about it on every
poll. A finished job stays in ``squeue`` for MinJobAge seconds only; after that, the marks
``slurmstepd`` leaves in the job's log (cancelled, time limit, node failure, OOM) and the
result pickle decide.

Threads on the compute node follow the allocation: the job script exports the BLAS and
OpenMP thread variables as ``SLURM_CPUS_PER_TASK`` (else ``SLURM_CPUS_ON_NODE``) before
Python starts, because submitit imports numpy before it unpickles the task.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from jobs.cluster import Cluster, NodeType
from jobs.executors import Backend, Handle, Outcome, _SubmititHandle, tail
from jobs.task import THREAD_ENV, TaskSpec, run_node_task
from profiler.errors import JobError, UsageError

__all__ = [
    "SlurmBackend",
    "nodes_of",
    "SlurmHandle",
    "reattach",
    "cancel_jobs",
    "slurm_available",
    "max_array_size",
    "DEFAULT_MAX_ARRAY_SIZE",
]

DEFAULT_MAX_ARRAY_SIZE = 1001

#: Slurm states after which a job never runs again, and the name each is reported under.
_FINAL = {
    "COMPLETED": "COMPLETED",
    "FAILED": "FAILED",
    "CANCELLED": "CANCELLED",
    "TIMEOUT": "TIMEOUT",
    "DEADLINE": "TIMEOUT",
    "OUT_OF_MEMORY": "OUT_OF_MEMORY",
    "NODE_FAIL": "NODE_FAIL",
    "BOOT_FAIL": "NODE_FAIL",
    "PREEMPTED": "PREEMPTED",
}

# What slurmstepd writes into the job's stderr when Slurm ends it.
_STEPD_MARK = re.compile(
    r"\*\*\* (?:JOB|STEP) \S+ ON \S+ CANCELLED AT \S+"
    r"(?: DUE TO (?P<why>TIME LIMIT|NODE FAILURE|PREEMPTION))?.*?\*\*\*"
)
_OOM_MARK = re.compile(r"oom[-_ ]kill|out of memory", re.IGNORECASE)
_MARK_STATE = {None: "CANCELLED", "TIME LIMIT": "TIMEOUT", "NODE FAILURE": "NODE_FAIL"}
_MARK_STATE["PREEMPTION"] = "PREEMPTED"


def nodes_of(node_type: NodeType) -> list[str]:
    """The hosts of a node type that can take a job now: its partition's nodes (within its
    nodelist, if any) that are not down, drained or failing. Features are not filtered."""
    command = ["sinfo", "--noheader", "--Node", "--partition", node_type.partition]
    command += ["--states=idle,mixed,allocated,completing", "--format=%N"]
    if node_type.nodelist:
        command += ["--nodes", node_type.nodelist]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise JobError(f"cannot list the nodes of {node_type.name}: {exc}") from exc
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise JobError(f"sinfo failed for {node_type.name}: {lines[-1] if lines else done}")
    return sorted({line.strip() for line in done.stdout.splitlines() if line.strip()})


def slurm_available() -> bool:
    """Whether this shell can submit Slurm jobs (``sbatch`` on PATH), for ``--executor auto``."""
    return shutil.which("sbatch") is not None


_max_array_size: int | None = None


def max_array_size() -> int:
    """The cluster's MaxArraySize, read once from ``scontrol show config`` (else 1001)."""
    global _max_array_size
    if _max_array_size is None:
        _max_array_size = DEFAULT_MAX_ARRAY_SIZE
        try:
            out = subprocess.run(
                ["scontrol", "show", "config"], capture_output=True, text=True, timeout=30
            ).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        match = re.search(r"^MaxArraySize\s*=\s*(\d+)", out, re.MULTILINE)
        if match and int(match.group(1)) > 0:
            _max_array_size = int(match.group(1))
    return _max_array_size


class _SacctFilter(logging.Filter):
    """Drop submitit's "Bypassing sacct error" warnings: blasprof reads states from squeue."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Bypassing sacct error" not in record.getMessage()


_quiet_lock = threading.Lock()
_quieted = False


def _quiet_sacct() -> None:
    global _quieted
    with _quiet_lock:
        if not _quieted:
            logging.getLogger("submitit").addFilter(_SacctFilter())
            _quieted = True


class _Squeue:
    """Job states for every watched job from one ``squeue`` call, at most every ``interval_s``.

    Final states are kept for good; a job that squeue no longer lists is reported as None.
    """

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self.calls = 0
        self._lock = threading.Lock()
        self._watched: set[str] = set()  # array (or plain) job ids still to ask about
        self._unasked: set[str] = set()  # watched since the last call: ask before answering
        self._states: dict[str, tuple[str, str]] = {}
        self._last = float("-inf")
        self._ok = False

    def watch(self, job_id: str) -> None:
        with self._lock:
            cached = self._states.get(job_id)
            if cached is None or cached[0] not in _FINAL:
                self._watched.add(_base(job_id))
                self._unasked.add(_base(job_id))

    def lookup(self, job_id: str) -> tuple[str, str] | None | bool:
        """(state, reason); None: Slurm does not know the job; False: squeue did not answer."""
        with self._lock:
            cached = self._states.get(job_id)
            if cached is not None and cached[0] in _FINAL:
                return cached
            stale = time.monotonic() - self._last >= self.interval_s
            if stale or _base(job_id) in self._unasked:
                self._refresh()
            if not self._ok:
                return False
            return self._states.get(job_id)

    def _refresh(self) -> None:
        self._last = time.monotonic()
        ids = sorted(self._watched)
        unasked, self._unasked = self._unasked, set()
        if not ids:
            self._ok = True
            return
        self.calls += 1
        command = ["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T|%r"]
        try:
            done = subprocess.run(
                [*command, "--jobs=" + ",".join(ids)], capture_output=True, text=True, timeout=60
            )
        except (OSError, subprocess.SubprocessError):
            done = None
        if done is None or (done.returncode != 0 and "Invalid job id" not in done.stderr):
            self._ok = False
            self._unasked |= unasked
            return
        self._ok = True
        asked = set(ids)
        seen = set()
        for line in done.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) < 3:
                continue
            job_id, state, reason = parts[0], parts[1].split()[0], parts[2]
            self._states[job_id] = (state, reason)
            seen.add(job_id)
        for job_id, (state, _) in list(self._states.items()):
            if job_id not in seen and _base(job_id) in asked and state not in _FINAL:
                del self._states[job_id]  # gone between two calls: MinJobAge passed
        running = {_base(j) for j, (state, _) in self._states.items() if state not in _FINAL}
        self._watched = (self._watched - asked) | (running & asked)


def _base(job_id: str) -> str:
    """The array job id of an array task ``A_i`` (a plain job's own id)."""
    return job_id.split("_")[0]


_SQUEUE = _Squeue()


def _allocation_cpus() -> int:
    """CPUs this job was given on this node: what its thread counts may go up to."""
    for name in ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return len(os.sched_getaffinity(0))


def run_slurm_task(spec: TaskSpec) -> dict[str, Any]:
    """The function each array task runs: the node task, its threads capped by the allocation."""
    return run_node_task(replace(spec, max_threads=_allocation_cpus()))


def _thread_setup() -> list[str]:
    """Job script lines that give every BLAS the allocation's CPUs before Python starts."""
    cpus = "${SLURM_CPUS_PER_TASK:-${SLURM_CPUS_ON_NODE:-$(nproc)}}"
    return [f"export {name}={cpus}" for name in THREAD_ENV]


class SlurmHandle(_SubmititHandle):
    """One array task; its state comes from squeue, then from its log and result pickle."""

    def __init__(self, spec: TaskSpec, job: Any) -> None:
        super().__init__(spec, job)
        self._final: tuple[str, str | None] | None = None
        _SQUEUE.watch(self.external_id)

    def _finished_state(self) -> tuple[str, str | None] | None:
        """(state, reason) once the job has ended, else None."""
        if self._final is not None:
            return self._final
        known = _SQUEUE.lookup(self.external_id)
        if known is False:
            return None  # squeue did not answer: say nothing rather than guess
        if known is not None:
            state, reason = known
            if state not in _FINAL:
                return None
            final: tuple[str, str | None] = (_FINAL[state], self._mark() or _reason(reason))
        else:
            final = self._state_without_slurm()
        self._final = final
        return final

    def _state_without_slurm(self) -> tuple[str, str | None]:
        """Slurm has forgotten the job (MinJobAge passed): read what it left behind."""
        mark = self._mark()
        if mark is not None:
            match = _STEPD_MARK.search(mark)
            if match:
                return _MARK_STATE[match.group("why")], mark
            return "OUT_OF_MEMORY", mark
        if self.job.paths.result_pickle.exists():
            kind, _ = self._load_result()
            return ("COMPLETED", None) if kind == "success" else ("FAILED", None)
        if self.job.paths.stderr.exists() or self.job.paths.stdout.exists():
            return "FAILED", "the job ended without a result and Slurm no longer knows why"
        return (
            "CANCELLED",
            "the job never started and Slurm no longer knows it (cancelled while pending?)",
        )

    def _mark(self) -> str | None:
        """The line slurmstepd wrote when Slurm ended the job, if any."""
        try:
            text = self.job.stderr() or ""
        except OSError:
            return None
        for line in reversed(text.splitlines()):
            if _STEPD_MARK.search(line) or _OOM_MARK.search(line):
                return line.split("error: ", 1)[-1].strip()
        return None

    def _load_result(self) -> tuple[str, Any]:
        from submitit.core.utils import pickle_load

        try:
            return pickle_load(self.job.paths.result_pickle)
        except Exception as exc:  # noqa: BLE001  # a torn pickle is a failure, not a crash
            return "error", f"unreadable result pickle: {exc}"

    def state(self) -> str:
        final = self._finished_state()
        if final is not None:
            return final[0]
        known = _SQUEUE.lookup(self.external_id)
        return known[0] if isinstance(known, tuple) else "UNKNOWN"

    def done(self) -> bool:
        return self._finished_state() is not None

    def waiting_reason(self) -> str | None:
        """Why Slurm has not started the job yet (squeue's reason, e.g. Resources), if any."""
        known = _SQUEUE.lookup(self.external_id)
        if isinstance(known, tuple) and known[0] == "PENDING":
            return _reason(known[1])
        return None

    def outcome(self) -> Outcome:
        while (final := self._finished_state()) is None:
            time.sleep(1.0)
        state, reason = final
        if self.job.paths.result_pickle.exists():
            kind, value = self._load_result()
            if kind == "success":
                # A cancelled or timed-out task still returns the points it measured.
                log = None if state == "COMPLETED" else self._log_tail()
                return Outcome(state, result=value, reason=reason, log_tail=log)
            trace = str(value).strip()
            last = trace.splitlines()[-1] if trace else "the task raised an exception"
            state = "FAILED" if state == "COMPLETED" else state
            return Outcome(state, reason=reason or last, log_tail=tail(trace) or self._log_tail())
        if state == "COMPLETED":
            state, reason = "FAILED", "the job completed but left no result pickle"
        return Outcome(state, reason=reason or state.lower(), log_tail=self._log_tail())

    def cancel(self) -> None:
        cancel_jobs([self.external_id])


def _reason(squeue_reason: str) -> str | None:
    return None if squeue_reason in ("", "None", "(null)") else squeue_reason


def cancel_jobs(external_ids: Iterable[str]) -> None:
    """Cancel jobs (array tasks ``A_i`` or whole arrays ``A``) with one ``scancel`` call."""
    ids = sorted(set(external_ids))
    if not ids:
        return
    try:
        done = subprocess.run(["scancel", *ids], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise JobError(f"scancel failed: {exc}") from exc
    if done.returncode != 0 and "Invalid job id" not in done.stderr:
        message = done.stderr.strip().splitlines()
        raise JobError(f"scancel {' '.join(ids)} failed: {message[-1] if message else done}")


def reattach(external_id: str, folder: Path, spec: TaskSpec | None = None) -> SlurmHandle:
    """A handle on a job submitted earlier, e.g. by ``calibrate --no-wait`` in another process.

    ``folder`` is the one given to ``SlurmBackend``; ``spec`` defaults to the one pickled with
    the job.
    """
    import submitit

    _quiet_sacct()
    job: Any = submitit.SlurmJob(folder=Path(folder) / "%j", job_id=external_id)
    if spec is None:
        try:
            spec = job.submission().args[0]
        except Exception as exc:  # noqa: BLE001
            raise JobError(
                f"job {external_id}: cannot read its task from {job.paths.submitted_pickle}: {exc}"
            ) from exc
    return SlurmHandle(spec, job)


class SlurmBackend(Backend):
    """Submits node tasks to Slurm: one job array per node type (and MaxArraySize chunk).

    Parameters: ``cluster`` (a loaded ``Cluster``, required) and ``max_array_size`` (default:
    the cluster file's, else the cluster's MaxArraySize). ``folder`` must be on a filesystem
    the compute nodes share; it is created private to the user (0700).
    """

    name = "slurm"
    runs_here = False

    def __init__(
        self,
        folder: Path,
        *,
        cluster: Cluster | None = None,
        max_array_size: int | None = None,
        **params: Any,
    ) -> None:
        super().__init__(Path(folder), **params)
        if params:
            raise UsageError(
                f"slurm executor: unknown parameter(s) {', '.join(sorted(params))}; "
                "accepted: cluster, max_array_size"
            )
        if cluster is None:
            raise UsageError(
                "--executor slurm: needs --cluster FILE describing the node types "
                "(see deploy/slurm-local/cluster.toml)"
            )
        self.cluster = cluster
        self.max_array_size = max_array_size or cluster.max_array_size
        #: sbatch calls made by this backend, one per array chunk
        self.sbatch_calls = 0

    def _chunk_size(self) -> int:
        return self.max_array_size or max_array_size()

    def _executor(self, node_type: NodeType) -> Any:
        import submitit

        try:
            executor = submitit.SlurmExecutor(folder=self.folder / "%j")
        except RuntimeError as exc:
            raise JobError(f"cannot submit to Slurm from here: {exc}") from exc
        params = node_type.executor_parameters()
        extra = dict(params.pop("additional_parameters", {}))
        setup = _thread_setup() + list(params.pop("setup", []))
        # submitit asks for SIGUSR2 before the time limit and would turn it into an exception
        # that loses the measured points and the TIMEOUT state. The node task stops on the
        # SIGTERM Slurm sends at the limit instead; SIGURG is ignored by default (sbatch
        # refuses signal 0).
        extra.setdefault("signal", "URG@60")
        chunk = self._chunk_size()
        executor.update_parameters(
            **params,
            job_name=f"blasprof-{node_type.name}",
            setup=setup,
            array_parallelism=chunk,
            wckey="blasprof",
            additional_parameters=extra,
        )
        return executor

    def submit(self, specs: Sequence[TaskSpec]) -> list[Handle]:
        """Submit every task; on any sbatch failure, cancel what went out and raise JobError.

        Tasks of one node type go out as arrays; a task bound to a host (``spec.host``)
        goes out on its own with that nodelist, since array tasks share one node request.
        """
        groups: dict[tuple[str, str | None], NodeType] = {}
        for spec in specs:
            node_type = self.cluster.node_type(spec.node_type)
            if spec.host is not None:
                node_type = replace(node_type, nodelist=spec.host, nodes=1)
            groups[(spec.node_type, spec.host)] = node_type
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        _quiet_sacct()
        handles: dict[int, Handle] = {}
        submitted: list[str] = []
        chunk = self._chunk_size()
        try:
            for (name, host), node_type in groups.items():
                executor = self._executor(node_type)
                indices = [
                    i for i, spec in enumerate(specs) if (spec.node_type, spec.host) == (name, host)
                ]
                for start in range(0, len(indices), chunk):
                    part = indices[start : start + chunk]
                    jobs = self._map_array(executor, [specs[i] for i in part])
                    self.sbatch_calls += 1
                    submitted.append(_base(jobs[0].job_id))
                    for i, job in zip(part, jobs, strict=True):
                        handles[i] = SlurmHandle(specs[i], job)
        except JobError:
            cancel_jobs(submitted)
            raise
        return [handles[i] for i in range(len(specs))]

    @staticmethod
    def _map_array(executor: Any, specs: list[TaskSpec]) -> list[Any]:
        from submitit.core.utils import FailedJobError

        try:
            return executor.map_array(run_slurm_task, specs)
        except FailedJobError as exc:
            lines = [line for line in str(exc).strip().splitlines() if line.strip()]
            raise JobError(f"sbatch refused the jobs: {lines[-1] if lines else exc}") from exc
