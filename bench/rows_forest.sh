# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# The compiled-forest row of bench/run.sh (sourced by it): bench/forest_bench.c, the xgboost
# backend's compiled forest against libxgboost's in-place prediction on fraud v1, in process,
# one thread each, at batch 1 (time per call) and batch 64 (rows per second). Built by CMake as
# the forest_bench target in the directory that holds $QUIVER_BIN.

FOREST_SECS=${BENCH_FOREST_SECS:-2}

rows_forest() {
  local dir bin out b1 b64
  dir=$(dirname "$QUIVER_BIN")
  bin="$dir/forest_bench"
  if ! cmake --build "$dir" --target forest_bench >"$TMP/forest_bench.build.log" 2>&1; then
    log "forest: cannot build forest_bench:"; cat "$TMP/forest_bench.build.log" >&2
    NOTES+=("compiled forest: forest_bench did not build, not measured")
    return 0
  fi
  log "timing the compiled forest against libxgboost (${FOREST_SECS}s per case)"
  if ! out=$(OMP_NUM_THREADS=1 "$bin" "$MODEL" "$FOREST_SECS"); then
    NOTES+=("compiled forest: forest_bench failed (outputs differ?), not measured")
    return 0
  fi
  b1=$(grep '^forest batch=1 ' <<<"$out")
  b64=$(grep '^forest batch=64 ' <<<"$out")
  goal "compiled forest, batch 1, in process (us per call)" \
    "$(field "$b1" compiled_us) ($(field "$b1" speedup)x)" \
    "libxgboost $(field "$b1" libxgboost_us)" ">= 10x faster" \
    "$(awk -v s="$(field "$b1" speedup)" 'BEGIN {print (s >= 10) ? "yes" : "no"}')"
  goal "compiled forest, batch 64, in process (rows/s)" \
    "$(field "$b64" compiled_rows_s) ($(field "$b64" speedup)x)" \
    "libxgboost $(field "$b64" libxgboost_rows_s)" ">= 2x" \
    "$(awk -v s="$(field "$b64" speedup)" 'BEGIN {print (s >= 2) ? "yes" : "no"}')"
}
