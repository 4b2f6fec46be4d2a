"""The command line end to end: the real console script in a subprocess, and typer's runner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from profiler.cli import app
from tests.conftest import TINY, run_blasprof

runner = CliRunner()


def test_help_lists_every_command_and_does_not_import_heavy_modules() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from profiler.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(r.output)\n"
        "print('HEAVY', sorted(m for m in ('numpy', 'sqlalchemy', 'submitit', 'matplotlib')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    # the first word of each line of the Commands section, up to the blank line after it
    section = out.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    listed = {line.split()[0] for line in section.splitlines()}
    expected = {"probe", "calibrate", "status", "collect", "list", "show", "preset", "presets"}
    expected |= {"best", "compare", "nodes", "plot"}
    expected |= {"env", "run", "wrap", "check"}
    assert listed == expected | {"db"}, listed
    assert "HEAVY []" in out


def test_probe_json_describes_this_machine(blasprof_exe: str, home: Path) -> None:
    proc = run_blasprof(blasprof_exe, "probe", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["usable_cpus"] == len(os.sched_getaffinity(0))
    assert doc["logical_cpus"] >= doc["usable_cpus"] >= 1
    assert doc["physical_cores"] >= 1
    apis = {lib["internal_api"] for lib in doc["blas"]}
    assert apis & {"openblas", "mkl", "blis", "flexiblas"}, doc["blas"]
    for lib in doc["blas"]:
        assert lib["version"] and lib["filepath"] and lib["num_threads"] >= 1
    assert doc["numpy_version"] == __import__("numpy").__version__
    # the peak is either computed (with the clock it used) or honestly unknown
    if doc["peak_gflops_f64"] is not None:
        assert doc["peak_gflops_f64"] > 0 and "GHz" in doc["peak_note"]
    else:
        assert "unknown" in doc["peak_note"]


def test_probe_table_shows_this_machine(home: Path) -> None:
    from profiler.measure.probe import probe

    info = probe()
    result = runner.invoke(app, ["probe"])
    assert result.exit_code == 0, result.output
    rows = {
        line.split(maxsplit=1)[0]: line.split(maxsplit=1)[1].strip()
        for line in result.output.splitlines()
        if len(line.split(maxsplit=1)) == 2
    }
    assert rows["host"] == info.hostname
    assert rows["cpu"].startswith(info.cpu_model)
    assert f"{info.usable_cpus} (affinity" in rows["usable"]
    assert f"{info.logical_cpus} logical CPUs" in rows["topology"]
    blas = next(lib for lib in info.blas if lib.user_api == "blas")
    label = f"{blas.internal_api} {blas.version} ({blas.threading_layer})"
    assert rows["blas"].startswith(f"{label} arch={blas.architecture} threads=")


def test_calibrate_json_has_the_documented_keys(calibrated: dict[str, Any]) -> None:
    doc = calibrated["doc"]
    for key in (
        "calibration_id",
        "status",
        "node_type",
        "conditions",
        "nodes",
        "measurements",
        "preset",
    ):
        assert key in doc
    assert doc["status"] == "complete"
    assert doc["node_type"] == "tiny-node"
    (node,) = doc["nodes"]
    assert node["hostname"] == os.uname().nodename
    assert node["cpu_model"] and node["cores"] >= 1
    assert node["blas"] and all(b["version"] and b["threading_layer"] for b in node["blas"])
    usable = len(os.sched_getaffinity(0))
    sizes = {m["n"] for m in doc["measurements"]}
    assert sizes == {64, 192}
    for m in doc["measurements"]:
        assert {"kernel", "dtype", "n", "threads", "median_s", "gflops", "samples", "cv", "runs",
                "spread"} <= set(m)  # fmt: skip
        assert m["kernel"] == "gemm" and m["dtype"] == "float64"
        assert 1 <= m["threads"] <= usable
        # the quick profile's 3 worker runs of 3 samples each
        assert len(m["runs"]) == 3 and all(len(r["samples"]) == 3 for r in m["runs"])
        assert len(m["samples"]) == 9 and m["median_s"] > 0
        # GFLOP/s is 2n^3 over the mean of the runs' medians, not something else
        assert m["gflops"] == pytest.approx(2 * m["n"] ** 3 / m["median_s"] / 1e9, rel=1e-6)
        assert m["threads_verified"], m
    assert doc["conditions"]["verdict"] in ("quiet", "noisy")
    (figures,) = doc["conditions"]["nodes"]
    assert 0 <= figures["others_cpu_fraction"] <= 1 and figures["wall_s"] > 0
    assert (doc["conditions"]["verdict"] == "noisy") == bool(doc["conditions"]["reasons"])
    preset = doc["preset"]
    assert preset["node_type"] == "tiny-node"
    # both sizes are small GEMMs: one class, whatever sizes a calibration measures
    (small,) = preset["size_classes"]
    assert (small["name"], small["max_n"], small["sizes"]) == ("small", 256, [64, 192])
    assert 1 <= small["threads"] <= usable
    assert preset["layouts"][0] == {
        "workers": 1, "threads": small["threads"], "size_class": None, "gflops": None,
        "oversubscribed_gflops": None,
    }  # fmt: skip
    assert doc["preset_files"] and all(Path(p).is_file() for p in doc["preset_files"])


def test_the_chosen_count_is_the_smallest_as_good_as_the_best_everywhere(
    calibrated: dict[str, Any],
) -> None:
    from profiler.results import Measurement
    from profiler.stats import differs

    def uncertainty(m: dict[str, Any]) -> float:
        # the point's own: of the mean over its runs (a point is judged at the run level)
        return Measurement.from_dict(m).uncertainty

    doc = calibrated["doc"]
    tolerance = doc["preset"]["tolerance"]
    for size_class in doc["preset"]["size_classes"]:
        curves: dict[tuple[int, str], dict[int, dict[str, Any]]] = {}
        for m in doc["measurements"]:
            if m["n"] in size_class["sizes"] and m["workers"] == 1:
                curves.setdefault((m["n"], m["dtype"]), {})[m["threads"]] = m

        def good(t: int, curve: dict[int, dict[str, Any]]) -> bool:
            best = max(curve.values(), key=lambda m: m["gflops"])
            m = curve[t]
            return m["gflops"] >= best["gflops"] * (1 - tolerance) or not differs(
                m["gflops"], uncertainty(m), best["gflops"], uncertainty(best)
            )

        common = set.intersection(*(set(c) for c in curves.values()))
        good_everywhere = [t for t in sorted(common) if all(good(t, c) for c in curves.values())]
        assert size_class["within_tolerance"] == bool(good_everywhere)
        if good_everywhere:
            assert size_class["threads"] == good_everywhere[0]


def test_list_and_show_find_the_stored_calibration(
    calibrated: dict[str, Any], blasprof_exe: str
) -> None:
    env, doc = calibrated["env"], calibrated["doc"]
    listed = run_blasprof(blasprof_exe, "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["calibration_id"] for r in rows] == [doc["calibration_id"]]
    assert rows[0]["n_measurements"] == len(doc["measurements"])
    shown = run_blasprof(blasprof_exe, "show", str(doc["calibration_id"]), "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    again = json.loads(shown.stdout)
    assert again["measurements"] == doc["measurements"]
    assert again["preset"] == doc["preset"]
    table = run_blasprof(blasprof_exe, "show", str(doc["calibration_id"]), env=env)
    assert "GFLOP/s" in table.stdout and "chosen threads" in table.stdout
    none = run_blasprof(blasprof_exe, "list", "--node-type", "other", "--json", env=env)
    assert json.loads(none.stdout) == []


def test_preset_command_prints_each_format(calibrated: dict[str, Any], blasprof_exe: str) -> None:
    env = calibrated["env"]
    sh = run_blasprof(blasprof_exe, "preset", "tiny-node", "--format", "sh", env=env)
    assert sh.returncode == 0
    loaded = subprocess.run(
        ["dash", "-c", f'{sh.stdout}\necho "$BLASPROF_PRESET"'],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    assert loaded.stdout.startswith("tiny-node:")
    js = run_blasprof(blasprof_exe, "preset", "tiny-node", "--format", "json", env=env)
    assert json.loads(js.stdout)["node_type"] == "tiny-node"
    lua = run_blasprof(blasprof_exe, "preset", "tiny-node", "--format", "lua", env=env)
    assert "pushenv(name, value)" in lua.stdout and '"OMP_NUM_THREADS"' in lua.stdout


def test_debug_executor_stores_the_same_shape(home: Path) -> None:
    result = runner.invoke(
        app, ["calibrate", "--executor", "debug", *TINY, "--no-verify", "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "complete" and doc["measurements"]
    assert doc["node_type"].endswith(f"-{os.cpu_count()}c")


def test_db_upgrade_reports_the_revision(home: Path) -> None:
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert (home / "blasprof.sqlite").is_file()
    again = runner.invoke(app, ["db", "upgrade"])
    assert again.exit_code == 0 and "already" in again.output.lower()


# -- bad input: one line, exit code 2, no traceback ----------------------------------------

too_many = str(len(os.sched_getaffinity(0)) + 1)

BAD_INPUTS = [
    (["calibrate", "--threads", "0"], "--threads"),
    (["calibrate", "--threads", "-1"], "--threads"),
    (["calibrate", "--threads", too_many], "--threads"),
    (["calibrate", "--threads", "two"], "--threads"),
    (["calibrate", "--sizes", "0"], "--sizes"),
    (["calibrate", "--sizes", "-64"], "--sizes"),
    (["calibrate", "--sizes", "abc"], "--sizes"),
    (["calibrate", "--sizes", "1.5"], "--sizes"),
    (["calibrate", "--sizes", "999999999"], "--sizes"),
    (["calibrate", "--sizes", "60000"], "bytes"),
    (["calibrate", "--dtypes", "float16"], "--dtypes"),
    (["calibrate", "--node-type", "a;rm -rf ~"], "--node-type"),
    (["calibrate", "--node-type", "$(reboot)"], "--node-type"),
    (["calibrate", "--node-type", "../etc"], "--node-type"),
    (["calibrate", "--min-time", "0"], "--min-time"),
    (["calibrate", "--samples", "0"], "--samples"),
    (["calibrate", "--tolerance", "1.5"], "--tolerance"),
    (["calibrate", "--profile", "huge"], "--profile"),
    (["calibrate", "--executor", "cloud"], "--executor"),
    (["show", "424242"], "no calibration with id 424242"),
    (["show", "abc"], "Invalid value for 'ID'"),
    (["preset", "no-such-type"], "no preset for node type"),
    (["preset", "x", "--format", "xml"], "--format"),
    (["list", "--since", "yesterday"], "--since"),
    (["--db", "nosuchdb://x", "list"], "nosuchdb"),
    (["--db", "sqlite:////nonexistent-dir/x.sqlite", "list"], "does not exist"),
    (["--db", "postgresql+psycopg://u:pw@127.0.0.1:1/x", "list"], "Connection refused"),
    (["calibrate", "--node-type", "abc\n"], "--node-type"),
    (["calibrate", "--node-type", "Upper"], "--node-type"),
    (["calibrate", "--sizes", "64,,128"], "empty item"),
    (["calibrate", "--sizes", "9" * 5000], "--sizes"),
    (["calibrate", "--threads", "9" * 5000], "--threads"),
    (["calibrate", "--sizes", "\u0666\u0664"], "--sizes"),
    (["calibrate", "--min-time", "inf"], "--min-time"),
    (["calibrate", "--min-time", "abc"], "--min-time"),
    (["calibrate", "--samples", "99999999999"], "--samples"),
    (["calibrate", "--no-wait"], "--no-wait"),
    (["show", "99999999999999999999"], "out of range"),
    (["status", "99999999999999999999"], "out of range"),
    (["collect", "0"], "out of range"),
    (["list", "--since", "999999999d"], "--since"),
    (["list", "--node-type", "bad name"], "--node-type"),
    # every command that takes a node type checks it as it is parsed, the same way
    (["best", "--node-type", "a;b"], "--node-type"),
    (["compare", "1", "2", "--node-type", "$(x)"], "--node-type"),
    (["nodes", "--node-type", "../x"], "--node-type"),
    (["plot", "--history", "--node-type", "Up", "-o", "x.png"], "--node-type"),
    (["preset", "../x"], "NODE_TYPE"),
    (["nosuchcommand"], "nosuchcommand"),
    (["list", "--since", "9999-12-31T23:59:59-14:00"], "outside the years 1 to 9999"),
    (["list", "--since", "0001-01-01T00:00:00+01:00"], "outside the years 1 to 9999"),
    (["show", str(2**31)], "out of range"),
    (["status", str(2**31)], "out of range"),
    (["list", "--limit", "99999999999999999999999"], "--limit"),
    (["check", "--python", "/nonexistent"], "cannot run it: No such file or directory"),
    # a one-letter password is masked where it is the password, not in "port" or "response"
    (["--db", "postgresql+psycopg://u:p@127.0.0.1:1/x", "list"], "port 1 failed"),
]


@pytest.mark.parametrize(
    ("args", "needle"), BAD_INPUTS, ids=[" ".join(a)[:40] for a, _ in BAD_INPUTS]
)
def test_bad_input_is_one_clear_line_and_exit_2(
    args: list[str], needle: str, home: Path, blasprof_exe: str
) -> None:
    proc = run_blasprof(blasprof_exe, *args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert needle in proc.stderr
    assert proc.stdout == ""
    # one line, which names the problem
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_an_unusable_presets_dir_is_refused_before_any_work(
    home: Path, blasprof_exe: str, tmp_path: Path
) -> None:
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("")
    env = {**os.environ, "BLASPROF_PRESETS": str(a_file)}
    proc = run_blasprof(blasprof_exe, "calibrate", *TINY, "--json", env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "a file of that name exists" in proc.stderr
    assert json.loads(run_blasprof(blasprof_exe, "list", "--json").stdout) == []


def test_corrupt_database_file_is_refused_without_damage(home: Path, blasprof_exe: str) -> None:
    home.mkdir(parents=True)
    db = home / "blasprof.sqlite"
    db.write_bytes(b"this is not a database" * 100)
    before = db.read_bytes()
    proc = run_blasprof(blasprof_exe, "list")
    assert proc.returncode == 2
    assert "not a SQLite database" in proc.stderr and "Traceback" not in proc.stderr
    assert db.read_bytes() == before


def test_a_foreign_sqlite_file_is_refused_and_left_unchanged(
    home: Path, blasprof_exe: str, tmp_path: Path
) -> None:
    import sqlite3

    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    before = path.read_bytes()
    for args in (["list"], ["calibrate", *TINY], ["db", "upgrade"]):
        proc = run_blasprof(blasprof_exe, "--db", f"sqlite:///{path}", *args)
        assert proc.returncode == 2, proc.stderr
        assert "not blasprof's (photos)" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert path.read_bytes() == before


def _stored(path: Path) -> None:
    """Two calibrations of one node type in a new SQLite database at ``path``."""
    import datetime as dt
    import random

    from db import open_database
    from tests.history_data import TypeSpec, store_calibration

    spec = TypeSpec("rome", "AMD EPYC 7742", 2, 30.0, ("r1",), sizes=(256,), dtypes=("float64",))
    with open_database(f"sqlite:///{path}") as database:
        for day in (1, 2):
            when = dt.datetime(2026, 1, day, tzinfo=dt.UTC)
            store_calibration(database, spec, when, rng=random.Random(day), samples=3)


def _rows(path: Path) -> dict[str, int]:
    import sqlite3

    with sqlite3.connect(path) as conn:
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {n: conn.execute(f"SELECT count(*) FROM {n}").fetchone()[0] for n in names}


def test_a_read_only_sqlite_url_is_opened_read_only_and_refuses_writes_before_any_work(
    home: Path, blasprof_exe: str, tmp_path: Path
) -> None:
    import sqlite3

    path = tmp_path / "shared.sqlite"
    _stored(path)
    # nothing in the file changes, not even the journal mode a writable opening sets (WAL)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0] == "delete"
    conn.close()
    before = _rows(path)
    read_only = f"sqlite:///{path}?mode=ro"
    listed = run_blasprof(blasprof_exe, "--db", read_only, "list", "--json")
    assert listed.returncode == 0 and listed.stderr == ""
    assert [c["calibration_id"] for c in json.loads(listed.stdout)] == [2, 1]
    started = time.monotonic()
    proc = run_blasprof(blasprof_exe, "--db", read_only, "calibrate", *TINY, "--executor", "debug")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "opened read-only" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert time.monotonic() - started < 30  # refused before measuring anything
    assert _rows(path) == before
    again = run_blasprof(blasprof_exe, "--db", read_only, "show", "1")
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    none = f"sqlite:///{tmp_path}/none.sqlite?mode=ro"
    missing = run_blasprof(blasprof_exe, "--db", none, "list")
    assert missing.returncode == 2 and "is not an existing file" in missing.stderr
    assert not (tmp_path / "none.sqlite").exists()


def test_db_upgrade_names_a_missing_table_and_exits_1(
    home: Path, blasprof_exe: str, tmp_path: Path
) -> None:
    import sqlite3

    path = tmp_path / "dropped.sqlite"
    _stored(path)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE presets")
    before = _rows(path)
    proc = run_blasprof(blasprof_exe, "--db", f"sqlite:///{path}", "db", "upgrade")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "has no table presets" in proc.stderr and "restore it from a backup" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == ""
    best = run_blasprof(blasprof_exe, "--db", f"sqlite:///{path}", "best")
    assert best.returncode == 1 and "no such table: presets" in best.stderr
    assert "blasprof db upgrade" in best.stderr
    # without its revision table it is still recognised as blasprof's, not another program's
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE alembic_version")
    proc = run_blasprof(blasprof_exe, "--db", f"sqlite:///{path}", "db", "upgrade")
    assert proc.returncode == 1, proc.stderr
    assert "holds blasprof's tables" in proc.stderr and "not blasprof's" not in proc.stderr
    assert _rows(path) == {k: v for k, v in before.items() if k != "alembic_version"}


def test_locked_database_fails_with_what_to_do(home: Path, blasprof_exe: str) -> None:
    import sqlite3

    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    holder = sqlite3.connect(home / "blasprof.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    env = {**os.environ, "BLASPROF_DB_WAIT_S": "1"}
    try:
        proc = run_blasprof(
            blasprof_exe, "calibrate", *TINY, "--no-verify", "--executor", "debug", env=env,
            timeout=60,
        )  # fmt: skip
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # nothing was measured yet: the database given cannot be used now
    assert proc.returncode == 2, proc.stderr
    assert "database is locked" in proc.stderr and "retry" in proc.stderr
    assert "BLASPROF_DB_WAIT_S" in proc.stderr


def _wait_for_points(folder: Path, count: int, proc: subprocess.Popen[str], limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        points = sum(
            1
            for f in folder.glob("**/*.points.jsonl")
            for line in f.read_text().splitlines()
            if '"kind": "point"' in line
        )
        if points >= count:
            return
        if proc.poll() is not None:
            pytest.fail(f"calibrate ended early: {proc.communicate()}")
        time.sleep(0.1)
    pytest.fail(f"no {count} points measured within {limit} s")


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "sighup"])
def test_ctrl_c_keeps_the_points_measured_marked_partial_and_exits_130(
    home: Path, blasprof_exe: str, how: str
) -> None:
    proc = subprocess.Popen(
        [blasprof_exe, "calibrate", "--sizes", "64,128,256,512,1024,1536,2048",
         "--min-time", "0.2", "--samples", "5", "--no-verify", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        _wait_for_points(home / "jobs", 2, proc, limit=120)
        if how == "ctrl-c":
            # as a terminal does: SIGINT to the whole process group, job processes included
            os.killpg(proc.pid, signal.SIGINT)
        else:  # as kill(1) or a closing login session does: the blasprof process only
            proc.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGHUP)
        out, errors = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode == 130, errors
    assert "Traceback" not in errors
    assert "interrupted" in errors and "stored" in errors
    doc = json.loads(out)
    assert doc["status"] == "partial"
    assert len(doc["measurements"]) >= 2
    assert len(doc["measurements"]) < 7 * 2 * len(os.sched_getaffinity(0))
    listed = runner.invoke(app, ["list", "--json"])
    assert json.loads(listed.stdout)[0]["status"] == "partial"


def test_a_job_killed_mid_run_keeps_its_points_and_the_previous_preset(
    home: Path, blasprof_exe: str
) -> None:
    import psutil

    first = run_blasprof(blasprof_exe, "calibrate", "--node-type", "k", *TINY, "--no-verify")
    assert first.returncode == 0, first.stderr
    preset_file = home / "presets" / "k.sh"
    before = preset_file.read_text()
    proc = subprocess.Popen(
        [blasprof_exe, "calibrate", "--node-type", "k", "--sizes", "64,128,256,512,1024,2048",
         "--min-time", "0.2", "--samples", "5", "--no-verify", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        _wait_for_points(home / "jobs" / "2", 2, proc, limit=120)
        tasks = [
            p
            for p in psutil.Process(proc.pid).children(recursive=True)
            if "submitit.core._submit" in " ".join(p.cmdline())
        ]
        assert len(tasks) == 1
        tasks[0].kill()  # SIGKILL: no chance to hand anything back
        out, errors = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode == 1, errors
    assert "Traceback" not in errors
    doc = json.loads(out)
    assert doc["status"] == "partial"
    assert len(doc["measurements"]) >= 2  # read back from the checkpoint
    (job,) = doc["jobs"]
    assert job["state"] == "FAILED" and "without returning a result" in job["reason"]
    assert doc["preset"] is None and preset_file.read_text() == before


def test_a_calibration_on_fewer_cpus_than_the_node_is_refused_unless_asked(
    home: Path, blasprof_exe: str
) -> None:
    import shutil

    from tests.services import absent

    if shutil.which("taskset") is None:
        absent("taskset (util-linux) is not installed")
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs a machine with 2 CPUs or more")
    one_cpu = ["taskset", "-c", "0", blasprof_exe, "calibrate", "--executor", "local", *TINY]
    env = dict(os.environ)
    refused = subprocess.run([*one_cpu, "--no-verify"], capture_output=True, text=True, env=env)
    assert refused.returncode == 2, refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert "may use 1 of this node's" in line and "--partial-node" in line, line
    assert json.loads(run_blasprof(blasprof_exe, "list", "--json").stdout) == []
    assert not (home / "presets" / "blasprof.sh").exists()
    # asked for: measured and adopted for those CPUs, as it says
    asked = subprocess.run(
        [*one_cpu, "--no-verify", "--force", "--partial-node", "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert asked.returncode == 0, asked.stderr
    doc = json.loads(asked.stdout)
    assert doc["status"] == "complete" and doc["preset"]["calibrated_cpus"] == 1
