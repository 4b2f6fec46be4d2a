"""Everything submitit: executors, the node task, waiting and collecting."""

from jobs.executors import BACKENDS, Backend, Handle, Outcome, get_backend
from jobs.task import TaskSpec, read_checkpoint, run_node_task

__all__ = [
    "BACKENDS",
    "Backend",
    "Handle",
    "Outcome",
    "TaskSpec",
    "get_backend",
    "read_checkpoint",
    "run_node_task",
]
