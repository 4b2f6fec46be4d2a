"""Site-wide presets on a real Slurm cluster: deploy/site/taskprolog.sh, unmodified jobs.

The test starts its own one-node cluster (own state dir and ports, with the TaskProlog in
its configuration; the shared test cluster is left alone) and stops it afterwards. Node
types typea and typeb are that cluster's two partitions, with presets that differ: a job in
each partition gets its own, and the tasks of `srun -n 2` get their share.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from profiler.choice.preset import LibraryPreset
from profiler.jobstart.forms.files import write_presets
from tests.builders import node_y
from tests.services import ROOT, SLURM, absent

pytestmark = pytest.mark.slurm

TASK_PROLOG = ROOT / "deploy" / "site" / "taskprolog.sh"
UP, DOWN = SLURM / "up.sh", SLURM / "down.sh"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def site() -> Iterator[dict[str, object]]:
    """A private cluster whose TaskProlog applies presets written for typea and typeb."""
    if shutil.which("slurmctld") is None or os.geteuid() != 0:
        absent("a private Slurm cluster needs slurmctld and root")
    # munged wants every directory above its socket open to all: not so pytest's tmp dirs
    base = Path(tempfile.mkdtemp(prefix="blasprof-site-", dir="/tmp"))
    base.chmod(0o755)
    presets = base / "presets"
    # typea: 2 threads for one process, 1 each for two; typeb: 1 thread always
    typea = node_y(node_type="typea", partitions=("typea",), cpu_model="", logical_cpus=0)
    one = [dataclasses.replace(c, threads=1) for c in typea.size_classes]
    # typeb also holds BLIS, which gets 2 threads where its share allows
    blis = LibraryPreset("blis-openmp", ("BLIS_NUM_THREADS", "OMP_NUM_THREADS"), typea.size_classes)
    typeb = dataclasses.replace(
        typea,
        node_type="typeb",
        partitions=("typeb",),
        size_classes=tuple(one),
        libraries=(blis,),
    )
    write_presets([typea, typeb], presets)
    prolog = base / "taskprolog.sh"
    text = TASK_PROLOG.read_text().replace("PRESETS=/shared/blasprof/presets", f"PRESETS={presets}")
    prolog.write_text(text)  # what a site does when it installs it
    prolog.chmod(0o755)
    env = {
        **os.environ,
        "BLASPROF_SLURM_DIR": str(base / "slurm"),
        "BLASPROF_SLURMCTLD_PORT": str(_free_port()),
        "BLASPROF_SLURMD_PORT": str(_free_port()),
        "BLASPROF_TASK_PROLOG": str(prolog),
        "BLASPROF_SLURM_NO_INSTALL": "1",
        "BLASPROF_SLURM_MIN_JOB_AGE": "30",
    }
    try:
        up = subprocess.run([str(UP)], env=env, capture_output=True, text=True, timeout=300)
        if up.returncode != 0:
            absent(f"the private cluster did not start:\n{up.stdout}\n{up.stderr}")
        env["SLURM_CONF"] = str(base / "slurm" / "slurm.conf")
        yield {"env": env, "dir": base}
    finally:
        subprocess.run([str(DOWN), "--purge"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(base, ignore_errors=True)


JOB = """#!/bin/sh
echo "batch $BLASPROF_PRESET $OMP_NUM_THREADS $OPENBLAS_NUM_THREADS $BLIS_NUM_THREADS"
srun -n 2 sh -c 'echo "step $SLURM_LOCALID $BLASPROF_PRESET $OMP_NUM_THREADS $BLIS_NUM_THREADS"'
OMP_NUM_THREADS=1 srun -n 1 sh -c 'echo "mine $BLASPROF_PRESET $OMP_NUM_THREADS"'
"""


def _run_job(site: dict[str, object], partition: str) -> list[str]:
    env = {k: v for k, v in dict(site["env"]).items() if not k.startswith("BLASPROF_PRESET")}  # type: ignore[call-overload]
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
        env.pop(name, None)
    base = Path(str(site["dir"]))
    script = base / "job.sh"
    script.write_text(JOB)
    out = base / f"out-{partition}.txt"
    done = subprocess.run(
        ["sbatch", "--parsable", "-p", partition, "-n", "2", "-o", str(out), str(script)],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    job_id = done.stdout.strip().split(";")[0]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        queue = subprocess.run(
            ["squeue", "-h", "-j", job_id, "-o", "%T"], env=env, capture_output=True, text=True
        )
        if not queue.stdout.strip() and out.exists():
            break
        time.sleep(0.5)
    return sorted(out.read_text().splitlines())


def test_each_partition_gets_its_preset_and_each_srun_task_its_share(
    site: dict[str, object],
) -> None:
    lines = _run_job(site, "typea")
    assert "batch typea:medium:2 2 2 2" in lines
    assert [line for line in lines if line.startswith("step")] == [
        "step 0 typea:medium:1 1 1",
        "step 1 typea:medium:1 1 1",
    ]
    # a variable the job set itself is kept, and the record says what the preset chose
    assert "mine typea:medium:2 1" in lines
    # BLIS's own count (2) in the batch step, its share (1) in each of two tasks
    lines = _run_job(site, "typeb")
    assert "batch typeb:medium:1:numpy=1:blis-openmp=2 1 1 2" in lines
    assert [line for line in lines if line.startswith("step")] == [
        "step 0 typeb:medium:1:numpy=1:blis-openmp=1 1 1",
        "step 1 typeb:medium:1:numpy=1:blis-openmp=1 1 1",
    ]
