"""The fleet on Slurm: `--nodes-per-type N` lands on N distinct nodes, `--all-nodes` and the
node lists honour a node type's constraint (features).

The local cluster has one node without features, so the real tests check what it can show
(a request for more nodes than are up is refused before anything is submitted; a
constraint no node has selects none); a stand-in ``sinfo`` on PATH beside them shows how
several nodes with features are filtered and ordered by the same code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from jobs.cluster import NodeType, load_cluster
from jobs.features import admits, parse_constraint
from jobs.slurm import SlurmBackend
from profiler.errors import UsageError
from tests.conftest import TINY, run_blasprof


@pytest.mark.parametrize(
    ("expression", "features", "expected"),
    [
        ("genoa", {"genoa", "ib"}, True),
        ("genoa&ib", {"genoa"}, False),
        ("genoa&ib", {"genoa", "ib"}, True),
        ("rome|genoa", {"rome"}, True),
        ("(rome|genoa)&ib", {"genoa"}, False),
        ("(rome|genoa)&ib", {"genoa", "ib"}, True),
        ("[rome|genoa]", {"genoa"}, True),
        ("[rome*2&genoa*2]", {"genoa"}, True),  # a split of nodes: either feature will do
        ("[rome*2&genoa*2]", {"milan"}, False),
        ("genoa", set(), False),
    ],
)
def test_a_constraint_admits_the_nodes_slurm_would(
    expression: str, features: set[str], expected: bool
) -> None:
    assert admits(expression, features) is expected


@pytest.mark.parametrize("expression", ["genoa&", "(genoa", "genoa ib", "&genoa", "a;rm -rf"])
def test_a_malformed_constraint_is_one_usage_error(expression: str) -> None:
    with pytest.raises(UsageError, match="constraint"):
        parse_constraint(expression)


def _fake_sinfo(tmp_path: Path, lines: str) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "sinfo"
    script.write_text(f"#!/bin/sh\nprintf '%s' '{lines}'\n")
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_nodes_keep_those_with_the_features_idle_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _fake_sinfo(tmp_path, "n3|mixed|genoa,ib\nn1|idle|genoa\nn2|idle|genoa,ib\n"
                                "n4|idle|(null)\nn2|idle|genoa,ib\n")  # fmt: skip
    monkeypatch.setenv("PATH", env["PATH"])
    backend = SlurmBackend(tmp_path / "jobs")
    plain = NodeType("g", partition="genoa")
    assert backend.nodes(plain) == ["n1", "n2", "n4", "n3"]
    assert backend.nodes(NodeType("g", partition="genoa", constraint="genoa&ib")) == ["n2", "n3"]
    assert backend.nodes(NodeType("g", partition="genoa", constraint="milan")) == []


def test_nodes_per_type_takes_that_many_distinct_nodes_pinned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from profiler.calibration.request import CalibrationRequest
    from profiler.calibration.run import hosts_for
    from profiler.settings import PROFILES

    monkeypatch.setenv("PATH", _fake_sinfo(tmp_path, "a|idle|x\nb|mixed|x\nc|idle|x\n")["PATH"])
    backend = SlurmBackend(tmp_path / "jobs")
    node_type = NodeType("t", partition="p", constraint="x")
    request = CalibrationRequest("slurm", ("t",), PROFILES["quick"], nodes_per_type=2)
    assert hosts_for(request, backend, node_type) == ["a", "c"]  # distinct, idle first
    one = CalibrationRequest("slurm", ("t",), PROFILES["quick"], nodes_per_type=1)
    assert hosts_for(one, backend, node_type) == [None]  # any matching node; sbatch filters
    four = CalibrationRequest("slurm", ("t",), PROFILES["quick"], nodes_per_type=4)
    with pytest.raises(UsageError, match=r"has 3 node\(s\) .*\(a, c, b\).*at most 3"):
        hosts_for(four, backend, node_type)


def _cluster_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text(
        f'[slurm]\nfolder = "{tmp_path / "shared"}"\n\n'
        "[defaults]\nexclusive = false\ncpus_per_task = 2\ntime_limit_min = 5\n\n"
        f'[node_types.typea]\npartition = "typea"\n{extra}\n'
    )
    return path


@pytest.mark.slurm
def test_more_nodes_than_are_up_is_refused_before_submitting(
    slurm_cluster: Path, home: Path, blasprof_exe: str, tmp_path: Path
) -> None:
    host = os.uname().nodename.split(".")[0]
    cluster = _cluster_file(tmp_path)
    proc = run_blasprof(
        blasprof_exe, "calibrate", "--cluster", str(cluster), "--node-type", "typea",
        "--nodes-per-type", "2", *TINY, "--no-verify", "--no-wait",
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert f"has 1 node(s) that can take a job now ({host})" in proc.stderr
    assert "give at most 1" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    from_file = _cluster_file(tmp_path, "nodes = 3")
    proc = run_blasprof(blasprof_exe, "calibrate", "--cluster", str(from_file), *TINY, "--no-wait")
    assert proc.returncode == 2 and f"nodes = 3 in {from_file}" in proc.stderr
    assert not (tmp_path / "shared").exists() or not any((tmp_path / "shared").iterdir())
    assert json.loads(run_blasprof(blasprof_exe, "list", "--json").stdout) == []


@pytest.mark.slurm
def test_all_nodes_honours_the_constraint(
    slurm_cluster: Path, home: Path, blasprof_exe: str, tmp_path: Path
) -> None:
    constrained = load_cluster(_cluster_file(tmp_path, 'constraint = "no-such-feature|nor-this"'))
    backend = SlurmBackend(tmp_path / "jobs")
    assert backend.nodes(constrained.node_type("typea")) == []
    unconstrained = load_cluster(_cluster_file(tmp_path))
    assert backend.nodes(unconstrained.node_type("typea")) == [os.uname().nodename.split(".")[0]]
    cluster = _cluster_file(tmp_path, 'constraint = "no-such-feature|nor-this"')
    proc = run_blasprof(
        blasprof_exe, "calibrate", "--cluster", str(cluster), "--all-nodes", *TINY, "--no-wait"
    )
    assert proc.returncode == 1, proc.stderr
    assert "constraint 'no-such-feature|nor-this'" in proc.stderr
    assert "none with those features" in proc.stderr
    assert json.loads(run_blasprof(blasprof_exe, "list", "--json").stdout) == []
