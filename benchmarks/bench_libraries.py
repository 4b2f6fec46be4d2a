"""Every BLAS library on this machine, measured through the calibration's own run code.

First, per library (``profiler.blas.run.find``: those that can run a GEMM), GFLOP/s of
float64 GEMMs at n = 512 and 2048 on 1 and 2 threads, each (library, n) in one worker
process of ``profiler.measure.runs`` timing both counts in interleaved rounds, exactly as
``calibrate --blas`` does; numpy's OpenBLAS through its matmul in the same run. A library
under 5 GFLOP/s at n=512 (the reference BLAS) is not timed at 2048 (one GEMM takes
seconds).

Second, the cost of the ctypes path: numpy's own OpenBLAS timed through its CBLAS symbol
(``Member.gemm``, the path every other library takes) against numpy's matmul on the same
library (a C-speed loop), at n = 256 on 1 thread, in alternating worker processes. The
figure is the ratio of the median seconds per GEMM (ctypes / matmul); the goal is
1.00 +/- 0.03.

Not measured here: the preset's value per library (a job linked to each library, two
processes per node, under the preset against its defaults and the best setting).

Run: ``python benchmarks/bench_libraries.py [--quick]``; writes ``results/libraries.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from _common import Goal, environment, median, print_table, script

NAME = "libraries"
SIZES = (512, 2048)
GOAL_TOLERANCE = 0.03
_SLOW_GFLOPS = 5.0


def _timing(quick: bool) -> Any:
    from profiler.settings import TimingSettings

    return TimingSettings(min_time=0.1 if quick else 0.2, samples=5 if quick else 7)


def _points(n: int, counts: Sequence[int], library: Any, timing: Any) -> dict[int, float] | str:
    from profiler.measure.runs import first_pass_timeout, measure_in_worker

    answer = measure_in_worker(
        n, "float64", counts, timing, phase="bench", library=library,
        timeout=first_pass_timeout(n, counts, timing),
    )  # fmt: skip
    if isinstance(answer, str):
        return answer
    return {m.threads: m.gflops for m in answer if m.threads_verified}


def measure_libraries(quick: bool) -> list[dict[str, Any]]:
    from profiler.blas.run import find

    timing = _timing(quick)
    found = [lib for lib in find() if lib.error is None and lib.gemm_symbol]
    rows = []
    for lib in found:
        library = None if lib.label == "numpy" else lib
        row: dict[str, Any] = {"label": lib.label, "threading": lib.threading, "gflops": {}}
        for n in SIZES:
            small = row["gflops"].get("512", {})
            if n > SIZES[0] and small and max(small.values()) < _SLOW_GFLOPS:
                row["gflops"][str(n)] = "skipped: too slow"
                continue
            got = _points(n, [1, 2], library, timing)
            row["gflops"][str(n)] = (
                got if isinstance(got, str) else {str(t): g for t, g in got.items()}
            )
        rows.append(row)
    return rows


def measure_ctypes_cost(rounds: int, quick: bool) -> dict[str, Any]:
    from profiler.blas.run import find
    from profiler.measure.runs import measure_in_worker

    numpy_lib = next(lib for lib in find() if lib.label == "numpy")
    timing = _timing(quick)
    matmul, ctypes_path = [], []
    for _ in range(rounds):
        for library, into in ((None, matmul), (numpy_lib, ctypes_path)):
            answer = measure_in_worker(256, "float64", [1], timing, phase="bench",
                                       library=library, timeout=120)  # fmt: skip
            if isinstance(answer, str):
                raise RuntimeError(answer)
            into.append(answer[0].median_s)
    ratios = [c / m for c, m in zip(ctypes_path, matmul, strict=True)]
    return {
        "n": 256,
        "rounds": rounds,
        "matmul_median_s": median(matmul),
        "ctypes_median_s": median(ctypes_path),
        "ratio": median(ctypes_path) / median(matmul),
        "per_round_min": min(ratios),
        "per_round_max": max(ratios),
    }


def run(quick: bool = False) -> dict[str, Any]:
    libraries = measure_libraries(quick)
    cost = measure_ctypes_cost(4 if quick else 10, quick)
    goals = [
        Goal(
            name="ctypes path / numpy's matmul, same OpenBLAS, n=256 1 thread",
            measured=f"{cost['ratio']:.3f}",
            goal=f"1.00 +/- {GOAL_TOLERANCE:.2f}",
            met=abs(cost["ratio"] - 1.0) <= GOAL_TOLERANCE,
            note=f"per-round {cost['per_round_min']:.3f}..{cost['per_round_max']:.3f}",
        )
    ]
    return {
        "name": NAME,
        "environment": environment(),
        "libraries": libraries,
        "ctypes_cost": cost,
        "goals": goals,
    }


def _cell(value: Any, threads: str) -> str:
    if isinstance(value, str):
        return value if threads == "1" else ""
    figure = value.get(threads)
    return f"{figure:.1f}" if figure else "unverified"


def report(payload: dict[str, Any]) -> None:
    rows = [
        (lib["label"], lib["threading"] or "-",
         *(_cell(lib["gflops"][str(n)], t) for n in SIZES for t in ("1", "2")))
        for lib in payload["libraries"]
    ]  # fmt: skip
    print_table(
        "float64 GEMM GFLOP/s per library (worker runs, interleaved rounds)",
        ("library", "threads by", "512 x1", "512 x2", "2048 x1", "2048 x2"),
        rows,
    )
    c = payload["ctypes_cost"]
    print_table(
        "ctypes path against numpy's matmul on the same OpenBLAS (n=256, 1 thread)",
        ("rounds", "matmul us/op", "ctypes us/op", "ratio", "per-round"),
        [(c["rounds"], f"{c['matmul_median_s'] * 1e6:.2f}", f"{c['ctypes_median_s'] * 1e6:.2f}",
          f"{c['ratio']:.3f}", f"{c['per_round_min']:.3f}..{c['per_round_max']:.3f}")],
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    return script(NAME, __doc__, run, report, argv)


if __name__ == "__main__":
    main()
