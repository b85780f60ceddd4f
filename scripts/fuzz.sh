#!/usr/bin/env bash
# Runs the libFuzzer targets of build-fuzz (make build-fuzz) one after another,
# each for FUZZ_SECONDS (default 600), keeping what each finds in
# build-fuzz/corpus/<target> (the committed seeds are read, never written).
# A crash, leak or sanitizer report stops the run with that target's name and
# the reproducer libFuzzer wrote (crash-*, leak-*, oom-*, timeout-*).
#
#   scripts/fuzz.sh                 every target
#   scripts/fuzz.sh kserve route    some of them
# Targets: load (the ONNX loader) and those of tests/fuzz/CMakeLists.txt.
set -u
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-600}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(kserve tfs config route rollout feedback tokens http load)
fi
failed=()
for t in "${targets[@]}"; do
  if [ "$t" = load ]; then
    bin=build-fuzz/tests/onnx/fuzz_load; seeds=tests/onnx/fuzz_corpus
  else
    bin=build-fuzz/tests/fuzz/fuzz_$t; seeds=tests/fuzz/corpus/$t
  fi
  if [ ! -x "$bin" ]; then
    echo "fuzz: $t: $bin not built (make build-fuzz)" >&2
    failed+=("$t"); continue
  fi
  mkdir -p "build-fuzz/corpus/$t" "build-fuzz/artifacts/$t"
  echo "fuzz: $t for ${secs}s"
  "$bin" -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="build-fuzz/artifacts/$t/" "build-fuzz/corpus/$t" "$seeds" \
    > "build-fuzz/fuzz-$t.log" 2>&1
  rc=$?
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)' "build-fuzz/fuzz-$t.log" | tr '\n' ' '
  echo
  if [ $rc -ne 0 ]; then
    echo "fuzz: $t FAILED (exit $rc); log build-fuzz/fuzz-$t.log:" >&2
    grep -E 'ERROR|SUMMARY|Test unit written' "build-fuzz/fuzz-$t.log" | head -5 >&2
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${secs}s each, no failure"
