"""Is the preset what jobs will get? Time one point in a fresh process started with it.

``verify_preset`` starts ``python -m profiler.measure.verify N DTYPE MIN_TIME SAMPLES`` with the
preset's thread variables, the way a job started from a preset runs, and compares its
figure with the sweep's. That process (``main``) limits nothing itself: its thread counts
come from the environment, which is what is being verified. It prints one JSON object.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from profiler.jobstart.budget import thread_environment

if TYPE_CHECKING:
    from profiler.choice.preset import Preset
    from profiler.results import Measurement, Verification
    from profiler.settings import SweepSettings

__all__ = ["VERIFY_MAX_RATIO", "VERIFY_MIN_RATIO", "verify_preset"]

#: a fresh process started from the preset must reach this fraction of the sweep's figure
VERIFY_MIN_RATIO = 0.9
#: and must not exceed it by this much: then the sweep itself was bent, and is as suspect
VERIFY_MAX_RATIO = 1.25


def verify_preset(
    preset: Preset, measurements: Sequence[Measurement], settings: SweepSettings
) -> Verification:
    """Start a fresh Python with the preset's variables and time its default class's size.

    It passes when the fresh figure lands where the point's runs landed: from
    VERIFY_MIN_RATIO of the slowest run to VERIFY_MAX_RATIO of the fastest (with one run,
    of the sweep's figure). Far below, the preset does not give jobs what the sweep saw; far
    above, the sweep itself was disturbed. A shared machine is noisy: a figure outside the band is
    measured once more before the preset is called unverified.
    """
    from profiler.results import Verification

    size_class = preset.size_class(preset.default_class)
    dtype = size_class.reference_dtype
    threads = size_class.threads
    points = [
        m
        for m in measurements
        if (m.n, m.dtype, m.threads) == (size_class.measured_n, dtype, threads)
        and m.workers == 1  # a layout point's figure is W processes' together
    ]
    best = max(points, key=lambda m: m.gflops, default=None)
    sweep_gflops = best.gflops if best else 0.0
    # The runs' range, widened: a fresh process that lands in any state the runs saw is
    # what jobs meet, not a disturbed sweep.
    figures = best.run_gflops if best else (0.0,)
    low, high = min(figures) * VERIFY_MIN_RATIO, max(figures) * VERIFY_MAX_RATIO
    env = {**os.environ, **thread_environment(threads)}
    command = [
        sys.executable, "-m", "profiler.measure.verify", str(size_class.measured_n), dtype,
        str(max(settings.timing.min_time, 0.1)), str(max(3, settings.timing.samples)),
    ]  # fmt: skip
    fresh, observed, ratio, passed, note = 0.0, (), 0.0, False, ""
    for _attempt in range(2):
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
            data = json.loads(done.stdout.strip().splitlines()[-1])
        except (subprocess.SubprocessError, json.JSONDecodeError, IndexError, OSError) as exc:
            fresh, observed, ratio, passed = 0.0, (), 0.0, False
            note = f"the fresh process failed: {exc}"
            break
        fresh = float(data["gflops"])
        observed = tuple(int(t) for t in data["threads_observed"])
        ratio = fresh / sweep_gflops if sweep_gflops else 0.0
        if not observed or any(t != threads for t in observed):
            passed, note = False, f"the fresh process ran {observed} threads, not {threads}"
            break
        passed = sweep_gflops > 0 and low <= fresh <= high
        if passed:
            note = ""
            break
        note = (
            f"above {high:.1f} GFLOP/s, {VERIFY_MAX_RATIO:.0%} of the fastest run: the sweep "
            "itself was disturbed"
            if fresh > high
            else f"below {low:.1f} GFLOP/s, {VERIFY_MIN_RATIO:.0%} of the slowest run"
        )
    return Verification(
        n=size_class.measured_n,
        dtype=dtype,
        threads=threads,
        sweep_gflops=sweep_gflops,
        fresh_gflops=fresh,
        threads_observed=observed,
        ratio=ratio,
        passed=passed,
        note=note,
    )


def main(argv: list[str]) -> int:
    """Time one point with the thread counts the environment gives; print it as JSON."""
    from profiler.measure.timing import ThreadLimiter, Workspace, time_gemm
    from profiler.settings import TimingSettings

    n, dtype, min_time, samples = int(argv[0]), argv[1], float(argv[2]), int(argv[3])
    m = time_gemm(
        Workspace(n, dtype),
        None,
        ThreadLimiter(),
        TimingSettings(min_time=min_time, samples=samples),
    )
    print(json.dumps({"gflops": m.gflops, "threads_observed": list(m.threads_observed)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
