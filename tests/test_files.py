"""Files and directories blasprof writes: what an output path may be, the modes of what it
creates whatever the umask, and a warning where others could change what jobs execute."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TINY, run_blasprof


def _one_line_exit_2(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_preset_output_replaces_a_regular_file_atomically(
    calibrated: dict[str, Any], blasprof_exe: str, tmp_path: Path
) -> None:
    target = tmp_path / "preset.sh"
    target.write_text("old\n")
    before = target.stat().st_ino
    proc = run_blasprof(blasprof_exe, "preset", "tiny-node", "-o", str(target),
                        env=calibrated["env"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "blasprof preset for node type tiny-node" in target.read_text()
    assert target.stat().st_ino != before  # a new file renamed over the old one
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_preset_output_refuses_what_is_not_a_regular_file(
    calibrated: dict[str, Any], blasprof_exe: str, tmp_path: Path
) -> None:
    env = calibrated["env"]
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    directory = tmp_path / "dir"
    directory.mkdir()
    to_fifo = tmp_path / "to-fifo"
    to_fifo.symlink_to(fifo)
    specials = [(fifo, "FIFO"), (directory, "directory"), (to_fifo, "FIFO")]
    if os.geteuid() == 0:  # a device of our own, a twin of /dev/full
        device = tmp_path / "full"
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 7))
        specials.append((device, "character device"))
    for path, kind in specials:
        proc = run_blasprof(blasprof_exe, "preset", "tiny-node", "-o", str(path), env=env)
        _one_line_exit_2(proc, kind)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and directory.is_dir() and to_fifo.is_symlink()
    if os.geteuid() == 0:
        assert stat.S_ISCHR(device.stat().st_mode)


def test_preset_output_through_a_symlink_writes_its_target_and_says_so(
    calibrated: dict[str, Any], blasprof_exe: str, tmp_path: Path
) -> None:
    real = tmp_path / "real.sh"
    real.write_text("old\n")
    link = tmp_path / "link.sh"
    link.symlink_to(real)
    dangling = tmp_path / "dangling.sh"
    dangling.symlink_to(tmp_path / "new.sh")
    for path, target in ((link, real), (dangling, tmp_path / "new.sh")):
        proc = run_blasprof(blasprof_exe, "preset", "tiny-node", "-o", str(path),
                            env=calibrated["env"])  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert f"{path} is a symbolic link: writing its target {target}" in proc.stderr
        assert path.is_symlink() and "blasprof preset for node type tiny-node" in target.read_text()


def _modes(root: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def test_dirs_and_files_have_explicit_modes_under_umask_000(
    home: Path, blasprof_exe: str, tmp_path: Path
) -> None:
    # a data dir whose parents do not exist either
    nested = tmp_path / "new-parent" / "data"
    env = {**os.environ, "BLASPROF_HOME": str(nested)}
    proc = subprocess.run(
        [blasprof_exe, "calibrate", "--executor", "debug", "--node-type", "m", *TINY,
         "--no-verify"],
        capture_output=True, text=True, env=env, preexec_fn=lambda: os.umask(0), check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    modes = _modes(nested)
    assert stat.S_IMODE((tmp_path / "new-parent").stat().st_mode) == 0o700
    assert modes["."] == 0o700  # the database and the job folders: the user's alone
    assert modes["jobs"] == 0o700 and modes["jobs/1"] == 0o700
    assert modes["blasprof.sqlite"] == 0o600
    assert modes["presets"] == 0o755 and modes["presets/m.sh"] == 0o644
    writable = {name: oct(m) for name, m in modes.items() if m & 0o022}
    assert not writable, writable
    # nothing was written anywhere that others may write, so nothing to warn about
    assert "warning" not in proc.stderr


def test_presets_written_where_others_can_write_get_a_warning(
    calibrated: dict[str, Any], blasprof_exe: str, tmp_path: Path
) -> None:
    env = calibrated["env"]
    private = tmp_path / "private"
    private.mkdir(mode=0o755)
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    below_open = open_dir / "presets"  # itself 0755, but its parent lets anyone rename it
    quiet = run_blasprof(blasprof_exe, "presets", "write", "--out", str(private), env=env)
    assert quiet.returncode == 0 and "warning" not in quiet.stderr, quiet.stderr
    for out, named in ((open_dir, open_dir), (below_open, open_dir)):
        proc = run_blasprof(blasprof_exe, "presets", "write", "--out", str(out), env=env)
        assert proc.returncode == 0, proc.stderr
        assert f"warning: others can write in {named} (mode 0777)" in proc.stderr
        assert (out / "blasprof.sh").is_file()


def test_a_directory_in_place_of_a_preset_file_fails_before_anything_is_stored(
    home: Path, blasprof_exe: str
) -> None:
    (home / "presets" / "modulefiles" / "blasprof-d.lua").mkdir(parents=True)
    proc = run_blasprof(blasprof_exe, "calibrate", "--executor", "debug", "--node-type", "d",
                        *TINY, "--no-verify")  # fmt: skip
    _one_line_exit_2(proc, "blasprof-d.lua: it is a directory")
    assert json.loads(run_blasprof(blasprof_exe, "list", "--json").stdout) == []
    assert not (home / "presets" / "blasprof.sh").exists()


def test_presets_write_checks_every_file_before_writing_any(
    calibrated: dict[str, Any], blasprof_exe: str, tmp_path: Path
) -> None:
    out = tmp_path / "presets"
    (out / "blas_preset.py").mkdir(parents=True)
    proc = run_blasprof(blasprof_exe, "presets", "write", "--out", str(out),
                        env=calibrated["env"])  # fmt: skip
    _one_line_exit_2(proc, "blas_preset.py: it is a directory")
    assert [p.name for p in out.iterdir()] == ["blas_preset.py"]


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_a_cluster_file_nested_too_deeply_is_one_line(
    home: Path, blasprof_exe: str, tmp_path: Path, depth: int
) -> None:
    cluster = tmp_path / "deep.toml"
    cluster.write_text("x = " + "[" * depth + "]" * depth + "\n")
    proc = run_blasprof(blasprof_exe, "calibrate", "--cluster", str(cluster))
    _one_line_exit_2(proc, "nested too deeply")


def _two_types(url: str) -> dict[str, int]:
    """A database with node types good and other, each with an adopted preset; their
    preset rows' ids."""
    import dataclasses

    from db import open_database
    from tests.builders import node_y

    rows = {}
    with open_database(url) as database:
        for name, partition in (("good", "gp"), ("other", "op")):
            preset = dataclasses.replace(node_y(), node_type=name, partitions=(partition,))
            cal = database.create_calibration(name, executor="local", profile="quick", settings={})
            rows[name] = database.store_preset(cal, preset)
    return rows


def test_a_row_that_is_not_a_preset_keeps_its_types_files_and_exits_1(
    home: Path, blasprof_exe: str, tmp_path: Path
) -> None:
    from sqlalchemy import create_engine, update

    from db.models import PresetRow
    from tests import forms

    url = f"sqlite:///{tmp_path / 'two.sqlite'}"
    rows = _two_types(url)
    out = tmp_path / "presets"
    first = run_blasprof(blasprof_exe, "--db", url, "presets", "write", "--out", str(out))
    assert first.returncode == 0, first.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name.startswith("other.")}
    engine = create_engine(url)
    with engine.begin() as conn:  # valid JSON, but not a preset
        conn.execute(
            update(PresetRow).where(PresetRow.id == rows["other"]).values(data={"not": "one"})
        )
    engine.dispose()
    again = run_blasprof(blasprof_exe, "--db", url, "presets", "write", "--out", str(out))
    assert again.returncode == 1, (again.stdout, again.stderr)
    assert "Traceback" not in again.stderr
    (line,) = [x for x in again.stderr.splitlines() if "stored preset" in x]
    assert line.startswith("blasprof: node type other: ") and "are kept" in line, line
    assert {n: (out / n).read_bytes() for n in before} == before
    listed = json.loads((out / "blasprof.json").read_text())["presets"]
    assert {"good", "other"} <= set(listed)
    # a job on that node type still gets its preset from the dispatcher
    loaded = forms.shell("dash")(out, {**forms.base_env(tmp_path), "SLURM_JOB_PARTITION": "op"})
    assert loaded.variables["OMP_NUM_THREADS"] is not None, loaded
    assert "other" in (loaded.variables["BLASPROF_PRESET"] or ""), loaded


def test_an_output_in_a_directory_that_does_not_exist_is_refused_not_created(
    calibrated: dict[str, Any], blasprof_exe: str, tmp_path: Path
) -> None:
    env = calibrated["env"]
    missing = tmp_path / "no-such-dir"
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\necho hello\n")
    for argv in (
        ["preset", "tiny-node", "-o", str(missing / "x.sh")],
        ["wrap", str(script), "-o", str(missing / "x")],
    ):
        proc = run_blasprof(blasprof_exe, *argv, env=env)
        _one_line_exit_2(proc, f"directory {missing} does not exist")
        assert not missing.exists()


def test_presets_write_refuses_an_empty_out(
    calibrated: dict[str, Any], blasprof_exe: str, tmp_path: Path
) -> None:
    proc = subprocess.run(
        [blasprof_exe, "presets", "write", "--out", ""],
        capture_output=True, text=True, env=calibrated["env"], cwd=tmp_path, check=False,
    )  # fmt: skip
    _one_line_exit_2(proc, "--out")
    assert list(tmp_path.iterdir()) == []


def test_stored_names_with_nul_esc_bel_or_the_dispatchers_name_are_named_not_obeyed(
    home: Path, blasprof_exe: str, tmp_path: Path
) -> None:
    import dataclasses

    from db import open_database
    from tests import forms
    from tests.builders import node_y

    url = f"sqlite:///{tmp_path / 'names.sqlite'}"
    names = ["good", "nul\x00name", "esc\x1b]0;title\x07bel", "blasprof"]
    with open_database(url) as database:
        for i, name in enumerate(names):
            preset = dataclasses.replace(node_y(), node_type=name, partitions=(f"p{i}",))
            cal = database.create_calibration(name, executor="local", profile="quick", settings={})
            database.store_preset(cal, preset)
    out = tmp_path / "presets"
    done = run_blasprof(blasprof_exe, "--db", url, "presets", "write", "--out", str(out))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert not any(c in done.stderr + done.stdout for c in "\x00\x1b\x07")
    named = [line for line in done.stderr.splitlines() if "left out of the presets" in line]
    assert len(named) == 3, done.stderr
    assert any("node type blasprof: its files would replace the dispatcher" in x for x in named)
    # the dispatchers are the dispatchers, and pick the good type
    listed = json.loads((out / "blasprof.json").read_text())["presets"]
    assert set(listed) == {"good"}
    loaded = forms.shell("dash")(out, {**forms.base_env(tmp_path), "SLURM_JOB_PARTITION": "p0"})
    assert "good" in (loaded.variables["BLASPROF_PRESET"] or ""), loaded


def test_a_node_type_named_like_the_dispatchers_is_refused_before_calibrating(
    home: Path, blasprof_exe: str
) -> None:
    proc = run_blasprof(blasprof_exe, "calibrate", "--node-type", "blasprof", *TINY)
    _one_line_exit_2(proc, "would replace the dispatcher blasprof.sh")
    assert json.loads(run_blasprof(blasprof_exe, "list", "--json").stdout) == []


def test_plot_of_a_stored_name_with_control_characters_names_the_row_escaped(
    home: Path, blasprof_exe: str, tmp_path: Path
) -> None:
    """A node-type name with BEL and ESC is a damaged row (no blasprof stores one): plot
    refuses it in one line that names the row, and no raw control byte reaches the
    terminal (matplotlib's warnings printed them before)."""
    import datetime as dt
    import random

    from db import open_database
    from tests.history_data import TypeSpec, store_calibration

    pytest.importorskip("matplotlib")
    url = f"sqlite:///{tmp_path / 'plot.sqlite'}"
    spec = TypeSpec("bell\x07esc\x1b[2J", "CPU", 2, 16.0, ("h1",), sizes=(256,))
    with open_database(url) as database:
        cal = store_calibration(database, spec, dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                                rng=random.Random(1))  # fmt: skip
    image = tmp_path / "plot.png"
    proc = run_blasprof(blasprof_exe, "--db", url, "plot", str(cal), "-o", str(image))
    assert proc.returncode == 1, proc.stderr
    assert not image.exists()
    assert "\x07" not in proc.stderr + proc.stdout and "\x1b" not in proc.stderr + proc.stdout
    assert "row id" in proc.stderr and "bell\\x07esc\\x1b" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_the_load_lines_printed_work_for_a_directory_with_spaces_and_dollars(
    home: Path, blasprof_exe: str, tmp_path: Path
) -> None:
    from tests import forms

    url = f"sqlite:///{tmp_path / 'two.sqlite'}"
    _two_types(url)
    mark = tmp_path / "pwned"
    out = tmp_path / f"my presets $(touch {mark})"
    done = run_blasprof(blasprof_exe, "--db", url, "presets", "write", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert not (out / "blasprof.csh").exists() and "csh files are not written" in done.stderr
    lines = dict(
        line.strip().split(":", 1) for line in done.stdout.splitlines() if line.startswith("  ")
    )
    assert "csh, tcsh" not in lines
    load = lines["sh, bash, zsh, ksh"].strip()
    env = {**forms.base_env(tmp_path), "SLURM_JOB_PARTITION": "gp"}
    ran = subprocess.run(["dash", "-c", f"{load} && echo $BLASPROF_PRESET"],
                         capture_output=True, text=True, env=env, check=False)  # fmt: skip
    assert ran.returncode == 0 and "good" in ran.stdout, ran
    assert not mark.exists()
