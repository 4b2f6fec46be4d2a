"""Concurrent writers on SQLite and PostgreSQL: 8 processes x 20 rounds, each round what one
``blasprof calibrate`` stores (a calibration, its job, a node result, the finish, a preset).
Every round must succeed and leave its rows exactly once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from profiler.measure.probe import probe
from profiler.measure.sweep import run_sweep
from profiler.results import NodeResult
from profiler.settings import PROFILES, with_overrides

WRITERS, ROUNDS = 8, 20

_WRITER = textwrap.dedent(
    """
    import json, sys, time
    from db import open_database
    from jobs.owner import Owner
    from profiler.choice.preset import derive
    from profiler.results import NodeResult

    url, writer, rounds, result_file, start_at = sys.argv[1:6]
    result = NodeResult.from_dict(json.load(open(result_file)))
    time.sleep(max(0.0, float(start_at) - time.time()))  # all writers start together
    for r in range(int(rounds)):
        with open_database(url) as database:  # as each blasprof command does
            cal = database.create_calibration(
                "concurrent", executor="local", profile="quick",
                settings={"writer": int(writer), "round": r}, owner=tuple(Owner.current()),
            )
            job = database.add_job(cal, external_id=f"{writer}-{r}", folder=None,
                                   state="RUNNING")
            assert database.store_node_result(job, result)
            assert database.finish_calibration(cal, "complete")
            preset = derive(result.measurements, node_type="concurrent", calibrated_cpus=1,
                            calibration_id=cal)
            database.store_preset(cal, preset)
    print("ok")
    """
)


@pytest.fixture(scope="module")
def result_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A real node result (this machine's probe, a tiny real sweep) as JSON; and its size."""
    settings = with_overrides(
        PROFILES["quick"], sizes=(64, 96), dtypes=("float64",), min_time=0.002, samples=3
    )
    outcome = run_sweep(settings, (1,))
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    result = NodeResult(
        node_type="concurrent", node=probe(), measurements=tuple(outcome.measurements),
        status="complete", started_at=now, finished_at=now, settings=settings,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("concurrency") / "result.json"
    path.write_text(json.dumps(result.to_dict()))
    return path, len(result.measurements)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'concurrent.sqlite'}"
    return request.getfixturevalue("pg_database")


def test_eight_writers_twenty_rounds_each_lose_and_duplicate_nothing(
    url: str, result_file: tuple[Path, int]
) -> None:
    path, points = result_file
    from db import upgrade

    upgrade(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLASPROF_")}
    start_at = time.time() + 4  # time for every writer to import what it needs
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, url, str(w), str(ROUNDS), str(path), str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for w in range(WRITERS)
    ]
    outcomes = [w.communicate(timeout=600) for w in writers]
    elapsed = time.time() - start_at
    failed = [err for w, (_, err) in zip(writers, outcomes, strict=True) if w.returncode != 0]
    assert not failed, failed[0]
    engine = create_engine(url)
    try:
        with engine.connect() as conn:

            def count(sql: str) -> int:
                return int(conn.execute(text(sql)).scalar() or 0)

            rounds = WRITERS * ROUNDS
            assert count("SELECT count(*) FROM calibrations WHERE status = 'complete'") == rounds
            assert count("SELECT count(*) FROM calibrations") == rounds
            settings = conn.execute(text("SELECT settings FROM calibrations")).scalars().all()
            tags = {
                (d["writer"], d["round"])
                for d in (json.loads(s) if isinstance(s, str) else s for s in settings)
            }
            assert tags == {(w, r) for w in range(WRITERS) for r in range(ROUNDS)}
            assert count("SELECT count(*) FROM jobs WHERE result_stored") == rounds
            assert count("SELECT count(DISTINCT calibration_id) FROM jobs") == rounds
            assert count("SELECT count(*) FROM measurements") == rounds * points
            assert count("SELECT count(*) FROM presets") == rounds
            # rows that every writer shares were created once
            assert count("SELECT count(*) FROM node_types") == 1
            assert count("SELECT count(*) FROM nodes") == 1
            assert count("SELECT count(*) FROM blas_environments") == 1
    finally:
        engine.dispose()
    print(f"\n{url.split(':')[0]}: {WRITERS} writers x {ROUNDS} rounds in {elapsed:.1f} s")
