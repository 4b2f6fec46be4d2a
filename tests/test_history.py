"""The history commands on a realistic stored fleet: list, show, best, compare, nodes, plot.

The fleet is built through the store API (``tests.history_data``) in SQLite and in
PostgreSQL: three node types over five months, two BLAS versions, a BLAS upgrade that costs
10%, a 1% wobble, a slow node, a failed calibration. Commands run in-process through typer's
runner, and the ones whose exit code or environment matters through the real console script.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from db import open_database
from profiler.cli import app
from tests.conftest import run_blasprof
from tests.history_data import TypeSpec, postgres_database, store_calibration

runner = CliRunner()
NOW = dt.datetime.now(dt.UTC)
ROME = TypeSpec("rome", "AMD EPYC 7302 16-Core", 8, 30.0,
                tuple(f"rome-n{i:02d}" for i in range(1, 5)), threads=(1, 2, 4, 8))  # fmt: skip
GENOA = TypeSpec("genoa", "AMD EPYC 9354 32-Core", 16, 40.0,
                 tuple(f"genoa-n{i:02d}" for i in range(1, 7)), sizes=(512, 2048),
                 threads=(1, 4, 16))  # fmt: skip
SKYLAKE = TypeSpec("skylake", "Intel Xeon Gold 6148", 20, 35.0, ("sky-a", "sky-b"),
                   sizes=(1024,), dtypes=("float64",), threads=(1, 20))  # fmt: skip
SLOW_NODE = "genoa-n04"


def _ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


def _fill(url: str) -> dict[str, Any]:
    rng = random.Random(11)
    ids: dict[str, list[int]] = {"rome": [], "genoa": [], "skylake": []}
    with open_database(url) as database:
        for days in (150, 120, 90):
            ids["rome"].append(store_calibration(database, ROME, _ago(days), rng=rng))
        for days in (40, 20, 5):  # after the upgrade: 10% slower everywhere
            ids["rome"].append(
                store_calibration(
                    database, ROME, _ago(days), rng=rng, factor=0.9, blas_version="0.3.26"
                )
            )
        slow = {SLOW_NODE: 0.85}
        for days, factor in ((75, 1.0), (60, 1.0), (25, 0.99), (10, 0.99)):
            ids["genoa"].append(
                store_calibration(database, GENOA, _ago(days), rng=rng, factor=factor, factors=slow)
            )
        ids["skylake"].append(
            store_calibration(
                database, SKYLAKE, _ago(3), rng=rng, library="mkl", blas_version="2024.0"
            )
        )
        failed = database.create_calibration(
            "skylake", executor="slurm", profile="quick", settings={}, created_at=_ago(1)
        )
        database.finish_calibration(failed, "failed", error="sbatch refused the job")
        ids["failed"] = [failed]
    return ids


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The stored fleet in a fresh database of each kind: its URL and calibration ids."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('fleet') / 'fleet.sqlite'}"
        yield {"url": url, "ids": _fill(url)}
        return
    # the server the environment names, else (with CI set) a private one: tests/conftest.py
    base = request.getfixturevalue("postgres_url")
    with postgres_database(base) as url:
        yield {"url": url, "ids": _fill(url)}


def _run(fleet: dict[str, Any], *args: str) -> Any:
    return runner.invoke(app, ["--db", fleet["url"], *args])


def _json(fleet: dict[str, Any], *args: str, code: int = 0) -> Any:
    result = _run(fleet, *args, "--json")
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


# -- list -------------------------------------------------------------------------------------


def test_list_is_newest_first_and_each_filter_selects(fleet: dict[str, Any]) -> None:
    ids = fleet["ids"]
    rows = _json(fleet, "list")
    assert len(rows) == 12
    created = [r["created_at"] for r in rows]
    assert created == sorted(created, reverse=True)
    assert rows[0]["calibration_id"] == ids["failed"][0] and rows[0]["status"] == "failed"
    rome = _json(fleet, "list", "--node-type", "rome")
    assert [r["calibration_id"] for r in rome] == ids["rome"][::-1]
    assert all(r["n_jobs"] == 4 and r["n_measurements"] == 4 * 24 for r in rome)
    assert {r["calibration_id"] for r in _json(fleet, "list", "--since", "30d")} == {
        ids["rome"][4], ids["rome"][5], ids["genoa"][2], ids["genoa"][3], ids["skylake"][0],
        ids["failed"][0],
    }  # fmt: skip
    assert [r["calibration_id"] for r in _json(fleet, "list", "--status", "failed")] == ids[
        "failed"
    ]
    upgraded = _json(fleet, "list", "--blas", "openblas@0.3.26")
    assert [r["calibration_id"] for r in upgraded] == ids["rome"][3:][::-1]
    assert all(r["blas"] == ["openblas 0.3.26 (pthreads)"] for r in upgraded)
    assert [r["calibration_id"] for r in _json(fleet, "list", "--blas", "mkl")] == ids["skylake"]
    assert len(_json(fleet, "list", "--blas", "0.3")) == 10  # every OpenBLAS 0.3.x
    assert _json(fleet, "list", "--blas", "openblas@0.4") == []
    assert len(_json(fleet, "list", "--limit", "2")) == 2


def test_list_csv_has_the_json_columns(fleet: dict[str, Any]) -> None:
    result = _run(fleet, "list", "--node-type", "genoa", "--format", "csv")
    assert result.exit_code == 0, result.output
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [int(r["calibration_id"]) for r in table] == fleet["ids"]["genoa"][::-1]
    assert all(r["blas"] == "openblas 0.3.21 (pthreads)" for r in table)
    assert all(int(r["n_measurements"]) == 6 * 2 * 2 * 3 for r in table)


# -- show -------------------------------------------------------------------------------------


def test_show_draws_a_curve_per_size_and_names_the_preset(fleet: dict[str, Any]) -> None:
    cal = fleet["ids"]["rome"][-1]
    result = _run(fleet, "show", str(cal))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "GFLOP/s against threads" in out and "chosen threads" in out
    for dtype in ("float64", "float32"):
        for n in ROME.sizes:
            assert f"{dtype} n={n}  (best" in out
    assert out.count("1 2 4 8 threads") == 6
    assert "█" in out
    rows = list(
        csv.DictReader(io.StringIO(_run(fleet, "show", str(cal), "--format", "csv").stdout))
    )
    assert len(rows) == 4 * 24
    assert {r["hostname"] for r in rows} == set(ROME.hosts)
    assert all(float(r["gflops"]) > 0 and len(r["samples"].split()) == 5 for r in rows)
    # points stored without worker runs read as one run: their own figure
    assert all([float(g) for g in r["run_gflops"].split()] == [float(r["gflops"])] for r in rows)


# -- best -------------------------------------------------------------------------------------


def test_best_is_the_latest_preset_of_each_type_with_its_calibration(fleet: dict[str, Any]) -> None:
    docs = {d["node_type"]: d for d in _json(fleet, "best")}
    assert set(docs) == {"rome", "genoa", "skylake"}
    rome = docs["rome"]
    assert rome["calibration_id"] == fleet["ids"]["rome"][-1]
    assert rome["blas"] == ["openblas 0.3.26 (pthreads)"]
    assert [c["name"] for c in rome["size_classes"]] == ["small", "medium", "large"]
    assert all(c["calibration_id"] == rome["calibration_id"] for c in rome["size_classes"])
    # the model scales to every core for the large size: the preset takes all 8
    assert rome["size_classes"][-1]["threads"] == 8
    assert rome["layouts"]["large"][0] == {"workers": 1, "threads": 8}
    stored = _json(fleet, "show", str(rome["calibration_id"]))["preset"]
    assert [c["threads"] for c in rome["size_classes"]] == [
        c["threads"] for c in stored["size_classes"]
    ]
    (only,) = _json(fleet, "best", "--node-type", "skylake")
    assert only["calibration_id"] == fleet["ids"]["skylake"][0]
    table = _run(fleet, "best", "--node-type", "rome").stdout
    assert f"preset of calibration {rome['calibration_id']}" in table and "medium" in table


# -- compare ------------------------------------------------------------------------------------


def test_compare_finds_the_planted_regression_and_exits_1(fleet: dict[str, Any]) -> None:
    doc = _json(fleet, "compare", "--node-type", "rome", "now-200d:now-60d", "now-60d:now", code=1)
    assert doc["a"]["calibrations"] == fleet["ids"]["rome"][:3]
    assert doc["b"]["calibrations"] == fleet["ids"]["rome"][3:]
    assert len(doc["rows"]) == 24
    verdicts = [r["verdict"] for r in doc["rows"]]
    assert verdicts.count("regression") >= 20 and "faster" not in verdicts
    assert doc["regressions"] == verdicts.count("regression")
    for row in doc["rows"]:
        assert row["change"] == pytest.approx(-0.10, abs=0.035)
        assert row["a"]["measurements"] == 12 and row["a"]["samples"] == 60
        if row["verdict"] == "regression":
            assert row["b"]["high"] < row["a"]["low"]
    (blas,) = [d for d in doc["differences"] if d["what"] == "blas"]
    assert blas["a"] == ["openblas 0.3.21 (pthreads)"] and blas["b"] == [
        "openblas 0.3.26 (pthreads)"
    ]
    text = _run(fleet, "compare", "--node-type", "rome", "now-200d:now-60d", "now-60d:now")
    assert text.exit_code == 1
    assert "REGRESSION" in text.stdout and "blas differs" in text.stdout


def test_compare_ignores_a_one_percent_wobble_within_the_spread(fleet: dict[str, Any]) -> None:
    doc = _json(fleet, "compare", "--node-type", "genoa", "now-90d:now-45d", "now-45d:now")
    assert doc["regressions"] == 0 and doc["differences"] == []
    assert {r["verdict"] for r in doc["rows"]} == {"same"}
    assert all(abs(r["change"]) < 0.03 for r in doc["rows"])


def test_compare_two_ids_as_csv_and_its_exit_code_in_a_script(
    fleet: dict[str, Any], blasprof_exe: str
) -> None:
    before, after = fleet["ids"]["rome"][2], fleet["ids"]["rome"][3]
    proc = run_blasprof(
        blasprof_exe, "--db", fleet["url"], "compare", str(before), str(after), "--format", "csv"
    )
    assert proc.returncode == 1, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert len(rows) == 24 and {r["node_type"] for r in rows} == {"rome"}
    assert sum(r["verdict"] == "regression" for r in rows) >= 20
    same = run_blasprof(blasprof_exe, "--db", fleet["url"], "compare", str(after), str(after))
    assert same.returncode == 0 and "no regression" in same.stdout
    assert f"A and B share calibration(s) {after}" in same.stderr
    assert "share" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["compare", "now-30d:now", "now-10d:now"], "--node-type"),
        (["compare", "1", "2", "--tolerance", "1.5"], "--tolerance"),
        (["compare", "1", "999999"], "no calibration with id 999999"),
        (["compare", "--node-type", "rome", "now-2d:now", "now-1d:now"], "no stored measurements"),
        (["compare", "--node-type", "nosuch", "now-2d:now", "now-1d:now"], "no node type"),
        (["compare", "1", "tomorrow"], "START:END"),
        (["list", "--blas", "x;y"], "--blas"),
        (["list", "--json", "--format", "csv"], "--json and --format"),
        (["nodes", "--node-type", "nosuch"], "no node type"),
        (["plot", "1", "-o", "x.gif"], ".png or .svg"),
    ],
)
def test_history_bad_input_is_one_line_and_exit_2(
    fleet: dict[str, Any], args: list[str], needle: str
) -> None:
    result = _run(fleet, *args)
    assert result.exit_code == 2, result.output
    assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


# -- nodes --------------------------------------------------------------------------------------


def test_nodes_flags_the_planted_slow_node_and_how_far_off(fleet: dict[str, Any]) -> None:
    reports = {r["node_type"]: r for r in _json(fleet, "nodes")}
    genoa = reports["genoa"]
    assert genoa["suspects"] == [SLOW_NODE]
    (slow,) = [n for n in genoa["nodes"] if n["suspect"]]
    assert slow["off"] == pytest.approx(-0.15, abs=0.03)
    assert slow["calibration_id"] == fleet["ids"]["genoa"][-1]  # its latest figures
    assert all(abs(n["off"]) < 0.03 for n in genoa["nodes"] if not n["suspect"])
    assert reports["rome"]["suspects"] == []
    assert "at least 3" in reports["skylake"]["note"] and reports["skylake"]["suspects"] == []
    table = _run(fleet, "nodes", "--node-type", "genoa").stdout
    line = next(line for line in table.splitlines() if line.startswith(SLOW_NODE))
    assert "SUSPECT" in line and "-1" in line


# -- plots --------------------------------------------------------------------------------------


def _image(path: Path) -> Any:
    from matplotlib.image import imread

    return imread(path)


def test_plot_of_a_calibration_is_a_real_png_of_the_expected_size(
    fleet: dict[str, Any], tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    from profiler.history.plots import FIGURE_SIZE

    out = tmp_path / "cal.png"
    result = _run(fleet, "plot", str(fleet["ids"]["rome"][-1]), "-o", str(out))
    assert result.exit_code == 0, result.output
    pixels = _image(out)
    assert pixels.shape[:2] == (round(FIGURE_SIZE[1] * 100), round(FIGURE_SIZE[0] * 100))
    rgb = pixels[..., :3]
    non_white = (rgb < 0.95).any(axis=2).mean()
    assert 0.02 < non_white < 0.6  # axes, lines and labels drawn, not a blank or solid image
    assert len({tuple(p) for p in rgb.reshape(-1, 3)[::37].round(2)}) > 10  # several colours
    svg = tmp_path / "cal.svg"
    assert _run(fleet, "plot", str(fleet["ids"]["rome"][-1]), "-o", str(svg)).exit_code == 0
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text and "theoretical peak" in text


def test_plot_history_of_a_node_type_is_a_real_png(fleet: dict[str, Any], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "trend.png"
    result = _run(fleet, "plot", "--node-type", "rome", "--history", "-o", str(out))
    assert result.exit_code == 0, result.output
    pixels = _image(out)
    assert pixels.shape[0] > 300 and pixels.shape[1] > 500
    assert 0.02 < (pixels[..., :3] < 0.95).any(axis=2).mean() < 0.6


def test_plot_without_matplotlib_says_how_to_install_it(
    fleet: dict[str, Any], blasprof_exe: str, tmp_path: Path
) -> None:
    shadow = tmp_path / "shadow" / "matplotlib"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    env = {**os.environ, "PYTHONPATH": str(shadow.parent)}
    out = tmp_path / "x.png"
    proc = run_blasprof(
        blasprof_exe, "--db", fleet["url"], "plot", str(fleet["ids"]["rome"][0]), "-o", str(out),
        env=env,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "blasprof: error: plot needs matplotlib, which is not installed here; install it "
        "with: pip install 'blasprof[plot]'"
    ]
    assert not out.exists()


# -- fast reads ---------------------------------------------------------------------------------


def test_read_commands_import_neither_alembic_nor_the_orm(fleet: dict[str, Any]) -> None:
    # a read is one version query and Core selects: no migration machinery, no ORM, no
    # writer module (db.store), and it still answers
    code = (
        "import sys\nfrom profiler.cli import main\n"
        f"sys.argv = ['blasprof', '--db', {fleet['url']!r}, sys.argv[1], *sys.argv[2:]]\n"
        "try:\n    main()\n    code = 0\nexcept SystemExit as e:\n    code = e.code\n"
        "loaded = [m for m in ('alembic', 'sqlalchemy.orm', 'db.store', 'db.models')"
        " if m in sys.modules]\n"
        "print('EXIT', code, 'LOADED', loaded, file=sys.stderr)\n"
    )
    import subprocess

    for args in (["list"], ["show", "1"], ["best"], ["nodes"], ["preset", "rome"],
                 ["compare", "1", "2"]):  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
        )
        assert "EXIT 0 LOADED []" in done.stderr, (args, done.stderr)
        assert done.stdout.strip(), args


# -- the rules, on points made here ---------------------------------------------------------------


def _points(gflops: list[float], *, host: str = "h", cal: int = 1, node_type: str = "t",
            cv: float = 0.02, n: int = 1024) -> list[Any]:  # fmt: skip
    from profiler.history.selection import Point
    from profiler.results import gemm_flops

    rng = random.Random(cal)
    return [
        Point(calibration_id=cal, node_type=node_type, created_at=NOW, hostname=f"{host}{i}",
              job_id=i, dtype="float64", n=n, threads=1, gflops=g,
              samples=tuple(gemm_flops(n) / (g * 1e9) * rng.gauss(1, cv) for _ in range(5)))
        for i, g in enumerate(gflops)
    ]  # fmt: skip


def test_a_drop_within_a_wide_spread_is_slower_not_a_regression() -> None:
    from profiler.history.compare import compare

    (row,) = compare(_points([100.0], cv=0.25), _points([88.0], cal=2, cv=0.25)).rows
    assert row.change == pytest.approx(-0.12) and row.verdict == "slower"
    (tight,) = compare(_points([100.0], cv=0.005), _points([88.0], cal=2, cv=0.005)).rows
    assert tight.verdict == "regression" and tight.b.high < tight.a.low


def test_comparing_two_node_types_matches_points_and_says_so() -> None:
    from profiler.history.compare import compare

    result = compare(_points([50.0, 51.0]), _points([60.0, 61.0], node_type="u", cal=2))
    (row,) = result.rows
    assert row.node_type == "t -> u" and row.verdict == "faster"
    assert [d.what for d in result.differences] == ["node_type"]


def test_identical_nodes_have_no_suspect_and_too_few_are_not_judged() -> None:
    from profiler.history.fleet import NodeFigures, standings

    def node(host: str, gflops: float, node_type: str = "t") -> NodeFigures:
        return NodeFigures(node_type, host, 1, 1, NOW, "", {("float64", 1024, 4): gflops})

    (report,) = standings([node(f"n{i}", 100.0) for i in range(6)])
    assert report.suspects == () and report.margin == pytest.approx(0.05)
    (pair,) = standings([node("a", 100.0), node("b", 50.0)])
    assert pair.suspects == () and "at least 3" in pair.note


def test_compare_says_when_the_conditions_differ() -> None:
    import datetime as dt

    from profiler.history.compare import compare
    from profiler.history.selection import Point

    def points(cal: int, verdict: str | None) -> list[Point]:
        when = dt.datetime(2026, 1, cal, tzinfo=dt.UTC)
        samples = (0.0215,) * 3
        return [Point(cal, "t", when, "h1", cal, "float64", 1024, 2, 100.0, samples, "ob", verdict)]

    same = compare(points(1, "quiet"), points(2, "quiet"))
    assert not [d for d in same.differences if d.what == "conditions"]
    noisy = compare(points(1, "quiet"), points(2, "noisy"))
    (diff,) = [d for d in noisy.differences if d.what == "conditions"]
    assert (diff.a, diff.b) == (("quiet",), ("noisy",))
