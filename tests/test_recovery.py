"""Nothing measured is lost: a signal while results are stored, a database that refuses them,
a blasprof killed outright. Each runs the real console script against a real database.

The database is made to fail the way a busy one does: another connection holds its write
lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL ``LOCK TABLE``) from the moment the job's row
exists, so the calibration measures but cannot store.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import TINY, run_blasprof

#: a calibration that runs for a minute or more: points every second or so
LONG = ["--sizes", "64,128,256,384,512,768,1024,1536,2048", "--min-time", "0.2",
        "--samples", "5", "--no-verify"]  # fmt: skip


def _wait_until(what: str, ok: Callable[[], bool], proc: subprocess.Popen[str], limit: float):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if ok():
            return
        if proc.poll() is not None:
            pytest.fail(f"calibrate ended before {what}: {proc.communicate()}")
        time.sleep(0.05)
    pytest.fail(f"not within {limit} s: {what}")


def _job_rows(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM jobs")).scalar() or 0)
    except Exception:  # noqa: BLE001  # not created yet
        return 0
    finally:
        engine.dispose()


def _points(checkpoint: Path) -> list[str]:
    """The points a checkpoint holds: a point reported again with more worker runs is one
    point (its last report)."""
    try:
        lines = checkpoint.read_text().splitlines()
    except OSError:
        return []
    latest: dict[tuple[object, ...], str] = {}
    for line in lines:
        if '"kind": "point"' in line:
            p = json.loads(line)["point"]
            key = (p["n"], p["dtype"], p["threads"], p["phase"], p.get("workers", 1))
            latest[key if key[-1] == 1 else (*key, len(latest))] = line
    return list(latest.values())


def _ended(checkpoint: Path) -> bool:
    try:
        return '"kind": "end"' in checkpoint.read_text()
    except OSError:
        return False


@contextmanager
def _write_lock(url: str, tables: str = "jobs, calibrations") -> Iterator[None]:
    """Hold the database's write lock, as a busy writer would, for the block (PostgreSQL:
    on ``tables``)."""
    if url.startswith("sqlite"):
        holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    engine = create_engine(url)
    try:
        with engine.connect() as conn, conn.begin() as transaction:
            conn.execute(text(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE"))
            yield
            transaction.rollback()
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, home: Path) -> str:
    """The URL of a fresh database of each kind (SQLite in ``home``)."""
    if request.param == "sqlite":
        home.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{home / 'blasprof.sqlite'}"
    return request.getfixturevalue("pg_database")


def _start(exe: str, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """``blasprof ARGS --json`` started in the background."""
    return subprocess.Popen(
        [exe, *args, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _calibrate(exe: str, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return _start(exe, "calibrate", "--executor", "local", *args, env=env)


def test_a_signal_while_the_results_are_stored_waits_for_the_store_then_exits_130(
    home: Path, blasprof_exe: str
) -> None:
    url = f"sqlite:///{home / 'blasprof.sqlite'}"
    env = {**os.environ, "BLASPROF_DB_WAIT_S": "60"}
    checkpoint = home / "jobs" / "1" / "task-0.points.jsonl"
    proc = _calibrate(blasprof_exe, *TINY, "--no-verify", env=env)
    try:
        _wait_until("the job's row is stored", lambda: _job_rows(url) == 1, proc, 120)
        with _write_lock(url):
            _wait_until("the sweep ends", lambda: _ended(checkpoint), proc, 120)
            time.sleep(0.5)  # blasprof now retries the store against the lock
            proc.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            assert proc.poll() is None, "the signal cut the store short"
        out, errors = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, errors
    assert "Traceback" not in errors and "interrupted (SIGTERM)" in errors
    doc = json.loads(out)
    assert doc["status"] == "complete"
    assert len(doc["measurements"]) == len(_points(checkpoint)) > 0


def test_a_store_that_keeps_failing_exits_1_saying_where_the_points_are_and_how_to_store_them(
    home: Path, database_url: str, blasprof_exe: str
) -> None:
    env = {**os.environ, "BLASPROF_DB": database_url, "BLASPROF_DB_WAIT_S": "2"}
    proc = _calibrate(blasprof_exe, *TINY, "--no-verify", env=env)
    try:
        _wait_until("the job's row is stored", lambda: _job_rows(database_url) == 1, proc, 120)
        with _write_lock(database_url):
            out, errors = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert proc.returncode == 1, errors
    assert out == "" and "Traceback" not in errors
    (line,) = errors.strip().splitlines()
    assert "cannot write to database" in line and "Nothing measured is lost" in line
    result_file = home / "jobs" / "1" / "task-0.result.json"
    assert f"it is in {result_file};" in line and result_file.is_file()
    command = line.split("store it with: ", 1)[1]
    assert command == "blasprof collect 1"
    # once the database answers again, the command it printed stores everything, once
    stored = run_blasprof(blasprof_exe, *shlex.split(command)[1:], "--json", env=env)
    assert stored.returncode == 0, stored.stderr
    (collected,) = json.loads(stored.stdout)
    assert collected["stored_now"] == 1 and collected["status"] == "complete"
    shown = json.loads(run_blasprof(blasprof_exe, "show", "1", "--json", env=env).stdout)
    checkpoint = home / "jobs" / "1" / "task-0.points.jsonl"
    assert len(shown["measurements"]) == len(_points(checkpoint)) > 0
    assert shown["preset"] is not None
    again = json.loads(run_blasprof(blasprof_exe, "collect", "1", "--json", env=env).stdout)
    assert again[0]["stored_now"] == 0 and again[0]["status"] == "complete"


def test_a_killed_blasprof_stops_its_local_job_and_collect_stores_its_points_once(
    home: Path, blasprof_exe: str
) -> None:
    import psutil

    env = dict(os.environ)
    checkpoint = home / "jobs" / "1" / "task-0.points.jsonl"
    proc = _calibrate(blasprof_exe, *LONG, env=env)
    try:
        _wait_until("2 points", lambda: len(_points(checkpoint)) >= 2, proc, 120)
        tasks = [
            p
            for p in psutil.Process(proc.pid).children(recursive=True)
            if "submitit" in " ".join(p.cmdline())
        ]
        assert tasks
        # while its blasprof runs, collect leaves the calibration alone
        live = json.loads(run_blasprof(blasprof_exe, "collect", "--json", env=env).stdout)
        assert [(d["stored_now"], d["still_running"]) for d in live] == [(0, 1)]
        proc.kill()  # SIGKILL: no handler runs
        proc.wait(timeout=30)
    finally:
        proc.kill()
    # the job notices that its blasprof is gone and stops, keeping its points
    gone, alive = psutil.wait_procs(tasks, timeout=30)
    assert not alive, [p.cmdline() for p in alive]
    assert _ended(checkpoint)
    # status says so, and what to do, before anyone collects
    (status,) = json.loads(run_blasprof(blasprof_exe, "status", "--json", env=env).stdout)
    assert status["owner"] == "gone" and status["status"] == "running"
    (job_status,) = status["jobs"]
    assert not job_status["result_stored"] and job_status["points_so_far"] >= 2
    assert "is gone; `blasprof collect 1` stores what it measured" in job_status["reason"]
    # what really happened: not pending, on this host, and the points its folder holds
    held = len(_points(checkpoint))
    assert job_status["state"] == "INTERRUPTED" and job_status["points_so_far"] == held
    assert job_status["hostname"] == socket.gethostname()
    assert f"its job folder holds {held} point(s)" in job_status["reason"]
    table = run_blasprof(blasprof_exe, "status", env=env).stdout
    assert "INTERRUPTED" in table and "PENDING" not in table and socket.gethostname() in table
    # two shells collect at once: the calibration is recovered once
    collectors = [_start(blasprof_exe, "collect", env=env) for _ in range(2)]
    docs = []
    for c in collectors:
        out, errors = c.communicate(timeout=120)
        assert c.returncode == 0, errors
        docs += json.loads(out)
    assert sum(d["stored_now"] for d in docs) == 1, docs
    record = json.loads(run_blasprof(blasprof_exe, "show", "1", "--json", env=env).stdout)
    assert record["status"] == "partial"
    assert "ended before storing" in record["error"]
    stored = [(m["n"], m["dtype"], m["threads"]) for m in record["measurements"]]
    assert len(stored) == len(set(stored)) == len(_points(checkpoint)) >= 2
    (job,) = record["jobs"]
    assert job["state"] == "INTERRUPTED" and job["result_stored"]
    assert json.loads(run_blasprof(blasprof_exe, "collect", "--json", env=env).stdout) == []


def test_collect_without_a_recorded_owner_leaves_the_calibration_alone(
    home: Path, blasprof_exe: str
) -> None:
    from db import open_database

    with open_database() as database:
        cal = database.create_calibration("x", executor="local", profile="quick", settings={})
    proc = run_blasprof(blasprof_exe, "collect", str(cal), "--json")
    assert proc.returncode == 0, proc.stderr
    (doc,) = json.loads(proc.stdout)
    assert doc["not_collectable"] == 1 and doc["status"] == "running"
    assert "no blasprof process is recorded" in proc.stderr


#: a second process that takes the database's write lock (PostgreSQL: on the presets) the
#: moment calibration 1 has ended without a preset row, and holds it: what a busy writer
#: does at the worst moment
_LOCK_WHEN_ENDED = r"""
import sys, time
url = sys.argv[1]
if url.startswith("sqlite"):
    import sqlite3
    db = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=60)
    lock = "BEGIN IMMEDIATE"
else:
    import psycopg
    db = psycopg.connect(url.replace("+psycopg", ""), autocommit=True)
    lock = "BEGIN; LOCK TABLE presets IN ACCESS EXCLUSIVE MODE"
def ended_without_preset():
    try:
        (status,) = db.execute("SELECT status FROM calibrations WHERE id = 1").fetchone()
        (presets,) = db.execute("SELECT count(*) FROM presets").fetchone()
    except Exception:  # not created yet
        return False
    return status != "running" and presets == 0
while True:
    if ended_without_preset():
        db.execute(lock)
        if ended_without_preset():
            print("locked", flush=True)
            time.sleep(600)
        db.execute("ROLLBACK")
    time.sleep(0.0002)
"""


def test_a_write_lock_taken_as_the_calibration_ends_loses_no_preset(
    home: Path, database_url: str, blasprof_exe: str
) -> None:
    import sys

    env = {**os.environ, "BLASPROF_DB": database_url, "BLASPROF_DB_WAIT_S": "2"}
    run_blasprof(blasprof_exe, "db", "upgrade", env=env)
    holder = subprocess.Popen(
        [sys.executable, "-c", _LOCK_WHEN_ENDED, database_url], stdout=subprocess.PIPE, text=True
    )
    try:
        proc = _calibrate(blasprof_exe, *TINY, "--no-verify", "--force", env=env)
        out, errors = proc.communicate(timeout=180)
    finally:
        holder.kill()
        caught = holder.communicate()[0]
    assert "Traceback" not in errors
    if proc.returncode != 0:  # the lock caught it: the command it printed finishes it
        assert proc.returncode == 1 and "blasprof collect 1" in errors, (caught, errors)
        stored = run_blasprof(blasprof_exe, "collect", "1", "--json", env=env)
        assert stored.returncode == 0, stored.stderr
    listed = json.loads(run_blasprof(blasprof_exe, "list", "--json", env=env).stdout)
    shown = json.loads(run_blasprof(blasprof_exe, "show", "1", "--json", env=env).stdout)
    assert [r["status"] for r in listed] == ["complete"]
    assert shown["preset"] is not None, (caught, errors)
    assert (home / "presets" / "blasprof.sh").is_file()


def test_a_signal_once_everything_is_stored_interrupts_nothing(
    home: Path, blasprof_exe: str
) -> None:
    import fcntl
    import struct
    import termios

    def unread(fd: int) -> int:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]

    # a pipe of one page that nobody reads: calibrate blocks printing its JSON, which it
    # prints once everything is stored
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    proc = subprocess.Popen(
        [blasprof_exe, "calibrate", "--executor", "local", *TINY, "--no-verify", "--force",
         "--json"],
        stdout=write_end, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
    )  # fmt: skip
    os.close(write_end)
    with os.fdopen(read_end) as out:
        try:
            # its JSON (10 kB or more) has begun: the pipe is full and it waits on it
            _wait_until("its JSON is printed", lambda: unread(read_end) > 0, proc, 120)
            time.sleep(0.3)
            assert unread(read_end) > 3000 and proc.poll() is None
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            printed = out.read()
            errors = proc.stderr.read() if proc.stderr else ""
            proc.wait(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 0, errors
    assert "Traceback" not in errors and "interrupted" not in errors
    doc = json.loads(printed)
    assert doc["status"] == "complete" and doc["preset"] is not None


def test_collect_gives_a_calibration_that_ended_without_its_preset_the_preset(
    home: Path, blasprof_exe: str
) -> None:
    url = f"sqlite:///{home / 'blasprof.sqlite'}"
    env = dict(os.environ)
    done = run_blasprof(blasprof_exe, "calibrate", "--executor", "local", *TINY,
                        "--no-verify", "--force", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    # what a blasprof that stored the status and the preset apart left when it was killed
    # (or the database was busy) in between
    dispatcher = home / "presets" / "blasprof.sh"
    dispatcher.unlink()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM presets"))
    engine.dispose()
    assert json.loads(run_blasprof(blasprof_exe, "show", "1", "--json").stdout)["preset"] is None
    collected = run_blasprof(blasprof_exe, "collect", "1", "--json", env=env)
    assert collected.returncode == 0, collected.stderr
    (doc,) = json.loads(collected.stdout)
    assert doc["status"] == "complete" and doc["preset_adopted"] is True
    assert str(dispatcher) in doc["preset_files"] and dispatcher.is_file()
    shown = json.loads(run_blasprof(blasprof_exe, "show", "1", "--json").stdout)
    assert shown["preset"]["calibration_id"] == 1
    again = json.loads(run_blasprof(blasprof_exe, "collect", "1", "--json", env=env).stdout)
    assert again[0]["preset_files"] == [] and "preset_adopted" not in again[0]
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM presets")).scalar() == 1
    engine.dispose()
