"""The test services: a private one runs beside the services already there (its own state
dir, ports and munge socket) and stopping it stops nothing else."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests import services

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the deploy scripts need root")


def _slurm_settings(conf: Path) -> dict[str, str]:
    text_ = conf.read_text()
    keys = ("SlurmctldPort", "SlurmdPort", "AuthInfo", "StateSaveLocation")
    return {k: re.search(rf"^{k}=(.*)$", text_, re.MULTILINE)[1] for k in keys}  # type: ignore[index]


@needs_root
@pytest.mark.slurm
def test_a_private_cluster_runs_beside_another_and_stops_alone(slurm_cluster: Path) -> None:
    import psutil

    private = services.start_slurm()
    try:
        mine, theirs = _slurm_settings(Path(private.address)), _slurm_settings(slurm_cluster)
        assert all(mine[k] != theirs[k] for k in mine), (mine, theirs)
        assert services.slurm_answers(private.address)
        assert services.slurm_answers(str(slurm_cluster))
        daemons = [
            psutil.Process(int((private.state_dir / "run" / f"{name}.pid").read_text()))
            for name in ("munged", "slurmctld", "slurmd")
        ]
    finally:
        private.stop()
    assert not private.state_dir.exists()
    assert not [d for d in daemons if d.is_running()]
    assert services.slurm_answers(str(slurm_cluster))


def _answers(url: str) -> bool:
    engine = create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT 1")).scalar() == 1
    except Exception:  # noqa: BLE001
        return False
    finally:
        engine.dispose()


@needs_root
@pytest.mark.postgres
def test_a_private_postgres_runs_beside_another_and_stops_alone(postgres_url: str) -> None:
    private = services.start_postgres()
    try:
        assert private.address != postgres_url
        assert _answers(private.address) and _answers(postgres_url)
    finally:
        private.stop()
    assert not private.state_dir.exists()
    assert not _answers(private.address)
    assert _answers(postgres_url)


def test_free_ports_are_distinct_and_free() -> None:
    import socket

    ports = services.free_ports(3)
    assert len(set(ports)) == 3
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
