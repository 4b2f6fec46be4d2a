"""Job layouts: measured here, and the layout search replayed on modelled many-core nodes.

(a) Here: for n = 128, 512 and 2048 float64, the aggregate GFLOP/s of one process of 2
threads (1x2), two pinned processes of 1 thread (2x1), and two processes left at the BLAS
default of 2 threads each (2x2, oversubscribed), measured with ``profiler.measure.layouts`` in
alternating rounds. Printed: the figures and the ratios (best layout)/(2x2).

(b) Replay: modelled aggregate throughput of W processes x T threads on 16 to 128 CPUs
(compute-bound, memory-bandwidth cap, NUMA domains, per-process synchronisation costs,
shared-cache thrashing), with 0, 1 and 3% noise. For every worker count W the search
(``profiler.measure.sweep.search_threads``, as ``calibrate --layouts`` runs it) picks T; the full
grid measures every T. Cost = points the search measured / grid points; quality = the
true aggregate at the chosen T / the best T's, per W. Goals (medians): cost <= 0.25,
quality >= 0.97.

Run: ``python benchmarks/bench_layouts.py [--quick]``; writes ``results/layouts.json``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from _common import Goal, environment, median, print_table, script

NAME = "layouts"
TOLERANCE = 0.03


# ----------------------------------------------------------------------------- (a) here


def measure_here(rounds: int, window_s: float) -> list[dict[str, Any]]:
    from profiler.measure.layouts import measure_layout

    cpus = sorted(os.sched_getaffinity(0))[:2]
    if len(cpus) < 2:
        return []
    layouts = {"1x2": (1, 2, True), "2x1": (2, 1, True), "2x2": (2, 2, False)}
    rows = []
    for n in (128, 512, 2048):
        figures: dict[str, list[float]] = {name: [] for name in layouts}
        for i in range(rounds):
            order = list(layouts) if i % 2 == 0 else list(reversed(layouts))
            for name in order:
                workers, threads, pinned = layouts[name]
                m = measure_layout(
                    n, "float64", workers, threads, cpus, rounds=3, window_s=window_s,
                    pinned=pinned,
                )  # fmt: skip
                figures[name].append(m.gflops)
        med = {name: median(values) for name, values in figures.items()}
        best = max(("1x2", "2x1"), key=med.__getitem__)
        rows.append(
            {"n": n, "gflops": med, "best": best, "vs_oversubscribed": med[best] / med["2x2"]}
        )
    return rows


# ----------------------------------------------------------------------------- (b) replay


@dataclass(frozen=True)
class LayoutModel:
    """Noise-free aggregate GFLOP/s of W processes of T threads on ``n`` CPUs."""

    name: str
    shape: Callable[[int, int, int], float]  # (workers, threads, cpus) -> relative throughput


def _amdahl(t: float, p: float) -> float:
    return 1.0 / ((1.0 - p) + p / t)


MODELS: tuple[LayoutModel, ...] = (
    LayoutModel("compute-bound", lambda w, t, n: w * t * _amdahl(t, 0.995) / t),
    LayoutModel("bandwidth cap at 40%", lambda w, t, n: min(w * t, 0.4 * n) * _amdahl(t, 0.99) / t),
    LayoutModel(
        "NUMA 4 domains",
        lambda w, t, n: w * t * (0.7 if t > n // 4 else 1.0) * _amdahl(t, 0.998) / t,
    ),
    LayoutModel("sync cost per process", lambda w, t, n: w * t / (1 + 0.04 * (t - 1))),
    LayoutModel(
        "shared-cache thrash",
        lambda w, t, n: w * t * (1 - 0.35 * (w * t / n) ** 2) / (1 + 0.01 * t),
    ),
)


def _worker_counts(n: int) -> list[int]:
    from profiler.choice.preset import worker_counts

    return worker_counts(n)


def replay_one(model: LayoutModel, n: int, cv: float, seed: int) -> dict[str, Any]:
    """Per W: the search's T against the full grid's, on one modelled node."""
    import numpy as np

    from profiler.measure.sweep import one_at_a_time, search_threads

    rng = np.random.default_rng(seed)
    sigma = math.sqrt(math.log1p(cv**2))
    points = grid = 0
    qualities = []
    for w in _worker_counts(n):
        cands = list(range(1, n // w + 1))
        truth = {t: model.shape(w, t, n) for t in cands}
        calls = []

        def measured(t: int, w: int = w, calls: list[int] = calls) -> float:
            calls.append(t)
            return model.shape(w, t, n) * math.exp(rng.normal(0.0, sigma))

        chosen = search_threads(
            cands, one_at_a_time(measured), tolerance=TOLERANCE, from_the_top=True, resolution=0.25
        ).chosen
        points += len(calls)
        grid += len(cands)
        qualities.append(truth[chosen] / max(truth.values()))
    return {"points": points, "grid": grid, "cost": points / grid, "qualities": qualities}


def replay(seeds: int) -> list[dict[str, Any]]:
    rows = []
    for n in (16, 32, 64, 128):
        costs, qualities = [], []
        for model in MODELS:
            for cv in (0.0, 0.01, 0.03):
                for seed in range(seeds if cv else 1):
                    r = replay_one(model, n, cv, seed)
                    costs.append(r["cost"])
                    qualities.extend(r["qualities"])
        within = sum(q >= 1 - TOLERANCE for q in qualities) / len(qualities)
        rows.append(
            {
                "cpus": n,
                "cost_median": median(costs),
                "cost_worst": max(costs),
                "quality_median": median(qualities),
                "quality_worst": min(qualities),
                "within_tolerance": within,
            }
        )
    return rows


def run(quick: bool = False) -> dict[str, Any]:
    here = measure_here(rounds=2 if quick else 4, window_s=0.2)
    rows = replay(seeds=3 if quick else 8)
    goals = [
        Goal(
            name=f"layouts here n={h['n']}: best / 2x2 oversubscribed",
            measured=f"{h['vs_oversubscribed']:.2f}",
            goal="(reference)",
            met=None,
            note=" ".join(f"{k} {v:.1f}" for k, v in h["gflops"].items()) + " GFLOP/s",
        )
        for h in here
    ] + [
        Goal(
            name=f"layout search N={r['cpus']} cost / quality",
            measured=f"{r['cost_median']:.3f} / {r['quality_median']:.3f}",
            goal="<= 0.25 / >= 0.97",
            met=r["cost_median"] <= 0.25 and r["quality_median"] >= 0.97,
            note=(
                f"medians; worst {r['cost_worst']:.3f} / {r['quality_worst']:.3f}, "
                f"{r['within_tolerance']:.0%} of worker counts within tol"
            ),
        )
        for r in rows
    ]
    return {
        "name": NAME,
        "environment": environment(),
        "here": here,
        "replay": rows,
        "goals": goals,
    }


def report(payload: dict[str, Any]) -> None:
    if payload["here"]:
        print_table(
            "Layouts here (aggregate GFLOP/s, float64, medians of alternating rounds)",
            ("n", "1x2", "2x1", "2x2 oversubscribed", "best / 2x2"),
            [
                (h["n"], *(f"{h['gflops'][k]:.1f}" for k in ("1x2", "2x1", "2x2")),
                 f"{h['vs_oversubscribed']:.2f}")
                for h in payload["here"]
            ],
        )  # fmt: skip
    print_table(
        "Layout search replayed on modelled nodes (per worker count, medians)",
        ("cpus", "cost", "worst cost", "quality", "worst quality", "within tol"),
        [
            (r["cpus"], f"{r['cost_median']:.3f}", f"{r['cost_worst']:.3f}",
             f"{r['quality_median']:.3f}", f"{r['quality_worst']:.3f}",
             f"{r['within_tolerance']:.0%}")
            for r in payload["replay"]
        ],
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    return script(NAME, __doc__, run, report, argv)


if __name__ == "__main__":
    main()
