"""Writing the preset files into a presets directory, so that a job never sees half a file
and Python never serves an old preset.

Each file is written beside its final name and renamed over it (a job reading during a
rewrite gets the old or the new file). A Python preset is compiled at once into a
hash-checked ``.pyc`` (checked against the source on every import, so it can never be
stale, and no compile cost in the job), and its modification time is moved past the old
file's second, so that the timestamp-checked ``.pyc`` another Python version wrote for the
old file is recompiled too. File names come from checked node-type names only, and every
path is checked to stay inside the directory.
"""

from __future__ import annotations

import contextlib
import importlib.util
import py_compile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from profiler.files import replace
from profiler.jobstart.forms import FORMATS, Form
from profiler.jobstart.forms.checked import Bundle, UnsafePreset, bundle, shell_path
from profiler.paths import make_dir

if TYPE_CHECKING:
    from profiler.choice.preset import Preset

__all__ = ["dispatcher_clash", "write_file", "write_presets"]


def write_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace ``path`` by ``text`` atomically; a ``.py`` file also gets its ``.pyc``.

    Directories it creates (``modulefiles/``, ``__pycache__/``) get 0755 whatever the umask:
    jobs read them, and no one else may write there."""
    make_dir(path.parent, 0o755)
    later = None
    if path.suffix == ".py":
        try:
            old_second = int(path.stat().st_mtime)
        except OSError:
            old_second = None
        if old_second is not None and int(time.time()) <= old_second:
            # a .pyc stamped with the old file's second and size must not match this one
            later = (old_second + 1) * 1_000_000_000
    replace(path, lambda fh: fh.write(text), mode=mode, mtime_ns=later)
    if path.suffix == ".py":
        _compile(path)


def _compile(path: Path) -> None:
    """A hash-checked .pyc for this interpreter; a directory jobs cannot write stays fast."""
    # on failure the module still imports; it is compiled on import instead
    with contextlib.suppress(OSError, py_compile.PyCompileError):
        make_dir(Path(importlib.util.cache_from_source(str(path))).parent, 0o755)
        py_compile.compile(
            str(path),
            cfile=importlib.util.cache_from_source(str(path)),
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
        )


def _inside(directory: Path, name: str) -> Path:
    parts = Path(name).parts
    if Path(name).is_absolute() or not parts or any(p in ("", ".", "..") for p in parts):
        raise UnsafePreset(f"refusing to write {name!r} outside {directory}")
    return directory.joinpath(*parts)


def dispatcher_clash(node_type: str) -> str | None:
    """The dispatcher a file of ``node_type`` would replace (``blasprof.sh`` for a node
    type named ``blasprof``), or None."""
    dispatchers = {form.dispatcher for form in FORMATS.values()}
    return next((n for f in FORMATS.values() if (n := f.per_type(node_type)) in dispatchers), None)


def write_presets(
    presets: Sequence[Preset], directory: Path, per_type: Iterable[str] | None = None
) -> tuple[list[Path], list[str]]:
    """Write the dispatchers over ``presets`` and each node type's own files (only those of
    ``per_type`` when given); return the paths written and one warning per thing left out."""
    directory = directory.resolve()
    b, warnings = bundle(presets)
    by_name = {p.node_type: p for p in presets if p.node_type in b.presets()}
    wanted = set(by_name) if per_type is None else set(per_type) & set(by_name)
    written: list[Path] = []
    try:
        shell_path(str(directory))
        forms = list(FORMATS.values())
    except UnsafePreset as exc:
        warnings.append(f"{exc}: the csh files are not written")
        forms = [f for f in FORMATS.values() if not f.needs_path]
    modules: dict[str, str] = {}
    for e in b.entries:
        if e.name not in wanted:
            continue
        single = Bundle((e,), None)
        for form in forms:
            name = form.per_type(e.name)
            if form.name == "py" and modules.setdefault(name, e.name) != e.name:
                warnings.append(f"node type {e.name}: {name} is {modules[name]}'s; not written")
                continue
            written.append(_write(directory, name, form, single, by_name))
    for form in forms:
        written.append(_write(directory, form.dispatcher, form, b, by_name))
    return written, warnings


def _write(directory: Path, name: str, form: Form, b: Bundle, presets: dict[str, Preset]) -> Path:
    path = _inside(directory, name)
    text = form.render(b, str(directory), path.name, presets)
    write_file(path, text)
    return path
