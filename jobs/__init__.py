"""Everything submitit: executors, the node task, waiting and collecting.

``jobs.registry`` finds an executor by name; ``jobs.base`` says what every executor is;
``jobs.task`` is what runs on the node; ``jobs.cluster`` reads the cluster file. The names
below are loaded on first use, so that ``import jobs.registry`` (for ``--help``) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "BACKENDS",
    "Backend",
    "Handle",
    "Outcome",
    "TaskSpec",
    "choose",
    "get_backend",
    "read_checkpoint",
    "recovered_result",
    "run_node_task",
]

_HOME = {
    "BACKENDS": "jobs.registry",
    "Backend": "jobs.base",
    "Handle": "jobs.base",
    "Outcome": "jobs.base",
    "TaskSpec": "jobs.task",
    "choose": "jobs.registry",
    "get_backend": "jobs.registry",
    "read_checkpoint": "jobs.checkpoint",
    "recovered_result": "jobs.task",
    "run_node_task": "jobs.task",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'jobs' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)
