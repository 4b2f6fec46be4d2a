"""The json form: a node type's full record (``<type>.json``) and the dispatchers' data
(``blasprof.json``, which ``blasprof env`` reads): checked values, free text as data."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from profiler.jobstart.budget import THREAD_VARIABLES

if TYPE_CHECKING:
    from profiler.choice.preset import Preset
    from profiler.jobstart.forms.checked import Bundle

__all__ = ["RULE", "render_json"]

#: the rule in one line; the docstring of profiler.jobstart.budget says the rest
RULE = (
    "threads = max(1, min(layout_table[class] row with the most workers <= workers, share)); "
    "share = min(job CPUs // workers, CPUs this process may use, SLURM_CPUS_PER_TASK); "
    "job CPUs = BLASPROF_CPUS or SLURM_CPUS_ON_NODE or the affinity mask capped by the cgroup "
    "quota; workers = the launcher's local size (MPI, srun) or BLASPROF_WORKERS or 1; "
    "class = BLASPROF_SIZE_CLASS or default_class; each other library: max(1, min(its "
    "class's count, share)); a variable gets the count of the library that obeys it first "
    "(the default's where it does, the smallest of several), else the default's; "
    "OMP_THREAD_LIMIT is never set"
)


def render_json(
    b: Bundle, directory: str, file_name: str, presets: dict[str, Preset] | None = None
) -> str:
    """A node type's record, or (for a dispatcher bundle) every type's values and rules."""
    doc: dict[str, Any]
    if b.single_type:
        e = b.entries[0]
        preset = (presets or {}).get(e.name)
        doc = preset.to_dict() if preset is not None else {"node_type": e.name}
        doc.update(layout_table=dict(e.classes), obeyed=list(e.obeyed), rule=RULE)
    else:
        assert b.rules is not None
        doc = {"blasprof_presets": 1, "presets": b.presets(), "rules": b.rules.data()}
        doc["rule"] = RULE
    doc["sets"] = list(THREAD_VARIABLES)
    return json.dumps(doc, indent=2, default=str) + "\n"
