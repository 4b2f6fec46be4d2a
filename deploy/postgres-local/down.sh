#!/usr/bin/env bash
# Stop the PostgreSQL server started by up.sh. Idempotent; --purge also deletes its data.
set -euo pipefail
STATE_DIR=${BLASPROF_PG_DIR:-/tmp/blasprof-pg}
DATA=$STATE_DIR/data
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [[ -n $BIN && -s $DATA/postmaster.pid ]]; then
    runuser -u postgres -- "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 30 stop >/dev/null \
        && echo "PostgreSQL stopped" || echo "PostgreSQL was not running"
else
    echo "PostgreSQL was not running"
fi
if [[ ${1:-} = --purge ]]; then
    rm -rf "$STATE_DIR"
    echo "removed $STATE_DIR"
fi
