# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# Sourced by bench/run.sh: quiver's ONNX runtime against onnxruntime (the onnxruntime-node npm
# package, installed into bench/onnx/node_modules on first use; the CPU library ships inside it).
#
#   start_ort           bench/peers/ort_server.cjs: Node.js http, 2-worker cluster, the MLP
#   rows_onnx_serving   the MLP through quiver (main server) and through the Node.js peer
#   rows_onnx_inproc    batch-1 p50 in-process: bench/onnx_inproc.c (quiver_core) against
#                       bench/onnx/ort_inproc.js, 1 and 2 intra-op threads (back to back), MLP
#                       and ResNet-18; outputs compared element by element (within 1e-4)
#
# ResNet-18 is written by scripts/make_bench_models.py into bench/models/ (not in git, ~45 MB)
# on the first run and reused while it exists.

MLP_MODEL=examples/models/mlp/1/model.onnx
MLP_BODY=bench/requests/mlp_1row.json
MLP_REFERENCE=examples/models/mlp/reference.json
MLP_PATH=/v2/models/mlp/versions/1/infer
RESNET_MODEL=${BENCH_RESNET:-bench/models/resnet18.onnx}
ORT_DIR=bench/onnx

# ort_ready: true when onnxruntime-node can be loaded (installs it once if needed).
ORT_OK=""
ort_ready() {
  if [ -z "$ORT_OK" ]; then
    ORT_OK=no
    if ! command -v node >/dev/null 2>&1; then
      NOTES+=("onnxruntime: node not found, ONNX peer rows skipped")
    else
      if [ ! -d "$ORT_DIR/node_modules/onnxruntime-node" ]; then
        log "installing onnxruntime-node into $ORT_DIR/node_modules (npm, once)"
        (cd "$ORT_DIR" && timeout 300 npm ci --ignore-scripts --no-audit --no-fund) \
          >"$TMP/npm.log" 2>&1 || { log "npm failed:"; tail -n 5 "$TMP/npm.log" >&2; }
      fi
      if (cd "$ORT_DIR" && node -e "require('onnxruntime-node')") >"$TMP/ort-check.log" 2>&1; then
        ORT_OK=yes
        ORT_VERSION=$(node -p "require('./$ORT_DIR/node_modules/onnxruntime-node/package.json').version")
      else
        NOTES+=("onnxruntime: onnxruntime-node does not load ($(head -c 200 "$TMP/ort-check.log")), ONNX peer rows skipped")
      fi
    fi
  fi
  [ "$ORT_OK" = yes ]
}

# check_mlp NAME URL: one POST of the MLP body; its probabilities must match the reference row.
check_mlp() {
  local resp code
  resp=$(curl -s --max-time 5 -w '\n%{http_code}' -H 'Content-Type: application/json' \
         --data-binary "@$MLP_BODY" "$2" 2>/dev/null) || true
  code=${resp##*$'\n'}
  resp=${resp%$'\n'*}
  if [ "$code" != 200 ]; then
    log "$1: POST $2 answered $code: ${resp:0:300}"
    return 1
  fi
  "$PY" -c '
import json, sys
got = json.loads(sys.argv[1])["outputs"][0]["data"][:2]
ref = json.load(open(sys.argv[2]))
want = ref["output"]["data"][:2]
sys.exit(0 if all(abs(g - w) <= ref.get("tolerance", 1e-4) for g, w in zip(got, want))
         else "got %r, want %r" % (got, want))
' "$resp" "$MLP_REFERENCE" || { log "$1: wrong MLP answer"; return 1; }
}

start_ort() {
  if [ "${1:-}" = ready ]; then
    [ -n "${ORT_PID:-}" ] || return 0
    wait_ready ort "$ORT_PID" "http://$HOST:$ORT_PORT/v2/health/ready" 30 || return 0
    # shellcheck disable=SC2154
    check_mlp ort "http://$HOST:$ORT_PORT$MLP_PATH" && UP[ort]=1
    return 0
  fi
  ort_ready || return 0
  port_free "$ORT_PORT" || { log "ort: port $ORT_PORT is busy"; return 1; }
  launch ort TERM env NODE_PATH="$ROOT/$ORT_DIR/node_modules" BENCH_MODEL="$ROOT/$MLP_MODEL" \
    BENCH_MODEL_NAME=mlp BENCH_MODEL_VERSION=1 HOST="$HOST" PORT="$ORT_PORT" WORKERS=2 \
    node bench/peers/ort_server.cjs
  ORT_PID=$LAUNCHED_PID
}

rows_onnx_serving() {
  local q="quiver MLP (onnx, 30-256-256-2)" o="node+onnxruntime MLP (cluster of 2)" r
  if [ "${UP[quiver]:-0}" = 1 ]; then
    if check_mlp quiver "http://$HOST:$QUIVER_PORT$MLP_PATH"; then
      run_wrk 32 "$WARMUP" "http://$HOST:$QUIVER_PORT$MLP_PATH" "$MLP_BODY" "$TMP/warm-qmlp.log" >/dev/null
      measure quiver 32 "http://$HOST:$QUIVER_PORT$MLP_PATH" "$MLP_BODY" "$q"
    else
      NOTES+=("quiver MLP: the check request failed, not measured")
    fi
  fi
  if [ "${UP[ort]:-0}" = 1 ]; then
    run_wrk 32 "$WARMUP" "http://$HOST:$ORT_PORT$MLP_PATH" "$MLP_BODY" "$TMP/warm-ort.log" >/dev/null
    measure ort 32 "http://$HOST:$ORT_PORT$MLP_PATH" "$MLP_BODY" "$o"
  fi
  r=$(ratio "${RPS[$q:32]:-}" "${RPS[$o:32]:-}")
  goal "ONNX serving: quiver MLP req/s / Node.js onnxruntime (32 conns)" \
    "$( [ -n "${RPS[$q:32]:-}" ] && printf '%.0f' "${RPS[$q:32]}" || echo n/a)" \
    "$( [ -n "${RPS[$o:32]:-}" ] && printf '%.0f' "${RPS[$o:32]}" || echo n/a)" ">= 1.5x" \
    "$r x $(yes_no le 1.5 "$r")"
}

# median_of V...: the median of the values ("" for none).
median_of() {
  [ "$#" -gt 0 ] || { echo ""; return 0; }
  printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# inproc_line OUT_FILE CMD...: runs one in-process timing; prints its ONNX line ("" on failure).
inproc_line() {
  local outf=$1
  shift
  "$@" >"$outf" 2>&1 || true
  grep '^ONNX ' "$outf" | tail -n 1
}

rows_onnx_inproc() {
  local bdir lib bin="$TMP/onnx_inproc" model name runs t q o dims rq ro goalx qo oo agree
  bdir=$(dirname "$QUIVER_BIN")
  if [ ! -f "$bdir/libquiver_core.a" ] || [ ! -f "$bdir/CMakeFiles/quiver.dir/link.txt" ]; then
    NOTES+=("ONNX in-process: no $bdir/libquiver_core.a, not measured")
    return 0
  fi
  # The libraries quiver itself links with, from CMake's link line.
  lib=$(sed -e 's/.* -o quiver //' -e "s#\\(^\\| \\)libquiver_core\\.a#\\1$bdir/libquiver_core.a#" \
        "$bdir/CMakeFiles/quiver.dir/link.txt")
  # shellcheck disable=SC2086
  if ! cc -std=c11 -O2 -Wall -Wextra -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Isrc \
       bench/onnx_inproc.c $lib -o "$bin" 2>"$TMP/onnx_inproc.build.log"; then
    log "onnx_inproc: did not compile:"; head -n 20 "$TMP/onnx_inproc.build.log" >&2
    NOTES+=("ONNX in-process: bench/onnx_inproc.c did not compile, not measured")
    return 0
  fi
  if [ ! -f "$RESNET_MODEL" ]; then
    log "writing $RESNET_MODEL (scripts/make_bench_models.py, once)"
    "$PY" scripts/make_bench_models.py "$(dirname "$RESNET_MODEL")" >"$TMP/make_bench_models.log" 2>&1 ||
      { log "make_bench_models.py failed:"; tail -n 5 "$TMP/make_bench_models.log" >&2; }
  fi
  ort_ready || true
  for name in mlp resnet18; do
    case $name in
      mlp) model=$MLP_MODEL; runs=$INPROC_MLP_RUNS; dims=1,30; goalx=1.0 ;;
      resnet18) model=$RESNET_MODEL; runs=$INPROC_RESNET_RUNS; dims=1,3,224,224; goalx=1.3 ;;
    esac
    if [ ! -f "$model" ]; then
      NOTES+=("ONNX in-process: $model missing, $name not measured")
      continue
    fi
    for t in 1 2; do
      # ResNet-18 runs in rounds, quiver then onnxruntime each time, and its row reports the
      # medians: load from outside the benchmark (another VM on the host) comes and goes within
      # a run, and hits both runtimes alike within a round.
      local rounds=1 round rqs=() ros=() rs=()
      [ "$name" = resnet18 ] && rounds=$INPROC_RESNET_ROUNDS
      for ((round = 1; round <= rounds; round++)); do
        log "in-process $name, $t thread(s), $runs runs: quiver, then onnxruntime (round $round/$rounds)"
        # This machine's environment pins OpenBLAS to its Haswell kernels (OPENBLAS_CORETYPE,
        # set for old numpy builds); onnxruntime picks its own kernels for the CPU, so quiver's
        # OpenBLAS does too here. The outputs are compared below all the same.
        q=$(inproc_line "$OUT_DIR/inproc-quiver-$name-t$t.txt" env -u OPENBLAS_CORETYPE \
          -u OPENBLAS_L2_SIZE "$bin" "$model" "$t" "$runs" "" "$OUT_DIR/inproc-quiver-$name-t$t.f32")
        o=""
        rm -f "$OUT_DIR/inproc-ort-$name-t$t.f32"
        [ "$ORT_OK" = yes ] && o=$(cd "$ORT_DIR" && inproc_line "$ROOT/$OUT_DIR/inproc-ort-$name-t$t.txt" \
          node ort_inproc.js "$ROOT/$model" "$t" "$runs" "" "$dims" "$ROOT/$OUT_DIR/inproc-ort-$name-t$t.f32")
        rq=$(field "$q" p50_us); ro=$(field "$o" p50_us)
        [ -n "$rq" ] && rqs+=("$rq")
        [ -n "$ro" ] && ros+=("$ro")
        [ -n "$rq" ] && [ -n "$ro" ] && rs+=("$(awk -v a="$rq" -v b="$ro" 'BEGIN {printf "%.4f", a / b}')")
      done
      rq=$(median_of "${rqs[@]}"); ro=$(median_of "${ros[@]}")
      # Every output element, within 1e-4 of onnxruntime's.
      agree=$("$PY" -c '
import array, sys
def load(p):
    a = array.array("f")
    with open(p, "rb") as f:
        a.frombytes(f.read())
    return a
try:
    q, o = load(sys.argv[1]), load(sys.argv[2])
except OSError:
    print("not compared"); sys.exit(0)
if len(q) != len(o) or not q:
    print("OUTPUTS DIFFER (%d vs %d values)" % (len(q), len(o))); sys.exit(0)
d = max(abs(a - b) for a, b in zip(q, o))
print(("outputs agree, max abs diff %.1e" if d <= 1e-4 else "OUTPUTS DIFFER, max abs diff %.1e") % d)
' "$OUT_DIR/inproc-quiver-$name-t$t.f32" "$OUT_DIR/inproc-ort-$name-t$t.f32")
      local r met want
      r=$(ratio "$rq" "$ro")
      # Over several rounds: the median of the rounds' ratios, and every round's in the notes.
      if [ "${#rs[@]}" -gt 1 ]; then
        r=$(printf '%.2f' "$(median_of "${rs[@]}")")
        NOTES+=("ONNX in-process $name, $t thread(s): quiver / onnxruntime p50 per round $(printf '%.2fx ' "${rs[@]}" | sed 's/ $//')")
      fi
      case $name:$t in
        mlp:*) want=1.0 ;;
        resnet18:1) want=1.2 ;;
        *) want=$goalx ;;
      esac
      met="$r x $(yes_no le "$r" "$want")"
      # The goal holds only with outputs that agree (a table cell: no "|" in it).
      [[ "$agree" = "outputs agree"* ]] || met="$r x no (outputs not shown to agree)"
      local how="$runs runs"
      [ "$rounds" -gt 1 ] && how="$rounds rounds of $runs runs, medians"
      goal "ONNX in-process p50, $name batch 1, $t thread(s) ($how)" "$(ms "$rq") ms quiver" \
        "$(ms "$ro") ms onnxruntime ${ORT_VERSION:-}; $agree" "<= ${want}x" "$met"
    done
  done
}
