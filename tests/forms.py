"""Loading preset files the way jobs do, in the real interpreters, for the preset tests.

Each loader starts a fresh process from a given environment (optionally under a wrapper
such as ``taskset``), loads one form, and returns the variables it left and the notes it
printed (stderr lines starting ``blasprof: ``) plus anything else it printed on stderr.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from profiler.jobstart.budget import THREAD_VARIABLES, WATCHED_VARIABLES, plan
from profiler.jobstart.detect import detect

__all__ = [
    "WATCHED",
    "Loaded",
    "available",
    "base_env",
    "csh",
    "lmod",
    "python",
    "reference",
    "shell",
    "task_prolog",
]

#: what a load may change, and what every check compares
WATCHED = (
    *THREAD_VARIABLES,
    *WATCHED_VARIABLES,
    "BLASPROF_PRESET",
    "BLASPROF_PRESET_SET",
    "OMP_THREAD_LIMIT",  # never set: it hangs an OpenMP OpenBLAS
)
LMOD_INIT = Path("/usr/share/lmod/lmod/init/bash")
_STRIPPED = (
    "BLASPROF_",
    "SLURM_",
    "OMPI_",
    "PMI",
    "MPI_",
    "MV2_",
    "LMOD",
    "MODULE",
    "_ModuleTable",
)


@dataclass(frozen=True)
class Loaded:
    """What one load left behind."""

    variables: dict[str, str | None]
    notes: list[str]
    other_stderr: list[str]


def base_env(home: Path) -> dict[str, str]:
    """This process's environment without anything that describes a job, a launcher, a
    preset or a module system."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_STRIPPED) and k not in WATCHED and not k.startswith("__LMOD")
    }
    env["HOME"] = str(home)
    return env


def _split_env(raw: bytes) -> dict[str, str]:
    out = {}
    for item in raw.split(b"\0"):
        name, sep, value = item.partition(b"=")
        if sep:
            out[name.decode("latin-1")] = value.decode("utf-8", "surrogateescape")
    return out


def _loaded(done: subprocess.CompletedProcess[bytes], env: dict[str, str]) -> Loaded:
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    after = _split_env(done.stdout)
    lines = done.stderr.decode("utf-8", "replace").splitlines()
    notes = [line[len("blasprof: ") :] for line in lines if line.startswith("blasprof: ")]
    others = [line for line in lines if line.strip() and not line.startswith("blasprof: ")]
    return Loaded({k: after.get(k) for k in WATCHED}, notes, others)


def _run(argv: Sequence[str], env: dict[str, str], wrapper: Sequence[str], cwd: Path) -> Any:
    return subprocess.run(
        [*wrapper, *argv], env=env, capture_output=True, timeout=60, cwd=cwd, check=False
    )


def shell(name: str, file_name: str = "blasprof.sh") -> Callable[..., Loaded]:
    """Source the sh form in shell ``name`` under ``set -eu`` (zsh and ksh as they are)."""

    def load(directory: Path, env: dict[str, str], wrapper: Sequence[str] = ()) -> Loaded:
        script = f"set -eu\n. '{directory}/{file_name}'\nenv -0"
        done = _run([name, "-c", script], env, wrapper, directory)
        return _loaded(done, env)

    load.__name__ = name
    return load


def csh(file_name: str = "blasprof.csh") -> Callable[..., Loaded]:
    def load(directory: Path, env: dict[str, str], wrapper: Sequence[str] = ()) -> Loaded:
        done = _run(
            ["tcsh", "-f", "-c", f"source '{directory}/{file_name}'; env -0"],
            env,
            wrapper,
            directory,
        )
        return _loaded(done, env)

    load.__name__ = "tcsh"
    return load


def task_prolog(directory: Path, env: dict[str, str], wrapper: Sequence[str] = ()) -> Loaded:
    """The sh dispatcher printing ``export``/``unset`` lines, applied the way slurmstepd
    applies a TaskProlog's output."""
    done = _run(
        ["sh", str(directory / "blasprof.sh")], {**env, "BLASPROF_EMIT": "sh"}, wrapper, directory
    )
    assert done.returncode == 0, done.stderr
    after = dict(env)
    for line in done.stdout.decode().splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            after[name] = value
        elif line.startswith("unset "):
            after.pop(line[len("unset ") :], None)
        else:
            assert not line.strip(), line
    payload = b"\0".join(f"{k}={v}".encode() for k, v in after.items())
    fake = subprocess.CompletedProcess(done.args, 0, payload, done.stderr)
    return _loaded(fake, env)


def python(module: str = "blas_preset") -> Callable[..., Loaded]:
    """``import blas_preset`` in a fresh Python without site-packages (-S)."""

    def load(directory: Path, env: dict[str, str], wrapper: Sequence[str] = ()) -> Loaded:
        code = (
            f"import {module}, os, sys\n"
            "heavy = [m for m in ('numpy', 'threadpoolctl') if m in sys.modules]\n"
            "assert not heavy, heavy\n"
            "pairs = (f'{k}={v}'.encode() for k, v in os.environ.items())\n"
            "sys.stdout.buffer.write(b'\\0'.join(pairs))\n"
        )
        run_env = {**env, "PYTHONPATH": str(directory)}
        done = _run([sys.executable, "-S", "-c", code], run_env, wrapper, directory)
        return _loaded(done, env)

    load.__name__ = "python"
    return load


def lmod(module: str = "blasprof") -> Callable[..., Loaded]:
    """``module load blasprof`` through Lmod's own bash init."""

    def load(directory: Path, env: dict[str, str], wrapper: Sequence[str] = ()) -> Loaded:
        script = (
            f". '{LMOD_INIT}'\nmodule use '{directory}/modulefiles'\nmodule load {module}\nenv -0"
        )
        done = _run(["bash", "--norc", "--noprofile", "-c", script], env, wrapper, directory)
        return _loaded(done, env)

    load.__name__ = "lmod"
    return load


def available(loader: Callable[..., Loaded]) -> str | None:
    """Why ``loader`` cannot run here, or None."""
    name = loader.__name__
    if name == "lmod":
        return None if LMOD_INIT.exists() and shutil.which("lua5.3") else "Lmod is not installed"
    if name in ("dash", "bash", "zsh", "ksh", "tcsh"):
        return None if shutil.which(name) else f"{name} is not installed"
    return None


def reference(
    directory: Path, env: dict[str, str], usable: int | None = None, cores: int | None = None
) -> Loaded:
    """What profiler.jobstart.budget.plan says the dispatcher of ``directory`` must leave."""
    data = json.loads((directory / "blasprof.json").read_text())
    presets = {
        name: {
            "default": p["default"],
            "classes": {c: tuple(tuple(r) for r in rows) for c, rows in p["classes"].items()},
            "obeyed": tuple(p["obeyed"]),
            "blas": p.get("blas", "numpy"),
            "libraries": tuple(tuple(lib) for lib in p.get("libraries", ())),
        }
        for name, p in data["presets"].items()
    }
    rules = {kind: tuple(tuple(r) for r in pairs) for kind, pairs in data["rules"].items()}
    node_type, notes = detect(env, rules)
    done = plan(env, presets, node_type, usable=usable, cores=cores)
    after = {k: env.get(k) for k in WATCHED}
    for name in done["unset"]:
        after[name] = None
    after.update(done["set"])
    return Loaded(after, notes + done["notes"], [])


#: every form's loader, each in its real interpreter (the form matrix runs them all)
LOADERS = [
    shell("dash"),
    shell("bash"),
    shell("zsh"),
    shell("ksh"),
    csh(),
    task_prolog,
    python(),
    lmod(),
]
