"""Node-type names: what a name may be, the default name for a CPU, and the check.

A node type name becomes a file name, a shell word, a Lua string and part of a Python
module name, so it is held to one small pattern everywhere it enters: the command line,
the cluster file, and every value read back from a database before it is rendered.
"""

from __future__ import annotations

import re

from profiler.errors import UsageError

__all__ = [
    "NAME_CHARS",
    "NODE_TYPE_RULE",
    "check_node_type",
    "default_node_type",
    "is_name",
    "is_node_type",
]

#: characters of a node-type name (not the first: '.', '_', '-')
NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789._-"
NODE_TYPE_RULE = (
    "1 to 64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit"
)


def is_name(value):
    """Whether the string ``value`` is a node-type name: the rule itself, in the plain
    Python the job-start form embeds (``profiler.jobstart.detect.JOB_START``)."""
    return (
        0 < len(value) <= 64 and value[0] not in "._-" and all(char in NAME_CHARS for char in value)
    )


def is_node_type(name: object) -> bool:
    """Whether ``name`` is a valid node type name."""
    return isinstance(name, str) and is_name(name)


def check_node_type(name: str, option: str = "--node-type") -> str:
    """``name`` if it is a valid node type name; else a UsageError naming ``option``."""
    if not is_node_type(name):
        raise UsageError(f"{option}: {name!r} is not a valid node type name; use {NODE_TYPE_RULE}")
    return name


def default_node_type(cpu_model: str, logical_cpus: int) -> str:
    """A node type named after the CPU: ``AMD EPYC 7763 64-Core Processor``, 128 CPUs ->
    ``amd-epyc-7763-64-core-processor-128c``. Only ``[a-z0-9._-]`` survives."""
    name = re.sub(r"\((r|tm)\)", "", cpu_model.lower())
    name = re.sub(r"[^a-z0-9.]+", "-", name).strip("-.")[:48].strip("-.") or "cpu"
    return f"{name}-{int(logical_cpus)}c"
