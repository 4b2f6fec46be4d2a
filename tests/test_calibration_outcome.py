"""How a calibration's end becomes the exit code of `calibrate` and `collect`: one rule
(profiler.calibration.outcome), told through the real commands in test_cli and
test_recovery; here each case of the rule on its own."""

from __future__ import annotations

from profiler.calibration.finish import CalibrationReport
from profiler.calibration.outcome import ending
from profiler.choice.adoption import Adoption

ADOPTED = Adoption(True, "clean", "adopted")
REFUSED = Adoption(False, "noisy", "noisy: not adopted over the clean preset of calibration 3")


def _report(status: str, adoption: Adoption | None, cal_id: int = 7) -> CalibrationReport:
    return CalibrationReport(cal_id, "typea", status, (), adoption)


def test_an_adopted_complete_calibration_ends_the_command_with_0_and_nothing_said() -> None:
    for incomplete_fails in (True, False):
        assert ending([_report("complete", ADOPTED)], incomplete_fails=incomplete_fails).code == 0
        assert ending([_report("complete", ADOPTED)]).lines == ()


def test_a_refused_preset_fails_calibrate_and_collect_alike_and_says_why() -> None:
    for incomplete_fails in (True, False):
        ended = ending([_report("complete", REFUSED)], incomplete_fails=incomplete_fails)
        assert ended.code == 1
        assert ended.lines == (f"calibration 7 (typea): {REFUSED.note}",)


def test_a_complete_calibration_without_a_preset_fails_and_points_at_show() -> None:
    ended = ending([_report("complete", None)], incomplete_fails=False)
    assert ended.code == 1 and "blasprof show 7" in ended.lines[0]


def test_one_that_did_not_complete_fails_calibrate_and_is_only_said_by_collect() -> None:
    reports = [_report("partial", None, 7), _report("complete", ADOPTED, 8)]
    strict, lenient = ending(reports), ending(reports, incomplete_fails=False)
    assert (strict.code, lenient.code) == (1, 0)
    assert (
        strict.lines
        == lenient.lines
        == ("calibration did not complete: 7 (partial); the points measured are stored",)
    )


def test_a_calibration_still_running_is_neither_done_nor_failed() -> None:
    assert ending([_report("running", None)]) == ending([])
    assert ending([]).code == 0


def test_a_calibration_another_collector_finished_is_not_this_commands_to_judge() -> None:
    # two `collect` at once: the one that lost the race has no adoption to report
    lost = CalibrationReport(7, "typea", "complete", (), None, elsewhere=True)
    assert ending([lost]) == ending([])
