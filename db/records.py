"""The records the reads return: calibrations, jobs and stored measurements as frozen
plain dataclasses (never ORM objects), with the JSON documents ``list --json`` and
``show ID --json`` print.

A row another program or an older blasprof wrote may have any shape: every value read
back is checked here (``db.rows``), where rows become records, before anyone uses it; a
value that is not what its record needs is a ``BadRow`` naming the table, row and column.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from profiler.choice.preset import Preset
from profiler.results import (
    BlasLibrary,
    Measurement,
    Verification,
    is_blas_label,
)
from profiler.statuses import NOISY, QUIET, VERDICT_UNKNOWN, VERDICTS

__all__ = [
    "CalibrationRecord",
    "CalibrationSummary",
    "JobRecord",
    "StoredMeasurement",
]


_BLAS_JSON_KEYS = (
    "internal_api",
    "version",
    "threading_layer",
    "architecture",
    "num_threads",
    "filepath",
)


@dataclass(frozen=True)
class CalibrationSummary:
    """One line of ``blasprof list``. ``best_gflops`` is the best float64 figure, if any."""

    id: int
    node_type: str
    status: str
    executor: str
    profile: str
    created_at: dt.datetime
    finished_at: dt.datetime | None
    n_jobs: int
    n_measurements: int
    hostnames: tuple[str, ...]
    best_gflops: float | None
    #: the BLAS libraries its nodes reported, as ``name version (threading)``
    blas: tuple[str, ...]
    #: quiet or noisy (None: not finished, or finished before conditions were measured)
    verdict: str | None = None
    #: whether its preset serves jobs (None: it has no preset)
    preset_adopted: bool | None = None

    def summary_json(self) -> dict[str, Any]:
        """The summary as a JSON-ready dict (ISO timestamps)."""
        return {
            "calibration_id": self.id,
            "node_type": self.node_type,
            "status": self.status,
            "executor": self.executor,
            "profile": self.profile,
            "created_at": _iso(self.created_at),
            "finished_at": _iso(self.finished_at),
            "n_jobs": self.n_jobs,
            "n_measurements": self.n_measurements,
            "hostnames": list(self.hostnames),
            "best_gflops": self.best_gflops,
            "blas": list(self.blas),
            "verdict": self.verdict,
            "preset_adopted": self.preset_adopted,
        }


@dataclass(frozen=True)
class JobRecord:
    """One node task of a calibration, with what its node reported."""

    id: int
    calibration_id: int
    node_type: str
    external_id: str | None
    array_index: int | None
    state: str
    reason: str | None
    log_tail: str | None
    folder: str | None
    hostname: str | None
    submitted_at: dt.datetime
    finished_at: dt.datetime | None
    result_stored: bool
    node_info: dict[str, Any] | None
    blas: tuple[BlasLibrary, ...]
    verification: Verification | None
    conditions: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The job as a JSON-ready dict, with the full probe record its node reported."""
        return {
            "id": self.id,
            "external_id": self.external_id,
            "array_index": self.array_index,
            "state": self.state,
            "reason": self.reason,
            "hostname": self.hostname,
            "folder": self.folder,
            "submitted_at": _iso(self.submitted_at),
            "finished_at": _iso(self.finished_at),
            "result_stored": self.result_stored,
            "verification": _verification_json(self.verification),
            "conditions": self.conditions,
            "log_tail": self.log_tail,
            "node_info": self.node_info,
        }


@dataclass(frozen=True)
class StoredMeasurement:
    """A ``Measurement`` as stored: with the job and host it was taken on."""

    job_id: int
    hostname: str | None
    measurement: Measurement

    def to_json(self) -> dict[str, Any]:
        return {**self.measurement.to_json(), "job_id": self.job_id, "hostname": self.hostname}


@dataclass(frozen=True, kw_only=True)
class CalibrationRecord(CalibrationSummary):
    """Everything about one calibration: settings, jobs, measurements and its preset."""

    settings: dict[str, Any]
    blasprof_version: str
    error: str | None
    jobs: tuple[JobRecord, ...]
    measurements: tuple[StoredMeasurement, ...]
    preset: Preset | None
    preset_quality: str | None = None
    preset_note: str | None = None

    def conditions(self) -> dict[str, Any] | None:
        """The verdict over every node that reported its conditions, the reasons (with the
        host where there are several) and each node's figures; None if none did."""
        nodes = [(j.hostname or "?", c) for j in self.jobs if (c := _conditions(j.conditions))]
        if not nodes:
            return None
        several = len(nodes) > 1
        reasons = [
            f"{host}: {reason}" if several else reason
            for host, c in nodes
            for reason in c.get("reasons", ())
        ]
        verdicts = {c["verdict"] for _, c in nodes}
        verdict = next((v for v in (NOISY, VERDICT_UNKNOWN) if v in verdicts), QUIET)
        return {
            "verdict": verdict,
            "reasons": reasons,
            "nodes": [{"hostname": host, **c} for host, c in nodes],
        }

    def nodes(self) -> list[dict[str, Any]]:
        """One entry per host that reported, from its latest job: CPU, cores and BLAS."""
        by_host: dict[str, dict[str, Any]] = {}
        for job in self.jobs:
            info = job.node_info
            if not info:
                continue
            by_host[info["hostname"]] = {
                "hostname": info["hostname"],
                "cpu_model": info.get("cpu_model"),
                "microarchitecture": info.get("microarchitecture"),
                "sockets": info.get("sockets"),
                "cores": info.get("physical_cores"),
                "logical_cpus": info.get("logical_cpus"),
                "usable_cpus": info.get("usable_cpus"),
                "numa_nodes": info.get("numa_nodes"),
                "memory_total_bytes": info.get("memory_total_bytes"),
                "peak_gflops_f64": info.get("peak_gflops_f64"),
                "numpy_version": info.get("numpy_version"),
                "blas": [{k: getattr(lib, k) for k in _BLAS_JSON_KEYS} for lib in job.blas],
                "job_id": job.id,
            }
        return [by_host[host] for host in sorted(by_host)]

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready dict ``show ID --json`` prints (its keys are part of the command-line
        contract)."""
        return {
            **self.summary_json(),
            "blasprof_version": self.blasprof_version,
            "error": self.error,
            "settings": self.settings,
            "nodes": self.nodes(),
            "jobs": [job.to_json() for job in self.jobs],
            "measurements": [m.to_json() for m in self.measurements],
            "conditions": self.conditions(),
            "preset": self.preset.to_dict() if self.preset else None,
            "preset_quality": self.preset_quality,
            "preset_note": self.preset_note,
            **self.fastest(),
        }

    def fastest(self) -> dict[str, Any]:
        """Which library is fastest per size class (where several were calibrated), and
        the warnings where the system default BLAS is far slower than another."""
        from profiler.choice.fastest import fastest_per_class, slow_default

        rows = fastest_per_class(self.preset) if self.preset else []
        libraries = [
            lib
            for job in self.jobs
            if isinstance(job.node_info, dict)
            and isinstance(listed := job.node_info.get("libraries"), list)
            for lib in listed
            if isinstance(lib, dict) and is_blas_label(lib.get("label"))
        ]
        return {
            "fastest": [row.to_dict() for row in rows],
            "blas_warnings": slow_default(rows, libraries),
        }


_VERDICTS = VERDICTS
_FIGURES = ("wall_s", "others_cpu_fraction", "steal_fraction", "outlier_fraction")


def _conditions(raw: Any) -> dict[str, Any] | None:
    """A node's stored conditions with every field of the type readers expect (a row
    another program or an older blasprof wrote may have any shape)."""
    if not isinstance(raw, dict):
        return None

    def numbers(value: Any) -> list[float]:
        ok = isinstance(value, list) and all(isinstance(x, int | float) for x in value)
        return [float(x) for x in value] if ok else []

    def texts(value: Any) -> list[str]:
        return [str(x) for x in value] if isinstance(value, list) else []

    verdict = raw.get("verdict")
    out: dict[str, Any] = {
        "verdict": verdict if verdict in _VERDICTS else "unknown",
        "reasons": texts(raw.get("reasons")),
        "notes": texts(raw.get("notes")),
        "load_before": numbers(raw.get("load_before")),
        "load_after": numbers(raw.get("load_after")),
    }
    for key in _FIGURES:
        value = raw.get(key)
        out[key] = float(value) if isinstance(value, int | float) else None
    out["unstable"] = _unstable(raw.get("unstable"))
    for key, value in raw.items():
        out.setdefault(key, value)
    return out


def _unstable(raw: Any) -> list[dict[str, Any]]:
    """The stored unstable points that have the shape blasprof writes; others are left out."""

    def whole(x: Any) -> bool:
        return type(x) is int and x >= 1

    def state(x: Any) -> bool:
        figure = x.get("gflops") if isinstance(x, dict) else None
        return type(figure) in (int, float) and figure > 0 and whole(x.get("runs"))

    return [
        {"n": u["n"], "dtype": u["dtype"], "threads": u["threads"], "runs": u["runs"],
         "states": [{"gflops": float(s["gflops"]), "runs": s["runs"]} for s in u["states"]]}
        for u in (raw if isinstance(raw, list) else [])
        if isinstance(u, dict)
        and all(whole(u.get(k)) for k in ("n", "threads", "runs"))
        and u.get("dtype") in ("float32", "float64")
        and isinstance(u.get("states"), list) and all(state(s) for s in u["states"])
    ]  # fmt: skip


def _verification_json(verification: Verification | None) -> dict[str, Any] | None:
    if verification is None:
        return None
    d = dataclasses.asdict(verification)
    d["threads_observed"] = list(d["threads_observed"])
    return d


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
