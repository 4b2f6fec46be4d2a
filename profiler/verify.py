"""Time one GEMM point in a fresh process, as a job started from a preset would run it.

Run as ``python -m profiler.verify N DTYPE MIN_TIME SAMPLES`` with the preset's environment;
prints one JSON object. Thread counts are not limited here: they come from the
environment, which is what is being verified.
"""

from __future__ import annotations

import json
import sys

from profiler.timing import ThreadLimiter, TimingSettings, Workspace, time_gemm


def main(argv: list[str]) -> int:
    n, dtype, min_time, samples = int(argv[0]), argv[1], float(argv[2]), int(argv[3])
    limiter = ThreadLimiter()
    m = time_gemm(
        Workspace(n, dtype), None, limiter, TimingSettings(min_time=min_time, samples=samples)
    )
    print(json.dumps({"gflops": m.gflops, "threads_observed": list(m.threads_observed)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
