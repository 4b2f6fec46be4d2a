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
    from tests.test_preset_forms import node_y

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
