#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Cluster mode's figures, each printed next to its goal (docs/cluster.md, "Figures"):
#
#  1. The store's cost on the inference path: fraud v1 at 32 connections (wrk, loopback) on one
#     node with the SQLite store and on the same node with --store postgres:// (a throwaway
#     PostgreSQL from tests/cluster/pg.sh), measured alternately ROUNDS times each (sqlite,
#     postgres, sqlite, postgres, ...) so that a change in the machine's load hits both sides.
#     Goal: postgres req/s >= 0.95 x sqlite req/s (a request never waits for PostgreSQL).
#  2. The cluster's overhead: three PostgreSQL nodes behind nginx against one node behind the
#     same nginx configuration (req/s and p99). On a 2-core machine this cannot show scaling.
#  3. Route change visible on every node: p99 over 100 changes (bench/cluster_propagation.py on
#     the three nodes). Goal: p99 <= 1 s.
#
#   bench/cluster.sh [DURATION_S]      (default 10; QUIVER_BIN overrides ./build/quiver,
#                                       CLUSTER_ROUNDS the rounds of part 1, default 2)
#
# Every wrk run prints `BENCH store=.. rps=.. p99_us=.. http_threads_cpu=A/B`: the CPU time
# (clock ticks) each HTTP thread of the server spent during the run. The HTTP thread pool does
# not balance connections: when wrk's 32 connections land on one of the two threads
# (A/B = N/0), that run is bound to one core, whatever the store. The summary gives every run
# (marked when unbalanced), the ratio of the best runs, of the means, and of the best balanced
# runs. Part 1 runs in ABBA order (sqlite, postgres, postgres, sqlite, ...).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DURATION=${1:-10}
ROUNDS=${CLUSTER_ROUNDS:-2}
CONNS=32
THREADS=2
QUIVER_BIN=${QUIVER_BIN:-$ROOT/build/quiver}
BODY=$ROOT/examples/requests/fraud_1row.json
INFER_PATH=/v2/models/fraud/versions/1/infer
HOST=127.0.0.1
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

for t in wrk curl python3 "$QUIVER_BIN" "$NGINX"; do
  command -v "$t" >/dev/null || { echo "cluster.sh: $t not found" >&2; exit 1; }
done
if ! [[ "$DURATION" =~ ^[1-9][0-9]{0,4}$ ]] || ! [[ "$ROUNDS" =~ ^[1-9]$ ]]; then
  echo "cluster.sh: DURATION_S must be a positive integer, CLUSTER_ROUNDS 1 to 9" >&2
  exit 2
fi

TMP=$(mktemp -d /tmp/quiver-bench-cluster.XXXXXX)
chmod 0755 "$TMP"  # as root, PostgreSQL runs as nobody and must reach PG_DIR
PG_DIR=$TMP/pg
PIDS=()
NGX_PID=""
stop_all() {
  if [ -n "$NGX_PID" ]; then kill -TERM "$NGX_PID" 2>/dev/null || true; wait "$NGX_PID" 2>/dev/null || true; fi
  NGX_PID=""
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
cleanup() {
  stop_all
  if [ -d "$PG_DIR/data" ]; then "$ROOT/tests/cluster/pg.sh" stop "$PG_DIR" >/dev/null 2>&1 || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# The repository: a copy of fraud only, so nothing is written under examples/.
mkdir -p "$TMP/repo" "$PG_DIR"
cp -r "$ROOT/examples/models/fraud" "$TMP/repo/"

PG_URL=$("$ROOT/tests/cluster/pg.sh" start "$PG_DIR")

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_node NAME [SERVE ARGS...]: starts quiver, waits until ready; sets NODE_PORT, NODE_PID.
start_node() {
  local name=$1 pf=$TMP/$1.port _
  shift
  rm -rf "$TMP/$name-data" "$pf"
  mkdir -p "$TMP/$name-data"
  "$QUIVER_BIN" serve --repo "$TMP/repo" --data "$TMP/$name-data" --host "$HOST" --port 0 \
    --port-file "$pf" "$@" >"$TMP/$name.log" 2>&1 &
  NODE_PID=$!
  PIDS+=("$NODE_PID")
  for _ in $(seq 600); do
    if [ -s "$pf" ] && curl -fsS "http://$HOST:$(head -n 1 "$pf")/v2/health/ready" >/dev/null 2>&1; then break; fi
    kill -0 "$NODE_PID" 2>/dev/null || { tail -n 20 "$TMP/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  NODE_PORT=$(head -n 1 "$pf")
}

# CPU ticks of each HTTP thread of process $1, "tid ticks" per line.
http_ticks() {
  local t
  for t in /proc/"$1"/task/*; do
    [ "$(cat "$t/comm" 2>/dev/null)" = MHD-worker ] || continue
    echo "$(basename "$t") $(awk '{print $14 + $15}' "$t/stat")"
  done | sort
}

# measure LABEL URL [PID]: warm-up, then one measured wrk run; prints "rps p99_us" on stdout
# and the BENCH line (with the HTTP threads' split when PID is given) on stderr.
measure() {
  local label=$1 url=$2 pid=${3:-} split="" line
  wrk -t "$THREADS" -c "$CONNS" -d 2s -s "$ROOT/bench/post.lua" "$url" -- "$BODY" >/dev/null
  [ -n "$pid" ] && http_ticks "$pid" >"$TMP/t0"
  wrk -t "$THREADS" -c "$CONNS" -d "${DURATION}s" -s "$ROOT/bench/post.lua" "$url" -- "$BODY" \
    >"$TMP/$label.wrk"
  if [ -n "$pid" ]; then
    http_ticks "$pid" >"$TMP/t1"
    split=" http_threads_cpu=$(join "$TMP/t0" "$TMP/t1" | awk '{printf "%s%d", (NR > 1 ? "/" : ""), $3 - $2}')"
  fi
  line=$(grep '^BENCH ' "$TMP/$label.wrk")
  echo "${line/#BENCH /BENCH $label }$split" | tee "$TMP/last.line" >&2
  echo "$line" | tr ' ' '\n' | awk -F= '$1 == "rps" {r = $2} $1 == "p99_us" {p = $2} END {print r, p}'
}

# ---- 1. SQLite against PostgreSQL on one node, alternately ----
# run_store STORE ROUND: one measured run; appends "rps balanced(0|1)" to $TMP/STORE.runs.
run_store() {
  local store=$1 round=$2 rps _ split balanced
  if [ "$store" = sqlite ]; then
    start_node sqlite
  else
    start_node postgres --store "$PG_URL" --node-name bench1
  fi
  read -r rps _ < <(measure "store=$store round=$round" "http://$HOST:$NODE_PORT$INFER_PATH" \
    "$NODE_PID")
  split=$(grep -o 'http_threads_cpu=[0-9/]*' "$TMP/last.line" | cut -d= -f2)
  # Balanced: no HTTP thread did less than half the work of the busiest.
  balanced=$(echo "$split" | awk -F/ '{
    mn = $1; mx = $1
    for (i = 2; i <= NF; i++) { if ($i < mn) mn = $i; if ($i > mx) mx = $i }
    print (mx > 0 && mn * 2 >= mx) ? 1 : 0
  }')
  echo "$rps $balanced" >>"$TMP/$store.runs"
  stop_all
}
# ABBA order (sqlite, postgres, postgres, sqlite, ...): a drift in the machine's load over the
# run hits both sides alike.
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then run_store sqlite "$r"; run_store postgres "$r"
  else run_store postgres "$r"; run_store sqlite "$r"; fi
done
awk '
  FNR == 1 { f++ }
  {
    v[f, FNR] = $1; bal[f, FNR] = $2; n[f] = FNR
    list[f] = list[f] (FNR > 1 ? "," : "") $1 ($2 ? "" : "(unbalanced)")
  }
  END {
    for (k = 1; k <= 2; k++) {
      best[k] = 0; bestb[k] = 0; mean[k] = 0
      for (i = 1; i <= n[k]; i++) {
        mean[k] += v[k, i] / n[k]
        if (v[k, i] > best[k]) best[k] = v[k, i]
        if (bal[k, i] && v[k, i] > bestb[k]) bestb[k] = v[k, i]
      }
    }
    rb = best[1] > 0 ? best[2] / best[1] : 0
    rm = mean[1] > 0 ? mean[2] / mean[1] : 0
    rbal = (bestb[1] > 0 && bestb[2] > 0) ? sprintf("%.3f", bestb[2] / bestb[1]) : "n/a"
    fmt = "BENCH_CLUSTER sqlite_rps=%s postgres_rps=%s best_ratio=%.3f mean_ratio=%.3f"
    fmt = fmt " balanced_best_ratio=%s goal=0.95 ok=%s\n"
    printf fmt, list[1], list[2], rb, rm, rbal, (rb >= 0.95 ? "yes" : "no")
  }' "$TMP/sqlite.runs" "$TMP/postgres.runs"

# ---- 2. nginx in front of one node, then of three ----
# nginx_start PORT UPSTREAM_PORT...: the same configuration as deploy/local-cluster.sh.
nginx_start() {
  local port=$1 up="" p _
  shift
  for p in "$@"; do up+="    server 127.0.0.1:$p;"$'\n'; done
  rm -rf "$TMP/nginx"
  mkdir -p "$TMP/nginx/logs"
  cat >"$TMP/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  upstream quiver {
$up    keepalive 32;
  }
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://quiver;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout;
    }
  }
}
CONF
  "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" &
  NGX_PID=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/v2/health/ready" >/dev/null 2>&1 && return 0
    kill -0 "$NGX_PID" 2>/dev/null || { cat "$TMP/nginx/logs/error.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "cluster.sh: nginx did not become ready" >&2
  exit 1
}

NGX_PORT=$(free_port)
start_node one --store "$PG_URL" --node-name one
nginx_start "$NGX_PORT" "$NODE_PORT"
read -r ONE_RPS ONE_P99 < <(measure "nginx_nodes=1" "http://127.0.0.1:$NGX_PORT$INFER_PATH")
stop_all

NODE_URLS=()
UP=()
for i in 1 2 3; do
  start_node "n$i" --store "$PG_URL" --node-name "n$i"
  NODE_URLS+=("http://$HOST:$NODE_PORT")
  UP+=("$NODE_PORT")
done
nginx_start "$NGX_PORT" "${UP[@]}"
read -r THREE_RPS THREE_P99 < <(measure "nginx_nodes=3" "http://127.0.0.1:$NGX_PORT$INFER_PATH")
echo "BENCH_CLUSTER_NGINX one_node_rps=$ONE_RPS one_node_p99_us=$ONE_P99" \
     "three_nodes_rps=$THREE_RPS three_nodes_p99_us=$THREE_P99" \
     "ratio=$(awk -v a="$THREE_RPS" -v b="$ONE_RPS" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}')" \
     "goal=report (2 cores: no scaling to show)"

# ---- 3. Route change propagation over the three nodes ----
python3 "$ROOT/bench/cluster_propagation.py" fraud 1 2 "${NODE_URLS[@]}" --changes 100 |
  awk '/^BENCH_PROPAGATION / {p = $0; for (i = 1; i <= NF; i++) if ($i ~ /^p99_ms=/) {split($i, a, "="); v = a[2]}}
       {print}
       END {if (p != "") printf "BENCH_CLUSTER_PROPAGATION p99_ms=%s goal_ms=1000 ok=%s\n", v, (v + 0 <= 1000 ? "yes" : "no")}'
stop_all
