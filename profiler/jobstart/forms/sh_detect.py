"""The sh dispatcher's node-type detection: ``profiler.jobstart.detect``'s rules in POSIX sh.

The functions it writes run inside the sh form's ``_bp_main`` (see ``profiler.jobstart.forms.sh``)
and leave the node type in ``_bp_name``; rule values were checked when the bundle was made.
"""

from __future__ import annotations

from profiler.jobstart.detect import CPU_KEY_CHARS, FEATURE_CHARS, NAME_CHARS
from profiler.jobstart.forms.checked import Bundle

__all__ = ["detect_functions"]

_WORDS = r"""
_bp_words() {  # _bp_words TEXT SEP KEEP: the runs of KEEP characters of TEXT, joined by SEP
    _bp_s=$1 _bp_w= _bp_d=
    while [ -n "$_bp_s" ]; do
        _bp_r=${_bp_s#?}
        _bp_c=${_bp_s%"$_bp_r"}
        _bp_s=$_bp_r
        case $_bp_c in
            $3) _bp_w=$_bp_w$_bp_d$_bp_c _bp_d= ;;
            *) [ -z "$_bp_w" ] || _bp_d=$2 ;;
        esac
    done
}
_bp_detect() {  # this node's type in _bp_name (empty: none)
    _bp_name=${BLASPROF_NODE_TYPE:-}
    if [ -n "$_bp_name" ]; then
        case $_bp_name in
            ''|[._-]*|*[!@@NAME_CHARS@@]*|@@TOO_LONG@@) ;;
            *) return 0 ;;
        esac
        _bp_note "BLASPROF_NODE_TYPE is not a node type name; ignored"
    fi
    _bp_name=
@@RULES@@
}
"""


def _rules(b: Bundle) -> str:
    assert b.rules is not None
    r = b.rules
    out: list[str] = []
    if r.partition:
        out.append("    case ${SLURM_JOB_PARTITION:-} in")
        out += [f"        '{v}') _bp_name={n}; return 0 ;;" for v, n in r.partition]
        out.append("    esac")
    if r.feature:
        out.append(f'    _bp_words "${{SLURM_JOB_CONSTRAINTS:-}}" " " "[{FEATURE_CHARS}]"')
        out.append('    case " $_bp_w " in')
        out += [f"        *' {v} '*) _bp_name={n}; return 0 ;;" for v, n in r.feature]
        out.append("    esac")
    if r.hostname:
        out.append("    _bp_host=")
        out.append("    if [ -r /proc/sys/kernel/hostname ]; then")
        out.append("        read -r _bp_host < /proc/sys/kernel/hostname || :")
        out.append("    fi")
        for v, n in r.hostname:
            for var in ("$_bp_host", "${_bp_host%%.*}"):
                out.append(f"    case {var} in {v}) _bp_name={n}; return 0 ;; esac")
    if r.cpu:
        out += [
            "    _bp_model=",
            "    if [ -r /proc/cpuinfo ]; then",
            "        while IFS= read -r _bp_line; do",
            "            case $_bp_line in",
            "                'model name'*:*) _bp_model=${_bp_line#*:}; break ;;",
            "                'model name'*) break ;;",
            "            esac",
            "        done < /proc/cpuinfo",
            "    fi",
            "    _bp_v=",
            "    if [ -r /sys/devices/system/cpu/online ]; then",
            "        read -r _bp_v < /sys/devices/system/cpu/online || :",
            "    fi",
            '    _bp_cpus "$_bp_v" || _bp_n=0',
            f'    _bp_words "$_bp_model" - "[{CPU_KEY_CHARS}]"',
            '    case "$_bp_w|$_bp_n" in',
        ]
        out += [f"        '{v}') _bp_name={n}; return 0 ;;" for v, n in r.cpu]
        out.append("    esac")
    out.append("    return 0")
    return "\n".join(out)


def detect_functions(b: Bundle) -> str:
    """The ``_bp_words`` and ``_bp_detect`` functions of dispatcher bundle ``b``."""
    detect = _WORDS.replace("@@NAME_CHARS@@", NAME_CHARS).replace("@@TOO_LONG@@", "?" * 65 + "*")
    return detect.replace("@@RULES@@", _rules(b)).strip("\n")
