"""Runs as the unit of measurement: a point measured in several worker processes, judged
by the spread between them (the choice's tie, outliers, verification), and stored.

Cost: about 6 s in all (a few worker processes of tiny GEMMs, two verification processes).
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Sequence
from types import SimpleNamespace

import pytest

from profiler import stats
from profiler.choice.preset import derive
from profiler.choice.rule import choose, curves_of
from profiler.history.selection import Point
from profiler.measure.runs import combine, measure_in_worker
from profiler.measure.sweep import run_sweep
from profiler.results import Measurement, NodeResult, Run
from profiler.settings import PROFILES, TimingSettings, with_overrides

TINY = TimingSettings(min_time=0.005, samples=3)


def one_run(n: int, threads: int, gflops: float, *, jitter: float = 0.0) -> Measurement:
    """A point measured in one process at ``gflops``, its samples +-``jitter`` around it."""
    seconds = 2 * n**3 / gflops / 1e9
    samples = tuple(seconds * (1 + d) for d in (-jitter, 0.0, jitter))
    return Measurement(
        kernel="gemm", dtype="float64", n=n, threads=threads, median_s=seconds,
        min_s=min(samples), cv=jitter, samples=samples, loops=1, gflops=gflops,
        threads_verified=True, threads_observed=(threads,), phase="search",
    )  # fmt: skip


def test_a_points_figure_is_the_harmonic_mean_of_its_runs() -> None:
    runs = [one_run(512, 2, g, jitter=0.01) for g in (55.0, 110.0, 57.0)]
    point = combine(runs)
    assert point.run_gflops == pytest.approx((55.0, 110.0, 57.0))
    # the mean time per GEMM over the runs: what a job meets on average
    assert point.gflops == pytest.approx(statistics.harmonic_mean([55.0, 110.0, 57.0]))
    assert point.median_s == pytest.approx(statistics.fmean(r.median_s for r in runs))
    assert point.samples == tuple(s for r in runs for s in r.samples)
    # the spread is between the runs, ten times what one run's samples say
    assert point.spread > 0.3 > 10 * runs[0].spread
    assert point.uncertainty > 0.15
    # a run in the other state is what jobs meet, not an outlier
    assert point.outliers == 0
    # combining again keeps every run once
    assert combine([point, one_run(512, 2, 90.0)]).run_gflops == pytest.approx(
        (55.0, 110.0, 57.0, 90.0)
    )


def test_a_sample_is_an_outlier_only_beyond_the_spread_between_runs() -> None:
    samples = [1.0, 1.0, 1.01, 0.99, 1.0, 1.3]
    assert stats.outliers(samples) == 1
    assert stats.outliers(samples, floor=0.2) == 0


def test_a_difference_inside_the_between_run_spread_does_not_decide_the_choice() -> None:
    steady_one = combine([one_run(512, 1, g, jitter=0.005) for g in (40.0, 40.4, 39.8)])
    # two threads look 25% faster on average, but one run in three is in the slow state
    flipping_two = combine([one_run(512, 2, g, jitter=0.005) for g in (80.0, 38.0, 78.0)])
    steady_two = combine([one_run(512, 2, g, jitter=0.005) for g in (50.0, 50.5, 49.6)])
    assert choose(curves_of([steady_one, flipping_two]), 0.03).threads == 1
    assert choose(curves_of([steady_one, steady_two]), 0.03).threads == 2


def test_each_run_is_a_fresh_worker_started_for_the_largest_count() -> None:
    points = measure_in_worker(96, "float32", [1, 2], TINY, timeout=60, phase="search")
    assert not isinstance(points, str), points
    assert [(m.n, m.dtype, m.threads, m.phase) for m in points] == [
        (96, "float32", 1, "search"),
        (96, "float32", 2, "search"),
    ]
    # the worker limits every count through threadpoolctl and reads it back
    assert all(m.threads_verified for m in points)
    assert all(len(m.samples) == 3 and m.median_s > 0 for m in points)


def test_a_hung_worker_is_a_failed_run_with_its_reason_not_a_hung_sweep() -> None:
    answer = measure_in_worker(2048, "float64", [1], TINY, timeout=0.05, phase="search")
    assert isinstance(answer, str)
    assert "n=2048 float64" in answer and "killed" in answer


def test_a_sweep_measures_every_point_in_several_processes() -> None:
    # ~2 s: two sizes x one dtype x two extra workers
    settings = with_overrides(
        PROFILES["quick"], sizes=(64, 96), dtypes=("float64",), min_time=0.005, samples=3
    )
    assert settings.runs == 3  # the quick profile's default
    outcome = run_sweep(settings, (1, 2))
    assert outcome.completed and outcome.notes == []
    assert {(m.n, m.threads) for m in outcome.measurements} == {(64, 1), (64, 2), (96, 1), (96, 2)}
    for m in outcome.measurements:
        assert len(m.runs) == 3
        assert len(m.samples) == 9
        assert m.gflops == pytest.approx(statistics.harmonic_mean(m.run_gflops))
        # each run timed its own loops with its own operands: no two runs are one run
        assert len({r.samples for r in m.runs}) == 3


def test_runs_survive_the_result_record_and_old_records_read_as_one_run() -> None:
    point = combine([one_run(256, 2, g) for g in (50.0, 100.0)])
    settings = PROFILES["quick"]
    result = NodeResult("n", None, (point,), "complete", "t0", "t1", settings)
    back = NodeResult.from_dict(result.to_dict())
    assert back.measurements == (point,)
    assert back.settings.runs == 3
    old = result.to_dict()
    del old["measurements"][0]["runs"], old["settings"]["runs"]
    legacy = NodeResult.from_dict(old)
    assert legacy.measurements[0].runs == () and legacy.settings.runs == 1
    assert len(legacy.measurements[0].to_json()["runs"]) == 1


def test_verification_passes_where_the_runs_landed_not_only_at_their_mean() -> None:
    from profiler.measure.verify import verify_preset

    settings = with_overrides(PROFILES["quick"], sizes=(64,), min_time=0.01, samples=3)
    # runs that span every speed this machine can reach at n=64 on one thread: a fresh
    # process lands inside them whatever state it meets
    spanning = combine([one_run(64, 1, 0.5), one_run(64, 1, 1e5)])
    preset = derive([spanning], node_type="n", calibrated_cpus=1)
    assert verify_preset(preset, [spanning], settings).passed
    # one run at the same mean figure (the harmonic mean: near the slow run): far below
    # what a fresh process reaches, so the sweep is called disturbed
    single = one_run(64, 1, spanning.gflops)
    verification = verify_preset(preset, [single], settings)
    assert not verification.passed and "disturbed" in verification.note


def test_runs_are_a_bounded_profile_setting() -> None:
    from profiler.errors import UsageError

    assert [PROFILES[p].runs for p in ("quick", "standard", "full")] == [3, 5, 10]
    with pytest.raises(UsageError, match="--runs: must be 1 to 100"):
        with_overrides(PROFILES["quick"], runs=0)
    assert Run.from_dict(Run(1.0, (1.0, 2.0), 3).to_dict()) == Run(1.0, (1.0, 2.0), 3)


def two_state(n: int, threads: int, figures: Sequence[float]) -> Measurement:
    return combine([one_run(n, threads, g, jitter=0.01) for g in figures])


def test_runs_that_split_into_states_are_said_unstable_with_each_states_figure() -> None:
    from profiler.measure.instability import unstable_points

    flipping = two_state(128, 2, (55.0, 56.0, 110.0, 57.0, 111.0))
    steady = two_state(512, 2, (90.0, 86.0, 88.0))
    (found,) = unstable_points([flipping, steady])
    assert (found["n"], found["dtype"], found["threads"], found["runs"]) == (128, "float64", 2, 5)
    slow, fast = found["states"]
    assert slow["runs"] == 3 and slow["gflops"] == pytest.approx(56.0, rel=0.01)
    assert fast["runs"] == 2 and fast["gflops"] == pytest.approx(110.5, rel=0.01)
    # runs within 25% of each other are one state, however many
    assert unstable_points([steady, two_state(512, 1, (40.0, 44.0))]) == []


def test_an_unstable_calibration_counts_as_noisy_only_where_its_choice_flips() -> None:
    from profiler.measure.conditions import Watch
    from profiler.measure.instability import choice_flips
    from profiler.measure.pipeline import _with_instability

    flipping = two_state(128, 2, (55.0, 110.0, 56.0))
    one_between = two_state(128, 1, (70.0, 70.5, 69.5))  # slow state: 1 wins; fast: 2
    one_below = two_state(128, 1, (30.0, 30.5, 29.5))  # 2 wins in either state
    kw = {"node_type": "n", "calibrated_cpus": 2, "tolerance": 0.03}
    assert choice_flips([one_between, flipping], **kw) == [
        "small: 1 threads in the slow state, 2 in the fast"
    ]
    assert choice_flips([one_below, flipping], **kw) == []

    quiet = Watch().start().stop()
    settings = PROFILES["quick"]
    node = SimpleNamespace(usable_cpus=2)
    held = _with_instability(quiet, [one_below, flipping], settings, node, "n")
    assert len(held.unstable) == 1 and held.reasons == quiet.reasons
    assert held.verdict == quiet.verdict
    flips = _with_instability(quiet, [one_between, flipping], settings, node, "n")
    assert flips.verdict == ("noisy" if quiet.verdict == "quiet" else quiet.verdict)
    assert "choice differs between them (small: 1 threads" in flips.reasons[-1]
    assert flips.to_dict()["unstable"][0]["states"][0]["runs"] == 2


def stored(calibration: int, gflops: float, runs: Sequence[float] = (), **kw: object) -> Point:
    """A stored point of node type t, n=512 float64 on 2 threads, from one host."""
    created = dt.datetime(2026, 12, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=calibration)
    values = {"verdict": "quiet", "blas": "openblas 0.3.31 (pthreads)", **kw}
    return Point(
        calibration_id=calibration, node_type="t", created_at=created, hostname="vm",
        job_id=calibration, dtype="float64", n=512, threads=2, gflops=gflops,
        runs=tuple(runs), **values,  # type: ignore[arg-type]
    )  # fmt: skip


def test_compare_judges_a_point_by_its_runs_and_the_node_types_noise_floor() -> None:
    from profiler.history.compare import compare, noise_floors

    # a steady calibration against one whose runs caught the slow state once
    a = [stored(1, 88.0, (90.0, 88.0, 86.0))]
    b = [stored(2, 70.0, (91.0, 50.0, 89.0))]
    (row,) = compare(a, b).rows
    assert row.verdict in ("slower", "too-variable") and not compare(a, b).regressions
    # history: quiet calibrations of this point moved by half or more with nothing changed
    flips = [stored(10 + i, g) for i, g in enumerate((93.0, 50.0, 93.0, 52.0, 90.0))]
    flips.append(stored(20, 30.0, verdict="noisy"))  # a noisy one never sets a floor
    floors = noise_floors(flips)
    assert floors[("float64", 512, 2)] == pytest.approx(0.60 * 1.96 / 0.6745, abs=0.03)
    steady_a, slow_b = [stored(1, 93.0, (93.0, 92.0, 94.0))], [stored(2, 50.0, (50.0, 51.0, 49.0))]
    (noisy_row,) = compare(steady_a, slow_b, floors=floors).rows
    assert (noisy_row.verdict, noisy_row.floor_source) == ("same", "history")
    # a stable history: the tolerance is the floor, and a 30% slowdown is a regression
    calm = noise_floors([stored(10 + i, g) for i, g in enumerate((88.0, 89.0, 88.5, 88.0))])
    slowed = [stored(2, 61.0, (61.0, 62.0, 60.5), blas_kernel="openblas Sandybridge")]
    steady = [stored(1, 88.0, (88.0, 87.0, 89.0), blas_kernel="openblas SkylakeX")]
    result = compare(steady, slowed, floors=calm)
    (found,) = result.regressions
    assert found.floor_source == "tolerance" and found.change == pytest.approx(61 / 88 - 1)
    kernel = next(d for d in result.differences if d.what == "blas_kernel")
    assert "SkylakeX" in kernel.message() and "Sandybridge" in kernel.message()


def test_the_calibration_plot_shows_each_run_on_whole_thread_counts() -> None:
    pytest.importorskip("matplotlib")
    from profiler.history.plots import calibration_figure

    points = [two_state(128, 1, (40.0, 41.0, 39.0)), two_state(128, 2, (55.0, 110.0, 56.0))]
    doc = {"calibration_id": 1, "node_type": "t", "status": "complete",
           "measurements": [m.to_json() for m in points]}  # fmt: skip
    axes = calibration_figure(doc).axes[0]
    axes.figure.canvas.draw()
    ticks = [t for t in axes.get_xticks() if 1 <= t <= 2]
    assert ticks and all(float(t).is_integer() for t in ticks)
    dots = sorted(
        round(float(y), 1) for line in axes.get_lines() if line.get_marker() == "."
        for y in line.get_ydata()
    )  # fmt: skip
    assert dots == [39.0, 40.0, 41.0, 55.0, 56.0, 110.0]


def test_a_choice_that_flips_between_states_is_not_called_a_busy_node() -> None:
    from profiler.choice.adoption import NOISY, decide, quality

    flip = "unstable: the runs of 1 points split into states, and the choice differs between them"
    worth, detail = quality("noisy", [None], [flip])
    assert worth == NOISY and detail.startswith("its figures hold in no single state: unstable")
    assert quality("noisy", [None], ["other processes took 40%", flip])[1].startswith("the node")
    # always unstable: still a preset where none is clean, never over a clean one
    assert decide(worth, detail, current_quality=None, current_id=None, force=False).adopted
    assert not decide(worth, detail, current_quality="clean", current_id=3, force=False).adopted
