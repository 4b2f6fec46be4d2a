"""Slurm submission: 1,000 node tasks through ``SlurmBackend``, wall time and sbatch calls.

Submits 1,000 real ``TaskSpec``s (a tiny calibration each) for one node type of the local
cluster (deploy/slurm-local), times ``SlurmBackend.submit`` (pickling every task, writing the
job script, ``sbatch``, building the handles), then cancels the arrays at once with one
``scancel`` on their ids, before any of them runs long. ``sbatch`` calls are counted by a
shim first on PATH that logs each call and runs the real one, so the count does not rely on
the backend's own word. Runs both with the cluster's MaxArraySize (one array) and with
``max_array_size=256`` (four arrays). Goals: submit under 5 s; one sbatch call per chunk.

Run: ``. /tmp/blasprof-slurm/env.sh; python benchmarks/bench_slurm_submit.py [--quick]``;
writes ``results/slurm_submit.json``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import (
    REPO_ROOT,
    Goal,
    environment,
    finish,
    median,
    parser,
    print_table,
)

sys.path.insert(0, str(REPO_ROOT))

NAME = "slurm_submit"
TASKS = 1000
GOAL_S = 5.0
SETTINGS: dict[str, Any] = {
    "profile": "quick",
    "sizes": [64],
    "dtypes": ["float64"],
    "threads": [1],
    "timing": {"min_time": 0.01, "samples": 3},
}


def _sbatch_shim(directory: Path, log: Path) -> None:
    real = shutil.which("sbatch")
    if real is None:
        sys.exit("bench_slurm_submit: sbatch is not on PATH; start deploy/slurm-local/up.sh")
    shim = directory / "sbatch"
    shim.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {real} "$@"\n')
    shim.chmod(0o755)


def _round(folder: Path, log: Path, max_array_size: int | None) -> dict[str, Any]:
    from jobs.cluster import Cluster, NodeType
    from jobs.slurm import SlurmBackend, cancel_jobs
    from jobs.task import TaskSpec
    from profiler.settings import SweepSettings

    node_type = NodeType(name="typea", partition="typea", exclusive=False, cpus_per_task=1)
    cluster = Cluster(path=Path("(benchmark)"), node_types={"typea": node_type})
    backend = SlurmBackend(folder, cluster=cluster, max_array_size=max_array_size)
    specs = [
        TaskSpec(
            node_type="typea",
            settings=SweepSettings.from_dict(SETTINGS),
            checkpoint=str(folder / f"task-{i}.points.jsonl"),
            verify=False,
        )
        for i in range(TASKS)
    ]
    calls_before = len(log.read_text().splitlines()) if log.exists() else 0
    t0 = time.perf_counter()
    handles = backend.submit(specs)
    submit_s = time.perf_counter() - t0
    arrays = sorted({h.external_id.split("_")[0] for h in handles})
    t0 = time.perf_counter()
    cancel_jobs(arrays)
    cancel_s = time.perf_counter() - t0
    sbatch_calls = len(log.read_text().splitlines()) - calls_before
    chunk = backend._chunk_size()
    return {
        "max_array_size": chunk,
        "tasks": len(handles),
        "submit_s": submit_s,
        "cancel_s": cancel_s,
        "sbatch_calls": sbatch_calls,
        "backend_sbatch_calls": backend.sbatch_calls,
        "arrays": len(arrays),
        "expected_chunks": -(-TASKS // chunk),
    }


def run(quick: bool = False) -> dict[str, Any]:
    repeats = 1 if quick else 3
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="blasprof-bench-slurm-") as tmp:
        bin_dir, log = Path(tmp) / "bin", Path(tmp) / "sbatch.log"
        bin_dir.mkdir()
        _sbatch_shim(bin_dir, log)
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
        for max_array_size in (None, 256):
            for r in range(repeats):
                folder = Path(tmp) / f"jobs-{max_array_size or 'default'}-{r}"
                rounds.append(_round(folder, log, max_array_size))
                time.sleep(1.0)  # let slurmctld finish the cancellations
    by_size: dict[int, list[dict[str, Any]]] = {}
    for row in rounds:
        by_size.setdefault(row["max_array_size"], []).append(row)
    goals = []
    for size, rows in by_size.items():
        worst = max(r["submit_s"] for r in rows)
        goals.append(
            Goal(
                f"submit {TASKS} tasks, MaxArraySize {size}",
                f"{worst:.2f} s (worst of {len(rows)})",
                f"< {GOAL_S:.0f} s",
                worst < GOAL_S,
            )
        )
        ok = all(r["sbatch_calls"] == r["expected_chunks"] == r["arrays"] for r in rows)
        goals.append(
            Goal(
                f"sbatch calls, MaxArraySize {size}",
                f"{rows[0]['sbatch_calls']} for {rows[0]['arrays']} arrays",
                f"{rows[0]['expected_chunks']} (one per chunk)",
                ok,
            )
        )
    env = environment()
    return {"name": NAME, "env": env, "repeats": repeats, "rounds": rounds, "goals": goals}


def report(payload: dict[str, Any]) -> None:
    rows = [
        (
            r["max_array_size"],
            r["tasks"],
            r["submit_s"],
            r["cancel_s"],
            r["sbatch_calls"],
            r["arrays"],
        )
        for r in payload["rounds"]
    ]
    print_table(
        f"Submitting {TASKS} node tasks through SlurmBackend, then scancel",
        ("MaxArraySize", "tasks", "submit s", "scancel s", "sbatch calls", "arrays"),
        rows,
    )
    by_size: dict[int, list[float]] = {}
    for r in payload["rounds"]:
        by_size.setdefault(r["max_array_size"], []).append(r["submit_s"])
    for size, values in by_size.items():
        print(f"  MaxArraySize {size}: median submit {median(values):.3f} s")


def _cluster_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    return subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    if not _cluster_answers():
        sys.exit("bench_slurm_submit: no Slurm cluster answers; . /tmp/blasprof-slurm/env.sh first")
    return finish(NAME, run(quick=args.quick), report, write=not args.no_write)


if __name__ == "__main__":
    main()
