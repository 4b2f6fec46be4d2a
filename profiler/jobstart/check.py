"""What ``blasprof check`` measures: whether every BLAS library a job's processes load runs
the thread count its preset applied, counted from the threads that really ran a GEMM.

``BLASPROF_PRESET`` says what was applied: ``type:class:threads`` (the default library's
count), then ``:label=threads`` for each library of a preset that has several. The
libraries checked are those a fresh ``python`` loads with numpy (threadpoolctl names their
files) and every library the record names that this node has. Each runs a GEMM in a fresh
worker process with the job's environment (``profiler.blas.run.time_gemm``), whose
per-thread CPU clocks say how many threads did the work: a library's own report is shown
beside it, never trusted (Debian's OpenMP OpenBLAS reports 2 while it runs 1).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from profiler.errors import UsageError
from profiler.jobstart.budget import THREAD_VARIABLES, WATCHED_VARIABLES
from profiler.jobstart.cpus import parse_count

__all__ = ["CHECK_N", "applied", "took_effect"]

#: the GEMM order a check runs: above OpenBLAS's 64^3 threshold for threading, a few
#: milliseconds a GEMM on one core
CHECK_N = 256


def applied(record: str) -> tuple[int | None, dict[str, int]]:
    """(the default library's parse_count, label -> count of each library) from a
    ``BLASPROF_PRESET`` value; (None, {}) when it records no count."""
    from profiler.jobstart.forms.checked import LABEL_PATTERN

    fields = (record + "::").split(":")
    libraries = {}
    for item in fields[3:]:
        label, sep, value = item.partition("=")
        threads = parse_count(value)
        if sep and threads and LABEL_PATTERN.fullmatch(label):
            libraries[label] = threads
    return parse_count(fields[2]), libraries


def _loaded_by(python: str, environ: Mapping[str, str]) -> list[dict[str, Any]]:
    """threadpoolctl's record of each BLAS library a fresh ``python`` loads with numpy."""
    code = (
        "import json, numpy\nfrom threadpoolctl import threadpool_info\n"
        "print(json.dumps(threadpool_info()))"
    )
    tail = "it did not answer within 120 s"
    try:
        done = subprocess.run(
            [python, "-c", code], env=dict(environ), capture_output=True, text=True, timeout=120
        )
        tail = " ".join(done.stderr.split()[-12:]) or f"no report (exit status {done.returncode})"
        libraries = json.loads(done.stdout.strip().splitlines()[-1])
        if not isinstance(libraries, list):
            raise ValueError(libraries)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as e:
        if isinstance(e, OSError):
            tail = f"cannot run it: {e.strerror or e}"
        raise UsageError(
            f"{python} could not report its BLAS (it needs numpy and threadpoolctl): {tail}"
        ) from None
    return [lib for lib in libraries if isinstance(lib, dict) and lib.get("user_api") == "blas"]


def took_effect(
    environ: Mapping[str, str], python: str = sys.executable, n: int = CHECK_N
) -> tuple[bool, list[dict[str, Any]], str]:
    """(took effect, one record per BLAS library checked, why not).

    Each record: ``label``, ``path``, ``expected`` (the count the preset applied to it),
    ``threads_ran`` (measured), ``reported`` (what the library says, where threadpoolctl
    sees it), ``ok`` and ``error``. The preset took effect when every library checked ran
    its count.
    """
    from profiler.blas import member_for
    from profiler.blas.run import Library, find, time_gemm

    loaded = _loaded_by(python, environ)  # a Python that cannot run is bad input, first
    default, by_label = applied(environ.get("BLASPROF_PRESET", ""))
    if default is None:
        return False, [], "no preset was loaded here (BLASPROF_PRESET is not set)"
    targets: dict[str, tuple[Library, Any]] = {}
    unknown = []
    for info in loaded:
        path = Path(str(info.get("filepath", ""))).resolve()
        kind = member_for(path)
        if kind is None:
            unknown.append(str(path))
            continue
        lib = Library(label=kind(path).label(), member=kind.name, title=kind.title, path=str(path))
        targets.setdefault(lib.label, (lib, info.get("num_threads")))
    if set(by_label) - set(targets):
        for lib in find():
            if lib.label in by_label and lib.label not in targets and lib.error is None:
                targets[lib.label] = (lib, None)
    records = []
    for label, (lib, reported) in targets.items():
        expected = by_label.get(label, default)
        point = time_gemm(lib, n, env=dict(environ), min_time=0.05, timeout=60.0)
        records.append(
            {
                "user_api": "blas",
                "label": label,
                "path": lib.path,
                "expected": expected,
                "threads_ran": point.threads_ran,
                "reported": reported,
                "ok": point.ok and point.threads_ran == expected,
                "error": point.error,
            }
        )
    if not records:
        return False, records, "numpy loaded no BLAS library blasprof knows"
    unchecked = [(None, path, "not a BLAS library blasprof knows") for path in unknown]
    unchecked += [(label, None, "not on this node") for label in by_label if label not in targets]
    for label, path, why in unchecked:  # listed, so that nobody takes them as checked
        records.append({"user_api": "blas", "label": label, "path": path, "expected": None,
                        "threads_ran": None, "reported": None, "ok": None,
                        "error": f"{why}: not checked"})  # fmt: skip
    wrong = [r for r in records if r["ok"] is False]
    if not wrong:
        return True, records, ""
    why = ", ".join(
        f"{r['label']} runs {r['threads_ran']}, not {r['expected']}"
        if r["error"] is None
        else f"{r['label']} could not run a GEMM: {r['error']}"
        for r in wrong
    )
    differ = [
        f"{name}={ascii(environ[name])[1:-1]}"
        for name in THREAD_VARIABLES + WATCHED_VARIABLES
        if environ.get(name) and environ[name] not in {str(r["expected"]) for r in records}
    ]
    if differ:
        why += f" (set here: {' '.join(differ)})"
    return False, records, why
