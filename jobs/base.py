"""What every executor is: a ``Backend`` that submits node tasks and the ``Handle``s it returns.

A backend submits ``TaskSpec``s and hands back one ``Handle`` per task, each with the same
small surface (``external_id``, ``state()``, ``done()``, ``outcome()``, ``cancel()``,
``waiting_reason()``). What a backend can do beyond submitting is a method here with a
default that says it cannot: whether it can be used on this machine (``unavailable``),
list the nodes of a type (``nodes``), find a job again from another process
(``reattach``), say whether an orphaned local job still runs (``running``), and ask about
many jobs at once (``poll``). Callers ask the backend, never
its name. The registry (``jobs.registry``) finds a backend by name.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from profiler.errors import UsageError

if TYPE_CHECKING:
    from jobs.cluster import Cluster, NodeType
    from jobs.task import TaskSpec

__all__ = ["Backend", "Handle", "Outcome", "tail"]


@dataclass(frozen=True)
class Outcome:
    """How a task ended: its result dict, or the state, the reason and the log's tail."""

    state: str
    result: dict[str, Any] | None = None
    reason: str | None = None
    log_tail: str | None = None


class Handle(Protocol):
    """One submitted task."""

    spec: TaskSpec
    external_id: str

    def state(self) -> str: ...
    def done(self) -> bool: ...
    def outcome(self) -> Outcome: ...
    def cancel(self) -> None: ...
    def waiting_reason(self) -> str | None: ...


def tail(text: str | None, lines: int = 20) -> str | None:
    """The last ``lines`` lines of a log, or None when there is nothing."""
    if not text:
        return None
    return "\n".join(text.rstrip().splitlines()[-lines:])


class Backend(abc.ABC):
    """Submits node tasks somewhere and says what else it can do.

    ``batch`` backends run tasks on other nodes as jobs that outlive this process: they
    take their node types from a cluster file, Ctrl-C stops the waiting rather than the
    jobs, and another process can find the jobs again. The others calibrate this machine
    and stop their tasks on Ctrl-C.
    """

    name: ClassVar[str]
    #: one line for ``--executor``'s help
    summary: ClassVar[str]
    batch: ClassVar[bool] = False

    def __init__(self, folder: Path, *, cluster: Cluster | None = None) -> None:
        self.folder = Path(folder)
        self.cluster = cluster

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this backend cannot be used on this machine, or None when it can."""
        return None

    @abc.abstractmethod
    def submit(self, specs: Sequence[TaskSpec]) -> list[Handle]:
        """Start one job per spec; the handles come back in the specs' order."""

    def reattach(self, external_id: str) -> Handle | None:
        """A handle on a job submitted earlier, from another process; None if impossible."""
        return None

    def running(self, external_id: str) -> bool:
        """Whether a job on this machine, submitted by a process now gone, still runs (a
        task in that process's own threads ended with it)."""
        return False

    def nodes(self, node_type: NodeType) -> list[str]:
        """The hosts of ``node_type`` that can take a job now."""
        raise UsageError(f"--all-nodes: the {self.name} executor has no nodes to list")

    def poll(self, handles: Sequence[Handle]) -> list[str]:
        """The state of each handle, asking the batch system as few times as it can."""
        return [h.state() for h in handles]
