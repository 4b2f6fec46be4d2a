"""What the commands show: one-line messages, JSON, progress, and the tables of records.

Every command prints through here, so every view follows the same rules: tables fit the
terminal (and are not truncated when piped), ``--json`` prints one document on stdout and
nothing else there, and messages go to stderr prefixed ``blasprof:``. rich is imported
where a view needs it.

Every string that came from a machine or the database (a hostname, a CPU model, a node
type, a job's reason) goes through ``safe`` on its way out: it reaches the terminal as the
text it is, never as rich markup, and its control characters (a newline, an escape
sequence) are shown, not obeyed.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from profiler.statuses import COMPLETE

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console
    from rich.progress import Progress

    from db import CalibrationSummary

__all__ = [
    "Bar",
    "console",
    "err",
    "print_calibration_list",
    "print_collected",
    "print_took_effect",
    "print_json",
    "print_loading",
    "print_notes",
    "print_pending",
    "print_preset_paths",
    "print_status",
    "progress",
    "safe",
]

# C0 and C1 controls, DEL, and the invisible characters that reorder or split a line
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def safe(value: object, *, markup: bool = True) -> str:
    """``value`` as text to show: control characters escaped (``\\n``, ``\\x1b``) and,
    for a line of rich markup (``markup``, the default), square brackets escaped, so that
    ``[/]`` or ``[bold]`` in a hostname is printed as it is. Use it for every string that
    came from a machine or the database; ``markup=False`` for plain ``print`` lines."""
    text = _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode(), str(value))
    if not markup:
        return text
    from rich.markup import escape

    return escape(text)


def err(message: str) -> None:
    """One line on stderr, prefixed so that it is clear who speaks (control characters in
    ``message`` are shown escaped, so it stays one line)."""
    print(f"blasprof: {safe(message, markup=False)}", file=sys.stderr)


def console(stderr: bool = False) -> Console:
    """A rich console; when not on a terminal, wide enough that tables are not truncated.
    ``:name:`` in a string stays text (no emoji codes)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 160, emoji=False)


def print_json(doc: Any) -> None:
    """``doc`` as one JSON document on stdout."""
    import json

    json.dump(doc, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


class Bar:
    """A progress bar on stderr: points done out of a total, and what happens now."""

    def __init__(self, progress: Progress, total: int) -> None:
        self._progress = progress
        self._task = progress.add_task("starting", total=total)

    def update(
        self,
        completed: int | None = None,
        description: str | None = None,
        total: int | None = None,
    ) -> None:
        self._progress.update(self._task, completed=completed, description=description, total=total)

    def finish(self, completed: int, description: str = "done") -> None:
        self._progress.update(
            self._task, total=max(completed, 1), completed=completed, description=description
        )


@contextmanager
def progress(label: str, total: int, *, enabled: bool = True) -> Iterator[Bar]:
    """A progress bar titled ``label`` for the block inside; hidden when not ``enabled``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn(f"[bold]{label}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}", markup=False),
        console=Console(stderr=True, emoji=False),
        disable=not enabled,
        transient=False,
    )
    with bar:
        yield Bar(bar, total)


def print_calibration_list(rows: Sequence[CalibrationSummary]) -> None:
    """``blasprof list``: one line per calibration, as plain columns (no markup: every cell
    but the figures came from the database; and a year of calibrations prints at once)."""
    header = ("id", "node type", "status", "conditions", "preset", "exec", "profile",
              "created (UTC)", "BLAS", "hosts", "points", "f64 GF/s")  # fmt: skip
    adopted = {True: "adopted", False: "NOT adopted", None: "-"}
    table = [
        (
            str(r.id),
            safe(r.node_type, markup=False),
            safe(r.status, markup=False),
            safe(r.verdict or "-", markup=False),
            adopted[r.preset_adopted],
            safe(r.executor, markup=False),
            safe(r.profile, markup=False),
            r.created_at.strftime("%Y-%m-%d %H:%M"),
            safe(", ".join(r.blas) or "-", markup=False),
            safe(_hosts(r.hostnames), markup=False),
            str(r.n_measurements),
            f"{r.best_gflops:.1f}" if r.best_gflops else "-",
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in table)) for i, h in enumerate(header)]
    right = {0, 10, 11}
    for line in (header, *table):
        cells = (
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )
        print("  ".join(cells).rstrip())


def _hosts(names: Sequence[str], most: int = 3) -> str:
    """A few host names, and how many more."""
    if not names:
        return "-"
    shown = ", ".join(names[:most])
    return shown + (f" +{len(names) - most}" if len(names) > most else "")


def print_preset_paths(
    node_type: str, status: str, paths: Sequence[Path], adopted: bool | None = None
) -> None:
    """Where a calibration's presets went and how a job loads them; or why there are none."""
    if not paths:
        if adopted is False:
            print("no preset written: it was not adopted (see why above); jobs keep theirs")
        elif status != COMPLETE:
            print("no preset written: no node finished its sweep; earlier presets are kept")
        else:
            print("no preset written: nothing usable was measured")
        return
    directory = paths[0].parent
    if directory.name == "modulefiles":
        directory = directory.parent
    print(
        f"presets for {safe(node_type, markup=False)} and the dispatchers written to "
        f"{safe(directory, markup=False)}"
    )
    print_loading(directory, paths)


def print_loading(directory: Path, written: Sequence[Path] = ()) -> None:
    """How each form in a presets directory is loaded (csh only where ``written`` has its
    dispatcher), as lines a shell can take as they are, whatever the directory's name."""
    import shlex

    def quoted(path: Path) -> str:
        return safe(shlex.quote(str(path)), markup=False)

    rows = [("sh, bash, zsh, ksh", f". {quoted(directory / 'blasprof.sh')}")]
    if any(p.name == "blasprof.csh" for p in written):
        rows.append(("csh, tcsh", f"source {quoted(directory / 'blasprof.csh')}"))
    rows += [
        ("Python", f"PYTHONPATH={quoted(directory)} and `import blas_preset` before numpy"),
        ("Lmod", f"module use {quoted(directory / 'modulefiles')} && module load blasprof"),
        ("any command", 'blasprof run -- CMD...   or   eval "$(blasprof env)"'),
        ("a job script", "blasprof wrap job.sh   (adds the sh line after its #SBATCH header)"),
        ("every job", "deploy/site/taskprolog.sh as Slurm's TaskProlog (see its README)"),
    ]
    print("load them in a job (each picks this node's type, its CPUs and the job layout):")
    for what, how in rows:
        print(f"  {what + ':':<20} {how}")


def print_notes(notes: Sequence[str]) -> None:
    """What a preset says when it loads, one line each on stderr."""
    for note in notes:
        err(note)


def print_took_effect(
    ok: bool, libraries: Sequence[dict[str, Any]], why: str, record: str | None
) -> None:
    """`blasprof check`: each BLAS library checked, the threads that ran, and the verdict."""
    shown = safe(record, markup=False) if record else None
    print(f"preset: {shown or 'none loaded (BLASPROF_PRESET is not set)'}")
    for lib in libraries:
        said = "" if lib.get("reported") is None else f" (it reports {lib['reported']})"
        if lib.get("ok") is None:
            line = f"  {lib.get('label') or lib.get('path')}: {lib.get('error')}"
        elif lib.get("error"):
            line = f"  {lib.get('label')}: NOT checked: {lib['error']}"
        else:
            verdict = "ok" if lib["ok"] else f"NOT {lib['expected']}"
            line = f"  {lib['label']}: {lib['threads_ran']} thread(s) ran{said}  {verdict}"
        print(safe(line, markup=False))
    print(
        "the preset took effect"
        if ok
        else f"the preset did NOT take effect: {safe(why, markup=False)}"
    )


def print_pending(docs: Sequence[dict[str, Any]]) -> None:
    """Calibrations whose batch jobs outlive the command: their jobs and what to run next."""
    ids = " ".join(str(doc["calibration_id"]) for doc in docs)
    for doc in docs:
        jobs = safe(", ".join(str(j["external_id"]) for j in doc["jobs"]), markup=False)
        node_type = safe(doc["node_type"], markup=False)
        print(f"calibration {doc['calibration_id']} ({node_type}): Slurm jobs {jobs}")
    print(f"follow them:  blasprof status {ids}")
    print(f"store them:   blasprof collect {ids}   (safe to run again)")


# -- status and collect ---------------------------------------------------------------------


def print_status(docs: Sequence[dict[str, Any]]) -> None:
    """``blasprof status``: one line per job."""
    if not docs:
        print("no calibration has pending jobs")
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 2, 0, 0))
    for col in ("calibration", "node type", "job", "state", "host", "stored", "points", "reason"):
        table.add_column(col, no_wrap=col != "reason")  # a long reason must not hide the rest
    for doc in docs:
        for j in doc["jobs"]:
            table.add_row(
                f"{doc['calibration_id']} ({safe(doc['status'])})",
                safe(doc["node_type"]),
                safe(j["external_id"]),
                safe(j["state"]),
                safe(j["hostname"] or "-"),
                "yes" if j["result_stored"] else "no",
                "" if j["points_so_far"] is None else str(j["points_so_far"]),
                safe(j["reason"] or ""),
            )
    console().print(table)


def print_collected(docs: Sequence[dict[str, Any]]) -> None:
    """``blasprof collect``: what was stored now, per calibration, and what still runs."""
    import os

    if not docs:
        print("nothing to collect: no calibration has pending jobs")
        return
    for d in docs:
        print(
            f"calibration {d['calibration_id']} ({safe(d['node_type'], markup=False)}): "
            f"stored {d['stored_now']} "
            f"result(s) now, {d['still_running']} job(s) still running"
            + (f", {d['not_collectable']} not collectable" if d["not_collectable"] else "")
            + f"; status {safe(d['status'], markup=False)}"
        )
        if d["preset_files"]:
            where = safe(os.path.dirname(d["preset_files"][0]), markup=False)
            print(f"  presets written to {where}")
    if any(d["still_running"] for d in docs):
        print("run `blasprof collect` again later for the jobs still running")
