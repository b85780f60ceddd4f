#!/usr/bin/env bash
# Prints one closing line over the ctest runs of the given build directories,
# "tests: N passed, N failed", and exits non-zero when any test failed or a
# build directory has no test log (its ctest did not run).
set -u
pass=0; fail=0; missing=0
for dir in "$@"; do
  log="$dir/Testing/Temporary/LastTest.log"
  if [ ! -f "$log" ]; then
    echo "summary: $dir: no test log" >&2
    missing=$((missing + 1))
    continue
  fi
  p=$(grep -c '^Test Passed\.' "$log" || true)
  f=$(grep -cE '^Test (Failed|Timeout)' "$log" || true)
  pass=$((pass + p)); fail=$((fail + f))
  # ctest leaves an older run's list of failures behind when a run has none.
  if [ "$f" -gt 0 ] && [ -f "$dir/Testing/Temporary/LastTestsFailed.log" ]; then
    sed "s|^|summary: $dir: failed: |" "$dir/Testing/Temporary/LastTestsFailed.log" >&2
  fi
done
echo "tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$missing" -eq 0 ]
