"""The BLAS family on the real libraries of this machine (the Debian packages .ci/run
installs, numpy's and scipy's bundled OpenBLAS, MKL where present): each is found and
described, its GEMM equals numpy's, the threads that really ran are the count set, and the
order of the variables it obeys holds by experiment. A worker that hangs or crashes is a
failed point with its reason."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest

from profiler.blas import MEMBERS, member_for
from profiler.blas.run import Library, find, time_gemm
from profiler.blas.search import SITE_VARIABLE, ld_cache, parse_ld_cache
from tests.services import absent

LIBDIR = Path("/usr/lib") / f"{platform.machine()}-linux-gnu"
#: what .ci/run installs: Debian's directory for each build -> the label it is found as
DEBIAN = {
    "openblas-pthread": "openblas-pthread",
    "openblas-openmp": "openblas-openmp",
    "blis-openmp": "blis-openmp",
    "atlas": "atlas",
    "blas": "reference",
}
THREAD_VARIABLES = (
    "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_DEFAULT_NUM_THREADS",
    "OMP_NUM_THREADS", "BLIS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_THREAD_LIMIT",
)  # fmt: skip
N = 256  # above OpenBLAS's 64^3 threshold for threading, a few milliseconds a GEMM

_FOUND = find()
LIBRARIES = {lib.label: lib for lib in _FOUND if lib.error is None and lib.tested}
THREADED = [lib for lib in LIBRARIES.values() if lib.variables]


@pytest.fixture(autouse=True)
def _no_thread_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers inherit this environment: the variables a test sets are the only ones."""
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("directory", sorted(DEBIAN))
def test_every_installed_debian_build_is_found_with_its_version(directory: str) -> None:
    if not (LIBDIR / directory).is_dir():
        absent(f"the Debian BLAS build {directory} is not installed (.ci/run installs it)")
    lib = LIBRARIES[DEBIAN[directory]]
    assert Path(lib.path).parent == LIBDIR / directory
    assert lib.version and lib.version[0].isdigit(), lib
    assert lib.threading in ("pthreads", "openmp", "serial"), lib
    assert member_for(Path(lib.path)) is MEMBERS[lib.member]


def test_numpy_and_scipy_bundled_openblas_are_found_with_their_decorated_symbols() -> None:
    import numpy as np
    from threadpoolctl import threadpool_info

    numpy_lib = LIBRARIES["numpy"]
    reported = [d for d in threadpool_info() if d["internal_api"] == "openblas"]
    assert any(Path(d["filepath"]).resolve() == Path(numpy_lib.path) for d in reported)
    assert any(d["version"] == numpy_lib.version for d in reported), (reported, numpy_lib)
    if np.dtype(np.intp).itemsize == 8 and "64_" in Path(numpy_lib.path).name:
        assert numpy_lib.ilp64 and numpy_lib.gemm_symbol.endswith("64_")
    if "scipy" in LIBRARIES:
        assert LIBRARIES["scipy"].gemm_symbol.startswith("scipy_cblas_dgemm")


def test_libblas_so_3_is_the_library_the_linker_resolves_it_to() -> None:
    entry = ld_cache().get("libblas.so.3")
    marked = [lib for lib in _FOUND if lib.is_libblas_so_3]
    if entry is None:
        assert not marked
        return
    (lib,) = marked
    assert Path(lib.path).parent == entry.resolve().parent


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("label", sorted(LIBRARIES))
def test_gemm_equals_numpys_and_runs_the_threads_set(label: str, threads: int) -> None:
    lib = LIBRARIES[label]
    if threads > len(os.sched_getaffinity(0)):
        pytest.skip("one CPU")
    point = time_gemm(lib, N, threads=threads, min_time=0.05, timeout=60)
    assert point.ok, point.error
    assert point.relative_error is not None and point.relative_error < 1e-12
    assert point.gflops and point.gflops > 0.1
    # a library with a function that sets its threads runs that many; one that has none
    # (ATLAS, the reference BLAS) runs one whatever is asked
    expected = threads if lib.threads_api and lib.threading != "serial" else 1
    assert point.set_by_api == bool(lib.threads_api)
    assert point.threads_ran == expected, point


def test_a_float32_gemm_through_numpys_library_is_right_too() -> None:
    point = time_gemm(LIBRARIES["numpy"], 128, "float32", threads=1, min_time=0.02)
    assert point.ok and point.relative_error is not None and point.relative_error < 1e-5


@pytest.mark.parametrize("label", ["numpy", "reference"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_fortran_symbol_computes_the_same_gemm(label: str, dtype: str) -> None:
    """Every library here has CBLAS, so the Fortran call (for one that has not) is run
    in this process on two that are safe to load here: numpy's own (64-bit integers, a
    ``64_`` suffix; already loaded) and the single-threaded reference BLAS."""
    import numpy as np

    if label not in LIBRARIES:
        absent(f"{label} BLAS is not installed (.ci/run installs libblas3)")
    lib = LIBRARIES[label]
    member = MEMBERS[lib.member](Path(lib.path))
    rng = np.random.default_rng(7)
    a, b = (rng.standard_normal((70, 70)).astype(dtype) for _ in range(2))
    c = np.zeros_like(a)
    member.gemm(a, b, c, fortran=True)
    tolerance = 1e-4 if dtype == "float32" else 1e-11
    np.testing.assert_allclose(c, a @ b, rtol=tolerance, atol=tolerance)
    assert not np.array_equal(c, np.zeros_like(c))


def _pairs() -> list[tuple[str, str, str]]:
    return [
        (lib.label, strong, weak)
        for lib in THREADED
        for strong, weak in zip(lib.variables, lib.variables[1:], strict=False)
    ]


@pytest.mark.parametrize(("label", "stronger", "weaker"), _pairs())
def test_the_stronger_variable_wins_and_the_weaker_is_obeyed_alone(
    label: str, stronger: str, weaker: str
) -> None:
    lib = LIBRARIES[label]
    both = time_gemm(lib, N, env={stronger: "1", weaker: "2"}, min_time=0.05)
    alone = time_gemm(lib, N, env={weaker: "2"}, min_time=0.05)
    assert (both.threads_ran, alone.threads_ran) == (1, 2), (both, alone)


@pytest.mark.parametrize("label", sorted(lib.label for lib in THREADED))
def test_the_strongest_variable_alone_sets_the_threads(label: str) -> None:
    lib = LIBRARIES[label]
    point = time_gemm(lib, N, env={lib.variables[0]: "2"}, min_time=0.05)
    assert point.threads_ran == 2, point


def _ignored() -> list[tuple[str, str]]:
    return [
        (lib.label, name)
        for lib in THREADED
        for name in THREAD_VARIABLES
        if name not in lib.variables and name != "OMP_THREAD_LIMIT"  # which hangs one
    ]


@pytest.mark.parametrize(("label", "ignored"), _ignored())
def test_a_variable_not_listed_is_ignored(label: str, ignored: str) -> None:
    """Set to 1 beside the weakest variable the library obeys (set to 2), it changes
    nothing: the list of variables a library obeys is complete."""
    lib = LIBRARIES[label]
    point = time_gemm(lib, N, env={ignored: "1", lib.variables[-1]: "2"}, min_time=0.05)
    assert point.threads_ran == 2, point


def test_the_openmp_openblas_ignores_openblas_num_threads() -> None:
    if "openblas-openmp" not in LIBRARIES:
        absent("libopenblas0-openmp is not installed (.ci/run installs it)")
    lib = LIBRARIES["openblas-openmp"]
    point = time_gemm(lib, N, env={"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "1"})
    assert point.threads_ran == 2 and lib.variables == ("OMP_NUM_THREADS",), point


def test_blis_runs_one_thread_when_no_variable_is_set() -> None:
    if "blis-openmp" not in LIBRARIES:
        absent("libblis4-openmp is not installed (.ci/run installs it)")
    point = time_gemm(LIBRARIES["blis-openmp"], N, min_time=0.05)
    assert point.ok and point.threads_ran == 1, point


def test_a_worker_that_hangs_is_a_failed_point_with_its_reason() -> None:
    lib = next(iter(LIBRARIES.values()))
    sleeper = (sys.executable, "-c", "import time; time.sleep(60)")
    start = time.monotonic()
    point = time_gemm(lib, N, threads=1, timeout=1.5, worker=sleeper)
    assert time.monotonic() - start < 10
    assert not point.ok and point.gflops is None
    assert point.error == "no answer within 1.5 s (killed)"


def test_a_real_hang_is_a_failed_point_too() -> None:
    """Debian's OpenMP OpenBLAS 0.3.21 spins for ever under OMP_THREAD_LIMIT=1."""
    if "openblas-openmp" not in LIBRARIES:
        absent("libopenblas0-openmp is not installed (.ci/run installs it)")
    env = {"OMP_THREAD_LIMIT": "1", "OMP_NUM_THREADS": "2"}
    point = time_gemm(LIBRARIES["openblas-openmp"], N, env=env, timeout=3)
    if point.ok:  # a later build that no longer hangs: the limit must then hold
        assert point.threads_ran == 1, point
    else:
        assert point.error == "no answer within 3 s (killed)"


def test_a_file_that_is_no_library_is_listed_with_the_loaders_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A site's directory (BLASPROF_BLAS_PATH) holding a broken libopenblas: found, the
    loader's one-line reason kept, and a GEMM through it fails the same way."""
    (tmp_path / "libopenblas.so.0").write_bytes(b"\x7fELF not really\n\x1b[2J")
    monkeypatch.setenv(SITE_VARIABLE, str(tmp_path))
    (broken,) = [lib for lib in find() if Path(lib.path).parent == tmp_path]
    assert broken.member == "openblas" and broken.version is None
    assert broken.error and broken.error.startswith("worker exited 1: OSError")
    assert "\x1b" not in broken.error and "\n" not in broken.error
    point = time_gemm(broken, 64, threads=1)
    assert not point.ok and "OSError" in (point.error or "")


def test_hostile_ldconfig_lines_are_skipped(tmp_path: Path) -> None:
    real = tmp_path / "libblas.so.3"
    real.write_bytes(b"")
    text = "\n".join(
        [
            "3 libs found in cache `/etc/ld.so.cache'",
            f"\tlibblas.so.3 (libc6) => {real}",  # another word size
            f"\tlibblas.so.3 (libc6,x86-64) => {real}",
            f"\tlibopenblas.so.0 (libc6,x86-64) => {tmp_path}/missing.so",
            "\tlibblis.so.4 (libc6,x86-64) => relative/libblis.so.4",
            f"\tlibatlas.so.3 (libc6,x86-64) => {real}\x1b[2J",
            f"\tlibz.so.1 (libc6,x86-64) => {real}",
            "garbage \x00\x07 => /etc/passwd",
        ]
    )
    assert parse_ld_cache(text, "x86-64") == {"libblas.so.3": real}


@pytest.mark.parametrize(
    ("path", "member"),
    [
        ("/usr/lib/x86_64-linux-gnu/openblas-serial/libopenblas.so.0", "openblas"),
        ("/usr/lib64/libopenblasp.so.0", "openblas"),
        ("/usr/lib/x86_64-linux-gnu/libopenblas64.so.0", "openblas"),
        ("/venv/lib/python3.12/site-packages/numpy.libs/libopenblas64_p-r0-0cf96a72.so", "numpy"),
        ("/venv/lib/python3.12/site-packages/scipy.libs/libscipy_openblas-1e1a9a06.so", "scipy"),
        ("/usr/lib/x86_64-linux-gnu/blis-pthread/libblis.so.4", "blis"),
        ("/usr/lib/x86_64-linux-gnu/atlas/libblas.so.3", "atlas"),
        ("/usr/lib64/atlas/libtatlas.so.3", "atlas"),
        ("/usr/lib/x86_64-linux-gnu/blas/libblas.so.3", "reference"),
        ("/opt/intel/oneapi/mkl/latest/lib/libmkl_rt.so.2", "mkl"),
        ("/usr/lib64/libflexiblas.so.3", "flexiblas"),
        ("/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3", None),  # libopenblas's face
        ("/usr/lib/x86_64-linux-gnu/libz.so.1", None),
    ],
)
def test_each_file_is_claimed_by_one_member(path: str, member: str | None) -> None:
    claimed = [name for name, kind in MEMBERS.items() if kind.claims(Path(path))]
    assert claimed == ([member] if member else []), claimed


def test_flexiblas_is_designed_and_said_untested() -> None:
    flexi = MEMBERS["flexiblas"]
    assert flexi.tested is False and flexi.backend_variable == "FLEXIBLAS"
    assert member_for(Path("/usr/lib64/libflexiblas.so.3")) is flexi
    assert member_for(Path("/opt/venv/lib/libmkl_rt.so.2")) is MEMBERS["mkl"]


@pytest.mark.parametrize(
    "backend, variables",
    [
        ("OPENBLAS-OPENMP", ("OMP_NUM_THREADS",)),
        ("openblas-pthread", ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")),
        ("BLIS-THREADS", ("BLIS_NUM_THREADS", "OMP_NUM_THREADS")),
        ("MKL-GNU", ("MKL_NUM_THREADS", "OMP_NUM_THREADS")),
        ("OPENBLAS-SERIAL", ()),
        ("NETLIB", ()),
        ("", ()),
    ],
)
def test_flexiblas_takes_the_variables_of_the_backend_it_names(
    backend: str, variables: tuple[str, ...]
) -> None:
    """Designed only: no FlexiBLAS can run here, so its backend's name is given, and the
    variables are those of the member that backend is (checked by experiment above)."""
    from profiler.blas.flexiblas import backend_variables

    assert backend_variables(backend) == variables


def test_the_worker_of_a_described_library_imports_no_numpy() -> None:
    """Describing every library must stay cheap: its worker loads only the library."""
    lib = LIBRARIES["reference"] if "reference" in LIBRARIES else next(iter(LIBRARIES.values()))
    code = (
        "import sys, json\nfrom profiler.blas import worker\n"
        f"worker.main(['w', json.dumps({{'action': 'describe', 'member': {lib.member!r}, "
        f"'path': {lib.path!r}}})])\nprint('numpy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "False"


def test_found_libraries_round_trip_as_plain_data() -> None:
    import json

    for lib in _FOUND:
        plain = lib.to_dict()
        assert json.loads(json.dumps(plain)) == plain
        assert Library.from_dict(plain) == lib


def test_select_takes_a_label_a_member_name_or_a_path() -> None:
    from profiler.blas.run import select
    from profiler.errors import UsageError

    for lib in LIBRARIES.values():
        assert select(_FOUND, lib.label) == lib
        assert select(_FOUND, lib.path) == lib
    assert select(_FOUND, "numpy").member == "numpy"
    if (LIBDIR / "libopenblas.so.0").exists():  # the alternatives' link, resolved
        chosen = select(_FOUND, str(LIBDIR / "libopenblas.so.0"))
        assert chosen.member == "openblas" and chosen.is_libblas_so_3 is (
            Path(chosen.path).parent == (LIBDIR / "libblas.so.3").resolve().parent
        )
    with pytest.raises(UsageError, match=r"no BLAS library 'nope \[2J' on this node; found: numpy"):
        select(_FOUND, "nope\x1b[2J")
    broken = Library(label="x", member="openblas", title="t", path="/x", error="worker exited 1")
    with pytest.raises(UsageError, match="cannot be used: worker exited 1"):
        select([broken], "x")


@pytest.mark.parametrize(
    ("before", "after", "ran"),
    [
        ({1: 0.0, 2: 0.0, 3: 5.0}, {1: 1.0, 2: 0.95, 3: 5.01}, 2),  # an idle pool thread
        ({1: 0.0}, {1: 0.5, 2: 0.5}, 2),  # a thread started during the loop
        ({1: 0.0, 2: 0.0}, {1: 1.0, 2: 0.1}, 1),  # a helper that did a tenth
        ({1: 1.0}, {1: 1.0}, None),  # no CPU time at all: no figure
        ({}, {}, None),
    ],
)
def test_threads_that_ran_count_only_those_that_shared_the_work(
    before: dict[int, float], after: dict[int, float], ran: int | None
) -> None:
    """A fake beside the real measurements above: the counting rule on made-up clocks."""
    from profiler.blas.worker import threads_that_ran

    assert threads_that_ran(before, after) == ran


@pytest.mark.parametrize(
    ("dtype", "n", "threads"), [("complex128", 8, 1), ("float64", 0, 1), ("float64", 8, 0)]
)
def test_a_point_that_cannot_be_timed_is_refused_before_any_worker(
    dtype: str, n: int, threads: int
) -> None:
    with pytest.raises(ValueError, match="a GEMM point needs float32 or float64"):
        time_gemm(next(iter(LIBRARIES.values())), n, dtype, threads=threads, worker=("false",))
