"""The services the tests marked ``slurm`` and ``postgres`` run against.

A service the environment names and that answers (``SLURM_CONF``, ``BLASPROF_TEST_PG_URL``)
is used as it is and never stopped. Otherwise, when ``CI`` is set, a private one is started
for this test run with the scripts in ``deploy/``: its own state dir (a new temporary
directory), free ports on 127.0.0.1, its own munge socket; and it is stopped, by the pids
its own state dir recorded, when the run ends. So several test runs, and services other
people use, can share a machine. Without ``CI`` the tests are skipped instead.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[1]
SLURM = ROOT / "deploy" / "slurm-local"
POSTGRES = ROOT / "deploy" / "postgres-local"


def absent(what: str) -> NoReturn:
    """Something a test needs that ``.ci/run`` installs or starts is missing: with ``CI``
    set the test fails (CI must not pass by skipping it), else it is skipped."""
    (pytest.fail if os.environ.get("CI") else pytest.skip)(what)
    raise AssertionError("unreachable")  # pytest.fail and pytest.skip raise


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that nothing listens on now."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def slurm_answers(conf: str | None) -> bool:
    """Whether the cluster of ``conf`` answers with partitions typea and typeb."""
    if not conf:
        return False
    try:
        done = subprocess.run(
            ["sinfo", "--noheader", "--partition=typea,typeb", "--format=%P %T"],
            capture_output=True,
            text=True,
            timeout=20,
            env={**os.environ, "SLURM_CONF": conf},
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and "typea" in done.stdout and "typeb" in done.stdout


@dataclass
class Private:
    """A service started for this test run: its state dir and the environment its deploy
    scripts need to find it again (and to stop only it)."""

    kind: str
    state_dir: Path
    env: dict[str, str]
    #: SLURM_CONF of a cluster, the SQLAlchemy URL of a PostgreSQL server
    address: str

    def stop(self) -> None:
        """Stop this service (its own recorded pids only) and remove its state dir."""
        script = (SLURM if self.kind == "slurm" else POSTGRES) / "down.sh"
        subprocess.run(
            ["bash", str(script), "--purge"],
            env={**os.environ, **self.env},
            capture_output=True,
            timeout=180,
            check=False,
        )
        shutil.rmtree(self.state_dir, ignore_errors=True)


def _run_up(script: Path, env: dict[str, str], state_dir: Path) -> str:
    done = subprocess.run(
        ["bash", str(script)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        shutil.rmtree(state_dir, ignore_errors=True)
        raise RuntimeError(f"{script.relative_to(ROOT)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def start_slurm() -> Private:
    """A private one-node cluster (partitions typea and typeb) on free ports."""
    state_dir = Path(tempfile.mkdtemp(prefix="blasprof-test-slurm-"))
    ctld, slurmd = free_ports(2)
    env = {
        "BLASPROF_SLURM_DIR": str(state_dir),
        "BLASPROF_SLURMCTLD_PORT": str(ctld),
        "BLASPROF_SLURMD_PORT": str(slurmd),
        "BLASPROF_SLURM_NO_INSTALL": "1",
    }
    service = Private("slurm", state_dir, env, str(state_dir / "slurm.conf"))
    try:
        _run_up(SLURM / "up.sh", env, state_dir)
    except BaseException:
        service.stop()
        raise
    return service


def start_postgres() -> Private:
    """A private PostgreSQL server on a free port; ``address`` is its blasprof URL."""
    # Not under pytest's own temporary dirs: the server runs as the postgres user, which
    # must be able to reach its state dir.
    state_dir = Path(tempfile.mkdtemp(prefix="blasprof-test-pg-"))
    (port,) = free_ports(1)
    env = {
        "BLASPROF_PG_DIR": str(state_dir),
        "BLASPROF_PG_PORT": str(port),
        "BLASPROF_PG_NO_INSTALL": "1",
    }
    service = Private("postgres", state_dir, env, "")
    try:
        _run_up(POSTGRES / "up.sh", env, state_dir)
        written = (state_dir / "env.sh").read_text()
    except BaseException:
        service.stop()
        raise
    match = re.search(r"BLASPROF_TEST_PG_URL='([^']+)'", written)
    if match is None:
        service.stop()
        raise RuntimeError(f"no URL in {state_dir / 'env.sh'}")
    service.address = match[1]
    return service
