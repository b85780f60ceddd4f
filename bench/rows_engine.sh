# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# Sourced by bench/run.sh: the engine and routing rows. Each rows_* function starts its own
# quiver on a temp COPY of (part of) examples/models, on a free port (--port 0 --port-file),
# measures, and stops it. Nothing here writes under examples/.
#
#   rows_swap       default route under load, with and without a version added/removed every 1 s
#   rows_batching   fraud v2 at 64 connections, dynamic batching off and on
#   rows_overload   512 connections against a queue_limit 64 version; /v2/health/live polled
#   rows_shadow     weighted route with and without a 100% shadow
#   rows_metrics_cost  fraud v1 with metrics recording on and off
#   rows_metrics    GET /metrics with 20 models x 5 versions loaded
#   rows_micro      bench/micro_router.c and bench/micro_metrics.c
#
# Each adds wrk rows to the main table (measure) and figures with their goal to GOALS (goal).

declare -A Q_PORT Q_PID

# start_q NAME REPO [ARGS...]: quiver serve on a free port with its own data dir; waits for
# /v2/health/ready. Sets Q_PORT[NAME] and Q_PID[NAME]. Returns 1 when it does not come up.
start_q() {
  local name=$1 repo=$2 pf t0 pid
  shift 2
  pf="$TMP/$name.port"
  rm -f "$pf"
  mkdir -p "$TMP/$name-data"
  launch "$name" TERM "$QUIVER_BIN" serve --enable-test-backend --repo "$repo" --data "$TMP/$name-data" \
    --host "$HOST" --port 0 --port-file "$pf" "$@"
  pid=$LAUNCHED_PID
  Q_PID[$name]=$pid
  t0=$(now_ms)
  while [ ! -s "$pf" ]; do
    if ! kill -0 "$pid" 2>/dev/null || [ $(( $(now_ms) - t0 )) -gt 30000 ]; then
      log "$name did not write its port file; last lines of its log:"
      tail -n 15 "$TMP/$name.log" >&2 || true
      return 1
    fi
    sleep 0.02
  done
  sleep 0.05
  Q_PORT[$name]=$(head -n 1 "$pf")  # a second line: the --admin-port, when given
  wait_ready "$name" "$pid" "http://$HOST:${Q_PORT[$name]}/v2/health/ready" 30
}

# stop_q NAME: SIGTERM, SIGKILL after 5 s, and reaps it.
stop_q() {
  local pid=${Q_PID[$1]:-} _
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$1 (pid $pid) did not stop on SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  unset "Q_PID[$1]"
}

# wait_version_ready NAME MODEL VERSION TIMEOUT_S: polls the version's ready endpoint.
wait_version_ready() {
  local url="http://$HOST:${Q_PORT[$1]}/v2/models/$2/versions/$3/ready" t0
  t0=$(now_ms)
  while [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" 2>/dev/null)" != 200 ]; do
    [ $(( $(now_ms) - t0 )) -gt $(( $4 * 1000 )) ] && return 1
    sleep 0.05
  done
}

# edit_config FILE KEY=JSON...: sets top-level keys of a config.json copy.
edit_config() {
  local file=$1
  shift
  "$PY" - "$file" "$@" <<'EOF'
import json, sys
path = sys.argv[1]
cfg = json.load(open(path))
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    cfg[k] = json.loads(v)
json.dump(cfg, open(path, "w"), indent=1)
EOF
}

# metric_sum PORT NAME [FILTER]: the sum of every sample of one metric on /metrics whose
# labels contain FILTER.
metric_sum() {
  curl -s --max-time 5 "http://$HOST:$1/metrics" |
    awk -v n="$2" -v f="${3:-}" '$1 ~ "^" n "([{]|$)" && index($1, f) {s += $NF} END {printf "%.0f", s}'
}

wrk_field() { grep '^BENCH ' "$1" | tail -n 1 | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a != "" && b != "" && a + 0 <= b + 0)}'; }
yes_no() { if "$@"; then echo yes; else echo no; fi; }

# ---------------------------------------------------------------------------------------------
# 1. Version swaps under load.

# swapper DIR SRC SECS: every second (on a fixed schedule) copies SRC to DIR/.staging-N,
# renames it to DIR/N (a new highest version, so the default route moves to it), and moves
# DIR/N-2 out and deletes it.
swapper() {
  local dir=$1 src=$2 secs=$3 n=1 t0 left
  t0=$(now_ms)
  while :; do
    left=$(( t0 + n * 1000 - $(now_ms) ))
    [ "$left" -gt 0 ] && sleep "$(awk -v l="$left" 'BEGIN {printf "%.3f", l / 1000}')"
    [ $(( $(now_ms) - t0 )) -lt $(( secs * 1000 )) ] || break
    n=$((n + 1))
    cp -r "$src" "$dir/.staging-$n"
    mv "$dir/.staging-$n" "$dir/$n"
    if [ -d "$dir/$((n - 2))" ]; then
      mv "$dir/$((n - 2))" "$TMP/swap-trash-$((n - 2))"
      rm -rf "$TMP/swap-trash-$((n - 2))"
    fi
    echo "$(date +%s.%N) added $n removed $((n - 2))"
  done
}

rows_swap() {
  [ -x "$QUIVER_BIN" ] || return 0
  local repo="$TMP/swap-repo" src="$TMP/swap-src" url pid a b last ready loads unloads
  mkdir -p "$repo/fraud"
  cp examples/models/fraud/config.json "$repo/fraud/"
  cp -r examples/models/fraud/1 "$repo/fraud/1"
  cp -r examples/models/fraud/1 "$src"
  start_q swapq "$repo" || { NOTES+=("swap: quiver did not start, not measured"); return 0; }
  url="http://$HOST:${Q_PORT[swapq]}/v2/models/fraud/infer"
  a="swap: fraud default route, no swaps"
  b="swap: fraud default route, +1/-1 version every 1 s"
  run_wrk 32 "$WARMUP" "$url" "$LOAD_BODY" "$TMP/warm-swap.log" >/dev/null
  ROW_SECS=$SWAP_SECS measure swapq 32 "$url" "$LOAD_BODY" "$a"
  swapper "$repo/fraud" "$src" "$SWAP_SECS" >"$TMP/swapper.log" 2>&1 &
  pid=$!
  PIDS+=("$pid:TERM:swapper")
  ROW_SECS=$SWAP_SECS measure swapq 32 "$url" "$LOAD_BODY" "$b"
  wait "$pid" 2>/dev/null || true
  cp "$TMP/swapper.log" "$OUT_DIR/swapper.log"
  last=$(awk 'END {print $3}' "$TMP/swapper.log")
  ready=no
  [ -n "$last" ] && wait_version_ready swapq fraud "$last" 5 && ready=yes
  loads=$(grep -c 'state=READY' "$TMP/swapq.log" || true)
  unloads=$(grep -c 'state=UNLOADED' "$TMP/swapq.log" || true)
  stop_q swapq
  NOTES+=("swap: $(grep -c added "$TMP/swapper.log" || true) versions added and as many removed\
 during the run (last: $last, READY afterwards: $ready); the server logged $loads READY and\
 $unloads UNLOADED transitions (bench/out/swapper.log)")
  goal "swap under load: non-2xx + socket errors (32 conns, ${SWAP_SECS}s)" \
    "$(( ${N2[$b:32]:-0} + ${ER[$b:32]:-0} ))" "$(( ${N2[$a:32]:-0} + ${ER[$a:32]:-0} )) without swaps" \
    "0" "$( [ -n "${N2[$b:32]:-}" ] && [ $(( ${N2[$b:32]} + ${ER[$b:32]} )) -eq 0 ] && echo yes || echo no)"
  local r
  r=$(ratio "${P99[$b:32]:-}" "${P99[$a:32]:-}")
  goal "swap under load: p99 with swaps / without" "$(ms "${P99[$b:32]:-}") ms" \
    "$(ms "${P99[$a:32]:-}") ms" "<= 2x" "$r x $(yes_no le "$r" 2)"
}

# ---------------------------------------------------------------------------------------------
# 2. Dynamic batching on and off.

rows_batching() {
  [ -x "$QUIVER_BIN" ] || return 0
  local spec name mbs delay inst repo url label off="" off2="" best="" bestlabel="" rps bs
  local specs=("off:0:0:1" "off2:0:0:2" "on200:64:200:1" "on1000:64:1000:1")
  [ "${BENCH_QUICK:-0}" = 1 ] && specs=("off:0:0:1" "on200:64:200:1" "on1000:64:1000:1")
  for spec in "${specs[@]}"; do
    IFS=: read -r name mbs delay inst <<<"$spec"
    repo="$TMP/batch-$name-repo"
    mkdir -p "$repo/fraud"
    cp examples/models/fraud/config.json "$repo/fraud/"
    cp -r examples/models/fraud/2 "$repo/fraud/2"
    edit_config "$repo/fraud/config.json" "max_batch_size=$mbs" "max_queue_delay_us=$delay" \
      "instances=$inst"
    if [ "$mbs" = 0 ]; then
      label="batching: fraud v2 (200 trees), off, $inst instance(s)"
    else
      label="batching: fraud v2 (200 trees), max $mbs, delay ${delay} us"
    fi
    start_q "batch-$name" "$repo" || { NOTES+=("batching $name: quiver did not start"); continue; }
    url="http://$HOST:${Q_PORT[batch-$name]}/v2/models/fraud/versions/2/infer"
    run_wrk 64 "$WARMUP" "$url" "$LOAD_BODY" "$TMP/warm-batch-$name.log" >/dev/null
    measure "batch-$name" 64 "$url" "$LOAD_BODY" "$label"
    bs=$(awk -v s="$(metric_sum "${Q_PORT[batch-$name]}" quiver_batch_size_sum)" \
             -v c="$(metric_sum "${Q_PORT[batch-$name]}" quiver_batch_size_count)" \
             'BEGIN {if (c > 0) printf "%.1f", s / c; else print "n/a"}')
    NOTES+=("batching $name: mean batch size $bs (quiver_batch_size_sum / _count, warm-up included)")
    stop_q "batch-$name"
    rps=${RPS[$label:64]:-}
    case $name in
      off) off=$rps ;;
      off2) off2=$rps ;;
      *) if [ -n "$rps" ] && { [ -z "$best" ] || le "$best" "$rps"; }; then
           best=$rps; bestlabel=$label
         fi ;;
    esac
  done
  local r r2
  r=$(ratio "$best" "$off")
  r2=$(ratio "$best" "$off2")
  goal "batching: req/s on / off (64 conns, best of 200 and 1000 us)" \
    "$( [ -n "$best" ] && printf '%.0f' "$best" || echo n/a) (${bestlabel#batching: fraud v2 (200 trees), })" \
    "$( [ -n "$off" ] && printf '%.0f' "$off" || echo n/a) off, 1 instance" ">= 1.5x" \
    "$r x $(yes_no le 1.5 "$r")"
  [ -z "$off2" ] ||
    goal "batching: req/s on / off with 2 instances" "$( [ -n "$best" ] && printf '%.0f' "$best" || echo n/a)" \
      "$(printf '%.0f' "$off2") off, 2 instances" "(for reference)" "$r2 x"
}

# ---------------------------------------------------------------------------------------------
# 3. Overload: 512 connections against queue_limit 64.

# health_poll URL SECS OUT: GET URL every 100 ms for SECS seconds, on a new connection each time;
# one "code total_s connect_s" line each.
health_poll() {
  local end
  end=$(( $(now_ms) + $2 * 1000 ))
  while [ "$(now_ms)" -lt "$end" ]; do
    curl -s -o /dev/null -w '%{http_code} %{time_total} %{time_connect}\n' --max-time 2 "$1" \
      >>"$3" 2>/dev/null || true
    sleep 0.1
  done
}

rows_overload() {
  [ -x "$QUIVER_BIN" ] || return 0
  local repo="$TMP/overload-repo" body="$TMP/test_1row.json" url logf pid st other hmax hp50 hn hbad
  local hcon
  local conns=512 label="overload: test backend 2 ms/call, queue_limit 64"
  mkdir -p "$repo/slow/1"
  echo '{"backend": "test", "max_batch_size": 0, "instances": 1, "queue_limit": 64}' \
    >"$repo/slow/config.json"
  echo '{"features": 30, "delay_us": 2000}' >"$repo/slow/1/model.test"
  sed 's/"features"/"input__0"/' "$LOAD_BODY" >"$body"
  # wrk's 512 connections all come from 127.0.0.1, standing for many clients: the per-address
  # limit (default 256) would close half of them, and the health polls, before the queue is
  # reached.
  start_q overq "$repo" --max-connections-per-ip 2048 ||
    { NOTES+=("overload: quiver did not start, not measured"); return 0; }
  url="http://$HOST:${Q_PORT[overq]}/v2/models/slow/infer"
  logf="$OUT_DIR/wrk-overload-c$conns.txt"
  rm -f "$TMP/health.txt"
  health_poll "http://$HOST:${Q_PORT[overq]}/v2/health/live" "$DURATION" "$TMP/health.txt" &
  pid=$!
  PIDS+=("$pid:TERM:health-poll")
  log "measuring $label at $conns connections for ${DURATION}s (status counts, /v2/health/live polled)"
  wrk -t "$WRK_THREADS" -c "$conns" -d "${DURATION}s" --timeout 5s --latency -s bench/status.lua \
    "$url" -- "$body" >"$logf" 2>&1 || true
  wait "$pid" 2>/dev/null || true
  cp "$TMP/health.txt" "$OUT_DIR/health-during-overload.txt"
  stop_q overq
  local line rps p50 p99 n2 er
  line=$(grep '^BENCH ' "$logf" | tail -n 1)
  st=$(grep '^STATUS ' "$logf" | tail -n 1)
  if [ -z "$line" ]; then
    ROWS+=("$label|$conns|||||| wrk failed")
    NOTES+=("overload: wrk printed no result; see $logf")
    return 0
  fi
  rps=$(field "$line" rps); p50=$(field "$line" p50_us); p99=$(field "$line" p99_us)
  n2=$(field "$line" non2xx); er=$(field "$line" errors)
  ROWS+=("$label|$conns|$rps|$p50|$p99|$n2|$er|")
  # Answers other than 200 and 429, and socket errors (connect/read/write/timeout).
  other=$(tr ' ' '\n' <<<"${st#STATUS }" | awk -F= '$1 ~ /^[0-9]+$/ && $1 != 200 && $1 != 429 {s += $2} END {print s + 0}')
  hn=$(wc -l <"$TMP/health.txt")
  hbad=$(awk '$1 != 200' "$TMP/health.txt" | wc -l)
  hmax=$(awk '$1 == 200 {if ($2 > m) m = $2} END {printf "%.2f", m * 1000}' "$TMP/health.txt")
  hcon=$(awk '$1 == 200 {if ($3 > m) m = $3} END {printf "%.2f", m * 1000}' "$TMP/health.txt")
  hp50=$(awk '$1 == 200 {print $2}' "$TMP/health.txt" | sort -n |
         awk '{v[NR] = $1} END {if (NR) printf "%.2f", v[int((NR + 1) / 2)] * 1000}')
  goal "overload: answers at $conns conns (${DURATION}s)" "${st#STATUS }" \
    "queue_limit 64, 1 instance" "only 200/429, 0 socket errors" \
    "$( [ "$other" = 0 ] && [ "$er" = 0 ] && echo yes || echo "no ($other other, $er socket errors)")"
  goal "overload: /v2/health/live max latency (curl every 100 ms)" "${hmax:-n/a} ms max" \
    "p50 ${hp50:-n/a} ms, connect max ${hcon:-n/a} ms, $hn polls, $hbad not 200" "< 10 ms" \
    "$( [ "$hbad" = 0 ] && [ -n "$hmax" ] && awk -v m="$hmax" 'BEGIN {exit !(m < 10)}' && echo yes || echo no)"
}

# ---------------------------------------------------------------------------------------------
# 4. Shadow traffic.

put_route() {  # PORT MODEL DOC
  local code
  code=$(curl -s -o "$TMP/route.out" -w '%{http_code}' --max-time 5 -X PUT \
         -H 'Content-Type: application/json' --data "$3" "http://$HOST:$1/v2/models/$2/route")
  [ "$code" = 200 ] || { log "PUT route answered $code: $(head -c 300 "$TMP/route.out")"; return 1; }
}

rows_shadow() {
  [ -x "$QUIVER_BIN" ] || return 0
  local repo="$TMP/shadow-repo" url port a b route shadow c0 c1 v0 v1 d0 d1
  mkdir -p "$repo"
  cp -r examples/models/fraud "$repo/fraud"
  rm -f "$repo/fraud/reference.json"
  start_q shadq "$repo" || { NOTES+=("shadow: quiver did not start, not measured"); return 0; }
  port=${Q_PORT[shadq]}
  wait_version_ready shadq fraud 2 30 || true
  url="http://$HOST:$port/v2/models/fraud/infer"
  route='{"policy":"weighted","weights":{"1":50,"2":50}}'
  shadow='{"policy":"weighted","weights":{"1":50,"2":50},"shadow":[{"target":"2","percent":100}]}'
  a="shadow: fraud weighted 1:50/2:50, no shadow"
  b="shadow: fraud weighted 1:50/2:50, 100% shadow to v2"
  if put_route "$port" fraud "$route"; then
    run_wrk 32 "$WARMUP" "$url" "$LOAD_BODY" "$TMP/warm-shadow-a.log" >/dev/null
    measure shadq 32 "$url" "$LOAD_BODY" "$a"
  fi
  if put_route "$port" fraud "$shadow"; then
    c0=$(metric_sum "$port" quiver_shadow_comparisons_total)
    d0=$(metric_sum "$port" quiver_shadow_dropped_total)
    v0=$(metric_sum "$port" quiver_requests_total 'version="1"')
    run_wrk 32 "$WARMUP" "$url" "$LOAD_BODY" "$TMP/warm-shadow-b.log" >/dev/null
    measure shadq 32 "$url" "$LOAD_BODY" "$b"
    c1=$(metric_sum "$port" quiver_shadow_comparisons_total)
    d1=$(metric_sum "$port" quiver_shadow_dropped_total)
    v1=$(metric_sum "$port" quiver_requests_total 'version="1"')
    NOTES+=("shadow: $(( c1 - c0 )) shadow copies compared (quiver_shadow_comparisons_total) for\
 $(( v1 - v0 )) primary requests on v1 during the shadow warm-up and row (v2's own primaries get no\
 copy: a shadow equal to the primary is skipped); $(( d1 - d0 )) copies dropped because the background lane was full (quiver_shadow_dropped_total)")
  fi
  stop_q shadq
  local r n
  n=${RPS[nginx:32]:-}
  r=$(ratio "${RPS[$b:32]:-}" "$n")
  goal "shadow: primary req/s with 100% shadow / nginx req/s (32 conns)" \
    "$( [ -n "${RPS[$b:32]:-}" ] && printf '%.0f' "${RPS[$b:32]}" || echo n/a)" \
    "$( [ -n "$n" ] && printf '%.0f' "$n" || echo n/a) nginx; $( [ -n "${RPS[$a:32]:-}" ] && printf '%.0f' "${RPS[$a:32]}" || echo n/a) without shadow" \
    ">= 0.45x" "$r x $(yes_no le 0.45 "$r")"
  r=$(ratio "${RPS[$b:32]:-}" "${RPS[$a:32]:-}")
  goal "shadow: primary req/s with 100% shadow / same route without (32 conns)" \
    "$( [ -n "${RPS[$b:32]:-}" ] && printf '%.0f' "${RPS[$b:32]}" || echo n/a)" \
    "$( [ -n "${RPS[$a:32]:-}" ] && printf '%.0f' "${RPS[$a:32]}" || echo n/a) without shadow" \
    ">= 0.55x" "$r x $(yes_no le 0.55 "$r")"
  r=$(ratio "${P99[$b:32]:-}" "${P99[$a:32]:-}")
  goal "shadow: p99 with shadow / without (32 conns)" "$(ms "${P99[$b:32]:-}") ms" \
    "$(ms "${P99[$a:32]:-}") ms" "<= 1.5x" "$r x $(yes_no le "$r" 1.5)"
}

# ---------------------------------------------------------------------------------------------
# 5b. What the metrics cost: fraud v1 at 32 connections, recording on and off (--no-metrics).

rows_metrics_cost() {
  [ -x "$QUIVER_BIN" ] || return 0
  local repo="$TMP/mcost-repo" url a b r which label best_on=0 best_off=0 rps
  mkdir -p "$repo"
  cp -r examples/models/fraud "$repo/fraud"
  rm -f "$repo/fraud/reference.json"
  # Runs alternate (on, off, off, on) and the best of each counts: one pair in a fixed order
  # measured the order (run-to-run drift on this machine is of the size of the effect).
  for which in on off off on; do
    label="metrics cost: fraud v1, metrics $which"
    [ "$which" = off ] && label="$label (--no-metrics)"
    if [ "$which" = on ]; then
      start_q mcost "$repo" || { NOTES+=("metrics cost: quiver did not start"); return 0; }
    else
      start_q mcost "$repo" --no-metrics || { NOTES+=("metrics cost: quiver did not start"); return 0; }
    fi
    url="http://$HOST:${Q_PORT[mcost]}/v2/models/fraud/versions/1/infer"
    run_wrk 32 "$WARMUP" "$url" "$LOAD_BODY" "$TMP/warm-mcost-$which.log" >/dev/null
    measure mcost 32 "$url" "$LOAD_BODY" "$label"
    rps=${RPS[$label:32]:-0}
    if [ "$which" = on ]; then
      awk -v a="$rps" -v b="$best_on" 'BEGIN {exit !(a > b)}' && best_on=$rps
    else
      awk -v a="$rps" -v b="$best_off" 'BEGIN {exit !(a > b)}' && best_off=$rps
    fi
    stop_q mcost
  done
  a="metrics cost: fraud v1, metrics on"
  b="metrics cost: fraud v1, metrics off (--no-metrics)"
  r=$(ratio "$best_on" "$best_off")
  goal "metrics: req/s with metrics on / off (fraud v1, 32 conns, best of 2 each)" \
    "$(printf '%.0f' "$best_on")" "$(printf '%.0f' "$best_off") off" \
    ">= 0.95x" "$r x $(yes_no le 0.95 "$r")"
}

# ---------------------------------------------------------------------------------------------
# 6. GET /metrics with 20 models x 5 versions.

rows_metrics() {
  [ -x "$QUIVER_BIN" ] || return 0
  local repo="$TMP/metrics-repo" body="$TMP/test_1row.json" m v port _ t lines bytes p50 max
  for m in $(seq -f 'm%02g' 0 19); do
    mkdir -p "$repo/$m"
    echo '{"backend": "test", "max_batch_size": 0}' >"$repo/$m/config.json"
    for v in 1 2 3 4 5; do
      mkdir -p "$repo/$m/$v"
      echo "{\"features\": 30, \"bias\": 0.$v}" >"$repo/$m/$v/model.test"
    done
  done
  [ -f "$body" ] || sed 's/"features"/"input__0"/' "$LOAD_BODY" >"$body"
  start_q metq "$repo" || { NOTES+=("metrics: quiver did not start, not measured"); return 0; }
  port=${Q_PORT[metq]}
  wait_version_ready metq m19 5 30 || NOTES+=("metrics: m19/5 not READY after 30 s")
  # One request per version, so that every version has latency histograms to print (one curl,
  # one connection, 100 URLs).
  local args=()
  for m in $(seq -f 'm%02g' 0 19); do
    for v in 1 2 3 4 5; do
      args+=(-o /dev/null "http://$HOST:$port/v2/models/$m/versions/$v/infer")
    done
  done
  curl -s --max-time 30 -H 'Content-Type: application/json' --data-binary "@$body" \
    -w '%{http_code}\n' "${args[@]}" >"$TMP/metrics-infer.txt" 2>/dev/null || true
  [ "$(grep -c '^200$' "$TMP/metrics-infer.txt")" = 100 ] ||
    NOTES+=("metrics: $(grep -c '^200$' "$TMP/metrics-infer.txt") of the 100 priming requests answered 200")
  # The timed calls: one curl, one kept-alive connection, one line per GET.
  args=()
  for _ in $(seq "$METRICS_CALLS"); do args+=(-o "$TMP/metrics.txt" "http://$HOST:$port/metrics"); done
  curl -s --max-time 60 -w '%{http_code} %{time_total} %{size_download}\n' "${args[@]}" \
    >"$TMP/metrics-times.txt" 2>/dev/null || true
  lines=$(wc -l <"$TMP/metrics.txt")
  bytes=$(wc -c <"$TMP/metrics.txt")
  stop_q metq
  t=$(awk '$1 == 200 {print $2 * 1000}' "$TMP/metrics-times.txt" | sort -n)
  p50=$(awk '{v[NR] = $1} END {if (NR) printf "%.2f", v[int((NR + 1) / 2)]}' <<<"$t")
  max=$(awk '{if ($1 > m) m = $1} END {if (NR) printf "%.2f", m}' <<<"$t")
  goal "GET /metrics, 20 models x 5 versions ($METRICS_CALLS calls)" "p50 ${p50:-n/a} ms, max ${max:-n/a} ms" \
    "$lines lines, $((bytes / 1024)) KiB, $(awk '$1 != 200' "$TMP/metrics-times.txt" | wc -l) not 200" \
    "< 10 ms" "$( [ -n "$max" ] && awk -v m="$max" 'BEGIN {exit !(m < 10)}' && echo yes || echo "no (max); p50 $(yes_no le "${p50:-99}" 9.999)")"
}

# ---------------------------------------------------------------------------------------------
# 5. Micro-benchmarks of the router and the monitor (their own build lines).

rows_micro() {
  local rbin="$TMP/micro_router" mbin="$TMP/micro_metrics" out pol cpu wall bdir lib
  # Linked with libquiver_core.a and the libraries of quiver's own link line (CMake's), so
  # that a module's new dependency needs no change here.
  bdir=$(dirname "$QUIVER_BIN")
  if [ ! -f "$bdir/libquiver_core.a" ] || [ ! -f "$bdir/CMakeFiles/quiver.dir/link.txt" ]; then
    NOTES+=("micro-benchmarks: no $bdir/libquiver_core.a, not measured")
    return 0
  fi
  lib=$(sed -e 's/.* -o quiver //' -e "s#\\(^\\| \\)libquiver_core\\.a#\\1$bdir/libquiver_core.a#" \
        "$bdir/CMakeFiles/quiver.dir/link.txt")
  # shellcheck disable=SC2086  # the link line's words
  if cc -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Isrc bench/micro_router.c \
       $lib -pthread -lm -o "$rbin" 2>"$TMP/micro_router.build.log"; then
    log "running micro_router ($MICRO_PICKS picks per run)"
    out=$("$rbin" "$MICRO_PICKS" 2>&1 | tee "$OUT_DIR/micro_router.txt") || true
    for pol in weighted sticky score pinned none; do
      cpu=$(awk -v p="$pol" '$1 == p && $2 == "threads=1" {for (i = 1; i <= NF; i++) if ($i == "cpu") print $(i + 1)}' <<<"$out")
      wall=$(awk -v p="$pol" '$1 == p && $2 == "threads=1" {for (i = 1; i <= NF; i++) if ($i == "wall") print $(i + 1)}' <<<"$out")
      [ -n "$cpu" ] || continue
      goal "router: one pick, $pol, 1 thread" "$cpu ns CPU" "$wall ns wall" "< 1000 ns" \
        "$(yes_no le "$cpu" 999.9)"
    done
    for pol in weighted sticky; do
      cpu=$(awk -v p="$pol" '$1 == p && $2 == "threads=2" {for (i = 1; i <= NF; i++) if ($i == "cpu") print $(i + 1)}' <<<"$out")
      wall=$(awk -v p="$pol" '$1 == p && $2 == "threads=2" {for (i = 1; i <= NF; i++) if ($i == "wall") print $(i + 1)}' <<<"$out")
      [ -n "$cpu" ] || continue
      goal "router: one pick, $pol, 2 threads on one model" "$cpu ns CPU" "$wall ns wall" "< 1000 ns" \
        "$(yes_no le "$cpu" 999.9)"
    done
  else
    NOTES+=("micro_router: did not compile ($(grep -m1 -i error "$TMP/micro_router.build.log" | head -c 200))")
  fi
  # shellcheck disable=SC2086
  if cc -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Isrc bench/micro_metrics.c \
       $lib -pthread -lm -o "$mbin" 2>"$TMP/micro_metrics.build.log"; then
    log "running micro_metrics ($MICRO_CALLS calls per thread)"
    out=$("$mbin" "$MICRO_CALLS" 2>&1 | tee "$OUT_DIR/micro_metrics.txt") || true
    for t in "1 thread" "2 threads"; do
      cpu=$(grep "qv_vstats_request, $t:" <<<"$out" | sed -E 's/.*: *([0-9.]+) ns\/call CPU.*/\1/')
      wall=$(grep "qv_vstats_request, $t:" <<<"$out" | sed -E 's/.*\( *([0-9.]+) wall\).*/\1/')
      [ -n "$cpu" ] || continue
      goal "monitor: record one request, $t" "$cpu ns CPU" "$wall ns wall" "< 100 ns" \
        "$(yes_no le "$cpu" 99.9)"
    done
  else
    NOTES+=("micro_metrics: did not compile ($(grep -m1 -i error "$TMP/micro_metrics.build.log" | head -c 200))")
  fi
}

# ---------------------------------------------------------------------------------------------
# 7. One request id repeated. quiver remembers the "id" of every answered request for the
# feedback join (a ring of 65,536 entries in the router). The other rows send no id; this one
# compares that with every request carrying the same id, once the ring has wrapped.

rows_idring() {
  [ -x "$QUIVER_BIN" ] || return 0
  local repo="$TMP/idring-repo" url a b n=0 k t0 line r
  mkdir -p "$repo/fraud"
  cp examples/models/fraud/config.json "$repo/fraud/"
  cp -r examples/models/fraud/1 "$repo/fraud/1"
  start_q idq "$repo" || { NOTES+=("request ids: quiver did not start, not measured"); return 0; }
  url="http://$HOST:${Q_PORT[idq]}/v2/models/fraud/infer"
  a="ids: fraud default route, requests without an id"
  b="ids: fraud default route, one id in every request, ring wrapped"
  run_wrk 32 "$WARMUP" "$url" "$LOAD_BODY" "$TMP/warm-idq.log" >/dev/null
  ROW_SECS=$IDRING_SECS measure idq 32 "$url" "$LOAD_BODY" "$a"
  # Same-id requests until more than 65,536 were answered (at most 30 s).
  t0=$(now_ms)
  while [ "$n" -le 66000 ] && [ $(( $(now_ms) - t0 )) -lt 30000 ]; do
    line=$(run_wrk 32 2 "$url" "$BODY" "$TMP/idfill.log")
    k=$(field "$line" requests)
    [ -n "$k" ] && [ "$k" -gt 0 ] || break
    n=$((n + k))
  done
  log "request ids: $n requests with id \"$(sed -E 's/.*"id": *"([^"]*)".*/\1/' "$BODY")\" before the row"
  ROW_SECS=$IDRING_SECS measure idq 32 "$url" "$BODY" "$b"
  stop_q idq
  NOTES+=("request ids: $n requests with the same id were answered before the one-id row")
  r=$(ratio "${RPS[$b:32]:-}" "${RPS[$a:32]:-}")
  goal "request ids: req/s with one repeated id / without ids (32 conns)" \
    "$( [ -n "${RPS[$b:32]:-}" ] && printf '%.0f' "${RPS[$b:32]}" || echo n/a), p99 $(ms "${P99[$b:32]:-}") ms" \
    "$( [ -n "${RPS[$a:32]:-}" ] && printf '%.0f' "${RPS[$a:32]}" || echo n/a), p99 $(ms "${P99[$a:32]:-}") ms" \
    "~1x (none set; >= 0.8x)" "$r x $(yes_no le 0.8 "$r")"
}
