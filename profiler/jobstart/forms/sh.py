"""The POSIX sh form (dash, bash, zsh, ksh) and the csh form that runs it.

The sh file is ``profiler.jobstart.budget``'s rule (and, for the dispatcher, ``profiler.jobstart.detect``'s
rules, from ``sh_detect``) written in POSIX sh without a single fork: files are read with ``read``, counts
parsed with parameter expansions, and nothing a job cannot survive (``set -eu`` callers
included). Everything runs inside one function, under ``emulate -L sh`` in zsh, and every
helper and ``_bp_`` variable is removed afterwards.

``BLASPROF_EMIT=csh``, ``sh`` or ``lmod`` makes it print what it would do instead of
exporting: ``setenv`` lines that the csh form evaluates (csh cannot run the rule itself
without fragile quoting), ``export`` lines for the Slurm TaskProlog, and ``set NAME VALUE``,
``unset NAME`` and ``note TEXT`` lines that the Lmod modulefile applies.
"""

from __future__ import annotations

import re

from profiler.jobstart.budget import (
    DEFAULT_OBEYED,
    FREE_VARIABLES,
    THREAD_VARIABLES,
    WATCHED_VARIABLES,
)
from profiler.jobstart.cpus import BAD_COUNT, LAUNCHERS
from profiler.jobstart.forms.checked import Bundle, comment, shell_path
from profiler.jobstart.forms.sh_cpus import CPU_FUNCTIONS
from profiler.jobstart.forms.sh_detect import detect_functions

__all__ = ["render_csh", "render_sh"]

_HELPERS = r"""
_bp_note() {  # one line on stderr (for Lmod: on stdout, which the modulefile reads)
    case ${_bp_emit:-} in
        lmod) _bp_out="${_bp_out}note $1
" ;;
        *) printf 'blasprof: %s\n' "$1" >&2 ;;
    esac
}
_bp_count() {  # $1 as a whole number 1..99999 in _bp_n (leading zeros dropped), or fail
    case $1 in ''|*[!0123456789]*) return 1 ;; esac
    _bp_n=${1#"${1%%[!0]*}"}
    case $_bp_n in ''|??????*) return 1 ;; esac
}
_bp_index() {  # $1 as a whole number 0..99999 in _bp_n, or fail
    case $1 in ''|*[!0123456789]*) return 1 ;; esac
    _bp_n=${1#"${1%%[!0]*}"}
    case $_bp_n in ??????*) return 1 ;; '') _bp_n=0 ;; esac
}
_bp_whole() {  # $1 as a whole number of at most 18 digits in _bp_n, or fail
    case $1 in ''|*[!0123456789]*|???????????????????*) return 1 ;; esac
    _bp_n=${1#"${1%%[!0]*}"}
    [ -n "$_bp_n" ] || _bp_n=0
}
@@CPUS@@
_bp_put() {  # _bp_put NAME VALUE: export it, or print it for csh, a TaskProlog or Lmod
    case $_bp_emit in
        csh) _bp_out="${_bp_out}setenv $1 $2;" ;;
        sh) _bp_out="${_bp_out}export $1=$2
" ;;
        lmod) _bp_out="${_bp_out}set $1 $2
" ;;
        *) export "$1=$2" ;;
    esac
}
_bp_unput() {  # _bp_unput NAME: unset it, or print that
    case $_bp_emit in
        csh) _bp_out="${_bp_out}unsetenv $1;" ;;
        sh) _bp_out="${_bp_out}unset $1
" ;;
        lmod) _bp_out="${_bp_out}unset $1
" ;;
        *) unset "$1" ;;
    esac
}
_bp_user() {  # _bp_user NAME VALUE: NAME joins _bp_users when the user set it
    [ -n "$2" ] || return 0
    case $1 in
        @@WATCHED@@) case $_bp_obeyed in *" $1 "*) ;; *) return 0 ;; esac ;;
    esac
    case $_bp_before in *" $2 "*) case $_bp_ours in *":$1:"*) return 0 ;; esac ;; esac
    case $1 in
        @@FREE@@) ;;
        *) if ! _bp_count "$2"; then _bp_note "$1 @@BAD@@; ignored"; return 0; fi ;;
    esac
    _bp_users="$_bp_users $1"
    case $_bp_obeyed in *" $1 "*) _bp_blocked=1 ;; esac
}
_bp_give() {  # _bp_give NAME: give NAME its count unless the user decides it
    if [ -z "$_bp_override" ]; then
        case "$_bp_users $_bp_block " in *" $1 "*) return 0 ;; esac
    fi
    _bp_value "$1"
    _bp_put "$1" "${_bp_val:-$_bp_threads}"
    _bp_given="$_bp_given:$1"
}
_bp_value() {  # _bp_value NAME: in _bp_val the count NAME gets, empty where no library obeys
    # it first: the default library's where it does, else the smallest of those that do
    _bp_val=
    if [ "$1" = "$_bp_first" ]; then _bp_val=$_bp_threads; return 0; fi
    _bp_left=$_bp_libs
    while [ -n "$_bp_left" ]; do
        _bp_r=${_bp_left%%;*}
        _bp_left=${_bp_left#*;}
        _bp_r=${_bp_r#*:}
        _bp_v=${_bp_r#*:},
        if [ "${_bp_v%%,*}" = "$1" ]; then
            if [ -z "$_bp_val" ] || [ "${_bp_r%%:*}" -lt "$_bp_val" ]; then _bp_val=${_bp_r%%:*}; fi
        fi
    done
}
_bp_blocks() {  # _bp_blocks LIST,: every variable of the list is blocked if the user set one
    for _bp_u in $_bp_users; do
        case ,$1 in *",$_bp_u,"*) ;; *) continue ;; esac
        _bp_left=$1
        while [ -n "$_bp_left" ]; do
            _bp_block="$_bp_block ${_bp_left%%,*}"
            _bp_left=${_bp_left#*,}
        done
        return 0
    done
}
_bp_drop() {  # _bp_drop NAME VALUE: unset NAME when the last load gave it and this one does not
    [ -n "$2" ] || return 0
    [ -n "$_bp_before" ] || return 0
    case $_bp_ours in *":$1:"*) ;; *) return 0 ;; esac
    case "$_bp_users " in *" $1 "*) return 0 ;; esac
    case "$_bp_given:" in *":$1:"*) return 0 ;; esac
    _bp_unput "$1"
}
"""

_MAIN = r"""
_bp_main() {
    [ -z "${ZSH_VERSION:-}" ] || emulate -L sh
    # the caller's IFS would split what read returns; theirs comes back at the end
    _bp_ifs=${IFS-} _bp_ifs_set=${IFS+1}
    IFS='@@IFS@@'
    _bp_emit=${BLASPROF_EMIT:-} _bp_out=
@@NAME@@
    if _bp_launcher; then
        _bp_workers=$_bp_n
    elif _bp_count "${BLASPROF_WORKERS:-}"; then
        _bp_workers=$_bp_n
    else
        [ -z "${BLASPROF_WORKERS:-}" ] || _bp_note "BLASPROF_WORKERS @@BAD@@; using 1"
        _bp_workers=1
    fi
    _bp_declared=
    if _bp_count "${BLASPROF_CPUS:-}"; then
        _bp_declared=$_bp_n
    elif [ -n "${BLASPROF_CPUS:-}" ]; then
        _bp_note "BLASPROF_CPUS @@BAD@@; ignored"
    fi
    if [ -n "$_bp_declared" ]; then _bp_mine=$_bp_declared; else _bp_usable; _bp_mine=$_bp_n; fi
    _bp_job=$_bp_mine
    if [ -n "$_bp_declared" ]; then
        _bp_job=$_bp_declared
    elif _bp_count "${SLURM_CPUS_ON_NODE:-}"; then
        _bp_job=$_bp_n
    fi
    _bp_share=$((_bp_job / _bp_workers))
    [ "$_bp_share" -le "$_bp_mine" ] || _bp_share=$_bp_mine
    if _bp_count "${SLURM_CPUS_PER_TASK:-}" && [ "$_bp_n" -lt "$_bp_share" ]; then
        _bp_share=$_bp_n
    fi
    if [ -n "$_bp_name" ] && _bp_type "$_bp_name"; then
        _bp_class=${BLASPROF_SIZE_CLASS:-}
        if ! _bp_rows "$_bp_name" "$_bp_class"; then
            [ -z "$_bp_class" ] \
                || _bp_note "BLASPROF_SIZE_CLASS is not one of: $_bp_classes; using $_bp_default"
            _bp_class=$_bp_default
            _bp_rows "$_bp_name" "$_bp_class" || :
        fi
        _bp_rest="$_bp_table " _bp_cal=1
        while [ -n "$_bp_rest" ]; do
            _bp_item=${_bp_rest%% *}
            _bp_rest=${_bp_rest#* }
            [ "${_bp_item%:*}" -gt "$_bp_workers" ] || _bp_cal=${_bp_item#*:}
        done
    else
        _bp_class=- _bp_obeyed=' @@DEFAULT_OBEYED@@ ' _bp_libs=
        _bp_affinity
        _bp_cores
        [ "$_bp_n" -le "$_bp_mine" ] || _bp_n=$_bp_mine
        _bp_cal=$((_bp_n / _bp_workers))
        [ "$_bp_cal" -ge 1 ] || _bp_cal=1
    fi
    _bp_threads=$_bp_cal
    [ "$_bp_threads" -le "$_bp_share" ] || _bp_threads=$_bp_share
    [ "$_bp_threads" -ge 1 ] || _bp_threads=1
    if [ "$_bp_class" = - ]; then
        if [ -n "$_bp_name" ]; then _bp_which="node type $_bp_name"; else _bp_which="this node"; fi
        _bp_note "no preset for $_bp_which (known: @@KNOWN@@); $_bp_threads thread(s) per process: one per CPU of its share, at most one per core"
    fi
    # each other library's count, capped by the share, with its variables (label:n:V1,V2;)
    _bp_rest=$_bp_libs _bp_libs= _bp_record=
    while [ -n "$_bp_rest" ]; do
        _bp_item=${_bp_rest%%;*}
        _bp_rest=${_bp_rest#*;}
        _bp_r=${_bp_item#*:}
        _bp_n=${_bp_r%%:*}
        [ "$_bp_n" -le "$_bp_share" ] || _bp_n=$_bp_share
        [ "$_bp_n" -ge 1 ] || _bp_n=1
        _bp_libs="$_bp_libs${_bp_item%%:*}:$_bp_n:${_bp_r#*:};"
    done
    _bp_first=${_bp_obeyed# }
    _bp_first=${_bp_first%% *}
    # what each will run: the count its strongest variable gets
    _bp_rest=$_bp_libs
    while [ -n "$_bp_rest" ]; do
        _bp_item=${_bp_rest%%;*}
        _bp_rest=${_bp_rest#*;}
        _bp_r=${_bp_item#*:}
        _bp_v=${_bp_r#*:},
        _bp_val=
        [ "$_bp_v" = , ] || _bp_value "${_bp_v%%,*}"
        _bp_record="$_bp_record:${_bp_item%%:*}=${_bp_val:-${_bp_r%%:*}}"
    done
    [ -z "$_bp_record" ] || _bp_record=":$_bp_blas=$_bp_threads$_bp_record"
    _bp_before= _bp_ours= _bp_users= _bp_blocked= _bp_block= _bp_given= _bp_override=
    _bp_v=${BLASPROF_PRESET:-}::
    _bp_v=${_bp_v#*:}
    _bp_v=${_bp_v#*:}
    if _bp_count "${_bp_v%%:*}"; then
        _bp_before=" $_bp_n " _bp_ours=":${BLASPROF_PRESET_SET:-}:"
        _bp_rest=${_bp_v#*:}
        while [ -n "$_bp_rest" ]; do
            _bp_item=${_bp_rest%%:*}
            _bp_rest=${_bp_rest#*:}
            if _bp_count "${_bp_item#*=}"; then _bp_before="$_bp_before$_bp_n "; fi
        done
    fi
    [ "${BLASPROF_OVERRIDE:-}" != 1 ] || _bp_override=1
@@USERS@@
    if [ -z "$_bp_override" ]; then
        [ -z "$_bp_blocked" ] || _bp_block=$_bp_obeyed
        _bp_rest=$_bp_libs
        while [ -n "$_bp_rest" ]; do
            _bp_item=${_bp_rest%%;*}
            _bp_rest=${_bp_rest#*;}
            _bp_r=${_bp_item#*:}
            _bp_blocks "${_bp_r#*:},"
        done
    fi
@@GIVE@@
@@DROP@@
    _bp_put BLASPROF_PRESET "${_bp_name:--}:$_bp_class:$_bp_threads$_bp_record"
    if [ -n "$_bp_given" ]; then
        _bp_put BLASPROF_PRESET_SET "${_bp_given#:}"
    elif [ -n "${BLASPROF_PRESET_SET:-}" ]; then
        _bp_unput BLASPROF_PRESET_SET
    fi
    if [ -n "$_bp_users" ] && [ -n "$_bp_override" ]; then
        _bp_note "BLASPROF_OVERRIDE=1: replacing${_bp_users} with $_bp_threads"
    elif [ -n "$_bp_users" ]; then
        _bp_note "keeping${_bp_users} as set before the preset (it would set $_bp_threads); BLASPROF_OVERRIDE=1 replaces them"
    fi
    [ -z "$_bp_out" ] || printf '%s\n' "$_bp_out"
    if [ -n "$_bp_ifs_set" ]; then IFS=$_bp_ifs; else unset IFS; fi
}
"""


def _launcher() -> str:
    lines = ["_bp_launcher() {  # this node's processes of the job step, per its launcher"]
    for name, syntax in LAUNCHERS:
        parse = "_bp_tasks" if syntax == "slurm" else "_bp_count"
        lines.append(f'    if [ -n "${{{name}:-}}" ] && {parse} "${name}"; then return 0; fi')
    lines += ["    return 1", "}"]
    return "\n".join(lines)


def _tables(b: Bundle) -> str:
    types = ["_bp_type() {  # the node type's default class, classes and obeyed variables"]
    types.append("    case $1 in")
    rows = [
        "_bp_rows() {  # a node type's class: its layout rows (workers:threads) in _bp_table,",
        "    # and every other library's label:threads:variables; in _bp_libs",
    ]
    rows.append("    case $1:$2 in")
    for e in b.entries:
        classes = " ".join(name for name, _ in e.classes)
        obeyed = " ".join(e.obeyed)
        types.append(
            f"        {e.name}) _bp_default={e.default} _bp_classes='{classes}' "
            f"_bp_obeyed=' {obeyed} ' _bp_blas={e.blas} ;;"
        )
        for name, table in e.classes:
            cells = " ".join(f"{w}:{t}" for w, t in table)
            libs = "".join(
                f"{label}:{dict(counts)[name]}:{','.join(obeys)};"
                for label, obeys, counts in e.libraries
            )
            rows.append(f"        {e.name}:{name}) _bp_table='{cells}' _bp_libs='{libs}' ;;")
    types += ["        *) return 1 ;;", "    esac", "}"]
    rows += ["        *) return 1 ;;", "    esac", "}"]
    return "\n".join(types + rows)


def _unrolled() -> tuple[str, str, str]:
    users = "\n".join(
        f'    _bp_user {v} "${{{v}:-}}"' for v in THREAD_VARIABLES + WATCHED_VARIABLES
    )
    give = "\n".join(f"    _bp_give {v}" for v in THREAD_VARIABLES)
    drops = [f'    _bp_drop {v} "${{{v}:-}}"' for v in THREAD_VARIABLES]
    for v in WATCHED_VARIABLES:  # a user's setting of these is only unset on override
        drops.append(
            f'    if [ -n "$_bp_override" ]; then case "$_bp_users " in *" {v} "*) '
            f"_bp_unput {v} ;; esac; fi"
        )
    return users, give, "\n".join(drops)


def _header(b: Bundle, directory: str, file_name: str) -> list[str]:
    what = f"node type {b.single_type}" if b.single_type else f"every node type ({b.names()})"
    lines = [
        "# shellcheck shell=sh",
        f"# blasprof preset for {what}: BLAS/OpenMP thread variables for this node, the",
        "# CPUs this job was given and its process layout. Load it before the work starts:",
        "#   sh, bash, zsh, ksh:  . " + comment(f"{directory}/{file_name}"),
        "#   csh, tcsh:           source " + comment(f"{directory}/{file_name[:-3]}.csh"),
        "# Written by `blasprof presets write`; see `blasprof env --help` for the rule.",
    ]
    for e in b.entries:
        lines += ["#", *(f"# {line}" for line in e.summary)]
    return lines


def render_sh(b: Bundle, directory: str, file_name: str, presets: object = None) -> str:
    """The sh file of bundle ``b`` (``directory`` and ``file_name`` only go in comments)."""
    users, give, drops = _unrolled()
    name = f"    _bp_name={b.single_type}" if b.single_type else "    _bp_detect"
    main = (
        _MAIN.replace("@@NAME@@", name)
        .replace("@@BAD@@", BAD_COUNT)
        .replace("@@DEFAULT_OBEYED@@", " ".join(DEFAULT_OBEYED))
        .replace("@@KNOWN@@", b.names())
        .replace("@@USERS@@", users)
        .replace("@@GIVE@@", give)
        .replace("@@DROP@@", drops)
        .replace("@@IFS@@", " \t\n")
    )
    parts = [
        "\n".join(_header(b, directory, file_name)),
        _HELPERS.replace("@@CPUS@@", CPU_FUNCTIONS.strip("\n"))
        .replace("@@WATCHED@@", "|".join(WATCHED_VARIABLES))
        .replace("@@FREE@@", "|".join(FREE_VARIABLES))
        .replace("@@BAD@@", BAD_COUNT)
        .strip("\n"),
        _launcher(),
        _tables(b),
    ]
    if not b.single_type:
        parts.append(detect_functions(b))
    parts += [main.strip("\n"), "_bp_main"]
    body = "\n".join(parts)
    functions = set(re.findall(r"^(_bp_\w+)\(\)", body, re.M))
    variables = set(re.findall(r"\b_bp_\w+", body)) - functions
    tail = [
        "unset -f " + " ".join(sorted(functions)),
        "unset " + " ".join(sorted(variables)),
    ]
    return body + "\n" + "\n".join(tail) + "\n"


def render_csh(b: Bundle, directory: str, file_name: str, presets: object = None) -> str:
    """The csh/tcsh file of bundle ``b``: it evaluates what the sh file beside it prints."""
    path = shell_path(directory)
    sh_name = file_name[: -len(".csh")] + ".sh"
    what = f"node type {b.single_type}" if b.single_type else f"every node type ({b.names()})"
    lines = [
        f"# blasprof preset for {what}, for csh and tcsh:",
        "#   source " + comment(f"{directory}/{file_name}"),
        f"# The rule runs in /bin/sh from {sh_name} beside this file, which prints setenv lines.",
        f"eval \"`env BLASPROF_EMIT=csh /bin/sh '{path}/{sh_name}'`\"",
    ]
    return "\n".join(lines) + "\n"
