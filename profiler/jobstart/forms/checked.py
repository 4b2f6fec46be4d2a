"""Every value a preset form embeds, checked when it is rendered, and the node-type rules.

A preset may come back from a database that others can write, so nothing in it is trusted
here: node-type names must match the node-type pattern, size-class names ``CLASS_PATTERN``,
counts must be integers from 1 to 99999, variables come from a fixed list, and rule values
(partitions, features, hostname patterns) from small patterns. Free text (CPU model, BLAS
string, dates) only ever becomes a comment line stripped of control characters, or Python
data. Forms are rendered from a ``Bundle`` built here, never from a ``Preset`` directly.

``bundle`` also orders the node-type rules: each value (partition, feature, hostname
pattern, CPU fingerprint) is written once, for the first node type in name order that
claims it, and every clash is reported with the type that wins.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from profiler.errors import UsageError
from profiler.jobstart import budget, cpus, detect
from profiler.jobstart.budget import DEFAULT_OBEYED, THREAD_VARIABLES, WATCHED_VARIABLES
from profiler.jobstart.detect import cpu_key
from profiler.names import NODE_TYPE_RULE, is_node_type

if TYPE_CHECKING:
    from profiler.choice.preset import Preset

__all__ = [
    "CLASS_PATTERN",
    "Bundle",
    "Entry",
    "Rules",
    "UnsafePreset",
    "bundle",
    "comment",
    "entry",
    "from_data",
    "shell_path",
    "single",
]

#: a size-class name: a fixed pattern, since presets already stored carry several sets
CLASS_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,15}")
MAX_COUNT = 99_999
_PARTITION = re.compile(r"[A-Za-z0-9._-]{1,64}")
_FEATURE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HOSTNAME = re.compile(r"[A-Za-z0-9._*?-]{1,253}")
_CPU_RULE = re.compile(r"[A-Za-z0-9.-]{1,256}\|[0-9]{1,5}")
_RULE_VALUES = {"partition": _PARTITION, "feature": _FEATURE, "hostname": _HOSTNAME}
_RULE_VALUES["cpu"] = _CPU_RULE
#: a directory a shell line may name without quoting tricks
_SHELL_PATH = re.compile(r"/[A-Za-z0-9._/+,@%=:~-]*")
_KNOWN_VARIABLES = THREAD_VARIABLES + WATCHED_VARIABLES
#: what a library may name besides them: a pthreads OpenBLAS from 0.3.22 reads it
_LIBRARY_VARIABLES = (*_KNOWN_VARIABLES, "OPENBLAS_DEFAULT_NUM_THREADS")
#: a BLAS library's label (``profiler.blas``: a member's name or a build's directory)
LABEL_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


class UnsafePreset(UsageError):
    """A stored preset holds a value that may not be written into a preset file."""


@dataclass(frozen=True)
class Entry:
    """One node type's checked values: what every form embeds for it."""

    name: str
    default: str
    classes: tuple[tuple[str, tuple[tuple[int, int], ...]], ...]
    obeyed: tuple[str, ...]
    summary: tuple[str, ...]
    #: the label of the library the layout table is for
    blas: str = "numpy"
    #: every other calibrated library: (label, variables strongest first, (class, threads)
    #: for every class of ``classes``)
    libraries: tuple[tuple[str, tuple[str, ...], tuple[tuple[str, int], ...]], ...] = ()

    def data(self) -> dict[str, Any]:
        """The entry as ``profiler.jobstart.budget.plan`` takes it."""
        return {
            "default": self.default,
            "classes": {name: rows for name, rows in self.classes},
            "obeyed": self.obeyed,
            "blas": self.blas,
            "libraries": tuple((lab, obeys, dict(counts)) for lab, obeys, counts in self.libraries),
        }


@dataclass(frozen=True)
class Rules:
    """How a dispatcher tells node types apart, in the order it tries them."""

    partition: tuple[tuple[str, str], ...] = ()
    feature: tuple[tuple[str, str], ...] = ()
    hostname: tuple[tuple[str, str], ...] = ()
    cpu: tuple[tuple[str, str], ...] = ()

    def data(self) -> dict[str, tuple[tuple[str, str], ...]]:
        """The rules as ``profiler.jobstart.detect.detect`` takes them."""
        return {
            "partition": self.partition,
            "feature": self.feature,
            "hostname": self.hostname,
            "cpu": self.cpu,
        }


@dataclass(frozen=True)
class Bundle:
    """What one rendered file embeds: node types, and the rules that pick one (None: the
    file serves one node type, named by ``entries[0]``)."""

    entries: tuple[Entry, ...]
    rules: Rules | None

    @property
    def single_type(self) -> str | None:
        """The node type of a per-type file (None: a dispatcher, which detects it)."""
        return self.entries[0].name if self.rules is None else None

    def presets(self) -> dict[str, dict[str, Any]]:
        return {e.name: e.data() for e in self.entries}

    def names(self) -> str:
        return " ".join(e.name for e in self.entries) or "none"


def rule_constants() -> dict[str, Any]:
    """The constants the Python form carries beside the rule's functions."""
    return {
        "THREAD_VARIABLES": budget.THREAD_VARIABLES,
        "WATCHED_VARIABLES": budget.WATCHED_VARIABLES,
        "FREE_VARIABLES": budget.FREE_VARIABLES,
        "DEFAULT_OBEYED": budget.DEFAULT_OBEYED,
        "LAUNCHERS": cpus.LAUNCHERS,
        "BAD_COUNT": cpus.BAD_COUNT,
        "CPU_KEY_CHARS": detect.CPU_KEY_CHARS,
        "FEATURE_CHARS": detect.FEATURE_CHARS,
        "NAME_CHARS": detect.NAME_CHARS,
    }


def comment(text: object, limit: int = 200) -> str:
    """``text`` as one comment line: control and format characters become spaces, and
    backslashes slashes (a trailing one could continue a line in some shells)."""
    chars = []
    for char in str(text)[:limit]:
        kind = unicodedata.category(char)
        chars.append(" " if kind[0] in "CZ" and char != " " else char)
    return " ".join("".join(chars).replace("\\", "/").split())


def shell_path(directory: str) -> str:
    """``directory`` if a shell line may name it as is; else an UnsafePreset error."""
    if _SHELL_PATH.fullmatch(directory) is None:
        raise UnsafePreset(
            f"the presets directory {comment(directory)!r} cannot be written into a csh line; "
            "use a path made of letters, digits and . _ / + , @ % = : ~ -"
        )
    return directory


def _show(value: object) -> str:
    return ascii(value)[:60]


def _count(preset_name: str, what: str, value: object) -> int:
    if type(value) is not int or not 1 <= value <= MAX_COUNT:
        raise UnsafePreset(
            f"node type {preset_name!r}: {what} {_show(value)} is not a whole number "
            f"from 1 to {MAX_COUNT}"
        )
    return value


def entry(preset: Preset) -> Entry:
    """The checked values of ``preset``; UnsafePreset names the first value that is not."""
    name = preset.node_type
    if not is_node_type(name):
        raise UnsafePreset(f"node type name {_show(name)} is not valid; use {NODE_TYPE_RULE}")
    try:
        return _entry(name, preset)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        if isinstance(exc, UnsafePreset):
            raise
        raise UnsafePreset(f"node type {name!r}: malformed preset ({type(exc).__name__})") from None


def _entry(name: str, preset: Preset) -> Entry:
    for c in preset.size_classes:
        if not isinstance(c.name, str) or CLASS_PATTERN.fullmatch(c.name) is None:
            raise UnsafePreset(
                f"node type {name!r}: size class name {_show(c.name)} does not match "
                f"{CLASS_PATTERN.pattern}"
            )
        _count(name, "a thread count", c.threads)
    for row in preset.layouts:
        _count(name, "a layout's workers", row.workers)
        _count(name, "a thread count", row.threads)
    classes = []
    for class_name, rows in preset.layout_table().items():
        checked = tuple(
            (_count(name, "a layout's workers", w), _count(name, "a thread count", t))
            for w, t in rows
        )
        workers = [w for w, _ in checked]
        if workers[0] != 1 or workers != sorted(set(workers)):
            raise UnsafePreset(f"node type {name!r}: layout rows of {class_name!r} out of order")
        classes.append((class_name, checked))
    if not classes:
        raise UnsafePreset(f"node type {name!r}: the preset has no size class")
    default = preset.default_class
    if default not in dict(classes):
        raise UnsafePreset(f"node type {name!r}: default class {_show(default)} is not a class")
    obeyed = tuple(preset.variables) or DEFAULT_OBEYED
    for variable in obeyed:
        if variable not in _KNOWN_VARIABLES:
            raise UnsafePreset(f"node type {name!r}: unknown thread variable {_show(variable)}")
    blas = _label(name, preset.default_blas)
    libraries = []
    for lib in preset.libraries:
        label = _label(name, lib.label)
        counts = {}
        for c in lib.size_classes:
            if isinstance(c.name, str) and c.name in dict(classes):
                counts[c.name] = _count(name, f"{label}'s thread count", c.threads)
        libraries.append(_library(name, label, lib.variables, counts, dict(classes), default))
    if len({blas, *(lib[0] for lib in libraries)}) != len(libraries) + 1:
        raise UnsafePreset(f"node type {name!r}: a BLAS library is named twice")
    summary = tuple(_summary(preset))
    return Entry(name, default, tuple(classes), obeyed, summary, blas, tuple(libraries))


def _label(name: str, label: object) -> str:
    if not isinstance(label, str) or LABEL_PATTERN.fullmatch(label) is None:
        raise UnsafePreset(
            f"node type {name!r}: BLAS library label {_show(label)} does not match "
            f"{LABEL_PATTERN.pattern}"
        )
    return label


def _library(
    name: str, label: str, variables: object, counts: dict[str, int], classes: dict[str, Any],
    default: str,
) -> tuple[str, tuple[str, ...], tuple[tuple[str, int], ...]]:  # fmt: skip
    """One library's checked values, with a count for every class of the preset: a class
    it did not measure takes its count at the default class, else at its largest class."""
    if not isinstance(variables, (list, tuple)):
        raise UnsafePreset(f"node type {name!r}: {label}'s variables are {_show(variables)}")
    for variable in variables:
        if variable not in _LIBRARY_VARIABLES:
            raise UnsafePreset(f"node type {name!r}: unknown thread variable {_show(variable)}")
    if not counts:
        raise UnsafePreset(f"node type {name!r}: {label} has no thread count of the classes")
    fallback = counts.get(default, list(counts.values())[-1])
    table = tuple((c, counts.get(c, fallback)) for c in classes)
    return label, tuple(variables), table


def _summary(preset: Preset) -> list[str]:
    origin = f"calibration {preset.calibration_id}" if preset.calibration_id else "a calibration"
    lines = [
        f"node type {preset.node_type}: from {origin} of {preset.created_at or 'unknown date'} "
        f"on {preset.calibrated_cpus} CPUs",
        f"CPU: {preset.cpu_model or 'unknown'}",
        f"BLAS: {preset.blas or 'unknown'}",
    ]
    for c in preset.size_classes:
        bound = f"n <= {c.max_n}" if c.max_n else "larger"
        lines.append(f"  {c.name} ({bound}): {c.threads} threads, best {c.best_threads}")
    for lib in preset.libraries:
        counts = " ".join(f"{c.name} {c.threads}" for c in lib.size_classes)
        lines.append(f"  {lib.label} (by {' > '.join(lib.variables) or 'nothing'}): {counts}")
    lines.append(f"default size class: {preset.default_class}")
    return [comment(line) for line in lines]


def single(preset: Preset) -> Bundle:
    """The bundle of a file that serves one node type."""
    return Bundle((entry(preset),), None)


def bundle(presets: Sequence[Preset]) -> tuple[Bundle, list[str]]:
    """The dispatchers' bundle over ``presets``, and one warning per preset left out and
    per clash between node-type rules (saying which type wins)."""
    warnings: list[str] = []
    checked: list[tuple[Entry, Preset]] = []
    for preset in sorted(presets, key=lambda p: str(p.node_type)):
        try:
            checked.append((entry(preset), preset))
        except UnsafePreset as exc:
            warnings.append(f"left out of the presets: {exc}")
    rules: dict[str, list[tuple[str, str]]] = {"partition": [], "feature": [], "hostname": []}
    rules["cpu"] = []
    owner: dict[tuple[str, str], str] = {}
    has_rule: set[str] = set()

    def claim(kind: str, value: str, name: str, what: str) -> None:
        first = owner.setdefault((kind, value), name)
        if first == name:
            if (value, name) not in rules[kind]:
                rules[kind].append((value, name))
            if kind != "cpu":
                has_rule.add(name)
        else:
            where = " where no partition, feature or hostname rule decides" if kind == "cpu" else ""
            warnings.append(f"{what} belongs to node types {first} and {name}: {first} wins{where}")

    for e, preset in checked:
        for kind, values, pattern in (
            ("partition", preset.partitions, _PARTITION),
            ("feature", preset.features, _FEATURE),
            ("hostname", preset.hostnames, _HOSTNAME),
        ):
            for value in values:
                if isinstance(value, str) and pattern.fullmatch(value):
                    claim(kind, value, e.name, f"{kind} {value}")
                else:
                    warnings.append(f"node type {e.name}: {kind} {_show(value)} ignored")
        key = cpu_key(str(preset.cpu_model or ""))
        cpus = preset.logical_cpus
        if len(key) > 256:
            warnings.append(f"node type {e.name}: its CPU model is too long for a CPU rule")
        elif key and type(cpus) is int and 1 <= cpus <= MAX_COUNT:
            what = f"the CPU {key} x {cpus}"
            claim("cpu", f"{key}|{cpus}", e.name, what)
    for e, _preset in checked:
        if e.name not in has_rule and e.name not in {n for _, n in rules["cpu"]}:
            warnings.append(
                f"node type {e.name} cannot be told apart from the others at job start: "
                f"select it with BLASPROF_NODE_TYPE={e.name}"
            )
    frozen = Rules(**{kind: tuple(pairs) for kind, pairs in rules.items()})
    return Bundle(tuple(e for e, _ in checked), frozen), warnings


def from_data(doc: object) -> Bundle:
    """The bundle a dispatchers' data file (``blasprof.json``) holds, checked as a rendered
    form checks a stored preset: UnsafePreset names the first value that is not valid."""
    if not isinstance(doc, dict):
        raise UnsafePreset("it is not a JSON object")
    presets = _field(doc, "presets", dict, "the file")
    entries = [_data_entry(name, p) for name, p in presets.items()]
    rules = _field(doc, "rules", dict, "the file")
    found: dict[str, tuple[tuple[str, str], ...]] = {}
    for kind, pattern in _RULE_VALUES.items():
        pairs = []
        for pair in _field(rules, kind, list, "rules"):
            if not (isinstance(pair, list) and len(pair) == 2):
                raise UnsafePreset(f"a {kind} rule {_show(pair)} is not a [value, node type] pair")
            value, name = pair
            if not (isinstance(value, str) and pattern.fullmatch(value)):
                raise UnsafePreset(f"{kind} rule value {_show(value)} is not valid")
            if not is_node_type(name):
                raise UnsafePreset(
                    f"{kind} rule {value}: node type name {_show(name)} is not valid"
                )
            pairs.append((value, name))
        found[kind] = tuple(pairs)
    return Bundle(tuple(entries), Rules(**found))


def _field(doc: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind):
        what = "an object" if kind is dict else "a list"
        raise UnsafePreset(f"{where}: {key!r} is {_show(value)}, not {what}")
    return value


def _data_entry(name: object, p: object) -> Entry:
    if not is_node_type(name):
        raise UnsafePreset(f"node type name {_show(name)} is not valid; use {NODE_TYPE_RULE}")
    assert isinstance(name, str)
    where = f"node type {name!r}"
    if not isinstance(p, dict):
        raise UnsafePreset(f"{where}: {_show(p)} is not an object")
    classes = []
    for class_name, rows in _field(p, "classes", dict, where).items():
        if CLASS_PATTERN.fullmatch(class_name) is None:
            raise UnsafePreset(f"{where}: size class name {_show(class_name)} is not valid")
        if not isinstance(rows, list) or not rows:
            raise UnsafePreset(f"{where}: size class {class_name} has no layout rows")
        checked = []
        for row in rows:
            if not (isinstance(row, list) and len(row) == 2):
                raise UnsafePreset(f"{where}: layout row {_show(row)} is not [workers, threads]")
            checked.append(
                (_count(name, "a layout's workers", row[0]), _count(name, "a thread count", row[1]))
            )
        workers = [w for w, _ in checked]
        if workers[0] != 1 or workers != sorted(set(workers)):
            raise UnsafePreset(f"{where}: layout rows of {class_name!r} out of order")
        classes.append((class_name, tuple(checked)))
    if not classes:
        raise UnsafePreset(f"{where}: no size class")
    default = p.get("default")
    if not isinstance(default, str) or default not in dict(classes):
        raise UnsafePreset(f"{where}: default class {_show(default)} is not a class")
    obeyed = tuple(_field(p, "obeyed", list, where)) or DEFAULT_OBEYED
    for variable in obeyed:
        if variable not in _KNOWN_VARIABLES:
            raise UnsafePreset(f"{where}: unknown thread variable {_show(variable)}")
    # files written before presets had libraries carry neither key
    blas = _label(name, p.get("blas", "numpy"))
    libraries = []
    for item in p.get("libraries", []):
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[2], dict)):
            raise UnsafePreset(f"{where}: library {_show(item)} is not [label, variables, counts]")
        label = _label(name, item[0])
        counts = {c: _count(name, f"{label}'s thread count", t) for c, t in item[2].items()}
        if set(counts) != {c for c, _ in classes}:
            raise UnsafePreset(f"{where}: {label} needs a count for every size class")
        libraries.append(_library(name, label, item[1], counts, dict(classes), default))
    if len({blas, *(lib[0] for lib in libraries)}) != len(libraries) + 1:
        raise UnsafePreset(f"{where}: a BLAS library is named twice")
    return Entry(name, default, tuple(classes), obeyed, (), blas, tuple(libraries))
