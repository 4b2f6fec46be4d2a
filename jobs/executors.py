"""Executors, found by name: where node tasks run and how their outcome comes back.

Each backend submits ``TaskSpec``s and returns ``Handle``s with the same small surface:
``external_id``, ``state()``, ``done()``, ``outcome()`` and ``cancel()``. ``debug`` runs the
task in a thread of this process; ``local`` runs it in a separate process through submitit's
LocalExecutor; ``slurm`` (``jobs.slurm``) sends it to Slurm as job arrays. Adding a backend
means adding one class to ``BACKENDS``.
"""

from __future__ import annotations

import abc
import contextlib
import signal
import threading
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from jobs.task import TaskSpec, run_node_task
from profiler.errors import JobError, UsageError

__all__ = ["Outcome", "Handle", "Backend", "BACKENDS", "get_backend", "tail"]


@dataclass(frozen=True)
class Outcome:
    """How a task ended: its result dict, or the state, the reason and the log's tail."""

    state: str
    result: dict[str, Any] | None = None
    reason: str | None = None
    log_tail: str | None = None


class Handle(Protocol):
    spec: TaskSpec
    external_id: str

    def state(self) -> str: ...
    def done(self) -> bool: ...
    def outcome(self) -> Outcome: ...
    def cancel(self) -> None: ...


def tail(text: str | None, lines: int = 20) -> str | None:
    """The last ``lines`` lines of a log, or None when there is nothing."""
    if not text:
        return None
    return "\n".join(text.rstrip().splitlines()[-lines:])


class Backend(abc.ABC):
    """Submits node tasks somewhere."""

    name: ClassVar[str]
    #: whether tasks run on this machine (so local checks such as memory apply)
    runs_here: ClassVar[bool] = True

    def __init__(self, folder: Path, **params: Any) -> None:
        self.folder = folder
        self.params = params

    @abc.abstractmethod
    def submit(self, specs: Sequence[TaskSpec]) -> list[Handle]:
        """Start one job per spec; the handles come back in the specs' order."""


class _ThreadHandle:
    def __init__(self, spec: TaskSpec, index: int) -> None:
        self.spec = spec
        self.external_id = f"debug-{index}"
        self._result: dict[str, Any] | None = None
        self._error: str | None = None
        self._thread = threading.Thread(target=self._run, name=self.external_id, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = run_node_task(self.spec)
        except BaseException:  # noqa: BLE001  # reported as the job's failure
            self._error = traceback.format_exc()

    def state(self) -> str:
        if self._thread.is_alive():
            return "RUNNING"
        return "FAILED" if self._error else "COMPLETED"

    def done(self) -> bool:
        return not self._thread.is_alive()

    def outcome(self) -> Outcome:
        self._thread.join()
        if self._error:
            last = self._error.strip().splitlines()[-1]
            return Outcome("FAILED", reason=last, log_tail=tail(self._error))
        return Outcome("COMPLETED", result=self._result)

    def cancel(self) -> None:
        if self.spec.stop_event is not None:
            self.spec.stop_event.set()


class DebugBackend(Backend):
    """Runs the task in a thread of this process: no pickling, easiest to debug."""

    name = "debug"

    def submit(self, specs: Sequence[TaskSpec]) -> list[Handle]:
        from dataclasses import replace

        return [
            _ThreadHandle(replace(spec, stop_event=threading.Event()), i)
            for i, spec in enumerate(specs)
        ]


class _SubmititHandle:
    """A submitit job; the state vocabulary is Slurm's, whatever the executor."""

    def __init__(self, spec: TaskSpec, job: Any) -> None:
        self.spec = spec
        self.job = job
        self.external_id = str(job.job_id)

    def state(self) -> str:
        state = str(self.job.state).upper()
        if state == "FINISHED":
            return "COMPLETED" if self.job.paths.result_pickle.exists() else "FAILED"
        return state.split()[0] if state else "UNKNOWN"

    def done(self) -> bool:
        try:
            return bool(self.job.done())
        except Exception:  # noqa: BLE001  # a vanished job folder reads as finished
            return True

    def _log_tail(self) -> str | None:
        parts = []
        for reader in (self.job.stdout, self.job.stderr):
            try:
                parts.append(reader() or "")
            except Exception:  # noqa: BLE001
                continue
        return tail("\n".join(p for p in parts if p))

    def outcome(self) -> Outcome:
        from submitit.core.utils import FailedJobError, UncompletedJobError

        try:
            result = self.job.result()
        except FailedJobError as exc:
            message = str(exc).strip().splitlines()
            reason = next((line for line in reversed(message) if line.strip()), "job failed")
            return Outcome("FAILED", reason=reason.strip(), log_tail=self._log_tail())
        except UncompletedJobError as exc:
            state = self.state()
            if state in ("RUNNING", "PENDING", "UNKNOWN", "FINISHED", "COMPLETED"):
                state = "INTERRUPTED"
            # submitit's message names the missing result pickle; say what it means instead
            reason = f"the job ended without returning a result (state {state}); killed?"
            return Outcome(state, reason=reason, log_tail=self._log_tail() or tail(str(exc)))
        return Outcome("COMPLETED", result=result)

    def cancel(self) -> None:
        try:
            self.job.cancel(check=False)
        except Exception as exc:  # noqa: BLE001
            raise JobError(f"could not cancel job {self.external_id}: {exc}") from exc


class LocalBackend(Backend):
    """Runs the task in a separate process on this machine through submitit."""

    name = "local"

    def submit(self, specs: Sequence[TaskSpec]) -> list[Handle]:
        import submitit

        executor = submitit.LocalExecutor(folder=self.folder / "%j")
        executor.update_parameters(timeout_min=int(self.params.get("timeout_min", 60)))
        # A Ctrl-C in the terminal reaches the whole process group. The job processes start
        # with SIGINT ignored, so that only this process sees it and stops them with SIGTERM
        # (see _LocalHandle.cancel), which the node task turns into a partial result.
        # submitit's job process imports numpy before it unpickles the task, so the thread
        # environment for the largest count is set here and inherited.
        counts = [s.max_threads for s in specs if s.max_threads]
        with _sigint_ignored(), _thread_environment(max(counts) if counts else None):
            jobs = executor.map_array(run_node_task, list(specs))
        return [_LocalHandle(spec, job) for spec, job in zip(specs, jobs, strict=True)]


class _LocalHandle(_SubmititHandle):
    def cancel(self) -> None:
        # submitit's cancel sends SIGINT to its controller, which kills the task a second
        # later; SIGTERM is forwarded to the task and gives it time to return what it has.
        process = getattr(self.job, "_process", None)
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)


@contextlib.contextmanager
def _thread_environment(threads: int | None) -> Iterator[None]:
    """Set the BLAS thread variables in ``os.environ`` for the processes started inside."""
    import os

    from jobs.task import THREAD_ENV

    if not threads:
        yield
        return
    saved = {name: os.environ.get(name) for name in THREAD_ENV}
    os.environ.update(dict.fromkeys(THREAD_ENV, str(threads)))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Children started inside inherit SIGINT ignored (Python then installs no handler)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# jobs.slurm builds on the classes above, hence the late import; it imports no submitit.
from jobs.slurm import SlurmBackend  # noqa: E402

BACKENDS: dict[str, type[Backend]] = {b.name: b for b in (DebugBackend, LocalBackend, SlurmBackend)}


def get_backend(name: str, folder: Path, **params: Any) -> Backend:
    """The backend called ``name``; an unknown name is a usage error listing the known ones."""
    try:
        cls = BACKENDS[name]
    except KeyError:
        raise UsageError(
            f"--executor: unknown executor {name!r}; accepted: {', '.join(BACKENDS)}"
        ) from None
    return cls(folder, **params)
