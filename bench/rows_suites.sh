# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# Sourced by bench/run.sh: the benchmarks that are scripts of their own (they also run alone),
# called from the run so that their figures join its table of figures.
#
#   rows_grpc     bench/grpc.sh: fraud v1 over gRPC (raw and typed tensors) beside REST, on one
#                 quiver with --grpc-port, at each connection count. Goals: gRPC req/s >= REST's
#                 at 32 concurrent calls; gRPC p50 <= 1.2x REST's at 1. Its table is also
#                 written to bench/out/grpc.md.
#   rows_cluster  bench/cluster.sh: one node with --store postgres:// against the same node with
#                 SQLite (fraud v1, 32 conns, goal >= 0.95x), three PostgreSQL nodes behind nginx
#                 against one (reported), a route change visible on every node (p99 over 100
#                 changes, goal <= 1 s). Needs PostgreSQL 15 (a throwaway one from
#                 tests/cluster/pg.sh). Its output is kept in bench/out/cluster.txt.
#
# Knobs: BENCH_GRPC=0 / BENCH_CLUSTER=0 leave a family out; BENCH_CLUSTER_ROUNDS (default 2,
# quick 1) the SQLite/PostgreSQL pairs.

# grpc_cell FILE PROTOCOL CONNS COLUMN: one cell of bench/grpc.sh's table (columns: 3 req/s,
# 4 p50 ms, 5 p99 ms, 6 errors).
grpc_cell() {
  awk -F'|' -v p="$2" -v c="$3" -v k="$4" '
    {for (i = 2; i <= NF; i++) {gsub(/^ +| +$/, "", $i)}}
    $2 == p && $3 == c {print $(k + 1); exit}' "$1"
}

rows_grpc() {
  [ "${BENCH_GRPC:-1}" = 1 ] || return 0
  [ -x "$QUIVER_BIN" ] || return 0
  local md="$OUT_DIR/grpc.md" p c rps p50 p99 e r rr rt
  rm -f "$md"
  log "gRPC beside REST (bench/grpc.sh)"
  if ! OUT_DIR=$OUT_DIR QUIVER_BIN=$QUIVER_BIN BENCH_WARMUP=$WARMUP \
       BENCH_GRPC_SECS=${BENCH_GRPC_SECS:-$DURATION} BENCH_CONNS="${CONNS[*]}" \
       bash bench/grpc.sh >"$TMP/grpc.out" 2>"$TMP/grpc.err"; then
    log "bench/grpc.sh failed; last lines:"; tail -n 10 "$TMP/grpc.err" >&2
    NOTES+=("gRPC: bench/grpc.sh failed ($(tail -n 1 "$TMP/grpc.err" | head -c 200)), not measured")
    return 0
  fi
  [ -f "$md" ] || { NOTES+=("gRPC: bench/grpc.sh wrote no $md, not measured"); return 0; }
  for c in "${CONNS[@]}"; do
    for p in REST "gRPC raw" "gRPC typed" "REST h2load" "gRPC h2load"; do
      rps=$(grpc_cell "$md" "$p" "$c" 3)
      [ -n "$rps" ] || continue
      p50=$(grpc_cell "$md" "$p" "$c" 4); p99=$(grpc_cell "$md" "$p" "$c" 5)
      e=$(grpc_cell "$md" "$p" "$c" 6)
      # The table's milliseconds back into the main table's microseconds.
      p50=$(awk -v m="$p50" 'BEGIN {printf "%d", m * 1000}')
      p99=$(awk -v m="$p99" 'BEGIN {printf "%d", m * 1000}')
      RPS["grpc.sh $p:$c"]=$rps; P50["grpc.sh $p:$c"]=$p50
      ROWS+=("grpc.sh: fraud v1, $p|$c|$rps|$p50|$p99|${e:-n/a}|-|")
    done
  done
  r=$(ratio "${RPS[grpc.sh gRPC raw:32]:-}" "${RPS[grpc.sh REST:32]:-}")
  rt=$(ratio "${RPS[grpc.sh gRPC typed:32]:-}" "${RPS[grpc.sh REST:32]:-}")
  goal "gRPC req/s at 32 concurrent calls / REST (fraud v1, same quiver)" \
    "$(rps_or_na "${RPS[grpc.sh gRPC raw:32]:-}") raw, $(rps_or_na "${RPS[grpc.sh gRPC typed:32]:-}") typed ($rt x)" \
    "$(rps_or_na "${RPS[grpc.sh REST:32]:-}") REST" ">= 1.0x" "$r x $(yes_no le 1.0 "$r")"
  # The same ratio with one client for both protocols (h2load), when it is there.
  if [ -n "${RPS[grpc.sh gRPC h2load:32]:-}" ]; then
    r=$(ratio "${RPS[grpc.sh gRPC h2load:32]:-}" "${RPS[grpc.sh REST h2load:32]:-}")
    goal "gRPC req/s at 32 / REST, one client for both (h2load; fraud v1)" \
      "$(rps_or_na "${RPS[grpc.sh gRPC h2load:32]:-}") gRPC" \
      "$(rps_or_na "${RPS[grpc.sh REST h2load:32]:-}") REST" ">= 1.0x" "$r x $(yes_no le 1.0 "$r")"
  fi
  rr=$(ratio "${P50[grpc.sh gRPC raw:1]:-}" "${P50[grpc.sh REST:1]:-}")
  rt=$(ratio "${P50[grpc.sh gRPC typed:1]:-}" "${P50[grpc.sh REST:1]:-}")
  goal "gRPC p50 at 1 call / REST p50 (fraud v1, same quiver)" \
    "$(ms "${P50[grpc.sh gRPC raw:1]:-}") ms raw, $(ms "${P50[grpc.sh gRPC typed:1]:-}") ms typed ($rt x)" \
    "$(ms "${P50[grpc.sh REST:1]:-}") ms REST" "<= 1.2x" "$rr x $(yes_no le "$rr" 1.2)"
}

rows_cluster() {
  [ "${BENCH_CLUSTER:-1}" = 1 ] || return 0
  [ -x "$QUIVER_BIN" ] || return 0
  local rounds=${BENCH_CLUSTER_ROUNDS:-2} out="$OUT_DIR/cluster.txt" s ng pr bin
  [ "${BENCH_QUICK:-0}" = 1 ] && rounds=${BENCH_CLUSTER_ROUNDS:-1}
  bin=$QUIVER_BIN
  [[ "$bin" = /* ]] || bin="$ROOT/$bin"
  log "cluster: SQLite against PostgreSQL, 3 nodes against 1 behind nginx, route propagation (bench/cluster.sh)"
  if ! QUIVER_BIN=$bin CLUSTER_ROUNDS=$rounds bash bench/cluster.sh "$DURATION" >"$out" 2>"$TMP/cluster.err"; then
    cat "$TMP/cluster.err" >>"$out"
    log "bench/cluster.sh failed; last lines:"; tail -n 10 "$TMP/cluster.err" >&2
    NOTES+=("cluster: bench/cluster.sh failed ($(tail -n 1 "$TMP/cluster.err" | head -c 200)); see $out")
  fi
  cat "$TMP/cluster.err" >>"$out" 2>/dev/null || true
  s=$(grep '^BENCH_CLUSTER ' "$out" | tail -n 1) || true
  ng=$(grep '^BENCH_CLUSTER_NGINX ' "$out" | tail -n 1) || true
  pr=$(grep '^BENCH_PROPAGATION ' "$out" | tail -n 1) || true
  goal "one node with --store postgres:// / SQLite, req/s (fraud v1, 32 conns, best of $rounds each)" \
    "$(field "$s" postgres_rps) postgres" "$(field "$s" sqlite_rps) sqlite; mean ratio $(field "$s" mean_ratio)" \
    ">= 0.95x" "$(field "$s" best_ratio) x $( [ -n "$s" ] && yes_no le 0.95 "$(field "$s" best_ratio)" || echo n/a)"
  goal "three PostgreSQL nodes / one node, both behind nginx (fraud v1, 32 conns)" \
    "$(rps_or_na "$(field "$ng" three_nodes_rps)") req/s, p99 $(ms "$(field "$ng" three_nodes_p99_us)") ms" \
    "$(rps_or_na "$(field "$ng" one_node_rps)") req/s, p99 $(ms "$(field "$ng" one_node_p99_us)") ms one node" \
    "report (2 cores: no scaling)" "$( [ -n "$ng" ] && echo "$(field "$ng" ratio) x" || echo n/a)"
  goal "route change visible on all 3 nodes, p99 over $(field "$pr" changes) changes" \
    "$( [ -n "$pr" ] && echo "$(field "$pr" p99_ms) ms" || echo n/a)" \
    "p50 $(field "$pr" p50_ms) ms, max $(field "$pr" max_ms) ms" "<= 1000 ms" \
    "$( [ -n "$pr" ] && yes_no le "$(field "$pr" p99_ms)" 1000 || echo n/a)"
}
