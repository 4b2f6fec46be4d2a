"""The database: migrations from empty, the round trip, storing once, on SQLite and PostgreSQL.

PostgreSQL tests use the server started by ``deploy/postgres-local/up.sh`` (its URL in
``BLASPROF_TEST_PG_URL``); each test gets a database of its own. With ``CI`` set they must
run: a missing server fails them instead of skipping.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from db import open_database, upgrade
from db.models import Base
from profiler.errors import DatabaseUnavailable, NotFound
from profiler.preset import derive
from profiler.probe import probe
from profiler.results import NodeInfo, NodeResult
from profiler.settings import PROFILES, with_overrides
from profiler.sweep import run_sweep

TABLES = {
    "node_types", "nodes", "blas_environments", "calibrations", "jobs", "measurements",
    "presets", "alembic_version",
}  # fmt: skip


@pytest.fixture(scope="module")
def node_result() -> NodeResult:
    """A real node result: this machine's probe and a tiny real sweep."""
    settings = with_overrides(
        PROFILES["quick"], sizes=(64, 128), dtypes=("float64",), min_time=0.005, samples=3
    )
    outcome = run_sweep(settings, (1, 2) if len(os.sched_getaffinity(0)) > 1 else (1,))
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return NodeResult(
        node_type="db-test", node=probe(), measurements=tuple(outcome.measurements),
        status="complete", started_at=now, finished_at=now, settings=settings,
    )  # fmt: skip


def _postgres_url() -> str | None:
    url = os.environ.get("BLASPROF_TEST_PG_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI is set but BLASPROF_TEST_PG_URL is not: start deploy/postgres-local")
        pytest.skip("no PostgreSQL: run deploy/postgres-local/up.sh and . its env.sh")
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite'}"
        return
    from sqlalchemy import make_url

    base = make_url(_postgres_url())
    name = f"blasprof_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_migration_from_empty_creates_every_table_at_head(db_url: str) -> None:
    before, after = upgrade(db_url)
    assert before is None and after
    engine = create_engine(db_url)
    try:
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == after
    finally:
        engine.dispose()
    assert upgrade(db_url) == (after, after)


def test_models_and_migrations_do_not_drift(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    upgrade(db_url)
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_sqlite_default_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "wal.sqlite"
    database = open_database(f"sqlite:///{path}", busy_timeout_s=2.0)
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # another process holds the write lock for a moment: a write waits for it, not fails
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, holder.execute, ["ROLLBACK"])
    release.start()
    try:
        started = time.monotonic()
        database.create_calibration("wal", executor="local", profile="quick", settings={})
        waited = time.monotonic() - started
    finally:
        release.join()
        holder.close()
    assert 0.3 < waited < 2.0
    # held for longer than the busy timeout: one clear error after about that long
    short = open_database(f"sqlite:///{path}", busy_timeout_s=0.3)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="database is locked"):
            short.create_calibration("wal", executor="local", profile="quick", settings={})
        assert 0.2 < time.monotonic() - started < 2.0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        database.close()
        short.close()


def test_round_trip_keeps_every_measurement_and_the_metadata(
    db_url: str, node_result: NodeResult
) -> None:
    with open_database(db_url) as database:
        cal = database.create_calibration(
            "db-test", executor="local", profile="quick", settings=node_result.settings.to_dict()
        )
        job = database.add_job(cal, external_id="123_0", folder="/tmp/x", state="RUNNING")
        assert database.store_node_result(job, node_result) is True
        assert database.store_node_result(job, node_result) is False  # never twice
        database.finish_calibration(cal, "complete")
        preset = derive(
            node_result.measurements, node_type="db-test", calibrated_cpus=2, calibration_id=cal
        )
        database.store_preset(cal, preset)

        record = database.get_calibration(cal)
        assert record.status == "complete" and record.node_type == "db-test"
        stored = [m.measurement for m in record.measurements]
        assert stored == list(node_result.measurements)
        (job_record,) = record.jobs
        assert job_record.external_id == "123_0"
        assert job_record.hostname == node_result.node.hostname
        assert NodeInfo.from_dict(job_record.node_info) == node_result.node
        doc = record.to_json()
        (node,) = doc["nodes"]
        assert node["cpu_model"] == node_result.node.cpu_model
        assert {b["internal_api"] for b in node["blas"]} == {
            b.internal_api for b in node_result.node.blas
        }
        assert record.preset == preset
        assert database.latest_preset("db-test") == preset
        assert database.latest_preset("other") is None
        summaries = database.list_calibrations()
        assert [s.id for s in summaries] == [cal]
        assert summaries[0].n_measurements == len(node_result.measurements)
        assert database.list_calibrations(node_type="other") == []
        future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        assert database.list_calibrations(since=future) == []


def test_concurrent_collectors_store_a_result_once(db_url: str, node_result: NodeResult) -> None:
    with open_database(db_url) as database:
        cal = database.create_calibration("db-test", executor="slurm", profile="quick", settings={})
        job = database.add_job(cal, external_id="7", folder=None, state="RUNNING")
    results: list[bool] = []

    def collect() -> None:
        with open_database(db_url) as mine:
            results.append(mine.store_node_result(job, node_result))

    threads = [threading.Thread(target=collect) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    with open_database(db_url) as database:
        record = database.get_calibration(cal)
        assert len(record.measurements) == len(node_result.measurements)


def test_unknown_calibration_is_not_found(db_url: str) -> None:
    with open_database(db_url) as database, pytest.raises(NotFound, match="no calibration"):
        database.get_calibration(999)


def test_a_database_from_a_newer_blasprof_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'newer.sqlite'}"
    upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff_future'"))
    engine.dispose()
    with pytest.raises(DatabaseUnavailable, match="newer blasprof"):
        open_database(url)


def test_an_old_schema_without_migrate_asks_for_db_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    sqlite3.connect(tmp_path / "empty.sqlite").close()
    with pytest.raises(DatabaseUnavailable, match="blasprof db upgrade"):
        open_database(url, migrate=False)


def test_two_processes_opening_a_fresh_database_both_succeed(tmp_path: Path) -> None:
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'race.sqlite'}"
    code = f"from db import open_database; open_database({url!r}).close(); print('ok')"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    assert [p.communicate(timeout=60)[0].strip() for p in procs] == ["ok"] * 3
