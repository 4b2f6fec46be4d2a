"""FlexiBLAS, the wrapper whose backend the ``FLEXIBLAS`` variable names. Designed from its
documentation (flexiblas-api(7)) and not run here: no package of it exists where this was
written. Its threads are its backend's; ``flexiblas_set_num_threads`` forwards to it."""

from __future__ import annotations

import ctypes
from pathlib import Path

from profiler.measure.blas.base import Member

__all__ = ["FlexiBLAS"]


class FlexiBLAS(Member):
    name = "flexiblas"
    title = "FlexiBLAS (backend from FLEXIBLAS)"
    threads_api = "flexiblas_set_num_threads"
    tested = False
    #: the variable that picks the backend, read when the library loads
    backend_variable = "FLEXIBLAS"

    @classmethod
    def claims(cls, path: Path) -> bool:
        return path.name.startswith("libflexiblas.so")

    def version(self) -> str | None:
        func = self.symbol("flexiblas_get_version")
        if func is None:
            return super().version()
        parts = [ctypes.c_int(0) for _ in range(3)]
        func(*(ctypes.byref(p) for p in parts))
        return ".".join(str(p.value) for p in parts)

    def architecture(self) -> str | None:
        """The backend in use, which decides everything else."""
        func = self.symbol("flexiblas_current_backend")
        if func is None:
            return None
        buffer = ctypes.create_string_buffer(256)
        func(buffer, ctypes.c_size_t(len(buffer)))
        return self._clean(buffer.value)

    def variables(self, threading: str | None) -> tuple[str, ...]:
        # the backend's own variables apply; OpenMP's is the one every threaded backend reads
        return ("OMP_NUM_THREADS",)
