"""The sweep: option parsing, the thread search on modelled curves, and real timings."""

from __future__ import annotations

import os
import random

import pytest

from profiler.cli.options import parse_dtypes, parse_sizes, parse_threads
from profiler.errors import UsageError
from profiler.measure.sweep import (
    coarse_ladder,
    one_at_a_time,
    resolve_threads,
    run_sweep,
    search_threads,
)
from profiler.measure.timing import ThreadLimiter, Workspace, check_fits, time_gemm
from profiler.settings import ALL_THREADS, PROFILES, TimingSettings, with_overrides


def test_parse_options() -> None:
    assert parse_sizes("256, 1024,4096") == (256, 1024, 4096)
    assert parse_dtypes("float32,float64") == ("float32", "float64")
    assert parse_threads("all") == ALL_THREADS
    assert parse_threads("4,1,2") == (1, 2, 4)
    assert resolve_threads(ALL_THREADS, 3) == (1, 2, 3)
    with pytest.raises(UsageError, match="more than the 2 CPUs"):
        resolve_threads((1, 4), 2)


def test_memory_check_names_the_bytes_needed() -> None:
    check_fits(1024, "float64", 10**9)
    with pytest.raises(UsageError, match=f"needs {3 * 8 * 20000**2:,} bytes"):
        check_fits(20000, "float64", 10**9)


def test_coarse_ladder_has_powers_of_two_the_ends_and_the_anchor() -> None:
    assert coarse_ladder(range(1, 129), anchors=[64]) == [1, 2, 4, 8, 16, 32, 64, 128]
    assert coarse_ladder(range(1, 97), anchors=[48]) == [1, 2, 4, 8, 16, 32, 48, 64, 96]


def _curve(kind: str, n: int, noise: float, seed: int):
    """Modelled GFLOP/s per thread count on an ``n``-CPU node."""
    rng = random.Random(seed)
    physical = n // 2

    def true(t: int) -> float:
        if kind == "saturating":  # Amdahl with 3% serial part
            return 40.0 / (0.03 + 0.97 / t)
        if kind == "peaked":  # memory bandwidth: rises, then falls off
            return 40.0 * t / (1 + (t / (n / 3)) ** 2)
        if kind == "smt-cliff":  # scales to the physical cores, then drops by 30%
            return 40.0 * min(t, physical) * (0.7 if t > physical else 1.0)
        raise ValueError(kind)

    calls: list[int] = []

    def measured(t: int) -> float:
        calls.append(t)
        return true(t) * (1 + rng.gauss(0, noise))

    return true, measured, calls


@pytest.mark.parametrize("kind", ["saturating", "peaked", "smt-cliff"])
@pytest.mark.parametrize("n", [16, 64, 128])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_search_keeps_quality_with_a_fraction_of_the_points(kind: str, n: int, seed: int) -> None:
    true, measured, calls = _curve(kind, n, noise=0.01, seed=seed)
    cands = range(1, n + 1)
    result = search_threads(cands, one_at_a_time(measured), tolerance=0.03, anchors=[n // 2])
    best_true = max(true(t) for t in cands)
    assert true(result.chosen) >= 0.95 * best_true, (result.chosen, result.measured)
    assert len(calls) == len(set(calls))  # no point measured twice
    assert len(calls) <= max(12, n // 4), len(calls)


def test_search_measures_everything_on_a_two_cpu_grid() -> None:
    _, measured, calls = _curve("saturating", 2, noise=0.0, seed=0)
    result = search_threads([1, 2], one_at_a_time(measured))
    assert sorted(calls) == [1, 2] and result.chosen == 2


def test_search_prefers_fewer_threads_when_more_do_not_pay() -> None:
    flat = {t: 100.0 + 0.5 * t for t in range(1, 33)}  # 32 threads only 15% above 1
    result = search_threads(range(1, 33), one_at_a_time(flat.__getitem__), tolerance=0.03)
    assert flat[result.chosen] >= max(flat.values()) * 0.97
    assert result.chosen < 32


def test_time_gemm_measures_a_real_point() -> None:
    limiter = ThreadLimiter()
    settings = TimingSettings(min_time=0.02, samples=3)
    point = time_gemm(Workspace(128, "float64"), 1, limiter, settings)
    assert point.threads == 1 and point.threads_verified and point.threads_observed
    assert len(point.samples) == 3 and point.min_s <= point.median_s
    # the loop count was calibrated so that one sample lasts at least the minimum time
    assert point.median_s * point.loops >= settings.min_time * 0.9
    assert point.gflops == pytest.approx(2 * 128**3 / point.median_s / 1e9)
    assert 0 <= point.cv < 1


def test_thread_limit_is_checked_against_threadpoolctl() -> None:
    limiter = ThreadLimiter()
    usable = len(os.sched_getaffinity(0))
    point = time_gemm(Workspace(64, "float32"), usable, limiter, TimingSettings(min_time=0.005))
    assert point.threads_verified
    assert set(point.threads_observed) == {usable}


def test_run_sweep_reports_every_point_as_it_goes_then_again_with_each_run() -> None:
    # ~2 s: two extra worker processes per size
    settings = with_overrides(
        PROFILES["quick"], sizes=(64, 96), dtypes=("float64",), min_time=0.005, samples=3,
        runs=2,
    )  # fmt: skip
    seen = []
    outcome = run_sweep(settings, (1, 2), on_point=seen.append)
    assert outcome.completed and outcome.notes == []
    # first pass: one report per point, with one run; second pass: each again, with two
    assert [len(m.run_gflops) for m in seen] == [1] * 4 + [2] * 4
    assert seen[4:] == outcome.measurements
    assert {(m.n, m.threads) for m in seen} == {(64, 1), (64, 2), (96, 1), (96, 2)}


def test_run_sweep_interrupted_keeps_what_it_measured() -> None:
    settings = with_overrides(
        PROFILES["quick"], sizes=(64, 96, 128), dtypes=("float64",), min_time=0.005, samples=3
    )
    seen = []

    def stop_after_three(m: object) -> None:
        seen.append(m)
        if len(seen) == 3:
            raise KeyboardInterrupt

    outcome = run_sweep(settings, (1, 2), on_point=stop_after_three)
    assert not outcome.completed and outcome.error == "interrupted"
    # the stop came with the first point of n=96's batch: the batch is reported whole (its
    # second point was measured too) and nothing after it is measured
    assert outcome.measurements == seen
    assert [(m.n, m.threads) for m in seen] == [(64, 1), (64, 2), (96, 1), (96, 2)]


@pytest.mark.parametrize("peak", [40, 56, 70, 90, 106])
@pytest.mark.parametrize("decline", [0.0025, 0.01])
def test_search_finds_a_peak_between_two_ladder_points(peak: int, decline: float) -> None:
    # rises linearly to the peak, then falls: both ladder points around it fall short
    curve = {t: (t / peak if t <= peak else 1 - decline * (t - peak)) * 100 for t in range(1, 129)}
    for top in (False, True):
        result = search_threads(
            range(1, 129), one_at_a_time(curve.__getitem__), tolerance=0.03, from_the_top=top
        )
        # the peak is found to within the tolerance, and the count chosen is within the
        # tolerance of it: at worst about 6% below the true best, never the 10-25% of a
        # search that stops at the ladder
        assert curve[result.best] >= 0.97 * max(curve.values()), (top, result.measured)
        assert curve[result.chosen] >= 0.97 * curve[result.best]
