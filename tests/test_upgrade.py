"""Upgrades: a database made by schema 0001 reaches head with `blasprof db upgrade` and keeps
every row, on SQLite and PostgreSQL; the head the code knows without Alembic is Alembic's.

The 0001 database is built here, not shipped: only migration 0001 is run, and it is filled
with the rows of a scratch database that today's store API filled, copied column by column
for the columns 0001 has. The fixture follows the code, and no later migration can make it
unwritable.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from db import open_database
from db.migrate import MIGRATIONS_DIR
from db.tables import SCHEMA_REVISION
from tests.conftest import run_blasprof
from tests.history_data import TypeSpec, postgres_database, store_calibration

TABLES = ("node_types", "nodes", "blas_environments", "calibrations", "jobs", "measurements",
          "presets")  # fmt: skip
SPEC = TypeSpec("old-type", "AMD EPYC 7302", 4, 30.0, ("old-n1", "old-n2", "old-n3"),
                sizes=(256, 1024), threads=(1, 2, 4))  # fmt: skip


def test_the_head_known_without_alembic_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    assert ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head() == SCHEMA_REVISION


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def schema_0001(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A database created by migration 0001 alone and filled with calibrations, and the
    scratch database (at head) its rows came from."""
    scratch = f"sqlite:///{tmp_path / 'scratch.sqlite'}"
    _fill(scratch)
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.sqlite'}"
        _build_0001(url, scratch)
        yield url, scratch
        return
    # the server the environment names, else (with CI set) a private one: tests/conftest.py
    base = request.getfixturevalue("postgres_url")
    with postgres_database(base) as url:
        _build_0001(url, scratch)
        yield url, scratch


def _fill(url: str) -> None:
    with open_database(url) as database:
        rng = random.Random(3)
        now = dt.datetime.now(dt.UTC)
        for days, version in ((60, "0.3.21"), (30, "0.3.21"), (2, "0.3.26")):
            when = now - dt.timedelta(days=days)
            store_calibration(database, SPEC, when, rng=rng, blas_version=version)
        failed = database.create_calibration("old-type", executor="slurm", profile="quick",
                                             settings={})  # fmt: skip
        database.finish_calibration(failed, "failed", error="no node")


def _build_0001(url: str, scratch: str) -> None:
    """Migration 0001 alone on ``url``, then the scratch database's rows, for 0001's columns."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import MetaData, select

    from db.tables import metadata

    engine = create_engine(url)
    source = create_engine(scratch)
    try:
        with engine.begin() as connection:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            config.attributes["connection"] = connection
            command.upgrade(config, "0001")
        old = MetaData()
        old.reflect(engine)
        with source.connect() as src, engine.begin() as dst:
            for name in TABLES:
                table = metadata.tables[name]  # read with today's types (UTC times)
                columns = [c.name for c in old.tables[name].columns if c.name in table.c]
                # a column a later migration dropped (0005: blas_environments.summary)
                dropped = {c.name: "" for c in old.tables[name].columns if c.name not in table.c}
                rows = src.execute(select(*(table.c[c] for c in columns))).mappings().all()
                if rows:
                    dst.execute(old.tables[name].insert(), [{**dropped, **r} for r in rows])
                if dst.dialect.name == "postgresql":
                    dst.execute(
                        text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                             f"(SELECT COALESCE(MAX(id), 1) FROM {name}))")
                    )  # fmt: skip
    finally:
        engine.dispose()
        source.dispose()


def _snapshot(url: str) -> dict[str, object]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in TABLES}
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            indexes = {
                ix["name"] for t in TABLES for ix in inspect(conn).get_indexes(t) if ix["name"]
            }
    finally:
        engine.dispose()
    return {"counts": counts, "revision": revision, "indexes": indexes}


def test_db_upgrade_from_0001_keeps_every_row(
    schema_0001: tuple[str, str], blasprof_exe: str, home: Path
) -> None:
    schema_0001, scratch = schema_0001
    before = _snapshot(schema_0001)
    assert before["revision"] == "0001"
    assert before["counts"]["measurements"] == 3 * 3 * 2 * 2 * 3  # calibrations x hosts x ...
    with open_database(scratch) as database:  # what today's blasprof stored
        documents = [database.get_calibration(i).to_json() for i in (1, 2, 3, 4)]
    proc = run_blasprof(blasprof_exe, "--db", schema_0001, "db", "upgrade")
    assert proc.returncode == 0, proc.stderr
    assert f"upgraded from 0001 to {SCHEMA_REVISION}" in proc.stdout
    after = _snapshot(schema_0001)
    assert after["revision"] == SCHEMA_REVISION
    assert after["counts"] == before["counts"]
    assert {"ix_measurements_job_id_dtype_workers_gflops", "ix_jobs_node_id_finished_at",
            "ix_calibrations_node_type_id_created_at"} <= after["indexes"]  # fmt: skip
    with open_database(schema_0001, migrate=False) as database:
        upgraded = [database.get_calibration(i).to_json() for i in (1, 2, 3, 4)]
        assert upgraded == documents
    # every point from before points named their library ran on numpy's: so they read
    assert {m["blas"] for doc in upgraded for m in doc["measurements"]} == {"numpy"}
    listed = run_blasprof(blasprof_exe, "--db", schema_0001, "list", "--json")
    assert [r["calibration_id"] for r in json.loads(listed.stdout)] == [4, 3, 2, 1]
    again = run_blasprof(blasprof_exe, "--db", schema_0001, "db", "upgrade")
    assert again.returncode == 0 and "already at revision" in again.stdout
