#!/usr/bin/env bash
# A throwaway PostgreSQL server for the class-store tests, on a loopback port.
#
#   export CLASSROOM_TEST_PG_URL="$(bash scripts/postgres.sh)"
#
# Prints one line on stdout: the SQLAlchemy URL (postgresql+psycopg://...); everything else
# goes to stderr. Reuses a server already answering on the port. Otherwise: installs
# Debian's `postgresql` with apt when no initdb/pg_ctl is found (on PATH or in
# /usr/lib/postgresql/<ver>/bin), creates a data folder under /tmp, and starts the server
# with trust authentication for 127.0.0.1 only. PostgreSQL refuses to run as root, so as
# root it runs as the `postgres` system user (created when missing).
#   PG_TEST_PORT   port (default 54329)       PG_TEST_DIR   data folder
#   bash scripts/postgres.sh stop             stops the server this script started
set -euo pipefail
PORT=${PG_TEST_PORT:-54329}
DATA=${PG_TEST_DIR:-/tmp/mnist-studio-pg-$PORT}
URL="postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"
log() { echo "postgres.sh: $*" >&2; }

find_bin() {   # the folder holding initdb and pg_ctl
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"; return 0
  fi
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; return 0; fi
  done
  return 1
}

as_owner() {   # run a command as the user owning the cluster
  if [ "$(id -u)" -ne 0 ]; then
    "$@"; return
  fi
  local ru
  ru=$(command -v runuser || ls /usr/sbin/runuser /sbin/runuser 2>/dev/null | head -n 1 || true)
  if [ -n "$ru" ]; then
    "$ru" -u postgres -- "$@"
  else   # no runuser (not util-linux): su, with the arguments quoted for its shell
    su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
  fi
}

answering() {   # is a server accepting connections on the port?
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

BIN=$(find_bin || true)
if [ "${1:-}" = "stop" ]; then
  [ -n "$BIN" ] && [ -f "$DATA/postmaster.pid" ] && as_owner "$BIN/pg_ctl" -D "$DATA" -m fast stop >&2
  exit 0
fi

if answering; then
  log "a server already answers on 127.0.0.1:$PORT; using it"
  echo "$URL"; exit 0
fi

if [ -z "$BIN" ]; then
  log "no PostgreSQL found; installing Debian's postgresql"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
  BIN=$(find_bin) || { log "postgresql installed but initdb/pg_ctl not found"; exit 1; }
fi

if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

if [ ! -f "$DATA/PG_VERSION" ]; then
  log "creating a cluster in $DATA"
  mkdir -p "$DATA"
  [ "$(id -u)" -eq 0 ] && chown postgres "$DATA"
  chmod 700 "$DATA"
  as_owner "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 \
    --no-instructions >&2
fi
# Loopback only, socket in the data folder (the Debian default /var/run/postgresql may be
# missing or not ours), room for 30 benchmark sessions plus the tests.
as_owner "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 \
  -o "-p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$DATA -c max_connections=200" \
  start >&2 || { log "the server did not start; its log:"; tail -n 30 "$DATA/server.log" >&2; exit 1; }
log "started on 127.0.0.1:$PORT (data in $DATA; stop with: bash scripts/postgres.sh stop)"
echo "$URL"
