"""Runs: a point measured again in fresh worker processes, and its runs combined.

A machine's speed at a thread count can change between processes (where its vCPUs land,
which state the host is in) far more than within one, so a point measured in one process
samples one state. After the sweep's first pass, each (size, dtype) is measured again in
``runs - 1`` fresh worker processes, each started with the thread variables for the largest
count it times and with fresh operands, timing every count the search measured in
interleaved rounds (``time_points``, whose GEMM is the seam a library other than numpy's
plugs into). The passes go round-robin over the (size, dtype) groups, so that the runs of
one point are separated in time by the others' work.

A worker has a time limit drawn from its first pass; one that overruns, crashes or
answers nonsense is a failed run with its reason, and the point keeps the runs it has.

Run as ``python -m profiler.measure.runs REQUEST`` (a JSON object) it is that worker.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from profiler.results import NUMPY_BLAS, Measurement, Run, gemm_flops
from profiler.settings import TimingSettings

if TYPE_CHECKING:
    from profiler.blas.run import Library

__all__ = [
    "combine",
    "first_pass_timeout",
    "latest_reports",
    "measure_in_worker",
    "remeasure",
    "worker_timeout",
]

#: the least time a worker is given: an interpreter start, numpy's import, the operands
_START_S = 30.0


def as_run(m: Measurement) -> Run:
    """A single-process point as one run."""
    return Run(m.median_s, m.samples, m.loops, m.threads_verified)


def combine(points: Sequence[Measurement]) -> Measurement:
    """One point from the runs of ``points`` (one (size, dtype, threads, workers) measured
    in several processes): the mean of the runs' median times, all samples, every run."""
    if not points:
        raise ValueError("no runs to combine")
    runs = tuple(r for p in points for r in (p.runs or (as_run(p),)))
    first = points[0]
    mean = statistics.fmean(r.median_s for r in runs)
    samples = tuple(s for r in runs for s in r.samples)
    centre = statistics.fmean(samples) if samples else 0.0
    return replace(
        first,
        median_s=mean,
        min_s=min(samples, default=mean),
        cv=statistics.pstdev(samples) / centre if centre > 0 else 0.0,
        samples=samples,
        gflops=gemm_flops(first.n) * first.workers / mean / 1e9,
        threads_verified=all(r.threads_verified for r in runs),
        runs=runs if len(runs) > 1 else (),
    )


def latest_reports(reports: Sequence[Measurement]) -> list[Measurement]:
    """The points of a stream of reports (a checkpoint, a progress log): a sweep point is
    reported again with its runs so far, and its last report replaces the earlier ones in
    the place of its first; a layout point is always its own."""
    points: list[Measurement] = []
    at: dict[tuple[int, str, int, str, str], int] = {}
    for m in reports:
        key = (m.n, m.dtype, m.threads, m.phase, m.blas)
        if m.workers == 1 and key in at:
            points[at[key]] = m
            continue
        if m.workers == 1:
            at[key] = len(points)
        points.append(m)
    return points


def worker_timeout(points: Sequence[Measurement], timing: TimingSettings) -> float:
    """Seconds a worker re-measuring ``points`` may take: four times what their first
    pass's loops need for the samples and the loop calibration, plus a start."""
    per_round = sum(m.median_s * m.loops for m in points)
    return _START_S + 4.0 * per_round * (timing.samples + timing.warmup + 3)


def first_pass_timeout(n: int, counts: Sequence[int], timing: TimingSettings) -> float:
    """Seconds a worker measuring ``counts`` for the first time may take: four times what
    their samples and loop calibration need, each GEMM taken at 1 GFLOP/s at least (the
    reference BLAS runs about 2): a slower library, or one that hangs, is killed."""
    per_count = timing.min_time * (timing.samples + timing.warmup + 3)
    per_count += gemm_flops(n) / 1e9 * (timing.warmup + 4)
    return _START_S + 4.0 * per_count * len(counts)


def measure_in_worker(
    n: int,
    dtype: str,
    counts: Sequence[int],
    timing: TimingSettings,
    *,
    timeout: float,
    phase: str,
    library: Library | None = None,
) -> list[Measurement] | str:
    """Time ``counts`` in a fresh process started with the thread variables for the
    largest, through ``library`` (numpy's matmul when None): one point per count, or the
    reason there is none."""
    from profiler.jobstart.budget import thread_environment

    label = library.label if library is not None else NUMPY_BLAS
    request: dict[str, Any] = {"n": n, "dtype": dtype, "counts": list(counts),
                               "timing": vars(timing), "phase": phase}  # fmt: skip
    if library is not None:
        request["library"] = {"label": label, "member": library.member, "path": library.path}
    where = f"n={n} {dtype}" if library is None else f"{label} n={n} {dtype}"
    env = {**os.environ, **thread_environment(max(counts))}
    command = [sys.executable, "-m", "profiler.measure.runs", json.dumps(request)]
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, errors="replace", timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return f"{where}: a run gave no answer within {timeout:.0f} s (killed)"
    except OSError as exc:
        return f"{where}: a run could not start: {exc.strerror or exc}"
    lines = done.stdout.strip().splitlines()
    try:
        points = [Measurement.from_dict(d) for d in json.loads(lines[-1])]
    except (IndexError, ValueError, TypeError, KeyError, AttributeError):
        from profiler.text import clean_text

        last = clean_text((done.stderr.strip().splitlines() or ["no output"])[-1], 300)
        return f"{where}: a run exited {done.returncode} without figures: {last}"
    if [m.threads for m in points] != list(counts) or any(
        (m.n, m.dtype, m.blas) != (n, dtype, label) or not m.median_s > 0 for m in points
    ):
        return f"{where}: a run answered for other points than it was asked"
    return points


def remeasure(
    points: Sequence[Measurement],
    runs: int,
    timing: TimingSettings,
    *,
    on_point: Callable[[Measurement], None] | None = None,
    libraries: Mapping[str, Library] | None = None,
) -> tuple[list[Measurement], list[str]]:
    """``points`` (the sweep's first pass, one process) with ``runs - 1`` more runs each,
    and the reasons of the runs that failed. Each pass measures every (library, size,
    dtype) group once, in order, so a point's runs are spread over the whole
    re-measurement. ``libraries`` gives each label other than numpy's its library."""
    groups: dict[tuple[str, str, int], list[Measurement]] = {}
    for m in points:
        groups.setdefault((m.blas, m.dtype, m.n), []).append(m)
    taken: dict[tuple[str, str, int], list[list[Measurement]]] = {
        key: [[m] for m in group] for key, group in groups.items()
    }
    failures: list[str] = []
    for _pass in range(1, runs):
        for (blas, dtype, n), group in groups.items():
            counts = [m.threads for m in group]
            answer = measure_in_worker(
                n, dtype, counts, timing, timeout=worker_timeout(group, timing),
                phase=group[0].phase, library=(libraries or {}).get(blas),
            )  # fmt: skip
            if isinstance(answer, str):
                failures.append(answer)
                continue
            for so_far, point in zip(taken[(blas, dtype, n)], answer, strict=True):
                so_far.append(point)
                if on_point is not None:
                    on_point(combine(so_far))
    combined = [combine(so_far) for key in groups for so_far in taken[key]]
    return combined, failures


def main(argv: Sequence[str]) -> int:
    """The worker: time the requested counts with fresh operands, print the points."""
    from profiler.measure.timing import ThreadLimiter, Workspace, time_points

    request: dict[str, Any] = json.loads(argv[0])
    timing = TimingSettings(**request["timing"])
    # Fresh operands in every run: the address and the values are part of what varies.
    seed = int.from_bytes(os.urandom(4), "little")
    workspace = Workspace(int(request["n"]), str(request["dtype"]), seed=seed)
    counts = [int(t) for t in request["counts"]]
    phase = str(request["phase"])
    library = request.get("library")
    if library is None:
        points = time_points(workspace, counts, ThreadLimiter(), timing, phase=phase)
    else:
        from pathlib import Path

        from profiler.blas import member_named
        from profiler.blas.worker import thread_cpu
        from profiler.measure.library import LibraryLimiter, check_result, gemm_of, settle

        others = set(thread_cpu()) - {os.getpid()}  # numpy's, started by its import
        member = member_named(str(library["member"]))(Path(str(library["path"])))
        member.load()
        settle()
        points = time_points(
            workspace, counts, LibraryLimiter(member, others), timing, phase=phase,
            gemm=gemm_of(member), blas=str(library["label"]),
        )  # fmt: skip
        wrong = check_result(workspace)
        if wrong:
            sys.stderr.write(f"{library['label']}: {wrong}\n")
            return 1
    sys.stdout.write(json.dumps([m.to_dict() for m in points]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
