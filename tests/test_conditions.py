"""Conditions, end to end: a busy node is seen and said, and its figures do not replace a
clean preset; measured layouts reach the preset. These run real calibrations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from profiler.measure.conditions import Snapshot, judge
from tests.conftest import TINY, run_blasprof


def _snap(t: float, busy: int, steal: int, total: int, own: float) -> Snapshot:
    return Snapshot(t, (0.5, 0.5, 0.5), 1, busy, steal, total, own)


def test_the_verdict_counts_what_others_took_from_our_cpus() -> None:
    hz = os.sysconf("SC_CLK_TCK")
    # 10 s on 2 CPUs = 20 s of capacity; 12 s busy, 10 s of it ours: others took 10%+
    before = _snap(0.0, 0, 0, 0, 0.0)
    quiet = judge(before, _snap(10.0, int(11.5 * hz), 0, 20 * hz, 10.0), [0, 1])
    assert quiet.verdict == "quiet" and quiet.others_cpu_fraction == pytest.approx(0.075)
    busy = judge(before, _snap(10.0, 18 * hz, 0, 20 * hz, 10.0), [0, 1])
    assert busy.verdict == "noisy" and busy.others_cpu_fraction == pytest.approx(0.4)
    assert "other processes took 40%" in busy.reasons[0]
    stolen = judge(before, _snap(10.0, 10 * hz, 2 * hz, 20 * hz, 10.0), [0, 1])
    assert stolen.verdict == "noisy" and "stole 10%" in stolen.reasons[0]
    # samples that scatter wildly are a reason of their own
    wild = [[1.0, 1.0, 1.0, 1.0, 9.0]] * 3
    scattered = judge(before, _snap(10.0, 10 * hz, 0, 20 * hz, 10.0), [0, 1], wild)
    assert scattered.verdict == "noisy" and "outliers" in scattered.reasons[0]


def _store_clean_preset(home: Path, node_type: str) -> int:
    """A preset from an earlier, clean calibration: what a busy one must not replace."""
    from db import open_database
    from profiler.choice.preset import derive
    from tests.builders import spread_point as point

    with open_database(f"sqlite:///{home / 'blasprof.sqlite'}") as database:
        cal = database.create_calibration(node_type, executor="local", profile="quick", settings={})
        database.finish_calibration(cal, "complete", verdict="quiet")
        preset = derive(
            [point(192, 1, 40.0), point(192, 2, 80.0)], node_type=node_type, calibrated_cpus=2
        )
        database.store_preset(cal, preset, quality="clean", note="the node was quiet")
    return cal


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs to share")
def test_a_busy_node_is_called_noisy_and_keeps_the_clean_preset(
    home: Path, blasprof_exe: str
) -> None:
    home.mkdir(parents=True)
    clean_id = _store_clean_preset(home, "busy")
    args = ["calibrate", "--node-type", "busy", *TINY, "--min-time", "0.05", "--json"]
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        proc = run_blasprof(blasprof_exe, *args, "--no-verify")
    finally:
        hog.kill()
        hog.wait()
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "complete"
    assert doc["conditions"]["verdict"] == "noisy"
    assert any("other processes took" in r for r in doc["conditions"]["reasons"])
    assert doc["preset_adopted"] is False and doc["preset_quality"] == "noisy"
    assert f"calibration {clean_id}" in proc.stderr and "--force" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    # jobs keep the clean preset
    shown = run_blasprof(blasprof_exe, "preset", "busy", "--format", "json")
    assert json.loads(shown.stdout)["calibration_id"] == clean_id
    listed = json.loads(run_blasprof(blasprof_exe, "list", "--json").stdout)
    assert (listed[0]["verdict"], listed[0]["preset_adopted"]) == ("noisy", False)
    # --force adopts it all the same
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        forced = run_blasprof(blasprof_exe, *args, "--no-verify", "--force")
    finally:
        hog.kill()
        hog.wait()
    assert forced.returncode == 0, forced.stderr
    new = json.loads(forced.stdout)
    assert new["preset_adopted"] is True
    shown = run_blasprof(blasprof_exe, "preset", "busy", "--format", "json")
    assert json.loads(shown.stdout)["calibration_id"] == new["calibration_id"]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="layouts need 2 CPUs")
def test_measured_layouts_reach_the_preset_and_show(home: Path, blasprof_exe: str) -> None:
    proc = run_blasprof(
        blasprof_exe, "calibrate", "--node-type", "lay", *TINY, "--layouts", "--no-verify",
        "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    layout_points = [m for m in doc["measurements"] if m["workers"] > 1]
    cpus = len(os.sched_getaffinity(0))
    assert {m["phase"] for m in layout_points} == {"layout", "layout-oversubscribed"}
    assert all(m["n"] == 192 and m["dtype"] == "float64" for m in layout_points)
    assert {(m["workers"], m["threads"]) for m in layout_points if m["phase"] == "layout"} <= {
        (w, t) for w in range(2, cpus + 1) for t in range(1, cpus // w + 1)
    }
    rows = [x for x in doc["preset"]["layouts"] if x["size_class"] == "small"]
    assert rows and all(x["gflops"] > 0 and x["oversubscribed_gflops"] > 0 for x in rows)
    table = run_blasprof(blasprof_exe, "show", str(doc["calibration_id"]))
    assert "job layouts measured" in table.stdout and "at the BLAS default" in table.stdout
