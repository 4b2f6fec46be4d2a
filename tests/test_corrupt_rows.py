"""Rows that blasprof did not write the way it writes them: every read command names the
bad row in one line and exits 1, never a traceback; ``list`` and ``best`` still show the
rows they can read.

Each test stores real calibrations through the store API, then damages one row with raw
SQL (``sqlite3``, or SQLAlchemy's ``text`` on PostgreSQL) and runs the console script.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import run_blasprof
from tests.history_data import TypeSpec, store_calibration

ROME = TypeSpec("rome", "AMD EPYC 7742", 4, 30.0, ("r1", "r2", "r3"), sizes=(256, 1024))
MILAN = TypeSpec("milan", "AMD EPYC 7763", 4, 35.0, ("m1",), sizes=(256, 1024))
T0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
# the last calibration of rome: its first measurement, job and preset
LAST_POINT = "(SELECT min(m.id) FROM measurements m JOIN jobs j ON m.job_id = j.id WHERE j.calibration_id = 3)"  # noqa: E501
LAST_JOB = "(SELECT min(id) FROM jobs WHERE calibration_id = 3)"


def _store(database: object) -> None:
    """Calibrations 1 to 3 of rome, a day apart, then 4 of milan; each with its preset."""
    rng = random.Random(7)
    for day in range(3):
        store_calibration(database, ROME, T0 + dt.timedelta(days=day), rng=rng, samples=3)
    store_calibration(database, MILAN, T0 + dt.timedelta(days=3), rng=rng, samples=3)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from db import open_database

    path = tmp_path_factory.mktemp("corrupt") / "template.sqlite"
    with open_database(f"sqlite:///{path}") as database:
        _store(database)
    return path


@pytest.fixture
def damaged(template: Path, tmp_path: Path, home: Path) -> Path:
    """A copy of the template, for one test to damage."""
    path = tmp_path / "blasprof.sqlite"
    shutil.copyfile(template, path)
    return path


def _damage(path: Path, sql: str) -> None:
    with sqlite3.connect(path) as connection:
        assert connection.execute(sql).rowcount == 1, sql


def _rows(path: Path) -> list[object]:
    """Every row of every table, as stored (text as bytes: some is not UTF-8)."""
    with sqlite3.connect(path) as connection:
        tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        names = sorted(name for (name,) in tables)
        connection.text_factory = bytes
        return [(t, connection.execute(f"SELECT * FROM {t}").fetchall()) for t in names]


def _run(exe: str, path: Path, *args: str) -> tuple[int, str, str]:
    proc = run_blasprof(exe, "--db", f"sqlite:///{path}", *args, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "\x1b" not in proc.stderr + proc.stdout
    return proc.returncode, proc.stdout, proc.stderr


#: (what is damaged, the UPDATE, the commands that read it, what the message must name)
DAMAGE = [
    (
        "gflops is text",
        f"UPDATE measurements SET gflops = 'abc' WHERE id = {LAST_POINT}",
        [["show", "3"], ["compare", "1", "3"], ["nodes"], ["plot", "3", "-o", "p.png"]],
        "table measurements, row id {point}: gflops 'abc' is not a finite number",
    ),
    (
        "a sample is text",
        f"UPDATE measurements SET samples = '[0.1, \"x\"]' WHERE id = {LAST_POINT}",
        [["show", "3"], ["compare", "1", "3"]],
        "table measurements, row id {point}: samples[1] 'x' is not a finite number",
    ),
    (
        "a run's time is text",
        f'UPDATE measurements SET runs = \'[{{"median_s": "x", "samples": []}}]\' '
        f"WHERE id = {LAST_POINT}",
        [["show", "3"], ["compare", "1", "3"]],
        "table measurements, row id {point}: runs[0].median_s 'x' is not a finite number",
    ),
    (
        "runs is not a list",
        f"UPDATE measurements SET runs = '{{\"a\": 1}}' WHERE id = {LAST_POINT}",
        [["show", "3", "--json"], ["compare", "1", "3"]],
        "table measurements, row id {point}: runs",
    ),
    (
        "a point's library is no label",
        f"UPDATE measurements SET blas = 'x; rm -rf /' WHERE id = {LAST_POINT}",
        [["show", "3", "--json"], ["show", "3"]],
        "table measurements, row id {point}: blas 'x; rm -rf /' is not a BLAS library label",
    ),
    (
        "created_at is no date",
        "UPDATE calibrations SET created_at = 'garbage' WHERE id = 3",
        [
            ["show", "3"],
            ["compare", "--node-type", "rome", "now-9999d:now", "1"],
            ["plot", "--node-type", "rome", "--history", "-o", "p.png"],
        ],
        "table calibrations, row id 3: created_at 'garbage' is not a timestamp",
    ),
    (
        "node_info is not a node's",
        f"UPDATE jobs SET node_info = '{{\"x\": 1}}' WHERE id = {LAST_JOB}",
        [["show", "3"]],
        "table jobs, row id {job}: node_info has no 'hostname'",
    ),
    (
        "preset data is not JSON",
        "UPDATE presets SET data = 'not json' WHERE calibration_id = 3",
        [["show", "3"], ["preset", "rome"], ["preset", "rome", "--format", "sh"]],
        "table presets, row id 3: data 'not json' is not a JSON object",
    ),
    (
        "preset data misses keys",
        'UPDATE presets SET data = \'{"node_type": "rome"}\' WHERE calibration_id = 3',
        [["preset", "rome", "--format", "py"], ["show", "3"]],
        "table presets, row id 3: data has no 'calibrated_cpus'",
    ),
    (
        "a preset's CPU count is text",
        "UPDATE presets SET data = json_set(data, '$.calibrated_cpus', 'four') "
        "WHERE calibration_id = 3",
        [["preset", "rome", "--format", "lua"], ["show", "3", "--json"]],
        "table presets, row id 3: data",
    ),
    (
        "a preset's thread count is text",
        "UPDATE presets SET data = json_set(data, '$.size_classes[0].threads', 'four') "
        "WHERE calibration_id = 3",
        [["show", "3", "--json"], ["show", "3"]],
        "data.size_classes[0].threads 'four' is not a whole number",
    ),
    (
        "dtype is not UTF-8",
        f"UPDATE measurements SET dtype = CAST(X'FFFE41' AS TEXT) WHERE id = {LAST_POINT}",
        [["show", "3"], ["compare", "1", "3"]],
        "table measurements, row id {point}: dtype b'\\xff\\xfeA' is not UTF-8 text",
    ),
    (
        "a hostname is bytes with an escape sequence",
        "UPDATE nodes SET hostname = X'1B5B326A' WHERE hostname = 'r1'",
        [["nodes"], ["nodes", "--json"]],
        "hostname b'\\x1b[2j' is not text",
    ),
]


@pytest.mark.parametrize(
    ("sql", "commands", "needle"),
    [case[1:] for case in DAMAGE],
    ids=[case[0] for case in DAMAGE],
)
def test_a_damaged_row_is_named_in_one_line_and_exit_1(
    damaged: Path, blasprof_exe: str, sql: str, commands: list[list[str]], needle: str
) -> None:
    with sqlite3.connect(damaged) as connection:
        point, job = connection.execute(f"SELECT {LAST_POINT}, {LAST_JOB}").fetchone()
    _damage(damaged, sql)
    before = _rows(damaged)
    for args in commands:
        args = [str(damaged.parent / a) if a.endswith(".png") else a for a in args]
        code, out, err = _run(blasprof_exe, damaged, *args)
        assert code == 1, (args, out, err)
        assert err.count("\n") == 1, err
        assert needle.format(point=point, job=job).lower() in err.lower(), (args, err)
        assert f"database sqlite:///{damaged}" in err
        assert out == ""
        assert not (damaged.parent / "p.png").exists()
    assert _rows(damaged) == before


def test_list_shows_the_calibrations_it_can_read_and_names_the_one_it_cannot(
    damaged: Path, blasprof_exe: str
) -> None:
    _damage(damaged, "UPDATE calibrations SET created_at = 'garbage' WHERE id = 2")
    code, out, err = _run(blasprof_exe, damaged, "list", "--json")
    assert code == 1
    assert [c["calibration_id"] for c in json.loads(out)] == [4, 3, 1]
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert "table calibrations, row id 2: created_at 'garbage' is not a timestamp" in lines[0]
    assert "1 calibration(s) left out" in lines[1]

    code, out, err = _run(blasprof_exe, damaged, "list")
    assert code == 1
    ids = [line.split()[0] for line in out.splitlines()[1:]]
    assert ids == ["4", "3", "1"]


def test_a_text_figure_fails_list_with_the_measurement_it_is_in(
    damaged: Path, blasprof_exe: str
) -> None:
    # SQLite's max() ranks text above every number: the best figure of calibration 3 is it
    _damage(damaged, f"UPDATE measurements SET gflops = 'abc' WHERE id = {LAST_POINT}")
    code, out, err = _run(blasprof_exe, damaged, "list", "--format", "csv")
    assert code == 1
    assert [row.split(",")[0] for row in out.splitlines()[1:]] == ["4", "2", "1"]
    assert "gflops 'abc' is not a finite number" in err


def test_best_shows_the_node_types_whose_preset_it_can_read(
    damaged: Path, blasprof_exe: str
) -> None:
    _damage(damaged, "UPDATE presets SET data = 'not json' WHERE calibration_id = 3")
    code, out, err = _run(blasprof_exe, damaged, "best", "--json")
    assert code == 1
    assert [b["node_type"] for b in json.loads(out)] == ["milan"]
    assert "table presets, row id 3: data 'not json'" in err
    assert "1 node type(s) left out" in err
    code, out, err = _run(blasprof_exe, damaged, "best")
    assert code == 1 and "milan" in out and "rome" not in out


@pytest.mark.postgres
def test_a_damaged_row_on_postgresql_is_named_too(
    pg_database: str, blasprof_exe: str, home: Path
) -> None:
    from sqlalchemy import create_engine, text

    from db import open_database

    with open_database(pg_database) as database:
        _store(database)
    engine = create_engine(pg_database)
    with engine.begin() as connection:
        # PostgreSQL types its columns: what can still be wrong is a JSON shape or a NaN
        connection.execute(
            text("UPDATE presets SET data = CAST(:d AS json) WHERE calibration_id = 3"),
            {"d": json.dumps({"node_type": "rome"})},
        )
        connection.execute(
            text(
                "UPDATE measurements SET gflops = 'NaN' WHERE id = (SELECT min(m.id) FROM "
                "measurements m JOIN jobs j ON m.job_id = j.id WHERE j.calibration_id = 2)"
            )
        )
    engine.dispose()
    env = {**os.environ, "BLASPROF_DB": pg_database}
    proc = run_blasprof(blasprof_exe, "preset", "rome", env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "table presets, row id 3: data has no 'calibrated_cpus'" in proc.stderr
    proc = run_blasprof(blasprof_exe, "show", "2", env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "gflops nan is not a finite number" in proc.stderr
    proc = run_blasprof(blasprof_exe, "list", "--json", env=env)
    assert proc.returncode == 1
    assert [c["calibration_id"] for c in json.loads(proc.stdout)] == [4, 3, 1]
