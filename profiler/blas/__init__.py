"""The BLAS family: every BLAS library a node offers, each a member of one registry.

A member (``profiler.blas.base.Member``) says how its files are recognised, how it tells
its version, threading layer and kernel, how its threads are set, which variables it obeys
in which order, and how a GEMM is called through it. ``find`` lists the libraries on this
node, each described by a fresh worker process (``profiler.blas.worker``) under a time
limit; ``time_gemm`` (``profiler.blas.run``) times one GEMM the same way, and measures the
threads that really ran rather than trusting the library's own report.
"""

from __future__ import annotations

from pathlib import Path

from profiler.blas.base import Member
from profiler.blas.blis import BLIS
from profiler.blas.flexiblas import FlexiBLAS
from profiler.blas.mkl import MKL
from profiler.blas.netlib import ATLAS, ReferenceBLAS
from profiler.blas.openblas import NumpyOpenBLAS, ScipyOpenBLAS, SystemOpenBLAS

__all__ = ["MEMBERS", "Member", "member_for", "member_named"]

#: every kind of BLAS library, by name; the first that claims a file owns it
MEMBERS: dict[str, type[Member]] = {
    m.name: m
    for m in (
        NumpyOpenBLAS,
        ScipyOpenBLAS,
        SystemOpenBLAS,
        BLIS,
        ATLAS,
        ReferenceBLAS,
        MKL,
        FlexiBLAS,
    )
}


def member_for(path: Path) -> type[Member] | None:
    """The member that claims the library file ``path``, or None."""
    return next((m for m in MEMBERS.values() if m.claims(path)), None)


def member_named(name: str) -> type[Member]:
    """The member registered as ``name`` (KeyError names the valid ones)."""
    try:
        return MEMBERS[name]
    except KeyError:
        raise KeyError(f"no BLAS member {name!r}; known: {', '.join(MEMBERS)}") from None
