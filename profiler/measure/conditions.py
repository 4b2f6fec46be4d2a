"""Is this node quiet enough to measure? The conditions around a sweep, and a verdict.

``Watch`` takes a snapshot of the node before the sweep and another after it: load
average, runnable tasks, and the CPU time spent on this process's CPUs (``/proc/stat``),
of which this process and its children account for their own share (``os.times``); the
rest was taken by other processes. With the steal time a hypervisor reports, the frequency
governor and the SMT state, that becomes ``Conditions``: a verdict, ``quiet`` or ``noisy``
(``unknown`` where /proc/stat cannot be read: never taken for quiet), and the reasons
behind it, each with its figure.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from profiler.jobstart.cpus import affinity_cpus, cgroup_quota, read_text
from profiler.statuses import NOISY, QUIET, VERDICT_UNKNOWN

__all__ = ["Conditions", "Watch", "judge", "OTHERS_LIMIT", "STEAL_LIMIT", "OUTLIER_LIMIT"]

#: other processes may take at most this fraction of the CPU time of our CPUs
OTHERS_LIMIT = 0.10
#: the hypervisor may steal at most this fraction of it
STEAL_LIMIT = 0.05
#: at most this fraction of all samples may be outliers
OUTLIER_LIMIT = 0.15


@dataclass(frozen=True)
class Snapshot:
    """The node at one moment, as far as the verdict needs it."""

    monotonic: float
    load: tuple[float, float, float]
    runnable: int
    busy_ticks: int
    steal_ticks: int
    total_ticks: int
    own_cpu_s: float


def _snapshot(cpus: Sequence[int]) -> Snapshot:
    wanted = {f"cpu{c}" for c in cpus}
    busy = steal = total = 0
    runnable = 0
    for line in read_text("/proc/stat").splitlines():
        fields = line.split()
        if fields and fields[0] in wanted:
            # user nice system idle iowait irq softirq steal (guest is inside user)
            ticks = [int(x) for x in fields[1:9]] + [0] * max(0, 9 - len(fields))
            busy += ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]
            steal += ticks[7]
            total += sum(ticks[:8])
        elif fields and fields[0] == "procs_running":
            runnable = int(fields[1])
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    own = os.times()
    own_s = own.user + own.system + own.children_user + own.children_system
    return Snapshot(time.monotonic(), load, runnable, busy, steal, total, own_s)


def _governors(cpus: Sequence[int]) -> tuple[str, ...]:
    found = {
        read_text(f"/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor").strip() for c in cpus
    }
    return tuple(sorted(g for g in found if g))


def _smt() -> str | None:
    control = read_text("/sys/devices/system/cpu/smt/control").strip()
    active = read_text("/sys/devices/system/cpu/smt/active").strip()
    if not control and not active:
        return None
    return f"{control or '?'} (active: {'yes' if active == '1' else 'no'})"


@dataclass(frozen=True)
class Conditions:
    """How busy the node was while it was measured, and whether that bends the figures."""

    verdict: str
    reasons: tuple[str, ...]
    wall_s: float
    cpus: int
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    runnable_before: int
    runnable_after: int
    others_cpu_fraction: float | None
    steal_fraction: float | None
    outlier_fraction: float
    governors: tuple[str, ...] = ()
    smt: str | None = None
    affinity_cpus: tuple[int, ...] = ()
    cgroup_cpu_limit: float | None = None
    notes: tuple[str, ...] = field(default=())
    #: points whose runs split into states (``profiler.measure.instability``)
    unstable: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["unstable"] = [dict(u) for u in self.unstable]
        for key in ("reasons", "load_before", "load_after", "governors", "affinity_cpus", "notes"):
            d[key] = list(d[key])
        return d


class Watch:
    """Snapshots of this process's CPUs around a measurement: ``start()``, then ``stop()``."""

    def __init__(self, cpus: Sequence[int] | None = None) -> None:
        self.cpus = tuple(cpus) if cpus is not None else affinity_cpus()
        self._before: Snapshot | None = None

    def start(self) -> Watch:
        self._before = _snapshot(self.cpus)
        return self

    def stop(
        self, samples: Sequence[Sequence[float]] = (), floors: Sequence[float] = ()
    ) -> Conditions:
        """The conditions since ``start()``; ``samples`` are the runs' samples, whose
        outliers count towards the verdict (``floors``: see ``judge``)."""
        assert self._before is not None, "Watch.stop() before start()"
        return judge(self._before, _snapshot(self.cpus), self.cpus, samples, floors)


def judge(
    before: Snapshot,
    after: Snapshot,
    cpus: Sequence[int],
    samples: Sequence[Sequence[float]] = (),
    floors: Sequence[float] = (),
) -> Conditions:
    """The verdict on the interval between two snapshots of ``cpus``. ``floors[i]`` (0 if
    absent) is the least relative sigma the outliers of ``samples[i]`` are judged by: the
    spread between the runs of its point."""
    from profiler.stats import outliers

    ticks = after.total_ticks - before.total_ticks
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    wall = max(after.monotonic - before.monotonic, 1e-9)
    others = steal = None
    if ticks > 0:
        busy_s = (after.busy_ticks - before.busy_ticks) / hz
        own_s = after.own_cpu_s - before.own_cpu_s
        capacity_s = ticks / hz
        others = min(1.0, max(0.0, busy_s - own_s) / capacity_s)
        steal = min(1.0, max(0, after.steal_ticks - before.steal_ticks) / ticks)
    all_samples = sum(len(s) for s in samples)
    floor_of = list(floors) + [0.0] * (len(samples) - len(floors))
    flagged = sum(outliers(s, floor=f) for s, f in zip(samples, floor_of, strict=False))
    outlier_fraction = flagged / all_samples if all_samples else 0.0
    n = len(cpus) or 1
    reasons = []
    if others is not None and others > OTHERS_LIMIT:
        reasons.append(
            f"other processes took {others:.0%} of the CPU time of the {n} CPUs measured "
            f"(limit {OTHERS_LIMIT:.0%})"
        )
    if steal is not None and steal > STEAL_LIMIT:
        reasons.append(
            f"the hypervisor stole {steal:.0%} of the CPU time (limit {STEAL_LIMIT:.0%})"
        )
    if outlier_fraction > OUTLIER_LIMIT:
        reasons.append(
            f"{flagged} of {all_samples} samples were outliers (limit {OUTLIER_LIMIT:.0%})"
        )
    notes = []
    waiting = before.runnable - 1  # this process was running when it looked
    if waiting >= n:
        notes.append(f"{waiting} other tasks were runnable when the sweep started")
    governors = _governors(cpus)
    if any(g not in ("performance", "") for g in governors):
        notes.append(f"frequency governor {', '.join(governors)}: the clock may vary")
    if others is None:
        reasons.append("the CPU time of other processes could not be read (/proc/stat)")
    return Conditions(
        verdict=(VERDICT_UNKNOWN if others is None else NOISY) if reasons else QUIET,
        reasons=tuple(reasons),
        wall_s=round(wall, 3),
        cpus=n,
        load_before=tuple(round(x, 2) for x in before.load),  # type: ignore[arg-type]
        load_after=tuple(round(x, 2) for x in after.load),  # type: ignore[arg-type]
        runnable_before=max(0, before.runnable - 1),
        runnable_after=max(0, after.runnable - 1),
        others_cpu_fraction=None if others is None else round(others, 4),
        steal_fraction=None if steal is None else round(steal, 4),
        outlier_fraction=round(outlier_fraction, 4),
        governors=governors,
        smt=_smt(),
        affinity_cpus=tuple(cpus),
        cgroup_cpu_limit=cgroup_quota(),
        notes=tuple(notes),
    )
