#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The dashboard's own cost: fraud v1 req/s at 32 connections (wrk, bench/post.lua) with
# and without a headless chromium keeping /ui open (it polls the API every 1.5 s and 5 s).
# Runs alternate (off, on, on, off) and the best of each counts, as in bench/run.sh's
# metrics cost. Not run by the tests; needs wrk, chromium and node_modules (npm ci).
#
#   bash bench/ui_cost.sh            (SECONDS_PER_RUN=10 CONNS=32 QUIVER_BIN=build/quiver)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
QUIVER_BIN=${QUIVER_BIN:-$ROOT/build/quiver}
SECS=${SECONDS_PER_RUN:-10}
CONNS=${CONNS:-32}
CHROMIUM=${QV_CHROMIUM:-/usr/bin/chromium}

for need in wrk node "$CHROMIUM" "$QUIVER_BIN"; do
  command -v "$need" >/dev/null 2>&1 || [ -x "$need" ] || { echo "ui_cost: $need is missing" >&2; exit 2; }
done
[ -d node_modules/playwright-core ] || { echo "ui_cost: run npm ci first (playwright-core)" >&2; exit 2; }

TMP=$(mktemp -d /tmp/quiver-ui-cost-XXXXXX)
QPID=""
BPID=""
cleanup() {
  [ -n "$BPID" ] && kill "$BPID" 2>/dev/null || true
  [ -n "$QPID" ] && kill "$QPID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

mkdir -p "$TMP/repo"
cp -r examples/models/fraud "$TMP/repo/fraud"
rm -f "$TMP/repo/fraud/reference.json"
python3 -c 'import json; print(json.dumps({"inputs": [{"name": "features", "datatype": "FP32",
  "shape": [1, 30], "data": [i / 30 for i in range(30)]}]}))' >"$TMP/body.json"

"$QUIVER_BIN" serve --repo "$TMP/repo" --data "$TMP/data" --port 0 --port-file "$TMP/port" \
  >"$TMP/server.log" 2>&1 &
QPID=$!
for _ in $(seq 300); do [ -s "$TMP/port" ] && break; sleep 0.05; done
PORT=$(cat "$TMP/port")
BASE="http://127.0.0.1:$PORT"
for _ in $(seq 300); do curl -sf "$BASE/v2/health/ready" >/dev/null && break; sleep 0.05; done
URL="$BASE/v2/models/fraud/versions/1/infer"

# The dashboard open in headless chromium until killed.
cat >"$TMP/open.mjs" <<EOF
import { chromium } from '$ROOT/node_modules/playwright-core/index.mjs';
const ctx = await chromium.launchPersistentContext('$TMP/profile', { executablePath: '$CHROMIUM',
  headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
const page = await ctx.newPage();
await page.goto('$BASE/ui?model=fraud');
await page.waitForSelector('body[data-ready="1"]');
console.log('open');
process.on('SIGTERM', async () => { await ctx.close(); process.exit(0); });
setInterval(() => {}, 1000);
EOF

run() { # run LABEL: one wrk run; prints req/s
  wrk -t 2 -c "$CONNS" -d "${SECS}s" --timeout 5s --latency -s bench/post.lua "$URL" -- \
    "$TMP/body.json" >"$TMP/wrk-$1.log" 2>&1 || true
  grep '^BENCH ' "$TMP/wrk-$1.log" | tail -n 1 | tr ' ' '\n' | awk -F= '$1 == "rps" {print $2}'
}

run warm >/dev/null
best_off=0
best_on=0
i=0
for which in off on on off; do
  i=$((i + 1))
  if [ "$which" = on ]; then
    node "$TMP/open.mjs" >"$TMP/browser.log" 2>&1 &
    BPID=$!
    for _ in $(seq 200); do grep -q open "$TMP/browser.log" 2>/dev/null && break; sleep 0.1; done
  fi
  rps=$(run "$which-$i")
  echo "| fraud v1, $CONNS conns, dashboard $which | ${rps:-?} req/s |"
  if [ "$which" = on ]; then
    kill "$BPID" 2>/dev/null || true
    wait "$BPID" 2>/dev/null || true
    BPID=""
    awk -v a="${rps:-0}" -v b="$best_on" 'BEGIN { exit !(a > b) }' && best_on=$rps
  else
    awk -v a="${rps:-0}" -v b="$best_off" 'BEGIN { exit !(a > b) }' && best_off=$rps
  fi
done
awk -v on="$best_on" -v off="$best_off" 'BEGIN {
  r = 0
  if (off > 0) r = on / off
  verdict = "not met"
  if (r >= 0.97) verdict = "met"
  printf "dashboard open / closed (best of 2 each): %.0f / %.0f req/s = %.3f (goal >= 0.97: %s)\n", on, off, r, verdict
}'
