#!/usr/bin/env bash
# Prints one closing line over the ctest runs of the given build directories:
# "tests: N passed, N failed". Exits non-zero when anything failed.
set -u
pass=0; fail=0
for dir in "$@"; do
  log="$dir/Testing/Temporary/LastTest.log"
  [ -f "$log" ] || continue
  p=$(grep -c '^Test Passed\.' "$log" || true)
  f=$(grep -c '^Test Failed\.' "$log" || true)
  # ctest writes "Test Failed." only for failures; count them from the result lines.
  f=$(grep -cE '^Test (Failed|Timeout)' "$log" || true)
  pass=$((pass + p)); fail=$((fail + f))
done
echo "tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
