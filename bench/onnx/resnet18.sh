#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/onnx/resnet18.sh -- ResNet-18 (torchvision, random weights, seed 0, 1x3x224x224) in
# process: quiver's ONNX runtime (bench/onnx_inproc.c) against onnxruntime-node
# (bench/onnx/ort_inproc.js) with 1 and then 2 intra-op threads, back to back, the same input
# for both; every output element compared (within 1e-4). The same measurement as the in-process
# rows of bench/run.sh, without the rest of the benchmark.
#
#   bash bench/onnx/resnet18.sh [BUILD_DIR] [RUNS] [ROUNDS]   (from the repository root;
#                                                            defaults: build, 20, 1)
#
# With ROUNDS > 1 the pair of runs (quiver, then onnxruntime, RUNS calls each) is repeated
# ROUNDS times per thread count, one line per round, then the median of the rounds' p50 and
# min ratios: on a shared machine, load that comes and goes then hits both runtimes alike.
#
# The model is written once by scripts/make_bench_models.py (Debian's python3-torch and
# python3-torchvision) into bench/models/ (gitignored, ~45 MB); onnxruntime-node is installed
# once into bench/onnx/node_modules with `npm ci` from package-lock.json. Timings on a shared
# machine are noisy: compare the ratios, not the milliseconds.
set -euo pipefail

BUILD=${1:-build}
RUNS=${2:-20}
ROUNDS=${3:-1}
MODEL=${BENCH_RESNET:-bench/models/resnet18.onnx}
OUT=bench/out/resnet18
PY=/usr/bin/python3
mkdir -p "$OUT"

if [ ! -f "$MODEL" ]; then
  echo "writing $MODEL (scripts/make_bench_models.py)" >&2
  "$PY" scripts/make_bench_models.py "$(dirname "$MODEL")" >&2
fi
if [ ! -d bench/onnx/node_modules/onnxruntime-node ]; then
  (cd bench/onnx && npm ci --ignore-scripts --no-audit --no-fund) >&2
fi
# The libraries quiver itself links with, from CMake's link line.
lib=$(sed -e 's/.* -o quiver //' -e "s#\\(^\\| \\)libquiver_core\\.a#\\1$BUILD/libquiver_core.a#" \
      "$BUILD/CMakeFiles/quiver.dir/link.txt")
# shellcheck disable=SC2086
cc -std=c11 -O2 -Wall -Wextra -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Isrc \
   bench/onnx_inproc.c $lib -o "$OUT/onnx_inproc"

field() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2}'; }

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

for t in 1 2; do
  p50s=() mins=()
  for ((round = 1; round <= ROUNDS; round++)); do
    # OpenBLAS picks its kernels for this CPU, as onnxruntime does (the environment may pin
    # OPENBLAS_CORETYPE for other programs).
    q=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$OUT/onnx_inproc" "$MODEL" "$t" "$RUNS" "" \
        "$OUT/quiver-t$t.f32" | grep '^ONNX ')
    o=$(cd bench/onnx && node ort_inproc.js "$OLDPWD/$MODEL" "$t" "$RUNS" "" 1,3,224,224 \
        "$OLDPWD/$OUT/ort-t$t.f32" | grep '^ONNX ')
    agree=$("$PY" -c '
import array, sys
def load(p):
    a = array.array("f")
    with open(p, "rb") as f:
        a.frombytes(f.read())
    return a
q, o = load(sys.argv[1]), load(sys.argv[2])
d = max(abs(a - b) for a, b in zip(q, o)) if len(q) == len(o) and q else float("inf")
print(("outputs agree, max |diff| %.1e" if d <= 1e-4 else "OUTPUTS DIFFER, max |diff| %.1e") % d)
' "$OUT/quiver-t$t.f32" "$OUT/ort-t$t.f32")
    goal=$([ "$t" = 1 ] && echo 1.2 || echo 1.3)
    awk -v t="$t" -v q="$(field "$q" p50_us)" -v o="$(field "$o" p50_us)" -v g="$goal" -v a="$agree" \
        -v qm="$(field "$q" min_us)" -v om="$(field "$o" min_us)" \
      'BEGIN {r = q / o; printf "ResNet-18, %d thread(s): quiver p50 %.2f ms, onnxruntime p50 %.2f ms, %.2fx (goal <= %.1fx: %s); min %.2f / %.2f ms = %.2fx; %s\n",
              t, q / 1000, o / 1000, r, g, (r <= g ? "yes" : "no"), qm / 1000, om / 1000, qm / om, a}'
    p50s+=("$(awk -v q="$(field "$q" p50_us)" -v o="$(field "$o" p50_us)" 'BEGIN {print q / o}')")
    mins+=("$(awk -v q="$(field "$q" min_us)" -v o="$(field "$o" min_us)" 'BEGIN {print q / o}')")
  done
  if [ "$ROUNDS" -gt 1 ]; then
    printf 'ResNet-18, %d thread(s), median of %d rounds: p50 ratio %.2fx, min ratio %.2fx (goal <= %s)\n' \
      "$t" "$ROUNDS" "$(printf '%s\n' "${p50s[@]}" | median)" "$(printf '%s\n' "${mins[@]}" | median)" \
      "$([ "$t" = 1 ] && echo 1.2x || echo 1.3x)"
  fi
done
