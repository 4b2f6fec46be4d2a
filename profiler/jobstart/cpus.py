"""What a job has, read as a preset reads it at job start: its CPUs and its processes.

The CPUs this process may use are its affinity mask, capped by its cgroup's CPU quota
(never ``nproc``, which obeys the very variables a preset sets); its physical cores count
SMT siblings once; the processes sharing the job's CPUs on this node come from the
launcher's own variables (``LAUNCHERS``). Counts from the environment are plain decimal
integers of 1 to 5 digits; anything else is no count.

The functions in ``JOB_START`` use nothing but ``os`` and the constants here: the Python
preset embeds their source beside the rule's (``profiler.jobstart.budget``), and the sh
engine reads the same things in ``profiler.jobstart.forms.sh_cpus``.
"""

from __future__ import annotations

import os

__all__ = [
    "BAD_COUNT",
    "JOB_START",
    "LAUNCHERS",
    "affinity_cpus",
    "cgroup_quota",
    "cores_here",
    "cpu_list",
    "cpu_list_size",
    "launcher_workers",
    "parse_count",
    "parse_index",
    "read_text",
    "tasks_on_node",
    "usable_here",
    "usable_of",
]

#: launchers' count of this node's processes, first valid one wins: (variable, syntax)
LAUNCHERS = (
    ("OMPI_COMM_WORLD_LOCAL_SIZE", "count"),  # Open MPI
    ("MPI_LOCALNRANKS", "count"),  # MPICH Hydra, Intel MPI
    ("PMI_LOCAL_SIZE", "count"),  # Cray PMI / PALS
    ("PMIX_LOCAL_SIZE", "count"),  # PMIx launchers that export it
    ("MV2_COMM_WORLD_LOCAL_SIZE", "count"),  # MVAPICH2
    ("SLURM_STEP_TASKS_PER_NODE", "slurm"),  # srun: "2(x3),1", this node's by SLURM_NODEID
    ("SLURM_NTASKS_PER_NODE", "count"),  # sbatch --ntasks-per-node
)

BAD_COUNT = "is not a whole number from 1 to 99999"


def parse_count(value):
    """``value`` as a positive integer of 1 to 5 plain digits (leading zeros dropped), or None."""
    if not value or not (value.isascii() and value.isdigit()):
        return None
    digits = value.lstrip("0")
    return int(digits) if 1 <= len(digits) <= 5 else None


def read_text(path):
    """The file's text (bytes as latin-1, so nothing fails to decode), or ""."""
    try:
        with open(path, "rb") as fh:
            return fh.read(1 << 20).decode("latin-1")
    except OSError:
        return ""


def parse_index(value):
    """``value`` as a non-negative integer of at most 5 digits (leading zeros dropped), or None."""
    if not value or not (value.isascii() and value.isdigit()):
        return None
    digits = value.lstrip("0")
    return int(digits or "0") if len(digits) <= 5 else None


def cpu_list(text):
    """The CPUs a kernel CPU list such as ``0-3,8,10-11`` names, or None when it is none."""
    cpus = []
    for item in text.strip().split(","):
        low, _, high = item.partition("-")
        low, high = parse_index(low), parse_index(high or low)
        if low is None or high is None or high < low:
            return None
        cpus.extend(range(low, high + 1))
    return cpus


def cpu_list_size(text):
    """How many CPUs a kernel CPU list names, or None."""
    cpus = cpu_list(text)
    return None if cpus is None else len(cpus)


def tasks_on_node(text, node):
    """This node's entry of a Slurm task list such as ``2(x3),1``: the entry at ``node``
    (SLURM_NODEID), the largest when ``node`` is not in the list, None when it is no list."""
    seen, largest = 0, 0
    for item in text.split(","):
        value, sep, repeat = item.partition("(x")
        times = 1
        if sep:
            times = parse_count(repeat[:-1]) if repeat.endswith(")") else None
        number = parse_count(value)
        if number is None or times is None:
            return None
        if node is not None and seen <= node < seen + times:
            return number
        seen += times
        largest = max(largest, number)
    return largest


def affinity_cpus():
    """The CPUs this process may run on (its affinity mask), sorted."""
    try:
        return tuple(sorted(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return tuple(range(os.cpu_count() or 1))


def _whole(text):
    return 0 < len(text) <= 18 and text.isascii() and text.isdigit()


def cgroup_quota():
    """The CPU quota of this process's cgroup in CPUs (v2 ``cpu.max``, the smallest on the
    way to the root, else v1 CFS), or None when there is none."""
    for line in read_text("/proc/self/cgroup").split("\n"):
        hierarchy, _, rest = line.partition(":")
        controllers, _, rel = rest.partition(":")
        rel = rel.strip("/")
        found = None
        if hierarchy == "0" and controllers == "":
            while True:
                fields = read_text("/sys/fs/cgroup/" + rel + "/cpu.max").split()
                if len(fields) == 2 and _whole(fields[0]) and _whole(fields[1]):
                    quota = int(fields[0]) / max(1, int(fields[1]))
                    found = quota if found is None else min(found, quota)
                if not rel:
                    break
                rel = rel.rpartition("/")[0]
        elif "cpu" in controllers.split(","):
            for base in ("/sys/fs/cgroup/cpu/" + rel, "/sys/fs/cgroup/cpu"):
                quota = read_text(base + "/cpu.cfs_quota_us").strip()
                period = read_text(base + "/cpu.cfs_period_us").strip()
                if _whole(quota) and _whole(period) and int(quota) > 0 and int(period) > 0:
                    found = int(quota) / int(period)
                    break
        if found is not None:
            return found
    return None


def usable_of(cpus, quota):
    """How many CPUs a process can keep busy: its affinity mask ``cpus``, capped by its
    cgroup ``quota`` (None: no quota)."""
    usable = len(cpus) or 1
    # int() of a quotient of integers is their floor division: the sh form's arithmetic
    return usable if quota is None else max(1, min(usable, int(quota)))


def usable_here():
    """How many CPUs this process can keep busy (``usable_of`` its own mask and quota)."""
    return usable_of(affinity_cpus(), cgroup_quota())


def cores_here(cpus=None):
    """Physical cores among ``cpus`` (default: the CPUs this process may run on), SMT
    siblings counting once; every CPU counts as a core where sysfs does not say."""
    cpus = affinity_cpus() if cpus is None else cpus
    seen = set()
    for cpu in cpus:
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology/"
        siblings = read_text(base + "thread_siblings_list").strip()
        if not siblings:
            return len(cpus) or 1
        seen.add(siblings)
    return len(seen) or 1


def launcher_workers(env):
    """(processes of this job on this node, the variable that said so) from the launcher."""
    for name, syntax in LAUNCHERS:
        value = env.get(name, "")
        if not value:
            continue
        if syntax == "slurm":
            found = tasks_on_node(value, parse_index(env.get("SLURM_NODEID", "")))
        else:
            found = parse_count(value)
        if found:
            return found, name
    return None, None


JOB_START = (
    parse_count,
    read_text,
    parse_index,
    _whole,
    cpu_list,
    cpu_list_size,
    tasks_on_node,
    affinity_cpus,
    cgroup_quota,
    usable_of,
    usable_here,
    cores_here,
    launcher_workers,
)
