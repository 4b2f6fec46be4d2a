"""What node is this: CPU, topology, memory, the CPUs this process may use, BLAS and numpy.

Each ``collect_*`` function fills one part of the record from the machine itself; nothing
is hard-coded for any particular host. ``probe()`` assembles them into a ``NodeInfo``.
The microarchitecture comes from archspec (Spack's database of CPUs); the theoretical peak
from our table of double-precision FLOPs per cycle keyed by archspec's names. A CPU that
archspec matches only to a generic level (``x86_64_v4``: a hypervisor often hides the flags
that name it) or that is not in the table gets no peak rather than a guess.
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
    "collect_caches",
    "collect_hypervisor",
    "microarchitecture",
    "FLOPS_PER_CYCLE_F64",
    "SLURM_VARIABLES",
]

# Double-precision FLOPs per cycle per core with FMA on the widest units (float32: twice),
# keyed by archspec's microarchitecture names. Intel server parts are assumed to have two
# AVX-512 FMA units per core; some low-end SKUs have one, and their peak reads double.
FLOPS_PER_CYCLE_F64: dict[str, int] = {
    "haswell": 16,
    "broadwell": 16,
    "skylake": 16,
    "skylake_avx512": 32,
    "cascadelake": 32,
    "icelake": 32,
    "sapphirerapids": 32,
    "zen": 8,
    "zen2": 16,
    "zen3": 16,
    "zen4": 16,
    "zen5": 32,
    "neoverse_n1": 8,
    "neoverse_v1": 16,
    "neoverse_v2": 16,
    "thunderx2": 8,
    "a64fx": 32,
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


def microarchitecture() -> tuple[str | None, bool]:
    """archspec's name for this CPU, and whether it is a named microarchitecture (not only
    a generic level such as ``x86_64_v3``)."""
    try:
        import archspec.cpu
    except ImportError:
        return None, False
    try:
        host = archspec.cpu.host()
    except Exception:  # noqa: BLE001  # an unreadable /proc/cpuinfo: say unknown
        return None, False
    return host.name, host.vendor != "generic"


def collect_caches() -> dict[str, int]:
    """Cache sizes in bytes per instance (``L1d``, ``L1i``, ``L2``, ``L3``) as cpu0 sees them."""
    caches: dict[str, int] = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index[0-9]*")):
        level, kind = _read(index / "level"), _read(index / "type")
        size = (_read(index / "size") or "").strip()
        match = re.fullmatch(r"([0-9]+)([KMG]?)", size)
        if not (level and kind and match):
            continue
        suffix = {"Data": "d", "Instruction": "i"}.get(kind.strip(), "")
        scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[match.group(2)]
        caches[f"L{level.strip()}{suffix}"] = int(match.group(1)) * scale
    return caches


def collect_hypervisor(flags: tuple[str, ...]) -> str | None:
    """The hypervisor this node runs under (e.g. ``KVM``, ``Xen``), or None on bare metal."""
    if "hypervisor" not in flags:
        return None
    for path in ("/sys/hypervisor/type", "/sys/class/dmi/id/sys_vendor"):
        text = (_read(path) or "").strip()
        if text:
            return re.sub(r"[^\w .,()-]", "", text)[:64] or "unknown"
    return "unknown"


def _blas_max_threads(numpy_blas: dict[str, Any]) -> int | None:
    """The thread ceiling numpy's OpenBLAS was built with (``MAX_THREADS=N``), if stated."""
    config = str((numpy_blas.get("blas") or {}).get("openblas configuration") or "")
    match = re.search(r"MAX_THREADS=([0-9]+)", config)
    return int(match.group(1)) if match else None


def collect_allocation() -> tuple[tuple[int, ...], float | None, dict[str, str]]:
    """CPUs this process may run on, its cgroup CPU quota, and the Slurm allocation."""
    slurm = {k: os.environ[k] for k in SLURM_VARIABLES if k in os.environ}
    return budget.affinity(), budget.cgroup_cpu_limit(), slurm


def usable_cores(affinity: tuple[int, ...], usable: int) -> int:
    """Physical cores among the CPUs this process may use (SMT siblings count once).

    Counted as the job-start rule counts them (``budget.cores_here``).
    """
    return max(1, min(budget.cores_here(affinity), usable))


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
    arch, named = microarchitecture()
    fpc = FLOPS_PER_CYCLE_F64.get(arch) if arch and named else None
    cores_for_peak = usable_cores(affinity, usable)
    if fpc and cpu.clock_mhz:
        peak = cores_for_peak * cpu.clock_mhz / 1000.0 * fpc
        note = (
            f"{cores_for_peak} cores x {cpu.clock_mhz / 1000.0:.2f} GHz "
            f"({cpu.clock_source}) x {fpc} FLOPs/cycle ({arch}, float64)"
        )
    elif arch and not named:
        peak = None
        note = (
            f"unknown: archspec matches {cpu.model!r} only to the generic level {arch} "
            "(a hypervisor may hide the CPU flags that name it)"
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
        cpu_family=cpu.family,
        cpu_model_number=cpu.model_number,
        cpu_stepping=cpu.stepping,
        hypervisor=collect_hypervisor(cpu.flags),
        caches=collect_caches(),
        blas_max_threads=_blas_max_threads(numpy_blas),
    )
