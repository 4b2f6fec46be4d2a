"""Realistic calibration history, stored through the store API: for the history tests and the
query benchmark (``benchmarks/bench_queries.py``).

GFLOP/s follow a simple model of a node (peak per core, parallel efficiency that falls for
small sizes, float32 twice float64) times a per-node factor (a slow node), a per-calibration
factor (a BLAS upgrade that costs 10%, a 1% wobble) and noise per sample; every sample is
stored as seconds per GEMM, as a real sweep stores them. Deterministic for a given seed.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from profiler.choice.preset import derive
from profiler.results import BlasLibrary, Measurement, NodeInfo, NodeResult, gemm_flops
from profiler.settings import PROFILES, with_overrides

__all__ = ["TypeSpec", "node_result", "postgres_database", "store_calibration"]


@dataclass(frozen=True)
class TypeSpec:
    """A node type of the modelled fleet."""

    name: str
    cpu_model: str
    cores: int
    peak_per_core: float
    hosts: tuple[str, ...]
    sizes: tuple[int, ...] = (256, 1024, 4096)
    dtypes: tuple[str, ...] = ("float64", "float32")
    threads: tuple[int, ...] = ()

    @property
    def thread_counts(self) -> tuple[int, ...]:
        if self.threads:
            return self.threads
        counts, t = [], 1
        while t < self.cores:
            counts.append(t)
            t *= 2
        return (*counts, self.cores)


def model_gflops(spec: TypeSpec, dtype: str, n: int, threads: int) -> float:
    """Noise-free GFLOP/s of the model: small GEMMs stop scaling early."""
    serial = 0.12 * (256 / n) ** 1.5  # the share that does not parallelise
    speedup = threads / (1 + serial * (threads - 1))
    efficiency = n**3 / (n**3 + 64**3)
    return spec.peak_per_core * speedup * efficiency * (2.0 if dtype == "float32" else 1.0)


def _node_info(spec: TypeSpec, host: str, blas_version: str, library: str) -> NodeInfo:
    return NodeInfo(
        hostname=host, cpu_model=spec.cpu_model, vendor="AuthenticAMD", microarchitecture="zen3",
        sockets=1, physical_cores=spec.cores, logical_cpus=spec.cores, numa_nodes=1,
        simd=("avx2", "fma"), clock_mhz=2450.0, clock_source="test model",
        memory_total_bytes=64 * 2**30, memory_available_bytes=60 * 2**30,
        affinity_cpus=tuple(range(spec.cores)), cgroup_cpu_limit=None, usable_cpus=spec.cores,
        slurm={"SLURM_JOB_PARTITION": spec.name},
        blas=(
            BlasLibrary("blas", library, blas_version, "pthreads", "Zen", spec.cores,
                        f"/opt/{library}-{blas_version}/lib/lib{library}.so"),
        ),
        numpy_version="2.1.0", numpy_blas={"name": library, "version": blas_version},
        python_version="3.11.9", platform="Linux-6.1-x86_64", flops_per_cycle_f64=16,
        peak_gflops_f64=spec.peak_per_core * spec.cores,
        peak_note=f"{spec.cores} cores x 2.45 GHz x 16 FLOPs/cycle (model)",
        usable_cores=spec.cores,
    )  # fmt: skip


def node_result(
    spec: TypeSpec,
    host: str,
    when: dt.datetime,
    *,
    rng: random.Random,
    factor: float = 1.0,
    blas_version: str = "0.3.21",
    library: str = "openblas",
    cv: float = 0.02,
    samples: int = 5,
) -> NodeResult:
    """One node's sweep of the model: every (dtype, n, threads) with ``samples`` samples."""
    points = []
    for dtype in spec.dtypes:
        for n in spec.sizes:
            for threads in spec.thread_counts:
                true = model_gflops(spec, dtype, n, threads) * factor
                seconds = sorted(
                    gemm_flops(n) / (true * 1e9) * max(0.5, rng.gauss(1.0, cv))
                    for _ in range(samples)
                )
                median = seconds[len(seconds) // 2]
                mean = sum(seconds) / len(seconds)
                spread = math.sqrt(sum((s - mean) ** 2 for s in seconds) / len(seconds))
                points.append(
                    Measurement(
                        kernel="gemm",
                        dtype=dtype,
                        n=n,
                        threads=threads,
                        median_s=median,
                        min_s=seconds[0],
                        cv=spread / mean,
                        samples=tuple(seconds),
                        loops=1,
                        gflops=gemm_flops(n) / median / 1e9,
                        threads_verified=True,
                        threads_observed=(threads,),
                    )  # fmt: skip
                )
    stamp = when.isoformat(timespec="seconds")
    settings = with_overrides(
        PROFILES["quick"], sizes=spec.sizes, dtypes=spec.dtypes, threads=spec.thread_counts
    )
    return NodeResult(
        node_type=spec.name, node=_node_info(spec, host, blas_version, library),
        measurements=tuple(points), status="complete", started_at=stamp, finished_at=stamp,
        settings=settings,
    )  # fmt: skip


def store_calibration(
    database: object,
    spec: TypeSpec,
    when: dt.datetime,
    *,
    rng: random.Random,
    hosts: Sequence[str] | None = None,
    factors: Mapping[str, float] | None = None,
    factor: float = 1.0,
    blas_version: str = "0.3.21",
    library: str = "openblas",
    cv: float = 0.02,
    samples: int = 5,
    preset: bool = True,
) -> int:
    """Store one calibration of ``spec`` taken at ``when`` on ``hosts`` (default all) through
    the ``db.Database`` facade, its preset too; return its id."""
    hosts = list(hosts or spec.hosts)
    cal = database.create_calibration(  # type: ignore[attr-defined]
        spec.name, executor="slurm", profile="quick", settings={"tolerance": 0.03},
        created_at=when,
    )  # fmt: skip
    results = []
    for i, host in enumerate(hosts):
        job = database.add_job(  # type: ignore[attr-defined]
            cal, external_id=f"{cal}_{i}", folder=None, state="PENDING", array_index=i
        )
        result = node_result(
            spec, host, when + dt.timedelta(minutes=10), rng=rng,
            factor=factor * (factors or {}).get(host, 1.0), blas_version=blas_version,
            library=library, cv=cv, samples=samples,
        )  # fmt: skip
        database.store_node_result(job, result, state="COMPLETED")  # type: ignore[attr-defined]
        results.append(result)
    done = when + dt.timedelta(minutes=20)
    database.finish_calibration(cal, "complete", finished_at=done)  # type: ignore[attr-defined]
    if preset:
        chosen = derive(
            [m for r in results for m in r.measurements], node_type=spec.name,
            calibrated_cpus=spec.cores, calibration_id=cal,
            created_at=done.isoformat(timespec="seconds"),
            blas=f"{library} {blas_version} (pthreads)", cpu_model=spec.cpu_model,
            logical_cpus=spec.cores, partitions=(spec.name,),
        )  # fmt: skip
        database.store_preset(cal, chosen, created_at=done)  # type: ignore[attr-defined]
    return cal


@contextmanager
def postgres_database(base_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database on the server of ``base_url``; dropped afterwards."""
    from sqlalchemy import create_engine, make_url, text

    base = make_url(base_url)
    name = f"blasprof_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
