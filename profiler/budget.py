"""The job's CPU budget: which thread variables, how many CPUs, how many processes share them.

This module owns the one rule every part of blasprof applies when it decides how many
threads a process may run: the node task before it loads numpy, the executors that start
it, and every preset form::

    threads per process = min(calibrated count, job CPUs // processes sharing them), >= 1

Job CPUs are ``SLURM_CPUS_PER_TASK`` when Slurm sets it, else the CPUs this process may run
on (its affinity mask, capped by its cgroup's CPU quota). Processes sharing them are
``BLASPROF_WORKERS``, else 1. Counts read from the environment are taken only as plain
decimal integers of 1 to 5 digits, the way the sh preset reads them.

Run as ``python -m profiler.budget`` it prints ``export NAME=N`` lines that give every
thread variable the job's CPUs: a batch script evaluates them before Python loads a BLAS.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

__all__ = [
    "THREAD_VARIABLES",
    "affinity",
    "cgroup_cpu_limit",
    "count",
    "exported",
    "job_cpus",
    "thread_environment",
    "threads_for",
    "usable_cpus",
    "workers",
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


def count(value: str | None) -> int | None:
    """``value`` as a positive integer of 1 to 5 plain digits (leading zeros dropped), or None."""
    if value is None or not (value.isascii() and value.isdigit()):
        return None
    digits = value.lstrip("0")
    return int(digits) if 1 <= len(digits) <= 5 else None


def affinity() -> tuple[int, ...]:
    """The CPUs this process may run on (its affinity mask), sorted."""
    try:
        return tuple(sorted(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return tuple(range(os.cpu_count() or 1))


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _cgroup_v2_limit(rel: str) -> float | None:
    limit = None
    root = Path("/sys/fs/cgroup")
    path = root / rel.lstrip("/")
    while True:
        fields = _read(path / "cpu.max").split()
        if len(fields) == 2 and fields[0] != "max" and fields[0].isdigit() and fields[1].isdigit():
            value = int(fields[0]) / max(1, int(fields[1]))
            limit = value if limit is None else min(limit, value)
        if path == root or root not in path.parents:
            return limit
        path = path.parent


def _cgroup_v1_limit(rel: str) -> float | None:
    for base in (Path("/sys/fs/cgroup/cpu") / rel.lstrip("/"), Path("/sys/fs/cgroup/cpu")):
        quota = _read(base / "cpu.cfs_quota_us").strip()
        period = _read(base / "cpu.cfs_period_us").strip()
        if quota.isdigit() and period.isdigit() and int(quota) > 0 and int(period) > 0:
            return int(quota) / int(period)
    return None


def cgroup_cpu_limit() -> float | None:
    """The CPU quota of this process's cgroup (v2 ``cpu.max`` or v1 CFS), in CPUs."""
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, rel = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            found = _cgroup_v2_limit(rel)
        elif "cpu" in controllers.split(","):
            found = _cgroup_v1_limit(rel)
        else:
            continue
        if found is not None:
            return found
    return None


def usable_cpus(cpus: tuple[int, ...] | None = None, quota: float | None = None) -> int:
    """How many CPUs this process can keep busy: its affinity, capped by its cgroup quota.

    Without arguments both are read from this process.
    """
    if cpus is None:
        cpus, quota = affinity(), cgroup_cpu_limit()
    usable = len(cpus) or 1
    if quota is not None:
        usable = min(usable, max(1, math.floor(quota + 1e-9)))
    return usable


def job_cpus(environ: Mapping[str, str] | None = None) -> int:
    """The CPUs of this job: ``SLURM_CPUS_PER_TASK``, else the CPUs this process may use."""
    env = os.environ if environ is None else environ
    return count(env.get("SLURM_CPUS_PER_TASK")) or usable_cpus()


def workers(environ: Mapping[str, str] | None = None) -> int:
    """Processes sharing the job's CPUs: ``BLASPROF_WORKERS``, else 1."""
    env = os.environ if environ is None else environ
    return count(env.get("BLASPROF_WORKERS")) or 1


def threads_for(calibrated: int, cpus: int, workers: int = 1) -> int:
    """Threads per process: the calibrated count, never more than the process's share.

    Oversubscription is the expensive mistake (idle OpenBLAS threads spin), so a job that
    runs ``workers`` processes on ``cpus`` CPUs gets at most ``cpus // workers`` each.
    """
    share = max(1, cpus // max(1, workers))
    return max(1, min(calibrated, share))


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
    for name, value in thread_environment(job_cpus()).items():
        print(f"export {name}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
