"""A task run through submitit, seen through the ``Handle`` surface: the local and Slurm
backends' common part. The state vocabulary is Slurm's (``jobs.states``), whatever the
executor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobs import states
from jobs.base import Outcome, tail
from profiler.errors import JobError

if TYPE_CHECKING:
    from jobs.task import TaskSpec

__all__ = ["SubmititHandle"]


class SubmititHandle:
    """A submitit job and the spec it runs."""

    def __init__(self, spec: TaskSpec, job: Any) -> None:
        self.spec = spec
        self.job = job
        self.external_id = str(job.job_id)

    def state(self) -> str:
        state = str(self.job.state).upper()
        if state == "FINISHED":
            return states.COMPLETED if self.job.paths.result_pickle.exists() else states.FAILED
        return state.split()[0] if state else states.UNKNOWN

    def done(self) -> bool:
        try:
            return bool(self.job.done())
        except Exception:  # noqa: BLE001  # a vanished job folder reads as finished
            return True

    def waiting_reason(self) -> str | None:
        return None

    def log_tail(self) -> str | None:
        """The end of the job's stdout and stderr, or None."""
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
            return Outcome(states.FAILED, reason=reason.strip(), log_tail=self.log_tail())
        except UncompletedJobError as exc:
            state = self.state()
            if state not in states.ENDED_WITHOUT_SUCCESS:
                state = states.INTERRUPTED
            # submitit's message names the missing result pickle; say what it means instead
            reason = f"the job ended without returning a result (state {state}); killed?"
            return Outcome(state, reason=reason, log_tail=self.log_tail() or tail(str(exc)))
        return Outcome(states.COMPLETED, result=result)

    def cancel(self) -> None:
        try:
            self.job.cancel(check=False)
        except Exception as exc:  # noqa: BLE001
            raise JobError(f"could not cancel job {self.external_id}: {exc}") from exc
