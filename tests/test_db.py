"""The database: migrations from empty, the round trip, storing once, on SQLite and PostgreSQL.

PostgreSQL tests use the server of the ``postgres_url`` fixture (``BLASPROF_TEST_PG_URL``,
or one started for the test run when ``CI`` is set); each test gets a database of its own.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from db import open_database, upgrade
from db.tables import metadata
from profiler.choice.preset import derive
from profiler.errors import DatabaseUnavailable, NotFound
from profiler.measure.probe import probe
from profiler.measure.sweep import run_sweep
from profiler.results import NodeInfo, NodeResult
from profiler.settings import PROFILES, with_overrides

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


def test_orm_classes_annotate_exactly_their_table_columns() -> None:
    # declarative ignores an annotation that names no column of __table__: a typo or a
    # wrong "| None" would go unnoticed by the mapper, so this test notices it
    import types
    import typing

    from sqlalchemy.orm import Mapped

    from db import models

    classes = [getattr(models, name) for name in models.__all__]
    classes = [c for c in classes if isinstance(c, type) and hasattr(c, "__table__")]
    assert {c.__table__.name for c in classes} == set(metadata.tables)
    for cls in classes:
        hints = typing.get_type_hints(cls, vars(models))
        mapped = {k: v for k, v in hints.items() if typing.get_origin(v) is Mapped}
        assert list(mapped) == list(cls.__table__.columns.keys()), cls.__name__
        for name, hint in mapped.items():
            (inner,) = typing.get_args(hint)
            optional = isinstance(inner, types.UnionType) and type(None) in typing.get_args(inner)
            assert optional == cls.__table__.c[name].nullable, (cls.__name__, name)


def test_models_and_migrations_do_not_drift(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    upgrade(db_url)
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
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
    short = open_database(f"sqlite:///{path}", busy_timeout_s=0.3, wait_s=0)
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
        # each point's worker runs, figure and samples, as the quick profile takes them
        assert {len(m.runs) for m in stored} == {3}
        (job_record,) = record.jobs
        assert job_record.external_id == "123_0"
        assert job_record.hostname == node_result.node.hostname
        assert NodeInfo.from_dict(job_record.node_info) == node_result.node
        doc = record.to_json()
        (node,) = doc["nodes"]
        assert node["cpu_model"] == node_result.node.cpu_model
        shown = doc["measurements"][0]
        assert [r["gflops"] for r in shown["runs"]] == pytest.approx(stored[0].run_gflops)
        assert shown["spread"] == pytest.approx(stored[0].spread)
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


# -- busy databases, foreign databases, messages --------------------------------------------


@contextmanager
def _held(url: str, seconds: float | None = None) -> Iterator[None]:
    """Another connection holds the write lock (SQLite) or an exclusive lock on the
    calibrations table (PostgreSQL) for the block, or for ``seconds`` from its start."""
    if url.startswith("sqlite"):
        holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None,
                                 check_same_thread=False)  # fmt: skip
        holder.execute("BEGIN IMMEDIATE")
        release = lambda: holder.execute("ROLLBACK")  # noqa: E731
    else:
        engine = create_engine(url)
        conn = engine.connect()
        transaction = conn.begin()
        conn.execute(text("LOCK TABLE calibrations IN ACCESS EXCLUSIVE MODE"))
        release = transaction.rollback
    timer = threading.Timer(seconds, release) if seconds is not None else None
    if timer is not None:
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.join()
        else:
            release()
        if url.startswith("sqlite"):
            holder.close()
        else:
            conn.close()
            engine.dispose()


def test_a_writer_that_meets_a_held_lock_retries_until_it_is_released(db_url: str) -> None:
    upgrade(db_url)
    with open_database(db_url, busy_timeout_s=0.3, wait_s=20) as database:
        with _held(db_url, seconds=1.5):
            started = time.monotonic()
            cal = database.create_calibration("held", executor="local", profile="quick",
                                              settings={})  # fmt: skip
            waited = time.monotonic() - started
        assert waited > 1.2  # it waited for the lock, beyond one busy/lock timeout
        assert [c.id for c in database.list_calibrations()] == [cal]


def test_a_writer_gives_up_after_its_wait_with_one_line_saying_so(db_url: str) -> None:
    upgrade(db_url)
    with open_database(db_url, busy_timeout_s=0.2, wait_s=1) as database, _held(db_url):
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable) as caught:
            database.create_calibration("held", executor="local", profile="quick", settings={})
        assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "\n" not in message and "BLASPROF_DB_WAIT_S" in message and "tried" in message


@pytest.mark.postgres
def test_postgres_lock_waits_are_bounded_by_the_engine(pg_database: str) -> None:
    upgrade(pg_database)
    with open_database(pg_database) as database:
        engine = database._engine
        with engine.connect() as conn:
            assert conn.execute(text("SHOW lock_timeout")).scalar() == "5s"
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "2min"
    # a reader blocked by someone else's table lock gives up after the lock timeout
    with open_database(pg_database, busy_timeout_s=0.5) as database, _held(pg_database):
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="lock timeout"):
            database.list_calibrations()
        assert time.monotonic() - started < 3


@pytest.mark.postgres
def test_a_postgres_server_that_dropped_the_connections_is_reconnected(
    pg_database: str, postgres_url: str
) -> None:
    from sqlalchemy import make_url

    with open_database(pg_database) as database:
        assert database.list_calibrations() == []  # a pooled connection now exists
        admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:  # what a restart does to every session
            dropped = conn.execute(
                text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                     "WHERE datname = :name AND pid <> pg_backend_pid()"),
                {"name": make_url(pg_database).database},
            ).scalar()  # fmt: skip
        admin.dispose()
        assert dropped >= 1
        cal = database.create_calibration("back", executor="local", profile="quick", settings={})
        assert [c.id for c in database.list_calibrations()] == [cal]


def test_a_foreign_database_is_refused_and_left_alone(db_url: str) -> None:
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE inventory (id INTEGER PRIMARY KEY, item TEXT)"))
    try:
        for migrate in (True, False):
            with pytest.raises(DatabaseUnavailable, match=r"not blasprof's \(inventory\)"):
                open_database(db_url, migrate=migrate)
        with pytest.raises(DatabaseUnavailable, match="not blasprof's"):
            upgrade(db_url)
        assert set(inspect(engine).get_table_names()) == {"inventory"}
        # another program's Alembic history is not mistaken for a newer blasprof's
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32))"))
            conn.execute(text("INSERT INTO alembic_version VALUES ('abc123')"))
        with pytest.raises(DatabaseUnavailable, match="belongs to another program"):
            open_database(db_url)
    finally:
        engine.dispose()


def test_password_masking_hides_the_password_and_nothing_else() -> None:
    from db.errors import mask_password

    said = 'connection to server at "127.0.0.1", port 1 failed: no response'
    assert mask_password(said, "p") == said
    assert mask_password(said, "o") == said
    said = "bad dsn postgresql://u:hunter2@h/x (password=hunter2); hunter2 again, xhunter2x"
    assert mask_password(said, "hunter2") == (
        "bad dsn postgresql://u:***@h/x (password=***); *** again, xhunter2x"
    )


@pytest.mark.postgres
def test_out_of_range_ids_and_dates_are_bad_input_on_postgres(
    pg_database: str, blasprof_exe: str
) -> None:
    from tests.conftest import run_blasprof

    upgrade(pg_database)
    env = {**os.environ, "BLASPROF_DB": pg_database}
    for args, needle in (
        (["show", str(2**31)], "out of range"),
        (["collect", str(2**31)], "out of range"),
        (["list", "--since", "9999-12-31T23:59:59-14:00"], "--since"),
    ):
        proc = run_blasprof(blasprof_exe, *args, env=env)
        assert proc.returncode == 2, proc.stderr
        assert needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    largest = run_blasprof(blasprof_exe, "show", str(2**31 - 1), env=env)
    assert largest.returncode == 2 and "no calibration with id" in largest.stderr
