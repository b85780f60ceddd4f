# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# Sourced by bench/run.sh after bench/rows_engine.sh (it uses start_q, stop_q, metric_sum):
# the hot-path rows.
#
#   rows_syscalls     system calls per request: `strace -c -f` attached to the server while
#                     bench/keepalive.c sends BENCH_SYSCALL_REQS (2000) POSTs one after another
#                     on one kept-alive connection; quiver (fraud v1, batching off, with the
#                     default inline threshold and with the inline path forced; and the `test`
#                     backend, which makes no system call, inline: the server's own share)
#                     beside nginx
#   rows_health_flood /v2/health/live p99 on the main port and on --admin-port, and GET /metrics
#                     p99 on --admin-port, while 512 connections overload a model
#
# Each adds figures with their goal to GOALS (goal).

SYSCALL_REQS=${BENCH_SYSCALL_REQS:-2000}
[ "${BENCH_QUICK:-0}" = 1 ] && SYSCALL_REQS=${BENCH_SYSCALL_REQS:-500}

# strace_count OUT PID...: attaches `strace -c -f` to every PID, runs keepalive against
# $KA_URL_PORT/$KA_PATH, detaches; prints "calls_per_request requests_ok".
strace_count() {
  local out=$1 args=() p spid total ok
  shift
  for p in "$@"; do args+=(-p "$p"); done
  strace -c -f -o "$out" "${args[@]}" 2>"$out.err" &
  spid=$!
  sleep 0.5  # attached to every thread before the first request
  ok=$("$TMP/keepalive" "$HOST" "$KA_PORT" "$KA_PATH" "$KA_BODY" "$SYSCALL_REQS" |
       awk '{for (i = 1; i <= NF; i++) if ($i ~ /^ok=/) print substr($i, 4)}')
  kill -INT "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  total=$(awk '$NF == "total" {print $4}' "$out")
  # strace -c prints "calls errors total" when no time column is wide enough; take the number
  # just before "total" when the errors column is empty.
  [ -n "$total" ] || total=$(awk '$NF == "total" {print $(NF-1)}' "$out")
  awk -v t="${total:-0}" -v n="$SYSCALL_REQS" -v ok="${ok:-0}" 'BEGIN {printf "%.2f %d\n", t / n, ok}'
}

rows_syscalls() {
  [ -x "$QUIVER_BIN" ] || return 0
  command -v strace >/dev/null 2>&1 || { NOTES+=("syscalls: strace not installed, not measured"); return 0; }
  if ! cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra bench/keepalive.c -o "$TMP/keepalive" \
       2>"$TMP/keepalive.build.log"; then
    log "syscalls: cannot compile bench/keepalive.c"; cat "$TMP/keepalive.build.log" >&2
    return 0
  fi
  local repo="$TMP/sys-repo" name thr res q_def="" q_inl="" q_tst="" ngx="" inl0 inl1 que0 que1 pids
  mkdir -p "$repo/fast/1"
  cp -r examples/models/fraud "$repo/fraud"
  rm -f "$repo/fraud/reference.json"
  edit_config "$repo/fraud/config.json" 'max_batch_size=0'
  echo '{"backend": "test", "max_batch_size": 0}' >"$repo/fast/config.json"
  echo '{"features": 30}' >"$repo/fast/1/model.test"
  sed 's/"features"/"input__0"/' "$LOAD_BODY" >"$TMP/sys_test_1row.json"
  for name in sysq sysqi sysqt; do
    thr=()
    KA_PATH=$INFER_PATH
    KA_BODY=$LOAD_BODY
    # strace slows the sampled CPU-clock reads around backend calls, which the inline
    # decision sees as compute time: the forced rows keep the path fixed while traced.
    [ "$name" != sysq ] && thr=(--inline-threshold-us 1000000)
    if [ "$name" = sysqt ]; then
      KA_PATH=/v2/models/fast/versions/1/infer
      KA_BODY=$TMP/sys_test_1row.json
    fi
    start_q "$name" "$repo" "${thr[@]}" || { NOTES+=("syscalls: quiver did not start"); continue; }
    KA_PORT=${Q_PORT[$name]}
    "$TMP/keepalive" "$HOST" "$KA_PORT" "$KA_PATH" "$KA_BODY" 500 >/dev/null || true
    inl0=$(metric_sum "$KA_PORT" quiver_executions_total 'path="inline"')
    que0=$(metric_sum "$KA_PORT" quiver_executions_total 'path="queued"')
    log "counting system calls of $name over $SYSCALL_REQS keep-alive requests"
    res=$(strace_count "$TMP/strace-$name.txt" "${Q_PID[$name]}")
    cp "$TMP/strace-$name.txt" "$OUT_DIR/strace-$name.txt" 2>/dev/null || true
    inl1=$(metric_sum "$KA_PORT" quiver_executions_total 'path="inline"')
    que1=$(metric_sum "$KA_PORT" quiver_executions_total 'path="queued"')
    res="$res $(( inl1 - inl0 )) $(( que1 - que0 ))"
    case $name in sysq) q_def=$res ;; sysqi) q_inl=$res ;; *) q_tst=$res ;; esac
    stop_q "$name"
  done
  if [ "${UP[nginx]:-0}" = 1 ] && [ -n "${NGINX_PID:-}" ]; then
    KA_PORT=$NGINX_PORT
    KA_PATH=$INFER_PATH
    KA_BODY=$LOAD_BODY
    "$TMP/keepalive" "$HOST" "$KA_PORT" "$KA_PATH" "$LOAD_BODY" 500 >/dev/null || true
    read -r -a pids <<<"$(pgrep -P "$NGINX_PID" | tr '\n' ' ')"
    log "counting system calls of nginx over $SYSCALL_REQS keep-alive requests"
    [ ${#pids[@]} -gt 0 ] && ngx=$(strace_count "$TMP/strace-nginx.txt" "${pids[@]}")
    cp "$TMP/strace-nginx.txt" "$OUT_DIR/strace-nginx.txt" 2>/dev/null || true
  fi
  local qd qi qt n
  qd=$(cut -d' ' -f1 <<<"$q_def"); qi=$(cut -d' ' -f1 <<<"$q_inl"); n=$(cut -d' ' -f1 <<<"$ngx")
  qt=$(cut -d' ' -f1 <<<"$q_tst")
  goal "syscalls per request, fraud v1 batching off ($SYSCALL_REQS keep-alive POSTs, strace -c -f)" \
    "${qd:-n/a} (inline $(cut -d' ' -f3 <<<"$q_def"), queued $(cut -d' ' -f4 <<<"$q_def"))" \
    "${n:-n/a} nginx" "<= nginx + 2" \
    "$( [ -n "$qd" ] && [ -n "$n" ] && awk -v q="$qd" -v n="$n" 'BEGIN {exit !(q <= n + 2)}' && echo yes || echo no)"
  goal "syscalls per request, same, inline path forced (--inline-threshold-us 1000000)" \
    "${qi:-n/a} (inline $(cut -d' ' -f3 <<<"$q_inl"), queued $(cut -d' ' -f4 <<<"$q_inl"))" \
    "${n:-n/a} nginx" "<= nginx + 2" \
    "$( [ -n "$qi" ] && [ -n "$n" ] && awk -v q="$qi" -v n="$n" 'BEGIN {exit !(q <= n + 2)}' && echo yes || echo no)"
  goal "syscalls per request, test backend (no system call of its own), inline path forced" \
    "${qt:-n/a} (inline $(cut -d' ' -f3 <<<"$q_tst"), queued $(cut -d' ' -f4 <<<"$q_tst"))" \
    "${n:-n/a} nginx" "<= nginx + 2" \
    "$( [ -n "$qt" ] && [ -n "$n" ] && awk -v q="$qt" -v n="$n" 'BEGIN {exit !(q <= n + 2)}' && echo yes || echo no)"
  NOTES+=("syscalls: per-call counts in bench/out/strace-*.txt; with libxgboost each call also opens\
 and reads the cgroup CPU quota files (openat/read/close x 2) and wakes OpenMP (futex)")
}

# health_poll_fast URL SECS OUT: GET URL 50 times a second for SECS seconds from one curl
# process (--rate; starting a process per poll is itself slow on a saturated machine), a new
# connection each time; one "code total_s" line each.
health_poll_fast() {
  local args=() i
  for (( i = 0; i < $2 * 50; i++ )); do args+=(-o /dev/null "$1"); done
  curl -s --rate 50/s --max-time 2 -H 'Connection: close' \
    -w '%{http_code} %{time_total}\n' "${args[@]}" >>"$3" 2>/dev/null || true
}

# p99_ms FILE: the p99 of the second column (seconds) of the 200 lines, in ms.
p99_ms() {
  awk '$1 == 200 {print $2}' "$1" | sort -n |
    awk '{v[NR] = $1} END {if (NR) {i = int(NR * 0.99 + 0.999); if (i > NR) i = NR; printf "%.2f", v[i] * 1000}}'
}

rows_health_flood() {
  [ -x "$QUIVER_BIN" ] || return 0
  local repo="$TMP/hflood-repo" body="$TMP/test_1row.json" url p1 p2 p3 pm pa nm na bm ba nx bx
  local conns=512
  mkdir -p "$repo/slow/1"
  echo '{"backend": "test", "max_batch_size": 0, "instances": 1, "queue_limit": 64}' \
    >"$repo/slow/config.json"
  echo '{"features": 30, "delay_us": 2000}' >"$repo/slow/1/model.test"
  sed 's/"features"/"input__0"/' "$LOAD_BODY" >"$body"
  # As the overload row: 512 connections from one address stand for many clients.
  start_q hflood "$repo" --admin-port 0 --max-connections-per-ip 2048 ||
    { NOTES+=("health flood: quiver did not start"); return 0; }
  pa=$(sed -n 2p "$TMP/hflood.port")
  pm=${Q_PORT[hflood]}
  url="http://$HOST:$pm/v2/models/slow/infer"
  rm -f "$TMP/hmain.txt" "$TMP/hadmin.txt" "$TMP/hmetrics.txt"
  health_poll_fast "http://$HOST:$pm/v2/health/live" "$DURATION" "$TMP/hmain.txt" &
  p1=$!
  health_poll_fast "http://$HOST:$pa/v2/health/live" "$DURATION" "$TMP/hadmin.txt" &
  p2=$!
  health_poll_fast "http://$HOST:$pa/metrics" "$DURATION" "$TMP/hmetrics.txt" &
  p3=$!
  PIDS+=("$p1:TERM:health-main" "$p2:TERM:health-admin" "$p3:TERM:metrics-admin")
  log "health p99 under a $conns-connection flood for ${DURATION}s (main port and --admin-port)"
  wrk -t "$WRK_THREADS" -c "$conns" -d "${DURATION}s" --timeout 5s -s bench/status.lua \
    "$url" -- "$body" >"$OUT_DIR/wrk-health-flood-c$conns.txt" 2>&1 || true
  wait "$p1" "$p2" "$p3" 2>/dev/null || true
  stop_q hflood
  cp "$TMP/hmain.txt" "$OUT_DIR/health-flood-main.txt"
  cp "$TMP/hadmin.txt" "$OUT_DIR/health-flood-admin.txt"
  cp "$TMP/hmetrics.txt" "$OUT_DIR/health-flood-metrics.txt"
  nm=$(wc -l <"$TMP/hmain.txt"); na=$(wc -l <"$TMP/hadmin.txt")
  bm=$(awk '$1 != 200' "$TMP/hmain.txt" | wc -l); ba=$(awk '$1 != 200' "$TMP/hadmin.txt" | wc -l)
  local qa qm
  qa=$(p99_ms "$TMP/hadmin.txt"); qm=$(p99_ms "$TMP/hmain.txt")
  goal "health p99 under a $conns-connection flood, --admin-port (curl, 50 GETs/s)" \
    "${qa:-n/a} ms ($na polls, $ba not 200)" "main port ${qm:-n/a} ms ($nm polls, $bm not 200)" \
    "< 10 ms" "$( [ "$ba" = 0 ] && [ -n "$qa" ] && awk -v m="$qa" 'BEGIN {exit !(m < 10)}' && echo yes || echo no)"
  nx=$(wc -l <"$TMP/hmetrics.txt"); bx=$(awk '$1 != 200' "$TMP/hmetrics.txt" | wc -l)
  qa=$(p99_ms "$TMP/hmetrics.txt")
  goal "GET /metrics p99 under the same flood, --admin-port (curl, 50 GETs/s)" \
    "${qa:-n/a} ms ($nx polls, $bx not 200)" "-" "< 10 ms" \
    "$( [ "$bx" = 0 ] && [ -n "$qa" ] && awk -v m="$qa" 'BEGIN {exit !(m < 10)}' && echo yes || echo no)"
}
