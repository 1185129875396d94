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

start_throwaway_cluster() {
  local bin="$1" dir port=55432 as=()
  dir=$(mktemp -d /tmp/agora-pg.XXXXXX)
  if [ "$(id -u)" = 0 ]; then
    # initdb refuses to run as root: run the cluster as the postgres (or nobody) user.
    local user=postgres
    id "$user" >/dev/null 2>&1 || user=nobody
    chown "$user" "$dir"
    as=(runuser -u "$user" --)
  fi
  while port_open 127.0.0.1 "$port"; do port=$((port + 1)); done
  "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" start >/dev/null
  trap '"${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1; rm -rf "$dir"' EXIT
  export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "test.sh: started a throwaway PostgreSQL cluster on port $port"
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

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace "$@"
  # nextest does not run doctests.
  cargo test --workspace --doc
else
  cargo test --workspace "$@"
fi
