"""Hostile strings in the database (SQLite and PostgreSQL) and in the probed CPU model:
`blasprof presets write` writes what is safe, and loading every form runs nothing.

Every hostile string tries to create the same marker file if any shell, Python or Lua ever
runs it; the test loads every form in its real interpreter and then looks for the marker.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, update

from db import open_database
from db.models import PresetRow
from tests import forms
from tests.builders import node_y
from tests.conftest import TINY, run_blasprof
from tests.services import absent


def hostile(mark: Path) -> list[str]:
    """Strings that run ``touch mark`` wherever they are pasted into code unescaped."""
    return [
        f"$(touch {mark})",
        f"`touch {mark}`",
        f'"; touch {mark}; "',
        f"'; touch {mark}; '",
        f'"""; import os; os.system("touch {mark}"); """',
        f"]]; os.execute('touch {mark}') --[[",
        f'"); os.execute("touch {mark}"); ("',
        f"x\ntouch {mark}\n",
        f"x\r\n!touch {mark}",
        "\x1b[31mred\x1b[0m\u202e",
        "ends with a backslash \\",
    ]


def _loaders() -> list[Callable[..., forms.Loaded]]:
    loaders = [forms.shell(s) for s in ("dash", "bash", "zsh", "ksh")]
    loaders += [forms.csh(), forms.task_prolog, forms.python(), forms.lmod()]
    for loader in loaders:
        if (why := forms.available(loader)) is not None:
            absent(why)
    return loaders


def _load_everything(directory: Path, env: dict[str, str]) -> int:
    """Load every form with each node type the dispatcher may pick; how many loads ran."""
    loads = 0
    for extra in ({}, {"BLASPROF_NODE_TYPE": "good"}, {"SLURM_JOB_PARTITION": "gp"}):
        for loader in _loaders():
            loader(directory, {**env, **extra})
            loads += 1
    return loads


def test_hostile_rows_are_left_out_and_run_nothing(
    db_url: str,  # noqa: F811
    blasprof_exe: str,
    tmp_path: Path,
) -> None:
    mark = tmp_path / "pwned"
    bad = hostile(mark)
    good = node_y(node_type="good", partitions=("gp",), cpu_model=bad[4], blas=bad[5])
    good = dataclasses.replace(good, created_at=bad[7], hostnames=(*bad[:3], "g*"))
    base = good.to_dict()

    def doc(**changes: object) -> dict[str, object]:
        return {**copy.deepcopy(base), **changes}

    planted = [doc(node_type=text) for text in bad[:4]]
    planted.append(doc(node_type="badclass", default_class=bad[0]))
    planted.append(doc(node_type="badclass2", default_class=bad[1]))
    planted[-1]["size_classes"][0]["name"] = bad[1]  # type: ignore[index]
    planted.append(doc(node_type="badcount"))
    planted[-1]["size_classes"][0]["threads"] = bad[2]  # type: ignore[index]
    planted.append(doc(node_type="badvariable", variables=[bad[3]]))
    planted.append(doc(node_type="badrules", partitions=bad, features=bad, cpu_model=bad[8]))
    database = open_database(db_url)
    rows = {}
    for row in [base, *planted]:
        name = str(row["node_type"])
        cal = database.create_calibration(name, executor="local", profile="quick", settings={})
        rows[database.store_preset(cal, dataclasses.replace(good, node_type=name))] = row
    database.close()
    engine = create_engine(db_url)
    with engine.begin() as conn:  # the rows as someone with write access left them
        for row_id, row in rows.items():
            conn.execute(update(PresetRow).where(PresetRow.id == row_id).values(data=row))
    engine.dispose()

    out = tmp_path / "out" / "presets"
    env = {**forms.base_env(tmp_path), "PATH": os.environ["PATH"], "BLASPROF_HOME": str(tmp_path)}
    done = run_blasprof(
        blasprof_exe, "--db", db_url, "presets", "write", "--out", str(out), env=env
    )
    assert done.returncode == 1, done.stderr  # the good rows are written, the bad named
    assert "Traceback" not in done.stderr
    left_out = [line for line in done.stderr.splitlines() if "left out of the presets" in line]
    assert len(left_out) == 8, done.stderr
    assert all(len(line) < 400 and "\x1b" not in line for line in done.stderr.splitlines())
    # nothing outside the directory, and only the safe type got its own files
    assert sorted(p.name for p in out.parent.iterdir()) == ["presets"]
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "__pycache__", "blas_preset.py", "blas_preset_badrules.py", "blas_preset_good.py",
            "blasprof.csh", "blasprof.json", "blasprof.sh", "badrules.csh", "badrules.json",
            "badrules.sh", "good.csh", "good.json", "good.sh", "modulefiles",
        ]
    )  # fmt: skip
    assert _load_everything(out, env) >= 3 * 6
    assert not mark.exists()
    # the free text is there, as data or comments only
    module = (out / "blas_preset_good.py").read_text()
    assert repr(bad[4]) in module
    for line in module.splitlines():
        if "touch " in line:
            assert line.startswith(("# ", "INFO = ")), line
    # the commands refuse or render the same rows safely
    for fmt in ("sh", "py", "lua", "csh", "json"):
        shown = run_blasprof(
            blasprof_exe, "--db", db_url, "preset", "good", "--format", fmt, env=env
        )
        assert shown.returncode == 0, shown.stderr
        bad_one = run_blasprof(
            blasprof_exe, "--db", db_url, "preset", "badcount", "--format", fmt, env=env
        )
        assert bad_one.returncode == 2 and "thread count" in bad_one.stderr
    assert not mark.exists()


def test_a_hostile_cpu_model_from_the_probe_runs_nothing(blasprof_exe: str, tmp_path: Path) -> None:
    """A real calibration on a machine whose /proc/cpuinfo names a hostile CPU (a private
    mount namespace); the dispatcher, run there, still recognises its node by that CPU."""
    if shutil.which("unshare") is None:
        absent("unshare is not installed (util-linux)")
    if os.geteuid() != 0:  # a privilege, not something to install
        pytest.skip("a private /proc/cpuinfo needs root")
    mark = tmp_path / "pwned"
    model = f'Evil """ $(touch {mark}) `touch {mark}` \'; touch {mark}; \' ]] @ 2.0GHz'
    cpuinfo = tmp_path / "cpuinfo"
    real = Path("/proc/cpuinfo").read_text()
    cpuinfo.write_text(
        "\n".join(
            f"model name\t: {model}" if line.startswith("model name") else line
            for line in real.splitlines()
        )
        + "\n"
    )
    env = {
        **forms.base_env(tmp_path),
        "PATH": os.environ["PATH"],
        "BLASPROF_HOME": str(tmp_path / "home"),
    }
    wrapper = [
        "unshare",
        "--mount",
        "sh",
        "-c",
        f'mount --bind "{cpuinfo}" /proc/cpuinfo && exec "$@"',
        "sh",
    ]
    calibrate = [blasprof_exe, "calibrate", "--executor", "local", "--node-type", "evil-cpu", *TINY]
    probe = subprocess.run(
        [*wrapper, *calibrate, "--no-verify", "--json"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if probe.returncode != 0 and "mount" in probe.stderr and "permission" in probe.stderr.lower():
        pytest.skip("mount namespaces are not allowed here")
    assert probe.returncode == 0, probe.stderr
    doc = json.loads(probe.stdout)  # the hostile model was probed and stored
    assert [n["cpu_model"] for n in doc["nodes"]] == [" ".join(model.split())]
    directory = tmp_path / "home" / "presets"
    for loader in _loaders():  # in the same private namespace
        loaded = loader(directory, env, wrapper)
        assert (loaded.variables["BLASPROF_PRESET"] or "").startswith("evil-cpu:"), loader
    assert not mark.exists()


def test_a_hostile_presets_directory_stays_in_comments(tmp_path: Path) -> None:
    """A directory name with a line break and a command substitution: the files that name it
    in comments are written and load cleanly; the csh files, which must name it in code,
    are not written, and the writer says so."""
    from profiler.jobstart.forms.files import write_presets

    directory = tmp_path / "a\n$(touch pwned)`touch pwned`\nb"
    directory.mkdir()
    paths, warnings = write_presets([node_y(node_type="good")], directory)
    assert any("csh files are not written" in w for w in warnings)
    assert not any(p.suffix == ".csh" for p in paths)
    env = forms.base_env(tmp_path)
    for loader in (forms.shell("dash"), forms.shell("bash"), forms.python(), forms.task_prolog):
        loaded = loader(directory, env)
        assert loaded.variables["BLASPROF_PRESET"] is not None and loaded.other_stderr == []
    assert not (directory / "pwned").exists() and not (tmp_path / "pwned").exists()


def _edited_presets(tmp_path: Path, edit: Callable[[dict], None]) -> Path:
    """A presets directory whose blasprof.json was edited after it was written."""
    from profiler.jobstart.forms.files import write_presets

    directory = tmp_path / "presets"
    directory.mkdir()
    write_presets([node_y(node_type="good", partitions=("gp",))], directory)
    path = directory / "blasprof.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    return directory


def _env_in_a_job(blasprof_exe: str, directory: Path, tmp_path: Path, shell: str) -> Any:
    env = {**forms.base_env(tmp_path), "PATH": os.environ["PATH"]}
    env.update(BLASPROF_PRESETS=str(directory), SLURM_JOB_PARTITION="gp")
    if shell == "csh":
        script = ["tcsh", "-f", "-c", f"eval `{blasprof_exe} env --shell csh`; env -0"]
    else:
        script = ["dash", "-c", f'eval "$({blasprof_exe} env)"; env -0']
    loaded = subprocess.run(script, env=env, capture_output=True, cwd=tmp_path, timeout=60)
    return loaded, run_blasprof(blasprof_exe, "env", "--shell", shell, env=env)


@pytest.mark.parametrize("shell", ["sh", "csh"])
def test_env_refuses_an_edited_presets_file_that_names_code(
    shell: str, blasprof_exe: str, tmp_path: Path
) -> None:
    mark = tmp_path / "pwned"

    def evil(doc: dict) -> None:
        doc["rules"]["partition"].insert(0, ["gp", f"a;touch {mark}"])
        doc["presets"][f"b`touch {mark}`"] = doc["presets"]["good"]

    directory = _edited_presets(tmp_path, evil)
    loaded, done = _env_in_a_job(blasprof_exe, directory, tmp_path, shell)
    assert not mark.exists()
    assert done.returncode == 1 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert str(directory / "blasprof.json") in line and "touch" in line, line
    assert "Traceback" not in loaded.stderr.decode()


def _library(doc: dict, label: str, variables: list[str], threads: object) -> None:
    """Give node type "good" of a blasprof.json one more library, a count for every class."""
    good = doc["presets"]["good"]
    good["libraries"] = [[label, variables, dict.fromkeys(good["classes"], threads)]]


def test_a_preset_whose_library_label_names_code_is_left_out(tmp_path: Path) -> None:
    from profiler.choice.preset import LibraryPreset
    from profiler.jobstart.forms.checked import UnsafePreset, bundle, single

    mark = tmp_path / "pwned"
    good = node_y(node_type="good")
    classes = good.size_classes
    bad = dataclasses.replace(
        good, node_type="bad", libraries=(LibraryPreset(f"b;touch {mark}", (), classes),)
    )
    with pytest.raises(UnsafePreset, match="BLAS library label"):
        single(bad)
    checked, warnings = bundle([good, bad])
    assert [e.name for e in checked.entries] == ["good"]
    assert any("left out" in w and "BLAS library label" in w for w in warnings)
    unknown = dataclasses.replace(
        good, libraries=(LibraryPreset("blis", ("OMP_THREAD_LIMIT",), classes),)
    )
    with pytest.raises(UnsafePreset, match="OMP_THREAD_LIMIT"):
        single(unknown)


@pytest.mark.parametrize(
    "what, edit, named",
    [
        ("no rules", lambda d: d.update(rules={}), "'partition'"),
        (
            "a class with no rows",
            lambda d: d["presets"]["good"]["classes"].update(medium=[]),
            "medium",
        ),
        (
            "a default that is no class",
            lambda d: d["presets"]["good"].update(default="huge"),
            "huge",
        ),
        (
            "a row of junk",
            lambda d: d["presets"]["good"]["classes"].update(medium=[[1, "2"]]),
            "'2'",
        ),
        ("no presets", lambda d: d.pop("presets"), "'presets'"),
        (
            "a library label that names code",
            lambda d: _library(d, "blis;touch x", ["BLIS_NUM_THREADS"], 1),
            "'blis;touch x'",
        ),
        (
            "a library count of junk",
            lambda d: _library(d, "blis", ["BLIS_NUM_THREADS"], "2;touch x"),
            "'2;touch x'",
        ),
        (
            "a library variable that is no thread variable",
            lambda d: _library(d, "blis", ["LD_PRELOAD"], 1),
            "'LD_PRELOAD'",
        ),
        (
            "a library missing a class",
            lambda d: d["presets"]["good"].update(libraries=[["blis", [], {"large": 1}]]),
            "every size class",
        ),
        (
            "a library named like the default",
            lambda d: _library(d, "numpy", ["OPENBLAS_NUM_THREADS"], 1),
            "named twice",
        ),
        ("not JSON", None, "not a blasprof presets file"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_damaged_presets_file_is_one_line_naming_it_and_exit_1(
    what: str, edit: Callable[[dict], None] | None, named: str, blasprof_exe: str, tmp_path: Path
) -> None:
    directory = _edited_presets(tmp_path, edit or (lambda d: None))
    if edit is None:
        (directory / "blasprof.json").write_text('{"presets": ')
    env = {**forms.base_env(tmp_path), "PATH": os.environ["PATH"]}
    env.update(BLASPROF_PRESETS=str(directory), SLURM_JOB_PARTITION="gp")
    for args in (("env",), ("env", "--shell", "csh"), ("run", "--", "true")):
        done = run_blasprof(blasprof_exe, *args, env=env)
        assert done.returncode == 1, (args, done.stderr)
        (line,) = done.stderr.splitlines()
        assert str(directory / "blasprof.json") in line and named in line, line


def test_env_quotes_every_value_it_prints(blasprof_exe: str, tmp_path: Path) -> None:
    directory = _edited_presets(tmp_path, lambda d: None)
    loaded, done = _env_in_a_job(blasprof_exe, directory, tmp_path, "sh")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines and all(re.fullmatch(r"export [A-Z_]+='[A-Za-z0-9:._-]+'", ln) for ln in lines), (
        lines
    )
    after = dict(i.split("=", 1) for i in loaded.stdout.decode().split("\0") if "=" in i)
    assert after["BLASPROF_PRESET"] == "good:medium:2"


@pytest.mark.parametrize("damaged", [True, False], ids=["damaged", "missing"])
def test_a_presets_path_with_control_characters_reaches_no_terminal(
    damaged: bool, blasprof_exe: str, tmp_path: Path
) -> None:
    directory = tmp_path / "p\x1b[31mred\x07"
    directory.mkdir()
    if damaged:
        (directory / "blasprof.json").write_text("{")
    env = {**forms.base_env(tmp_path), "PATH": os.environ["PATH"]}
    env["BLASPROF_PRESETS"] = str(directory)
    done = run_blasprof(blasprof_exe, "env", env=env)
    assert done.returncode == (1 if damaged else 2), done.stderr
    (line,) = done.stderr.splitlines()
    assert "red" in line and not any(ord(c) < 32 for c in line), ascii(line)
