#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A throwaway PostgreSQL 15 for tests and `make cluster`.
#
#   pg.sh start DIR   initdb into DIR/data (DIR must exist and be empty), start the server on a
#                     free 127.0.0.1 port with its socket in DIR, print its URL on stdout
#   pg.sh stop DIR    stop the server (fast) and remove DIR
#   pg.sh halt DIR    stop the server, keep the data (to start it again with `resume`)
#   pg.sh resume DIR  start the stopped server again on the same port
#   pg.sh url DIR     print the URL again
#   pg.sh freeze DIR  SIGSTOP the server and its backends: connections stay open, nothing answers
#   pg.sh thaw DIR    SIGCONT them again
#
# PostgreSQL refuses to run as root: as root the cluster belongs to `nobody` (DIR is chowned to
# it); otherwise to the calling user. Missing binaries are an error (scripts/install-deps.sh
# test installs postgresql-15), never a silent skip.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: pg.sh start|stop|halt|resume|url|freeze|thaw DIR" >&2; exit 2; }

bindir=""
for b in /usr/lib/postgresql/15/bin "$(dirname "$(command -v pg_ctl 2>/dev/null || echo /x/x)")"; do
  if [ -x "$b/initdb" ] && [ -x "$b/pg_ctl" ]; then bindir=$b; break; fi
done
if [ -z "$bindir" ]; then
  echo "pg.sh: PostgreSQL binaries (initdb, pg_ctl) not found; install postgresql-15" \
       "(scripts/install-deps.sh test)" >&2
  exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
  owner=nobody
  as() { runuser -u nobody -- "$@"; }
else
  owner=$(id -un)
  as() { "$@"; }
fi

url() { echo "postgres://$owner@127.0.0.1:$(cat "$dir/port")/postgres"; }

pgstart() {
  as "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
     -o "-p $(cat "$dir/port") -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
     start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
}

case "$cmd" in
  start)
    [ -d "$dir" ] || { echo "pg.sh: $dir is not a directory" >&2; exit 2; }
    chmod 0755 "$dir"
    [ "$(id -u)" -eq 0 ] && chown "$owner" "$dir"
    as "$bindir/initdb" -D "$dir/data" -U "$owner" --auth=trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' >"$dir/port"
    pgstart
    url
    ;;
  resume) pgstart ;;
  halt) as "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null ;;
  stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
      as "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  url) url ;;
  freeze|thaw)
    pm=$(head -n 1 "$dir/data/postmaster.pid")
    sig=STOP; [ "$cmd" = thaw ] && sig=CONT
    # The postmaster and its children (backends, background workers), by process id.
    kill -s "$sig" "$pm" $(pgrep -P "$pm") ;;
  *) echo "usage: pg.sh start|stop|halt|resume|url|freeze|thaw DIR" >&2; exit 2 ;;
esac
