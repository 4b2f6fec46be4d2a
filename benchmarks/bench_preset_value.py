"""The preset's value: GEMM throughput with the preset against BLAS defaults, "all CPUs" and
the best setting, side by side; and what loading a preset costs.

Setup: ``blasprof calibrate`` on this machine (n = 128, 512, 2048, float64, every thread
count) into a private BLASPROF_HOME, which writes its presets. Cells: n = 128, 512, 2048 x
layouts of 1 process and of one process per usable CPU. In a cell, every process starts a
fresh Python that warms up, then loops ``np.matmul(a, b, out=c)`` for a fixed window from a
common start; the figure is the cell's aggregate GFLOP/s: all GEMMs done over the time until
the last process finished. Arms:

(a) BLAS defaults: no thread variable set;
(b) "all CPUs": ``OMP_NUM_THREADS`` = the usable CPUs in every process (the
    ``OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK`` habit);
(c) the preset as a user loads it, nothing declared by hand: each process runs
    ``. presets/blasprof.sh`` and then Python, started with the variables ``srun -n P``
    gives its tasks (SLURM_STEP_TASKS_PER_NODE, SLURM_LOCALID, SLURM_CPUS_ON_NODE);
(d) the best of an exhaustive search of the cell: every thread count from 1 to the usable
    CPUs in every process.

Arms alternate within each round (a, b, c, d1..dN, starting with another arm each round),
rounds repeat; each ratio is the median over rounds of the ratio within a round (so both
sides ran under the same background load): (c)/(d), (c)/(a), (c)/(b) per cell, and (c)
against the search arm of the very count the preset chose, which shows the cell's noise.
Goals: (c)/(d) >= 0.97 in every cell, (c)/(a) >= 3 in
the oversubscribed cell (n = 128, one process per CPU). Also: loading the sh form costs
<= 10 ms over ``sh -c :`` and ``import blas_preset`` <= 5 ms over ``python -c pass``, with
numpy not imported (interleaved fresh processes, medians).

Run: ``python benchmarks/bench_preset_value.py [--quick]``; writes ``results/preset_value.json``.
About 4 minutes on 2 cores (``--quick``: about 2).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import REPO_ROOT, Goal, environment, median, print_table, script

from profiler.jobstart.budget import THREAD_VARIABLES

NAME = "preset_value"
SIZES = (128, 512, 2048)

# One process of a cell: warm up, say so, wait for the common start the parent sends, loop
# GEMMs until the window closes (the last one may end after it), print how many it did, when
# the last ended and what the preset recorded.
WORKER = r"""
import json, os, sys, time
import numpy as np
n, window = int(sys.argv[1]), float(sys.argv[2])
a = np.random.default_rng(0).standard_normal((n, n))
b = np.random.default_rng(1).standard_normal((n, n))
c = np.empty((n, n))
np.matmul(a, b, out=c)
print("ready", flush=True)
start = float(sys.stdin.readline())
while time.time() < start:
    time.sleep(0.0005)
done, end = 0, start + window
while True:
    np.matmul(a, b, out=c)
    done += 1
    last = time.time()
    if last >= end:
        break
print(json.dumps({"done": done, "last": last, "preset": os.environ.get("BLASPROF_PRESET")}))
"""


def _clean_env() -> dict[str, str]:
    drop = ("BLASPROF_", "SLURM_", "OMPI_", "PMI", "MPI_", "MV2_")
    return {
        k: v for k, v in os.environ.items() if not k.startswith(drop) and k not in THREAD_VARIABLES
    }


def _usable() -> int:
    sys.path.insert(0, str(REPO_ROOT))
    from profiler.jobstart.cpus import usable_here

    return usable_here()


def _calibrate(home: Path, quick: bool) -> dict[str, Any]:
    blasprof = Path(sys.executable).parent / "blasprof"
    sizes = ",".join(str(n) for n in SIZES)
    timing = ["--min-time", "0.05", "--samples", "3"] if quick else []
    env = {**_clean_env(), "BLASPROF_HOME": str(home)}
    done = subprocess.run(
        [str(blasprof), "calibrate", "--executor", "local", "--node-type", "bench-node",
         "--sizes", sizes, "--dtypes", "float64", "--threads", "all", *timing, "--json"],
        env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"blasprof calibrate failed:\n{done.stderr}")
    return json.loads(done.stdout)


def _cell_run(
    n: int, processes: int, arm: str, threads: int | None, presets: Path, window: float, cpus: int
) -> tuple[float, list[str | None]]:
    """Aggregate GFLOP/s of ``processes`` processes running arm ``arm``."""
    procs = []
    for rank in range(processes):
        env = _clean_env()
        argv = [sys.executable, "-c", WORKER, str(n), str(window)]
        if arm == "all-cpus":
            env["OMP_NUM_THREADS"] = str(cpus)
        elif arm == "best" and threads is not None:
            env.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
        elif arm == "preset":
            if processes > 1:  # what srun -n P gives each of its tasks on one node
                env.update(
                    SLURM_STEP_TASKS_PER_NODE=str(processes), SLURM_NODEID="0",
                    SLURM_LOCALID=str(rank), SLURM_PROCID=str(rank),
                    SLURM_CPUS_ON_NODE=str(cpus), SLURM_STEP_NUM_TASKS=str(processes),
                )  # fmt: skip
            argv = ["sh", "-c", f'. "{presets}/blasprof.sh" && exec "$@"', "sh", *argv]
        procs.append(
            subprocess.Popen(
                argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
        )
    for p in procs:  # every process warmed up: start them together
        if p.stdout is None or p.stdout.readline().strip() != "ready":
            raise SystemExit(f"a GEMM process of arm {arm} did not start")
    start = time.time() + 0.05
    for p in procs:  # every process gets the start before any is waited for
        assert p.stdin is not None
        p.stdin.write(f"{start!r}\n")
        p.stdin.close()
    docs = []
    for p in procs:
        assert p.stdout is not None
        docs.append(json.loads(p.stdout.read()))
        p.wait()
    # all the work done over the time until the last process finished: never above what
    # the machine did, however the processes' windows overlapped
    flops = 2.0 * n**3 * sum(d["done"] for d in docs)
    return flops / (max(d["last"] for d in docs) - start) / 1e9, [d["preset"] for d in docs]


def _load_costs(presets: Path, rounds: int) -> dict[str, float]:
    env = {**_clean_env(), "PYTHONPATH": str(presets)}
    commands = {
        "sh -c :": ["sh", "-c", ":"],
        "sh: . blasprof.sh": ["sh", "-c", f'. "{presets}/blasprof.sh"'],
        "python -c pass": [sys.executable, "-c", "pass"],
        "python: import blas_preset": [
            sys.executable,
            "-c",
            "import blas_preset, sys; assert 'numpy' not in sys.modules",
        ],
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    for cmd in commands.values():
        subprocess.run(cmd, env=env, check=True, capture_output=True)
    for _ in range(rounds):
        for name, cmd in commands.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            times[name].append(time.perf_counter() - t0)
    return {k: median(v) * 1e3 for k, v in times.items()}


def _ratio(figures: dict[str, list[float]], a: str, b: str) -> float:
    """The median over rounds of a/b, each taken within one round (so under the same load)."""
    return median([x / y for x, y in zip(figures[a], figures[b], strict=True)])


def _cell(
    n: int, processes: int, figures: dict[str, list[float]], chosen: list[str | None]
) -> dict[str, Any]:
    medians = {k: median(v) for k, v in figures.items()}
    best = max((k for k in medians if k.startswith("best:")), key=lambda k: medians[k])
    # the search arm with the count the preset chose: (c) against it is the cell's noise
    same = f"best:{(chosen[0] or '').rpartition(':')[2]}"
    return {
        "n": n,
        "processes": processes,
        "gflops": medians,
        "runs": figures,
        "best": best,
        "preset_records": chosen,
        "c_over_d": _ratio(figures, "preset", best),
        "c_over_a": _ratio(figures, "preset", "defaults"),
        "c_over_b": _ratio(figures, "preset", "all-cpus"),
        "c_over_same": _ratio(figures, "preset", same) if same in figures else None,
    }


def run(quick: bool = False) -> dict[str, Any]:
    cpus = _usable()
    home = Path(tempfile.mkdtemp(prefix="blasprof-bench-"))
    try:
        calibration = _calibrate(home, quick)
        presets = home / "presets"
        # a window holds many GEMMs even of n=2048 on one thread (about 0.5 s each here)
        windows = {128: 0.5, 512: 1.0, 2048: 2.5}
        scale = 0.6 if quick else 1.0
        rounds = 3 if quick else 5
        layouts = sorted({1, cpus})
        arms = [("defaults", None), ("all-cpus", None), ("preset", None)]
        arms += [("best", t) for t in range(1, cpus + 1)]
        cells = []
        for n in SIZES:
            for processes in layouts:
                figures: dict[str, list[float]] = {}
                chosen: list[str | None] = []
                for round_ in range(rounds):
                    # a new arm first in each round: no arm always runs after the same one
                    turn = round_ % len(arms)
                    for arm, threads in arms[turn:] + arms[:turn]:
                        key = arm if threads is None else f"best:{threads}"
                        gflops, records = _cell_run(
                            n, processes, arm, threads, presets, windows[n] * scale, cpus
                        )
                        figures.setdefault(key, []).append(max(gflops, 1e-9))
                        if arm == "preset":
                            chosen = records
                cells.append(_cell(n, processes, figures, chosen))
        costs = _load_costs(presets, 15 if quick else 40)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    goals = []
    for cell in cells:
        name = f"n={cell['n']} x {cell['processes']} process(es)"
        goals.append(
            Goal(
                f"preset/best, {name}",
                f"{cell['c_over_d']:.3f}",
                ">= 0.97",
                cell["c_over_d"] >= 0.97,
                f"preset {cell['preset_records'][0]}, best {cell['best']}; "
                f"vs defaults {cell['c_over_a']:.2f}, vs all CPUs {cell['c_over_b']:.2f}; "
                f"vs the same count {_fmt(cell['c_over_same'])} (noise)",
            )
        )
    over = next((c for c in cells if c["n"] == SIZES[0] and c["processes"] == cpus > 1), None)
    if over is not None:
        goals.append(
            Goal(
                "preset/defaults, oversubscribed cell (n=128, one process per CPU)",
                f"{over['c_over_a']:.2f}",
                ">= 3",
                over["c_over_a"] >= 3,
            )
        )
    sh_cost = costs["sh: . blasprof.sh"] - costs["sh -c :"]
    py_cost = costs["python: import blas_preset"] - costs["python -c pass"]
    goals.append(
        Goal("loading blasprof.sh over sh -c :", f"{sh_cost:.1f} ms", "<= 10 ms", sh_cost <= 10)
    )
    goals.append(
        Goal(
            "import blas_preset over python -c pass",
            f"{py_cost:.1f} ms",
            "<= 5 ms",
            py_cost <= 5,
            "numpy not imported",
        )
    )
    return {
        "name": NAME,
        "environment": environment(),
        "usable_cpus": cpus,
        "window_s": {n: w * scale for n, w in windows.items()},
        "rounds": rounds,
        "preset": calibration.get("preset"),
        "cells": cells,
        "load_ms": costs,
        "goals": goals,
    }


def _fmt(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.3f}"


def report(payload: dict[str, Any]) -> None:
    rows = []
    for cell in payload["cells"]:
        g = cell["gflops"]
        rows.append(
            (
                cell["n"], cell["processes"], f"{g['defaults']:.1f}", f"{g['all-cpus']:.1f}",
                f"{g['preset']:.1f}", f"{g[cell['best']]:.1f} ({cell['best']})",
                f"{cell['c_over_d']:.3f}", f"{cell['c_over_a']:.2f}", f"{cell['c_over_b']:.2f}",
                _fmt(cell["c_over_same"]), cell["preset_records"][0],
            )
        )  # fmt: skip
    print_table(
        f"Aggregate GFLOP/s, medians of {payload['rounds']} alternating rounds "
        f"({payload['usable_cpus']} usable CPUs)",
        ("n", "procs", "(a) defaults", "(b) all CPUs", "(c) preset", "(d) best",
         "c/d", "c/a", "c/b", "c/same", "preset chose"),
        rows,
    )  # fmt: skip
    print_table(
        "Loading a preset (median ms of fresh processes)",
        ("command", "ms"),
        [(k, f"{v:.1f}") for k, v in payload["load_ms"].items()],
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    return script(NAME, __doc__, run, report, argv)


if __name__ == "__main__":
    main()
