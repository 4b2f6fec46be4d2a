"""Which node type a job runs on: the rules a preset carries, applied at job start.

In order: ``BLASPROF_NODE_TYPE`` when it is a node-type name, the Slurm partition, a node
feature the job asked for (``SLURM_JOB_CONSTRAINTS``), the hostname (``*`` and ``?``
wildcards), then the CPU fingerprint (model name and online CPUs). The first rule that
holds wins; ``profiler.jobstart.forms.checked`` writes each value once, so two node types never
claim the same one.

Like the rule in ``profiler.jobstart.budget``, the functions in ``JOB_START`` use nothing but the
constants here and budget's job-start functions: the Python dispatcher embeds their source,
and the sh and Lua dispatchers are written from the same constants.
"""

from __future__ import annotations

from profiler.jobstart.cpus import cpu_list_size, read_text
from profiler.names import NAME_CHARS, is_name

__all__ = [
    "CPU_KEY_CHARS",
    "FEATURE_CHARS",
    "JOB_START",
    "NAME_CHARS",
    "cpu_key",
    "detect",
    "is_name",
]

#: characters kept in a CPU fingerprint; every run of others becomes one "-"
CPU_KEY_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789."
#: characters of a Slurm feature name; others separate features in SLURM_JOB_CONSTRAINTS
FEATURE_CHARS = CPU_KEY_CHARS + "_-"


def words(text, keep):
    """``text`` as the runs of characters in ``keep``, in order."""
    found, word = [], ""
    for char in text:
        if char in keep:
            word += char
        elif word:
            found.append(word)
            word = ""
    if word:
        found.append(word)
    return found


def cpu_key(model):
    """The fingerprint of a CPU model name: ``Intel(R) Xeon(R) Gold`` -> ``Intel-R-Xeon-R-Gold``."""
    return "-".join(words(model, CPU_KEY_CHARS))


def glob_match(pattern, text):
    """Whether ``text`` matches ``pattern``, whose ``*`` and ``?`` are the only wildcards."""
    if not pattern:
        return not text
    if pattern[0] == "*":
        return any(glob_match(pattern[1:], text[i:]) for i in range(len(text) + 1))
    if text and pattern[0] in ("?", text[0]):
        return glob_match(pattern[1:], text[1:])
    return False


def machine_fingerprint():
    """``<cpu key>|<online CPUs>`` of this machine, as the presets' CPU rules are written."""
    model = ""
    try:
        with open("/proc/cpuinfo", "rb") as fh:
            for raw in fh:
                line = raw.decode("latin-1").rstrip("\n")
                if line.startswith("model name"):
                    model = line.partition(":")[2]
                    break
    except OSError:
        pass
    online = cpu_list_size(read_text("/sys/devices/system/cpu/online")) or 0
    return f"{cpu_key(model)}|{online}"


def detect(env, rules):
    """(node type or None, notes): ``BLASPROF_NODE_TYPE`` when it is a name, else the first
    rule that holds: Slurm partition, a feature the job asked for, hostname, CPU."""
    notes = []
    name = env.get("BLASPROF_NODE_TYPE", "")
    if name:
        if is_name(name):
            return name, notes
        notes.append("BLASPROF_NODE_TYPE is not a node type name; ignored")
    partition = env.get("SLURM_JOB_PARTITION", "")
    for value, node_type in rules["partition"]:
        if partition == value:
            return node_type, notes
    asked = words(env.get("SLURM_JOB_CONSTRAINTS", ""), FEATURE_CHARS)
    for value, node_type in rules["feature"]:
        if value in asked:
            return node_type, notes
    if rules["hostname"]:
        host = read_text("/proc/sys/kernel/hostname").strip()
        for value, node_type in rules["hostname"]:
            if glob_match(value, host) or glob_match(value, host.partition(".")[0]):
                return node_type, notes
    if rules["cpu"]:
        mine = machine_fingerprint()
        for value, node_type in rules["cpu"]:
            if value == mine:
                return node_type, notes
    return None, notes


#: what the Python dispatcher embeds, in this order
JOB_START = (words, cpu_key, is_name, glob_match, machine_fingerprint, detect)
