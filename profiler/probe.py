"""What node is this: CPU, topology, memory, the CPUs this process may use, BLAS and numpy.

Each ``collect_*`` function fills one part of the record from the machine itself; nothing
is hard-coded for any particular host. ``probe()`` assembles them into a ``NodeInfo``.
The theoretical peak comes from a table of double-precision FLOPs per cycle per
microarchitecture; a CPU that is not in the table gets no peak rather than a guess.
"""

from __future__ import annotations

import os
import platform
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from profiler import budget
from profiler.results import BlasLibrary, NodeInfo

__all__ = [
    "probe",
    "collect_cpu",
    "collect_allocation",
    "collect_blas",
    "collect_numpy",
    "microarchitecture",
    "FLOPS_PER_CYCLE_F64",
    "SLURM_VARIABLES",
]

# Double-precision FLOPs per cycle per core with FMA on the widest units (float32: twice).
FLOPS_PER_CYCLE_F64: dict[str, int] = {
    "haswell": 16,
    "broadwell": 16,
    "skylake": 16,
    "skylake-sp": 32,
    "cascadelake": 32,
    "icelake-sp": 32,
    "sapphirerapids": 32,
    "emeraldrapids": 32,
    "zen1": 8,
    "zen2": 16,
    "zen3": 16,
    "zen4": 16,
    "zen5": 32,
    "neoverse-n1": 8,
    "neoverse-v1": 16,
    "neoverse-v2": 16,
    "thunderx2": 8,
}

_INTEL_FAMILY6 = {
    **dict.fromkeys((0x3C, 0x3F, 0x45, 0x46), "haswell"),
    **dict.fromkeys((0x3D, 0x47, 0x4F, 0x56), "broadwell"),
    **dict.fromkeys((0x4E, 0x5E, 0x8E, 0x9E, 0xA5, 0xA6), "skylake"),
    0x55: "skylake-sp",  # stepping >= 5 is Cascade Lake, resolved below
    **dict.fromkeys((0x6A, 0x6C), "icelake-sp"),
    0x8F: "sapphirerapids",
    0xCF: "emeraldrapids",
}

_ARM_PARTS = {
    ("0x41", "0xd0c"): "neoverse-n1",
    ("0x41", "0xd40"): "neoverse-v1",
    ("0x41", "0xd4f"): "neoverse-v2",
    ("0x43", "0x0af"): "thunderx2",
}

SLURM_VARIABLES = (
    "SLURM_JOB_ID",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_JOB_PARTITION",
    "SLURM_JOB_NODELIST",
    "SLURMD_NODENAME",
    "SLURM_CPUS_PER_TASK",
    "SLURM_CPUS_ON_NODE",
    "SLURM_JOB_CPUS_PER_NODE",
    "SLURM_NTASKS",
    "SLURM_TASKS_PER_NODE",
    "SLURM_MEM_PER_NODE",
    "SLURM_MEM_PER_CPU",
)


@dataclass(frozen=True)
class CpuFacts:
    model: str
    vendor: str
    family: int | None
    model_number: int | None
    stepping: int | None
    arm_part: tuple[str, str] | None
    flags: tuple[str, ...]
    sockets: int
    physical_cores: int
    logical_cpus: int
    numa_nodes: int
    clock_mhz: float | None
    clock_source: str


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def _cpuinfo_blocks(text: str) -> list[dict[str, str]]:
    blocks = []
    for chunk in text.strip().split("\n\n"):
        block = {}
        for line in chunk.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                block[key.strip()] = value.strip()
        if block:
            blocks.append(block)
    return blocks


def _int(value: str | None, base: int = 10) -> int | None:
    if value is None:
        return None
    try:
        return int(value, 0 if value.startswith("0x") else base)
    except ValueError:
        return None


def _clock(first: dict[str, str], blocks: list[dict[str, str]]) -> tuple[float | None, str]:
    base = _read("/sys/devices/system/cpu/cpu0/cpufreq/base_frequency")
    if base and base.strip().isdigit():
        return int(base) / 1000.0, "cpufreq base_frequency"
    mhz = [float(b["cpu MHz"]) for b in blocks if "cpu MHz" in b]
    if mhz:
        return max(mhz), "/proc/cpuinfo cpu MHz (current clock; no base frequency exposed)"
    bogo = first.get("BogoMIPS")
    if bogo and platform.machine() in ("x86_64", "AMD64"):
        return float(bogo) / 2.0, "BogoMIPS / 2"
    return None, "unknown"


def collect_cpu() -> CpuFacts:
    """CPU model, vendor, flags, sockets, cores, NUMA nodes and clock from /proc and /sys."""
    import psutil

    blocks = _cpuinfo_blocks(_read("/proc/cpuinfo") or "")
    first = blocks[0] if blocks else {}
    model = first.get("model name") or first.get("Processor") or platform.processor() or "unknown"
    vendor = first.get("vendor_id") or first.get("CPU implementer") or "unknown"
    flags = tuple(sorted(set((first.get("flags") or first.get("Features") or "").split())))
    sockets = len({b["physical id"] for b in blocks if "physical id" in b}) or 1
    logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or logical
    nodes = [p for p in Path("/sys/devices/system/node").glob("node[0-9]*")]
    clock_mhz, clock_source = _clock(first, blocks)
    arm = None
    if "CPU implementer" in first and "CPU part" in first:
        arm = (first["CPU implementer"].lower(), first["CPU part"].lower())
        if model == "unknown" or model == first.get("Processor"):
            model = f"ARM implementer {arm[0]} part {arm[1]}"
    return CpuFacts(
        model=re.sub(r"\s+", " ", model).strip(),
        vendor=vendor,
        family=_int(first.get("cpu family")),
        model_number=_int(first.get("model")),
        stepping=_int(first.get("stepping")),
        arm_part=arm,
        flags=flags,
        sockets=sockets,
        physical_cores=physical,
        logical_cpus=logical,
        numa_nodes=max(1, len(nodes)),
        clock_mhz=clock_mhz,
        clock_source=clock_source,
    )


def microarchitecture(cpu: CpuFacts) -> str | None:
    """Map vendor/family/model (or the ARM part number) to a name in FLOPS_PER_CYCLE_F64."""
    if cpu.arm_part is not None:
        return _ARM_PARTS.get(cpu.arm_part)
    fam, mod = cpu.family, cpu.model_number
    if fam is None or mod is None:
        return None
    if cpu.vendor == "GenuineIntel" and fam == 6:
        name = _INTEL_FAMILY6.get(mod)
        if name == "skylake-sp" and (cpu.stepping or 0) >= 5:
            return "cascadelake"
        return name
    if cpu.vendor in ("AuthenticAMD", "HygonGenuine"):
        if fam == 0x17:
            return "zen1" if mod < 0x30 else "zen2"
        if fam == 0x19:
            return "zen4" if (0x10 <= mod < 0x20 or 0x60 <= mod < 0x80 or mod >= 0xA0) else "zen3"
        if fam == 0x1A:
            return "zen5"
    return None


def collect_allocation() -> tuple[tuple[int, ...], float | None, dict[str, str]]:
    """CPUs this process may run on, its cgroup CPU quota, and the Slurm allocation."""
    slurm = {k: os.environ[k] for k in SLURM_VARIABLES if k in os.environ}
    return budget.affinity(), budget.cgroup_cpu_limit(), slurm


def usable_cores(affinity: tuple[int, ...], usable: int) -> int:
    """Physical cores among the CPUs this process may use (SMT siblings count once).

    Read from sysfs topology; where that is missing, every usable CPU counts as a core.
    """
    cores = set()
    for cpu in affinity:
        base = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        package, core = _read(base / "physical_package_id"), _read(base / "core_id")
        if package is None or core is None:
            return usable
        cores.add((package.strip(), core.strip()))
    return max(1, min(len(cores), usable))


def collect_blas() -> tuple[BlasLibrary, ...]:
    """Every BLAS and OpenMP runtime threadpoolctl finds loaded (after numpy is imported)."""
    import numpy  # noqa: F401  # loads the BLAS numpy was built against
    from threadpoolctl import threadpool_info

    return tuple(BlasLibrary.from_dict(d) for d in threadpool_info())


def collect_numpy() -> tuple[str, dict[str, Any]]:
    """numpy's version and the parts of its build configuration that concern BLAS and SIMD."""
    import numpy as np

    config: dict[str, Any] = {}
    try:
        full = np.show_config(mode="dicts")
    except TypeError:  # numpy < 1.26 has no dict mode
        full = {}
    deps = full.get("Build Dependencies", {})
    for key in ("blas", "lapack"):
        if key in deps:
            config[key] = {
                k: deps[key].get(k) for k in ("name", "version", "openblas configuration")
            }
    if "SIMD Extensions" in full:
        config["simd"] = full["SIMD Extensions"]
    return np.__version__, config


def probe() -> NodeInfo:
    """Everything blasprof knows about the node this process runs on."""
    import psutil

    cpu = collect_cpu()
    affinity, quota, slurm = collect_allocation()
    usable = budget.usable_cpus(affinity, quota)
    arch = microarchitecture(cpu)
    fpc = FLOPS_PER_CYCLE_F64.get(arch) if arch else None
    cores_for_peak = usable_cores(affinity, usable)
    if fpc and cpu.clock_mhz:
        peak = cores_for_peak * cpu.clock_mhz / 1000.0 * fpc
        note = (
            f"{cores_for_peak} cores x {cpu.clock_mhz / 1000.0:.2f} GHz "
            f"({cpu.clock_source}) x {fpc} FLOPs/cycle ({arch}, float64)"
        )
    else:
        peak = None
        missing = "microarchitecture" if not fpc else "clock"
        note = f"unknown: {missing} not known for {cpu.model!r}"
    mem = psutil.virtual_memory()
    numpy_version, numpy_blas = collect_numpy()
    simd_flags = {
        "sse4_2",
        "avx",
        "avx2",
        "fma",
        "avx512f",
        "avx512_bf16",
        "amx_tile",
        "sve",
        "sve2",
        "asimd",
        "neon",
    }
    return NodeInfo(
        hostname=socket.gethostname(),
        cpu_model=cpu.model,
        vendor=cpu.vendor,
        microarchitecture=arch,
        sockets=cpu.sockets,
        physical_cores=cpu.physical_cores,
        logical_cpus=cpu.logical_cpus,
        numa_nodes=cpu.numa_nodes,
        simd=tuple(f for f in cpu.flags if f in simd_flags),
        clock_mhz=cpu.clock_mhz,
        clock_source=cpu.clock_source,
        memory_total_bytes=int(mem.total),
        memory_available_bytes=int(mem.available),
        affinity_cpus=affinity,
        cgroup_cpu_limit=quota,
        usable_cpus=usable,
        slurm=slurm,
        blas=collect_blas(),
        numpy_version=numpy_version,
        numpy_blas=numpy_blas,
        python_version=platform.python_version(),
        platform=platform.platform(),
        flops_per_cycle_f64=fpc,
        peak_gflops_f64=round(peak, 3) if peak else None,
        peak_note=note,
        usable_cores=cores_for_peak,
    )
