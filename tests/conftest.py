"""Shared fixtures: an isolated blasprof home per test, the console script, one real
calibration (tiny sizes, short samples) that read-only tests share, and the Slurm cluster
and PostgreSQL server of the tests that need them (see ``tests/services.py`` for when
those are started, and which)."""

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
# Read once, before any test's ``home`` fixture clears the BLASPROF_ variables.
_GIVEN_PG_URL = os.environ.get("BLASPROF_TEST_PG_URL")
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


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Path]:
    """SLURM_CONF of a running local cluster with partitions typea and typeb: the one
    ``SLURM_CONF`` names, else (with CI set) a private one started for this test run."""
    from tests import services

    given = os.environ.get("SLURM_CONF")
    if services.slurm_answers(given):
        yield Path(str(given))
        return
    if not os.environ.get("CI"):
        pytest.skip("no Slurm cluster: SLURM_CONF names none that answers (and CI is not set)")
    if os.geteuid() != 0 or shutil.which("slurmctld") is None:
        services.absent(
            "CI is set but no Slurm cluster answers, and one cannot be started (needs root "
            "and Debian's slurmctld, slurmd, slurm-client, munge)"
        )
    try:
        private = services.start_slurm()
    except RuntimeError as exc:
        services.absent(str(exc))
        raise
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SLURM_CONF", private.address)
            if not services.slurm_answers(private.address):
                services.absent("the private Slurm cluster does not answer after up.sh")
            yield Path(private.address)
    finally:
        private.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The SQLAlchemy URL of a PostgreSQL server whose role may create databases: the one
    ``BLASPROF_TEST_PG_URL`` names, else (with CI set) a private one started for this run."""
    from tests import services

    if _GIVEN_PG_URL:
        yield _GIVEN_PG_URL
        return
    if not os.environ.get("CI"):
        pytest.skip("no PostgreSQL: BLASPROF_TEST_PG_URL is not set (and CI is not set)")
    if os.geteuid() != 0 or not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        services.absent(
            "CI is set but BLASPROF_TEST_PG_URL is not, and no server can be started "
            "(needs root and Debian's postgresql)"
        )
    try:
        private = services.start_postgres()
    except RuntimeError as exc:
        services.absent(str(exc))
        raise
    try:
        yield private.address
    finally:
        private.stop()


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database of its own for one test; its URL."""
    from tests.history_data import postgres_database

    with postgres_database(postgres_url) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite'}"
    return request.getfixturevalue("pg_database")
