"""What a member of the BLAS family is: how its files are recognised, and, once loaded in a
worker process, how it tells its version, threading layer and kernel, how its threads are
set, and how one GEMM is called on numpy operands through ctypes.

Shared behaviour lives here; a member declares only what differs (its file names, its
symbols, the variables it obeys). Nothing here loads a library at import time: loading
happens in ``load``, and only worker processes call it (a library's environment is read
once, when it loads, and two builds of one library cannot share a process).
"""

from __future__ import annotations

import ctypes
import functools
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Member", "version_from_filename"]

_ROW_MAJOR, _NO_TRANS = 101, 111  # CBLAS enum values, fixed by the CBLAS standard


def version_from_filename(path: Path) -> str | None:
    """``3.10.3`` from ``libblas.so.3.10.3`` (the file a versioned link resolves to)."""
    match = re.search(r"\.so\.([0-9]+(?:\.[0-9]+){1,3})$", path.resolve().name)
    return match.group(1) if match else None


class Member:
    """One kind of BLAS library. Class attributes describe the kind; an instance is one
    file of that kind, loaded on demand."""

    #: the registry key, and what ``calibrate --blas`` will name it by
    name: ClassVar[str]
    #: what it is, for people
    title: ClassVar[str]
    #: the thread variables it obeys, the one that wins first (threading layer -> names)
    variables_by_layer: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: the function that sets its threads, if it has one (without prefix or suffix)
    threads_api: ClassVar[str | None] = None
    #: how its symbols are decorated: (prefix, suffix) pairs tried in order
    decorations: ClassVar[tuple[tuple[str, str], ...]] = (("", ""),)
    #: False where no library of this kind could be run here: designed from its documents
    tested: ClassVar[bool] = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lib: ctypes.CDLL | None = None
        self._decoration = self.decorations[0]

    # -- recognising files (no loading) --------------------------------------------------

    @classmethod
    def claims(cls, path: Path) -> bool:
        """Whether ``path`` (an existing shared library) is a library of this kind."""
        raise NotImplementedError

    @classmethod
    def locations(cls) -> Iterable[Path]:
        """Files of this kind outside the dynamic linker's cache and the system's
        library directories (a Python package's bundled copy, a wheel's lib/)."""
        return ()

    def label(self) -> str:
        """This file's name among the libraries found: the member's name, or the
        distribution's directory for one of its builds (``openblas-openmp``)."""
        parent = self.path.parent.name
        if parent.startswith(self.name + "-") and re.fullmatch(r"[a-z0-9-]{1,40}", parent):
            return parent
        return self.name

    def variables(self, threading: str | None) -> tuple[str, ...]:
        """The thread variables this library obeys, strongest first, for its threading
        layer; () where nothing changes its threads."""
        return self.variables_by_layer.get(threading or "", ())

    # -- loaded (worker processes only) ---------------------------------------------------

    def load(self) -> ctypes.CDLL:
        if self._lib is None:
            lib = ctypes.CDLL(str(self.path), mode=ctypes.RTLD_LOCAL)
            for prefix, suffix in self.decorations:
                if hasattr(lib, f"{prefix}{self._probe_symbol()}{suffix}"):
                    self._decoration = (prefix, suffix)
                    break
            self._lib = lib
        return self._lib

    def _probe_symbol(self) -> str:
        """A symbol whose decorated name tells which decoration this file uses."""
        return "cblas_dgemm"

    def symbol(self, name: str) -> Any | None:
        """The library's function ``name`` with this file's prefix and suffix, or None."""
        prefix, suffix = self._decoration
        return getattr(self.load(), f"{prefix}{name}{suffix}", None)

    @property
    def ilp64(self) -> bool:
        """Whether its BLAS integers are 64-bit (the ``64_`` suffix says so)."""
        return self._decoration[1].startswith("64")

    def version(self) -> str | None:
        return version_from_filename(self.path)

    def threading(self) -> str | None:
        """``pthreads``, ``openmp``, ``serial``, ... as the library says; None if it does not."""
        return None

    def architecture(self) -> str | None:
        """The kernel it chose for this CPU, where it says."""
        return None

    def set_threads(self, count: int) -> bool:
        """Set its threads through its own function; False where it has none."""
        if self.threads_api is None or (func := self.symbol(self.threads_api)) is None:
            return False
        func.restype = None
        func(ctypes.c_int(count))
        return True

    def gemm_symbol(self, dtype: str) -> str:
        """The decorated name of the function ``gemm`` calls for ``dtype``."""
        prefix, suffix = self._decoration
        letter = "s" if dtype == "float32" else "d"
        if self.symbol(f"cblas_{letter}gemm") is not None:
            return f"{prefix}cblas_{letter}gemm{suffix}"
        return f"{prefix}{letter}gemm_{suffix}"

    def gemm(self, a: np.ndarray, b: np.ndarray, c: np.ndarray, *, fortran: bool = False) -> None:
        """``c = a @ b`` for square C-ordered operands of one dtype (float32 or float64),
        through CBLAS where the library has it (and ``fortran`` is False), else through
        the Fortran symbol."""
        self.gemm_call(a, b, c, fortran=fortran)()

    def gemm_call(
        self, a: np.ndarray, b: np.ndarray, c: np.ndarray, *, fortran: bool = False
    ) -> Callable[[], None]:
        """``gemm`` on these operands with every argument converted once: a timed loop then
        pays one foreign call per GEMM, as a C program's loop would."""
        n = a.shape[0]
        real = ctypes.c_float if a.dtype.itemsize == 4 else ctypes.c_double
        integer = ctypes.c_int64 if self.ilp64 else ctypes.c_int
        letter = "s" if a.dtype.itemsize == 4 else "d"
        ptrs = [ctypes.c_void_p(x.ctypes.data) for x in (a, b, c)]
        cblas = None if fortran else self.symbol(f"cblas_{letter}gemm")
        if cblas is not None:
            cblas.restype = None
            size = integer(n)
            return functools.partial(
                cblas, _ROW_MAJOR, _NO_TRANS, _NO_TRANS, size, size, size, real(1.0), ptrs[0],
                size, ptrs[1], size, real(0.0), ptrs[2], size,
            )  # fmt: skip
        func = self.symbol(f"{letter}gemm_")
        if func is None:
            raise OSError(f"{self.path} has neither cblas_{letter}gemm nor {letter}gemm_")
        # column-major C' = B' A' is row-major C = A B; the two trailing lengths are the
        # hidden lengths of the character arguments that gfortran-built libraries expect
        no, size, one, zero = ctypes.c_char(b"N"), integer(n), real(1.0), real(0.0)
        func.restype = None
        return functools.partial(
            func, ctypes.byref(no), ctypes.byref(no), ctypes.byref(size), ctypes.byref(size),
            ctypes.byref(size), ctypes.byref(one), ptrs[1], ctypes.byref(size), ptrs[0],
            ctypes.byref(size), ctypes.byref(zero), ptrs[2], ctypes.byref(size),
            ctypes.c_size_t(1), ctypes.c_size_t(1),
        )  # fmt: skip

    def describe(self) -> dict[str, Any]:
        """What the loaded library says about itself (plain data)."""
        threading = self.threading()
        return {
            "version": self.version(),
            "threading": threading,
            "architecture": self.architecture(),
            "variables": list(self.variables(threading)),
            "gemm_symbol": self.gemm_symbol("float64"),
            "threads_api": self._decorated(self.threads_api),
            "ilp64": self.ilp64,
        }

    def _decorated(self, name: str | None) -> str | None:
        if name is None or self.symbol(name) is None:
            return None
        prefix, suffix = self._decoration
        return f"{prefix}{name}{suffix}"

    @classmethod
    def _text(cls, func: Any) -> str | None:
        """The ``const char *`` a library function returns, as one cleaned line of text."""
        if func is None:
            return None
        func.restype = ctypes.c_char_p
        return cls._clean(func())

    @staticmethod
    def _clean(raw: bytes | None) -> str | None:
        if not raw:
            return None
        from profiler.text import clean_text

        return clean_text(raw.decode(errors="replace"), 300) or None
