#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Cluster mode's cost on the inference path: fraud v1 at 32 connections (wrk, loopback) on one
# node with the SQLite store and on the same node with --store postgres:// (a throwaway
# PostgreSQL from tests/cluster/pg.sh). Goal: postgres req/s >= 0.95 x sqlite req/s (a request
# never waits for PostgreSQL). Not run by the tests; run it on a quiet machine.
#
#   bench/cluster.sh [DURATION_S]      (default 10; QUIVER_BIN overrides ./build/quiver)
#
# Prints one line per store and a final `BENCH_CLUSTER sqlite_rps=.. postgres_rps=.. ratio=..
# goal=0.95 ok=yes|no`.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DURATION=${1:-10}
CONNS=32
THREADS=2
QUIVER_BIN=${QUIVER_BIN:-$ROOT/build/quiver}
BODY=$ROOT/examples/requests/fraud_1row.json
INFER_PATH=/v2/models/fraud/versions/1/infer
HOST=127.0.0.1

for t in wrk "$QUIVER_BIN"; do
  command -v "$t" >/dev/null || { echo "cluster.sh: $t not found" >&2; exit 1; }
done
if ! [[ "$DURATION" =~ ^[1-9][0-9]{0,4}$ ]]; then
  echo "cluster.sh: DURATION_S must be a positive integer" >&2
  exit 2
fi

TMP=$(mktemp -d /tmp/quiver-bench-cluster.XXXXXX)
chmod 0755 "$TMP"  # as root, PostgreSQL runs as nobody and must reach PG_DIR
PG_DIR=$TMP/pg
QPID=""
cleanup() {
  if [ -n "$QPID" ]; then kill -TERM "$QPID" 2>/dev/null || true; wait "$QPID" 2>/dev/null || true; fi
  if [ -d "$PG_DIR/data" ]; then "$ROOT/tests/cluster/pg.sh" stop "$PG_DIR" >/dev/null 2>&1 || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# The repository: a copy of fraud only, so nothing is written under examples/.
mkdir -p "$TMP/repo" "$PG_DIR"
cp -r "$ROOT/examples/models/fraud" "$TMP/repo/"

PG_URL=$("$ROOT/tests/cluster/pg.sh" start "$PG_DIR")

# run_one NAME [SERVE ARGS...]: starts quiver, warms up, measures, stops; prints req/s.
run_one() {
  local name=$1 pf=$TMP/$1.port port rps _
  shift
  mkdir -p "$TMP/$name-data"
  "$QUIVER_BIN" serve --repo "$TMP/repo" --data "$TMP/$name-data" --host "$HOST" --port 0 \
    --port-file "$pf" "$@" >"$TMP/$name.log" 2>&1 &
  QPID=$!
  for _ in $(seq 300); do
    if [ -s "$pf" ] && curl -fsS "http://$HOST:$(head -n 1 "$pf")/v2/health/ready" >/dev/null 2>&1; then break; fi
    kill -0 "$QPID" 2>/dev/null || { tail -n 20 "$TMP/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  port=$(head -n 1 "$pf")
  wrk -t "$THREADS" -c "$CONNS" -d 2s -s "$ROOT/bench/post.lua" "http://$HOST:$port$INFER_PATH" -- "$BODY" >/dev/null
  wrk -t "$THREADS" -c "$CONNS" -d "${DURATION}s" -s "$ROOT/bench/post.lua" \
    "http://$HOST:$port$INFER_PATH" -- "$BODY" >"$TMP/$name.wrk"
  kill -TERM "$QPID" 2>/dev/null || true
  wait "$QPID" 2>/dev/null || true
  QPID=""
  rps=$(grep '^BENCH ' "$TMP/$name.wrk" | tr ' ' '\n' | awk -F= '$1 == "rps" {print $2}')
  grep '^BENCH ' "$TMP/$name.wrk" | sed "s/^BENCH /BENCH store=$name /" >&2
  echo "$rps"
}

SQLITE=$(run_one sqlite)
POSTGRES=$(run_one postgres --store "$PG_URL" --node-name bench1)
awk -v s="$SQLITE" -v p="$POSTGRES" 'BEGIN {
  r = s > 0 ? p / s : 0
  printf "BENCH_CLUSTER sqlite_rps=%.1f postgres_rps=%.1f ratio=%.3f goal=0.95 ok=%s\n", s, p, r, (r >= 0.95 ? "yes" : "no")
}'
