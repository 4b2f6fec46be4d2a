"""Presets per BLAS library on the real libraries of this machine: figures measured here on
numpy's OpenBLAS, Debian's OpenMP OpenBLAS and BLIS choose each library's own count; every
form renders them; a real GEMM in a fresh process per library, started with the
environment a form left, runs the count the preset holds for that library (BLIS through
BLIS_NUM_THREADS, the OpenMP OpenBLAS through OMP_NUM_THREADS); and ``blasprof check``
counts the threads that ran. About 10 s on 2 cores: each GEMM is n=256 for 0.05 s in a
worker process that starts in ~0.2 s.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from profiler.blas.run import Library, find, time_gemm
from profiler.choice.preset import LibraryPreset, Preset, derive
from profiler.choice.rule import choose, curves_of
from profiler.jobstart.budget import THREAD_VARIABLES
from profiler.jobstart.forms.files import write_presets
from profiler.results import Measurement
from tests import forms
from tests.conftest import run_blasprof
from tests.services import absent

LABELS = ("numpy", "openblas-openmp", "blis-openmp")
N = 256  # above OpenBLAS's 64^3 threshold for threading
LOADERS = forms.LOADERS


@pytest.fixture(scope="module")
def libraries() -> dict[str, Library]:
    if len(os.sched_getaffinity(0)) < 2:
        absent("these tests need 2 CPUs to tell 1 thread from 2")
    found = {lib.label: lib for lib in find() if lib.error is None}
    for label in LABELS:
        if label not in found:
            absent(f"the BLAS library {label} is not installed (.ci/run installs it)")
    return {label: found[label] for label in LABELS}


@pytest.fixture(autouse=True)
def _no_thread_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers inherit this environment: the preset's variables are the only ones."""
    for name in (*THREAD_VARIABLES, "GOTO_NUM_THREADS", "OMP_THREAD_LIMIT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OPENBLAS_DEFAULT_NUM_THREADS", raising=False)


def _measured(lib: Library, threads: int) -> Measurement:
    """One sweep point through ``lib`` as the choice takes it (threads set by its API)."""
    point = time_gemm(lib, N, threads=threads, min_time=0.05, timeout=60)
    assert point.ok and point.gflops, point
    seconds = 2 * N**3 / point.gflops / 1e9
    return Measurement(
        kernel="gemm", dtype="float64", n=N, threads=threads, median_s=seconds, min_s=seconds,
        cv=0.0, samples=(seconds,), loops=point.reps, gflops=point.gflops,
        threads_verified=point.threads_ran == threads, threads_observed=(point.threads_ran or 0,),
        blas=lib.label,
    )  # fmt: skip


def _written(preset: Preset, tmp_path: Path) -> Path:
    directory = tmp_path / "presets"
    directory.mkdir(exist_ok=True)
    _, warnings = write_presets([preset], directory)
    assert warnings == []
    return directory


def _job_env(tmp_path: Path) -> dict[str, str]:
    return {**forms.base_env(tmp_path), "BLASPROF_CPUS": "2", "SLURM_JOB_PARTITION": "here"}


def _every_form(directory: Path, env: dict[str, str]) -> dict[str, str]:
    """The variables every form leaves (they must all leave the same)."""
    left = {}
    for loader in LOADERS:
        if (why := forms.available(loader)) is not None:
            absent(why)
        loaded = loader(directory, env)
        assert loaded.notes == [] and loaded.other_stderr == [], loader.__name__
        left[loader.__name__] = {k: v for k, v in loaded.variables.items() if v is not None}
    first = next(iter(left.values()))
    assert all(v == first for v in left.values()), left
    assert "OMP_THREAD_LIMIT" not in first
    return first


def _threads_ran(libraries: dict[str, Library], env: dict[str, str]) -> dict[str, int | None]:
    """Per library, the threads that ran a GEMM in a fresh process started with ``env``."""
    ran = {}
    for label, lib in libraries.items():
        point = time_gemm(lib, N, env=env, min_time=0.05, timeout=60)
        assert point.ok, point
        ran[label] = point.threads_ran
    return ran


def test_real_figures_choose_each_librarys_count_and_every_form_makes_it_run(
    libraries: dict[str, Library], tmp_path: Path
) -> None:
    points = [_measured(lib, t) for lib in libraries.values() for t in (1, 2)]
    variables = {label: lib.variables for label, lib in libraries.items()}
    preset = derive(
        points, node_type="here", calibrated_cpus=2, partitions=("here",), variables=variables
    )
    assert preset.default_blas == "numpy"
    by_label = {lib.label: lib for lib in preset.libraries}
    assert set(by_label) == {"openblas-openmp", "blis-openmp"}
    counts = {"numpy": preset.size_class("small").threads}
    for label, lib in by_label.items():
        assert lib.variables == libraries[label].variables
        (small,) = lib.size_classes
        own = [m for m in points if m.blas == label and m.threads_verified]
        assert small.threads == choose(curves_of(own), preset.tolerance).threads
        counts[label] = small.threads
    assert Preset.from_dict(json.loads(json.dumps(preset.to_dict()))) == preset

    env = _job_env(tmp_path)
    left = _every_form(_written(preset, tmp_path), {**env, "BLASPROF_SIZE_CLASS": "small"})
    record = ":".join(f"{label}={n}" for label, n in counts.items())
    assert left["BLASPROF_PRESET"] == f"here:small:{counts['numpy']}:{record}"
    assert left["BLIS_NUM_THREADS"] == str(counts["blis-openmp"])
    assert left["OMP_NUM_THREADS"] == str(counts["openblas-openmp"])
    assert left["OPENBLAS_NUM_THREADS"] == str(counts["numpy"])
    assert _threads_ran(libraries, {**env, **left}) == counts


@pytest.mark.parametrize("numpy, others", [(1, 2), (2, 1)])
def test_each_library_runs_its_own_count_not_numpys(
    numpy: int, others: int, libraries: dict[str, Library], tmp_path: Path
) -> None:
    """Counts that differ between numpy and the others, in both directions, so that a form
    giving every variable one count fails for some library."""
    base = derive(
        [dataclasses.replace(_fixed(N, t), blas="numpy") for t in (1, 2)],
        node_type="here", calibrated_cpus=2, partitions=("here",),
    )  # fmt: skip
    small = dataclasses.replace(base.size_classes[0], threads=numpy)
    others_class = dataclasses.replace(small, threads=others)
    preset = dataclasses.replace(
        base,
        size_classes=(small,),
        libraries=tuple(
            LibraryPreset(label, libraries[label].variables, (others_class,))
            for label in ("openblas-openmp", "blis-openmp")
        ),
    )
    env = _job_env(tmp_path)
    left = _every_form(_written(preset, tmp_path), env)
    ran = _threads_ran(libraries, {**env, **left})
    assert ran == {"numpy": numpy, "openblas-openmp": others, "blis-openmp": others}


def _fixed(n: int, threads: int) -> Measurement:
    """A point whose figures only make a preset to edit (the counts are set by the test)."""
    seconds = 2 * n**3 / 10e9
    return Measurement(
        kernel="gemm", dtype="float64", n=n, threads=threads, median_s=seconds, min_s=seconds,
        cv=0.0, samples=(seconds,), loops=1, gflops=10.0, threads_verified=True,
    )  # fmt: skip


def test_check_counts_the_threads_each_library_ran(
    libraries: dict[str, Library], blasprof_exe: str, tmp_path: Path
) -> None:
    blis = LibraryPreset("blis-openmp", libraries["blis-openmp"].variables, ())
    base = derive(
        [_fixed(N, 1), _fixed(N, 2)], node_type="here", calibrated_cpus=2, partitions=("here",)
    )
    two = dataclasses.replace(base.size_classes[0], threads=2)
    preset = dataclasses.replace(
        base,
        size_classes=(dataclasses.replace(two, threads=1),),
        libraries=(
            dataclasses.replace(blis, size_classes=(two,)),
            # a library this node lacks: listed as not checked, never taken as checked
            LibraryPreset("nosuch-blas", (), (two,)),
        ),
    )
    env = _job_env(tmp_path)
    applied = {**env, "PATH": os.environ["PATH"]}
    applied.update(_every_form(_written(preset, tmp_path), env))
    assert applied["BLIS_NUM_THREADS"] == "2" and applied["OPENBLAS_NUM_THREADS"] == "1"
    done = run_blasprof(blasprof_exe, "check", "--json", env=applied)
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    ran = {lib["label"]: (lib["threads_ran"], lib["expected"]) for lib in doc["libraries"]}
    assert ran["numpy"] == (1, 1) and ran["blis-openmp"] == (2, 2), ran
    (lacking,) = [lib for lib in doc["libraries"] if lib["label"] == "nosuch-blas"]
    assert lacking["ok"] is None and lacking["error"] == "not on this node: not checked"
    # the job changed BLIS's variable after the preset: BLIS runs 1, not the preset's 2
    bad = run_blasprof(blasprof_exe, "check", env={**applied, "BLIS_NUM_THREADS": "1"})
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "blis-openmp runs 1, not 2" in bad.stdout
