"""Presets: derivation, the job-start rule with any number of CPUs, the checks every
rendered value passes, and how preset files are written.

The forms themselves run in their real interpreters in test_preset_forms.py.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import py_compile
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from profiler.choice.preset import Preset, derive, threads_for
from profiler.jobstart import budget
from profiler.jobstart.budget import plan
from profiler.jobstart.forms import checked as render_checked
from profiler.jobstart.forms import files
from profiler.names import default_node_type
from profiler.results import Measurement
from tests import forms
from tests.builders import CURVES, point


@pytest.fixture
def preset() -> Preset:
    points = [point(n, t, g) for n, curve in CURVES.items() for t, g in curve.items()]
    return derive(
        points, node_type="node-x", calibrated_cpus=8, cpu_model="Test CPU", logical_cpus=8
    )


def test_derive_picks_the_smallest_count_within_tolerance(preset: Preset) -> None:
    assert [c.name for c in preset.size_classes] == ["small", "medium", "large"]
    assert [c.threads for c in preset.size_classes] == [1, 4, 6]
    large = preset.size_class("large")
    assert (large.best_threads, large.best_gflops, large.gflops) == (8, 204.0, 200.0)
    assert preset.default_class == "large" and preset.default_threads == 6
    # class bounds are fixed, whatever sizes were measured
    assert [c.max_n for c in preset.size_classes] == [256, 1024, 4096]
    assert {(x.workers, x.threads) for x in preset.layouts} == {(1, 6), (2, 4), (4, 2), (8, 1)}
    assert preset.layout_table() == {
        "small": ((1, 1), (2, 1), (4, 1), (8, 1)),
        "medium": ((1, 4), (2, 4), (4, 2), (8, 1)),
        "large": ((1, 6), (2, 4), (4, 2), (8, 1)),
    }

    # the job-start rule on the rendered values, with CPUs enough not to cap it
    def calibrated(size_class: str, workers: int) -> int:
        done = plan({}, _presets(preset), "node-x", workers, size_class, usable=99_999)
        return done["threads"]

    assert calibrated("large", 3) == 4  # the 2-worker row
    assert calibrated("large", 64) == 1
    assert calibrated("medium", 1) == 4


def test_derive_takes_a_count_good_for_every_dtype() -> None:
    points = [point(2048, 1, 40.0), point(2048, 2, 41.0)]
    points += [point(2048, 1, 60.0, "float32"), point(2048, 2, 110.0, "float32")]
    preset = derive(points, node_type="n", calibrated_cpus=2)
    (only,) = preset.size_classes
    assert only.name == "large" and only.threads == 2 and only.within_tolerance
    assert only.losses == {"float64": 0.0, "float32": 0.0}


def test_derive_ignores_points_whose_thread_limit_did_not_hold() -> None:
    points = [point(1024, 1, 40.0), point(1024, 2, 80.0, ok=False)]
    preset = derive(points, node_type="n", calibrated_cpus=2)
    assert preset.default_threads == 1
    with pytest.raises(ValueError, match="no verified"):
        derive([point(1024, 2, 80.0, ok=False)], node_type="n", calibrated_cpus=2)


def _of(label: str, n: int, curve: dict[int, float], ok: bool = True) -> list[Measurement]:
    return [dataclasses.replace(point(n, t, g, ok=ok), blas=label) for t, g in curve.items()]


def test_derive_gives_each_library_its_own_classes_from_its_own_curves(preset: Preset) -> None:
    points = [point(n, t, g) for n, curve in CURVES.items() for t, g in curve.items()]
    points += _of("blis", 4096, {1: 30.0, 2: 58.0, 3: 86.0, 4: 87.0})
    points += _of("blis", 256, {1: 20.0, 2: 30.0})
    points += _of("mkl", 4096, {1: 40.0, 2: 80.0}, ok=False)  # its limit did not hold
    variables = {"blis": ("BLIS_NUM_THREADS", "OMP_NUM_THREADS")}
    mixed = derive(points, node_type="node-x", calibrated_cpus=8, variables=variables)
    # numpy's choice is unchanged by the other libraries' points
    assert mixed.size_classes == preset.size_classes and mixed.default_blas == "numpy"
    (blis,) = mixed.libraries
    assert blis.label == "blis" and blis.variables == variables["blis"]
    assert [(c.name, c.threads) for c in blis.size_classes] == [("small", 2), ("large", 3)]
    assert Preset.from_dict(mixed.to_dict()) == mixed


def test_a_library_not_measured_again_keeps_its_classes(preset: Preset) -> None:
    points = [point(n, t, g) for n, curve in CURVES.items() for t, g in curve.items()]
    variables = {"blis": ("BLIS_NUM_THREADS",), "atlas": ()}
    first = derive(
        [*points, *_of("blis", 4096, {1: 30.0, 3: 86.0}), *_of("atlas", 256, {1: 9.0})],
        node_type="node-x", calibrated_cpus=8, variables=variables,
    )  # fmt: skip
    again = derive(
        [point(256, 1, 30.0), *_of("blis", 256, {1: 20.0, 2: 30.0})],
        node_type="node-x", calibrated_cpus=8, previous=first,
    )  # fmt: skip
    by_label = {lib.label: lib for lib in again.libraries}
    assert by_label["atlas"] == first.libraries[0]
    assert [(c.name, c.threads) for c in by_label["blis"].size_classes] == [
        ("small", 2),
        ("large", 3),
    ]
    assert by_label["blis"].variables == ("BLIS_NUM_THREADS",)


def test_a_preset_stored_before_libraries_reads_as_numpys_only(preset: Preset) -> None:
    old = preset.to_dict()
    del old["libraries"], old["default_blas"]
    read = Preset.from_dict(old)
    assert read.default_blas == "numpy" and read.libraries == ()
    data = render_checked.single(read).entries[0].data()
    assert data["blas"] == "numpy" and data["libraries"] == ()


def test_without_numpys_points_the_first_library_is_the_default() -> None:
    only = derive(
        [*_of("openblas-openmp", 1024, {1: 35.0, 2: 68.0}), *_of("blis", 1024, {1: 30.0})],
        node_type="node-x", calibrated_cpus=2,
    )  # fmt: skip
    assert only.default_blas == "blis" and only.default_threads == 1
    assert [lib.label for lib in only.libraries] == ["openblas-openmp"]


@pytest.mark.parametrize(
    ("best", "cpus", "workers", "expected"),
    [(6, 8, 1, 6), (6, 4, 1, 4), (6, 8, 2, 4), (6, 8, 16, 1), (1, 64, 1, 1), (8, 8, 3, 2)],
)
def test_threads_never_oversubscribe_the_job(
    best: int, cpus: int, workers: int, expected: int
) -> None:
    assert threads_for(best, cpus, workers) == expected


def test_default_node_type_is_a_safe_name() -> None:
    name = default_node_type("AMD EPYC 7763 64-Core Processor", 128)
    assert name == "amd-epyc-7763-64-core-processor-128c"
    weird = default_node_type("Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz; $(rm -rf /)", 40)
    assert set(weird) <= set("abcdefghijklmnopqrstuvwxyz0123456789.-")


# -- the job-start rule, with any number of CPUs ----------------------------------------


def _presets(preset: Preset) -> dict[str, Any]:
    return render_checked.bundle([preset])[0].presets()


@pytest.mark.parametrize(
    ("env", "usable", "expected"),
    [
        ({}, 64, 6),
        ({"SLURM_STEP_TASKS_PER_NODE": "16", "SLURM_CPUS_ON_NODE": "64"}, 64, 1),
        ({"OMPI_COMM_WORLD_LOCAL_SIZE": "2"}, 64, 4),
        ({"OMPI_COMM_WORLD_LOCAL_SIZE": "3"}, 64, 4),  # the 2-worker row
        ({"OMPI_COMM_WORLD_LOCAL_SIZE": "3"}, 9, 3),  # the share: 9 // 3
        # srun -n 4 -c 2 with binding: each task sees its own 2 CPUs
        (
            {
                "SLURM_STEP_TASKS_PER_NODE": "4",
                "SLURM_CPUS_ON_NODE": "8",
                "SLURM_CPUS_PER_TASK": "2",
            },
            2,
            2,
        ),
        # the same without binding: each task sees the node
        ({"SLURM_STEP_TASKS_PER_NODE": "4", "SLURM_CPUS_ON_NODE": "8"}, 128, 2),
        ({"SLURM_CPUS_PER_TASK": "64"}, 4, 4),  # never more than the process may run on
        ({"BLASPROF_CPUS": "64", "SLURM_CPUS_PER_TASK": "5"}, 2, 5),
    ],
)
def test_the_rule_with_many_cpus(
    preset: Preset, env: dict[str, str], usable: int, expected: int
) -> None:
    done = plan(env, _presets(preset), "node-x", usable=usable, cores=usable)
    assert done["threads"] == expected
    assert done["set"]["BLASPROF_PRESET"] == f"node-x:large:{expected}"


def test_a_node_without_a_preset_gets_one_thread_per_core_of_its_share(preset: Preset) -> None:
    done = plan({"BLASPROF_WORKERS": "2"}, _presets(preset), None, usable=64, cores=32)
    assert done["threads"] == 16 and done["size_class"] == "-"
    (note,) = done["notes"]
    assert note.startswith("no preset for this node (known: node-x); 16 thread(s)")


def test_the_users_variables_decide_for_the_blas_that_reads_them(preset: Preset) -> None:
    presets = _presets(preset)
    done = plan({"OMP_NUM_THREADS": "1"}, presets, "node-x", usable=8, cores=8)
    # OMP_NUM_THREADS is read by every common BLAS: none of theirs is set over it
    assert done["kept"] == ["OMP_NUM_THREADS"]
    assert set(done["set"]) == {
        "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "BLASPROF_PRESET", "BLASPROF_PRESET_SET"
    }  # fmt: skip
    done = plan({"NUMEXPR_NUM_THREADS": "3"}, presets, "node-x", usable=8, cores=8)
    assert "OPENBLAS_NUM_THREADS" in done["set"] and "NUMEXPR_NUM_THREADS" not in done["set"]


def test_loading_again_recognises_its_own_values(preset: Preset) -> None:
    presets = _presets(preset)
    first = plan({}, presets, "node-x", usable=8, cores=8)["set"]
    again = plan({**first, "BLASPROF_WORKERS": "4"}, presets, "node-x", usable=8, cores=8)
    assert again["kept"] == [] and again["threads"] == 2
    assert again["set"]["OMP_NUM_THREADS"] == "2"


@pytest.mark.parametrize(
    ("libraries", "expected"),
    [
        (
            [("openblas", "pthreads")],
            ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"),
        ),
        ([("openblas", "openmp")], ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS")),
        ([("mkl", "intel")], ("MKL_NUM_THREADS", "MKL_DOMAIN_NUM_THREADS", "OMP_NUM_THREADS")),
        ([("blis", "pthreads")], ("BLIS_NUM_THREADS", "OMP_NUM_THREADS")),
        ([], budget.DEFAULT_OBEYED),
        ([("unknown", None)], budget.DEFAULT_OBEYED),
    ],
)
def test_the_variables_a_blas_obeys(
    libraries: list[tuple[str, str | None]], expected: tuple[str, ...]
) -> None:
    assert budget.obeyed_variables(libraries) == expected


# -- every rendered value is checked -----------------------------------------------------


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"node_type": "a$(touch x)b"}, "node type name"),
        ({"node_type": "../../x"}, "node type name"),
        ({"default_class": "huge"}, "default class"),
        ({"variables": ("OMP_NUM_THREADS", "LD_PRELOAD")}, "unknown thread variable"),
    ],
)
def test_a_preset_with_a_bad_value_is_refused(
    preset: Preset, change: dict[str, Any], what: str
) -> None:
    with pytest.raises(render_checked.UnsafePreset, match=what):
        render_checked.entry(dataclasses.replace(preset, **change))


@pytest.mark.parametrize(
    ("field", "value", "what"),
    [
        ("name", "x; rm -rf /", "size class name"),
        ("name", "Large", "size class name"),
        ("threads", "1; reboot", "malformed preset|thread count"),
        ("threads", 0, "thread count"),
        ("threads", True, "thread count"),
        ("threads", 10**6, "thread count"),
    ],
)
def test_a_stored_class_with_a_bad_value_is_refused(
    preset: Preset, field: str, value: object, what: str
) -> None:
    doc = preset.to_dict()
    doc["size_classes"][0][field] = value
    if field == "name":
        doc["default_class"] = value
    with pytest.raises(render_checked.UnsafePreset, match=what):
        render_checked.entry(Preset.from_dict(doc))


def test_free_text_becomes_one_clean_comment_line() -> None:
    text = 'Evil\nimport os\r"""\x1b[31m\u202e\\'
    line = render_checked.comment(text)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\u202e" not in line
    assert "\\" not in line and line.startswith("Evil import os")


def test_rules_that_clash_are_written_once_and_reported(preset: Preset) -> None:
    a = dataclasses.replace(preset, node_type="a", partitions=("p",), cpu_model="X", logical_cpus=4)
    b = dataclasses.replace(
        preset, node_type="b", partitions=("p", "q"), cpu_model="X", logical_cpus=4
    )
    c = dataclasses.replace(preset, node_type="c", partitions=(), cpu_model="X", logical_cpus=4)
    bundle, warnings = render_checked.bundle([c, b, a])
    assert bundle.rules is not None
    assert bundle.rules.partition == (("p", "a"), ("q", "b"))
    assert bundle.rules.cpu == (("X|4", "a"),)
    assert "partition p belongs to node types a and b: a wins" in warnings
    assert any(
        w.startswith("the CPU X x 4 belongs to node types a and b: a wins") for w in warnings
    )
    assert any(
        "node type c cannot be told apart" in w and "BLASPROF_NODE_TYPE=c" in w for w in warnings
    )


def test_presets_with_bad_values_are_left_out_of_the_dispatchers(preset: Preset) -> None:
    bad = dataclasses.replace(preset, node_type="bad;x")
    bundle, warnings = render_checked.bundle([preset, bad])
    assert [e.name for e in bundle.entries] == ["node-x"]
    assert any("left out of the presets" in w for w in warnings)


# -- writing the files -------------------------------------------------------------------


def _import_threads(directory: Path) -> str:
    code = "import blas_preset_node_x as m; print(m.THREADS)"
    env = {**os.environ, "PYTHONPATH": str(directory), "BLASPROF_CPUS": "64"}
    env.pop("BLASPROF_SIZE_CLASS", None)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_a_rewritten_python_preset_is_never_served_stale(preset: Preset, tmp_path: Path) -> None:
    """Same second, same size, only a digit changes: the new one is imported every time."""
    for attempt in range(3):
        files.write_presets([preset], tmp_path)
        assert _import_threads(tmp_path) == "6", attempt
        six = (tmp_path / "blas_preset_node_x.py").stat().st_size
        classes = [dataclasses.replace(c, threads=5) for c in preset.size_classes]
        files.write_presets([dataclasses.replace(preset, size_classes=tuple(classes))], tmp_path)
        assert (tmp_path / "blas_preset_node_x.py").stat().st_size == six
        assert _import_threads(tmp_path) == "5", attempt


def test_another_pythons_cached_module_is_not_served_stale(preset: Preset, tmp_path: Path) -> None:
    """A timestamp-checked .pyc (what a job's other Python writes) of the old file."""
    files.write_presets([preset], tmp_path)
    source = tmp_path / "blas_preset_node_x.py"
    cached = Path(importlib.util.cache_from_source(str(source)))
    py_compile.compile(str(source), cfile=str(cached))  # timestamp mode: mtime and size
    classes = [dataclasses.replace(c, threads=5) for c in preset.size_classes]
    files.write_presets([dataclasses.replace(preset, size_classes=tuple(classes))], tmp_path)
    cached.unlink()  # the writer's hash-checked one; only the timestamp one is left...
    py_compile.compile(str(source), cfile=str(cached))  # ...as Python would rewrite it
    assert _import_threads(tmp_path) == "5"
    stamp = int.from_bytes(cached.read_bytes()[8:12], "little")
    assert stamp == int(source.stat().st_mtime)


def test_a_reader_sees_the_old_file_or_the_new_one(preset: Preset, tmp_path: Path) -> None:
    files.write_presets([preset], tmp_path)
    target = tmp_path / "blasprof.sh"
    texts = {target.read_text()}
    other = dataclasses.replace(preset, cpu_model="Another CPU")
    stop = threading.Event()

    def rewrite() -> None:
        flip = False
        while not stop.is_set():
            files.write_presets([other if flip else preset], tmp_path)
            flip = not flip

    writer = threading.Thread(target=rewrite)
    writer.start()
    try:
        seen = [target.read_text() for _ in range(300)]
    finally:
        stop.set()
        writer.join()
    texts.add(target.read_text())
    files.write_presets([other], tmp_path)
    texts.add(target.read_text())
    assert set(seen) <= texts and len(texts) == 2


def test_files_never_leave_the_directory(tmp_path: Path) -> None:
    with pytest.raises(render_checked.UnsafePreset):
        files._inside(tmp_path, "../x.sh")
    with pytest.raises(render_checked.UnsafePreset):
        files._inside(tmp_path, "/etc/x.sh")
    assert files._inside(tmp_path, "modulefiles/blasprof.lua").parent == tmp_path / "modulefiles"


def test_written_presets_work_from_a_real_calibration(calibrated: dict[str, Any]) -> None:
    """The files `calibrate` wrote: the dispatchers recognise this machine by its CPU."""
    doc = calibrated["doc"]
    directory = Path(doc["preset_files"][0]).parent
    expected = min(doc["preset"]["size_classes"][-1]["threads"], len(os.sched_getaffinity(0)))
    env = forms.base_env(directory)
    for loader in (forms.shell("sh"), forms.python()):
        loaded = loader(directory, env)
        assert (
            loaded.variables["BLASPROF_PRESET"]
            == f"tiny-node:{doc['preset']['default_class']}:{expected}"
        )
        assert loaded.notes == [] and loaded.other_stderr == []
