#!/usr/bin/env bash
# Runs Agora's whole test suite, PostgreSQL included (it is never skipped).
# PostgreSQL, in order: $TEST_DATABASE_URL; a server at 127.0.0.1:5432 (user postgres, trust
# auth); a throwaway cluster made with the system's initdb/pg_ctl; else it fails and says how to
# install PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

find_pg_bin() {
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return 0; fi
  local d
  for d in /usr/lib/postgresql/*/bin /usr/local/pgsql/bin /opt/homebrew/bin /usr/local/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  return 1
}

PG_AS=()
STOP_PG=0
STOP_REDIS=0
cleanup() {
  if [ "$STOP_PG" = 1 ]; then stop_throwaway_cluster; fi
  if [ "$STOP_REDIS" = 1 ]; then
    kill "$(cat "$REDIS_DIR/pid" 2>/dev/null)" 2>/dev/null || true
    rm -rf "$REDIS_DIR"
  fi
}
trap cleanup EXIT

start_throwaway_cluster() {
  PG_BIN="$1"
  PG_DIR=$(mktemp -d /tmp/agora-pg.XXXXXX)
  local port=55432
  if [ "$(id -u)" = 0 ]; then
    # initdb refuses to run as root: run the cluster as the postgres (or nobody) user.
    local user=postgres
    id "$user" >/dev/null 2>&1 || user=nobody
    chown "$user" "$PG_DIR"
    PG_AS=(runuser -u "$user" --)
  fi
  while port_open 127.0.0.1 "$port"; do port=$((port + 1)); done
  "${PG_AS[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust >/dev/null
  STOP_PG=1
  "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
      -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" start >/dev/null
  export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "test.sh: started a throwaway PostgreSQL cluster on port $port"
}

stop_throwaway_cluster() {
  "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
}

if [ -n "${TEST_DATABASE_URL:-}" ]; then
  echo "test.sh: PostgreSQL from TEST_DATABASE_URL"
elif port_open 127.0.0.1 5432; then
  export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
  echo "test.sh: PostgreSQL at 127.0.0.1:5432"
elif bin=$(find_pg_bin); then
  start_throwaway_cluster "$bin"
else
  cat >&2 <<'MSG'
test.sh: PostgreSQL is needed and none was found.
  Install it (Debian/Ubuntu: `sudo apt-get install postgresql`; macOS: `brew install postgresql`),
  or point TEST_DATABASE_URL at a server where the user may CREATE DATABASE, e.g.
  TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres bash scripts/test.sh
MSG
  exit 1
fi

# Redis (the shared rate limits' optional backend has its own tests): 127.0.0.1:6379, else a
# throwaway server started with the system's redis-server, else it fails and says how to install it.
if port_open 127.0.0.1 6379; then
  echo "test.sh: Redis at 127.0.0.1:6379"
elif command -v redis-server >/dev/null 2>&1; then
  REDIS_DIR=$(mktemp -d /tmp/agora-redis.XXXXXX)
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir "$REDIS_DIR" --logfile "$REDIS_DIR/log" --pidfile "$REDIS_DIR/pid"
  for _ in $(seq 1 30); do port_open 127.0.0.1 6379 && break; sleep 1; done
  STOP_REDIS=1
  echo "test.sh: started a throwaway Redis on 127.0.0.1:6379"
else
  echo "test.sh: Redis is needed (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis)" >&2
  exit 1
fi

# Each PostgreSQL test server holds up to ~35 connections (pools plus a session per background
# lease): with a server limit under 300, run fewer tests at once.
THREADS=()
if command -v psql >/dev/null 2>&1; then
  max_conn=$(psql "$TEST_DATABASE_URL" -Atc 'SHOW max_connections' 2>/dev/null || echo 0)
  if [ "${max_conn:-0}" -gt 0 ] && [ "$max_conn" -lt 300 ]; then
    echo "test.sh: PostgreSQL allows $max_conn connections: running 2 tests at a time"
    THREADS=(--test-threads 2)
  fi
fi

if cargo nextest --version >/dev/null 2>&1; then
  # The workspace has no doctests (nextest does not run them).
  cargo nextest run --workspace "${THREADS[@]}" "$@"
else
  cargo test --workspace "$@" -- "${THREADS[@]}"
fi
