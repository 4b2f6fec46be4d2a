"""The Slurm backend against the real local cluster of deploy/slurm-local, and cluster files.

Tests marked ``slurm`` use the cluster ``SLURM_CONF`` points to, or start one with
``deploy/slurm-local/up.sh`` (and stop it again). Without one they are skipped, except when
``CI`` is set: then they fail. The cluster-file tests need no cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from jobs.base import Handle
from jobs.checkpoint import read_checkpoint
from jobs.cluster import Cluster, load_cluster
from jobs.registry import get_backend
from jobs.slurm import SlurmBackend
from jobs.task import TaskSpec
from profiler.errors import UsageError
from profiler.settings import SweepSettings
from tests.builders import TINY_TASK
from tests.conftest import ROOT

TINY = TINY_TASK
#: one that would take minutes: about 1 s per sample, a point every 5 s
LONG: dict[str, Any] = {
    "profile": "quick",
    "sizes": [64, 96, 128, 160, 192, 224, 256, 288],
    "dtypes": ["float64", "float32"],
    "threads": [1],
    "timing": {"min_time": 1.0, "samples": 5},
}

CLUSTER_TOML = """
[slurm]
folder = "{folder}"

[defaults]
exclusive = false
cpus_per_task = 1
time_limit_min = {limit}

[node_types.typea]
partition = "typea"

[node_types.typeb]
partition = "typeb"
"""


def _cluster(tmp_path: Path, limit_min: int = 5) -> Cluster:
    path = tmp_path / "cluster.toml"
    path.write_text(CLUSTER_TOML.format(folder=tmp_path / "jobs", limit=limit_min))
    return load_cluster(path)


def _specs(folder: Path, node_types: Sequence[str], settings: dict[str, Any]) -> list[TaskSpec]:
    return [
        TaskSpec(
            node_type=name,
            settings=SweepSettings.from_dict(settings),
            checkpoint=str(folder / f"task-{i}.points.jsonl"),
            verify=False,
        )
        for i, name in enumerate(node_types)
    ]


def _wait(handles: Sequence[Handle], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(h.done() for h in handles):
        if time.monotonic() > deadline:
            states = {h.external_id: h.state() for h in handles}
            subprocess.run(["scancel", *(h.external_id for h in handles)], check=False)
            pytest.fail(f"jobs not finished after {timeout_s}s: {states}")
        time.sleep(0.5)


def _wait_for_points(handle: Handle, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not read_checkpoint(handle.spec.checkpoint).measurements:
        assert time.monotonic() < deadline, f"{handle.external_id} measured nothing"
        assert not handle.done(), f"{handle.external_id} ended early: {handle.outcome()}"
        time.sleep(0.5)


@pytest.mark.slurm
def test_two_node_types_run_on_their_partitions_and_report_the_node(
    slurm_cluster: Path, tmp_path: Path
) -> None:
    cluster = _cluster(tmp_path)
    folder = tmp_path / "jobs" / "1"
    backend = get_backend("slurm", folder, cluster=cluster)
    handles = backend.submit(_specs(folder, ["typea", "typeb"], TINY))
    assert backend.sbatch_calls == 2  # one per node type
    assert folder.stat().st_mode & 0o777 == 0o700
    _wait(handles, 120)
    for handle, partition in zip(handles, ["typea", "typeb"], strict=True):
        outcome = handle.outcome()
        assert outcome.state == "COMPLETED", outcome
        assert outcome.result is not None
        assert outcome.result["status"] == "complete"
        assert outcome.result["node_type"] == partition
        assert outcome.result["node"]["hostname"]
        assert {m["threads"] for m in outcome.result["measurements"]} == {1, 2}
        shown = subprocess.run(
            ["scontrol", "show", "job", handle.external_id], capture_output=True, text=True
        ).stdout
        assert f"Partition={partition}" in shown
        assert f"JobName=blasprof-{partition}" in shown


@pytest.mark.slurm
def test_many_tasks_go_out_as_one_array_per_max_array_size_chunk(
    slurm_cluster: Path, tmp_path: Path
) -> None:
    cluster = _cluster(tmp_path)
    folder = tmp_path / "jobs" / "2"
    backend = SlurmBackend(folder, cluster=cluster, max_array_size=2)
    handles = backend.submit(_specs(folder, ["typea"] * 5, TINY))
    arrays = {h.external_id.split("_")[0] for h in handles}
    assert backend.sbatch_calls == 3
    assert len(arrays) == 3  # 2 + 2 + 1 tasks
    assert len({h.external_id for h in handles}) == 5
    _wait(handles, 180)
    outcomes = [h.outcome() for h in handles]
    assert [o.state for o in outcomes] == ["COMPLETED"] * 5, outcomes
    assert all(o.result and o.result["node"]["hostname"] for o in outcomes)


@pytest.mark.slurm
def test_tasks_bound_to_a_host_go_out_one_job_each_with_that_nodelist(
    slurm_cluster: Path, tmp_path: Path
) -> None:
    cluster = _cluster(tmp_path)
    folder = tmp_path / "jobs" / "h"
    backend = SlurmBackend(folder, cluster=cluster)
    hosts = backend.nodes(cluster.node_type("typea"))
    assert hosts == [os.uname().nodename.split(".")[0]]
    specs = [replace(s, host=hosts[0]) for s in _specs(folder, ["typea"] * 2, TINY)]
    handles = backend.submit(specs)
    # one group (same type, same host): one sbatch call, with the host as its nodelist
    assert backend.sbatch_calls == 1
    scripts = list(folder.glob("*/*_submission.sh"))
    assert scripts and all(f"--nodelist={hosts[0]}" in p.read_text() for p in scripts)
    _wait(handles, 180)
    assert [h.outcome().state for h in handles] == ["COMPLETED"] * 2


@pytest.mark.slurm
def test_scancel_mid_run_is_cancelled_and_the_sibling_completes(
    slurm_cluster: Path, tmp_path: Path
) -> None:
    cluster = _cluster(tmp_path)
    folder = tmp_path / "jobs" / "3"
    backend = get_backend("slurm", folder, cluster=cluster)
    long = _specs(folder, ["typea"], LONG)[0]
    tiny = replace(_specs(folder, ["typeb"], TINY)[0], checkpoint=str(folder / "tiny.jsonl"))
    victim, sibling = backend.submit([long, tiny])
    _wait_for_points(victim)
    subprocess.run(["scancel", victim.external_id], check=True)
    _wait([victim, sibling], 120)
    cancelled = victim.outcome()
    assert cancelled.state == "CANCELLED", cancelled
    assert cancelled.reason and "CANCELLED" in cancelled.reason
    # The task stops on SIGTERM and hands back what it measured.
    assert cancelled.result is not None and cancelled.result["status"] == "partial"
    assert cancelled.result["measurements"]
    completed = sibling.outcome()
    assert completed.state == "COMPLETED", completed
    assert completed.result is not None and completed.result["status"] == "complete"


@pytest.mark.slurm
def test_a_job_past_its_time_limit_times_out_and_keeps_its_points(
    slurm_cluster: Path, tmp_path: Path
) -> None:
    cluster = _cluster(tmp_path, limit_min=1)
    folder = tmp_path / "jobs" / "4"
    (handle,) = get_backend("slurm", folder, cluster=cluster).submit(
        _specs(folder, ["typea"], LONG)
    )
    # slurmctld checks time limits about every 30 s: the job ends 60 to 100 s after it starts.
    _wait([handle], 150)
    outcome = handle.outcome()
    assert outcome.state == "TIMEOUT", outcome
    assert outcome.reason and "TIME LIMIT" in outcome.reason
    assert outcome.result is not None and outcome.result["measurements"]


@pytest.mark.slurm
def test_another_process_reattaches_to_a_job_by_id_and_folder(
    slurm_cluster: Path, tmp_path: Path
) -> None:
    cluster = _cluster(tmp_path)
    folder = tmp_path / "jobs" / "5"
    (handle,) = get_backend("slurm", folder, cluster=cluster).submit(
        _specs(folder, ["typeb"], TINY)
    )
    script = (
        "import json, sys; from pathlib import Path; from jobs.slurm import SlurmBackend\n"
        "h = SlurmBackend(Path(sys.argv[2])).reattach(sys.argv[1]); o = h.outcome()\n"
        "print(json.dumps({'node_type': h.spec.node_type, 'state': o.state,"
        " 'host': o.result['node']['hostname']}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, handle.external_id, str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "sacct" not in done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {
        "node_type": "typeb",
        "state": "COMPLETED",
        "host": handle.outcome().result["node"]["hostname"],  # type: ignore[index]
    }
    again = SlurmBackend(folder).reattach(handle.external_id)
    assert again.spec == handle.spec
    assert again.outcome().state == "COMPLETED"


def test_slurm_executor_without_a_cluster_file_submits_nothing(tmp_path: Path) -> None:
    backend = get_backend("slurm", tmp_path / "jobs")
    with pytest.raises(UsageError, match="--cluster"):
        backend.submit(_specs(tmp_path, ["typea"], TINY))
    assert backend.sbatch_calls == 0  # type: ignore[attr-defined]
    assert not (tmp_path / "jobs").exists()


def test_an_unknown_node_type_is_refused_before_anything_is_submitted(tmp_path: Path) -> None:
    backend = SlurmBackend(tmp_path / "jobs", cluster=_cluster(tmp_path))
    with pytest.raises(UsageError, match="accepted: typea, typeb"):
        backend.submit(_specs(tmp_path, ["typec"], TINY))
    assert backend.sbatch_calls == 0


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[node_types.a]\npartition = "p"\ncpus = 2\n', "'cpus'"),
        ("[node_types.a]\ntime_limit_min = 5\n", "'partition'"),
        ('[node_types.a]\npartition = "p"\ntime_limit_min = 0\n', "time_limit_min = 0"),
        ('[node_types.a]\npartition = "p"\nmem = "lots"\n', "mem = 'lots'"),
        ('[node_types.a]\npartition = "p"\nexclusive = "yes"\n', "exclusive = 'yes'"),
        ('[node_types.a]\npartition = "p"\nsbatch = ["--array=0-3"]\n', "sbatch"),
        ('[node_types."Big Nodes"]\npartition = "p"\n', "'Big Nodes'"),
        ('[slurm]\nfolder = "relative/jobs"\n[node_types.a]\npartition = "p"\n', "folder"),
        ('[slurm]\nmax_arrays = 3\n[node_types.a]\npartition = "p"\n', "'max_arrays'"),
        ("[defaults]\nexclusive = false\n", "node_types"),
        ("[node_types.a\n", "not valid TOML"),
    ],
    ids=[
        "unknown-key",
        "missing-partition",
        "bad-time-limit",
        "bad-mem",
        "bad-bool",
        "reserved-sbatch-option",
        "bad-node-type-name",
        "relative-folder",
        "unknown-slurm-key",
        "no-node-types",
        "not-toml",
    ],
)
def test_a_bad_cluster_file_is_one_line_naming_the_key(
    tmp_path: Path, text: str, named: str
) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    with pytest.raises(UsageError) as caught:
        load_cluster(path)
    message = str(caught.value)
    assert named in message
    assert str(path) in message
    assert "\n" not in message


def test_the_local_cluster_file_in_deploy_loads() -> None:
    cluster = load_cluster(ROOT / "deploy" / "slurm-local" / "cluster.toml")
    assert set(cluster.node_types) == {"typea", "typeb"}
    assert {t.partition for t in cluster.node_types.values()} == {"typea", "typeb"}
    assert not cluster.node_types["typea"].exclusive


def test_node_type_settings_become_sbatch_options(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(
        '[defaults]\naccount = "staff"\n'
        '[node_types.epyc]\npartition = "compute"\nconstraint = "epyc&ib"\n'
        'mem = "0"\ncpus_per_task = 64\nsbatch = ["--hint=nomultithread", "--requeue"]\n'
    )
    params = load_cluster(path).node_type("epyc").executor_parameters()
    assert params == {
        "partition": "compute",
        "time": 60,
        "exclusive": True,
        "constraint": "epyc&ib",
        "cpus_per_task": 64,
        "mem": "0",
        "account": "staff",
        "additional_parameters": {"hint": "nomultithread", "requeue": True},
    }
