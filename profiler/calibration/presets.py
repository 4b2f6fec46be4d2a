"""The preset files of every node type, written from the database: checked before any is
written, and a node type whose stored preset cannot be used keeps the files an earlier write
left (its own, and its place in the dispatchers), so its jobs keep their preset."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from profiler.errors import UsageError
from profiler.files import check_output_file, ensure_dir, others_can_write
from profiler.paths import presets_dir

if TYPE_CHECKING:
    from db import Database
    from profiler.calibration.sink import Sink
    from profiler.choice.preset import Preset

__all__ = ["Written", "check_preset_files", "write_presets"]


@dataclass(frozen=True)
class Written:
    """The preset files a write replaced, and one line per node type whose stored preset
    could not be used (its files from an earlier write kept, or none to keep)."""

    paths: tuple[Path, ...]
    unusable: tuple[str, ...] = ()


def write_presets(
    database: Database,
    sink: Sink,
    presets: Sequence[Preset] | None = None,
    out: Path | None = None,
) -> Written:
    """Write each of ``presets`` (default: every node type's latest) in every form, and the
    dispatchers over every node type; say on stderr what was left out and why.

    A node type whose stored preset cannot be used (a row that is not a preset, a value
    that may not be written) keeps the files an earlier write left: its own are not
    rewritten and the dispatchers keep it as that write had it, so its jobs keep their
    preset.
    """
    from profiler.jobstart.forms.checked import UnsafePreset, entry
    from profiler.jobstart.forms.files import write_presets as write_files

    directory = ensure_dir((out or presets_dir()).expanduser())
    known: dict[str, Preset] = {}
    bad: dict[str, str] = {}
    for name in database.node_type_names():
        if (problem := _name_problem(name)) is not None:
            bad[name] = problem  # no file of its own was ever written: nothing to keep
            continue
        try:
            latest = database.latest_preset(name)
            if latest is not None:
                entry(latest)
        except (KeyError, TypeError, ValueError, AttributeError, UnsafePreset) as exc:
            why = str(exc) if isinstance(exc, UnsafePreset) else f"{type(exc).__name__} {exc}"
            bad[name] = f"its stored preset is unusable ({why})"
            continue
        if latest is not None:
            known[name] = latest
    fresh = {p.node_type: p for p in presets or () if _name_problem(p.node_type) is None}
    known.update(fresh)
    unusable = []
    for name, why in bad.items():
        if name in fresh:
            continue
        earlier = _earlier(directory, name) if _name_problem(name) is None else None
        if earlier is not None:
            known[name] = earlier
            why += f"; its files in {directory} from an earlier write are kept"
        else:
            why += "; left out of the presets (no earlier file of it to keep)"
        unusable.append(f"node type {name}: {why}")
    kept = {n for n in bad if n in known and n not in fresh}
    per_type = [n for n in known if n not in kept] if presets is None else list(fresh)
    check_preset_files(directory, per_type)
    if (warning := others_can_write(directory)) is not None:
        sink.warn(warning)
    paths, warnings = write_files(list(known.values()), directory, per_type)
    for line in (*unusable, *warnings):
        sink.warn(line)
    return Written(tuple(paths), tuple(unusable))


def _name_problem(name: object) -> str | None:
    """Why files may not be named after a stored node type name, or None."""
    from profiler.jobstart.forms.files import dispatcher_clash
    from profiler.names import is_node_type

    if not isinstance(name, str) or not is_node_type(name):
        return "its name is not a valid node type name"
    if (clash := dispatcher_clash(name)) is not None:
        return f"its files would replace the dispatcher {clash}"
    return None


def _earlier(directory: Path, node_type: str) -> Preset | None:
    """The preset an earlier write left in ``directory`` for ``node_type`` (its json file,
    read as carefully as a stored row), or None."""
    import json

    from profiler.choice.preset import Preset
    from profiler.jobstart.forms import file_name
    from profiler.jobstart.forms.checked import UnsafePreset, entry

    path = directory / file_name(node_type, "json")
    try:
        with path.open("rb") as fh:
            data = json.loads(fh.read(1 << 20))
        preset = Preset.from_dict(data)
        entry(preset)
    except (OSError, KeyError, TypeError, ValueError, AttributeError, UnsafePreset):
        return None
    return preset if preset.node_type == node_type else None


def check_preset_files(directory: Path, node_types: Sequence[str]) -> None:
    """Refuse (``UsageError``) before anything is written when a preset file of these node
    types, or a dispatcher, cannot be replaced: a directory, a device or a FIFO in its place."""
    from profiler.jobstart.forms import FORMATS, file_name
    from profiler.jobstart.forms.files import dispatcher_clash

    for node_type in node_types:
        if (clash := dispatcher_clash(node_type)) is not None:
            raise UsageError(
                f"node type {node_type}: its preset files would replace the dispatcher "
                f"{clash}; give it another name"
            )
    names = [file_name(t, fmt) for t in (*node_types, None) for fmt in FORMATS]
    for name in names:
        check_output_file(directory / name)
