#!/usr/bin/env bash
# Start a one-node Slurm cluster on this machine, for blasprof's tests and demos.
#
# Everything lives in one state dir (BLASPROF_SLURM_DIR, default /tmp/blasprof-slurm):
# slurm.conf, a private munged (own key and socket), slurmctld and slurmd state, logs,
# pid files and env.sh.  Every address is pinned to 127.0.0.1.  Running it again while
# the same cluster runs changes nothing; a changed configuration restarts the daemons.
#
# Settings (environment):
#   BLASPROF_SLURM_DIR         state dir                          [/tmp/blasprof-slurm]
#   BLASPROF_SLURMCTLD_PORT    slurmctld port                     [16817]
#   BLASPROF_SLURMD_PORT       slurmd port                        [16818]
#   BLASPROF_SLURM_PARTITIONS  partitions over the node, first is the default [typea typeb]
#   BLASPROF_SLURM_MAX_ARRAY   MaxArraySize                       [1001]
#   BLASPROF_SLURM_MIN_JOB_AGE seconds a finished job stays visible in squeue/scontrol [120]
#                              (without accounting its end state is lost after that)
#   BLASPROF_TASK_PROLOG       absolute path of a TaskProlog script (optional)
#   BLASPROF_SLURM_WAIT_S      how long to wait for the node to become idle [60]
#   BLASPROF_SLURM_NO_INSTALL  set to 1 to fail instead of apt-get installing missing packages
set -euo pipefail

STATE_DIR=${BLASPROF_SLURM_DIR:-/tmp/blasprof-slurm}
CTLD_PORT=${BLASPROF_SLURMCTLD_PORT:-16817}
SLURMD_PORT=${BLASPROF_SLURMD_PORT:-16818}
PARTITIONS=${BLASPROF_SLURM_PARTITIONS:-typea typeb}
MAX_ARRAY=${BLASPROF_SLURM_MAX_ARRAY:-1001}
MIN_JOB_AGE=${BLASPROF_SLURM_MIN_JOB_AGE:-120}
TASK_PROLOG=${BLASPROF_TASK_PROLOG:-}
WAIT_S=${BLASPROF_SLURM_WAIT_S:-60}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

CONF=$STATE_DIR/slurm.conf
MUNGE_DIR=$STATE_DIR/munge
MUNGE_SOCKET=$MUNGE_DIR/munge.socket
LOG_DIR=$STATE_DIR/log
RUN_DIR=$STATE_DIR/run

die() { echo "up.sh: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (slurmd and munged run as root here)"
[[ $CTLD_PORT =~ ^[0-9]+$ && $SLURMD_PORT =~ ^[0-9]+$ ]] \
    || die "ports must be integers, got '$CTLD_PORT' and '$SLURMD_PORT'"
[[ $MAX_ARRAY =~ ^[0-9]+$ ]] || die "BLASPROF_SLURM_MAX_ARRAY must be an integer, got '$MAX_ARRAY'"
[[ $MIN_JOB_AGE =~ ^[0-9]+$ ]] \
    || die "BLASPROF_SLURM_MIN_JOB_AGE must be an integer (seconds), got '$MIN_JOB_AGE'"
if [[ -n $TASK_PROLOG ]]; then
    [[ $TASK_PROLOG = /* && -x $TASK_PROLOG ]] \
        || die "BLASPROF_TASK_PROLOG must be an absolute path to an executable, got '$TASK_PROLOG'"
fi

install_packages() {
    local missing=()
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null || missing+=(slurm-client)
    command -v munged >/dev/null || missing+=(munge)
    [[ ${#missing[@]} -eq 0 ]] && return
    [[ ${BLASPROF_SLURM_NO_INSTALL:-0} = 1 ]] && die "missing packages: ${missing[*]}"
    echo "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
        >/dev/null || die "apt-get install ${missing[*]} failed"
}

# A pid file names a live daemon only if that pid still runs the expected program.
alive() {  # alive PIDFILE COMM
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) = "$2" ]]
}

node_line() {
    # slurmd -C prints e.g. "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2
    # ThreadsPerCore=1 RealMemory=24105"; keep the topology, lower the memory by 5% so that
    # the node is not drained for having less memory than declared.
    local line word mem
    line=$(slurmd -C | head -n 1)
    local out="NodeName=$HOST NodeAddr=127.0.0.1 Port=$SLURMD_PORT"
    for word in $line; do
        case $word in
            CPUs=*|Boards=*|SocketsPerBoard=*|CoresPerSocket=*|ThreadsPerCore=*) out+=" $word" ;;
            RealMemory=*) mem=${word#RealMemory=}; out+=" RealMemory=$((mem * 95 / 100))" ;;
        esac
    done
    echo "$out State=UNKNOWN"
}

write_conf() {  # write_conf PATH
    local first=1 part
    {
        echo "# Written by blasprof deploy/slurm-local/up.sh; edits are overwritten."
        echo "ClusterName=blasprof"
        echo "SlurmctldHost=$HOST(127.0.0.1)"
        echo "SlurmctldPort=$CTLD_PORT"
        echo "SlurmdPort=$SLURMD_PORT"
        echo "SlurmUser=root"
        echo "SlurmdUser=root"
        # Bind to the node's own address (127.0.0.1 here), not to every interface.
        echo "CommunicationParameters=NoCtldInAddrAny,NoInAddrAny"
        echo "AuthType=auth/munge"
        echo "CredType=cred/munge"
        echo "AuthInfo=socket=$MUNGE_SOCKET"
        echo "StateSaveLocation=$STATE_DIR/ctld"
        echo "SlurmdSpoolDir=$STATE_DIR/spool/%n"
        echo "SlurmctldPidFile=$RUN_DIR/slurmctld.pid"
        echo "SlurmdPidFile=$RUN_DIR/slurmd.pid"
        echo "SlurmctldLogFile=$LOG_DIR/slurmctld.log"
        echo "SlurmdLogFile=$LOG_DIR/slurmd.log"
        echo "SlurmctldDebug=info"
        echo "SlurmdDebug=info"
        echo "ProctrackType=proctrack/linuxproc"
        echo "TaskPlugin=task/none"
        echo "SelectType=select/cons_tres"
        echo "SelectTypeParameters=CR_Core"
        echo "AccountingStorageType=accounting_storage/none"
        echo "JobAcctGatherType=jobacct_gather/none"
        echo "JobCompType=jobcomp/none"
        echo "MpiDefault=none"
        echo "MailProg=/bin/true"
        echo "ReturnToService=2"
        echo "MaxArraySize=$MAX_ARRAY"
        echo "MaxJobCount=20000"
        # Without accounting, squeue/scontrol are the only record of a finished job's state:
        # keep it MinJobAge seconds.  A timed-out job gets SIGKILL 5 s after SIGTERM; the
        # time limit itself is checked by slurmctld every 30 s (not configurable).
        echo "MinJobAge=$MIN_JOB_AGE"
        echo "KillWait=5"
        echo "OverTimeLimit=0"
        echo "InactiveLimit=0"
        echo "SlurmdTimeout=300"
        echo "SlurmctldTimeout=120"
        [[ -n $TASK_PROLOG ]] && echo "TaskProlog=$TASK_PROLOG"
        node_line
        for part in $PARTITIONS; do
            if ((first)); then default=YES; first=0; else default=NO; fi
            echo "PartitionName=$part Nodes=$HOST Default=$default MaxTime=7-00:00:00 State=UP"
        done
    } >"$1"
}

start_munged() {
    if [[ ! -s $MUNGE_DIR/munge.key ]]; then
        dd if=/dev/urandom of="$MUNGE_DIR/munge.key" bs=1024 count=1 status=none
    fi
    chmod 600 "$MUNGE_DIR/munge.key"
    munged --socket="$MUNGE_SOCKET" --key-file="$MUNGE_DIR/munge.key" \
        --pid-file="$RUN_DIR/munged.pid" --log-file="$LOG_DIR/munged.log" \
        --seed-file="$MUNGE_DIR/munged.seed" </dev/null >>"$LOG_DIR/munged.log" 2>&1 \
        || { tail -n 20 "$LOG_DIR/munged.log" >&2; die "munged did not start"; }
}

wait_idle() {
    local deadline=$((SECONDS + WAIT_S)) state=""
    while ((SECONDS < deadline)); do
        state=$(sinfo -h -N -n "$HOST" -o '%T' 2>/dev/null | head -n 1 || true)
        [[ $state = idle || $state = mixed || $state = allocated ]] && return 0
        sleep 1
    done
    echo "up.sh: node $HOST not idle after ${WAIT_S}s (state: '${state:-no answer}')" >&2
    local log
    for log in munged slurmctld slurmd; do
        echo "---- $LOG_DIR/$log.log (tail)" >&2
        tail -n 25 "$LOG_DIR/$log.log" >&2 2>/dev/null || true
    done
    return 1
}

report() {
    echo "Slurm cluster up: node $HOST, partitions: $PARTITIONS (default: ${PARTITIONS%% *})"
    echo "MaxArraySize=$MAX_ARRAY  MinJobAge=${MIN_JOB_AGE}s  slurmctld port $CTLD_PORT  slurmd port $SLURMD_PORT"
    [[ -n $TASK_PROLOG ]] && echo "TaskProlog=$TASK_PROLOG"
    echo "Use it with:"
    echo "  export SLURM_CONF=$CONF"
    echo "  (or: . $STATE_DIR/env.sh)"
}

install_packages
HOST=$(hostname -s)
mkdir -p "$STATE_DIR"
chmod 755 "$STATE_DIR"
mkdir -p "$MUNGE_DIR" "$LOG_DIR" "$RUN_DIR" "$STATE_DIR/ctld" "$STATE_DIR/spool"
chmod 755 "$MUNGE_DIR"
export SLURM_CONF=$CONF

new_conf=$(mktemp "$STATE_DIR/slurm.conf.XXXXXX")
trap 'rm -f "$new_conf"' EXIT
write_conf "$new_conf"

if alive "$RUN_DIR/munged.pid" munged && alive "$RUN_DIR/slurmctld.pid" slurmctld \
    && alive "$RUN_DIR/slurmd.pid" slurmd && cmp -s "$new_conf" "$CONF"; then
    echo "already running with the same configuration"
    wait_idle
    report
    exit 0
fi

# Something is missing or the configuration changed: start from a clean set of daemons.
"$HERE/down.sh" >/dev/null
mv "$new_conf" "$CONF"
chmod 644 "$CONF"
cat >"$STATE_DIR/env.sh" <<EOF
# Written by blasprof deploy/slurm-local/up.sh: . this file to use the local cluster.
export SLURM_CONF=$CONF
export BLASPROF_SLURM_CONF=$CONF
EOF

start_munged
slurmctld -f "$CONF" </dev/null >>"$LOG_DIR/slurmctld.out" 2>&1 \
    || { tail -n 25 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmctld.out" >&2; die "slurmctld did not start"; }
slurmd -f "$CONF" </dev/null >>"$LOG_DIR/slurmd.out" 2>&1 \
    || { tail -n 25 "$LOG_DIR/slurmd.log" "$LOG_DIR/slurmd.out" >&2; die "slurmd did not start"; }
wait_idle || exit 1
report
