"""Achieved fraction of theoretical peak for the largest default size.

Times the ``standard`` profile's largest size (float64) on every CPU this process may use with
``profiler.measure.timing.time_gemm`` and the profile's timing settings, and divides the GFLOP/s
by the theoretical peak that ``profiler.measure.probe.probe()`` reports (``peak_gflops_f64``).
The peak is cores x clock x FLOPs/cycle; ``peak_note`` says which clock it used. Where that
clock is the current or base clock and the cores boost above it, the fraction can exceed 100%:
it is reported as measured, not clipped. There is no pass/fail goal; large DGEMM usually
reaches 80-95% of peak (HPL 60-80%), which is shown as the reference band.

Run: ``python benchmarks/bench_peak.py [--quick]``; writes ``results/peak.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from _common import Goal, environment, print_table, script

NAME = "peak"
PROFILE = "standard"
DTYPE = "float64"
EXPECTED = (0.80, 0.95)


def run(quick: bool = False) -> dict[str, Any]:
    from dataclasses import replace

    from profiler.measure.probe import probe
    from profiler.measure.timing import ThreadLimiter, Workspace, time_gemm
    from profiler.settings import PROFILES

    node = probe()
    settings = PROFILES[PROFILE].timing
    if quick:
        settings = replace(settings, samples=3)
    n = max(PROFILES[PROFILE].sizes)
    threads = node.usable_cpus
    point = time_gemm(Workspace(n, DTYPE), threads, ThreadLimiter(), settings)
    peak = node.peak_gflops_f64
    fraction = point.gflops / peak if peak else None
    goals = [
        Goal(
            name=f"fraction of peak n={n} {DTYPE} {threads}t",
            measured=f"{fraction:.1%}" if fraction is not None else "peak unknown",
            goal=f"{EXPECTED[0]:.0%}-{EXPECTED[1]:.0%} (reference)",
            met=None,
            note=f"{point.gflops:.1f} of {peak} GFLOP/s" if peak else node.peak_note,
        )
    ]
    return {
        "name": NAME,
        "environment": environment(),
        "profile": PROFILE,
        "n": n,
        "dtype": DTYPE,
        "threads": threads,
        "threads_verified": point.threads_verified,
        "timing": {"min_time": settings.min_time, "samples": settings.samples},
        "loops": point.loops,
        "median_s": point.median_s,
        "cv": point.cv,
        "gflops": point.gflops,
        "peak_gflops_f64": peak,
        "peak_note": node.peak_note,
        "cpu_model": node.cpu_model,
        "microarchitecture": node.microarchitecture,
        "fraction_of_peak": fraction,
        "goals": goals,
    }


def report(payload: dict[str, Any]) -> None:
    frac = payload["fraction_of_peak"]
    print_table(
        f"Fraction of peak ({payload['cpu_model']}, {payload['microarchitecture']})",
        ("n", "dtype", "threads", "median s", "cv", "GFLOP/s", "peak GFLOP/s", "fraction"),
        [
            (
                payload["n"],
                payload["dtype"],
                payload["threads"],
                f"{payload['median_s']:.3f}",
                f"{payload['cv']:.1%}",
                f"{payload['gflops']:.1f}",
                payload["peak_gflops_f64"] or "unknown",
                f"{frac:.1%}" if frac is not None else "n/a",
            )
        ],
    )
    print(f"    peak: {payload['peak_note']}")
    if frac is not None and frac > 1:
        print(
            "    above 100%: the cores run faster than the clock the peak used (turbo/boost "
            "above the reported clock)."
        )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    return script(NAME, __doc__, run, report, argv)


if __name__ == "__main__":
    main()
