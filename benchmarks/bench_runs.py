"""Figures that hold from one run to the next: reproducibility, power and truth of runs.

(a) Reproducibility: N back-to-back default ``blasprof calibrate`` runs into one fresh
database: how many adopted their preset (goal N of N on an idle machine), how many
consecutive pairs chose the same count in every size class (goal N-1 of N-1), and how many
``blasprof compare K K+1`` of consecutive pairs exited 0 (goal N-1 of N-1). Each run's
conditions and unstable points are printed.

(b) Power: a calibration with ``OPENBLAS_CORETYPE=Sandybridge`` (numpy's DYNAMIC_ARCH
OpenBLAS then runs an older kernel, ~30% slower at n=512 float64) against the last clean
one: ``compare`` must exit 1 and name the kernel that differs.

(c) Truth: each 1-thread and all-thread point of the last calibration against a tight
``np.matmul(out=)`` loop in 6 fresh processes (mean time): ratio within 0.90-1.10.

Run: ``python benchmarks/bench_runs.py [--quick]`` (N = 10, or 3 with --quick); writes
``results/runs.json``. A quick calibration takes ~20-50 s on 2 cores (more when shared).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import Goal, environment, print_table, script

NAME = "runs"

_LOOP = """
import os, sys, time, numpy as np
n, dtype = int(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng()
a, b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
c = np.empty((n, n), dtype=dtype)
np.matmul(a, b, out=c)
reps, t = 1, 0.0
while t < 0.3:
    start = time.perf_counter()
    for _ in range(reps):
        np.matmul(a, b, out=c)
    t = time.perf_counter() - start
    reps *= 2
print(t / (reps // 2))
"""


def _blasprof() -> str:
    exe = Path(sys.executable).with_name("blasprof")
    return str(exe) if exe.exists() else (shutil.which("blasprof") or "blasprof")


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLASPROF_")}
    return {**env, "BLASPROF_HOME": str(home), **extra}


def _calibrate(home: Path, *args: str, **extra: str) -> dict[str, Any]:
    start = time.monotonic()
    done = subprocess.run(
        [_blasprof(), "calibrate", "--node-type", "bench", "--json", *args],
        capture_output=True, text=True, env=_env(home, **extra), timeout=1800, check=False,
    )  # fmt: skip
    wall = time.monotonic() - start
    doc = json.loads(done.stdout)
    conditions = doc.get("conditions") or {}
    return {
        "exit": done.returncode,
        "wall_s": round(wall, 1),
        "calibration_id": doc["calibration_id"],
        "verdict": conditions.get("verdict"),
        "reasons": conditions.get("reasons", []),
        "unstable": [u for n in conditions.get("nodes", []) for u in n.get("unstable") or ()],
        "classes": {
            c["name"]: c["threads"] for c in (doc.get("preset") or {}).get("size_classes", [])
        },  # fmt: skip
        "adopted": doc.get("preset_adopted"),
        "quality": doc.get("preset_quality"),
        "measurements": doc.get("measurements", []),
    }


def _compare(home: Path, a: int, b: int) -> dict[str, Any]:
    done = subprocess.run(
        [_blasprof(), "compare", str(a), str(b), "--json"],
        capture_output=True, text=True, env=_env(home), timeout=300, check=False,
    )  # fmt: skip
    doc = json.loads(done.stdout) if done.stdout.strip() else {}
    worst = [r for r in doc.get("rows", []) if r["verdict"] == "regression"]
    return {"a": a, "b": b, "exit": done.returncode, "differences": doc.get("differences", []),
            "regressions": [(r["dtype"], r["n"], r["threads"], round(r["change"], 3),
                             r["floor_source"]) for r in worst]}  # fmt: skip


def _tight_loop(n: int, dtype: str, threads: int, processes: int = 6) -> float:
    """GFLOP/s of the mean time per GEMM over ``processes`` fresh processes."""
    from profiler.jobstart.budget import thread_environment

    env = {**os.environ, **thread_environment(threads)}
    times = [
        float(subprocess.run([sys.executable, "-c", _LOOP, str(n), dtype], env=env,
                             capture_output=True, text=True, check=True).stdout)
        for _ in range(processes)
    ]  # fmt: skip
    return 2 * n**3 / statistics.fmean(times) / 1e9


def run(quick: bool = False) -> dict[str, Any]:
    count = 3 if quick else 10
    home = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    runs = [_calibrate(home) for _ in range(count)]
    pairs = list(zip(runs, runs[1:], strict=False))
    same = sum(a["classes"] == b["classes"] for a, b in pairs)
    compares = [_compare(home, a["calibration_id"], b["calibration_id"]) for a, b in pairs]
    adopted = sum(bool(r["adopted"]) for r in runs)
    clean = sum(c["exit"] == 0 for c in compares)

    slow = _calibrate(home, OPENBLAS_CORETYPE="Sandybridge")
    power = _compare(home, runs[-1]["calibration_id"], slow["calibration_id"])
    named = any(d["what"] == "blas_kernel" for d in power["differences"])

    # what a quick calibration cost before runs: the same one with every point in one process
    single = _calibrate(Path(tempfile.mkdtemp(prefix="bench-runs-1-")), "--runs", "1")
    wall = statistics.median(r["wall_s"] for r in runs)

    truth = []
    counts = sorted({m["threads"] for m in runs[-1]["measurements"]})
    for m in runs[-1]["measurements"]:
        if m.get("workers", 1) == 1 and m["threads"] in (counts[0], counts[-1]):
            reference = _tight_loop(m["n"], m["dtype"], m["threads"])
            truth.append((m["dtype"], m["n"], m["threads"], m["gflops"], reference))
    ratios = [g / r for *_, g, r in truth]
    within = sum(0.9 <= x <= 1.1 for x in ratios)
    shared = "shared machine" if os.getloadavg()[0] > 0.5 else ""
    goals = [
        Goal("runs that adopted their preset", f"{adopted} of {count}", f"{count} of {count}",
             adopted == count, shared),
        Goal("consecutive pairs choosing the same counts", f"{same} of {len(pairs)}",
             f"{len(pairs)} of {len(pairs)}", same == len(pairs), shared),
        Goal("compare of consecutive pairs exiting 0", f"{clean} of {len(pairs)}",
             f"{len(pairs)} of {len(pairs)}", clean == len(pairs), shared),
        Goal("compare finds an older kernel (Sandybridge)", f"exit {power['exit']}"
             + (", kernel named" if named else ""), "exit 1, kernel named",
             power["exit"] == 1 and named, ""),
        Goal("quick calibration wall time, runs 3 / runs 1", f"{wall:.0f} s / "
             f"{single['wall_s']:.0f} s = {wall / single['wall_s']:.2f}", "< ~30 s on 2 cores",
             wall < 30, shared),
        Goal("points within 0.90-1.10 of 6 fresh tight loops", f"{within} of {len(ratios)}",
             f"{len(ratios)} of {len(ratios)}", within == len(ratios), shared),
    ]  # fmt: skip
    for r in [*runs, slow, single]:
        r.pop("measurements")
    return {"environment": environment(), "runs": runs, "compares": compares,
            "sandybridge": slow, "power": power, "truth": truth, "goals": goals}  # fmt: skip


def report(payload: dict[str, Any]) -> None:
    rows = [
        (r["calibration_id"], r["exit"], r["verdict"], r["quality"], r["adopted"],
         " ".join(f"{k}={v}" for k, v in r["classes"].items()),
         "; ".join(f"n={u['n']} {u['dtype']} {u['threads']}t: "
                   + "/".join(f"{s['gflops']:.0f}x{s['runs']}" for s in u["states"])
                   for u in r["unstable"]) or "-",
         "; ".join(r["reasons"])[:120] or "-")
        for r in payload["runs"]
    ]  # fmt: skip
    print_table("calibrations", ("id", "exit", "verdict", "quality", "adopted", "classes",
                                 "unstable", "reasons"), rows)  # fmt: skip
    print_table("compare of consecutive pairs", ("A", "B", "exit", "regressions"),
                [(c["a"], c["b"], c["exit"], c["regressions"] or "-")
                 for c in payload["compares"]])  # fmt: skip
    power = payload["power"]
    print(
        f"\nSandybridge kernel: compare exit {power['exit']}, regressions {power['regressions']},"
        f" differences {[d['what'] for d in power['differences']]}"
    )
    print_table("truth: figure / 6 fresh tight loops", ("dtype", "n", "threads", "figure",
                "tight loop", "ratio"),
                [(*t, t[3] / t[4]) for t in payload["truth"]])  # fmt: skip


if __name__ == "__main__":
    script(NAME, __doc__ or NAME, run, report)
