"""What every benchmark script shares: goal rows, the printed table and the JSON files.

Each ``bench_*.py`` script builds a payload (its figures plus a list of ``Goal`` rows), prints
its own table, and writes ``benchmarks/results/<name>.json`` through ``write_result``.
``run_all.py`` gathers the goal rows of all of them into one table.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Goal:
    """One figure measured against its goal; ``met`` is None where no goal applies."""

    name: str
    measured: str
    goal: str
    met: bool | None
    note: str = ""


def parser(description: str) -> argparse.ArgumentParser:
    """The command line every benchmark script accepts."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="fewer rounds and samples")
    p.add_argument("--no-write", action="store_true", help="print only; write no JSON")
    return p


def finish(name: str, payload: dict[str, Any], report: Any, write: bool) -> dict[str, Any]:
    """Print a benchmark's report and its goals and, unless told not to, write its JSON."""
    report(payload)
    if payload.get("goals"):
        print_goals("Goals", payload["goals"])
    if write:
        print(f"\nwrote {write_result(name, payload)}")
    return payload


def script(
    name: str, doc: str, run: Any, report: Any, argv: Sequence[str] | None = None
) -> dict[str, Any]:
    """A benchmark script's main: the common options, then run, report and write."""
    args = parser(doc.splitlines()[0]).parse_args(argv)
    return finish(name, run(quick=args.quick), report, write=not args.no_write)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def environment() -> dict[str, Any]:
    """Where and when the figures were taken, kept beside them in every JSON file."""
    commit = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 0
    return {
        "when": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "python": sys.version.split()[0],
        "cpus_in_affinity": affinity,
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "git_commit": commit or None,
    }


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain fixed-width table: readable in a terminal, a log and a copied issue comment."""
    cells = [[str(h) for h in header]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for i, row in enumerate(cells):
        print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))


def print_goals(title: str, goals: Sequence[Goal]) -> None:
    rows = [(g.name, g.measured, g.goal, _met(g.met), g.note) for g in goals]
    print_table(title, ("benchmark", "measured", "goal", "met", "note"), rows)


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write ``results/<name>.json`` (goal rows as plain dicts) and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    doc = dict(payload)
    doc["goals"] = [asdict(g) for g in payload.get("goals", [])]
    path = RESULTS_DIR / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path


def _met(met: bool | None) -> str:
    return "n/a" if met is None else ("yes" if met else "no")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
