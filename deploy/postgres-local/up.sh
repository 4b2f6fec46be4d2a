#!/usr/bin/env bash
# Start a private PostgreSQL server on 127.0.0.1 for blasprof's tests and demos.
#
# It uses Debian's postgresql packages (installed if missing), keeps everything in one
# state dir, runs as the 'postgres' system user, and creates a database and a role for
# blasprof with a password.  Running it again while the server runs changes nothing.
# Prints the SQLAlchemy URL and writes it to <state dir>/env.sh as BLASPROF_TEST_PG_URL.
#
# Settings (environment):
#   BLASPROF_PG_DIR       state dir (data, log, socket)        [/tmp/blasprof-pg]
#   BLASPROF_PG_PORT      port on 127.0.0.1                    [15432]
#   BLASPROF_PG_NO_INSTALL  set to 1 to fail instead of apt-get installing postgresql
set -euo pipefail

STATE_DIR=${BLASPROF_PG_DIR:-/tmp/blasprof-pg}
PORT=${BLASPROF_PG_PORT:-15432}
DB=blasprof
ROLE=blasprof
PASSWORD=blasprof-test

die() { echo "postgres up.sh: $*" >&2; exit 1; }
[[ $PORT =~ ^[0-9]+$ ]] || die "BLASPROF_PG_PORT must be an integer, got '$PORT'"
[[ $(id -u) -eq 0 ]] || die "must run as root (it runs the server as the postgres user)"

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
if [[ -z $(bindir) ]]; then
    [[ ${BLASPROF_PG_NO_INSTALL:-0} = 1 ]] && die "postgresql is not installed"
    echo "installing postgresql"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql \
        >/dev/null || die "apt-get install postgresql failed (run apt-get update first?)"
fi
BIN=$(bindir)
as_pg() { runuser -u postgres -- "$@"; }

mkdir -p "$STATE_DIR"
chown postgres: "$STATE_DIR"
chmod 700 "$STATE_DIR"
DATA=$STATE_DIR/data
URL="postgresql+psycopg://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB"

if [[ ! -s $DATA/PG_VERSION ]]; then
    as_pg "$BIN/initdb" -D "$DATA" -U postgres -A trust --no-sync -E UTF8 >/dev/null
    {
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $PORT"
        echo "unix_socket_directories = '$STATE_DIR'"
        echo "fsync = off"  # a throw-away test server
    } >>"$DATA/postgresql.conf"
    # Password authentication over TCP, as a shared site database would use.
    echo "host all all 127.0.0.1/32 scram-sha-256" >"$DATA/pg_hba.conf"
    echo "local all postgres trust" >>"$DATA/pg_hba.conf"
fi

if as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    echo "already running"
else
    as_pg "$BIN/pg_ctl" -D "$DATA" -l "$STATE_DIR/server.log" -w -t 60 start >/dev/null \
        || { tail -n 20 "$STATE_DIR/server.log" >&2; die "the server did not start"; }
fi

psql_admin() { as_pg "$BIN/psql" -h "$STATE_DIR" -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
if [[ -z $(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'") ]]; then
    psql_admin -c "CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD'"
fi
if [[ -z $(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB'") ]]; then
    psql_admin -c "CREATE DATABASE $DB OWNER $ROLE"
fi

cat >"$STATE_DIR/env.sh" <<ENV
# Written by blasprof deploy/postgres-local/up.sh
export BLASPROF_TEST_PG_URL='$URL'
ENV
echo "PostgreSQL up on 127.0.0.1:$PORT (data in $DATA)"
echo "  blasprof --db '$URL' list"
echo "  tests: . $STATE_DIR/env.sh  (sets BLASPROF_TEST_PG_URL)"
