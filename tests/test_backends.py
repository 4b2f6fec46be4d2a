"""The contract every job backend keeps, run over each one the registry names: debug and
local on this machine, Slurm on the real local cluster (tests marked ``slurm``).

A backend takes task specs and gives back one handle per spec, in order; the handle's
states are words of ``jobs.states``; a finished task's outcome carries the node result; a
cancelled task ends and keeps the points it measured; a batch backend finds its jobs again
from another instance. Backend-specific behaviour (arrays, time limits, host binding) is
tested beside each backend.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from jobs import states
from jobs.base import Backend, Handle
from jobs.checkpoint import read_checkpoint
from jobs.registry import BACKENDS, backend_class, get_backend
from jobs.task import TaskSpec
from profiler.settings import SweepSettings
from tests.builders import TINY_TASK

TINY = TINY_TASK
#: one of minutes: about 1 s a sample, a point every few seconds
LONG: dict[str, Any] = {
    "profile": "quick",
    "sizes": [64, 96, 128, 160, 192, 224],
    "dtypes": ["float64"],
    "threads": [1],
    "timing": {"min_time": 1.0, "samples": 3},
}
#: every state a handle may report
VOCABULARY = {states.PENDING, states.RUNNING, states.UNKNOWN, *states.FINAL}
#: a node type the local cluster of deploy/slurm-local has (a partition)
SLURM_TYPE = "typea"

CLUSTER_TOML = """
[slurm]
folder = "{folder}"

[defaults]
exclusive = false
cpus_per_task = 1
time_limit_min = 5

[node_types.{name}]
partition = "{name}"
"""


def _params() -> list[Any]:
    marks = {"slurm": [pytest.mark.slurm]}
    return [pytest.param(name, marks=marks.get(name, []), id=name) for name in BACKENDS]


@pytest.fixture(params=_params())
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A fresh instance of each registered backend, writing under ``tmp_path``."""
    name = request.param
    cluster = None
    if backend_class(name).batch:
        request.getfixturevalue("slurm_cluster")  # the real cluster, or skipped/failed
        from jobs.cluster import load_cluster

        path = tmp_path / "cluster.toml"
        path.write_text(CLUSTER_TOML.format(folder=tmp_path / "jobs", name=SLURM_TYPE))
        cluster = load_cluster(path)
    return get_backend(name, tmp_path / "jobs" / "1", cluster=cluster)


def _specs(backend: Backend, settings: dict[str, Any], count: int) -> list[TaskSpec]:
    node_type = SLURM_TYPE if backend.batch else "contract"
    return [
        TaskSpec(
            node_type=node_type,
            settings=SweepSettings.from_dict(settings),
            checkpoint=str(backend.folder / f"task-{i}.points.jsonl"),
            verify=False,
        )
        for i in range(count)
    ]


def _wait(handles: Sequence[Handle], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(h.done() for h in handles):
        if time.monotonic() > deadline:
            for h in handles:
                h.cancel()
            pytest.fail(f"not done after {timeout_s}s: {[h.state() for h in handles]}")
        time.sleep(0.3)


def test_every_backend_runs_each_spec_and_returns_its_result_in_order(backend: Backend) -> None:
    specs = _specs(backend, TINY, 2)
    handles = backend.submit(specs)
    assert [h.spec.checkpoint for h in handles] == [s.checkpoint for s in specs]
    ids = [h.external_id for h in handles]
    assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == 2
    assert set(backend.poll(handles)) <= VOCABULARY
    _wait(handles, 180)
    assert backend.poll(handles) == [states.COMPLETED, states.COMPLETED]
    for handle, spec in zip(handles, specs, strict=True):
        outcome = handle.outcome()
        assert outcome.state == states.COMPLETED, outcome
        assert outcome.result is not None
        assert outcome.result["status"] == "complete"
        assert outcome.result["node_type"] == spec.node_type
        assert outcome.result["node"]["hostname"]
        assert {(m["n"], m["threads"]) for m in outcome.result["measurements"]} == {
            (n, t) for n in (64, 128) for t in (1, 2)
        }
        # every point reached the checkpoint as it was measured
        assert len(read_checkpoint(spec.checkpoint).measurements) == 4


def test_every_backend_stops_a_cancelled_task_and_keeps_its_points(backend: Backend) -> None:
    (handle,) = backend.submit(_specs(backend, LONG, 1))
    deadline = time.monotonic() + 120
    while not read_checkpoint(handle.spec.checkpoint).measurements:
        assert time.monotonic() < deadline, f"{handle.external_id} measured nothing"
        assert not handle.done(), f"{handle.external_id} ended early: {handle.outcome()}"
        time.sleep(0.3)
    handle.cancel()
    _wait([handle], 90)
    assert handle.state() in states.FINAL
    outcome = handle.outcome()
    if outcome.result is not None:  # the task returned what it had
        assert outcome.result["status"] == "partial"
        kept = outcome.result["measurements"]
    else:  # the batch system ended it: the checkpoint holds the points
        assert outcome.state in states.ENDED_WITHOUT_SUCCESS
        kept = read_checkpoint(handle.spec.checkpoint).measurements
    assert 1 <= len(kept) < len(LONG["sizes"])


def test_a_batch_backend_finds_its_jobs_again_from_another_instance(backend: Backend) -> None:
    (handle,) = backend.submit(_specs(backend, TINY, 1))
    again = type(backend)(backend.folder).reattach(handle.external_id)
    if not backend.batch:
        # a task of this machine ends with the process that started it: nothing to find
        assert again is None
        _wait([handle], 120)
        return
    assert again is not None
    assert again.spec == handle.spec
    _wait([again], 180)
    assert again.outcome().state == states.COMPLETED
    assert again.outcome().result == handle.outcome().result
