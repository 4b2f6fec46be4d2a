#!/usr/bin/env bash
# Stop the local Slurm cluster started by up.sh: cancel its jobs, then stop slurmd,
# slurmctld and munged by the pids up.sh recorded.  Nothing running is not an error.
#
#   down.sh            stop the daemons, keep the state dir (job ids keep counting up)
#   down.sh --purge    stop the daemons and delete the state dir
set -euo pipefail

STATE_DIR=${BLASPROF_SLURM_DIR:-/tmp/blasprof-slurm}
RUN_DIR=$STATE_DIR/run
CONF=$STATE_DIR/slurm.conf
PURGE=0
case ${1:-} in
    "") ;;
    --purge) PURGE=1 ;;
    *) echo "down.sh: unknown argument '$1'; accepted: --purge" >&2; exit 2 ;;
esac

pid_of() {  # pid_of PIDFILE COMM: the pid if it still runs COMM, else nothing
    local pid
    [[ -s $1 ]] || return 0
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) = "$2" ]] && echo "$pid"
    return 0
}

stop() {  # stop NAME: SIGTERM, wait up to 20 s, then SIGKILL
    local name=$1 pid i
    pid=$(pid_of "$RUN_DIR/$name.pid" "$name")
    if [[ -z $pid ]]; then
        rm -f "$RUN_DIR/$name.pid"
        return
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        [[ -d /proc/$pid ]] || break
        sleep 0.1
    done
    if [[ -d /proc/$pid ]]; then
        echo "down.sh: $name ($pid) ignored SIGTERM for 20 s, sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
        while [[ -d /proc/$pid ]]; do sleep 0.1; done
    fi
    rm -f "$RUN_DIR/$name.pid"
    echo "stopped $name ($pid)"
}

# Running jobs' slurmstepd outlive slurmd: cancel the jobs while slurmctld still answers.
if [[ -n $(pid_of "$RUN_DIR/slurmctld.pid" slurmctld) && -f $CONF ]]; then
    export SLURM_CONF=$CONF
    jobs=$(timeout 10 squeue -h -o '%A' 2>/dev/null || true)
    if [[ -n $jobs ]]; then
        # shellcheck disable=SC2086
        timeout 10 scancel $jobs 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            [[ -z $(timeout 5 squeue -h -t running,completing -o '%A' 2>/dev/null || true) ]] && break
            sleep 0.2
        done
    fi
fi

stop slurmd
stop slurmctld
stop munged

if ((PURGE)); then
    rm -rf "$STATE_DIR"
    echo "removed $STATE_DIR"
fi
