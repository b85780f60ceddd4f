#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian packages quiver needs, for one purpose: run, test, bench
# or models (the generator scripts). Idempotent: apt-get runs only when a
# package is missing. Must run as root on Debian 12.
set -euo pipefail

build=(build-essential cmake pkg-config libmicrohttpd-dev libjansson-dev libsqlite3-dev
       libssl-dev libxgboost-dev libopenblas-dev libprotobuf-c-dev protobuf-c-compiler
       libonnx-dev libcurl4-openssl-dev libcmocka-dev libpq-dev curl ca-certificates
       zlib1g-dev libgrpc-dev)
test=(prometheus libonnx-testdata clang libclang-rt-14-dev systemd man-db python3 chromium nodejs npm
      postgresql-15 python3-yaml python3-grpcio python3-grpc-tools)
bench=(wrk nghttp2-client nginx-light gunicorn python3-flask python3-xgboost python3-numpy nodejs npm python3-torch python3-torchvision
       strace postgresql-15 python3-grpcio python3-grpc-tools)
cluster=(postgresql-15 nginx-light)
models=(python3-xgboost python3-sklearn python3-numpy python3-torch python3-onnx)

want=("${build[@]}")
for purpose in "$@"; do
  case "$purpose" in
    run) ;;
    test) want+=("${test[@]}") ;;
    bench) want+=("${bench[@]}") ;;
    models) want+=("${models[@]}") ;;
    cluster) want+=("${cluster[@]}") ;;
    *) echo "install-deps: unknown purpose '$purpose' (run, test, bench, models, cluster)" >&2; exit 2 ;;
  esac
done

# The browser tests' tools (playwright-core, axe-core) come from npm, pinned by
# the committed package-lock.json, into node_modules at the repository root.
npm_ci() {
  local root
  root="$(cd "$(dirname "$0")/.." && pwd)"
  if [ -f "$root/package-lock.json" ] && command -v npm >/dev/null 2>&1 &&
     ! cmp -s "$root/package-lock.json" "$root/node_modules/.quiver-lock" 2>/dev/null; then
    echo "install-deps: npm ci in $root (playwright-core, axe-core)"
    (cd "$root" && npm ci --no-audit --no-fund --loglevel=error &&
     cp package-lock.json node_modules/.quiver-lock)
  fi
}

missing=()
for p in "${want[@]}"; do
  if [ "$p" = nodejs ] || [ "$p" = npm ]; then
    command -v "${p/nodejs/node}" >/dev/null 2>&1 && continue
  fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
want_npm=0
for purpose in "$@"; do [ "$purpose" = test ] && want_npm=1; done
if [ ${#missing[@]} -eq 0 ]; then
  [ $want_npm -eq 1 ] && npm_ci
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root or install them" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
[ $want_npm -eq 1 ] && npm_ci
exit 0
