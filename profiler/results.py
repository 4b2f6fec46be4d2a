"""The plain, versioned records that cross process and storage boundaries.

A node task returns ``NodeResult.to_dict()`` (plain data, safe to pickle across blasprof
versions); the login shell rebuilds it with ``NodeResult.from_dict`` and stores it. Every
record is frozen; the stored form carries ``schema_version``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from profiler import stats
from profiler.settings import NUMPY_BLAS, SweepSettings

__all__ = [
    "SCHEMA_VERSION",
    "BlasLibrary",
    "NodeInfo",
    "Measurement",
    "Run",
    "Verification",
    "NodeResult",
    "NUMPY_BLAS",
    "blas_label",
    "gemm_flops",
    "is_blas_label",
]

SCHEMA_VERSION = 2

_BLAS_LABEL = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


def is_blas_label(value: object) -> bool:
    """Whether ``value`` has the shape of a library label (``profiler.blas``'s
    ``Member.label``): the only library names that reach a report, a row or a preset."""
    return isinstance(value, str) and _BLAS_LABEL.fullmatch(value) is not None


def gemm_flops(n: int) -> float:
    """Floating-point operations of one n x n x n GEMM (multiply and add counted)."""
    return 2.0 * n * n * n


def blas_label(lib: BlasLibrary | Mapping[str, Any]) -> str:
    """A BLAS library as every report names it: ``openblas 0.3.26 (pthreads)``; a stored
    stack (a mapping) and a probed one (a ``BlasLibrary``) read the same."""
    if isinstance(lib, Mapping):
        name, version, layer = (
            lib.get("internal_api"),
            lib.get("version"),
            lib.get("threading_layer"),
        )
    else:
        name, version, layer = lib.internal_api, lib.version, lib.threading_layer
    label = f"{name or '?'} {version or '?'}"
    return f"{label} ({layer})" if layer else label


@dataclass(frozen=True)
class BlasLibrary:
    """One BLAS or OpenMP runtime as threadpoolctl reports it."""

    user_api: str
    internal_api: str
    version: str | None
    threading_layer: str | None
    architecture: str | None
    num_threads: int
    filepath: str
    prefix: str = ""

    @property
    def limit_scope(self) -> str:
        """Whose thread count a limit changes: OpenMP's ``omp_set_num_threads`` sets the
        calling thread's; the BLAS libraries' setters act on the whole process."""
        return "calling thread" if self.user_api == "openmp" else "process"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BlasLibrary:
        return cls(
            user_api=d["user_api"],
            internal_api=d["internal_api"],
            version=d.get("version"),
            threading_layer=d.get("threading_layer"),
            architecture=d.get("architecture"),
            num_threads=int(d.get("num_threads") or 0),
            filepath=d.get("filepath", ""),
            prefix=d.get("prefix", ""),
        )


@dataclass(frozen=True)
class NodeInfo:
    """What one node is: CPU, topology, memory, allocation, BLAS stack, numpy build."""

    hostname: str
    cpu_model: str
    vendor: str
    microarchitecture: str | None
    sockets: int
    physical_cores: int
    logical_cpus: int
    numa_nodes: int
    simd: tuple[str, ...]
    clock_mhz: float | None
    clock_source: str
    memory_total_bytes: int
    memory_available_bytes: int
    affinity_cpus: tuple[int, ...]
    cgroup_cpu_limit: float | None
    usable_cpus: int
    slurm: dict[str, str]
    blas: tuple[BlasLibrary, ...]
    numpy_version: str
    numpy_blas: dict[str, Any]
    python_version: str
    platform: str
    flops_per_cycle_f64: int | None
    peak_gflops_f64: float | None
    peak_note: str
    #: physical cores among the usable CPUs (an allocation may hold part of an SMT node)
    usable_cores: int = 0
    cpu_family: int | None = None
    cpu_model_number: int | None = None
    cpu_stepping: int | None = None
    #: the hypervisor this node runs under, None on bare metal
    hypervisor: str | None = None
    #: cache sizes in bytes per instance: L1d, L1i, L2, L3
    caches: dict[str, int] = field(default_factory=dict)
    #: the most threads numpy's OpenBLAS was built for (MAX_THREADS), where it says
    blas_max_threads: int | None = None
    #: what named the hypervisor (sysfs, DMI, the paravirtual clock) or why none is named
    hypervisor_source: str = ""
    #: what named the microarchitecture: archspec, or our family/model table
    microarchitecture_source: str = ""
    #: every BLAS library on the node (``profiler.blas.run.Library.to_dict()``), whether
    #: loaded or not: version, threading layer, kernel, path, the variables it obeys
    libraries: tuple[dict[str, Any], ...] = ()
    #: the file the generic ``libblas.so.3`` resolves to, where the linker's cache has one
    libblas_so_3: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NodeInfo:
        d = dict(d)
        d["simd"] = tuple(d.get("simd", ()))
        d["affinity_cpus"] = tuple(d.get("affinity_cpus", ()))
        d["blas"] = tuple(BlasLibrary.from_dict(b) for b in d.get("blas", ()))
        d["libraries"] = tuple(dict(lib) for lib in d.get("libraries", ()))
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def peak_gflops(self, dtype: str, threads: int) -> float | None:
        """Theoretical peak for ``threads`` cores at the clock used for ``peak_gflops_f64``."""
        if self.peak_gflops_f64 is None or self.usable_cpus < 1:
            return None
        cores_used = self.usable_cores or min(
            self.usable_cpus, self.physical_cores or self.usable_cpus
        )
        cores = min(threads, cores_used)
        per_core = self.peak_gflops_f64 / cores_used
        factor = 2.0 if dtype == "float32" else 1.0
        return per_core * cores * factor


@dataclass(frozen=True)
class Run:
    """One worker process's figure for one point: the median seconds per GEMM of its
    samples, taken in that process with its own operands."""

    median_s: float
    samples: tuple[float, ...]
    loops: int
    threads_verified: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "samples": list(self.samples)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Run:
        return cls(
            median_s=float(d["median_s"]),
            samples=tuple(float(s) for s in d.get("samples", ())),
            loops=int(d.get("loops", 1)),
            threads_verified=bool(d.get("threads_verified", True)),
        )


@dataclass(frozen=True)
class Measurement:
    """One benchmark point: a GEMM of one size and dtype on one thread count.

    ``workers`` > 1: a layout point, that many processes of ``threads`` threads each at
    once; ``samples`` and ``median_s`` are then seconds per GEMM of the whole layout, so
    ``gflops`` is their aggregate.

    ``runs``: the point measured in several worker processes, each a ``Run``. Then
    ``median_s`` is the mean over runs of each run's median time (what a job meets on
    average, so ``gflops`` is the harmonic mean of the runs' figures), ``samples`` all
    runs' samples in order, and every spread is the spread between runs. No runs (older
    calibrations, layout points): the point is its one run, its samples.
    """

    kernel: str
    dtype: str
    n: int
    threads: int
    median_s: float
    min_s: float
    cv: float
    samples: tuple[float, ...]
    loops: int
    gflops: float
    threads_verified: bool
    threads_observed: tuple[int, ...] = ()
    phase: str = "full"
    workers: int = 1
    #: the BLAS library the point ran on (a ``profiler.blas`` label)
    blas: str = NUMPY_BLAS
    runs: tuple[Run, ...] = ()

    @property
    def run_samples(self) -> tuple[tuple[float, ...], ...]:
        """Each run's samples (the point's own samples when it has no runs)."""
        return tuple(r.samples for r in self.runs) if self.runs else (self.samples,)

    @property
    def run_gflops(self) -> tuple[float, ...]:
        """Each run's figure in GFLOP/s (the point's own when it has no runs)."""
        if not self.runs:
            return (self.gflops,)
        return tuple(gemm_flops(self.n) * self.workers / r.median_s / 1e9 for r in self.runs)

    @property
    def spread(self) -> float:
        """The relative spread of the figure: between runs (their times' standard
        deviation over their mean) when there are several, else the samples' scaled MAD."""
        if len(self.runs) >= 2:
            return stats.between_runs_spread([r.median_s for r in self.runs])
        return stats.relative_spread(self.samples)

    @property
    def uncertainty(self) -> float:
        """The relative standard error of the figure: of the mean over runs when there are
        several (never less than one run's own), else of the samples' median."""
        if len(self.runs) >= 2:
            within = max(stats.uncertainty(r.samples) for r in self.runs)
            return max(within, stats.mean_error([r.median_s for r in self.runs]))
        return stats.uncertainty(self.samples)

    @property
    def outliers(self) -> int:
        """Samples far from their run's median (kept, but flagged); a run's state that the
        other runs also saw is not an outlier (the between-run spread is the floor)."""
        floor = self.spread if len(self.runs) >= 2 else 0.0
        return sum(stats.outliers(s, floor=floor) for s in self.run_samples)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "runs": [r.to_dict() for r in self.runs]}

    def to_json(self) -> dict[str, Any]:
        """The stored form plus the figures derived from the samples and runs."""
        d = self.to_dict()
        d["samples"] = list(self.samples)
        d["threads_observed"] = list(self.threads_observed)
        if not self.runs:
            d["runs"] = [Run(self.median_s, self.samples, self.loops).to_dict()]
        for run, figure in zip(d["runs"], self.run_gflops, strict=True):
            run["gflops"] = figure
        return {**d, "spread": self.spread, "outliers": self.outliers}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Measurement:
        d = dict(d)
        d["samples"] = tuple(d.get("samples", ()))
        d["threads_observed"] = tuple(d.get("threads_observed", ()))
        d["runs"] = tuple(Run.from_dict(r) for r in d.get("runs") or ())
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class Verification:
    """A fresh process started with the preset's environment, timed on one point."""

    n: int
    dtype: str
    threads: int
    sweep_gflops: float
    fresh_gflops: float
    threads_observed: tuple[int, ...]
    ratio: float
    passed: bool
    note: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Verification:
        d = dict(d)
        d["threads_observed"] = tuple(d.get("threads_observed", ()))
        return cls(**d)


@dataclass(frozen=True)
class NodeResult:
    """Everything one node task produced. ``status`` is complete, partial or failed."""

    node_type: str
    node: NodeInfo | None
    measurements: tuple[Measurement, ...]
    status: str
    started_at: str
    finished_at: str
    settings: SweepSettings
    verification: Verification | None = None
    error: str | None = None
    schema_version: int = SCHEMA_VERSION
    #: how busy the node was while it measured (``profiler.measure.conditions.Conditions.to_dict``)
    conditions: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "node_type": self.node_type,
            "node": self.node.to_dict() if self.node else None,
            "measurements": [m.to_dict() for m in self.measurements],
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "settings": self.settings.to_dict(),
            "verification": dataclasses.asdict(self.verification) if self.verification else None,
            "error": self.error,
            "conditions": self.conditions,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NodeResult:
        version = int(d.get("schema_version", 0))
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"result schema version {version} is newer than this blasprof "
                f"understands ({SCHEMA_VERSION}); upgrade blasprof"
            )
        return cls(
            node_type=d["node_type"],
            node=NodeInfo.from_dict(d["node"]) if d.get("node") else None,
            measurements=tuple(Measurement.from_dict(m) for m in d.get("measurements", ())),
            status=d["status"],
            started_at=d["started_at"],
            finished_at=d["finished_at"],
            settings=SweepSettings.from_dict(d["settings"]),
            verification=Verification.from_dict(d["verification"])
            if d.get("verification")
            else None,
            error=d.get("error"),
            schema_version=version,
            conditions=d.get("conditions"),
        )
