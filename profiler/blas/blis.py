"""BLIS: found as ``libblis``, with its own API for version, kernel and threads."""

from __future__ import annotations

import ctypes
from pathlib import Path

from profiler.blas.base import Member

__all__ = ["BLIS"]


class BLIS(Member):
    name = "blis"
    title = "BLIS"
    # Every build, by experiment: BLIS's own variable wins, and one thread runs when
    # neither is set (unlike OpenBLAS, it does not default to every core).
    variables_by_layer = {
        "openmp": ("BLIS_NUM_THREADS", "OMP_NUM_THREADS"),
        "pthreads": ("BLIS_NUM_THREADS", "OMP_NUM_THREADS"),
    }
    threads_api = "bli_thread_set_num_threads"

    @classmethod
    def claims(cls, path: Path) -> bool:
        return path.name.startswith("libblis")

    def _probe_symbol(self) -> str:
        return "bli_info_get_version_str"

    def version(self) -> str | None:
        return self._text(self.symbol("bli_info_get_version_str")) or super().version()

    def threading(self) -> str | None:
        for layer in ("openmp", "pthreads"):
            func = self.symbol(f"bli_info_get_enable_{layer}")
            if func is None:
                return None
            func.restype = ctypes.c_int  # a bool_t: the low 32 bits are all it means
            if func():
                return layer
        return "serial"

    def architecture(self) -> str | None:
        query, name = self.symbol("bli_arch_query_id"), self.symbol("bli_arch_string")
        if query is None or name is None:
            return None
        query.restype = ctypes.c_int
        name.restype = ctypes.c_char_p
        name.argtypes = [ctypes.c_int]
        arch = query()
        return self._clean(name(arch))

    def set_threads(self, count: int) -> bool:
        func = self.symbol("bli_thread_set_num_threads")
        if func is None:
            return False
        func.restype = None
        func(ctypes.c_int64(count))  # dim_t
        return True
