#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/grpc.sh -- fraud version 1 over gRPC beside REST, on one quiver in one run.
#
# One `quiver serve` with --grpc-port on a copy of examples/models/fraud, then, at 1 and at 32
# concurrent calls:
#   REST        wrk with bench/post.lua, the KServe v2 JSON body of examples/requests/fraud_1row.json
#   gRPC raw    bench/grpc_load.c (gRPC's C core), ModelInferRequest with raw_input_contents
#               (as Triton's clients send), one connection per call in flight (as wrk)
#   gRPC typed  the same with fp32_contents
# then, when h2load (nghttp2-client) is there, both protocols with that one client, so that
# neither side's load generator costs more CPU than the other's on the same cores:
#   REST h2load  h2load --h1 (HTTP/1.1, one connection per call in flight, as wrk)
#   gRPC h2load  h2load over h2c, a prepared gRPC frame (5-byte prefix + the raw message)
# Each row also gives the server's CPU time per request (from /proc, user + system) and the
# client's CPU seconds. A table of req/s, p50 (h2load: mean) and p99 with the goals (gRPC req/s
# >= REST's at 32, gRPC p50 within 1.2x REST's at 1). bench/run.sh calls it; it also runs alone:
#
#   bash bench/grpc.sh            BENCH_GRPC_SECS=10 per row, BENCH_WARMUP=2, BENCH_QUICK=1: 3
#
# Environment: QUIVER_BIN (build/quiver), OUT_DIR (bench/out: grpc.md is written there).
# Only 127.0.0.1; every process started here is stopped on exit, by its id.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
QUIVER_BIN=${QUIVER_BIN:-build/quiver}
OUT_DIR=${OUT_DIR:-bench/out}
SECS=${BENCH_GRPC_SECS:-10}
WARMUP=${BENCH_WARMUP:-2}
[ "${BENCH_QUICK:-0}" = 1 ] && SECS=${BENCH_GRPC_SECS:-3} && WARMUP=1
read -r -a CONNS <<<"${BENCH_CONNS:-1 32}"
PY=/usr/bin/python3
HOST=127.0.0.1
BODY=examples/requests/fraud_1row.json
TMP=$(mktemp -d "${TMPDIR:-/tmp}/quiver-bench-grpc.XXXXXX")
QPID=""

log() { printf 'bench/grpc: %s\n' "$*" >&2; }
cleanup() {
  if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then
    kill -TERM "$QPID" 2>/dev/null || true
    wait "$QPID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

for tool in wrk cc pkg-config; do
  command -v "$tool" >/dev/null 2>&1 || { log "missing $tool: run 'bash scripts/install-deps.sh bench'"; exit 1; }
done
[ -x "$QUIVER_BIN" ] || { log "no $QUIVER_BIN: build it first"; exit 1; }
[ -f examples/models/fraud/1/model.json ] || { log "missing the fraud model: run 'make models'"; exit 1; }
"$PY" -c 'import grpc_tools' 2>/dev/null || { log "missing python3-grpc-tools"; exit 1; }
mkdir -p "$OUT_DIR"

# The load generator and the request messages.
cc -std=c11 -O2 -Wall -Wextra bench/grpc_load.c $(pkg-config --cflags --libs grpc) -lpthread \
   -o "$TMP/grpc_load"
"$PY" -m grpc_tools.protoc -Iproto --python_out="$TMP" grpc_predict_v2.proto
"$PY" - "$TMP" "$BODY" <<'EOF'
import json, struct, sys
sys.path.insert(0, sys.argv[1])
import grpc_predict_v2_pb2 as pb
body = json.load(open(sys.argv[2]))
rest = {"inputs": body["inputs"]}  # no "id": quiver remembers every id for feedback
json.dump(rest, open(sys.argv[1] + "/rest.json", "w"))
for form in ("raw", "typed"):
    req = pb.ModelInferRequest(model_name="fraud", model_version="1")
    for t in body["inputs"]:
        flat = []
        stack = [t["data"]]
        while stack:  # flatten nested data, row-major
            v = stack.pop(0)
            if isinstance(v, list):
                stack = v + stack
            else:
                flat.append(float(v))
        i = req.inputs.add(name=t["name"], datatype=t["datatype"], shape=t["shape"])
        if form == "raw":
            req.raw_input_contents.append(struct.pack(f"<{len(flat)}f", *flat))
        else:
            i.contents.fp32_contents.extend(flat)
    msg = req.SerializeToString()
    open(f"{sys.argv[1]}/{form}.bin", "wb").write(msg)
    # The same message as one gRPC frame (not compressed, 4-byte big-endian length), for h2load.
    open(f"{sys.argv[1]}/{form}.frame", "wb").write(b"\0" + struct.pack(">I", len(msg)) + msg)
EOF

# The server.
mkdir -p "$TMP/repo"
cp -r examples/models/fraud "$TMP/repo/fraud"
rm -f "$TMP/repo/fraud/reference.json"
"$QUIVER_BIN" serve --repo "$TMP/repo" --data "$TMP/data" --host "$HOST" --port 0 \
  --port-file "$TMP/hport" --grpc-port 0 --grpc-port-file "$TMP/gport" \
  --log-level warn >"$TMP/quiver.log" 2>&1 &
QPID=$!
for _ in $(seq 600); do
  [ -s "$TMP/hport" ] && [ -s "$TMP/gport" ] && break
  kill -0 "$QPID" 2>/dev/null || { log "quiver did not start:"; cat "$TMP/quiver.log" >&2; exit 1; }
  sleep 0.1
done
HPORT=$(head -n1 "$TMP/hport"); GPORT=$(head -n1 "$TMP/gport")
URL="http://$HOST:$HPORT/v2/models/fraud/versions/1/infer"
METHOD=/inference.GRPCInferenceService/ModelInfer

field() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2}'; }
rest_row() {  # CONNS SECS
  local t=2
  [ "$1" -lt 2 ] && t=1
  wrk -t "$t" -c "$1" -d "${2}s" --timeout 5s --latency -s bench/post.lua "$URL" -- \
      "$TMP/rest.json" 2>&1 | grep '^BENCH ' | tail -n 1
}
grpc_row() {  # FORM CONNS SECS
  "$TMP/grpc_load" "$HOST:$GPORT" "$METHOD" "$TMP/$1.bin" "$2" "$2" "$3"
}
# h2load's summary as a BENCH line (it gives the mean time per request, no percentiles).
h2_bench() {
  awk '/^finished in/ {rps = $4}
       /^requests:/ {ok = $8; bad = $10 + $12}
       /^status codes:/ {non2xx = $5 + $7 + $9}
       /^time for request:/ {m = $6; u = m; sub(/[a-z]+$/, "", u)
                             if (m ~ /us$/) us = u; else if (m ~ /ms$/) us = u * 1000; else us = u * 1e6}
       END {printf "BENCH rps=%s p50_us=%d p99_us=0 ok=%d errors=%d non2xx=%d\n", rps, us, ok, bad, non2xx}'
}
h2_rest_row() {  # CONNS SECS
  h2load --h1 -t 1 -c "$1" -m 1 -D "$2" -d "$TMP/rest.json" -H 'content-type: application/json' \
      "$URL" 2>&1 | h2_bench
}
h2_grpc_row() {  # FORM CONNS SECS
  h2load -t 1 -c "$2" -m 1 -D "$3" -d "$TMP/$1.frame" -H 'content-type: application/grpc' \
      -H 'te: trailers' "http://$HOST:$GPORT$METHOD" 2>&1 | h2_bench
}
server_ticks() { awk '{print $14 + $15}' "/proc/$QPID/stat"; }
HZ=$(getconf CLK_TCK)

PROTOS=(REST "gRPC raw" "gRPC typed")
if command -v h2load >/dev/null 2>&1; then
  PROTOS+=("REST h2load" "gRPC h2load")
else
  log "no h2load (nghttp2-client): the same-client rows are left out"
fi
declare -A RPS P50
ROWS=()
TIMEFORMAT='%U %S'
for c in "${CONNS[@]}"; do
  rest_row "$c" "$WARMUP" >/dev/null
  grpc_row raw "$c" "$WARMUP" >/dev/null
  for proto in "${PROTOS[@]}"; do
    log "measuring $proto at $c concurrent call(s) for ${SECS}s"
    t0=$(server_ticks)
    { time case $proto in
      REST) rest_row "$c" "$SECS" ;;
      "gRPC raw") grpc_row raw "$c" "$SECS" ;;
      "gRPC typed") grpc_row typed "$c" "$SECS" ;;
      "REST h2load") h2_rest_row "$c" "$SECS" ;;
      *) h2_grpc_row raw "$c" "$SECS" ;;
    esac >"$TMP/line" ; } 2>"$TMP/cpu" || true
    t1=$(server_ticks)
    line=$(cat "$TMP/line")
    [ -n "$line" ] || { log "$proto: no result"; continue; }
    case $proto in
      REST) errs=$(( $(field "$line" non2xx) + $(field "$line" errors) )); n=$(field "$line" requests) ;;
      "REST h2load"|"gRPC h2load") errs=$(( $(field "$line" non2xx) + $(field "$line" errors) )); n=$(field "$line" ok) ;;
      *) errs=$(field "$line" errors); n=$(field "$line" ok) ;;
    esac
    srv=$(awk -v a="$t0" -v b="$t1" -v n="$n" -v hz="$HZ" 'BEGIN {if (n > 0) printf "%.1f", (b - a) * 1e6 / hz / n; else print "n/a"}')
    cli=$(awk '{printf "%.2f", $1 + $2}' "$TMP/cpu")
    RPS[$proto:$c]=$(field "$line" rps); P50[$proto:$c]=$(field "$line" p50_us)
    ROWS+=("$proto|$c|$(field "$line" rps)|$(field "$line" p50_us)|$(field "$line" p99_us)|$errs|$srv|$cli")
  done
done

ms() { awk -v u="$1" 'BEGIN {printf "%.3f", u / 1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}'; }
{
  echo "### gRPC beside REST (fraud v1, one row; $(nproc) cores, ${SECS}s per row)"
  echo
  echo "| protocol | concurrent calls | req/s | p50 ms | p99 ms | errors | server CPU us/req | client CPU s |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for r in "${ROWS[@]}"; do
    IFS='|' read -r p c rps p50 p99 e srv cli <<<"$r"
    printf '| %s | %s | %.0f | %s | %s | %s | %s | %s |\n' "$p" "$c" "$rps" "$(ms "$p50")" "$(ms "$p99")" \
      "$e" "$srv" "$cli"
  done
  echo
  echo "(h2load rows: p50 is h2load's mean time per request; it gives no p99.)"
  echo
  hi=${CONNS[${#CONNS[@]}-1]}; lo=${CONNS[0]}
  if [ -n "${RPS[gRPC raw:$hi]:-}" ] && [ -n "${RPS[REST:$hi]:-}" ]; then
    echo "- goal: gRPC req/s >= REST's at $hi: raw/REST = $(ratio "${RPS[gRPC raw:$hi]}" "${RPS[REST:$hi]}")," \
         "typed/REST = $(ratio "${RPS[gRPC typed:$hi]:-0}" "${RPS[REST:$hi]}") (goal >= 1.00)"
  fi
  if [ -n "${P50[gRPC raw:$lo]:-}" ] && [ -n "${P50[REST:$lo]:-}" ]; then
    echo "- goal: gRPC p50 within 1.2x REST's at $lo: raw/REST = $(ratio "${P50[gRPC raw:$lo]}" "${P50[REST:$lo]}")," \
         "typed/REST = $(ratio "${P50[gRPC typed:$lo]:-0}" "${P50[REST:$lo]}") (goal <= 1.20)"
  fi
  if [ -n "${RPS[gRPC h2load:$hi]:-}" ] && [ -n "${RPS[REST h2load:$hi]:-}" ]; then
    echo "- same client (h2load): gRPC/REST req/s at $hi = $(ratio "${RPS[gRPC h2load:$hi]}" "${RPS[REST h2load:$hi]}")," \
         "mean at $lo = $(ratio "${P50[gRPC h2load:$lo]:-0}" "${P50[REST h2load:$lo]:-0}")"
  fi
  echo "- load: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at the end"
} | tee "$OUT_DIR/grpc.md"
