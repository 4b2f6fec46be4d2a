"""The libraries whose threads no variable or function changes: ATLAS (Debian's serial
build, Fedora's serial and threaded ones) and the reference BLAS from Netlib. Debian puts
each as a ``libblas.so.3`` in a directory of its own."""

from __future__ import annotations

from pathlib import Path

from profiler.blas.base import Member

__all__ = ["ATLAS", "ReferenceBLAS"]


class ATLAS(Member):
    name = "atlas"
    title = "ATLAS"

    @classmethod
    def claims(cls, path: Path) -> bool:
        # Debian's atlas/libblas.so.3; Fedora's serial and threaded libsatlas, libtatlas
        if path.parent.name == "atlas" and path.name.startswith("libblas.so"):
            return True
        return path.name.startswith(("libsatlas.so", "libtatlas.so"))

    def threading(self) -> str | None:
        # a threaded ATLAS fixes its thread count when it is built: no variable changes it
        return "pthreads" if self.path.name.startswith("libtatlas") else "serial"


class ReferenceBLAS(Member):
    name = "reference"
    title = "reference BLAS (Netlib)"

    @classmethod
    def claims(cls, path: Path) -> bool:
        return path.parent.name == "blas" and path.name.startswith("libblas.so")

    def threading(self) -> str | None:
        return "serial"
