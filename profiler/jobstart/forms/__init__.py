"""Preset forms, found by name: sh, csh, py, json and lua (Lmod), for one node type or as
the dispatchers that pick the node type at job start.

Every form is rendered from a ``checked.Bundle`` (values checked when rendered, never taken
from a stored preset as they are) and applies the rule of ``profiler.jobstart.budget``; ``files``
writes them into a presets directory. Adding a form is one ``Form`` in ``FORMATS``; its
renderer module is imported when it renders, so that listing the forms costs nothing.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from profiler.choice.preset import Preset
    from profiler.jobstart.forms.checked import Bundle

__all__ = ["FORMATS", "Form", "file_name", "module_name", "render"]


def module_name(node_type: str) -> str:
    """The importable module of a node type's Python preset."""
    return "blas_preset_" + re.sub(r"[^a-z0-9_]", "_", node_type)


@dataclass(frozen=True)
class Form:
    """One preset form: its dispatcher's file, a node type's file, and its renderer
    (``module:function`` taking ``(bundle, directory, file name, presets)``)."""

    name: str
    dispatcher: str
    per_type: Callable[[str], str]
    renderer: str
    #: the file names the presets directory in code (csh), not only in comments
    needs_path: bool = False

    def render(
        self, b: Bundle, directory: str, name: str, presets: dict[str, Preset] | None = None
    ) -> str:
        module, _, function = self.renderer.partition(":")
        return getattr(importlib.import_module(module), function)(b, directory, name, presets)


FORMATS: dict[str, Form] = {
    "sh": Form("sh", "blasprof.sh", lambda t: f"{t}.sh", "profiler.jobstart.forms.sh:render_sh"),
    "csh": Form(
        "csh", "blasprof.csh", lambda t: f"{t}.csh", "profiler.jobstart.forms.sh:render_csh", True
    ),
    "py": Form(
        "py",
        "blas_preset.py",
        lambda t: module_name(t) + ".py",
        "profiler.jobstart.forms.python:render_py",
    ),
    "json": Form(
        "json",
        "blasprof.json",
        lambda t: f"{t}.json",
        "profiler.jobstart.forms.jsonform:render_json",
    ),
    "lua": Form(
        "lua",
        "modulefiles/blasprof.lua",
        lambda t: f"modulefiles/blasprof-{t}.lua",
        "profiler.jobstart.forms.lua:render_lua",
    ),
}


def file_name(node_type: str | None, fmt: str) -> str:
    """A form's file in the presets directory: a node type's, or the dispatcher's (None)."""
    form = FORMATS[fmt]
    return form.dispatcher if node_type is None else form.per_type(node_type)


def render(preset: Preset, fmt: str, directory: str) -> str:
    """``preset``'s own file in format ``fmt`` as written in presets directory
    ``directory``; ``checked.UnsafePreset`` when a stored value may not be written."""
    from profiler.jobstart.forms.checked import single

    form = FORMATS[fmt]
    checked = single(preset)
    name = form.per_type(checked.entries[0].name).rpartition("/")[2]
    return form.render(checked, directory, name, {preset.node_type: preset})
