"""A calibration request, checked once at the edge: the options a caller parsed, checked
against each other, the cluster file and this machine, into a ``CalibrationRequest``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.registry import backend_class, choose
from profiler.errors import UsageError
from profiler.names import check_node_type
from profiler.settings import (
    ALL_BLAS,
    NUMPY_BLAS,
    PROFILES,
    SweepSettings,
    ThreadCounts,
    with_overrides,
)

if TYPE_CHECKING:
    from jobs.cluster import Cluster

__all__ = ["CalibrationRequest", "build_request"]


@dataclass(frozen=True)
class CalibrationRequest:
    """A calibration checked at the edge: everything ``run_calibration`` needs."""

    executor: str
    node_types: tuple[str, ...]
    settings: SweepSettings
    verify: bool = True
    cluster: Cluster | None = None
    nodes_per_type: int | None = None
    all_nodes: bool = False
    #: adopt the preset even if the node was busy or the preset did not verify
    force: bool = False
    #: calibrate this machine although this process may use fewer CPUs than it has
    partial_node: bool = False

    @property
    def batch(self) -> bool:
        """Whether the jobs run elsewhere and outlive this process."""
        return backend_class(self.executor).batch


def check_blas_here(specs: tuple[str, ...]) -> None:
    """Refuse a ``--blas`` name that no library on this machine answers to, listing the
    libraries found (``all`` and numpy's own need no search)."""
    from profiler.blas.run import find, select

    if specs in ((NUMPY_BLAS,), (ALL_BLAS,)):
        return
    found = find()
    for spec in specs:
        if spec != NUMPY_BLAS:
            try:
                select(found, spec)
            except UsageError as exc:
                raise UsageError(f"--blas: {exc}") from None


def build_request(
    *,
    executor: str,
    node_types: Sequence[str],
    profile: str,
    sizes: tuple[int, ...] | None = None,
    dtypes: tuple[str, ...] | None = None,
    threads: ThreadCounts | None = None,
    min_time: float | None = None,
    samples: int | None = None,
    runs: int | None = None,
    exhaustive: bool = False,
    tolerance: float | None = None,
    verify: bool = True,
    cluster: Path | None = None,
    nodes_per_type: int | None = None,
    all_nodes: bool = False,
    wait: bool = True,
    layouts: bool | None = None,
    force: bool = False,
    partial_node: bool = False,
    blas: tuple[str, ...] | None = None,
) -> CalibrationRequest:
    """Check the options (parsed by the caller); every problem is a UsageError naming the
    option."""
    if min_time is not None and not 0 < min_time <= 60:
        raise UsageError(f"--min-time: must be > 0 and at most 60 seconds, got {min_time}")
    if samples is not None and not 1 <= samples <= 1000:
        raise UsageError(f"--samples: must be 1 to 1000, got {samples}")
    if tolerance is not None and not 0 <= tolerance < 1:
        raise UsageError(f"--tolerance: must be in [0, 1), got {tolerance}")
    settings = with_overrides(
        PROFILES[profile],
        sizes=sizes,
        dtypes=dtypes,
        threads=threads,
        min_time=min_time,
        samples=samples,
        runs=runs,
        strategy="exhaustive" if exhaustive else None,
        tolerance=tolerance,
        layouts=layouts,
        blas=blas,
    )
    names = tuple(check_node_type(n) for n in node_types)
    if len(set(names)) != len(names):
        raise UsageError("--node-type: the same node type is named twice")
    if nodes_per_type is not None and not 1 <= nodes_per_type <= 10_000:
        raise UsageError(f"--nodes-per-type: must be 1 to 10000, got {nodes_per_type}")
    if all_nodes and nodes_per_type is not None:
        raise UsageError("--all-nodes and --nodes-per-type: give one of them")
    loaded = None
    if cluster is not None:
        from jobs.cluster import load_cluster

        loaded = load_cluster(cluster)
    backend = choose(executor, cluster_given=loaded is not None)
    if backend.batch:
        assert loaded is not None  # choose refuses a batch backend without a cluster file
        names = names or tuple(loaded.node_types)
        for name in names:
            cpus = loaded.node_type(name).cpus_per_task
            if settings.threads != "all" and cpus and max(settings.threads) > cpus:
                raise UsageError(
                    f"--threads: {max(settings.threads)} is more than the {cpus} CPUs a job of "
                    f"node type {name} gets (cpus_per_task in {loaded.path}); accepted: 1 to "
                    f"{cpus}, or 'all'"
                )
    else:
        if len(names) > 1:
            raise UsageError(
                f"--executor {backend.name} calibrates this machine only, so give at most one "
                "--node-type (several node types need a batch executor and --cluster)"
            )
        if nodes_per_type not in (None, 1) or all_nodes:
            option = "--all-nodes" if all_nodes else "--nodes-per-type"
            raise UsageError(f"{option}: only with a batch executor such as --executor slurm")
        if not wait:
            raise UsageError(
                "--no-wait: only with a batch executor such as --executor slurm (local runs "
                "end with the command)"
            )
        # this machine is the node: what it lacks is known now (a batch node finds its
        # own libraries by these names, and says which it does not have)
        check_blas_here(settings.blas)
    if partial_node and backend.batch:
        raise UsageError(
            "--partial-node: only for this machine (a batch job gets the CPUs its node type "
            "asks for in the cluster file)"
        )
    return CalibrationRequest(
        backend.name, names, settings, verify, loaded, nodes_per_type, all_nodes, force,
        partial_node,
    )  # fmt: skip
