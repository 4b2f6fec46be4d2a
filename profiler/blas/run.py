"""The BLAS family at work: every library on this node found and described, and one GEMM
timed through one of them, each in a fresh worker process under a time limit.

A worker that does not answer in time (Debian's OpenMP OpenBLAS spins for ever under
``OMP_THREAD_LIMIT=1``), crashes, or prints something else than its one JSON line gives a
failed record with its reason; it never stops the caller.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from profiler.blas import member_for
from profiler.blas.search import candidates, libblas_so_3
from profiler.text import clean_text

__all__ = ["WORKER", "GemmPoint", "Library", "find", "select", "time_gemm"]

#: the command that starts a worker; the request is appended
WORKER: tuple[str, ...] = (sys.executable, "-m", "profiler.blas.worker")


@dataclass(frozen=True)
class Library:
    """One BLAS library found on this node, as its worker described it."""

    label: str
    member: str
    title: str
    path: str
    version: str | None = None
    threading: str | None = None
    architecture: str | None = None
    variables: tuple[str, ...] = ()
    gemm_symbol: str | None = None
    threads_api: str | None = None
    ilp64: bool = False
    tested: bool = True
    #: whether a program linked against the generic ``libblas.so.3`` runs this library
    is_libblas_so_3: bool = False
    #: why it could not be described (it is then listed, not used)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data as JSON gives it back (lists, not tuples), so that a stored record
        read again equals the one stored."""
        return {**asdict(self), "variables": list(self.variables)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Library:
        names = set(cls.__dataclass_fields__)
        values = {k: v for k, v in d.items() if k in names}
        values["variables"] = tuple(values.get("variables") or ())
        return cls(**values)


@dataclass(frozen=True)
class GemmPoint:
    """One GEMM timed in a fresh process: its speed and the threads that really ran
    (measured from CPU time, not the library's report), or why there is no figure."""

    library: str
    n: int
    dtype: str
    threads: int | None
    env: dict[str, str] = field(default_factory=dict)
    gflops: float | None = None
    #: threads that each did a share of the work (per-thread CPU clocks)
    threads_ran: int | None = None
    #: process CPU time over wall time: lower than threads_ran when the node is busy
    cpu_per_wall: float | None = None
    relative_error: float | None = None
    set_by_api: bool = False
    reps: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _run_worker(
    request: dict[str, Any], env: Mapping[str, str] | None, timeout: float,
    worker: Sequence[str],
) -> tuple[dict[str, Any] | None, str | None]:  # fmt: skip
    """The worker's JSON answer, or None and the reason there is none."""
    try:
        proc = subprocess.run(
            [*worker, json.dumps(request)], capture_output=True, text=True, errors="replace",
            env=dict(env) if env is not None else None, timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None, f"no answer within {timeout:g} s (killed)"
    except OSError as exc:
        return None, f"could not start the worker: {exc.strerror or exc}"
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        try:
            answer = json.loads(lines[-1])
        except ValueError:
            answer = None
        if isinstance(answer, dict):
            return answer, None
    last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return None, f"worker exited {proc.returncode}: {clean_text(last, 300)}"


def _describe(path: Path, libblas: Path | None, timeout: float, worker: Sequence[str]) -> Library:
    kind = member_for(path)
    assert kind is not None
    member = kind(path)
    answer, error = _run_worker(
        {"action": "describe", "member": kind.name, "path": str(path)}, None, timeout, worker
    )
    base = {
        "label": member.label(),
        "member": kind.name,
        "title": kind.title,
        "path": str(path),
        "tested": kind.tested,
        "is_libblas_so_3": libblas is not None and _provides(path, libblas),
    }
    if answer is None:
        return Library(**base, error=error)
    return Library.from_dict({**answer, **base})


def _provides(path: Path, libblas: Path) -> bool:
    """Whether ``libblas`` (the resolved libblas.so.3) is ``path`` or its distribution's
    BLAS-only face beside it (Debian's openblas-pthread/libblas.so.3 wraps libopenblas)."""
    return libblas == path or (libblas.parent == path.parent and member_for(libblas) is None)


def find(timeout: float = 20.0, worker: Sequence[str] = WORKER) -> tuple[Library, ...]:
    """Every BLAS library on this node, each described by its own worker process."""
    from profiler.blas import MEMBERS

    locations = [p for kind in MEMBERS.values() for p in kind.locations()]
    paths = [p for p in candidates(locations) if member_for(p) is not None]
    resolved = libblas_so_3()
    libblas = resolved[1] if resolved else None
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        found = pool.map(lambda p: _describe(p, libblas, timeout, worker), paths)
        return tuple(sorted(found, key=lambda lib: (list(MEMBERS).index(lib.member), lib.label)))


def select(libraries: Sequence[Library], spec: str) -> Library:
    """The library ``spec`` names (what ``calibrate --blas`` will take): a label
    (``openblas-openmp``), a member's name (its first library: ``openblas``), or the path
    of a library file. A name that matches none, or an unusable library, is a UsageError
    that says what is accepted."""
    from profiler.errors import UsageError

    by_path = Path(spec).resolve() if "/" in spec else None
    for lib in libraries:
        if spec in (lib.label, lib.member) or (by_path and Path(lib.path) == by_path):
            if lib.error:
                raise UsageError(f"the BLAS library {spec!r} cannot be used: {lib.error}")
            return lib
    labels = ", ".join(lib.label for lib in libraries if lib.error is None) or "none"
    raise UsageError(
        f"no BLAS library {clean_text(spec, 200)!r} on this node; found: {labels} "
        "(or give the path of one of their files)"
    )


def time_gemm(
    library: Library,
    n: int,
    dtype: str = "float64",
    *,
    threads: int | None = None,
    env: Mapping[str, str] | None = None,
    min_time: float = 0.1,
    timeout: float = 60.0,
    worker: Sequence[str] = WORKER,
) -> GemmPoint:
    """Time ``n`` x ``n`` GEMMs through ``library`` in a fresh process started with ``env``
    (this process's environment plus it): GFLOP/s, and the threads that ran. ``threads``
    sets them through the library's own function after it loads; None leaves them to the
    variables in ``env``."""
    if dtype not in ("float32", "float64") or n < 1 or (threads is not None and threads < 1):
        raise ValueError(f"a GEMM point needs float32 or float64, n >= 1, threads >= 1: "
                         f"got {dtype!r}, n={n}, threads={threads}")  # fmt: skip
    extra = dict(env or {})
    request = {
        "action": "gemm", "member": library.member, "path": library.path, "n": n,
        "dtype": dtype, "threads": threads, "min_time": min_time,
    }  # fmt: skip
    answer, error = _run_worker(request, {**os.environ, **extra}, timeout, worker)
    point = GemmPoint(library=library.label, n=n, dtype=dtype, threads=threads, env=extra)
    if answer is None:
        return replace(point, error=error)
    figures = ("gflops", "threads_ran", "cpu_per_wall", "relative_error", "set_by_api", "reps")
    return replace(point, **{k: answer[k] for k in figures if k in answer})
