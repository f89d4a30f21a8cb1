#!/usr/bin/env bash
# Throwaway PostgreSQL on loopback, e.g. for Optuna studies shared by several search workers.
#
#   scripts/local_postgres.sh start   # idempotent; prints the SQLAlchemy URL on stdout
#   scripts/local_postgres.sh url     # prints the URL of the running server (exit 1 if down)
#   scripts/local_postgres.sh stop    # stops the server and deletes its data dir
#
# State (data dir, socket, log, port) lives in $URSA_PG_DIR (default /tmp/ursa-postgres).
# The server listens on 127.0.0.1 only, on a free port, with trust authentication and
# fsync off: a test fixture, never a place for data you want to keep. PostgreSQL refuses to
# run as root, so under root the server runs as the `postgres` system user.
set -euo pipefail

STATE=${URSA_PG_DIR:-/tmp/ursa-postgres}
DATA=$STATE/data
DB=ursa
ROLE=ursa

die() { echo "local_postgres: $*" >&2; exit 1; }
log() { echo "local_postgres: $*" >&2; }

pg_bin() {  # newest installed server binaries, e.g. /usr/lib/postgresql/15/bin
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [[ -n $d && -x $d/initdb ]] && echo "$d"
}

install_packages() {
  pg_bin >/dev/null && return 0
  [[ $(id -u) == 0 ]] || die "PostgreSQL server not installed and not root: install the postgresql package"
  log "installing postgresql"
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >/dev/null
}

as_owner() {  # run a command as the user that owns the server
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

url() {
  echo "postgresql+psycopg2://$ROLE:$ROLE@127.0.0.1:$(cat "$STATE/port")/$DB"
}

running() { [[ -f $STATE/port ]] && as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

do_start() {
  install_packages
  BIN=$(pg_bin)
  if running; then url; return 0; fi
  if [[ $(id -u) == 0 ]] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir "$STATE" --shell /usr/sbin/nologin postgres
  fi
  mkdir -p "$STATE"
  [[ $(id -u) == 0 ]] && chown postgres: "$STATE"
  if [[ ! -f $DATA/PG_VERSION ]]; then
    as_owner "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --no-sync -E UTF8 \
      >"$STATE/initdb.log" 2>&1 || die "initdb failed, see $STATE/initdb.log"
    cat >>"$DATA/postgresql.conf" <<EOF
# Throwaway test server (scripts/local_postgres.sh): loopback only, durability off for speed.
listen_addresses = '127.0.0.1'
unix_socket_directories = '$STATE'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
  fi
  [[ -f $STATE/port ]] || /usr/bin/python3 -c \
    'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' >"$STATE/port"
  as_owner "$BIN/pg_ctl" -D "$DATA" -l "$STATE/server.log" -w -t 60 \
    -o "-p $(cat "$STATE/port")" start >/dev/null || die "server did not start, see $STATE/server.log"
  local psql=("$BIN/psql" -X -q -h "$STATE" -p "$(cat "$STATE/port")" -U postgres -d postgres -v ON_ERROR_STOP=1)
  if [[ -z $(as_owner "${psql[@]}" -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'") ]]; then
    as_owner "${psql[@]}" -c "CREATE ROLE $ROLE LOGIN PASSWORD '$ROLE'" -c "CREATE DATABASE $DB OWNER $ROLE"
  fi
  log "up on 127.0.0.1:$(cat "$STATE/port")"
  url
}

do_stop() {
  [[ -d $STATE ]] || return 0
  BIN=$(pg_bin) || die "PostgreSQL server binaries not found"
  if running; then as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null; fi
  rm -rf "$STATE"
  log "stopped and removed $STATE"
}

do_url() {
  BIN=$(pg_bin) || die "PostgreSQL server binaries not found"
  running || die "not running (start it with: $0 start)"
  url
}

case ${1:-} in
  start) do_start ;;
  stop) do_stop ;;
  url) do_url ;;
  *) die "usage: $0 start|stop|url (got '${1:-}')" ;;
esac
