"""Shared fixtures: an isolated blasprof home per test, the console script, and one real
calibration (tiny sizes, short samples) that read-only tests share."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
UP = ROOT / "deploy" / "slurm-local" / "up.sh"
DOWN = ROOT / "deploy" / "slurm-local" / "down.sh"
STATE_DIR = Path(os.environ.get("BLASPROF_SLURM_DIR", "/tmp/blasprof-slurm"))
#: environment that describes a job allocation, which a test must not inherit
_ALLOCATION = ("SLURM_JOB", "SLURM_CPUS", "SLURM_NTASKS", "SLURM_MEM", "SLURM_NODELIST")

#: settings small enough that a whole calibration takes a few seconds on 2 cores
TINY = ["--sizes", "64,192", "--dtypes", "float64", "--min-time", "0.01", "--samples", "3"]


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLASPROF_", *_ALLOCATION))}
    env["BLASPROF_HOME"] = str(home)
    return env


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh BLASPROF_HOME for this test, in this process and in its subprocesses."""
    for name in list(os.environ):
        if name.startswith(("BLASPROF_", *_ALLOCATION)):
            monkeypatch.delenv(name)
    path = tmp_path / "home"
    monkeypatch.setenv("BLASPROF_HOME", str(path))
    return path


@pytest.fixture(scope="session")
def blasprof_exe() -> str:
    """The installed console script (the README's install puts it on PATH)."""
    exe = shutil.which("blasprof") or str(Path(sys.executable).with_name("blasprof"))
    if not Path(exe).exists():
        pytest.fail("the blasprof console script is not installed; run pip install -e '.[test]'")
    return exe


def run_blasprof(
    exe: str, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the real console script; return the finished process (stdout/stderr as text)."""
    return subprocess.run(
        [exe, *args],
        capture_output=True,
        text=True,
        env=env if env is not None else dict(os.environ),
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def calibrated(
    tmp_path_factory: pytest.TempPathFactory, blasprof_exe: str
) -> Iterator[dict[str, Any]]:
    """One real `blasprof calibrate --json` through the local executor, shared read-only.

    Yields the JSON document it printed plus ``home`` and ``env`` for further commands.
    """
    home = tmp_path_factory.mktemp("calibrated") / "home"
    env = _clean_env(home)
    # --force: the read-only tests need a preset whatever the machine's load; adoption
    # has tests of its own (tests/test_choice.py, tests/test_conditions.py)
    proc = run_blasprof(
        blasprof_exe, "calibrate", "--node-type", "tiny-node", *TINY, "--force", "--json", env=env
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    yield {"doc": doc, "home": home, "env": env}


def _cluster_answers() -> bool:
    try:
        done = subprocess.run(
            ["sinfo", "--noheader", "--partition=typea,typeb", "--format=%P %T"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and "typea" in done.stdout and "typeb" in done.stdout


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Path]:
    """SLURM_CONF of a running local cluster with partitions typea and typeb."""
    ci = bool(os.environ.get("CI"))
    absent = pytest.fail if ci else pytest.skip
    started = False
    with pytest.MonkeyPatch.context() as mp:
        if not (os.environ.get("SLURM_CONF") and _cluster_answers()):
            if shutil.which("sbatch") is None and not ci:
                pytest.skip("no Slurm here (sbatch is not on PATH)")
            if os.geteuid() != 0:
                absent("no local Slurm cluster and up.sh needs root; run deploy/slurm-local/up.sh")
            done = subprocess.run([str(UP)], capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                absent(f"deploy/slurm-local/up.sh failed:\n{done.stdout}\n{done.stderr}")
            started = "already running" not in done.stdout
            mp.setenv("SLURM_CONF", str(STATE_DIR / "slurm.conf"))
            if not _cluster_answers():
                absent("the local Slurm cluster does not answer after up.sh")
        try:
            yield Path(os.environ["SLURM_CONF"])
        finally:
            if started:
                subprocess.run([str(DOWN)], capture_output=True, timeout=120)
