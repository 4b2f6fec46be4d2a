"""`blasprof calibrate --executor slurm`, `status` and `collect` against the real local cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, TINY, run_blasprof

CLUSTER = ROOT / "deploy" / "slurm-local" / "cluster.toml"


def _cluster_file(tmp_path: Path, limit_min: int = 5) -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text(
        f'[slurm]\nfolder = "{tmp_path / "shared"}"\n\n'
        f"[defaults]\nexclusive = false\ncpus_per_task = 2\ntime_limit_min = {limit_min}\n\n"
        '[node_types.typea]\npartition = "typea"\n\n[node_types.typeb]\npartition = "typeb"\n'
    )
    return path


def _json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slurm
def test_calibrate_two_node_types_stores_job_ids_hosts_and_presets(
    slurm_cluster: Path, home: Path, blasprof_exe: str, tmp_path: Path
) -> None:
    cluster = _cluster_file(tmp_path)
    doc = _json(
        run_blasprof(
            blasprof_exe, "calibrate", "--cluster", str(cluster), "--node-type", "typea",
            "--node-type", "typeb", *TINY, "--no-verify", "--json",
        )
    )  # fmt: skip
    calibrations = {c["node_type"]: c for c in doc["calibrations"]}
    assert set(calibrations) == {"typea", "typeb"}
    for name, cal in calibrations.items():
        assert cal["status"] == "complete" and cal["executor"] == "slurm"
        (job,) = cal["jobs"]
        assert job["external_id"].split("_")[0].isdigit()
        assert job["state"] == "COMPLETED" and job["hostname"] == os.uname().nodename
        assert cal["measurements"]
        assert cal["preset"]["partitions"] == [name]
    # the job folder is on the cluster file's shared folder, private to the user
    shared = tmp_path / "shared"
    assert shared.is_dir()
    for sub in shared.iterdir():
        assert sub.stat().st_mode & 0o077 == 0
    # the dispatcher picks the type from the Slurm partition a job runs in
    presets = home / "presets"
    out = subprocess.run(
        ["sh", "-c", f'. {presets}/blasprof.sh; echo "${{BLASPROF_PRESET%%:*}}"'],
        capture_output=True, text=True, check=True,
        env={**os.environ, "SLURM_JOB_PARTITION": "typeb"},
    )  # fmt: skip
    assert out.stdout.strip() == "typeb"


@pytest.mark.slurm
def test_no_wait_then_status_then_collect_twice_stores_once(
    slurm_cluster: Path, home: Path, blasprof_exe: str, tmp_path: Path
) -> None:
    cluster = _cluster_file(tmp_path)
    submitted = _json(
        run_blasprof(
            blasprof_exe, "calibrate", "--cluster", str(cluster), "--node-type", "typeb",
            "--nodes-per-type", "1", *TINY, "--no-verify", "--no-wait", "--json",
        )
    )  # fmt: skip
    cal_id = submitted["calibration_id"]
    assert submitted["status"] == "running" and len(submitted["jobs"]) == 1
    arrays = {j["external_id"].split("_")[0] for j in submitted["jobs"]}
    assert len(arrays) == 1  # one array, one sbatch call
    status = _json(run_blasprof(blasprof_exe, "status", str(cal_id), "--json"))
    assert {j["state"] for j in status[0]["jobs"]} <= {"PENDING", "RUNNING", "COMPLETED"}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = {
            j["state"] for j in _json(run_blasprof(blasprof_exe, "status", "--json"))[0]["jobs"]
        }
        if states == {"COMPLETED"}:
            break
        time.sleep(1)
    else:
        pytest.fail(f"jobs did not complete: {states}")
    # two collectors at once: each result is stored exactly once
    procs = [
        subprocess.Popen(
            [blasprof_exe, "collect", str(cal_id), "--json"], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    docs = [json.loads(p.communicate(timeout=120)[0])[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(d["stored_now"] for d in docs) == [0, 1]
    again = _json(run_blasprof(blasprof_exe, "collect", str(cal_id), "--json"))
    assert again[0]["stored_now"] == 0
    shown = _json(run_blasprof(blasprof_exe, "show", str(cal_id), "--json"))
    assert shown["status"] == "complete"
    per_job = {}
    for m in shown["measurements"]:
        per_job.setdefault(m["job_id"], []).append((m["n"], m["threads"]))
    assert len(per_job) == 1
    assert all(len(points) == len(set(points)) for points in per_job.values())  # no duplicates


@pytest.mark.slurm
def test_ctrl_c_stops_waiting_not_the_jobs(
    slurm_cluster: Path, home: Path, blasprof_exe: str, tmp_path: Path
) -> None:
    cluster = _cluster_file(tmp_path)
    proc = subprocess.Popen(
        [blasprof_exe, "calibrate", "--cluster", str(cluster), "--node-type", "typea",
         *TINY, "--min-time", "0.3", "--no-verify"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    time.sleep(3)
    os.killpg(proc.pid, signal.SIGINT)
    out, errors = proc.communicate(timeout=60)
    assert proc.returncode == 130, errors
    assert "blasprof collect 1" in errors and "Traceback" not in errors
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        doc = _json(run_blasprof(blasprof_exe, "collect", "1", "--json"))[0]
        if doc["status"] != "running":
            break
        time.sleep(2)
    assert doc["status"] == "complete"  # the job went on and its result was collected


def test_slurm_executor_without_slurm_or_cluster_is_exit_2(
    home: Path, blasprof_exe: str, tmp_path: Path
) -> None:
    no_sbatch = {**os.environ, "PATH": "/nonexistent"}
    proc = run_blasprof(
        blasprof_exe, "calibrate", "--executor", "slurm", "--cluster", str(CLUSTER), env=no_sbatch
    )
    assert proc.returncode == 2 and "no Slurm here" in proc.stderr
    # auto with a cluster file but no Slurm: refused, never a quiet local run under that name
    proc = run_blasprof(blasprof_exe, "calibrate", "--cluster", str(CLUSTER), env=no_sbatch)
    assert proc.returncode == 2 and "no Slurm here" in proc.stderr
    if subprocess.run(["which", "sbatch"], capture_output=True).returncode == 0:
        proc = run_blasprof(blasprof_exe, "calibrate", "--executor", "slurm")
        assert proc.returncode == 2 and "needs --cluster" in proc.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[node_types.typea]\npartition = "typea"\ncpus = 4\n')
    proc = run_blasprof(blasprof_exe, "calibrate", "--cluster", str(bad))
    assert proc.returncode == 2 and "cpus" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_blasprof(blasprof_exe, "calibrate", "--cluster", str(tmp_path / "missing.toml"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = run_blasprof(
        blasprof_exe, "calibrate", "--cluster", str(CLUSTER), "--node-type", "nosuch"
    )
    assert proc.returncode == 2 and "nosuch" in proc.stderr


@pytest.mark.slurm
def test_threads_beyond_the_job_allocation_are_refused_before_submitting(
    slurm_cluster: Path, home: Path, blasprof_exe: str, tmp_path: Path
) -> None:
    cluster = _cluster_file(tmp_path)  # cpus_per_task = 2
    proc = run_blasprof(blasprof_exe, "calibrate", "--cluster", str(cluster), "--threads", "1,4")
    assert proc.returncode == 2 and "cpus_per_task" in proc.stderr
    assert json.loads(run_blasprof(blasprof_exe, "list", "--json").stdout) == []


def test_no_wait_without_slurm_is_exit_2(home: Path, blasprof_exe: str) -> None:
    proc = run_blasprof(blasprof_exe, "calibrate", "--executor", "local", "--no-wait")
    assert proc.returncode == 2 and "--no-wait" in proc.stderr


def test_status_and_collect_of_an_unknown_id_are_exit_2(home: Path, blasprof_exe: str) -> None:
    for command in ("status", "collect"):
        proc = run_blasprof(blasprof_exe, command, "777")
        assert proc.returncode == 2 and "777" in proc.stderr
        proc = run_blasprof(blasprof_exe, command, "--", "-3")
        assert proc.returncode == 2


@pytest.mark.slurm
def test_all_nodes_calibrates_each_node_of_the_type_up(
    slurm_cluster: Path, home: Path, blasprof_exe: str, tmp_path: Path
) -> None:
    cluster = _cluster_file(tmp_path)
    doc = _json(
        run_blasprof(
            blasprof_exe, "calibrate", "--cluster", str(cluster), "--node-type", "typeb",
            "--all-nodes", *TINY, "--no-verify", "--json",
        )
    )  # fmt: skip
    (job,) = doc["jobs"]  # the local cluster has one node
    assert job["hostname"] == os.uname().nodename and job["state"] == "COMPLETED"
    script = next((tmp_path / "shared").glob("*/*/*_submission.sh"))
    assert f"--nodelist={os.uname().nodename}" in script.read_text()
    assert "--array" not in script.read_text()  # one job per node, not an array


def _collect_until_done(exe: str, cal_id: int, limit_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        doc = _json(run_blasprof(exe, "collect", str(cal_id), "--json"))[0]
        if doc["status"] != "running":
            return _json(run_blasprof(exe, "show", str(cal_id), "--json"))
        time.sleep(2)
    pytest.fail(f"calibration {cal_id} still running after {limit_s} s")


def _points_in(folder: Path) -> int:
    return sum(
        line.count('"kind": "point"')
        for f in folder.glob("*.points.jsonl")
        for line in [f.read_text()]
    )


@pytest.mark.slurm
def test_a_job_cancelled_mid_run_is_stored_cancelled_and_its_sibling_kept(
    slurm_cluster: Path, home: Path, blasprof_exe: str, tmp_path: Path
) -> None:
    from db import open_database
    from jobs.cluster import load_cluster
    from jobs.slurm import SlurmBackend
    from jobs.task import TaskSpec
    from profiler.settings import PROFILES, with_overrides

    cluster = _cluster_file(tmp_path)
    cluster.write_text(cluster.read_text().replace("cpus_per_task = 2", "cpus_per_task = 1"))
    # Two tasks of one calibration on the one-node cluster: `--nodes-per-type 2` wants two
    # distinct nodes, so they go out through the backend as `calibrate --no-wait` sends them.
    settings = with_overrides(
        PROFILES["quick"], sizes=(64, 96, 128, 160, 192), dtypes=("float64",), threads=(1,),
        min_time=0.5, samples=3, runs=1,  # one run: this is about cancelling, not runs
    )  # fmt: skip
    with open_database() as database:
        cal_id = database.create_calibration(
            "typea", executor="slurm", profile="quick", settings=settings.to_dict()
        )
        folder = tmp_path / "shared" / str(cal_id)
        specs = [
            TaskSpec("typea", settings, str(folder / f"task-{i}.points.jsonl"), verify=False)
            for i in range(2)
        ]
        handles = SlurmBackend(folder, cluster=load_cluster(cluster)).submit(specs)
        for i, handle in enumerate(handles):
            database.add_job(cal_id, external_id=handle.external_id, folder=str(folder),
                             state="PENDING", array_index=i)  # fmt: skip
    first, second = ({"external_id": h.external_id} for h in handles)
    deadline = time.monotonic() + 120
    while _points_in(folder) < 1:
        assert time.monotonic() < deadline, "no point measured"
        time.sleep(0.2)
    subprocess.run(["scancel", first["external_id"]], check=True)
    shown = _collect_until_done(blasprof_exe, cal_id, 180)
    states = {j["external_id"]: j for j in shown["jobs"]}
    assert states[first["external_id"]]["state"] == "CANCELLED"
    assert "CANCELLED" in (states[first["external_id"]]["reason"] or "")
    assert states[second["external_id"]]["state"] == "COMPLETED"
    assert shown["status"] == "partial"
    by_job = {m["job_id"] for m in shown["measurements"]}
    assert states[second["external_id"]]["id"] in by_job  # the sibling's points are kept
    assert shown["preset"] is not None  # from the node that finished


@pytest.mark.slurm
def test_a_job_past_its_time_limit_is_stored_timed_out_with_its_points(
    slurm_cluster: Path, home: Path, blasprof_exe: str, tmp_path: Path
) -> None:
    cluster = _cluster_file(tmp_path, limit_min=1)
    sub = _json(
        run_blasprof(
            blasprof_exe, "calibrate", "--cluster", str(cluster), "--node-type", "typeb",
            "--sizes", "64,96,128,160,192,224,256,288", "--dtypes", "float64,float32",
            "--threads", "1", "--min-time", "1", "--samples", "5", "--no-verify",
            "--no-wait", "--json",
        )
    )  # fmt: skip
    shown = _collect_until_done(blasprof_exe, sub["calibration_id"], 240)
    (job,) = shown["jobs"]
    assert job["state"] == "TIMEOUT", job
    assert "TIME LIMIT" in (job["reason"] or "") and job["log_tail"]
    assert shown["status"] == "partial" and shown["measurements"]


@pytest.mark.slurm
def test_calibrate_blas_on_slurm_sweeps_each_library_the_node_finds(
    slurm_cluster: Path, home: Path, blasprof_exe: str, tmp_path: Path
) -> None:
    """`--blas` travels to the node in the sweep settings; the job finds the libraries there
    by label and sweeps each through the same worker runs, as a local calibration does."""
    cluster = _cluster_file(tmp_path)
    doc = _json(
        run_blasprof(
            blasprof_exe, "calibrate", "--cluster", str(cluster), "--node-type", "typea",
            *TINY, "--threads", "1,2", "--runs", "2", "--no-verify",
            "--blas", "numpy,openblas-openmp", "--json",
        )
    )  # fmt: skip
    assert doc["status"] == "complete" and doc["executor"] == "slurm"
    (job,) = doc["jobs"]
    assert job["state"] == "COMPLETED"
    swept = {(m["blas"], m["n"], m["threads"]) for m in doc["measurements"]}
    assert swept == {(b, n, t) for b in ("numpy", "openblas-openmp") for n in (64, 192)
                     for t in (1, 2)}  # fmt: skip
    assert all(len(m["runs"]) == 2 for m in doc["measurements"])
    assert [lib["label"] for lib in doc["preset"]["libraries"]] == ["openblas-openmp"]
