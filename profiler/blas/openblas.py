"""The OpenBLAS members: numpy's and scipy's bundled copies (``scipy_`` prefixed symbols,
numpy's with 64-bit integers and a ``64_`` suffix) and a system OpenBLAS (a distribution's
pthreads, OpenMP or serial build)."""

from __future__ import annotations

import ctypes
import re
from collections.abc import Iterable
from pathlib import Path

from profiler.blas.base import Member

__all__ = ["NumpyOpenBLAS", "ScipyOpenBLAS", "SystemOpenBLAS"]

# Checked by experiment on the pthreads builds (PyPI's and Debian's): the first set wins.
# An OpenMP build reads only OpenMP's variable; a serial build runs one thread whatever.
_PTHREADS = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
# From 0.3.22 (OpenBLAS pull request 3773) a pthreads build also reads this one, second
# only to OPENBLAS_NUM_THREADS (by experiment on 0.3.30 and 0.3.31; 0.3.21 ignores it)
_DEFAULT = "OPENBLAS_DEFAULT_NUM_THREADS"
_DEFAULT_SINCE = (0, 3, 22)
_LAYERS = {0: "serial", 1: "pthreads", 2: "openmp"}


def _bundled(package: str) -> Iterable[Path]:
    """The OpenBLAS a wheel bundles in ``<package>.libs`` beside the package, found without
    importing the package (which would load it into this process)."""
    from importlib.util import find_spec

    try:
        spec = find_spec(package)
    except (ImportError, ValueError):
        return ()
    if spec is None or not spec.submodule_search_locations:
        return ()
    found = []
    for location in spec.submodule_search_locations:
        libs = Path(location).parent / f"{package}.libs"
        found += sorted(libs.glob("lib*openblas*.so*"))
    return found


def _release(version: str | None) -> tuple[int, ...]:
    """``(0, 3, 31)`` from ``0.3.31.188.0``; () when there is no version to read."""
    match = re.match(r"([0-9]+)\.([0-9]+)\.([0-9]+)", version or "")
    return tuple(int(part) for part in match.groups()) if match else ()


class _OpenBLAS(Member):
    variables_by_layer = {"pthreads": _PTHREADS, "openmp": ("OMP_NUM_THREADS",)}
    threads_api = "openblas_set_num_threads"
    # numpy 2's scipy-openblas64, scipy's scipy-openblas32, an older numpy's openblas64_, plain
    decorations = (("scipy_", "64_"), ("scipy_", ""), ("", "64_"), ("", ""))

    def _probe_symbol(self) -> str:
        return "openblas_get_config"

    def variables(self, threading: str | None) -> tuple[str, ...]:
        names = super().variables(threading)
        if threading == "pthreads" and _release(self.version()) >= _DEFAULT_SINCE:
            return (names[0], _DEFAULT, *names[1:])
        return names

    def version(self) -> str | None:
        config = self._text(self.symbol("openblas_get_config")) or ""
        match = re.search(r"OpenBLAS ([0-9][0-9A-Za-z.]*)", config)
        return match.group(1) if match else super().version()

    def threading(self) -> str | None:
        func = self.symbol("openblas_get_parallel")
        if func is None:
            return None
        func.restype = ctypes.c_int
        return _LAYERS.get(func(), "unknown")

    def architecture(self) -> str | None:
        return self._text(self.symbol("openblas_get_corename"))


class NumpyOpenBLAS(_OpenBLAS):
    name = "numpy"
    title = "numpy's bundled OpenBLAS"

    @classmethod
    def claims(cls, path: Path) -> bool:
        return path.parent.name == "numpy.libs" and "openblas" in path.name

    @classmethod
    def locations(cls) -> Iterable[Path]:
        return _bundled("numpy")


class ScipyOpenBLAS(_OpenBLAS):
    name = "scipy"
    title = "scipy's bundled OpenBLAS"

    @classmethod
    def claims(cls, path: Path) -> bool:
        return path.parent.name == "scipy.libs" and "openblas" in path.name

    @classmethod
    def locations(cls) -> Iterable[Path]:
        return _bundled("scipy")


class SystemOpenBLAS(_OpenBLAS):
    name = "openblas"
    title = "system OpenBLAS"

    @classmethod
    def claims(cls, path: Path) -> bool:
        return path.name.startswith("libopenblas") and not path.parent.name.endswith(".libs")
