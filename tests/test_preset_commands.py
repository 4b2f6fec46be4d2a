"""The commands around presets, through the real console script: presets write, preset,
env, run, wrap, check, and the slurm_setup lines for submitit users."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from profiler.jobstart.apply import MARKER, slurm_setup
from tests import forms
from tests.conftest import run_blasprof


@pytest.fixture(scope="module")
def written(
    calibrated: dict[str, Any], blasprof_exe: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """`blasprof presets write --out DIR` from the shared calibration's database."""
    directory = tmp_path_factory.mktemp("written")
    env = {**calibrated["env"], "BLASPROF_PRESETS": str(directory)}
    done = run_blasprof(blasprof_exe, "presets", "write", "--out", str(directory), env=env)
    assert done.returncode == 0, done.stderr
    return {"dir": directory, "env": env, "stdout": done.stdout}


def _job_env(written: dict[str, Any], tmp_path: Path, **extra: str) -> dict[str, str]:
    env = forms.base_env(tmp_path)
    env.update(PATH=os.environ["PATH"], BLASPROF_PRESETS=str(written["dir"]), **extra)
    env["BLASPROF_HOME"] = written["env"]["BLASPROF_HOME"]
    return env


def test_presets_write_says_how_each_form_is_loaded(written: dict[str, Any]) -> None:
    directory = written["dir"]
    for name in ("blasprof.sh", "blasprof.csh", "blas_preset.py", "blasprof.json"):
        assert (directory / name).is_file(), name
    assert (directory / "modulefiles" / "blasprof.lua").is_file()
    out = written["stdout"]
    for text in (
        f". {directory}/blasprof.sh",
        f"source {directory}/blasprof.csh",
        f"PYTHONPATH={directory}",
        f"module use {directory}/modulefiles && module load blasprof",
        "blasprof wrap job.sh",
        "taskprolog.sh",
    ):
        assert text in out, text


@pytest.mark.parametrize("fmt", ["sh", "csh", "py", "json", "lua"])
def test_preset_prints_a_node_types_file_in_each_form(
    fmt: str, written: dict[str, Any], blasprof_exe: str
) -> None:
    done = run_blasprof(blasprof_exe, "preset", "tiny-node", "--format", fmt, env=written["env"])
    assert done.returncode == 0, done.stderr
    name = {"py": "blas_preset_tiny_node.py", "lua": "modulefiles/blasprof-tiny-node.lua"}
    assert done.stdout == (written["dir"] / name.get(fmt, f"tiny-node.{fmt}")).read_text()


@pytest.mark.parametrize("shell", ["sh", "csh"])
def test_env_prints_what_the_dispatcher_does(
    shell: str, written: dict[str, Any], blasprof_exe: str, tmp_path: Path
) -> None:
    env = _job_env(written, tmp_path, BLASPROF_WORKERS="2", NUMEXPR_NUM_THREADS="7")
    done = run_blasprof(blasprof_exe, "env", "--shell", shell, env=env)
    assert done.returncode == 0, done.stderr
    if shell == "csh":  # as a csh user types it
        script = ["tcsh", "-f", "-c", f"eval `{blasprof_exe} env --shell csh`; env -0"]
    else:
        script = ["dash", "-c", f'eval "$({blasprof_exe} env)"; env -0']
    loaded = subprocess.run(script, env=env, capture_output=True, check=True)
    after = dict(item.split("=", 1) for item in loaded.stdout.decode().split("\0") if "=" in item)
    expected = forms.shell("dash")(written["dir"], env)
    assert {k: after.get(k) for k in forms.WATCHED} == expected.variables
    assert "blasprof: keeping NUMEXPR_NUM_THREADS" in done.stderr
    doc = json.loads(run_blasprof(blasprof_exe, "env", "--json", env=env).stdout)
    assert doc["node_type"] == "tiny-node" and doc["workers"] == 2


def test_env_without_presets_says_what_to_do(blasprof_exe: str, tmp_path: Path) -> None:
    env = {**forms.base_env(tmp_path), "PATH": os.environ["PATH"], "BLASPROF_HOME": str(tmp_path)}
    done = run_blasprof(blasprof_exe, "env", env=env)
    assert done.returncode == 2 and "blasprof presets write" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_run_starts_the_command_under_its_preset(
    written: dict[str, Any], blasprof_exe: str, tmp_path: Path
) -> None:
    env = _job_env(written, tmp_path)
    done = run_blasprof(
        blasprof_exe, "run", "--workers", "64", "--", "sh", "-c", 'echo "$BLASPROF_PRESET"', env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("tiny-node:") and done.stdout.strip().endswith(":1")
    missing = run_blasprof(blasprof_exe, "run", "--", "no-such-command-here", env=env)
    assert missing.returncode == 2 and "command not found" in missing.stderr


def test_wrap_adds_the_load_line_once(
    written: dict[str, Any], blasprof_exe: str, tmp_path: Path
) -> None:
    script = tmp_path / "job.sh"
    script.write_text(
        '#!/bin/sh\n#SBATCH -n 1\n\n#SBATCH --time=5\necho "$BLASPROF_PRESET $OMP_NUM_THREADS"\n'
    )
    script.chmod(0o750)
    env = _job_env(written, tmp_path)
    for _ in range(2):
        done = run_blasprof(blasprof_exe, "wrap", str(script), env=env)
        assert done.returncode == 0, done.stderr
    text = script.read_text()
    assert text.count(MARKER) == 1 and script.stat().st_mode & 0o777 == 0o750
    lines = text.splitlines()
    assert lines[:4] == ["#!/bin/sh", "#SBATCH -n 1", "", "#SBATCH --time=5"]
    assert lines[4] == MARKER and lines[5].startswith(". ")
    out = subprocess.run([str(script)], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.startswith("tiny-node:")
    csh = tmp_path / "job.csh"
    csh.write_text('#!/bin/tcsh -f\n#SBATCH -n 1\necho "$BLASPROF_PRESET"\n')
    printed = run_blasprof(blasprof_exe, "wrap", str(csh), "-o", "-", env=env).stdout
    assert f"source '{written['dir']}/blasprof.csh'" in printed
    (tmp_path / "job2.csh").write_text(printed)
    out = subprocess.run(
        ["tcsh", "-f", str(tmp_path / "job2.csh")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.startswith("tiny-node:")


def test_check_says_whether_the_preset_took_effect(
    written: dict[str, Any], blasprof_exe: str, tmp_path: Path
) -> None:
    env = _job_env(written, tmp_path)
    loaded = forms.shell("dash")(written["dir"], env)
    applied = {**env, **{k: v for k, v in loaded.variables.items() if v is not None}}
    ok = run_blasprof(blasprof_exe, "check", "--json", env=applied)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["took_effect"] is True and any(lib["user_api"] == "blas" for lib in doc["libraries"])
    # the job changed a variable after loading the preset: its BLAS does not run the count
    threads = int(loaded.variables["BLASPROF_PRESET"].rsplit(":", 1)[1])
    other = str(2 if threads == 1 else 1)
    changed = {**applied, "OPENBLAS_NUM_THREADS": other, "OMP_NUM_THREADS": other}
    bad = run_blasprof(blasprof_exe, "check", env=changed)
    assert bad.returncode == 1 and "did NOT take effect" in bad.stdout
    assert f"OPENBLAS_NUM_THREADS={other}" in bad.stdout
    none = run_blasprof(blasprof_exe, "check", env=env)
    assert none.returncode == 1 and "BLASPROF_PRESET is not set" in none.stdout


def test_slurm_setup_lines_load_the_preset_in_a_job(
    written: dict[str, Any], tmp_path: Path
) -> None:
    lines = slurm_setup(written["dir"])
    assert lines[0] == MARKER
    script = "\n".join([*lines, 'echo "$BLASPROF_PRESET"'])
    env = _job_env(written, tmp_path)
    out = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("tiny-node:") and out.stderr == ""
    code = "import sys; from profiler.jobstart.apply import slurm_setup; print(slurm_setup()[1])"
    shown = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert shown.stdout.strip() == f". {written['dir']}/blasprof.sh"


def test_workers_means_the_processes_each_launched_task_runs_in_every_form(
    blasprof_exe: str, tmp_path: Path
) -> None:
    """srun -n 2 on 8 CPUs, each task running 2 workers: 4 processes share the node, so the
    4-worker row (2 threads) applies in env, run and the Python form alike."""
    from profiler.jobstart.forms.files import write_presets
    from tests.builders import node_x

    directory = tmp_path / "presets"
    directory.mkdir()
    write_presets([node_x()], directory)
    env = {**forms.base_env(tmp_path), "PATH": os.environ["PATH"]}
    env.update(
        BLASPROF_PRESETS=str(directory), BLASPROF_CPUS="8", SLURM_JOB_PARTITION="px",
        SLURM_STEP_TASKS_PER_NODE="2", SLURM_NODEID="0",
    )  # fmt: skip
    # the preset's directory first; blasprof itself from where this test imports it
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(directory), env.get("PYTHONPATH")]))
    printed = run_blasprof(blasprof_exe, "env", "--workers", "2", env=env)
    assert "export OMP_NUM_THREADS='2'" in printed.stdout.splitlines(), printed.stderr
    ran = run_blasprof(
        blasprof_exe, "run", "--workers", "2", "--", "sh", "-c", "echo $OPENBLAS_NUM_THREADS",
        env=env,
    )  # fmt: skip
    assert ran.stdout == "2\n", ran.stderr
    code = "import blas_preset; print(blas_preset.threads(workers=2), blas_preset.THREADS)"
    py = subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True)
    assert py.stdout == "2 4\n", py.stderr


@pytest.mark.parametrize(
    "first, body",
    [
        ("#!/usr/bin/env python3", "import sys\nsys.exit(0)\n"),
        ("#!/usr/bin/python3 -u", "print('ok')\n"),
        ("#!/usr/bin/perl -w", 'print "ok\\n";\n'),
        ("#!/usr/bin/env -S perl -w", 'print "ok\\n";\n'),
    ],
)
def test_wrap_refuses_a_script_that_sh_and_csh_do_not_run(
    first: str, body: str, blasprof_exe: str, tmp_path: Path
) -> None:
    """The #SBATCH header is shared by every interpreter, the load line is not."""
    script = tmp_path / "job"
    text = f"{first}\n#SBATCH -n 1\n#SBATCH --time=5\n{body}"
    script.write_text(text)
    env = {**forms.base_env(tmp_path), "PATH": os.environ["PATH"]}
    env["BLASPROF_PRESETS"] = str(tmp_path)
    for out in ((), ("-o", "-"), ("-o", str(tmp_path / "out"))):
        done = run_blasprof(blasprof_exe, "wrap", str(script), *out, env=env)
        assert done.returncode == 2 and done.stdout == "", done.stderr
        (line,) = done.stderr.splitlines()
        assert str(script) in line and "blas_preset" in line, line
    assert script.read_text() == text and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "first", ["#!/bin/bash -l", "#!/usr/bin/env bash", "#!/usr/bin/env -S zsh -f", "#!/bin/ksh"]
)
def test_wrap_takes_the_sh_family(first: str, blasprof_exe: str, tmp_path: Path) -> None:
    script = tmp_path / "job"
    script.write_text(f"{first}\n#SBATCH -n 1\necho hi\n")
    env = {**forms.base_env(tmp_path), "PATH": os.environ["PATH"]}
    env["BLASPROF_PRESETS"] = str(tmp_path)
    done = run_blasprof(blasprof_exe, "wrap", str(script), "-o", "-", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[2:4] == [MARKER, f". {tmp_path}/blasprof.sh"]


def test_env_and_run_give_each_library_its_own_variable(blasprof_exe: str, tmp_path: Path) -> None:
    """``blasprof env`` and ``run`` apply the same per-library rule as the forms."""
    from profiler.jobstart.forms.files import write_presets
    from tests.builders import LIBS_RECORD, node_l

    directory = tmp_path / "presets"
    directory.mkdir()
    write_presets([node_l()], directory)
    env = {**forms.base_env(tmp_path), "PATH": os.environ["PATH"]}
    env.update(BLASPROF_PRESETS=str(directory), BLASPROF_CPUS="64", SLURM_JOB_PARTITION="pl")
    printed = run_blasprof(blasprof_exe, "env", env=env).stdout.splitlines()
    for line in (
        "BLIS_NUM_THREADS='3'",
        "MKL_NUM_THREADS='5'",
        "OMP_NUM_THREADS='2'",
        "OPENBLAS_NUM_THREADS='6'",
        f"BLASPROF_PRESET='node-l:large:6:{LIBS_RECORD}'",
    ):
        assert f"export {line}" in printed, printed  # fmt: skip
    assert not any("OMP_THREAD_LIMIT" in line for line in printed)
    ran = run_blasprof(
        blasprof_exe, "run", "--", "sh", "-c", "echo $BLIS_NUM_THREADS $OMP_NUM_THREADS", env=env
    )
    assert ran.stdout == "3 2\n", ran.stderr
