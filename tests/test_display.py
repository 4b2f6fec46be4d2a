"""Strings from machines and the database reach the terminal as text: never rich markup,
never a control character obeyed.

The hostile strings are real where they can be: ``calibrate`` runs in its own UTS and mount
namespaces, with a hostname and a /proc/cpuinfo CPU model of our choosing; a node type, a
job id and a reason are planted in the database, as a hostile or broken writer could.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from profiler.cli.display import safe
from tests.conftest import TINY, run_blasprof

HOSTNAME = "h[/]x\n[bold]y"
CPU_TAG = "[/][bold]Evil:smile:"
NODE_TYPE = "[/]node\n[bold]type\x1b[2J"

_IN_NAMESPACES = """
import os, socket, subprocess, sys
socket.sethostname(sys.argv[1])
text = open("/proc/cpuinfo").read().replace("model name\\t: ", "model name\\t: " + sys.argv[2])
open(sys.argv[3], "w").write(text)
subprocess.run(["mount", "--bind", sys.argv[3], "/proc/cpuinfo"], check=True)
os.execv(sys.argv[4], sys.argv[4:])
"""


def test_safe_shows_text_and_escapes_control_characters() -> None:
    from rich.console import Console

    console = Console(width=200, emoji=False, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(f"[bold]{safe(HOSTNAME)}[/] and {safe(NODE_TYPE)}")
    assert console.export_text().strip() == "h[/]x\\n[bold]y and [/]node\\n[bold]type\\x1b[2J"
    assert safe("a\u202eb\u2028c", markup=False) == "a\\u202eb\\u2028c"


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root and unshare(1) to give calibrate its own hostname and /proc/cpuinfo",
)
def test_hostile_hostnames_cpu_models_and_node_types_are_shown_as_text(
    home: Path, blasprof_exe: str, tmp_path: Path
) -> None:
    calibrated = run_blasprof(
        "unshare",
        "--uts",
        "--mount",
        "--propagation",
        "private",
        sys.executable,
        "-c",
        _IN_NAMESPACES,
        HOSTNAME,
        CPU_TAG,
        str(tmp_path / "cpuinfo"),
        blasprof_exe,
        "calibrate",
        "--executor",
        "debug",
        "--node-type",
        "evil",
        *TINY,
        "--no-verify",
    )
    assert calibrated.returncode == 0, calibrated.stderr
    assert "Traceback" not in calibrated.stderr
    assert "h[/]x\\n[bold]y" in calibrated.stdout
    assert f"{CPU_TAG}" in calibrated.stdout

    from db import open_database

    with open_database() as database:  # a node type no blasprof command would accept
        planted = database.create_calibration(
            NODE_TYPE, executor="[red]local", profile="quick", settings={}
        )
        database.add_job(planted, external_id="[/]7\n", folder=None, state="[bold]RUNNING")
    for args in (["list"], ["show", "1"], ["show", str(planted)], ["status"]):
        shown = run_blasprof(blasprof_exe, *args)
        assert shown.returncode == 0, (args, shown.stderr)
        assert "Traceback" not in shown.stderr and "\x1b" not in shown.stdout
        out = shown.stdout
        if args == ["show", "1"]:
            assert "h[/]x\\n[bold]y" in out and CPU_TAG in out
        elif args == ["list"]:
            assert "h[/]x\\n[bold]y" in out and "[/]node\\n[bold]type\\x1b[2J" in out
            assert "[red]local" in out
        else:
            assert "[/]node\\n[bold]type\\x1b[2J" in out
            assert "[/]7\\n" in out and "[bold]RUNNING" in out
    # the history views and CSV: the same hostname, shown as text on one line
    for args in (["nodes", "--node-type", "evil"], ["best"], ["list", "--format", "csv"]):
        shown = run_blasprof(blasprof_exe, *args)
        assert shown.returncode == 0, (args, shown.stderr)
        assert "\x1b" not in shown.stdout and "Traceback" not in shown.stderr
    nodes = run_blasprof(blasprof_exe, "nodes", "--node-type", "evil").stdout
    assert "h[/]x\\n[bold]y" in nodes and "\n[bold]y" not in nodes
    csv_rows = run_blasprof(blasprof_exe, "list", "--format", "csv").stdout.splitlines()
    assert len(csv_rows) == 1 + 2  # the header and one record per calibration, one line each


def test_best_shows_each_librarys_counts_and_what_it_obeys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import datetime as dt

    from db.history import CurrentPreset
    from profiler.cli.display_history import print_best
    from tests.builders import node_l

    when = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    print_best([CurrentPreset("node-l", node_l(), when, 7, when, "complete", ("openblas",))])
    out = capsys.readouterr().out
    assert "  blis (obeys BLIS_NUM_THREADS > OMP_NUM_THREADS): large 3" in out
    assert "  openblas-openmp (obeys OMP_NUM_THREADS): large 2" in out
    assert "  atlas (obeys no variable): large 1" in out
