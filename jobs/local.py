"""The backends that calibrate this machine: ``debug`` (a thread of this process) and
``local`` (a separate process started through submitit's LocalExecutor)."""

from __future__ import annotations

import contextlib
import signal
import threading
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from jobs import states
from jobs.base import Backend, Handle, Outcome, tail
from jobs.owner import Owner, process_running
from jobs.submitit_job import SubmititHandle
from jobs.task import TaskSpec, run_node_task
from profiler.jobstart.budget import exported

__all__ = ["DebugBackend", "LocalBackend"]


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
            return states.RUNNING
        return states.FAILED if self._error else states.COMPLETED

    def done(self) -> bool:
        return not self._thread.is_alive()

    def waiting_reason(self) -> str | None:
        return None

    def outcome(self) -> Outcome:
        self._thread.join()
        if self._error:
            last = self._error.strip().splitlines()[-1]
            return Outcome(states.FAILED, reason=last, log_tail=tail(self._error))
        return Outcome(states.COMPLETED, result=self._result)

    def cancel(self) -> None:
        if self.spec.stop_event is not None:
            self.spec.stop_event.set()


class DebugBackend(Backend):
    """Runs the task in a thread of this process: no pickling, easiest to debug."""

    name = "debug"
    summary = "debug (this process)"

    def submit(self, specs: Sequence[TaskSpec]) -> list[Handle]:
        return [
            _ThreadHandle(replace(spec, stop_event=threading.Event()), i)
            for i, spec in enumerate(specs)
        ]


class _LocalHandle(SubmititHandle):
    def cancel(self) -> None:
        # submitit's cancel sends SIGINT to its controller, which kills the task a second
        # later; SIGTERM is forwarded to the task and gives it time to return what it has.
        process = getattr(self.job, "_process", None)
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)


class LocalBackend(Backend):
    """Runs the task in a separate process on this machine through submitit."""

    name = "local"
    summary = "local (a separate process)"
    timeout_min = 60

    def submit(self, specs: Sequence[TaskSpec]) -> list[Handle]:
        import submitit

        executor = submitit.LocalExecutor(folder=self.folder / "%j")
        executor.update_parameters(timeout_min=self.timeout_min)
        # A Ctrl-C in the terminal reaches the whole process group. The job processes start
        # with SIGINT ignored, so that only this process sees it and stops them with SIGTERM
        # (see _LocalHandle.cancel), which the node task turns into a partial result.
        # submitit's job process imports numpy before it unpickles the task, so the thread
        # environment for the largest count is set here and inherited.
        # Each task watches this process: killed outright (SIGKILL), it cannot stop them, and
        # nobody would store what they measure after it.
        owner = tuple(Owner.current())
        specs = [replace(spec, watch=owner) for spec in specs]
        counts = [s.max_threads for s in specs if s.max_threads]
        with _sigint_ignored(), exported(max(counts) if counts else None):
            jobs = executor.map_array(run_node_task, list(specs))
        return [_LocalHandle(spec, job) for spec, job in zip(specs, jobs, strict=True)]

    def running(self, external_id: str) -> bool:
        """Whether the job ``external_id`` (its controller's pid) still runs on this host."""
        return external_id.isdigit() and process_running(int(external_id), str(self.folder))


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
