"""Intel MKL through its single dynamic library ``libmkl_rt`` (the PyPI ``mkl`` wheel puts
it in the environment's lib/; a system install in the linker's cache)."""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Iterable
from pathlib import Path

from profiler.blas.base import Member

__all__ = ["MKL"]

# MKL_Set_Threading_Layer(-1) returns the layer without changing it
_LAYERS = {0: "intel", 1: "sequential", 2: "pgi", 3: "gnu", 4: "tbb"}
_BY_VARIABLE = ("MKL_NUM_THREADS", "OMP_NUM_THREADS")


class MKL(Member):
    name = "mkl"
    title = "Intel MKL"
    variables_by_layer = {"intel": _BY_VARIABLE, "gnu": _BY_VARIABLE, "pgi": _BY_VARIABLE,
                          "tbb": ("MKL_NUM_THREADS",)}  # fmt: skip
    threads_api = "MKL_Set_Num_Threads"

    @classmethod
    def claims(cls, path: Path) -> bool:
        return path.name.startswith("libmkl_rt.so")

    @classmethod
    def locations(cls) -> Iterable[Path]:
        return sorted((Path(sys.prefix) / "lib").glob("libmkl_rt.so*"))

    def version(self) -> str | None:
        func = self.symbol("MKL_Get_Version_String")
        if func is None:
            return super().version()
        buffer = ctypes.create_string_buffer(200)
        func(buffer, ctypes.c_int(len(buffer)))
        return self._clean(buffer.value) or super().version()

    def threading(self) -> str | None:
        func = self.symbol("MKL_Set_Threading_Layer")
        if func is None:
            return None
        func.restype = ctypes.c_int
        return _LAYERS.get(func(ctypes.c_int(-1)), "unknown")
