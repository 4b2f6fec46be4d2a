"""FlexiBLAS, the wrapper whose backend the ``FLEXIBLAS`` variable names. Designed from its
documentation (flexiblas-api(7)) and not run here: no package of it exists where this was
written. Its threads are its backend's; ``flexiblas_set_num_threads`` forwards to it."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

from profiler.blas.base import Member

__all__ = ["FlexiBLAS", "backend_variables"]


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
        """The variables of the backend it loaded (FlexiBLAS forwards threads to it);
        OpenMP's alone where the backend's name says too little."""
        return backend_variables(self.architecture() or "") or ("OMP_NUM_THREADS",)


def backend_variables(backend: str) -> tuple[str, ...]:
    """The thread variables of a FlexiBLAS backend, read from its name as ``flexiblas
    list`` prints it (``OPENBLAS-OPENMP``, ``BLIS-THREADS``, ``NETLIB``, ...): the member it
    names, in the threading layer it names, obeys them; () for a serial or unknown one.

    A preset never sets ``FLEXIBLAS``: the backend is the site's or the job's choice, and
    a preset's counts hold for the backend the calibration ran."""
    from profiler.blas import MEMBERS

    words = set(re.split(r"[^A-Z0-9]+", backend.upper()))
    member = next((m for m in ("OPENBLAS", "BLIS", "MKL") if m in words), None)
    if member is None:
        return ()
    layer = "serial"
    if words & {"OPENMP", "OMP", "GNU", "INTEL"}:
        layer = "openmp"
    elif words & {"THREADS", "PTHREAD", "PTHREADS", "THREADED"}:
        layer = "pthreads"
    if member == "MKL":
        return MEMBERS["mkl"].variables_by_layer.get({"openmp": "gnu"}.get(layer, ""), ())
    return MEMBERS[member.lower()].variables_by_layer.get(layer, ())
