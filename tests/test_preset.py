"""Presets: derivation rules, and the rendered files used the way jobs use them.

The sh preset is sourced by a real ``sh``; the py preset is imported by a real Python; both
must apply the same rule: the calibrated count, capped by the job's CPUs per worker.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from profiler.budget import THREAD_VARIABLES, threads_for
from profiler.names import default_node_type
from profiler.preset import Preset, derive
from profiler.render import (
    NodeTypeMatch,
    file_name,
    python_module_name,
    render,
    render_dispatcher_py,
    render_dispatcher_sh,
)
from profiler.results import Measurement


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
    assert preset.calibrated_threads("large", 3) == 4  # the 2-worker row
    assert preset.calibrated_threads("large", 64) == 1
    assert preset.calibrated_threads("medium", 1) == 4


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


def _write(tmp_path: Path, preset: Preset, fmt: str) -> Path:
    path = tmp_path / file_name(preset.node_type, fmt)
    path.write_text(render(preset, fmt))
    return path


def _sh_env(script: str, env: dict[str, str]) -> tuple[dict[str, str], str]:
    names = " ".join(THREAD_VARIABLES + ("BLASPROF_NODE_TYPE", "BLASPROF_PRESET_THREADS"))
    out = subprocess.run(
        ["sh", "-c", f'{script}\nfor v in {names}; do eval "echo $v=\\${{$v}}"; done'],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    values = dict(line.split("=", 1) for line in out.stdout.splitlines())
    return values, out.stderr


def _base_env() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items()
        if not k.startswith(("BLASPROF_", "SLURM_")) and k not in THREAD_VARIABLES
    }  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"SLURM_CPUS_PER_TASK": "8"}, "6"),
        ({"SLURM_CPUS_PER_TASK": "8", "BLASPROF_WORKERS": "2"}, "4"),
        ({"SLURM_CPUS_PER_TASK": "8", "BLASPROF_WORKERS": "8"}, "1"),
        ({"SLURM_CPUS_PER_TASK": "3"}, "3"),
        ({"SLURM_CPUS_PER_TASK": "8", "BLASPROF_SIZE_CLASS": "small"}, "1"),
        ({"SLURM_CPUS_PER_TASK": "8", "BLASPROF_SIZE_CLASS": "medium"}, "4"),
    ],
)
def test_sh_preset_sourced_by_a_real_sh(
    tmp_path: Path, preset: Preset, extra: dict[str, str], expected: str
) -> None:
    path = _write(tmp_path, preset, "sh")
    values, _ = _sh_env(f". {path}", {**_base_env(), **extra})
    assert {values[v] for v in THREAD_VARIABLES} == {expected}
    assert values["BLASPROF_NODE_TYPE"] == "node-x"
    assert values["BLASPROF_PRESET_THREADS"] == expected


def test_sh_preset_without_slurm_uses_the_cpus_it_may_run_on(
    tmp_path: Path, preset: Preset
) -> None:
    path = _write(tmp_path, preset, "sh")
    cpus = len(os.sched_getaffinity(0))
    values, _ = _sh_env(f". {path}", _base_env())
    assert values["OMP_NUM_THREADS"] == str(min(6, cpus))
    if shutil.which("taskset"):
        pinned = subprocess.run(
            ["taskset", "-c", "0", "sh", "-c", f". {path}; echo $OMP_NUM_THREADS"],
            capture_output=True, text=True, env=_base_env(), check=True,
        )  # fmt: skip
        assert pinned.stdout.strip() == "1"


def test_sh_preset_refuses_bad_settings_with_a_message(tmp_path: Path, preset: Preset) -> None:
    path = _write(tmp_path, preset, "sh")
    env = {**_base_env(), "SLURM_CPUS_PER_TASK": "8", "BLASPROF_WORKERS": "-3; reboot",
           "BLASPROF_SIZE_CLASS": "huge"}  # fmt: skip
    values, stderr = _sh_env(f". {path}", env)
    assert values["OMP_NUM_THREADS"] == "6"
    assert "BLASPROF_WORKERS" in stderr and "BLASPROF_SIZE_CLASS" in stderr


@pytest.mark.parametrize("shell", [["dash"], ["bash", "--posix"]], ids=["dash", "bash-posix"])
def test_sh_preset_runs_the_same_in_posix_shells(
    tmp_path: Path, preset: Preset, shell: list[str]
) -> None:
    if shutil.which(shell[0]) is None:
        pytest.skip(f"{shell[0]} is not installed")
    path = _write(tmp_path, preset, "sh")
    env = {**_base_env(), "SLURM_CPUS_PER_TASK": "8", "BLASPROF_WORKERS": "2"}
    done = subprocess.run(
        [*shell, "-c", f'. {path}; echo "$OMP_NUM_THREADS $MKL_NUM_THREADS"'],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    assert done.stdout.split() == ["4", "4"] and done.stderr == ""


def _import(tmp_path: Path, module: str, env: dict[str, str]) -> dict[str, Any]:
    code = (
        "import json, os, sys\n"
        f"import {module}\n"
        "print(json.dumps({'env': {k: os.environ.get(k) for k in "
        f"{list(THREAD_VARIABLES) + ['BLASPROF_NODE_TYPE']!r}}}, "
        "'heavy': sorted(m for m in ('numpy', 'scipy', 'threadpoolctl') if m in sys.modules),"
        f" 'node_type': getattr({module}, 'NODE_TYPE', None)}}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True,
        env={**env, "PYTHONPATH": str(tmp_path)}, cwd=tmp_path,
    )  # fmt: skip
    return json.loads(out.stdout)


def test_py_preset_imported_by_a_real_python(tmp_path: Path, preset: Preset) -> None:
    _write(tmp_path, preset, "py")
    module = python_module_name("node-x")
    doc = _import(
        tmp_path, module, {**_base_env(), "SLURM_CPUS_PER_TASK": "8", "BLASPROF_WORKERS": "2"}
    )
    assert set(doc["env"].values()) - {"node-x"} == {"4"}
    assert doc["env"]["BLASPROF_NODE_TYPE"] == "node-x"
    assert doc["heavy"] == []  # nothing heavy, and numpy still to come


def test_py_and_sh_presets_agree(tmp_path: Path, preset: Preset) -> None:
    _write(tmp_path, preset, "py")
    sh = _write(tmp_path, preset, "sh")
    module = python_module_name("node-x")
    for cpus in ("1", "2", "5", "8", "64"):
        for workers in ("1", "2", "3"):
            env = {**_base_env(), "SLURM_CPUS_PER_TASK": cpus, "BLASPROF_WORKERS": workers}
            py = _import(tmp_path, module, env)["env"]["OMP_NUM_THREADS"]
            values, _ = _sh_env(f". {sh}", env)
            assert py == values["OMP_NUM_THREADS"], (cpus, workers)


def test_json_preset_carries_the_rule_and_the_variables(preset: Preset) -> None:
    doc = json.loads(render(preset, "json"))
    assert doc["variables"] == list(THREAD_VARIABLES)
    assert Preset.from_dict(doc) == preset


def test_dispatchers_pick_the_node_type_by_partition_then_override(
    tmp_path: Path, preset: Preset
) -> None:
    other = derive(
        [point(1024, 1, 40.0), point(1024, 2, 80.0)], node_type="node-y", calibrated_cpus=2
    )
    for p in (preset, other):
        _write(tmp_path, p, "sh")
        _write(tmp_path, p, "py")
    matches = [
        NodeTypeMatch("node-x", "Test CPU", 8, ("px",)),
        NodeTypeMatch("node-y", "Other CPU", 2, ("py",)),
    ]
    (tmp_path / "blasprof.sh").write_text(render_dispatcher_sh(str(tmp_path), matches))
    (tmp_path / "blas_preset.py").write_text(render_dispatcher_py(matches))
    env = {**_base_env(), "SLURM_CPUS_PER_TASK": "8", "SLURM_JOB_PARTITION": "py"}
    values, _ = _sh_env(f". {tmp_path / 'blasprof.sh'}", env)
    assert values["BLASPROF_NODE_TYPE"] == "node-y" and values["OMP_NUM_THREADS"] == "2"
    assert _import(tmp_path, "blas_preset", env)["env"]["OMP_NUM_THREADS"] == "2"
    env["BLASPROF_NODE_TYPE"] = "node-x"
    values, _ = _sh_env(f". {tmp_path / 'blasprof.sh'}", env)
    assert values["OMP_NUM_THREADS"] == "6"
    assert _import(tmp_path, "blas_preset", env)["env"]["OMP_NUM_THREADS"] == "6"
    env = {**_base_env(), "SLURM_CPUS_PER_TASK": "4", "SLURM_JOB_PARTITION": "unknown"}
    values, stderr = _sh_env(f". {tmp_path / 'blasprof.sh'}", env)
    assert "no preset for this node" in stderr and values["OMP_NUM_THREADS"] == "4"


def test_written_presets_work_from_a_real_calibration(calibrated: dict[str, Any]) -> None:
    """The files `calibrate` wrote: the dispatcher recognises this machine by its CPU."""
    doc = calibrated["doc"]
    directory = Path(doc["preset_files"][0]).parent
    expected = str(doc["preset"]["size_classes"][-1]["threads"])
    values, stderr = _sh_env(f". {directory / 'blasprof.sh'}", _base_env())
    assert values["BLASPROF_NODE_TYPE"] == "tiny-node", stderr
    assert values["OMP_NUM_THREADS"] == expected
    imported = _import(directory, "blas_preset", _base_env())
    assert imported["env"]["OPENBLAS_NUM_THREADS"] == expected
    assert imported["heavy"] == []


ODD_COUNTS = ["", "0", "00", "08", "010", "-3", "abc", "2x", "99999999999999999999", "²", " 4"]


@pytest.mark.parametrize("name", ["SLURM_CPUS_PER_TASK", "BLASPROF_WORKERS"])
@pytest.mark.parametrize("value", ODD_COUNTS)
def test_odd_counts_never_end_the_job_and_both_twins_agree(
    tmp_path: Path, preset: Preset, name: str, value: str
) -> None:
    _write(tmp_path, preset, "py")
    sh = _write(tmp_path, preset, "sh")
    env = {**_base_env(), "SLURM_CPUS_PER_TASK": "8", name: value}
    # the shell goes on after sourcing: a preset must never stop a job script
    done = subprocess.run(
        ["sh", "-c", f'. {sh}; echo "threads=$OMP_NUM_THREADS after"'],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.endswith(" after\n"), done.stderr
    from_sh = done.stdout.split("=")[1].split()[0]
    assert from_sh.isdigit() and int(from_sh) >= 1
    from_py = _import(tmp_path, python_module_name("node-x"), env)["env"]["OMP_NUM_THREADS"]
    assert from_py == from_sh, (value, done.stderr)


def test_dispatchers_without_a_matching_type_use_one_thread_per_cpu_share(
    tmp_path: Path, preset: Preset
) -> None:
    matches = [NodeTypeMatch("node-x", "No Such CPU", 999, ("px",))]
    (tmp_path / "blasprof.sh").write_text(render_dispatcher_sh(str(tmp_path), matches))
    (tmp_path / "blas_preset.py").write_text(render_dispatcher_py(matches))
    for bad_type in ("", "../../etc/passwd", "other"):
        env = {**_base_env(), "SLURM_CPUS_PER_TASK": "6", "BLASPROF_WORKERS": "2"}
        if bad_type:
            env["BLASPROF_NODE_TYPE"] = bad_type
        values, stderr = _sh_env(f". {tmp_path / 'blasprof.sh'}", env)
        assert values["OMP_NUM_THREADS"] == "3", stderr
        assert "no preset for this node" in stderr
        assert _import(tmp_path, "blas_preset", env)["env"]["OMP_NUM_THREADS"] == "3"
