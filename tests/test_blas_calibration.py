"""`calibrate --blas`: every chosen library on this machine swept through the same worker
runs, each point stored with its library, each library's preset derived and loaded.

Real libraries, real workers: numpy's OpenBLAS beside Debian's OpenMP OpenBLAS, BLIS
(OpenMP) and the reference BLAS (the slow library that libblas.so.3 can resolve to), all
installed by .ci/run. One shared calibration at n=256 (above OpenBLAS's 64^3 threshold
for threading), 1 and 2 threads, 2 runs, 0.02 s samples: about 15 s on 2 cores.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from profiler.blas.run import Library, find
from tests import forms
from tests.conftest import _clean_env, run_blasprof
from tests.services import absent

LABELS = ("numpy", "openblas-openmp", "blis-openmp", "reference")
SWEEP = ["--sizes", "256", "--dtypes", "float64", "--threads", "1,2", "--exhaustive",
         "--min-time", "0.02", "--samples", "3", "--runs", "2", "--no-layouts"]  # fmt: skip


def _found() -> dict[str, Library]:
    return {lib.label: lib for lib in find() if lib.error is None}


@pytest.fixture(scope="module")
def calibrated_libraries(
    tmp_path_factory: pytest.TempPathFactory, blasprof_exe: str
) -> dict[str, Any]:
    if len(os.sched_getaffinity(0)) < 2:
        absent("these tests need 2 CPUs to tell 1 thread from 2")
    found = _found()
    for label in LABELS:
        if label not in found:
            absent(f"the BLAS library {label} is not installed (.ci/run installs it)")
    home = tmp_path_factory.mktemp("blas") / "home"
    # the reference BLAS as this calibration's system default, the way a job's dynamic
    # linker finds it first (the machine's alternatives are left alone)
    env = {**_clean_env(home), "LD_LIBRARY_PATH": str(Path(found["reference"].path).parent)}
    proc = run_blasprof(
        blasprof_exe, "calibrate", "--executor", "local", "--node-type", "here",
        "--blas", ",".join(LABELS), *SWEEP, "--force", "--json", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    return {"doc": doc, "home": home, "env": env}


def test_each_library_is_swept_in_worker_runs_and_its_points_say_which(
    calibrated_libraries: dict[str, Any],
) -> None:
    doc = calibrated_libraries["doc"]
    assert doc["status"] == "complete", doc.get("error")
    points = {(m["blas"], m["threads"]): m for m in doc["measurements"]}
    assert set(points) == {(label, t) for label in LABELS for t in (1, 2)}
    for m in doc["measurements"]:
        assert len(m["runs"]) == 2, m  # the first pass and one more worker run
        assert m["gflops"] > 0
    # the threads that ran, not a report: the reference BLAS runs 1 whatever it is asked,
    # so its 2-thread point does not hold; Debian's OpenMP OpenBLAS runs what it is set to
    assert points[("reference", 2)]["threads_observed"] == [1]
    assert points[("reference", 2)]["threads_verified"] is False
    assert points[("reference", 1)]["threads_verified"] is True, points[("reference", 1)]
    assert points[("openblas-openmp", 1)]["threads_observed"] == [1]
    # ~2 GFLOP/s against tens: a library's own symbol was timed, not numpy's matmul
    assert points[("reference", 1)]["gflops"] < 0.5 * points[("numpy", 1)]["gflops"]


def test_stored_points_keep_their_library_and_each_library_gets_its_preset(
    calibrated_libraries: dict[str, Any], blasprof_exe: str
) -> None:
    doc, env = calibrated_libraries["doc"], calibrated_libraries["env"]
    shown = run_blasprof(blasprof_exe, "show", str(doc["calibration_id"]), "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    stored = json.loads(shown.stdout)
    key = ("blas", "threads", "gflops", "threads_verified")
    assert sorted(tuple(m[k] for k in key) for m in stored["measurements"]) == sorted(
        tuple(m[k] for k in key) for m in doc["measurements"]
    )
    preset = stored["preset"]
    assert preset["default_blas"] == "numpy"
    libraries = {lib["label"]: lib for lib in preset["libraries"]}
    assert set(libraries) == set(LABELS) - {"numpy"}
    assert [c["threads"] for c in libraries["reference"]["size_classes"]] == [1]
    assert libraries["blis-openmp"]["variables"] == ["BLIS_NUM_THREADS", "OMP_NUM_THREADS"]


@pytest.mark.parametrize("loader", [forms.shell("dash"), forms.python()], ids=["sh", "python"])
def test_the_written_forms_set_each_calibrated_librarys_count(
    calibrated_libraries: dict[str, Any], loader: Any, tmp_path: Path
) -> None:
    doc, home = calibrated_libraries["doc"], calibrated_libraries["home"]
    if (why := forms.available(loader)) is not None:
        absent(why)
    counts = {lib["label"]: lib["size_classes"][0]["threads"]
              for lib in doc["preset"]["libraries"]}  # fmt: skip
    env = {**forms.base_env(tmp_path), "BLASPROF_CPUS": "2", "BLASPROF_NODE_TYPE": "here",
           "BLASPROF_SIZE_CLASS": "small"}  # fmt: skip
    loaded = loader(home / "presets", env)
    assert loaded.other_stderr == []
    assert loaded.variables["BLIS_NUM_THREADS"] == str(counts["blis-openmp"])
    assert f"reference={counts['reference']}" in loaded.variables["BLASPROF_PRESET"]


def test_the_fastest_library_per_class_is_said_and_a_slow_system_default_warned(
    calibrated_libraries: dict[str, Any], blasprof_exe: str
) -> None:
    doc, env = calibrated_libraries["doc"], calibrated_libraries["env"]
    (row,) = doc["fastest"]
    figures = {x["blas"]: x["gflops"] for x in row["libraries"]}
    assert set(figures) == set(LABELS)
    assert row["fastest"] == max(figures, key=figures.__getitem__) != "reference"
    (warning,) = doc["blas_warnings"]
    assert warning.startswith("the system default BLAS (reference, what libblas.so.3")
    shown = run_blasprof(blasprof_exe, "show", str(doc["calibration_id"]), env=env)
    assert shown.returncode == 0, shown.stderr
    assert "fastest BLAS per size class" in shown.stdout
    assert "warning: the system default BLAS (reference" in " ".join(shown.stdout.split())
    for label in LABELS[1:]:
        assert f"{label}:" in shown.stdout  # each library's own table and counts


def test_compare_reads_two_libraries_of_one_calibration_and_list_filters_on_them(
    calibrated_libraries: dict[str, Any], blasprof_exe: str
) -> None:
    doc, env = calibrated_libraries["doc"], calibrated_libraries["env"]
    cid = str(doc["calibration_id"])
    proc = run_blasprof(blasprof_exe, "compare", f"{cid}:numpy", f"{cid}:reference", "--json",
                        env=env)  # fmt: skip
    # the reference BLAS is far slower: B regressed, unless the load made the runs too
    # variable to judge (this machine is shared); the change says it either way
    assert proc.returncode in (0, 1), proc.stderr
    result = json.loads(proc.stdout)
    assert (result["a"]["library"], result["b"]["library"]) == ("numpy", "reference")
    verified = {m["blas"]: m for m in doc["measurements"] if m["threads"] == 1}
    (row,) = [r for r in result["rows"] if r["threads"] == 1]
    assert row["change"] < -0.5
    assert row["verdict"] in ("regression", "too-variable")
    assert proc.returncode == (row["verdict"] == "regression")
    assert row["a"]["gflops"] == pytest.approx(verified["numpy"]["gflops"], rel=0.05)
    assert row["b"]["gflops"] == pytest.approx(verified["reference"]["gflops"], rel=0.05)
    assert "share calibration" not in proc.stderr  # two libraries are not one compared twice
    same = run_blasprof(blasprof_exe, "compare", cid, cid, "--blas", "blis-openmp", "--json",
                        env=env)  # fmt: skip
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout)["b"]["library"] == "blis-openmp"
    for label, listed in (("blis-openmp", [doc["calibration_id"]]), ("mkl", [])):
        out = run_blasprof(blasprof_exe, "list", "--blas", label, "--json", env=env)
        assert [c["calibration_id"] for c in json.loads(out.stdout)] == listed, label


def test_the_plot_draws_one_curve_set_per_library(calibrated_libraries: dict[str, Any]) -> None:
    pytest.importorskip("matplotlib")
    from profiler.history.plots import calibration_figure

    figure = calibration_figure(calibrated_libraries["doc"])
    labels = {line.get_label() for line in figure.axes[0].get_lines()}
    assert {f"{label} float64 n=256" for label in LABELS} <= labels


def test_an_unknown_library_is_refused_with_those_found(home: Path, blasprof_exe: str) -> None:
    proc = run_blasprof(blasprof_exe, "calibrate", "--executor", "local", "--blas", "numpy,nope")
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "'nope'" in line and "numpy" in line and "found:" in line


def test_a_library_that_fails_ends_its_own_curve_with_the_reason(tmp_path: Path) -> None:
    """A file that is no BLAS (libm) stands for a broken build: its worker fails, its
    reason is a note, and the next library is still swept."""
    from profiler.measure.sweep import run_sweep
    from profiler.settings import SweepSettings, TimingSettings

    libm = Path("/lib/x86_64-linux-gnu/libm.so.6")
    if not libm.is_file():
        absent(f"{libm} is not here")
    broken = Library(label="broken", member="reference", title="", path=str(libm))
    settings = SweepSettings(
        profile="test", sizes=(64,), dtypes=("float64",), threads=(1,), strategy="exhaustive",
        timing=TimingSettings(min_time=0.01, samples=2), runs=1,
    )  # fmt: skip
    outcome = run_sweep(settings, [1], libraries={"broken": broken, "numpy": None})
    assert outcome.completed
    assert [m.blas for m in outcome.measurements] == ["numpy"]
    (note,) = outcome.notes
    assert note.startswith("broken n=64 float64: a run exited 1") and "gemm" in note, note


@pytest.mark.skipif(
    not list((Path(sys.prefix) / "lib").glob("libmkl_rt.so*")),
    reason="the mkl wheel is not installed (about 1 GB; not run where this was written)",
)
def test_mkl_is_calibrated_like_any_other_library(home: Path, blasprof_exe: str) -> None:
    proc = run_blasprof(
        blasprof_exe, "calibrate", "--executor", "local", "--blas", "numpy,mkl", *SWEEP,
        "--force", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    labels = {m["blas"] for m in doc["measurements"]}
    assert "mkl" in labels and "numpy" in labels
    mkl = {lib["label"]: lib for lib in doc["preset"]["libraries"]}["mkl"]
    assert mkl["variables"][0] == "MKL_NUM_THREADS"
