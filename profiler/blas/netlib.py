"""The libraries that always run one thread: ATLAS (Debian's serial build) and the
reference BLAS from Netlib. Both are found as a distribution's ``libblas.so.3`` in a
directory of their own; neither has a function that reports or sets threads."""

from __future__ import annotations

from pathlib import Path

from profiler.blas.base import Member

__all__ = ["ATLAS", "ReferenceBLAS"]


class ATLAS(Member):
    name = "atlas"
    title = "ATLAS"

    @classmethod
    def claims(cls, path: Path) -> bool:
        return path.parent.name == "atlas" and path.name.startswith("libblas.so")

    def threading(self) -> str | None:
        return "serial"


class ReferenceBLAS(Member):
    name = "reference"
    title = "reference BLAS (Netlib)"

    @classmethod
    def claims(cls, path: Path) -> bool:
        return path.parent.name == "blas" and path.name.startswith("libblas.so")

    def threading(self) -> str | None:
        return "serial"
