"""The Slurm backend: node tasks as submitit job arrays, and their states read from Slurm.

``SlurmBackend.submit`` groups the tasks by node type (each type has its own partition and
job settings) and sends each group as job arrays through ``submitit.SlurmExecutor``, one
``sbatch`` call per array of at most MaxArraySize tasks. Job names say what they are:
``blasprof-<node type>``.

States come from one ``squeue`` call for all of a backend's jobs (``jobs.squeue``), never
from ``sacct``. A finished job stays in ``squeue`` for MinJobAge seconds only; after that,
the marks ``slurmstepd`` leaves in the job's log (cancelled, time limit, node failure, OOM)
and the result pickle decide.

Threads on the compute node follow the allocation: the job script exports the BLAS and
OpenMP thread variables for the job's CPUs (``profiler.jobstart.budget``) before Python starts,
because submitit imports numpy before it unpickles the task.
"""

from __future__ import annotations

import logging
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from jobs import states
from jobs.base import Backend, Handle, Outcome, tail
from jobs.cluster import Cluster, NodeType
from jobs.squeue import Squeue, array_id
from jobs.submitit_job import SubmititHandle
from jobs.task import TaskSpec, run_node_task
from profiler.errors import JobError, UsageError

__all__ = [
    "DEFAULT_MAX_ARRAY_SIZE",
    "SlurmBackend",
    "SlurmHandle",
    "cancel_jobs",
    "max_array_size",
]

DEFAULT_MAX_ARRAY_SIZE = 1001

# What slurmstepd writes into the job's stderr when Slurm ends it.
_STEPD_MARK = re.compile(
    r"\*\*\* (?:JOB|STEP) \S+ ON \S+ CANCELLED AT \S+"
    r"(?: DUE TO (?P<why>TIME LIMIT|NODE FAILURE|PREEMPTION))?.*?\*\*\*"
)
_OOM_MARK = re.compile(r"oom[-_ ]kill|out of memory", re.IGNORECASE)
_MARK_STATE = {None: "CANCELLED", "TIME LIMIT": "TIMEOUT", "NODE FAILURE": "NODE_FAIL"}
_MARK_STATE["PREEMPTION"] = "PREEMPTED"


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


def run_slurm_task(spec: TaskSpec) -> dict[str, Any]:
    """The function each array task runs: the node task, its threads capped by the job's CPUs."""
    from profiler.jobstart.budget import job_cpus

    return run_node_task(replace(spec, max_threads=job_cpus()))


def _thread_setup() -> list[str]:
    """The job script line that gives every BLAS the job's CPUs before Python starts: the
    exports come from the budget rule itself (``python -m profiler.jobstart.budget``)."""
    return [f'eval "$({shlex.quote(sys.executable)} -m profiler.jobstart.budget)"']


class SlurmHandle(SubmititHandle):
    """One array task; its state comes from squeue, then from its log and result pickle."""

    def __init__(self, spec: TaskSpec, job: Any, squeue: Squeue) -> None:
        super().__init__(spec, job)
        self._squeue = squeue
        self._final: tuple[str, str | None] | None = None
        squeue.watch(self.external_id)

    def _finished_state(self) -> tuple[str, str | None] | None:
        """(state, reason) once the job has ended, else None."""
        if self._final is not None:
            return self._final
        known = self._squeue.lookup(self.external_id)
        if known is False:
            return None  # squeue did not answer: say nothing rather than guess
        if known is not None:
            state, reason = known
            if state not in states.SLURM_FINAL:
                return None
            final: tuple[str, str | None] = (
                states.SLURM_FINAL[state],
                self._mark() or _reason(reason),
            )
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
            return (states.COMPLETED, None) if kind == "success" else (states.FAILED, None)
        if self.job.paths.stderr.exists() or self.job.paths.stdout.exists():
            return states.FAILED, "the job ended without a result and Slurm no longer knows why"
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
        known = self._squeue.lookup(self.external_id)
        return known[0] if isinstance(known, tuple) else states.UNKNOWN

    def done(self) -> bool:
        return self._finished_state() is not None

    def waiting_reason(self) -> str | None:
        """Why Slurm has not started the job yet (squeue's reason, e.g. Resources), if any."""
        known = self._squeue.lookup(self.external_id)
        if isinstance(known, tuple) and known[0] == states.PENDING:
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
                log = None if state == states.COMPLETED else self.log_tail()
                return Outcome(state, result=value, reason=reason, log_tail=log)
            trace = str(value).strip()
            last = trace.splitlines()[-1] if trace else "the task raised an exception"
            state = states.FAILED if state == states.COMPLETED else state
            return Outcome(state, reason=reason or last, log_tail=tail(trace) or self.log_tail())
        if state == states.COMPLETED:
            state, reason = states.FAILED, "the job completed but left no result pickle"
        return Outcome(state, reason=reason or state.lower(), log_tail=self.log_tail())

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


class SlurmBackend(Backend):
    """Submits node tasks to Slurm: one job array per node type (and MaxArraySize chunk).

    ``cluster`` (a loaded cluster file) is needed to submit, not to reattach;
    ``max_array_size`` defaults to the cluster file's, else the cluster's MaxArraySize.
    ``folder`` must be on a filesystem the compute nodes share; it is created private to
    the user (0700). Handles of one backend share one squeue cache: one call a second
    answers for all of them.
    """

    name = "slurm"
    summary = "slurm (jobs per node type)"
    batch = True

    def __init__(
        self, folder: Path, *, cluster: Cluster | None = None, max_array_size: int | None = None
    ) -> None:
        super().__init__(folder, cluster=cluster)
        self.max_array_size = max_array_size or (cluster.max_array_size if cluster else None)
        #: sbatch calls made by this backend, one per array chunk
        self.sbatch_calls = 0
        self._squeue = Squeue()

    @classmethod
    def unavailable(cls) -> str | None:
        if shutil.which("sbatch") is None:
            return "no Slurm here (sbatch is not on PATH)"
        return None

    def nodes(self, node_type: NodeType) -> list[str]:
        """The hosts of a node type that can take a job now: its partition's nodes (within
        its nodelist, if any) that are not down, drained or failing and whose active
        features satisfy its constraint; idle ones first, then by name."""
        from jobs.features import parse_constraint

        admits = parse_constraint(node_type.constraint) if node_type.constraint else None
        command = ["sinfo", "--noheader", "--Node", "--partition", node_type.partition]
        command += ["--states=idle,mixed,allocated,completing", "--format=%N|%T|%b"]
        if node_type.nodelist:
            command += ["--nodes", node_type.nodelist]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            raise JobError(f"cannot list the nodes of {node_type.name}: {exc}") from exc
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            raise JobError(f"sinfo failed for {node_type.name}: {lines[-1] if lines else done}")
        busy: dict[str, int] = {}
        for line in done.stdout.splitlines():
            host, _, rest = line.strip().partition("|")
            state, _, features = rest.partition("|")
            active = set() if features in ("", "(null)") else set(features.split(","))
            if not host or (admits is not None and not admits(active)):
                continue
            rank = 0 if state.startswith("idle") else 1 if state.startswith("mixed") else 2
            busy[host] = min(rank, busy.get(host, rank))
        return sorted(busy, key=lambda host: (busy[host], host))

    def reattach(self, external_id: str) -> SlurmHandle:
        """A handle on a job submitted earlier (e.g. by ``calibrate --no-wait``) into this
        backend's folder; its spec is the one pickled with the job."""
        import submitit

        _quiet_sacct()
        job: Any = submitit.SlurmJob(folder=self.folder / "%j", job_id=external_id)
        try:
            spec = job.submission().args[0]
        except Exception as exc:  # noqa: BLE001
            raise JobError(
                f"job {external_id}: cannot read its task from {job.paths.submitted_pickle}: {exc}"
            ) from exc
        return SlurmHandle(spec, job, self._squeue)

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
        executor.update_parameters(
            **params,
            job_name=f"blasprof-{node_type.name}",
            setup=setup,
            array_parallelism=self._chunk_size(),
            wckey="blasprof",
            additional_parameters=extra,
        )
        return executor

    def submit(self, specs: Sequence[TaskSpec]) -> list[Handle]:
        """Submit every task; on any sbatch failure, cancel what went out and raise JobError.

        Tasks of one node type go out as arrays; a task bound to a host (``spec.host``)
        goes out on its own with that nodelist, since array tasks share one node request.
        """
        if self.cluster is None:
            raise UsageError(
                "--executor slurm: needs --cluster FILE describing the node types "
                "(see deploy/slurm-local/cluster.toml)"
            )
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
                    submitted.append(array_id(jobs[0].job_id))
                    for i, job in zip(part, jobs, strict=True):
                        handles[i] = SlurmHandle(specs[i], job, self._squeue)
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
