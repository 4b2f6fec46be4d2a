"""Builders the tests share: measurements whose outcome is known, and presets made from
them. Tests import these from here, never from one another."""

from __future__ import annotations

import dataclasses
from typing import Any

from profiler.choice.preset import Preset, derive
from profiler.jobstart.detect import machine_fingerprint
from profiler.results import Measurement

__all__ = [
    "CURVES",
    "TINY_TASK",
    "LIBRARIES",
    "LIBS_RECORD",
    "node_l",
    "node_x",
    "node_y",
    "point",
    "spread_point",
]


def point(
    n: int, threads: int, gflops: float, dtype: str = "float64", ok: bool = True
) -> Measurement:
    seconds = 2 * n**3 / gflops / 1e9
    return Measurement(
        kernel="gemm", dtype=dtype, n=n, threads=threads, median_s=seconds, min_s=seconds,
        cv=0.01, samples=(seconds,) * 3, loops=1, gflops=gflops, threads_verified=ok,
        threads_observed=(threads,),
    )  # fmt: skip


# Small GEMMs lose with more threads, large ones scale until 6 and then flatten.
CURVES = {
    256: {1: 30.0, 2: 28.0, 4: 25.0, 8: 20.0},
    1024: {1: 35.0, 2: 68.0, 4: 120.0, 8: 121.0},
    4096: {1: 38.0, 2: 75.0, 4: 140.0, 6: 200.0, 8: 204.0},
}


def spread_point(
    n: int,
    threads: int,
    gflops: float,
    dtype: str = "float64",
    *,
    spread: float = 0.0,
    workers: int = 1,
    phase: str = "search",
) -> Measurement:
    """A point whose samples spread by +-``spread`` around the median."""
    seconds = 2 * n**3 / gflops / 1e9
    samples = tuple(seconds * (1 + d) for d in (-spread, 0.0, spread, -spread / 2, spread / 2))
    return Measurement(
        kernel="gemm", dtype=dtype, n=n, threads=threads, median_s=seconds, min_s=min(samples),
        cv=spread, samples=samples, loops=1, gflops=gflops, threads_verified=True,
        threads_observed=(threads,) * workers, phase=phase, workers=workers,
    )  # fmt: skip


def node_x(**extra: object) -> Preset:
    """8 CPUs: small 1, medium 4, large 6; layout rows 2 -> 4, 4 -> 2, 8 -> 1; this CPU."""
    model, _, online = machine_fingerprint().partition("|")
    points = [point(n, t, g) for n, curve in CURVES.items() for t, g in curve.items()]
    preset = derive(
        points, node_type="node-x", calibrated_cpus=8, cpu_model=model.replace("-", " "),
        logical_cpus=int(online), partitions=("px",),
    )  # fmt: skip
    return dataclasses.replace(preset, **extra)  # type: ignore[arg-type]


def node_y(**extra: object) -> Preset:
    """2 CPUs, one class of 2 threads."""
    preset = derive(
        [point(1024, 1, 40.0), point(1024, 2, 80.0)], node_type="node-y", calibrated_cpus=2,
        cpu_model="Other CPU", logical_cpus=2, partitions=("py",),
    )  # fmt: skip
    return dataclasses.replace(preset, **extra)  # type: ignore[arg-type]


#: node-l's other libraries: (label, variables strongest first, float64 n=4096 curve)
LIBRARIES = (
    ("blis", ("BLIS_NUM_THREADS", "OMP_NUM_THREADS"), {1: 30.0, 2: 58.0, 3: 86.0, 4: 87.0}),
    ("mkl", ("MKL_NUM_THREADS", "OMP_NUM_THREADS"), {1: 40.0, 2: 80.0, 5: 180.0, 8: 182.0}),
    ("openblas-openmp", ("OMP_NUM_THREADS",), {1: 40.0, 2: 80.0, 4: 81.0}),
    # obeys numpy's variable first: it runs numpy's count, whatever its own curve says
    ("openblas-pthread", ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"), {1: 40.0, 4: 150.0}),
    ("atlas", (), {1: 10.0}),  # obeys nothing: runs one thread whatever is set
)


def node_l() -> Preset:
    """node-x's numpy curves (large 6) beside BLIS (large 3), MKL (5) and an OpenMP
    OpenBLAS (2), each from its own curve."""
    points = [point(n, t, g) for n, curve in CURVES.items() for t, g in curve.items()]
    for label, _, curve in LIBRARIES:
        points += [dataclasses.replace(point(4096, t, g), blas=label) for t, g in curve.items()]
    obeyed = {label: names for label, names, _ in LIBRARIES}
    obeyed["numpy"] = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
    preset = derive(
        points, node_type="node-l", calibrated_cpus=8, partitions=("pl",), variables=obeyed
    )
    return dataclasses.replace(preset, variables=obeyed["numpy"])


#: what BLASPROF_PRESET records after node_l's libraries (large class, 8 CPUs, one process)
LIBS_RECORD = "numpy=6:atlas=1:blis=3:mkl=5:openblas-openmp=2:openblas-pthread=6"


#: a node task's sweep settings that take a few seconds (for the backend tests)
TINY_TASK: dict[str, Any] = {
    "profile": "quick",
    "sizes": [64, 128],
    "dtypes": ["float64"],
    "threads": [1, 2],
    "timing": {"min_time": 0.01, "samples": 3},
}
