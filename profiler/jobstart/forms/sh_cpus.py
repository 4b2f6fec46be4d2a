"""The sh form's readers of the CPUs a process may use (its affinity list, physical cores,
cgroup quota) and of a Slurm task list: ``profiler.jobstart.budget``'s ``cpu_list_size``,
``affinity_cpus``, ``cores_here``, ``cgroup_quota``, ``usable_here`` and ``tasks_on_node``
in POSIX sh without a fork. ``profiler.jobstart.forms.sh`` places them among its helpers;
they use its ``_bp_index``, ``_bp_count`` and ``_bp_whole``."""

from __future__ import annotations

__all__ = ["CPU_FUNCTIONS"]

CPU_FUNCTIONS = r"""
_bp_cpus() {  # how many CPUs a kernel CPU list ("0-3,8") names, in _bp_n, or fail
    _bp_rest=$1, _bp_total=0
    while [ -n "$_bp_rest" ]; do
        _bp_item=${_bp_rest%%,*}
        _bp_rest=${_bp_rest#*,}
        _bp_high=${_bp_item#*-}
        _bp_index "${_bp_item%%-*}" || return 1
        _bp_low=$_bp_n
        _bp_index "${_bp_high:-${_bp_item%%-*}}" || return 1
        [ "$_bp_n" -ge "$_bp_low" ] || return 1
        _bp_total=$((_bp_total + _bp_n - _bp_low + 1))
    done
    _bp_n=$_bp_total
}
_bp_affinity() {  # this process's affinity list in _bp_list
    _bp_list=
    [ -r /proc/self/status ] || return 0
    while read -r _bp_key _bp_value; do
        case $_bp_key in Cpus_allowed_list:) _bp_list=$_bp_value; break ;; esac
    done < /proc/self/status
}
_bp_cores() {  # physical cores among the CPUs of _bp_list, in _bp_n
    _bp_rest=$_bp_list, _bp_seen=' ' _bp_total=0 _bp_all=0 _bp_nosys=
    while [ -n "$_bp_rest" ]; do
        _bp_item=${_bp_rest%%,*}
        _bp_rest=${_bp_rest#*,}
        _bp_high=${_bp_item#*-}
        _bp_index "${_bp_item%%-*}" || break
        _bp_low=$_bp_n
        _bp_index "${_bp_high:-${_bp_item%%-*}}" || break
        while [ "$_bp_low" -le "$_bp_n" ]; do
            _bp_all=$((_bp_all + 1))
            _bp_file=/sys/devices/system/cpu/cpu$_bp_low/topology/thread_siblings_list
            _bp_s=
            if [ -r "$_bp_file" ]; then read -r _bp_s < "$_bp_file" || :; fi
            [ -n "$_bp_s" ] || _bp_nosys=1
            case $_bp_seen in
                *" $_bp_s "*) ;;
                *) _bp_seen="$_bp_seen$_bp_s " _bp_total=$((_bp_total + 1)) ;;
            esac
            _bp_low=$((_bp_low + 1))
        done
    done
    [ -z "$_bp_nosys" ] || _bp_total=$_bp_all
    _bp_n=$_bp_total
    [ "$_bp_n" -ge 1 ] || _bp_n=1
}
_bp_quota() {  # this process's cgroup CPU quota in whole CPUs (rounded down) in _bp_n, or fail
    [ -r /proc/self/cgroup ] || return 1
    while IFS= read -r _bp_line; do
        case $_bp_line in *:*) _bp_rest=${_bp_line#*:} ;; *) _bp_rest= ;; esac
        _bp_h=${_bp_line%%:*}
        _bp_ctl=${_bp_rest%%:*}
        case $_bp_rest in *:*) _bp_rel=${_bp_rest#*:} ;; *) _bp_rel= ;; esac
        while :; do
            case $_bp_rel in /*) _bp_rel=${_bp_rel#/} ;; */) _bp_rel=${_bp_rel%/} ;; *) break ;; esac
        done
        _bp_found=
        if [ "$_bp_h" = 0 ] && [ -z "$_bp_ctl" ]; then
            while :; do
                _bp_file=/sys/fs/cgroup/$_bp_rel/cpu.max
                _bp_a= _bp_b= _bp_x=
                if [ -r "$_bp_file" ]; then read -r _bp_a _bp_b _bp_x < "$_bp_file" || :; fi
                if [ -z "$_bp_x" ] && _bp_whole "$_bp_a"; then
                    _bp_q=$_bp_n
                    if _bp_whole "$_bp_b"; then
                        [ "$_bp_n" -ge 1 ] || _bp_n=1
                        _bp_q=$((_bp_q / _bp_n))
                        if [ -z "$_bp_found" ] || [ "$_bp_q" -lt "$_bp_found" ]; then
                            _bp_found=$_bp_q
                        fi
                    fi
                fi
                [ -n "$_bp_rel" ] || break
                case $_bp_rel in */*) _bp_rel=${_bp_rel%/*} ;; *) _bp_rel= ;; esac
            done
        else
            case ,$_bp_ctl, in
                *,cpu,*)
                    for _bp_base in "/sys/fs/cgroup/cpu/$_bp_rel" /sys/fs/cgroup/cpu; do
                        _bp_a= _bp_b=
                        if [ -r "$_bp_base/cpu.cfs_quota_us" ]; then
                            read -r _bp_a < "$_bp_base/cpu.cfs_quota_us" || :
                        fi
                        if [ -r "$_bp_base/cpu.cfs_period_us" ]; then
                            read -r _bp_b < "$_bp_base/cpu.cfs_period_us" || :
                        fi
                        if _bp_whole "$_bp_a" && [ "$_bp_n" -gt 0 ]; then
                            _bp_q=$_bp_n
                            if _bp_whole "$_bp_b" && [ "$_bp_n" -gt 0 ]; then
                                _bp_found=$((_bp_q / _bp_n))
                                break
                            fi
                        fi
                    done ;;
                *) continue ;;
            esac
        fi
        if [ -n "$_bp_found" ]; then _bp_n=$_bp_found; return 0; fi
    done < /proc/self/cgroup
    return 1
}
_bp_usable() {  # CPUs this process may use: its affinity, capped by its cgroup quota, in _bp_n
    _bp_affinity
    _bp_cpus "$_bp_list" || _bp_n=1
    _bp_aff=$_bp_n
    [ "$_bp_aff" -ge 1 ] || _bp_aff=1
    if _bp_quota; then
        [ "$_bp_n" -ge "$_bp_aff" ] || _bp_aff=$_bp_n
        [ "$_bp_aff" -ge 1 ] || _bp_aff=1
    fi
    _bp_n=$_bp_aff
}
_bp_tasks() {  # this node's entry of a Slurm task list such as 2(x3),1, in _bp_n, or fail
    if _bp_index "${SLURM_NODEID:-}"; then _bp_node=$_bp_n; else _bp_node=-1; fi
    _bp_rest=$1, _bp_seen=0 _bp_max=0
    while [ -n "$_bp_rest" ]; do
        _bp_item=${_bp_rest%%,*}
        _bp_rest=${_bp_rest#*,}
        _bp_times=1
        case $_bp_item in
            *'(x'*)
                _bp_r=${_bp_item#*'(x'}
                _bp_item=${_bp_item%%'(x'*}
                case $_bp_r in *')') ;; *) return 1 ;; esac
                _bp_count "${_bp_r%')'}" || return 1
                _bp_times=$_bp_n ;;
        esac
        _bp_count "$_bp_item" || return 1
        if [ "$_bp_node" -ge "$_bp_seen" ] && [ "$_bp_node" -lt $((_bp_seen + _bp_times)) ]; then
            return 0
        fi
        _bp_seen=$((_bp_seen + _bp_times))
        [ "$_bp_n" -le "$_bp_max" ] || _bp_max=$_bp_n
    done
    _bp_n=$_bp_max
}
"""
