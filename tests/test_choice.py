"""The choice of a thread count, size classes, measured layouts and adoption: the rules
that turn measurements into a preset, on measurements whose outcome is known."""

from __future__ import annotations

import pytest

from profiler.choice.adoption import CLEAN, NOISY, UNVERIFIED, VERIFICATION_FAILED, decide, quality
from profiler.choice.preset import LAYOUT_PHASE, OVERSUBSCRIBED_PHASE, class_of, derive
from profiler.choice.rule import choose, curves_of
from profiler.jobstart.budget import plan
from profiler.jobstart.forms.checked import entry
from profiler.results import Verification
from tests.builders import spread_point as point


def test_a_count_100x_slower_for_float64_is_never_chosen() -> None:
    # What the quick start once did: float32 wanted 2 threads, float64 ran 100x slower there.
    points = [point(128, 1, 27.6), point(128, 2, 0.3)]
    points += [point(128, 1, 50.0, "float32"), point(128, 2, 52.0, "float32")]
    preset = derive(points, node_type="n", calibrated_cpus=2)
    (small,) = preset.size_classes
    assert small.threads == 1
    # no count is within 3% for both: the report says who pays, and how much
    assert not small.within_tolerance
    assert small.losses == {"float64": 0.0, "float32": pytest.approx(1 - 50 / 52, abs=1e-4)}


def test_the_report_names_whose_best_it_passed_over(capsys: pytest.CaptureFixture[str]) -> None:
    # as this machine measured it: float64 best on 2 threads, float32 on 1; 1 loses less
    from profiler.cli.display_node import print_choice

    points = [point(128, 1, 52.1), point(128, 2, 59.3)]
    points += [point(128, 1, 107.3, "float32"), point(128, 2, 93.9, "float32")]
    print_choice(derive(points, node_type="n", calibrated_cpus=2).to_dict())
    out = " ".join(capsys.readouterr().out.split())  # as one line, whatever the width
    small = out.split("small (", 1)[1].split(" medium (", 1)[0]
    assert small.startswith("n <= 256, measured at n = 128): 1 thread, 52.1 GFLOP/s;")
    assert "float64's best is 2 threads at 59.3 GFLOP/s" in small
    assert "float64 loses 12%" in small


def test_the_smallest_count_within_tolerance_of_every_curve_wins() -> None:
    curves = curves_of(
        [point(512, t, g) for t, g in {1: 30.0, 2: 58.0, 4: 100.0, 8: 101.0}.items()]
        + [point(1024, t, g) for t, g in {1: 33.0, 2: 64.0, 4: 110.0, 8: 120.0}.items()]
    )
    choice = choose(curves, tolerance=0.03)
    # 4 is within 3% at n=512 but 8% short at n=1024: only 8 is good for both
    assert choice.threads == 8 and choice.within_tolerance
    assert choose(curves, tolerance=0.10).threads == 4


def test_a_difference_inside_the_spread_never_decides() -> None:
    # 2 threads look 6% faster, but both points scatter by about 8%: a tie, which 1 wins
    noisy = [point(2048, 1, 100.0, spread=0.08), point(2048, 2, 106.0, spread=0.08)]
    assert choose(curves_of(noisy), tolerance=0.03).threads == 1
    # the same figures measured tightly: 2 is really faster
    tight = [point(2048, 1, 100.0, spread=0.002), point(2048, 2, 106.0, spread=0.002)]
    assert choose(curves_of(tight), tolerance=0.03).threads == 2


@pytest.mark.parametrize(
    ("n", "name"),
    [(1, "small"), (256, "small"), (257, "medium"), (1024, "medium"), (4096, "large"),
     (4097, "huge"), (65536, "huge")],
)  # fmt: skip
def test_size_classes_have_fixed_names_and_bounds(n: int, name: str) -> None:
    assert class_of(n)[0] == name


def test_a_partial_calibration_updates_only_its_classes_and_never_renames() -> None:
    full = derive(
        [point(n, t, g) for n in (128, 1024, 4096) for t, g in {1: 10.0 * n**0.3, 2: 1.0}.items()]
        + [point(4096, 2, 500.0)],
        node_type="n",
        calibrated_cpus=2,
        calibration_id=7,
    )
    assert [(c.name, c.threads) for c in full.size_classes] == [
        ("small", 1), ("medium", 1), ("large", 2),
    ]  # fmt: skip
    # a later calibration measured only n=128, where 2 threads now win
    only_small = derive(
        [point(128, 1, 20.0), point(128, 2, 40.0)],
        node_type="n",
        calibrated_cpus=2,
        calibration_id=9,
        previous=full,
    )
    classes = {c.name: c for c in only_small.size_classes}
    assert list(classes) == ["small", "medium", "large"]
    assert classes["small"].threads == 2 and classes["small"].calibration_id == 9
    assert classes["medium"].threads == 1 and classes["medium"].calibration_id == 7
    assert classes["large"].threads == 2 and classes["large"].calibration_id == 7
    assert only_small.default_class == "large"


def test_layout_rows_come_from_measured_layouts_with_the_oversubscribed_figure() -> None:
    sweep = [point(2048, 1, 50.0), point(2048, 2, 98.0), point(2048, 4, 150.0)]
    layouts = [
        point(2048, 1, 190.0, workers=4, phase=LAYOUT_PHASE),
        point(2048, 1, 160.0, workers=2, phase=LAYOUT_PHASE),
        point(2048, 2, 180.0, workers=2, phase=LAYOUT_PHASE),
        point(2048, 4, 20.0, workers=2, phase=OVERSUBSCRIBED_PHASE),
    ]
    preset = derive(sweep + layouts, node_type="n", calibrated_cpus=4)
    measured = {(x.workers, x.threads, x.gflops, x.oversubscribed_gflops) for x in preset.layouts
                if x.size_class == "large"}  # fmt: skip
    assert measured == {(2, 2, 180.0, 20.0), (4, 1, 190.0, None)}
    assert preset.layout_table()["large"] == ((1, 4), (2, 2), (4, 1))
    table = {"n": entry(preset).data()}  # the values every form embeds, and the job-start rule
    assert plan({}, table, "n", workers=3, size_class="large", usable=99_999)["threads"] == 2
    # layout points never count as single-process points
    assert preset.size_class("large").best_gflops == 150.0


def _verification(ratio: float) -> Verification:
    return Verification(
        n=512, dtype="float64", threads=2, sweep_gflops=100.0, fresh_gflops=100.0 * ratio,
        threads_observed=(2,), ratio=ratio, passed=0.9 <= ratio <= 1.25,
        note="" if 0.9 <= ratio <= 1.25 else "the fresh process reached it",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("verdict", "ratios", "current", "force", "adopted", "worth"),
    [
        ("quiet", [1.0], None, False, True, CLEAN),
        ("quiet", [None], None, False, True, UNVERIFIED),
        ("quiet", [None], CLEAN, False, False, UNVERIFIED),  # --no-verify keeps a clean one
        ("quiet", [None], CLEAN, True, True, UNVERIFIED),
        ("unknown", [1.0], CLEAN, False, False, NOISY),  # a load that cannot be read
        ("noisy", [1.0], None, False, True, NOISY),  # nothing better to keep
        ("noisy", [1.0], CLEAN, False, False, NOISY),  # a clean preset is kept
        ("noisy", [1.0], NOISY, False, True, NOISY),
        ("noisy", [1.0], CLEAN, True, True, NOISY),  # --force
        ("quiet", [0.62], None, False, False, VERIFICATION_FAILED),
        ("quiet", [1.83], None, False, False, VERIFICATION_FAILED),  # far above is suspect
        ("quiet", [1.0, 0.62], None, False, False, VERIFICATION_FAILED),  # any node
        ("quiet", [0.62], CLEAN, True, True, VERIFICATION_FAILED),
    ],
)
def test_adoption_keeps_a_clean_preset_from_a_worse_one(
    verdict: str,
    ratios: list[float | None],
    current: str | None,
    force: bool,
    adopted: bool,
    worth: str,
) -> None:
    verifications = [None if r is None else _verification(r) for r in ratios]
    got_worth, detail = quality(verdict, verifications, ["other processes took 40%"])
    assert got_worth == worth
    decision = decide(
        got_worth,
        detail,
        current_quality=current,
        current_id=3 if current else None,
        force=force,
    )
    assert decision.adopted is adopted
    if not adopted:
        assert "--force" in decision.note
        assert ("idle node" in decision.note) == (worth != UNVERIFIED)
        if current:
            assert "calibration 3" in decision.note


def test_verification_compares_with_the_single_process_figure_not_a_layouts() -> None:
    from profiler.measure.verify import verify_preset
    from profiler.settings import PROFILES, with_overrides

    points = [point(64, 1, 38.0), point(64, 2, 20.0)]
    points.append(point(64, 1, 76.0, workers=2, phase=LAYOUT_PHASE))  # two processes' total
    preset = derive(points, node_type="n", calibrated_cpus=2)
    settings = with_overrides(PROFILES["quick"], sizes=(64,), min_time=0.01, samples=3)
    verification = verify_preset(preset, points, settings)
    assert (verification.n, verification.threads) == (64, 1)
    assert verification.sweep_gflops == 38.0
