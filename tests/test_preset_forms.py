"""One table of job situations, every preset form in its real interpreter: same variables.

Each situation (an environment, sometimes a CPU mask or a cgroup quota) is loaded by the sh
dispatcher in dash, bash, zsh and ksh (under ``set -eu``), the csh form in tcsh, the sh form
printing a Slurm TaskProlog's lines, ``import blas_preset`` in Python, and ``module load
blasprof`` in Lmod; every one must leave exactly the variables and notes that
``profiler.jobstart.budget.plan`` gives, and most situations also state the thread count by hand.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from profiler.jobstart.budget import THREAD_VARIABLES
from profiler.jobstart.cpus import cores_here
from profiler.jobstart.forms.files import write_presets
from tests import forms
from tests.builders import LIBS_RECORD, node_l, node_x, node_y
from tests.services import absent

LOADERS = forms.LOADERS


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two presets directories: "main" (node-x by partition px or this CPU, node-y by
    partition py, with MKL's variables) and "rules" (node-y by a feature, node-z by this
    hostname)."""
    main = tmp_path_factory.mktemp("main")
    mkl = ("MKL_NUM_THREADS", "MKL_DOMAIN_NUM_THREADS", "OMP_NUM_THREADS")
    _, warnings = write_presets([node_x(), node_y(variables=mkl)], main)
    assert warnings == []
    rules = tmp_path_factory.mktemp("rules")
    host = Path("/proc/sys/kernel/hostname").read_text().strip()
    node_z = node_y(node_type="node-z", partitions=(), hostnames=(host[:1] + "*",))
    _, warnings = write_presets([node_y(features=("genoa",), partitions=()), node_z], rules)
    libs = tmp_path_factory.mktemp("libs")
    _, warnings = write_presets([node_l(), node_y(partitions=("py",))], libs)
    assert warnings == []
    return {"main": main, "rules": rules, "libs": libs}


@dataclass(frozen=True)
class Situation:
    name: str
    env: dict[str, str]
    threads: int | None = None  # the count stated by hand, where it does not depend on here
    site: str = "main"
    wrapper: str = ""  # "taskset" or "cgroup"
    node_type: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: variables stated by hand (None: left unset)
    values: dict[str, str | None] = field(default_factory=dict)


CPUS64 = {"BLASPROF_CPUS": "64"}
LIBS_OURS = ":".join(THREAD_VARIABLES)
LIBS_SET = {
    "OMP_NUM_THREADS": "2",
    "OPENBLAS_NUM_THREADS": "6",
    "MKL_NUM_THREADS": "5",
    "BLIS_NUM_THREADS": "3",
    "VECLIB_MAXIMUM_THREADS": "6",
    "NUMEXPR_NUM_THREADS": "6",
    "BLASPROF_PRESET_SET": LIBS_OURS,
}
OURS = "OMP_NUM_THREADS:OPENBLAS_NUM_THREADS:MKL_NUM_THREADS"
SITUATIONS = [
    Situation("this CPU, nothing declared", {}, node_type="node-x"),
    Situation("partition py", {"SLURM_JOB_PARTITION": "py"}, node_type="node-y"),
    Situation("declared CPUs", {**CPUS64, "SLURM_JOB_PARTITION": "px"}, 6, node_type="node-x"),
    Situation("BLASPROF_WORKERS=3", {**CPUS64, "BLASPROF_WORKERS": "3"}, 4),
    Situation("BLASPROF_WORKERS=3 of 8 CPUs", {"BLASPROF_CPUS": "8", "BLASPROF_WORKERS": "3"}, 2),
    Situation(
        "srun -n 2 on 2 CPUs",
        {"SLURM_STEP_TASKS_PER_NODE": "2", "SLURM_CPUS_ON_NODE": "2", "SLURM_NODEID": "0"},
        1,
    ),
    Situation(
        "srun list, node 2",
        {**CPUS64, "SLURM_STEP_TASKS_PER_NODE": "4(x2),2", "SLURM_NODEID": "2"},
        4,
    ),
    Situation(
        "srun list, node 1",
        {**CPUS64, "SLURM_STEP_TASKS_PER_NODE": "4(x2),2", "SLURM_NODEID": "1"},
        2,
    ),
    Situation("srun list, no node id", {**CPUS64, "SLURM_STEP_TASKS_PER_NODE": "2,8(x3)"}, 1),
    Situation("Open MPI", {**CPUS64, "OMPI_COMM_WORLD_LOCAL_SIZE": "8"}, 1),
    Situation("MPICH / Intel MPI", {**CPUS64, "MPI_LOCALNRANKS": "4"}, 2),
    Situation("Cray PMI", {**CPUS64, "PMI_LOCAL_SIZE": "2"}, 4),
    Situation("PMIx", {**CPUS64, "PMIX_LOCAL_SIZE": "4"}, 2),
    Situation("MVAPICH2", {**CPUS64, "MV2_COMM_WORLD_LOCAL_SIZE": "8"}, 1),
    Situation("sbatch --ntasks-per-node", {**CPUS64, "SLURM_NTASKS_PER_NODE": "2"}, 4),
    Situation(
        "the launcher wins over BLASPROF_WORKERS",
        {**CPUS64, "OMPI_COMM_WORLD_LOCAL_SIZE": "2", "BLASPROF_WORKERS": "8"},
        4,
    ),
    Situation("SLURM_CPUS_PER_TASK caps", {**CPUS64, "SLURM_CPUS_PER_TASK": "3"}, 3),
    Situation(
        "SLURM_CPUS_ON_NODE is the job's share",
        {"SLURM_CPUS_ON_NODE": "1", "SLURM_JOB_PARTITION": "px"},
        1,
    ),
    Situation("size class small", {**CPUS64, "BLASPROF_SIZE_CLASS": "small"}, 1),
    Situation("size class medium", {**CPUS64, "BLASPROF_SIZE_CLASS": "medium"}, 4),
    Situation(
        "unknown size class",
        {**CPUS64, "BLASPROF_SIZE_CLASS": "huge"},
        6,
        notes=("BLASPROF_SIZE_CLASS is not one of: small medium large; using large",),
    ),
    Situation(
        "bad BLASPROF_WORKERS",
        {**CPUS64, "BLASPROF_WORKERS": "-3; reboot"},
        6,
        notes=("BLASPROF_WORKERS is not a whole number from 1 to 99999; using 1",),
    ),
    Situation("bad BLASPROF_CPUS", {"BLASPROF_CPUS": "0x10", "SLURM_CPUS_PER_TASK": "1"}, 1),
    *(
        Situation(f"odd SLURM_CPUS_PER_TASK {v!r}", {**CPUS64, "SLURM_CPUS_PER_TASK": v}, 6)
        for v in ("", "0", "00", "-3", "abc", "2x", "99999999999999999999", "²", " 4")
    ),
    *(
        Situation(f"leading zeros {v!r}", {**CPUS64, "BLASPROF_WORKERS": v}, 4)
        for v in ("02", "003", "0002")
    ),
    *(
        Situation(f"odd srun list {v!r}", {**CPUS64, "SLURM_STEP_TASKS_PER_NODE": v}, 6)
        for v in ("2(x", "(x2)", "2(x0)", "0", "2,,2", "2(x2", "2)x(2", "2(x1))")
    ),
    Situation(
        "an srun list with leading zeros", {**CPUS64, "SLURM_STEP_TASKS_PER_NODE": "08(x1)"}, 1
    ),
    Situation(
        "the user's OMP_NUM_THREADS is kept, and what would override it is not set",
        {**CPUS64, "OMP_NUM_THREADS": "1"},
        6,
        notes=(
            "keeping OMP_NUM_THREADS as set before the preset (it would set 6); "
            "BLASPROF_OVERRIDE=1 replaces them",
        ),
    ),
    Situation(
        "the user's NUMEXPR_NUM_THREADS is kept, the BLAS still set",
        {**CPUS64, "NUMEXPR_NUM_THREADS": "3"},
        6,
    ),
    Situation(
        "MKL: the user's MKL_DOMAIN_NUM_THREADS is respected",
        {**CPUS64, "SLURM_JOB_PARTITION": "py", "MKL_DOMAIN_NUM_THREADS": "MKL_BLAS=1"},
        2,
    ),
    Situation(
        "MKL: GOTO_NUM_THREADS is not MKL's",
        {**CPUS64, "SLURM_JOB_PARTITION": "py", "GOTO_NUM_THREADS": "1"},
        2,
    ),
    Situation(
        "BLASPROF_OVERRIDE=1 replaces the user's",
        {**CPUS64, "OMP_NUM_THREADS": "3", "BLASPROF_OVERRIDE": "1"},
        6,
        notes=("BLASPROF_OVERRIDE=1: replacing OMP_NUM_THREADS with 6",),
    ),
    Situation(
        "BLASPROF_OVERRIDE=1 unsets MKL_DOMAIN_NUM_THREADS",
        {
            **CPUS64,
            "SLURM_JOB_PARTITION": "py",
            "MKL_DOMAIN_NUM_THREADS": "x",
            "BLASPROF_OVERRIDE": "1",
        },
        2,
    ),
    Situation(
        "loaded again with another layout: its own values are replaced",
        {
            **CPUS64,
            "BLASPROF_WORKERS": "2",
            "OMP_NUM_THREADS": "6",
            "OPENBLAS_NUM_THREADS": "6",
            "MKL_NUM_THREADS": "6",
            "BLASPROF_PRESET": "node-x:large:6",
            "BLASPROF_PRESET_SET": OURS,
        },
        4,
    ),  # fmt: skip
    Situation(
        "loaded again after the user changed one: the rest of ours is unset",
        {
            **CPUS64,
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "6",
            "MKL_NUM_THREADS": "6",
            "BLASPROF_PRESET": "node-x:large:6",
            "BLASPROF_PRESET_SET": OURS,
        },
        6,
    ),  # fmt: skip
    Situation(
        "a record that is not ours to trust",
        {**CPUS64, "OMP_NUM_THREADS": "6", "BLASPROF_PRESET": "x:y:z", "BLASPROF_PRESET_SET": OURS},
        6,
    ),
    Situation(
        "BLASPROF_NODE_TYPE wins over the partition",
        {**CPUS64, "SLURM_JOB_PARTITION": "py", "BLASPROF_NODE_TYPE": "node-x"},
        6,
        node_type="node-x",
    ),
    Situation(
        "BLASPROF_NODE_TYPE of an unknown type: one thread per core of the share",
        {"BLASPROF_NODE_TYPE": "other", "SLURM_JOB_PARTITION": "px"},
        node_type="other",
    ),
    Situation(
        "BLASPROF_NODE_TYPE that is no name",
        {"BLASPROF_NODE_TYPE": "../../etc/passwd", "SLURM_JOB_PARTITION": "py"},
        node_type="node-y",
        notes=("BLASPROF_NODE_TYPE is not a node type name; ignored",),
    ),
    Situation(
        "hostile values run nothing",
        {
            "BLASPROF_SIZE_CLASS": "$(touch pwned)",
            "SLURM_JOB_PARTITION": "`touch pwned`",
            "BLASPROF_WORKERS": "1;touch pwned",
            "SLURM_STEP_TASKS_PER_NODE": "$(touch pwned)(x2)",
            "BLASPROF_NODE_TYPE": "a\nb",
            "SLURM_JOB_CONSTRAINTS": "'; touch pwned; '",
            "OMP_NUM_THREADS": "$(touch pwned)",
            "BLASPROF_PRESET": "$(touch pwned):1",
            "BLASPROF_PRESET_SET": "OMP_NUM_THREADS;touch pwned",
        },
    ),  # fmt: skip
    Situation(
        "a feature the job asked for",
        {"SLURM_JOB_CONSTRAINTS": "genoa&ib"},
        2,
        "rules",
        node_type="node-y",
    ),
    Situation(
        "this hostname", {"SLURM_JOB_CONSTRAINTS": "rome|ib"}, site="rules", node_type="node-z"
    ),
    Situation(
        "libraries: each its own variable, OMP_NUM_THREADS the OpenMP OpenBLAS's",
        {**CPUS64, "SLURM_JOB_PARTITION": "pl"},
        6,
        "libs",
        values={**LIBS_SET, "BLASPROF_PRESET": "node-l:large:6:" + LIBS_RECORD},
    ),
    Situation(
        "libraries: every count capped by the share",
        {"BLASPROF_CPUS": "8", "BLASPROF_WORKERS": "4", "SLURM_JOB_PARTITION": "pl"},
        2,
        "libs",
        values={**dict.fromkeys(THREAD_VARIABLES, "2"), "BLASPROF_PRESET_SET": LIBS_OURS},
    ),
    Situation(
        "libraries: 3 CPUs cap MKL's 5 and numpy's 6, not BLIS's 3 or OpenMP's 2",
        {"BLASPROF_CPUS": "3", "SLURM_JOB_PARTITION": "pl"},
        3,
        "libs",
        values={
            **dict.fromkeys(THREAD_VARIABLES, "3"),
            "OMP_NUM_THREADS": "2",
            "BLASPROF_PRESET": "node-l:large:3:numpy=3:atlas=1:blis=3:mkl=3:openblas-openmp=2:"
            "openblas-pthread=3",
        },
    ),
    Situation(
        "libraries: a class no other library measured takes their default class's count",
        {**CPUS64, "SLURM_JOB_PARTITION": "pl", "BLASPROF_SIZE_CLASS": "small"},
        1,
        "libs",
        values={
            **LIBS_SET,
            "OPENBLAS_NUM_THREADS": "1",
            "VECLIB_MAXIMUM_THREADS": "1",
            "NUMEXPR_NUM_THREADS": "1",
        },
    ),
    Situation(
        "libraries: the user's OMP_NUM_THREADS is kept and nothing that would beat it is set",
        {**CPUS64, "SLURM_JOB_PARTITION": "pl", "OMP_NUM_THREADS": "4"},
        6,
        "libs",
        values={
            "OMP_NUM_THREADS": "4",
            "BLIS_NUM_THREADS": None,
            "MKL_NUM_THREADS": None,
            "OPENBLAS_NUM_THREADS": None,
            "NUMEXPR_NUM_THREADS": "6",
        },
    ),  # fmt: skip
    Situation(
        "libraries: the user's BLIS_NUM_THREADS blocks only what BLIS reads",
        {**CPUS64, "SLURM_JOB_PARTITION": "pl", "BLIS_NUM_THREADS": "1"},
        6,
        "libs",
        values={
            "BLIS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": None,
            "MKL_NUM_THREADS": "5",
            "OPENBLAS_NUM_THREADS": "6",
        },
    ),  # fmt: skip
    Situation(
        "libraries: BLASPROF_OVERRIDE=1 gives each its own count",
        {**CPUS64, "SLURM_JOB_PARTITION": "pl", "OMP_NUM_THREADS": "4", "BLASPROF_OVERRIDE": "1"},
        6,
        "libs",
        values=LIBS_SET,
    ),
    Situation(
        "libraries: a junk BLIS_NUM_THREADS is ignored",
        {**CPUS64, "SLURM_JOB_PARTITION": "pl", "BLIS_NUM_THREADS": "0x3"},
        6,
        "libs",
        notes=("BLIS_NUM_THREADS is not a whole number from 1 to 99999; ignored",),
        values=LIBS_SET,
    ),
    Situation(
        "libraries: loaded again with another layout, every own value is replaced",
        {
            **CPUS64,
            **LIBS_SET,
            "SLURM_JOB_PARTITION": "pl",
            "BLASPROF_WORKERS": "2",
            "BLASPROF_PRESET": "node-l:large:6:" + LIBS_RECORD,
        },
        4,
        "libs",
        values={
            **LIBS_SET,
            "OPENBLAS_NUM_THREADS": "4",
            "NUMEXPR_NUM_THREADS": "4",
            "VECLIB_MAXIMUM_THREADS": "4",
        },
    ),  # fmt: skip
    Situation(
        "libraries: a recorded count the user's value does not match is the user's",
        {
            **CPUS64,
            **LIBS_SET,
            "SLURM_JOB_PARTITION": "pl",
            "BLIS_NUM_THREADS": "7",
            "BLASPROF_PRESET": "node-l:large:6:" + LIBS_RECORD,
        },
        6,
        "libs",
        values={"BLIS_NUM_THREADS": "7", "OMP_NUM_THREADS": None, "MKL_NUM_THREADS": "5"},
    ),  # fmt: skip
    Situation(
        "libraries: a hostile record runs nothing",
        {
            **CPUS64,
            "SLURM_JOB_PARTITION": "pl",
            "OMP_NUM_THREADS": "2",
            "BLASPROF_PRESET": "a:b:1:x=$(touch pwned):y=`touch pwned`:z=2",
            "BLASPROF_PRESET_SET": "OMP_NUM_THREADS",
        },
        6,
        "libs",
        values=LIBS_SET,
    ),  # fmt: skip
    Situation(
        "libraries: a node type without them sets one count",
        {**CPUS64, "SLURM_JOB_PARTITION": "py"},
        2,
        "libs",
        values={**dict.fromkeys(THREAD_VARIABLES, "2"), "BLASPROF_PRESET": "node-y:medium:2"},
    ),
    Situation("an affinity mask of one CPU", {"SLURM_JOB_PARTITION": "px"}, 1, wrapper="taskset"),
    Situation("a cgroup quota of one CPU", {"SLURM_JOB_PARTITION": "px"}, 1, wrapper="cgroup"),
]


@contextlib.contextmanager
def _wrapper(kind: str) -> Iterator[tuple[list[str], int | None]]:
    """(argv prefix, usable CPUs it imposes) for a situation's wrapper."""
    if not kind:
        yield [], None
    elif kind == "taskset":
        if shutil.which("taskset") is None:
            absent("taskset is not installed (util-linux)")
        yield ["taskset", "-c", "0"], 1
    else:
        base = Path("/sys/fs/cgroup/cpu")
        group = base / f"blasprof-test-{os.getpid()}"
        try:
            group.mkdir()
            (group / "cpu.cfs_period_us").write_text("100000")
            (group / "cpu.cfs_quota_us").write_text("100000")
        except OSError as exc:
            # a kernel facility no install step provides (cgroup v2 hosts have no cpu/)
            pytest.skip(f"cannot make a cgroup v1 CPU quota here: {exc.strerror}")
        try:
            procs = group / "cgroup.procs"
            yield ["sh", "-c", f'echo $$ > {procs} && exec "$@"', "sh"], 1
        finally:
            for _ in range(50):
                with contextlib.suppress(OSError):
                    group.rmdir()
                    break
                subprocess.run(["sleep", "0.1"], check=False)


@pytest.mark.parametrize("situation", SITUATIONS, ids=lambda s: s.name)
def test_every_form_leaves_the_same_variables(
    situation: Situation, sites: dict[str, Path], tmp_path: Path
) -> None:
    directory = sites[situation.site]
    env = {**forms.base_env(tmp_path), **situation.env}
    with _wrapper(situation.wrapper) as (wrapper, usable):
        expected = forms.reference(directory, env, usable=usable, cores=usable)
        results = {}
        for loader in LOADERS:
            if (why := forms.available(loader)) is not None:
                absent(why)
            results[loader.__name__] = loader(directory, env, wrapper)
    for name, loaded in results.items():
        assert loaded.variables == expected.variables, name
        assert loaded.notes == expected.notes, name
        assert loaded.other_stderr == [], name
    assert not list(tmp_path.glob("pwned")) and not list(directory.glob("pwned"))
    record = expected.variables["BLASPROF_PRESET"] or ""
    if situation.node_type:
        assert record.split(":")[0] == situation.node_type
    if situation.threads is not None:
        assert record.split(":")[2] == str(situation.threads)
    for name, value in situation.values.items():
        assert expected.variables[name] == value, name
    assert expected.variables["OMP_THREAD_LIMIT"] is None
    for note in situation.notes:
        assert note in expected.notes


JUNK_COUNTS = ("abc", "0", "-1", "0x2", "1e3", " 2", "\u0662", "2 ")


@pytest.mark.parametrize("value", JUNK_COUNTS, ids=ascii)
def test_a_junk_thread_count_is_no_choice_every_form_applies_the_preset(
    value: str, sites: dict[str, Path], tmp_path: Path
) -> None:
    """A BLAS given junk runs its default (all CPUs): the preset replaces it and says so."""
    env = {
        **forms.base_env(tmp_path),
        "BLASPROF_CPUS": "2",
        "BLASPROF_WORKERS": "2",
        "SLURM_JOB_PARTITION": "px",
        "OMP_NUM_THREADS": value,
    }
    for loader in LOADERS:
        if (why := forms.available(loader)) is not None:
            absent(why)
        loaded = loader(sites["main"], env)
        assert {loaded.variables[v] for v in THREAD_VARIABLES} == {"1"}, loader.__name__
        assert loaded.variables["BLASPROF_PRESET"] == "node-x:large:1", loader.__name__
        assert loaded.notes == ["OMP_NUM_THREADS is not a whole number from 1 to 99999; ignored"], (
            loader.__name__
        )


@pytest.mark.parametrize("ifs", [":", "", ","], ids=["colon", "empty", "comma"])
@pytest.mark.parametrize("name", ["dash", "bash", "zsh", "ksh"])
def test_the_callers_ifs_neither_bends_the_sh_form_nor_changes(
    name: str, ifs: str, sites: dict[str, Path], tmp_path: Path
) -> None:
    """The affinity and the cgroup files are read with ``read``, which splits by IFS."""
    if shutil.which(name) is None:
        absent(f"{name} is not installed")
    directory = sites["main"]
    env = {**forms.base_env(tmp_path), "SLURM_JOB_PARTITION": "px"}
    script = (
        f"IFS='{ifs}'; set -eu\n. '{directory}/blasprof.sh'\n"
        f"[ \"${{IFS+set}}:$IFS\" = 'set:{ifs}' ] || exit 9\nenv -0"
    )
    done = subprocess.run([name, "-c", script], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, (done.returncode, done.stderr)
    loaded = forms._loaded(done, env)
    assert loaded.variables == forms.reference(directory, env).variables


def test_the_fallback_is_one_thread_per_core_and_says_so_once(
    sites: dict[str, Path], tmp_path: Path
) -> None:
    env = {**forms.base_env(tmp_path), "BLASPROF_NODE_TYPE": "other", "BLASPROF_WORKERS": "1"}
    loaded = forms.shell("dash")(sites["main"], env)
    threads = min(cores_here(), len(os.sched_getaffinity(0)))
    assert loaded.variables["OMP_NUM_THREADS"] == str(threads)
    (note,) = loaded.notes
    assert note.startswith("no preset for node type other (known: node-x node-y)")


def test_loading_twice_changes_nothing(sites: dict[str, Path], tmp_path: Path) -> None:
    env = {**forms.base_env(tmp_path), **CPUS64, "NUMEXPR_NUM_THREADS": "2"}
    for loader in (forms.shell("dash"), forms.python(), forms.lmod()):
        first = loader(sites["main"], env)
        again = {**env, **{k: v for k, v in first.variables.items() if v is not None}}
        second = loader(sites["main"], again)
        assert second.variables == first.variables, loader.__name__
        assert second.notes == first.notes, loader.__name__


def _lmod_session(directory: Path, env: dict[str, str], commands: str) -> list[dict[str, str]]:
    """The environment after each line of ``commands`` (shell lines between module
    commands), in one bash session with Lmod's own init."""
    if (why := forms.available(forms.lmod())) is not None:
        absent(why)
    steps = [
        f". '{forms.LMOD_INIT}'",
        f"module use '{directory}/modulefiles'",
        "env -0; echo -n @@",
    ]
    for line in commands.strip().splitlines():
        steps += [line, "env -0; echo -n @@"]
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", "\n".join(steps)],
        env=env, capture_output=True, timeout=120, cwd=directory,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [forms._split_env(chunk) for chunk in done.stdout.split(b"@@")[:-1]]


def _lmod_state(env: dict[str, str]) -> dict[str, str | None]:
    """The variables a load may change, and Lmod's stacks of them."""
    stacks = [k for k in env if k.startswith("__LMOD_STACK")]
    return {k: env.get(k) for k in (*forms.WATCHED, "BLASPROF_LMOD", *stacks)}


@pytest.mark.parametrize(
    "before",
    [
        {},
        {"OMP_NUM_THREADS": "3", "MKL_DOMAIN_NUM_THREADS": "MKL_BLAS=1"},
        {"OMP_NUM_THREADS": "3", "BLASPROF_OVERRIDE": "1"},
        {
            "OPENBLAS_NUM_THREADS": "6",
            "MKL_NUM_THREADS": "6",
            "OMP_NUM_THREADS": "1",
            "BLASPROF_PRESET": "node-x:large:6",
            "BLASPROF_PRESET_SET": OURS,
        },
    ],  # fmt: skip
    ids=["clean", "the user's", "override", "an sh load before"],
)
def test_lmod_unload_gives_back_every_value_from_before_the_load(
    before: dict[str, str], sites: dict[str, Path], tmp_path: Path
) -> None:
    env = {**forms.base_env(tmp_path), **CPUS64, "BLASPROF_WORKERS": "2", **before}
    states = _lmod_session(
        sites["main"],
        env,
        """
        module load blasprof
        export OMP_NUM_THREADS=8 OPENBLAS_NUM_THREADS=7 BLASPROF_WORKERS=1
        module load blasprof
        module unload blasprof
        module load blasprof
        module unload blasprof
        """,
    )
    first, loaded, changed, again, unloaded, reloaded, last = states
    assert loaded["BLASPROF_PRESET"] == "node-x:large:4"
    touched = loaded["BLASPROF_LMOD"].split(":")
    assert {"BLASPROF_PRESET", "OPENBLAS_NUM_THREADS"} & set(touched)
    # Lmod reloads a loaded module: back to before the load, then the rule again
    assert again["BLASPROF_PRESET"] == "node-x:large:6"
    # what the load changed is back as it was before it; what it left alone, as the job set it
    expected = {k: (first if k in touched else changed).get(k) for k in forms.WATCHED}
    assert _lmod_state(unloaded) == {**expected, "BLASPROF_LMOD": None}
    assert _lmod_state(reloaded) == _lmod_state(again)
    assert _lmod_state(last) == _lmod_state(unloaded)
    for state in (unloaded, last):
        assert not [k for k in state if k.startswith("__LMOD_STACK")]


@pytest.mark.parametrize("fmt", ["sh", "csh", "py", "lua"])
def test_a_node_types_own_file_applies_its_own_table(
    fmt: str, sites: dict[str, Path], tmp_path: Path
) -> None:
    """The per-type files ignore the dispatch rules: node-y's own file gives node-y's."""
    env = {**forms.base_env(tmp_path), "SLURM_JOB_PARTITION": "px", "BLASPROF_CPUS": "8"}
    loader = {
        "sh": forms.shell("dash", "node-y.sh"),
        "csh": forms.csh("node-y.csh"),
        "py": forms.python("blas_preset_node_y"),
        "lua": forms.lmod("blasprof-node-y"),
    }[fmt]
    if (why := forms.available(loader)) is not None:
        absent(why)
    loaded = loader(sites["main"], env)
    assert loaded.variables["BLASPROF_PRESET"] == "node-y:medium:2"
    assert loaded.variables["MKL_NUM_THREADS"] == "2"
    assert {loaded.variables[v] for v in THREAD_VARIABLES} == {"2"}


POOL = """
import blas_preset
import numpy  # loaded before the pool: forked workers inherit an initialised BLAS
from concurrent.futures import ProcessPoolExecutor
import multiprocessing
from threadpoolctl import threadpool_info

def blas_threads(_):
    import os
    info = [i for i in threadpool_info() if i["user_api"] == "blas"]
    return info[0]["num_threads"], os.environ["OMP_NUM_THREADS"]

with ProcessPoolExecutor(
    4, mp_context=multiprocessing.get_context("fork"),
    initializer=blas_preset.init_worker, initargs=(8,),
) as pool:
    print(blas_preset.threads(workers=8), sorted(set(pool.map(blas_threads, range(8)))))
"""


def test_a_pool_initializer_gives_each_worker_its_share(
    sites: dict[str, Path], tmp_path: Path
) -> None:
    """numpy is loaded before the pool, so the variables come too late for the workers'
    BLAS: the initializer limits it through threadpoolctl."""
    env = {**forms.base_env(tmp_path), "BLASPROF_CPUS": "8", "SLURM_JOB_PARTITION": "px"}
    env["PYTHONPATH"] = str(sites["main"])
    done = subprocess.run(
        [sys.executable, "-c", POOL], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(" ", 1) == ["1", "[(1, '1')]\n"]


def test_the_lmod_and_csh_forms_hold_no_copy_of_the_rule(sites: dict[str, Path]) -> None:
    """Two engines (Python, sh); the other forms apply what the sh one prints."""
    main = sites["main"]
    for path in (main / "modulefiles/blasprof.lua", main / "blasprof.csh"):
        code = "\n".join(ln for ln in path.read_text().splitlines() if ln[:2] not in ("--", "#"))
        for message in ("is not one of", "no preset for", "is not a whole number", "WORKERS"):
            assert message not in code, (path, message)
    assert "BLASPROF_EMIT=lmod" in (main / "modulefiles/blasprof.lua").read_text()


def test_lmod_without_the_sh_engine_beside_it_says_so_and_sets_nothing(
    sites: dict[str, Path], tmp_path: Path
) -> None:
    lone = tmp_path / "lone"
    shutil.copytree(sites["main"] / "modulefiles", lone / "modulefiles")
    loaded = forms.lmod()(lone, {**forms.base_env(tmp_path), **CPUS64})
    assert loaded.notes == [f"cannot read {lone}/blasprof.sh; no thread variable set"]
    assert set(loaded.variables.values()) == {None}
