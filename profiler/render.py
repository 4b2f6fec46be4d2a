"""Preset renderers: sh, py, json and lua, found by format name, plus the dispatchers.

Every rendered preset applies the same rule at job start: threads per process = the
calibrated count for the chosen size class, capped by the job's CPUs divided by the number of
worker processes (``BLASPROF_WORKERS``, default 1). The job's CPUs are
``SLURM_CPUS_PER_TASK`` when Slurm sets it, else the CPUs the process may run on.
The sh form is POSIX sh; the py form imports only ``os`` and ``sys``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from profiler.budget import THREAD_VARIABLES

if TYPE_CHECKING:
    from profiler.preset import Preset

__all__ = [
    "FORMATS",
    "render",
    "render_dispatcher_sh",
    "render_dispatcher_py",
    "python_module_name",
    "file_name",
]


class NodeTypeMatch(NamedTuple):
    """How a dispatcher recognises a node type at job start."""

    name: str
    cpu_model: str
    logical_cpus: int
    partitions: tuple[str, ...] = ()


def python_module_name(node_type: str) -> str:
    """The importable module name of a node type's py preset."""
    return "blas_preset_" + re.sub(r"[^A-Za-z0-9_]", "_", node_type)


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _summary(preset: Preset) -> list[str]:
    lines = [f"blasprof preset for node type {preset.node_type!r}"]
    origin = f"calibration {preset.calibration_id}" if preset.calibration_id else "calibration"
    lines.append(
        f"from {origin} {preset.created_at} on {preset.calibrated_cpus} CPUs"
        + (f" ({preset.cpu_model})" if preset.cpu_model else "")
        + (f", {preset.blas}" if preset.blas else "")
    )
    for c in preset.size_classes:
        bound = f"n <= {c.max_n}" if c.max_n else "larger"
        lines.append(
            f"  {c.name:>6} ({bound}): {c.threads} threads "
            f"({c.gflops:.1f} GFLOP/s; best {c.best_threads} at {c.best_gflops:.1f})"
        )
    lines.append(f"default size class: {preset.default_class}; tolerance {preset.tolerance:.0%}")
    return lines


def _sh_rule(fallback_cpus: int) -> str:
    """POSIX sh that sets ``_bp_threads`` from ``_bp_best``: the one rule every preset applies.

    Counts from the environment are taken only as plain decimal integers of 1 to 5 digits
    (leading zeros dropped: dash reads "08" as bad octal and ends the sourcing shell);
    anything else falls back with a warning, never an error, since it runs in a job.
    """
    return f"""\
_bp_count() {{  # $1 as a positive integer without leading zeros, or fail
    case "$1" in ''|*[!0-9]*) return 1 ;; esac
    set -- "${{1#"${{1%%[!0]*}}"}}"
    case "$1" in ''|??????*) return 1 ;; esac
    echo "$1"
}}
_bp_cpus=$(_bp_count "${{SLURM_CPUS_PER_TASK:-}}") \\
    || _bp_cpus=$(_bp_count "$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null)") \\
    || _bp_cpus={fallback_cpus}
_bp_workers=$(_bp_count "${{BLASPROF_WORKERS:-1}}") || {{
    echo "blasprof preset: BLASPROF_WORKERS=$BLASPROF_WORKERS is not a positive integer; using 1" >&2
    _bp_workers=1
}}
_bp_threads=$((_bp_cpus / _bp_workers))
[ "$_bp_threads" -ge 1 ] || _bp_threads=1
[ "$_bp_threads" -le "$_bp_best" ] || _bp_threads=$_bp_best"""


def render_sh(preset: Preset) -> str:
    """A POSIX sh fragment to source: exports the thread variables for this job."""
    header = "\n".join("# " + line for line in _summary(preset))
    cases = "\n".join(f"    {c.name}) _bp_best={c.threads} ;;" for c in preset.size_classes)
    names = " ".join(c.name for c in preset.size_classes)
    exports = "\n".join(f'export {v}="$_bp_threads"' for v in THREAD_VARIABLES)
    return f"""\
# shellcheck shell=sh
{header}
#
# Use:  . ./{file_name(preset.node_type, "sh")}
# Set before sourcing: BLASPROF_WORKERS=N (processes sharing the job's CPUs, default 1),
# BLASPROF_SIZE_CLASS=<{names.replace(" ", "|")}> (default {preset.default_class}).
_bp_class=${{BLASPROF_SIZE_CLASS:-{preset.default_class}}}
case "$_bp_class" in
{cases}
    *) echo "blasprof preset: unknown BLASPROF_SIZE_CLASS=$_bp_class (accepted: {names}); using {preset.default_class}" >&2
       _bp_best={preset.default_threads} ;;
esac
{_sh_rule(preset.calibrated_cpus)}
{exports}
export BLASPROF_NODE_TYPE={_sh_quote(preset.node_type)}
export BLASPROF_PRESET_THREADS="$_bp_threads"
unset _bp_class _bp_best _bp_cpus _bp_workers _bp_threads
unset -f _bp_count
"""


_PY_RULES = '''
import os as _os
import sys as _sys

VARIABLES = {variables!r}


def _count(value):
    """A positive integer of 1 to 5 plain digits (as the sh preset reads it), or None."""
    digits = value.lstrip("0")
    if value.isascii() and value.isdigit() and 1 <= len(digits) <= 5:
        return int(digits)
    return None


def _job_cpus():
    cpus = _count(_os.environ.get("SLURM_CPUS_PER_TASK", ""))
    if cpus:
        return cpus
    try:
        return len(_os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return _os.cpu_count() or 1


def _positive(name, default):
    value = _os.environ.get(name, "")
    if not value:
        return default
    count = _count(value)
    if count:
        return count
    print("blasprof preset: %s=%s is not a positive integer; using %s" % (name, value, default),
          file=_sys.stderr)
    return default


def threads(workers=None, size_class=None, cpus=None):
    """Threads per process for ``workers`` processes sharing ``cpus`` CPUs."""
    size_class = size_class or _os.environ.get("BLASPROF_SIZE_CLASS") or DEFAULT_CLASS
    if size_class not in THREADS:
        print("blasprof preset: unknown size class %r (accepted: %s); using %s"
              % (size_class, " ".join(THREADS), DEFAULT_CLASS), file=_sys.stderr)
        size_class = DEFAULT_CLASS
    workers = workers or _positive("BLASPROF_WORKERS", 1)
    cpus = cpus or _job_cpus()
    return max(1, min(THREADS[size_class], cpus // workers))


def apply(workers=None, size_class=None):
    """Export the thread variables; returns them. Call before numpy is imported."""
    if "numpy" in _sys.modules:
        print("blasprof preset: numpy was imported before the preset; OpenBLAS has already "
              "read its thread count (import the preset first)", file=_sys.stderr)
    count = str(threads(workers, size_class))
    env = dict.fromkeys(VARIABLES, count)
    if NODE_TYPE:
        env["BLASPROF_NODE_TYPE"] = NODE_TYPE
    env["BLASPROF_PRESET_THREADS"] = count
    _os.environ.update(env)
    return env
'''


def render_py(preset: Preset) -> str:
    """A dependency-free Python module; importing it sets the thread variables."""
    header = "\n".join(_summary(preset))
    threads = {c.name: c.threads for c in preset.size_classes}
    body = (
        f'"""{header}\n\nImport before numpy: ``import {python_module_name(preset.node_type)}``.\n"""\n'
        f"NODE_TYPE = {preset.node_type!r}\n"
        f"THREADS = {threads!r}\n"
        f"DEFAULT_CLASS = {preset.default_class!r}\n"
        f"CALIBRATED_CPUS = {preset.calibrated_cpus!r}\n"
        + _PY_RULES.format(variables=THREAD_VARIABLES)
        + "\napply()\n"
    )
    return body


def render_json(preset: Preset) -> str:
    """The preset record as JSON, with the variables it sets and the rule it applies."""
    import json

    doc = preset.to_dict()
    doc["variables"] = list(THREAD_VARIABLES)
    doc["rule"] = (
        "threads = min(size_classes[BLASPROF_SIZE_CLASS or default_class].threads, "
        "job_cpus // BLASPROF_WORKERS), at least 1; job_cpus = SLURM_CPUS_PER_TASK or "
        "the CPUs the process may run on"
    )
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def render_lua(preset: Preset) -> str:
    """An Lmod modulefile that sets the thread variables when loaded."""
    header = "\n".join("-- " + line for line in _summary(preset))
    table = ", ".join(f'["{c.name}"] = {c.threads}' for c in preset.size_classes)
    sets = "\n".join(f'setenv("{v}", tostring(threads))' for v in THREAD_VARIABLES)
    return f"""\
{header}
whatis("blasprof BLAS thread preset for node type {preset.node_type}")
local classes = {{ {table} }}
local class = os.getenv("BLASPROF_SIZE_CLASS") or "{preset.default_class}"
local best = classes[class] or classes["{preset.default_class}"]
local cpus = tonumber(os.getenv("SLURM_CPUS_PER_TASK") or "") or {preset.calibrated_cpus}
local workers = tonumber(os.getenv("BLASPROF_WORKERS") or "") or 1
if workers < 1 then workers = 1 end
local share = math.max(1, math.floor(cpus / workers))
local threads = math.max(1, math.min(best, share))
{sets}
setenv("BLASPROF_NODE_TYPE", "{preset.node_type}")
setenv("BLASPROF_PRESET_THREADS", tostring(threads))
"""


FORMATS: dict[str, Callable[[Preset], str]] = {
    "sh": render_sh,
    "py": render_py,
    "json": render_json,
    "lua": render_lua,
}


def render(preset: Preset, fmt: str) -> str:
    """Render ``preset`` in format ``fmt`` (one of FORMATS)."""
    return FORMATS[fmt](preset)


def file_name(node_type: str, fmt: str) -> str:
    """The file a node type's preset is written to in the presets directory."""
    if fmt == "py":
        return python_module_name(node_type) + ".py"
    return f"{node_type}.{fmt}"


def render_dispatcher_sh(directory: str, matches: Sequence[NodeTypeMatch]) -> str:
    """``blasprof.sh``: finds this node's type, then sources that type's preset."""
    partitions = "\n".join(
        f"        {_sh_quote(p)}) _bp_type={m.name} ;;" for m in matches for p in m.partitions
    )
    models = "\n".join(
        f"        {_sh_quote(f'{m.cpu_model}|{m.logical_cpus}')}) _bp_type={m.name} ;;"
        for m in matches
    )
    known = " ".join(m.name for m in matches)
    return f"""\
# shellcheck shell=sh
# blasprof dispatcher: source it from a job script.   . {directory}/blasprof.sh
# Node type: $BLASPROF_NODE_TYPE if set, else the Slurm partition, else the CPU model and count.
# Known node types: {known}
_bp_dir={_sh_quote(directory)}
_bp_type=${{BLASPROF_NODE_TYPE:-}}
case "$_bp_type" in
    *[!a-z0-9._-]*|[._-]*) echo "blasprof: BLASPROF_NODE_TYPE=$_bp_type is not a node type name; ignored" >&2
       _bp_type= ;;
esac
if [ -z "$_bp_type" ] && [ -n "${{SLURM_JOB_PARTITION:-}}" ]; then
    case "$SLURM_JOB_PARTITION" in
{partitions}
        *) ;;
    esac
fi
if [ -z "$_bp_type" ]; then
    _bp_model=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n 1)
    _bp_ncpu=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 0)
    case "$_bp_model|$_bp_ncpu" in
{models}
        *) ;;
    esac
fi
if [ -n "$_bp_type" ] && [ -f "$_bp_dir/$_bp_type.sh" ]; then
    . "$_bp_dir/$_bp_type.sh"
else
    echo "blasprof: no preset for this node (type '${{_bp_type:-unknown}}'; known: {known}); using one thread per CPU share" >&2
    _bp_best=99999
{_sh_rule(1)}
{chr(10).join(f'    export {v}="$_bp_threads"' for v in THREAD_VARIABLES)}
    unset _bp_best _bp_cpus _bp_workers _bp_threads
    unset -f _bp_count
fi
unset _bp_dir _bp_type _bp_model _bp_ncpu
"""


def render_dispatcher_py(matches: Sequence[NodeTypeMatch]) -> str:
    """``blas_preset.py``: the Python twin of the sh dispatcher."""
    table = {m.name: (m.cpu_model, m.logical_cpus, list(m.partitions)) for m in matches}
    modules = {m.name: python_module_name(m.name) for m in matches}
    rules = _PY_RULES.format(variables=THREAD_VARIABLES)
    return f'''"""blasprof dispatcher: ``import blas_preset`` before numpy sets the BLAS thread variables.

Node type: $BLASPROF_NODE_TYPE if set, else the Slurm partition, else the CPU model and count.
"""
import importlib as _importlib
import os as _os
import sys as _sys

NODE_TYPES = {table!r}
MODULES = {modules!r}
# The rule for a node without a preset: one thread per CPU share.
THREADS = {{"all": 99999}}
DEFAULT_CLASS = "all"
{rules}


def detect():
    """The node type of this machine, or None."""
    name = _os.environ.get("BLASPROF_NODE_TYPE")
    if name:
        return name
    partition = _os.environ.get("SLURM_JOB_PARTITION")
    for name, (_model, _cpus, partitions) in NODE_TYPES.items():
        if partition and partition in partitions:
            return name
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    for name, (cpu_model, cpus, _partitions) in NODE_TYPES.items():
        if cpu_model == model and cpus == (_os.cpu_count() or 0):
            return name
    return None


NODE_TYPE = detect()
if NODE_TYPE in MODULES:
    preset = _importlib.import_module(MODULES[NODE_TYPE])
else:
    print("blasprof: no preset for this node (type %r; known: %s); using one thread per CPU"
          " share" % (NODE_TYPE, ", ".join(NODE_TYPES)), file=_sys.stderr)
    preset = None
    apply(size_class="all")
'''
