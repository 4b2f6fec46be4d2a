"""The cluster file: which node types a Slurm cluster has and how to ask for each of them.

A TOML file, checked once when it is loaded into frozen dataclasses::

    [slurm]
    folder = "/shared/blasprof/jobs"   # submitit job folders; compute nodes must see it
    max_array_size = 1001              # default: MaxArraySize from `scontrol show config`

    [defaults]                         # optional: settings every node type starts from
    account = "hpc-staff"

    [node_types.epyc-7763]
    partition = "compute"              # required
    constraint = "epyc7763"            # optional: Slurm features expression
    time_limit_min = 30

Every mistake (an unknown key, a missing partition, a bad value) is a ``UsageError`` whose
one line names the file, the key, what was given and what is accepted.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from profiler.errors import UsageError
from profiler.names import NODE_TYPE_RULE, is_node_type

__all__ = ["NodeType", "Cluster", "load_cluster", "parse_cluster"]

# Every pattern is applied with fullmatch: "$" would let a trailing newline through.
_SLURM_WORD_RE = re.compile(r"[A-Za-z0-9._,:\[\]-]+")
_MEM_RE = re.compile(r"[0-9]+[KMGT]?")
_SBATCH_RE = re.compile(r"--([a-z][a-z0-9-]*)(?:=([^\n]+))?")
# Options blasprof sets itself, or that the cluster file has a key for: a line must not
# fight them.
_RESERVED_SBATCH = frozenset(
    {
        "array", "output", "error", "job-name", "open-mode", "signal", "wrap", "parsable",
        "partition", "time", "cpus-per-task", "ntasks", "ntasks-per-node", "nodes",
        "exclusive", "mem", "constraint", "nodelist", "account", "qos",
    }
)  # fmt: skip
#: upper bounds that catch typos (a time limit of years, a million CPUs)
_MAX_CPUS = 100_000
_MAX_MINUTES = 366 * 24 * 60


@dataclass(frozen=True)
class NodeType:
    """How to reach one kind of node and what each of its calibration jobs asks for."""

    name: str
    partition: str
    constraint: str | None = None
    nodelist: str | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    time_limit_min: int = 60
    account: str | None = None
    qos: str | None = None
    exclusive: bool = True
    nodes: int = 1
    sbatch: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()

    def executor_parameters(self) -> dict[str, Any]:
        """Keyword arguments for ``submitit.SlurmExecutor.update_parameters``."""
        params: dict[str, Any] = {
            "partition": self.partition,
            "time": self.time_limit_min,
            "exclusive": True if self.exclusive else None,
        }
        for name in ("constraint", "nodelist", "cpus_per_task", "mem", "account", "qos"):
            value = getattr(self, name)
            if value is not None:
                params[name] = value
        extra: dict[str, Any] = {}
        for line in self.sbatch:
            match = _SBATCH_RE.fullmatch(line)
            assert match is not None  # checked on load
            extra[match.group(1)] = True if match.group(2) is None else match.group(2)
        if extra:
            params["additional_parameters"] = extra
        if self.setup:
            params["setup"] = list(self.setup)
        return {k: v for k, v in params.items() if v is not None}


@dataclass(frozen=True)
class Cluster:
    """A cluster file, loaded and checked."""

    path: Path
    node_types: Mapping[str, NodeType]
    folder: Path | None = None
    max_array_size: int | None = None

    def node_type(self, name: str) -> NodeType:
        """The node type called ``name``; an unknown one is a usage error listing the known."""
        try:
            return self.node_types[name]
        except KeyError:
            raise UsageError(
                f"--node-type: {name!r} is not in {self.path}; "
                f"accepted: {', '.join(self.node_types) or '(none defined)'}"
            ) from None


# key -> (checker, what is accepted); the defaults come from NodeType itself.
def _str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and "\n" not in value


def _name(value: Any) -> bool:
    """An account or QOS name: one word that needs no quoting."""
    return isinstance(value, str) and bool(re.fullmatch(r"[A-Za-z0-9._@-]{1,128}", value))


def _slurm_word(value: Any) -> bool:
    return isinstance(value, str) and bool(_SLURM_WORD_RE.fullmatch(value))


def _positive_int(value: Any, most: int = 10**9) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= most


def _mem(value: Any) -> bool:
    return isinstance(value, str) and bool(_MEM_RE.fullmatch(value))


def _sbatch_lines(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, str)
        and (m := _SBATCH_RE.fullmatch(v)) is not None
        and m.group(1) not in _RESERVED_SBATCH
        for v in value
    )


def _setup_lines(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and "\n" not in v for v in value)


_NODE_KEYS: dict[str, tuple[Any, str]] = {
    "partition": (_slurm_word, "a Slurm partition name (or a comma-separated list)"),
    "constraint": (_str, "a Slurm features expression, e.g. 'epyc&ib'"),
    "nodelist": (_slurm_word, "a Slurm node list, e.g. 'node[01-04]'"),
    "cpus_per_task": (
        lambda v: _positive_int(v, _MAX_CPUS),
        f"an integer from 1 to {_MAX_CPUS:,}",
    ),
    "mem": (_mem, "a Slurm memory size such as '4G', '4000M' or '0' (all of the node's)"),
    "time_limit_min": (
        lambda v: _positive_int(v, _MAX_MINUTES),
        f"an integer from 1 to {_MAX_MINUTES:,} (minutes)",
    ),
    "account": (_name, "a Slurm account name (letters, digits, '.', '_', '@', '-')"),
    "qos": (_name, "a Slurm QOS name (letters, digits, '.', '_', '@', '-')"),
    "exclusive": (lambda v: isinstance(v, bool), "true or false"),
    "nodes": (
        lambda v: _positive_int(v, 10_000),
        "an integer from 1 to 10,000 (nodes of this type to calibrate)",
    ),
    "sbatch": (
        _sbatch_lines,
        "a list of sbatch options such as ['--reservation=maint', '--hint=nomultithread'], "
        f"not {', '.join('--' + o for o in sorted(_RESERVED_SBATCH))}",
    ),
    "setup": (_setup_lines, "a list of shell lines run before the task, e.g. ['module load x']"),
}
_SLURM_KEYS: dict[str, tuple[Any, str]] = {
    "folder": (_str, "an absolute path on a filesystem the compute nodes share"),
    "max_array_size": (_positive_int, "an integer >= 1"),
}
_TOP_KEYS = ("slurm", "defaults", "node_types")


def _node_keys_text() -> str:
    """The node type keys with their defaults, for the unknown-key message."""
    defaults = {f.name: f.default for f in fields(NodeType)}
    return ", ".join(k if defaults[k] is MISSING else f"{k}={defaults[k]!r}" for k in _NODE_KEYS)


def _check_table(where: str, table: Any, keys: Mapping[str, tuple[Any, str]], path: Path) -> None:
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [{where}] must be a table, got {table!r}")
    for key, value in table.items():
        if key not in keys:
            accepted = _node_keys_text() if keys is _NODE_KEYS else ", ".join(keys)
            raise UsageError(f"{path}: [{where}] unknown key {key!r}; accepted: {accepted}")
        check, accepted = keys[key]
        if not check(value):
            raise UsageError(f"{path}: [{where}] {key} = {value!r} is not valid; use {accepted}")


def parse_cluster(data: Mapping[str, Any], path: Path) -> Cluster:
    """Check a parsed cluster file; ``path`` is only used in messages and kept on the result."""
    for key in data:
        if key not in _TOP_KEYS:
            raise UsageError(
                f"{path}: unknown top-level key {key!r}; accepted: "
                + ", ".join(f"[{k}]" for k in _TOP_KEYS)
            )
    slurm = data.get("slurm", {})
    _check_table("slurm", slurm, _SLURM_KEYS, path)
    folder = None
    if "folder" in slurm:
        folder = Path(slurm["folder"]).expanduser()
        if not folder.is_absolute():
            raise UsageError(
                f"{path}: [slurm] folder = {slurm['folder']!r} is not valid; use "
                + _SLURM_KEYS["folder"][1]
            )
    defaults = data.get("defaults", {})
    _check_table("defaults", defaults, _NODE_KEYS, path)
    table = data.get("node_types")
    if not isinstance(table, dict) or not table:
        raise UsageError(
            f"{path}: no [node_types.NAME] table; define at least one, e.g. "
            '[node_types.typea] with partition = "typea"'
        )
    node_types: dict[str, NodeType] = {}
    for name, settings in table.items():
        if not is_node_type(name):
            raise UsageError(
                f"{path}: [node_types.{name!r}] is not a valid node type name; use {NODE_TYPE_RULE}"
            )
        where = f"node_types.{name}"
        _check_table(where, settings, _NODE_KEYS, path)
        merged = {**defaults, **settings}
        if "partition" not in merged:
            raise UsageError(
                f"{path}: [{where}] missing key 'partition'; every node type needs "
                f"{_NODE_KEYS['partition'][1]} (in its table or in [defaults])"
            )
        for key in ("sbatch", "setup"):
            if key in merged:
                merged[key] = tuple(merged[key])
        node_types[name] = NodeType(name=name, **merged)
    return Cluster(
        path=path,
        node_types=node_types,
        folder=folder,
        max_array_size=slurm.get("max_array_size"),
    )


def load_cluster(path: str | Path) -> Cluster:
    """Read and check a cluster file (``--cluster FILE``)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"--cluster: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--cluster: {path} is not a UTF-8 text file (TOML)") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses once per level of nesting
        raise UsageError(f"{path}: not a cluster file: its TOML is nested too deeply") from None
    return parse_cluster(data, path)
