# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# Sourced by bench/run.sh after bench/rows_engine.sh (it uses start_q, stop_q): slow clients.
#
#   rows_idle_clients  a new client's latency (p50/p99 over BENCH_IDLE_REQS requests, a new
#                      connection each, POST to the `test` backend) on its own, then while
#                      2,000 kept-alive connections sit idle and 300 trickle request headers one
#                      byte per 100 ms (bench/idle_clients.c), against the goal "new client
#                      unaffected": the loaded p99 within 1.5x the unloaded one.
#
# Alone: `bash bench/run.sh` with BENCH_ONLY=rows_idle_clients.

IDLE_REQS=${BENCH_IDLE_REQS:-2000}
[ "${BENCH_QUICK:-0}" = 1 ] && IDLE_REQS=${BENCH_IDLE_REQS:-500}

rows_idle_clients() {
  [ -x "$QUIVER_BIN" ] || return 0
  if ! cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -pthread bench/idle_clients.c \
       -o "$TMP/idle_clients" 2>"$TMP/idle_clients.build.log"; then
    log "idle clients: cannot compile bench/idle_clients.c"; cat "$TMP/idle_clients.build.log" >&2
    return 0
  fi
  local repo="$TMP/idle-repo" out b50 b99 l50 l99 ok of ratio met
  mkdir -p "$repo/fast/1"
  echo '{"backend": "test", "max_batch_size": 0}' >"$repo/fast/config.json"
  echo '{"features": 2}' >"$repo/fast/1/model.test"
  echo '{"inputs":[{"name":"input__0","shape":[1,2],"datatype":"FP32","data":[1,2]}]}' \
    >"$TMP/idle_body.json"
  start_q idleq "$repo" || return 0
  out=$("$TMP/idle_clients" "$HOST" "${Q_PORT[idleq]}" /v2/models/fast/infer \
        "$TMP/idle_body.json" "$IDLE_REQS" 2000 300) || out=""
  stop_q idleq
  [ -n "$out" ] || { NOTES+=("idle clients: bench/idle_clients.c failed, not measured"); return 0; }
  kv() { awk -v k="$1" '{for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) print substr($i, length(k) + 2)}' <<<"$out"; }
  b50=$(kv base_p50_us); b99=$(kv base_p99_us); l50=$(kv loaded_p50_us); l99=$(kv loaded_p99_us)
  ok=$(kv ok); of=$(kv of)
  ratio=$(awk -v l="$l99" -v b="$b99" 'BEGIN {if (b > 0) printf "%.2f", l / b; else print "n/a"}')
  met=$(awk -v r="$ratio" -v ok="$ok" -v of="$of" 'BEGIN {print (r != "n/a" && r <= 1.5 && ok == of) ? "yes" : "no"}')
  goal "new client with 2,000 idle + 300 trickling connections: p50 / p99 (ms), $ok of $of answered 200" \
       "$(awk -v a="$l50" -v b="$l99" 'BEGIN {printf "%.3f / %.3f", a / 1000, b / 1000}')" \
       "$(awk -v a="$b50" -v b="$b99" 'BEGIN {printf "%.3f / %.3f", a / 1000, b / 1000}') alone" \
       "new client unaffected (loaded p99 / alone p99 <= 1.5): ratio $ratio" "$met"
}
