# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# Sourced by bench/run.sh: the binary tensor data extension (KServe v2 / Triton) against JSON.
#
#   rows_binary  (a) ResNet-18 (1x3x224x224 FP32) served through quiver with a binary request,
#                    p50 at 1 connection, against onnxruntime's in-process p50 for the same
#                    model and thread count (bench/onnx/ort_inproc.js); goal <= 1.3x
#                (b) the decode time of that request in binary against the same request in
#                    JSON, in process with quiver's own decoders (bench/decode_bench.c, linked
#                    with libquiver_core); goal >= 5x
#                (c) fraud v1 at 32 connections, binary request against the JSON request
#                    (wrk with bench/post_binary.lua and bench/post.lua); goal: req/s no lower
#
# Each server is quiver on a temp COPY of the model it needs (start_q, bench/rows_engine.sh).
# Knobs: BINARY_RESNET_THREADS (default 1), BINARY_DECODE_RUNS (default 30; quick 8).

# bin_body OUT NAME SHAPE DATATYPE: writes OUT (JSON header + raw FP32 values sin(0.37 i), or
# the fraud row of $BODY when NAME is "features") and prints the header's length.
bin_body() {
  # shellcheck disable=SC2153  # BODY: bench/run.sh's request file
  "$PY" - "$@" "$ROOT/$BODY" <<'PY'
import json, math, struct, sys
out, name, shape, dtype, fraud = sys.argv[1], sys.argv[2], [int(d) for d in sys.argv[3].split(",")], sys.argv[4], sys.argv[5]
n = 1
for d in shape:
    n *= d
if name == "features":
    vals = [v for row in json.load(open(fraud))["inputs"][0]["data"] for v in (row if isinstance(row, list) else [row])]
else:
    vals = [math.sin(0.37 * i) for i in range(n)]
raw = struct.pack("<%df" % n, *vals[:n])
head = json.dumps({"inputs": [{"name": name, "shape": shape, "datatype": dtype,
                               "parameters": {"binary_data_size": len(raw)}}]},
                  separators=(",", ":")).encode()
with open(out, "wb") as f:
    f.write(head + raw)
print(len(head))
PY
}

# run_wrk_bin CONNS SECONDS URL BODY HEADER_LEN LOGFILE: as run_wrk, with post_binary.lua.
run_wrk_bin() {
  local conns=$1 secs=$2 url=$3 body=$4 hlen=$5 logf=$6 threads=$WRK_THREADS
  [ "$conns" -lt "$threads" ] && threads=$conns
  wrk -t "$threads" -c "$conns" -d "${secs}s" --timeout 10s --latency \
      -s bench/post_binary.lua "$url" -- "$body" "$hlen" >"$logf" 2>&1 || true
  grep '^BENCH ' "$logf" | tail -n 1
}

rows_binary() {
  local repo="$TMP/binary-repo" threads=${BINARY_RESNET_THREADS:-1} runs=${BINARY_DECODE_RUNS:-30}
  local hlen line p50 o ro r secs=${ROW_SECS:-$DURATION} jr br bdir lib bin code name
  [ "${BENCH_QUICK:-0}" = 1 ] && runs=${BINARY_DECODE_RUNS:-8}
  rm -rf "$repo"
  mkdir -p "$repo"

  # (b) decode time, in process.
  bdir=$(dirname "$QUIVER_BIN")
  bin="$TMP/decode_bench"
  if [ -f "$bdir/libquiver_core.a" ] && [ -f "$bdir/CMakeFiles/quiver.dir/link.txt" ]; then
    lib=$(sed -e 's/.* -o quiver //' -e "s#\\(^\\| \\)libquiver_core\\.a#\\1$bdir/libquiver_core.a#" \
          "$bdir/CMakeFiles/quiver.dir/link.txt")
    # shellcheck disable=SC2046,SC2086  # word lists on purpose
    if cc -std=c11 -O2 -Wall -Wextra -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Isrc \
         $(pkg-config --cflags jansson libmicrohttpd) bench/decode_bench.c $lib -o "$bin" \
         2>"$TMP/decode_bench.build.log"; then
      log "decode time, ResNet-18 input, JSON against binary ($runs runs)"
      line=$("$bin" "$runs" 1 3 224 224 2>"$TMP/decode_bench.log" | grep '^DECODE ' | tail -n 1)
      jr=$(field "$line" json_p50_us); br=$(field "$line" bin_p50_us); r=$(field "$line" ratio)
      goal "decode of a 1x3x224x224 FP32 request: JSON / binary (in process, p50 of $runs)" \
        "$(ms "$br") ms binary ($(field "$line" bin_bytes) B)" \
        "$(ms "$jr") ms JSON ($(field "$line" json_bytes) B)" ">= 5x" \
        "${r:-n/a} x $( [ -n "$r" ] && yes_no le 5 "$r" || echo n/a)"
    else
      log "decode_bench: did not compile:"; head -n 20 "$TMP/decode_bench.build.log" >&2
      NOTES+=("binary decode: bench/decode_bench.c did not compile, not measured")
    fi
  else
    NOTES+=("binary decode: no $bdir/libquiver_core.a, not measured")
  fi

  # (a) ResNet-18 served, binary, 1 connection, against onnxruntime in process.
  if [ ! -f "$RESNET_MODEL" ]; then
    log "writing $RESNET_MODEL (scripts/make_bench_models.py, once)"
    "$PY" scripts/make_bench_models.py "$(dirname "$RESNET_MODEL")" >"$TMP/make_bench_models.log" 2>&1 ||
      { log "make_bench_models.py failed:"; tail -n 5 "$TMP/make_bench_models.log" >&2; }
  fi
  if [ -f "$RESNET_MODEL" ]; then
    mkdir -p "$repo/resnet18/1"
    cp "$RESNET_MODEL" "$repo/resnet18/1/model.onnx"
    printf '{"backend": "onnx", "threads": %d}\n' "$threads" >"$repo/resnet18/config.json"
    if start_q binresnet "$repo"; then
      name=$(curl -s "http://$HOST:${Q_PORT[binresnet]}/v2/models/resnet18" |
             "$PY" -c 'import json, sys; print(json.load(sys.stdin)["inputs"][0]["name"])' 2>/dev/null)
      hlen=$(bin_body "$TMP/resnet.bin" "${name:-input}" 1,3,224,224 FP32)
      code=$(curl -s -o /dev/null -w '%{http_code}' -H "Inference-Header-Content-Length: $hlen" \
             -H 'Content-Type: application/octet-stream' --data-binary "@$TMP/resnet.bin" \
             "http://$HOST:${Q_PORT[binresnet]}/v2/models/resnet18/infer")
      if [ "$code" = 200 ]; then
        run_wrk_bin 1 "$WARMUP" "http://$HOST:${Q_PORT[binresnet]}/v2/models/resnet18/infer" \
          "$TMP/resnet.bin" "$hlen" "$TMP/warm-binresnet.log" >/dev/null
        log "measuring ResNet-18 binary at 1 connection for ${secs}s"
        line=$(run_wrk_bin 1 "$secs" "http://$HOST:${Q_PORT[binresnet]}/v2/models/resnet18/infer" \
               "$TMP/resnet.bin" "$hlen" "$OUT_DIR/wrk-resnet18-binary-c1.txt")
        p50=$(field "$line" p50_us)
        [ -n "$line" ] && ROWS+=("quiver ResNet-18 binary ($threads thread)|1|$(field "$line" rps)|$p50|$(field "$line" p99_us)|$(field "$line" non2xx)|$(field "$line" errors)|")
      else
        NOTES+=("ResNet-18 binary: the check request answered $code, not measured")
      fi
      stop_q binresnet
      o=""
      if ort_ready; then
        o=$(cd "$ORT_DIR" && inproc_line "$ROOT/$OUT_DIR/inproc-ort-resnet18-binary-t$threads.txt" \
          node ort_inproc.js "$ROOT/$RESNET_MODEL" "$threads" "$INPROC_RESNET_RUNS" "" 1,3,224,224)
      fi
      ro=$(field "$o" p50_us)
      r=$(ratio "${p50:-}" "$ro")
      goal "ResNet-18 served p50, binary request, 1 conn, $threads thread(s)" \
        "$(ms "${p50:-}") ms quiver" "$(ms "$ro") ms onnxruntime in process ${ORT_VERSION:-}" \
        "<= 1.3x" "$r x $( [ "$r" != n/a ] && yes_no le "$r" 1.3 || echo n/a)"
    else
      NOTES+=("ResNet-18 binary: quiver did not start, not measured")
    fi
  else
    NOTES+=("ResNet-18 binary: $RESNET_MODEL missing, not measured")
  fi

  # (c) fraud v1 at 32 connections: binary against JSON.
  mkdir -p "$repo/fraud"
  cp -r examples/models/fraud/1 examples/models/fraud/config.json "$repo/fraud/"
  if start_q binfraud "$repo"; then
    local url="http://$HOST:${Q_PORT[binfraud]}/v2/models/fraud/versions/1/infer"
    hlen=$(bin_body "$TMP/fraud.bin" features 1,30 FP32)
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Inference-Header-Content-Length: $hlen" \
           -H 'Content-Type: application/octet-stream' --data-binary "@$TMP/fraud.bin" "$url")
    if [ "$code" = 200 ]; then
      run_wrk 32 "$WARMUP" "$url" "$LOAD_BODY" "$TMP/warm-binfraud.log" >/dev/null
      measure binfraud 32 "$url" "$LOAD_BODY" "quiver fraud v1 JSON"
      run_wrk_bin 32 "$WARMUP" "$url" "$TMP/fraud.bin" "$hlen" "$TMP/warm-binfraud2.log" >/dev/null
      log "measuring fraud v1 binary at 32 connections for ${secs}s"
      line=$(run_wrk_bin 32 "$secs" "$url" "$TMP/fraud.bin" "$hlen" "$OUT_DIR/wrk-fraud-binary-c32.txt")
      [ -n "$line" ] && ROWS+=("quiver fraud v1 binary|32|$(field "$line" rps)|$(field "$line" p50_us)|$(field "$line" p99_us)|$(field "$line" non2xx)|$(field "$line" errors)|")
      jr=${RPS[quiver fraud v1 JSON:32]:-}
      br=$(field "$line" rps)
      r=$(ratio "$br" "$jr")
      goal "fraud v1 req/s at 32 conns: binary request / JSON request" \
        "$( [ -n "$br" ] && printf '%.0f' "$br" || echo n/a) binary" \
        "$( [ -n "$jr" ] && printf '%.0f' "$jr" || echo n/a) JSON" ">= 1.0x" \
        "$r x $( [ "$r" != n/a ] && yes_no le 1.0 "$r" || echo n/a)"
    else
      NOTES+=("fraud binary: the check request answered $code, not measured")
    fi
    stop_q binfraud
  else
    NOTES+=("fraud binary: quiver did not start, not measured")
  fi
}
