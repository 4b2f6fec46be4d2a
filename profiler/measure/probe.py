"""What node is this: CPU, topology, memory, the CPUs this process may use, numpy, and
every BLAS library on it.

Each ``collect_*`` function fills one part of the record from the machine itself; nothing
is hard-coded for any particular host. ``probe()`` assembles them into a ``NodeInfo``.
The microarchitecture comes from archspec (Spack's database of CPUs), or, where archspec
reaches only a generic level (``x86_64_v4``: a hypervisor often hides the flags that name
it), from our vendor/family/model table (``profiler.measure.cpu``); each says which source named
it. The theoretical peak comes from our table of double-precision FLOPs per cycle keyed by
those names, with the clock it used; a CPU neither names gets no peak rather than a guess.
The BLAS libraries are found and described by ``profiler.blas``.
"""

from __future__ import annotations

import os
import platform
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from profiler.jobstart.cpus import affinity_cpus, cgroup_quota, cores_here, usable_of
from profiler.measure import cpu
from profiler.results import BlasLibrary, NodeInfo
from profiler.text import clean_text

__all__ = [
    "probe",
    "collect_cpu",
    "collect_allocation",
    "collect_blas",
    "collect_libraries",
    "collect_numpy",
    "collect_caches",
    "collect_hypervisor",
    "collect_microarchitecture",
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
    "kabylake": 16,
    "coffeelake": 16,
    "cooperlake": 32,
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

#: the source of a microarchitecture that archspec names only by its instruction-set level
_GENERIC = "archspec generic level"

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
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


def collect_cpu(cpuinfo: str | None = None) -> CpuFacts:
    """CPU model, vendor, flags, sockets, cores, NUMA nodes and clock from /proc and /sys
    (``cpuinfo``: a /proc/cpuinfo text to read instead of this machine's)."""
    import psutil

    text = _read("/proc/cpuinfo") or "" if cpuinfo is None else cpuinfo
    cpuid = cpu.parse_cpuinfo(text)
    blocks = cpu.cpuinfo_blocks(text)
    sockets = len({b["physical id"] for b in blocks if "physical id" in b}) or 1
    logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or logical
    nodes = [p for p in Path("/sys/devices/system/node").glob("node[0-9]*")]
    clock_mhz, clock_source = cpu.peak_clock(cpuid)
    model = cpuid.model_name
    if model == "unknown":
        model = clean_text(platform.processor()) or model
    return CpuFacts(
        model=model,
        vendor=cpuid.vendor,
        family=cpuid.family,
        model_number=cpuid.model,
        stepping=cpuid.stepping,
        arm_part=cpuid.arm_part,
        flags=tuple(sorted(cpuid.flags)),
        sockets=sockets,
        physical_cores=physical,
        logical_cpus=logical,
        numa_nodes=max(1, len(nodes)),
        clock_mhz=clock_mhz,
        clock_source=clock_source,
    )


def collect_microarchitecture(facts: CpuFacts) -> cpu.Named:
    """This CPU's microarchitecture and the source that named it: archspec where it names
    one; else our vendor/family/model table (a hypervisor often hides the flags archspec
    needs); else archspec's generic level, or unknown."""
    generic = None
    try:
        import archspec.cpu

        host = archspec.cpu.host()
        if host.vendor != "generic":
            return cpu.Named(host.name, "archspec")
        generic = host.name
    except Exception:  # noqa: BLE001  # archspec absent or /proc/cpuinfo unreadable to it
        pass
    table = cpu.microarchitecture_from_cpuid(
        facts.vendor, facts.family, facts.model_number, facts.stepping
    )
    if table:
        source = f"family {facts.family} model {facts.model_number}"
        return cpu.Named(table, source + (f" (archspec: {generic})" if generic else ""))
    if generic:
        return cpu.Named(generic, _GENERIC)
    return cpu.Named(None, "unknown")


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


def collect_hypervisor(flags: tuple[str, ...]) -> cpu.Named:
    """The hypervisor this node runs under (name None on bare metal), with its source."""
    return cpu.hypervisor(frozenset(flags))


def _blas_max_threads(numpy_blas: dict[str, Any]) -> int | None:
    """The thread ceiling numpy's OpenBLAS was built with (``MAX_THREADS=N``), if stated."""
    config = str((numpy_blas.get("blas") or {}).get("openblas configuration") or "")
    match = re.search(r"MAX_THREADS=([0-9]+)", config)
    return int(match.group(1)) if match else None


def collect_allocation() -> tuple[tuple[int, ...], float | None, dict[str, str]]:
    """CPUs this process may run on, its cgroup CPU quota, and the Slurm allocation."""
    slurm = {k: os.environ[k] for k in SLURM_VARIABLES if k in os.environ}
    return affinity_cpus(), cgroup_quota(), slurm


def usable_cores(affinity: tuple[int, ...], usable: int) -> int:
    """Physical cores among the CPUs this process may use (SMT siblings count once).

    Counted as the job-start rule counts them (``profiler.jobstart.cpus.cores_here``).
    """
    return max(1, min(cores_here(affinity), usable))


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


def peak_f64(facts: CpuFacts, arch: cpu.Named, cores: int) -> tuple[int | None, float | None, str]:
    """FLOPs per cycle, the float64 peak in GFLOP/s, and a note saying which cores, clock,
    and microarchitecture (and who named it) the peak used, or why it is unknown."""
    if arch.source == _GENERIC:
        return None, None, (
            f"unknown: archspec matches {facts.model!r} only to the generic level {arch.name} "
            "(a hypervisor may hide the CPU flags that name it) and family "
            f"{facts.family} model {facts.model_number} is not in our table"
        )  # fmt: skip
    fpc = FLOPS_PER_CYCLE_F64.get(arch.name or "")
    if not fpc:
        return None, None, f"unknown: microarchitecture not known for {facts.model!r}"
    if not facts.clock_mhz:
        return fpc, None, f"unknown: no clock known for {facts.model!r}"
    peak = cores * facts.clock_mhz / 1000.0 * fpc
    note = (
        f"{cores} cores x {facts.clock_mhz / 1000.0:.2f} GHz ({facts.clock_source}) "
        f"x {fpc} FLOPs/cycle ({arch.name} from {arch.source}, float64)"
    )
    return fpc, round(peak, 3), note


def collect_libraries() -> tuple[tuple[dict[str, Any], ...], str | None]:
    """Every BLAS library on this node, each described by a worker process of its own, and
    the file ``libblas.so.3`` resolves to."""
    from profiler.blas.run import find
    from profiler.blas.search import libblas_so_3

    resolved = libblas_so_3()
    return tuple(lib.to_dict() for lib in find()), str(resolved[1]) if resolved else None


def probe() -> NodeInfo:
    """Everything blasprof knows about the node this process runs on."""
    import psutil

    facts = collect_cpu()
    affinity, quota, slurm = collect_allocation()
    usable = usable_of(affinity, quota)
    arch = collect_microarchitecture(facts)
    cores_for_peak = usable_cores(affinity, usable)
    fpc, peak, note = peak_f64(facts, arch, cores_for_peak)
    hyper = collect_hypervisor(facts.flags)
    libraries, libblas = collect_libraries()
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
        cpu_model=facts.model,
        vendor=facts.vendor,
        microarchitecture=arch.name,
        sockets=facts.sockets,
        physical_cores=facts.physical_cores,
        logical_cpus=facts.logical_cpus,
        numa_nodes=facts.numa_nodes,
        simd=tuple(f for f in facts.flags if f in simd_flags),
        clock_mhz=facts.clock_mhz,
        clock_source=facts.clock_source,
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
        peak_gflops_f64=peak,
        peak_note=note,
        usable_cores=cores_for_peak,
        cpu_family=facts.family,
        cpu_model_number=facts.model_number,
        cpu_stepping=facts.stepping,
        hypervisor=hyper.name,
        hypervisor_source=hyper.source,
        microarchitecture_source=arch.source,
        libraries=libraries,
        libblas_so_3=libblas,
        caches=collect_caches(),
        blas_max_threads=_blas_max_threads(numpy_blas),
    )
