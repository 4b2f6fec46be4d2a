"""The node-side pipeline of a calibration: probe, sweep, layouts, conditions, derive, verify.

``measure_node`` runs the stages in order and returns what they found as a ``NodeOutcome``.
It reports as it goes through a ``Progress`` (the node record once probed, each phase as it
starts, each point as soon as it is measured), so that the caller can checkpoint every
point; a ``KeyboardInterrupt`` (Ctrl-C, or a SIGTERM or stop request the caller turns into
one) ends the run with the points measured so far, as ``partial``. It never touches the
database, the job folder or signal handlers: those are the task's (``jobs.task``).

It imports numpy (through the sweep) only when it runs: the caller sets the thread
environment for the largest count first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from profiler.settings import ALL_BLAS, NUMPY_BLAS
from profiler.statuses import COMPLETE, FAILED, PARTIAL

if TYPE_CHECKING:
    from profiler.blas.run import Library
    from profiler.measure.conditions import Conditions
    from profiler.results import Measurement, NodeInfo, Verification
    from profiler.settings import SweepSettings

__all__ = ["NodeOutcome", "Progress", "measure_node"]


class Progress(Protocol):
    """Where the pipeline reports. ``point`` may raise KeyboardInterrupt to stop the run."""

    def node(self, node: NodeInfo) -> None: ...

    def phase(self, name: str) -> None: ...

    def point(self, measurement: Measurement) -> None: ...


@dataclass(frozen=True)
class NodeOutcome:
    """What one node's run found: its status, points, and what was judged of them."""

    status: str
    node: NodeInfo | None
    measurements: tuple[Measurement, ...]
    verification: Verification | None = None
    error: str | None = None
    conditions: Conditions | None = None


def measure_node(
    settings: SweepSettings, node_type: str, progress: Progress, *, verify: bool = True
) -> NodeOutcome:
    """Probe this node, sweep (and measure layouts), judge the conditions, and verify the
    derived preset in a fresh process. The conditions are watched from the sweep's start to
    the end of the layouts."""
    from profiler.choice.preset import derive
    from profiler.errors import UsageError
    from profiler.measure.conditions import Watch
    from profiler.measure.probe import probe
    from profiler.measure.runs import latest_reports
    from profiler.measure.sweep import check_memory, resolve_threads, run_sweep
    from profiler.measure.verify import verify_preset

    measurements: list[Measurement] = []
    node = None
    watch = None

    def on_point(m: Measurement) -> None:
        # a later run of a point comes back as the point with all its runs: it replaces it
        measurements[:] = latest_reports([*measurements, m])
        progress.point(m)

    try:
        node = probe()
        progress.node(node)
        try:
            counts = resolve_threads(settings.threads, node.usable_cpus)
            check_memory(settings, node.memory_available_bytes)
        except UsageError as exc:
            return NodeOutcome(FAILED, node, (), error=str(exc))

        libraries, notes = _chosen_libraries(settings.blas)
        if not libraries:
            return NodeOutcome(FAILED, node, (), error="; ".join(notes))
        progress.phase("sweep")
        # the whole affinity mask: the sweep's threads are not pinned, and others on any of
        # these CPUs compete with them
        watch = Watch(node.affinity_cpus).start()
        outcome = run_sweep(
            settings, counts, physical_cores=node.usable_cores or None, on_point=on_point,
            libraries=libraries,
        )  # fmt: skip
        notes += outcome.notes
        # layouts and the verification run numpy's matmul: they measure numpy's curves
        with_numpy = NUMPY_BLAS in libraries
        if outcome.completed and settings.layouts and node.usable_cpus > 1 and with_numpy:
            progress.phase("layouts")
            notes += _layouts(settings, node, on_point)
        conditions = _with_instability(
            watch.stop(*_samples_and_floors(measurements)), measurements, settings, node,
            node_type,
        )  # fmt: skip
        verification = None
        if outcome.completed and verify and with_numpy:
            progress.phase("verification")
            try:
                preset = derive(
                    measurements,
                    node_type=node_type,
                    calibrated_cpus=node.usable_cpus,
                    tolerance=settings.tolerance,
                )
            except ValueError as exc:  # no point whose thread count held: nothing to verify
                notes.append(f"not verified: {exc}")
            else:
                verification = verify_preset(
                    preset, [m for m in measurements if m.blas == NUMPY_BLAS], settings
                )
        return NodeOutcome(
            COMPLETE if outcome.completed else PARTIAL,
            node,
            tuple(measurements),
            verification=verification,
            error="; ".join(filter(None, [outcome.error, *notes])) or None,
            conditions=conditions,
        )
    except KeyboardInterrupt:
        conditions = watch.stop(*_samples_and_floors(measurements)) if watch else None
        return NodeOutcome(
            PARTIAL, node, tuple(measurements), error="interrupted", conditions=conditions
        )


def _chosen_libraries(specs: tuple[str, ...]) -> tuple[dict[str, Library | None], list[str]]:
    """The libraries ``--blas`` names, as this node has them (label -> library; numpy's
    own is None: it runs in this process), and a note for each it does not have. ``all``
    is every library found here that can run a GEMM."""
    from profiler.blas.run import find, select
    from profiler.errors import UsageError

    if specs == (NUMPY_BLAS,):
        return {NUMPY_BLAS: None}, []
    found = find()
    if specs == (ALL_BLAS,):
        picked = [lib for lib in found if lib.error is None and lib.gemm_symbol]
        notes = [f"{lib.label} not swept: {lib.error}" for lib in found if lib.error]
    else:
        picked, notes = [], []
        for spec in specs:
            try:
                picked.append(select(found, spec))
            except UsageError as exc:
                notes.append(f"not swept: {exc}")
    chosen: dict[str, Library | None] = {}
    for lib in picked:
        chosen.setdefault(lib.label, None if lib.label == NUMPY_BLAS else lib)
    return chosen, notes


def _with_instability(
    conditions: Conditions,
    measurements: list[Measurement],
    settings: SweepSettings,
    node: NodeInfo,
    node_type: str,
) -> Conditions:
    """``conditions`` with the points whose runs split into states, and, where the choice
    does not hold in every state, a reason that makes the calibration count as noisy."""
    from dataclasses import replace

    from profiler.measure.instability import choice_flips, unstable_points
    from profiler.statuses import NOISY, QUIET

    sweep = [m for m in measurements if m.workers == 1]
    unstable = unstable_points(sweep)
    if not unstable:
        return conditions
    try:
        flips = choice_flips(
            sweep, node_type=node_type, calibrated_cpus=node.usable_cpus,
            tolerance=settings.tolerance,
        )  # fmt: skip
    except ValueError:  # no point whose thread count held: no choice to flip
        flips = []
    reasons = conditions.reasons
    if flips:
        reasons += (
            f"unstable: the runs of {len(unstable)} points split into states, and the choice "
            f"differs between them ({'; '.join(flips)})",
        )
    verdict = NOISY if flips and conditions.verdict == QUIET else conditions.verdict
    return replace(conditions, unstable=tuple(unstable), reasons=reasons, verdict=verdict)


def _samples_and_floors(
    measurements: list[Measurement],
) -> tuple[list[tuple[float, ...]], list[float]]:
    """Each run's samples, and the least sigma its outliers are judged by: the spread
    between its point's runs (a state the other runs saw too is not an outlier)."""
    samples, floors = [], []
    for m in measurements:
        floor = m.spread if len(m.runs) >= 2 else 0.0
        for run in m.run_samples:
            samples.append(run)
            floors.append(floor)
    return samples, floors


def _layouts(
    settings: SweepSettings, node: NodeInfo, on_point: Callable[[Measurement], None]
) -> list[str]:
    """Measure the job layouts after a complete sweep; what went wrong becomes a note, and
    the sweep stays complete (its points are the preset's; layouts only add rows)."""
    from profiler.choice.preset import class_of
    from profiler.measure.layouts import LayoutError, run_layouts

    largest = {}
    for n in settings.sizes:
        largest[class_of(n)[0]] = n
    try:
        _, notes = run_layouts(
            settings,
            sorted(largest.values()),
            node.affinity_cpus[: node.usable_cpus],
            available_bytes=node.memory_available_bytes,
            on_point=on_point,
        )
    except (LayoutError, OSError) as exc:
        return [f"layouts not measured: {exc}"]
    return [f"layouts: {note}" for note in notes]
