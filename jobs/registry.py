"""The executors by name: ``--executor``'s choices and the one place a backend is added.

The table maps each name to the class that implements it; a class is imported only when
its backend is used, so listing the names (for ``--help``) costs nothing. ``choose`` turns
``--executor`` (a name, or ``auto``) and the presence of a cluster file into a backend
class, with one clear line when that cannot work here.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from profiler.errors import UsageError

if TYPE_CHECKING:
    from jobs.base import Backend
    from jobs.cluster import Cluster

__all__ = ["AUTO", "BACKENDS", "backend_class", "choose", "get_backend", "ran_on_batch"]

#: name -> "module:Class"; the order is the order of ``--executor``'s choices
BACKENDS: dict[str, str] = {
    "debug": "jobs.local:DebugBackend",
    "local": "jobs.local:LocalBackend",
    "slurm": "jobs.slurm:SlurmBackend",
}
#: ``--executor auto``: a batch backend when a cluster file is given, else this one
AUTO = "auto"
_DEFAULT_HERE = "local"


def backend_class(name: str) -> type[Backend]:
    """The class of the backend called ``name``; an unknown name is a usage error."""
    try:
        module, _, attr = BACKENDS[name].partition(":")
    except KeyError:
        raise UsageError(
            f"--executor: unknown executor {name!r}; accepted: {', '.join(BACKENDS)}"
        ) from None
    cls: type[Backend] = getattr(importlib.import_module(module), attr)
    return cls


def ran_on_batch(name: str) -> bool:
    """Whether a calibration stored with executor ``name`` ran on a batch system (a name
    this blasprof does not know: no)."""
    try:
        return backend_class(name).batch
    except UsageError:
        return False


def get_backend(name: str, folder: Path, *, cluster: Cluster | None = None) -> Backend:
    """An instance of the backend called ``name`` writing its job folders under ``folder``."""
    return backend_class(name)(Path(folder), cluster=cluster)


def choose(name: str, *, cluster_given: bool) -> type[Backend]:
    """The backend ``--executor NAME`` means here, or a UsageError saying what to do.

    ``auto`` is the first batch backend usable here when a cluster file is given, else
    ``local``. A batch backend needs a cluster file; one that cannot be used here says why.
    """
    if name == AUTO:
        if not cluster_given:
            return backend_class(_DEFAULT_HERE)
        batch = [backend_class(n) for n in BACKENDS]
        batch = [cls for cls in batch if cls.batch]
        usable = [cls for cls in batch if cls.unavailable() is None]
        if not usable:
            why = "; ".join(f"{cls.name}: {cls.unavailable()}" for cls in batch)
            raise UsageError(
                f"--cluster: given, but no batch system can be used here ({why}); run from "
                "a login node of the cluster, or leave --cluster out to calibrate this machine"
            )
        return usable[0]
    cls = backend_class(name)
    why = cls.unavailable()
    if why is not None:
        raise UsageError(
            f"--executor {name}: {why}; run it from a login node of the cluster, "
            f"or use --executor {_DEFAULT_HERE}"
        )
    if cls.batch and not cluster_given:
        raise UsageError(
            f"--executor {name}: needs --cluster FILE describing the node types "
            "(see deploy/slurm-local/cluster.toml)"
        )
    return cls
