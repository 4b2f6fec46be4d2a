"""Numbers to trust: back-to-back quick calibrations, quiet and with a competing process.

(a) Reproducibility: ``blasprof calibrate`` (the quick profile, verification on) run N
times back to back on this machine, each into the same fresh database. For every size
class, over every pair of runs judged quiet, the fraction of pairs that chose the same
thread count (goal >= 0.9). The conditions of each run are kept.

(b) Noise detection: N more runs with a competing busy process pinned to one of this
process's CPUs. The fraction flagged noisy (goal >= 0.9), and how many of those replaced
the clean preset that (a) left (goal: none).

Run: ``python benchmarks/bench_conditions.py [--quick]``; writes ``results/conditions.json``.
Takes about 20 s a calibration on 2 cores (N = 10, or 4 with --quick).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import Goal, environment, print_table, script

NAME = "conditions"


def _blasprof() -> str:
    exe = Path(sys.executable).with_name("blasprof")
    return str(exe) if exe.exists() else (shutil.which("blasprof") or "blasprof")


def _calibrate(home: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLASPROF_")}
    env["BLASPROF_HOME"] = str(home)
    done = subprocess.run(
        [_blasprof(), "calibrate", "--node-type", "bench", "--json"],
        capture_output=True, text=True, env=env, timeout=900, check=False,
    )  # fmt: skip
    doc = json.loads(done.stdout)
    conditions = doc.get("conditions") or {}
    classes = (doc.get("preset") or {}).get("size_classes", [])
    return {
        "exit": done.returncode,
        "calibration_id": doc["calibration_id"],
        "verdict": conditions.get("verdict"),
        "reasons": conditions.get("reasons", []),
        "others": [n.get("others_cpu_fraction") for n in conditions.get("nodes", [])],
        "classes": {c["name"]: c["threads"] for c in classes},
        "adopted": doc.get("preset_adopted"),
        "quality": doc.get("preset_quality"),
    }


def _hog() -> subprocess.Popen[bytes]:
    cpu = sorted(os.sched_getaffinity(0))[0]
    code = f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"
    return subprocess.Popen([sys.executable, "-c", code])


def _agreement(runs: Sequence[dict[str, Any]]) -> dict[str, float]:
    names = sorted({name for r in runs for name in r["classes"]})
    out = {}
    for name in names:
        pairs = [
            (a["classes"][name], b["classes"][name])
            for a, b in itertools.combinations(runs, 2)
            if name in a["classes"] and name in b["classes"]
        ]
        if pairs:
            out[name] = sum(x == y for x, y in pairs) / len(pairs)
    return out


def run(quick: bool = False) -> dict[str, Any]:
    count = 4 if quick else 10
    with tempfile.TemporaryDirectory(prefix="blasprof-bench-") as tmp:
        home = Path(tmp) / "home"
        quiet = [_calibrate(home) for _ in range(count)]
        hog = _hog()
        try:
            busy = [_calibrate(home) for _ in range(count)]
        finally:
            hog.kill()
            hog.wait()
    judged_quiet = [r for r in quiet if r["verdict"] == "quiet"]
    agreement = _agreement(judged_quiet)
    overall = min(agreement.values()) if agreement else 0.0
    flagged = sum(r["verdict"] == "noisy" for r in busy) / len(busy)
    clean_before = any(r["quality"] == "clean" and r["adopted"] for r in quiet)
    replaced = sum(bool(r["adopted"]) for r in busy if r["verdict"] == "noisy")
    goals = [
        Goal(
            name="same count per class, pairs of quiet runs",
            measured=f"{overall:.2f}",
            goal=">= 0.9",
            met=overall >= 0.9 if agreement else None,
            note=(
                f"{len(judged_quiet)} of {count} runs quiet; per class "
                + ", ".join(f"{k} {v:.2f}" for k, v in agreement.items())
            ),
        ),
        Goal(
            name="runs flagged noisy with a busy process",
            measured=f"{flagged:.2f}",
            goal=">= 0.9",
            met=flagged >= 0.9,
            note=f"{count} runs, one CPU of {len(os.sched_getaffinity(0))} kept busy",
        ),
        Goal(
            name="noisy runs that replaced the clean preset",
            measured=str(replaced if clean_before else "-"),
            goal="0",
            met=(replaced == 0) if clean_before else None,
            note="" if clean_before else "no clean preset from the quiet runs to keep",
        ),
    ]
    return {
        "name": NAME,
        "environment": environment(),
        "quiet": quiet,
        "busy": busy,
        "agreement": agreement,
        "goals": goals,
    }


def report(payload: dict[str, Any]) -> None:
    for phase in ("quiet", "busy"):
        print_table(
            f"Calibrations, {phase} phase",
            ("id", "exit", "verdict", "others", "classes", "adopted", "quality"),
            [
                (r["calibration_id"], r["exit"], r["verdict"],
                 ",".join(f"{o:.0%}" for o in r["others"] if o is not None),
                 " ".join(f"{k}={v}" for k, v in r["classes"].items()),
                 r["adopted"], r["quality"])
                for r in payload[phase]
            ],
        )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    return script(NAME, __doc__, run, report, argv)


if __name__ == "__main__":
    main()
