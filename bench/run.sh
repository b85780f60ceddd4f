#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The benchmark (not a test): quiver against its peers on this machine, in one run.
#
#   quiver     ./build/quiver serve on examples/models        127.0.0.1:8000  (if it is built)
#   nginx      nginx-light returning a fixed JSON body         127.0.0.1:8081  (the HTTP ceiling)
#   flask      Flask + gunicorn, 2 sync workers, xgboost       127.0.0.1:8082  (the Python peer)
#   raw        libxgboost's C API, no server at all            bench/xgb_raw.c (the latency floor)
#   ort        Node.js http + onnxruntime-node, 2-worker cluster 127.0.0.1:8083  (the ONNX peer)
#
# Every server gets the same KServe v2 request (examples/requests/fraud_1row.json, model fraud
# version 1) from wrk at 1 and at 32 connections, and so does a quiver with batching off. Then
# the engine, routing, hot-path and ONNX rows (bench/rows_engine.sh, bench/rows_onnx.sh,
# bench/rows_hotpath.sh, bench/rows_forest.sh, bench/rows_binary.sh, bench/idle_clients.sh),
# each beside its baseline: version swaps under load, dynamic batching on/off, overload against
# a queue limit, health on the admin port under a flood, system calls per request, shadow
# traffic, GET /metrics with 100 versions, the router and monitor micro-benchmarks, the
# compiled forest, ONNX in-process and served against onnxruntime, the binary tensor
# extension, idle clients; and the scripts of their own, bench/grpc.sh (gRPC beside REST) and
# bench/cluster.sh (PostgreSQL store, three nodes, route propagation; needs PostgreSQL 15),
# through bench/rows_suites.sh. Prints the main table and a table of figures with their goals,
# and writes both to bench/out/latest.md. See docs/bench.md for how to read them.
#
# Run from anywhere: `make bench` (installs the packages, builds, then runs this), or
# `bash bench/run.sh` when everything is in place. Knobs, all optional:
#   BENCH_DURATION=10    seconds per measured row          BENCH_WARMUP=2  seconds of warm-up
#   BENCH_CONNS="1 32"   connection counts                 BENCH_QUICK=1   2 s rows, 1 s warm-up
#   BENCH_RAW_CALLS=20000 timed libxgboost calls           BENCH_KEEP=1    keep the temp dir
#   BENCH_SWAP_SECS=30    each swap row (quick: 8)           BENCH_ONLY="rows_swap ..." some rows
#   BENCH_GRPC=0 / BENCH_CLUSTER=0  leave out gRPC / the cluster rows (docs/bench.md: the rest)
#   QUIVER_BIN=build/quiver  QUIVER_PORT=8000  NGINX_PORT=8081  FLASK_PORT=8082  ORT_PORT=8083
#
# Only 127.0.0.1 is used. Every process started here is stopped on exit (trap), by its id.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
SWAP_SECS=${BENCH_SWAP_SECS:-30}
METRICS_CALLS=50
MICRO_PICKS=2000000
MICRO_CALLS=5000000
INPROC_MLP_RUNS=5000
INPROC_RESNET_RUNS=20
INPROC_RESNET_ROUNDS=5
IDRING_SECS=5
if [ "${BENCH_QUICK:-0}" = 1 ]; then
  DURATION=2; WARMUP=1; SWAP_SECS=${BENCH_SWAP_SECS:-8}
  MICRO_PICKS=500000; MICRO_CALLS=1000000; INPROC_MLP_RUNS=1000; INPROC_RESNET_RUNS=8; INPROC_RESNET_ROUNDS=2
  IDRING_SECS=2
fi
read -r -a CONNS <<<"${BENCH_CONNS:-1 32}"
RAW_CALLS=${BENCH_RAW_CALLS:-20000}
WRK_THREADS=2
QUIVER_BIN=${QUIVER_BIN:-build/quiver}
QUIVER_PORT=${QUIVER_PORT:-8000}
NGINX_PORT=${NGINX_PORT:-8081}
FLASK_PORT=${FLASK_PORT:-8082}
ORT_PORT=${ORT_PORT:-8083}
HOST=127.0.0.1
PY=/usr/bin/python3

MODEL=examples/models/fraud/1/model.json
BODY=examples/requests/fraud_1row.json
REFERENCE=examples/models/fraud/reference.json
INFER_PATH=/v2/models/fraud/versions/1/infer
OUT_DIR=bench/out

TMP=$(mktemp -d "${TMPDIR:-/tmp}/quiver-bench.XXXXXX")

# ---------------------------------------------------------------------------------------------
# Process bookkeeping: every server started is recorded with the signal that stops it quickly.

PIDS=()        # "pid:signal:name"
declare -A UP  # server name -> 1 when it answered its readiness check

cleanup() {
  local entry pid sig name _
  trap - EXIT INT TERM
  for entry in "${PIDS[@]}"; do
    IFS=: read -r pid sig name <<<"$entry"
    kill -0 "$pid" 2>/dev/null && kill -s "$sig" "$pid" 2>/dev/null || true
  done
  for entry in "${PIDS[@]}"; do
    IFS=: read -r pid sig name <<<"$entry"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "bench: $name (pid $pid) did not stop on SIG$sig; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then
    echo "bench: logs kept in $TMP" >&2
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf 'bench: %s\n' "$*" >&2; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# port_free PORT: true when nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# launch NAME SIGNAL CMD...: starts CMD in the background, logging to $TMP/NAME.log.
# Sets LAUNCHED_PID.
launch() {
  local name=$1 sig=$2
  shift 2
  "$@" >"$TMP/$name.log" 2>&1 &
  LAUNCHED_PID=$!
  PIDS+=("$LAUNCHED_PID:$sig:$name")
}

# wait_ready NAME PID URL TIMEOUT_S: polls URL (GET) every 10 ms until it answers 200. Fails if
# the process dies or the timeout passes.
wait_ready() {
  local name=$1 pid=$2 url=$3 timeout=$4 t0 code
  t0=$(now_ms)
  while :; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" 2>/dev/null) || true
    [ "$code" = 200 ] && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited before it was ready; last lines of its log:"
      tail -n 15 "$TMP/$name.log" >&2 || true
      return 1
    fi
    if [ $(( $(now_ms) - t0 )) -gt $(( timeout * 1000 )) ]; then
      log "$name not ready after ${timeout}s (last status $code); last lines of its log:"
      tail -n 15 "$TMP/$name.log" >&2 || true
      return 1
    fi
    sleep 0.01
  done
}

# check_infer NAME URL: one POST of $BODY; true when it answers 200 with an "outputs" member.
check_infer() {
  local name=$1 url=$2 resp code
  resp=$(curl -s --max-time 5 -w '\n%{http_code}' -H 'Content-Type: application/json' \
         --data-binary "@$BODY" "$url" 2>/dev/null) || true
  code=${resp##*$'\n'}
  resp=${resp%$'\n'*}
  if [ "$code" != 200 ] || [[ "$resp" != *'"outputs"'* ]]; then
    log "$name: POST $url answered $code: ${resp:0:300}"
    return 1
  fi
  log "$name answers: ${resp:0:160}"
  # The first output must match xgboost's own prediction (reference.json, version 1, row 0).
  if ! "$PY" -c '
import json, sys
got = json.loads(sys.argv[1])["outputs"][0]["data"][0]
want = json.load(open(sys.argv[2]))["outputs"]["1"][0]
sys.exit(0 if abs(got - want) <= 1e-6 else "got %r, want %r" % (got, want))
' "$resp" "$REFERENCE"; then
    log "$name: wrong answer (compared with $REFERENCE)"
    return 1
  fi
}

# ---------------------------------------------------------------------------------------------
# Servers. Each start_* function is called twice: with "launch" it starts its server (and
# returns 1 only when it cannot even try, e.g. a busy port); with "ready", once every server was
# launched, it waits for it, checks one inference, and sets UP[name]=1 on success. So the slow
# starters (gunicorn importing xgboost, node loading onnxruntime) start side by side. quiver
# starts and becomes ready alone in its launch phase, so that its start-to-ready time is its own.
# A server that cannot start is reported and its rows are skipped.

QUIVER_RSS_KB=""
QUIVER_READY_MS=""

start_quiver() {
  [ "${1:-}" = ready ] && return 0   # starts and waits in the launch phase, alone
  if [ ! -x "$QUIVER_BIN" ]; then
    log "quiver: $QUIVER_BIN not built; its rows are skipped (make build)"
    NOTES+=("quiver: $QUIVER_BIN not found, not measured")
    return 0
  fi
  port_free "$QUIVER_PORT" || { log "quiver: port $QUIVER_PORT is busy"; return 1; }
  mkdir -p "$TMP/quiver-data"
  local t0
  t0=$(now_ms)
  launch quiver TERM "$QUIVER_BIN" serve --repo examples/models --data "$TMP/quiver-data" \
    --host "$HOST" --port "$QUIVER_PORT"
  local pid=$LAUNCHED_PID
  if ! wait_ready quiver "$pid" "http://$HOST:$QUIVER_PORT/v2/health/ready" 60; then
    NOTES+=("quiver: did not become ready, not measured")
    return 0
  fi
  QUIVER_READY_MS=$(( $(now_ms) - t0 ))
  sleep 1
  QUIVER_RSS_KB=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  if check_infer quiver "http://$HOST:$QUIVER_PORT$INFER_PATH"; then
    UP[quiver]=1
  else
    NOTES+=("quiver: the check request failed, not measured")
  fi
}

start_nginx() {
  local dir="$TMP/nginx" reply
  if [ "${1:-}" = ready ]; then
    [ -n "${NGINX_PID:-}" ] || return 0
    wait_ready nginx "$NGINX_PID" "http://$HOST:$NGINX_PORT/v2/health/ready" 15 || return 0
    check_infer nginx "http://$HOST:$NGINX_PORT$INFER_PATH" && UP[nginx]=1
    return 0
  fi
  port_free "$NGINX_PORT" || { log "nginx: port $NGINX_PORT is busy"; return 1; }
  mkdir -p "$dir/logs"
  # The same shape and about the same size as quiver's answer to the request.
  reply='{"model_name":"fraud","model_version":"1","id":"fraud-1row","outputs":[{"name":"probability","datatype":"FP32","shape":[1],"data":[0.013699184]}]}'
  cat >"$dir/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    server {
        listen $HOST:$NGINX_PORT;
        location / {
            default_type application/json;
            return 200 '$reply';
        }
    }
}
EOF
  launch nginx TERM /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log"
  NGINX_PID=$LAUNCHED_PID
}

start_flask() {
  if [ "${1:-}" = ready ]; then
    [ -n "${FLASK_PID:-}" ] || return 0
    wait_ready flask "$FLASK_PID" "http://$HOST:$FLASK_PORT/v2/health/ready" 60 || return 0
    check_infer flask "http://$HOST:$FLASK_PORT$INFER_PATH" && UP[flask]=1
    return 0
  fi
  port_free "$FLASK_PORT" || { log "flask: port $FLASK_PORT is busy"; return 1; }
  # INT is gunicorn's quick shutdown (TERM waits for workers gracefully).
  launch flask INT env BENCH_MODEL="$ROOT/$MODEL" BENCH_MODEL_NAME=fraud BENCH_MODEL_VERSION=1 \
    OMP_NUM_THREADS=1 "$PY" /usr/bin/gunicorn --workers 2 --worker-class sync \
    --bind "$HOST:$FLASK_PORT" --chdir "$ROOT/bench/peers" --log-level warning flask_app:app
  FLASK_PID=$LAUNCHED_PID
}

# ---------------------------------------------------------------------------------------------
# Measurement. `measure` runs wrk once and appends one row to the table.

ROWS=()          # "server|conns|rps|p50_us|p99_us|non2xx|errors|note"
declare -A RPS P50 P99 N2 ER   # keyed "label:conns"
NOTES=()
GOALS=()         # "figure|measured|baseline|goal|met"

# goal FIGURE MEASURED BASELINE GOAL MET: one row of the table of figures with their goals.
goal() { GOALS+=("$1|$2|$3|$4|$5"); }

# run_wrk CONNS SECONDS URL BODY LOGFILE: one wrk run with bench/post.lua; prints its BENCH line.
run_wrk() {
  local conns=$1 secs=$2 url=$3 body=$4 logf=$5 threads=$WRK_THREADS
  [ "$conns" -lt "$threads" ] && threads=$conns
  [[ "$body" = /* ]] || body="$ROOT/$body"
  wrk -t "$threads" -c "$conns" -d "${secs}s" --timeout 5s --latency \
      -s bench/post.lua "$url" -- "$body" >"$logf" 2>&1 || true
  grep '^BENCH ' "$logf" | tail -n 1
}

# field LINE KEY: the value of KEY=value in a BENCH line.
field() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2}'; }

# warm SERVER URL [BODY]: an unrecorded run at the highest connection count.
warm() {
  local server=$1 url=$2 body=${3:-$LOAD_BODY} max=1 c
  [ "$WARMUP" -gt 0 ] || return 0
  for c in "${CONNS[@]}"; do [ "$c" -gt "$max" ] && max=$c; done
  run_wrk "$max" "$WARMUP" "$url" "$body" "$TMP/warm-$server.log" >/dev/null
}

# measure SERVER CONNS URL [BODY [LABEL]]: one recorded row of ${ROW_SECS:-$DURATION} seconds.
# LABEL defaults to SERVER.
measure() {
  local server=$1 conns=$2 url=$3 body=${4:-$LOAD_BODY} label=${5:-$1} line rps p50 p99 n2 er
  local secs=${ROW_SECS:-$DURATION} wlog
  wlog="$OUT_DIR/wrk-$(tr -c 'A-Za-z0-9_.\n-' '_' <<<"$label" | tr -s _)-c$conns.txt"
  log "measuring $label at $conns connection(s) for ${secs}s"
  line=$(run_wrk "$conns" "$secs" "$url" "$body" "$wlog")
  if [ -z "$line" ]; then
    log "$label: wrk printed no result; see $wlog"
    ROWS+=("$label|$conns|||||| wrk failed")
    return 0
  fi
  rps=$(field "$line" rps); p50=$(field "$line" p50_us); p99=$(field "$line" p99_us)
  n2=$(field "$line" non2xx); er=$(field "$line" errors)
  RPS[$label:$conns]=$rps
  P50[$label:$conns]=$p50
  P99[$label:$conns]=$p99
  N2[$label:$conns]=$n2
  ER[$label:$conns]=$er
  ROWS+=("$label|$conns|$rps|$p50|$p99|$n2|$er|")
}

RAW_P50=""
RAW_P99=""

measure_raw() {
  local bin="$TMP/xgb_raw" line
  if ! cc -std=c11 -O2 -Wall -Wextra bench/xgb_raw.c -o "$bin" -lxgboost -ljansson \
       2>"$TMP/xgb_raw.build.log"; then
    log "raw: cannot compile bench/xgb_raw.c:"; cat "$TMP/xgb_raw.build.log" >&2
    NOTES+=("raw libxgboost: did not compile, not measured")
    return 0
  fi
  log "timing libxgboost directly ($RAW_CALLS calls)"
  if ! line=$("$bin" "$MODEL" "$BODY" "$RAW_CALLS"); then
    NOTES+=("raw libxgboost: failed, not measured")
    return 0
  fi
  RAW_P50=$(field "$line" p50_us)
  RAW_P99=$(field "$line" p99_us)
}

# ---------------------------------------------------------------------------------------------
# Row hooks. Each function measures one family of rows with `measure`, using the servers that
# are UP. To add rows (ONNX MLP against a Node.js onnxruntime peer, a version swap under load,
# batching on/off): write a start_* function for any new server, append it to SERVER_HOOKS,
# write a rows_* function, append it to ROW_HOOKS, and add its ratios in `ratios` if any.

rows_xgboost() {
  local server port c
  for server in quiver nginx flask; do
    [ "${UP[$server]:-0}" = 1 ] || continue
    case $server in
      quiver) port=$QUIVER_PORT ;; nginx) port=$NGINX_PORT ;; flask) port=$FLASK_PORT ;;
    esac
    warm "$server" "http://$HOST:$port$INFER_PATH"
    for c in "${CONNS[@]}"; do
      measure "$server" "$c" "http://$HOST:$port$INFER_PATH"
    done
  done
}

# The hot path's goals against nginx: fraud v1 with batching off (max_batch_size 0, so the
# inline path when the version is fast) at each connection count, on a quiver of its own, right
# after nginx's rows; and the main quiver, whose example config batches up to 64.
rows_fraud_nobatch() {
  [ -x "$QUIVER_BIN" ] || return 0
  local repo="$TMP/nobatch-repo" url c label="quiver fraud v1, batching off" r d ex="quiver"
  mkdir -p "$repo/fraud"
  cp examples/models/fraud/config.json "$repo/fraud/"
  cp -r examples/models/fraud/1 "$repo/fraud/1"
  edit_config "$repo/fraud/config.json" max_batch_size=0
  if start_q nobatch "$repo"; then
    url="http://$HOST:${Q_PORT[nobatch]}$INFER_PATH"
    if check_infer nobatch "$url"; then
      warm nobatch "$url"
      for c in "${CONNS[@]}"; do measure nobatch "$c" "$url" "$LOAD_BODY" "$label"; done
    else
      NOTES+=("fraud v1 batching off: the check request failed, not measured")
    fi
    stop_q nobatch
  else
    NOTES+=("fraud v1 batching off: quiver did not start, not measured")
  fi
  r=$(ratio "${RPS[$label:32]:-}" "${RPS[nginx:32]:-}")
  goal "fraud v1 req/s at 32 conns, batching off / nginx" "$(rps_or_na "${RPS[$label:32]:-}")" \
    "$(rps_or_na "${RPS[nginx:32]:-}") nginx" ">= 0.6x" "$r x $(yes_no le 0.6 "$r")"
  r=$(ratio "${RPS[$ex:32]:-}" "${RPS[nginx:32]:-}")
  goal "fraud v1 req/s at 32 conns, example config (max_batch_size 64) / nginx" \
    "$(rps_or_na "${RPS[$ex:32]:-}")" "$(rps_or_na "${RPS[nginx:32]:-}") nginx" ">= 0.7x" \
    "$r x $(yes_no le 0.7 "$r")"
  d=n/a
  if [ -n "${P50[$label:1]:-}" ] && [ -n "${P50[nginx:1]:-}" ]; then
    d=$(( ${P50[$label:1]} - ${P50[nginx:1]} ))
  fi
  goal "fraud v1 p50 at 1 conn, batching off, minus nginx's p50" \
    "$(ms "${P50[$label:1]:-}") ms ($d us over nginx)" \
    "$(ms "${P50[nginx:1]:-}") ms nginx; example config $(ms "${P50[$ex:1]:-}") ms" "<= nginx + 25 us" \
    "$( [ "$d" != n/a ] && [ "$d" -le 25 ] && echo yes || echo no)"
}

# shellcheck source=bench/rows_engine.sh
. bench/rows_engine.sh
# shellcheck source=bench/rows_onnx.sh
. bench/rows_onnx.sh
# shellcheck source=bench/rows_hotpath.sh
. bench/rows_hotpath.sh

SERVER_HOOKS=(start_quiver start_nginx start_flask start_ort)
ROW_HOOKS=(measure_raw rows_xgboost rows_fraud_nobatch rows_onnx_serving rows_shadow rows_metrics_cost rows_swap
           rows_batching rows_overload rows_health_flood rows_syscalls rows_idring rows_metrics
           rows_micro rows_onnx_inproc)

# ---- slow clients (bench/idle_clients.sh): a new client beside 2,000 idle connections ----
# shellcheck source=bench/idle_clients.sh
. bench/idle_clients.sh
ROW_HOOKS+=(rows_idle_clients)

# ---- compiled forest (bench/rows_forest.sh): in process, no server ----
# shellcheck source=bench/rows_forest.sh
. bench/rows_forest.sh
ROW_HOOKS+=(rows_forest)
# ---- end compiled forest ----

# ---- binary tensor data extension (bench/rows_binary.sh): ResNet-18, decode, fraud ----
# shellcheck source=bench/rows_binary.sh
. bench/rows_binary.sh
ROW_HOOKS+=(rows_binary)
# ---- end binary tensor data extension ----

# ---- scripts of their own (bench/grpc.sh, bench/cluster.sh), their figures in the table ----
# shellcheck source=bench/rows_suites.sh
. bench/rows_suites.sh
ROW_HOOKS+=(rows_grpc rows_cluster)

if [ -n "${BENCH_ONLY:-}" ]; then read -r -a ROW_HOOKS <<<"$BENCH_ONLY"; fi

# ---------------------------------------------------------------------------------------------
# Report.

rps_or_na() { [ -n "$1" ] && printf '%.0f' "$1" || echo n/a; }
ms() { [ -n "$1" ] && awk -v u="$1" 'BEGIN {printf "%.3f", u / 1000}' || echo "n/a"; }
ratio() {  # ratio A B: A/B with two decimals, or n/a
  [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}' \
    || echo "n/a"
}

ratios() {
  local top=1 c d
  for c in "${CONNS[@]}"; do [ "$c" -gt "$top" ] && top=$c; done
  echo "| ratio | value |"
  echo "|---|---|"
  echo "| quiver / nginx req/s at $top conns | $(ratio "${RPS[quiver:$top]:-}" "${RPS[nginx:$top]:-}") |"
  echo "| quiver / flask req/s at $top conns | $(ratio "${RPS[quiver:$top]:-}" "${RPS[flask:$top]:-}") |"
  d=n/a
  if [ -n "${P50[quiver:1]:-}" ] && [ -n "$RAW_P50" ]; then
    d=$(awk -v q="${P50[quiver:1]}" -v r="$RAW_P50" 'BEGIN {printf "%.3f", (q - r) / 1000}')
  fi
  echo "| quiver p50 at 1 conn minus raw libxgboost p50 (ms) | $d |"
}

report() {
  local r server conns rps p50 p99 n2 er note rss="n/a" n a b c d e
  [ -n "$QUIVER_RSS_KB" ] && rss=$(awk -v k="$QUIVER_RSS_KB" 'BEGIN {printf "%.1f MiB", k / 1024}')
  echo "# quiver benchmark"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')," \
       "$(nproc) cores, wrk $WRK_THREADS threads, ${DURATION}s per row (${WARMUP}s warm-up)," \
       "body $BODY (sent without its id) -> $INFER_PATH, load average at start $LOAD_AT_START, at end $LOAD_AT_END"
  echo
  echo "| server | conns | req/s | p50 ms | p99 ms | non-2xx | socket errors |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for r in "${ROWS[@]}"; do
    IFS='|' read -r server conns rps p50 p99 n2 er note <<<"$r"
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$server" "$conns" \
      "$( [ -n "$rps" ] && printf '%.0f' "$rps" || echo "n/a${note:+ ($note)}")" \
      "$(ms "$p50")" "$(ms "$p99")" "${n2:-n/a}" "${er:-n/a}"
  done
  printf '| raw libxgboost (batch 1, %s calls) | - | - | %s | %s | - | - |\n' \
    "$RAW_CALLS" "$(ms "$RAW_P50")" "$(ms "$RAW_P99")"
  echo
  ratios
  echo
  echo "| quiver | value |"
  echo "|---|---|"
  echo "| start to ready (/v2/health/ready) | ${QUIVER_READY_MS:-n/a}${QUIVER_READY_MS:+ ms} |"
  echo "| idle RSS after ready (VmRSS) | $rss |"
  if [ ${#GOALS[@]} -gt 0 ]; then
    echo
    echo "| figure | measured | baseline | goal | met |"
    echo "|---|---|---|---|---|"
    for r in "${GOALS[@]}"; do
      IFS='|' read -r a b c d e <<<"$r"
      printf '| %s | %s | %s | %s | %s |\n' "$a" "$b" "$c" "$d" "$e"
    done
  fi
  if [ ${#NOTES[@]} -gt 0 ]; then
    echo
    for n in "${NOTES[@]}"; do echo "- $n"; done
  fi
}

# ---------------------------------------------------------------------------------------------

main() {
  local tool hook t0
  T_START=$(now_ms)
  for tool in wrk curl cc /usr/sbin/nginx /usr/bin/gunicorn; do
    command -v "$tool" >/dev/null 2>&1 || {
      log "missing $tool: run 'bash scripts/install-deps.sh bench' first"; exit 1; }
  done
  [ -f "$MODEL" ] && [ -f "$BODY" ] || {
    log "missing $MODEL or $BODY: run 'make models'"; exit 1; }
  mkdir -p "$OUT_DIR"
  # The load uses $BODY without its "id": quiver remembers every request id for the feedback
  # join, and one id repeated by every request is its own row (rows_idring).
  LOAD_BODY="$TMP/load_body.json"
  "$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); d.pop("id", None); print(json.dumps(d))' \
    "$BODY" >"$LOAD_BODY"
  # 512 connections in the overload row: wrk and the server need the descriptors.
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  LOAD_AT_START=$(cut -d' ' -f1 /proc/loadavg)
  case $LOAD_AT_START in 0.*) ;; *) log "load average is $LOAD_AT_START: the figures will be noisy";; esac
  for hook in "${SERVER_HOOKS[@]}"; do "$hook" launch || exit 1; done
  for hook in "${SERVER_HOOKS[@]}"; do "$hook" ready || exit 1; done
  log "servers up after $(( ($(now_ms) - T_START) / 1000 )) s"
  for hook in "${ROW_HOOKS[@]}"; do
    t0=$(now_ms)
    "$hook"
    log "$hook took $(( ($(now_ms) - t0) / 1000 )) s"
  done
  LOAD_AT_END=$(cut -d' ' -f1 /proc/loadavg)
  report | tee "$OUT_DIR/latest.md"
  log "run took $(( ($(now_ms) - T_START) / 1000 )) s"
  log "table written to $OUT_DIR/latest.md"
}

main "$@"
