"""The job's CPU budget: the one rule that decides a process's BLAS threads at job start.

Every part of blasprof applies it: the node task before it loads numpy, the executors that
start it, ``blasprof env``/``run``, and every preset form (sh, csh, Python, Lmod)::

    threads = max(1, min(calibrated(size class, workers), share))
    share   = min(job CPUs // workers, CPUs this process may use, SLURM_CPUS_PER_TASK)

- CPUs this process may use: its affinity mask, capped by its cgroup's CPU quota. Never
  ``nproc``, which obeys the very variables a preset sets. ``BLASPROF_CPUS`` replaces the
  detection where a container hides its limits.
- job CPUs (shared by the job's processes on this node): ``BLASPROF_CPUS``, else
  ``SLURM_CPUS_ON_NODE``, else the CPUs this process may use.
- workers (processes sharing them): the launcher's count of this node's processes
  (``LAUNCHERS``), else ``BLASPROF_WORKERS``, else 1. A count given to ``plan`` (``blasprof
  env/run --workers N``, ``threads(workers=N)``) is the processes each of those runs: N
  times the launcher's count.
- calibrated: the row of the preset's layout table with the most workers not above
  ``workers``. A node without a preset gets one thread per physical core of its CPUs,
  shared by the workers, and is told so.
- libraries: a preset holds the layout table of its default BLAS (numpy's) and, for each
  other calibrated library, a count per size class and the variables it obeys, strongest
  first. Each library's threads = max(1, min(its class's count, share)).
- variables: every one of ``THREAD_VARIABLES`` gets a count, except those set before the
  preset (kept unless ``BLASPROF_OVERRIDE=1``). A variable gets the default library's count
  when that library obeys it first (or no library does); else the smallest count of the
  libraries that obey it first: ``BLIS_NUM_THREADS`` is BLIS's, ``MKL_NUM_THREADS`` MKL's,
  and the shared ``OMP_NUM_THREADS`` that of an OpenMP OpenBLAS (which obeys nothing else),
  else the default's. ``OMP_THREAD_LIMIT`` is never set (it hangs an OpenMP OpenBLAS).
  While a kept one is read by a calibrated library, no other variable that library reads
  is set, since it could override the user's choice.
  A value that is no count (``abc``, ``0``, ``0x2``) is no choice: it is replaced, with a
  note. ``BLASPROF_PRESET`` (type:class:threads, then ``:label=threads`` for every library
  when the preset has others than the default) and ``BLASPROF_PRESET_SET`` (the variables
  given a count) record what was applied, so that loading again recognises its own values.

Counts read from the environment are plain decimal integers of 1 to 5 digits (leading
zeros dropped); anything else is ignored, with a message where the user set it. A preset
never stops a job.

The functions in ``JOB_START`` use nothing but ``os`` and the constants above them: the
Python preset embeds their source, so ``import blas_preset`` runs this very code. The sh
form (``profiler.jobstart.forms.sh``) is the second engine, written from the same constants; the
csh form, the Slurm TaskProlog and the Lmod modulefile apply what it prints. One test runs
every form in its real interpreter against ``plan``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator, Mapping

from profiler.jobstart.cpus import (
    BAD_COUNT,
    cores_here,
    launcher_workers,
    parse_count,
    usable_here,
)
from profiler.jobstart.cpus import JOB_START as _CPUS_START

__all__ = [
    "BLAS_VARIABLES",
    "DEFAULT_OBEYED",
    "FREE_VARIABLES",
    "JOB_START",
    "THREAD_VARIABLES",
    "WATCHED_VARIABLES",
    "calibrated_for",
    "exported",
    "job_cpus",
    "obeyed_variables",
    "plan",
    "thread_environment",
]

#: every variable through which a BLAS or OpenMP runtime takes its thread count
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
#: variables a BLAS reads that a preset never sets, but whose user setting it respects
WATCHED_VARIABLES = ("GOTO_NUM_THREADS", "MKL_DOMAIN_NUM_THREADS")
#: the one watched variable whose value is not a thread count (MKL's ``MKL_BLAS=2,...``)
FREE_VARIABLES = ("MKL_DOMAIN_NUM_THREADS",)

#: what each BLAS (threadpoolctl's internal_api) reads for its thread count
BLAS_VARIABLES = {
    "openblas": ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"),
    "mkl": ("MKL_NUM_THREADS", "MKL_DOMAIN_NUM_THREADS", "OMP_NUM_THREADS"),
    "blis": ("BLIS_NUM_THREADS", "OMP_NUM_THREADS"),
    "flexiblas": ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS", "OMP_NUM_THREADS"),
}
#: when the calibrated BLAS is not known: what any common BLAS may read
DEFAULT_OBEYED = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS", "OMP_NUM_THREADS")


# -- the job-start functions: os and the constants above only; embedded in the py preset --


def plan(env, presets, node_type, workers=None, size_class=None, usable=None, cores=None):
    """What loading a preset does in environment ``env``: a dict with ``threads``,
    ``set`` (name -> value), ``unset``, ``kept`` (names), ``notes`` (one line each),
    ``libraries`` (label -> the threads each will run; empty for a preset of one), and the
    ``node_type``, ``size_class``, ``workers`` it used.

    ``presets`` maps node types to ``{"default": class, "classes": {class: ((workers,
    threads), ...)}, "obeyed": (variables,), "blas": label, "libraries": ((label,
    (variables,), {class: threads}), ...)}`` (the last two may be absent); ``usable`` and
    ``cores`` replace what this machine says (for tests); ``size_class`` replaces the
    environment's.

    ``workers`` (``--workers``, ``threads(workers=)``): the processes this process runs that
    share its CPUs. Under a launcher each of its tasks on this node runs that many, so the
    processes sharing the job's CPUs are ``workers`` times the launcher's count; without
    one, ``workers`` replaces ``BLASPROF_WORKERS``.
    """
    notes = []
    launched, source = launcher_workers(env)
    if workers is not None:
        workers, source = max(1, workers) * (launched or 1), "argument"
    else:
        workers = launched
    if workers is None:
        workers, source = parse_count(env.get("BLASPROF_WORKERS", "")), "BLASPROF_WORKERS"
        if workers is None:
            if env.get("BLASPROF_WORKERS", ""):
                notes.append("BLASPROF_WORKERS " + BAD_COUNT + "; using 1")
            workers, source = 1, "default"
    declared = parse_count(env.get("BLASPROF_CPUS", ""))
    if declared is None and env.get("BLASPROF_CPUS", ""):
        notes.append("BLASPROF_CPUS " + BAD_COUNT + "; ignored")
    usable = declared or (usable_here() if usable is None else usable)
    job = declared or parse_count(env.get("SLURM_CPUS_ON_NODE", "")) or usable
    share = min(job // workers, usable, parse_count(env.get("SLURM_CPUS_PER_TASK", "")) or usable)
    entry = presets.get(node_type) if node_type else None
    if entry is not None:
        classes = entry["classes"]
        size_class = size_class or env.get("BLASPROF_SIZE_CLASS", "")
        if size_class not in classes:
            if size_class:
                known = " ".join(classes)
                notes.append(
                    f"BLASPROF_SIZE_CLASS is not one of: {known}; using {entry['default']}"
                )
            size_class = entry["default"]
        calibrated = calibrated_for(classes[size_class], workers)
        obeyed = entry["obeyed"]
        libraries = entry.get("libraries", ())
    else:
        size_class = "-"
        cores = min(cores_here() if cores is None else cores, usable)
        calibrated = max(1, cores // workers)
        obeyed = DEFAULT_OBEYED
        libraries = ()
    threads = max(1, min(calibrated, share))
    libs = [(lib[0], max(1, min(lib[2][size_class], share)), tuple(lib[1])) for lib in libraries]
    # what each library will run: the count its strongest variable gets
    owners = {}
    for _, n, names in libs:
        if names and n < owners.get(names[0], n + 1):
            owners[names[0]] = n
    if obeyed:
        owners[obeyed[0]] = threads
    libs = [(label, owners[names[0]] if names else n, names) for label, n, names in libs]
    if entry is None:
        which = "node type " + node_type if node_type else "this node"
        known = " ".join(presets) or "none"
        notes.append(
            f"no preset for {which} (known: {known}); {threads} thread(s) per process: "
            "one per CPU of its share, at most one per core"
        )
    record = f"{node_type or '-'}:{size_class}:{threads}"
    counts = {}
    if libs:
        counts[entry["blas"]] = threads
        counts.update((label, n) for label, n, _ in libs)
        record += "".join(f":{label}={n}" for label, n in counts.items())
    given, unset, kept = _variables(env, threads, obeyed, record, notes, libs)
    return {
        "node_type": node_type,
        "size_class": size_class,
        "workers": workers,
        "workers_from": source,
        "threads": threads,
        "set": given,
        "unset": unset,
        "kept": kept,
        "notes": notes,
        "libraries": counts,
    }


def calibrated_for(rows, workers):
    """The calibrated threads of the layout row with the most workers not above ``workers``
    (rows: ``(workers, threads)`` pairs from 1 worker up)."""
    return [t for w, t in rows if w <= workers][-1]


def _variables(env, threads, obeyed, record, notes, libs=()):
    """(set, unset, kept): which thread variables to give which count; see the module doc.
    ``libs``: (label, threads, variables) of each library besides the default one, its
    threads already those its strongest variable will get."""
    fields = (env.get("BLASPROF_PRESET", "") + "::").split(":")
    before = parse_count(fields[2])
    mine = set()
    if before:
        mine.add(str(before))
        for item in fields[3:]:
            value = parse_count(item.partition("=")[2])
            if value:
                mine.add(str(value))
    ours = env.get("BLASPROF_PRESET_SET", "").split(":") if before else []
    watched = THREAD_VARIABLES + tuple(v for v in WATCHED_VARIABLES if v in obeyed)
    users = []
    for name in watched:
        current = env.get(name, "")
        if not current or (name in ours and current in mine):
            continue
        if name not in FREE_VARIABLES and parse_count(current) is None:
            # a BLAS given junk falls back to its own default (all CPUs): not a choice to keep
            notes.append(name + " " + BAD_COUNT + "; ignored")
            continue
        users.append(name)
    value = str(threads)
    override = env.get("BLASPROF_OVERRIDE", "") == "1"
    blocked = set()
    for names in (obeyed, *(lib[2] for lib in libs)):
        if not override and any(v in names for v in users):
            blocked.update(names)
    # ``libs`` holds what each library will run: its strongest variable's count
    strongest = {names[0]: n for _, n, names in libs if names}
    given = {}
    for name in THREAD_VARIABLES:
        if override or not (name in users or name in blocked):
            given[name] = str(strongest.get(name, threads))
    unset = [v for v in watched if override and v in users and v not in given]
    unset += [
        v
        for v in THREAD_VARIABLES
        if v in ours and env.get(v, "") and v not in users and v not in given
    ]
    given["BLASPROF_PRESET"] = record
    names = ":".join(v for v in THREAD_VARIABLES if v in given)
    if names:
        given["BLASPROF_PRESET_SET"] = names
    elif env.get("BLASPROF_PRESET_SET", ""):
        unset.append("BLASPROF_PRESET_SET")
    named = " ".join(users)
    if users and override:
        notes.append(f"BLASPROF_OVERRIDE=1: replacing {named} with {value}")
    elif users:
        notes.append(
            f"keeping {named} as set before the preset (it would set {value}); "
            "BLASPROF_OVERRIDE=1 replaces them"
        )
    return given, unset, ([] if override else users)


#: what the Python preset embeds, in this order
JOB_START = (
    *_CPUS_START,
    plan,
    calibrated_for,
    _variables,
)


# -- the login-side API: the same rule for the processes blasprof starts itself ------------


def job_cpus(environ: Mapping[str, str] | None = None) -> int:
    """CPUs of one task of this job: the CPUs this process may use, capped by
    ``SLURM_CPUS_PER_TASK`` (``BLASPROF_CPUS`` replaces the detection)."""
    env = os.environ if environ is None else environ
    usable = parse_count(env.get("BLASPROF_CPUS")) or usable_here()
    return min(usable, parse_count(env.get("SLURM_CPUS_PER_TASK")) or usable)


def obeyed_variables(libraries: Iterable[tuple[str, str | None]]) -> tuple[str, ...]:
    """The thread variables the BLAS libraries of a calibration read, from threadpoolctl's
    (internal_api, threading_layer) pairs; an OpenMP-threaded one follows OMP_NUM_THREADS.
    ``DEFAULT_OBEYED`` when none is known."""
    found: list[str] = []
    for internal_api, layer in libraries:
        names = BLAS_VARIABLES.get(internal_api, ())
        if names and layer == "openmp":
            names = ("OMP_NUM_THREADS", *names)
        for name in names:
            if name not in found:
                found.append(name)
    return tuple(found) or DEFAULT_OBEYED


def thread_environment(threads: int) -> dict[str, str]:
    """Every thread variable set to ``threads``."""
    return dict.fromkeys(THREAD_VARIABLES, str(int(threads)))


@contextlib.contextmanager
def exported(threads: int | None) -> Iterator[None]:
    """Set the thread variables in ``os.environ`` for processes started inside, then restore.

    ``None`` changes nothing.
    """
    if not threads:
        yield
        return
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update(thread_environment(threads))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _main() -> int:
    """``export NAME=N`` lines giving every thread variable one task's CPUs (for the node
    task's batch script, evaluated before Python loads a BLAS)."""
    for name, value in thread_environment(job_cpus()).items():
        print(f"export {name}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
