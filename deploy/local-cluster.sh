#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A local quiver cluster in one command (`make cluster`): a throwaway PostgreSQL, three quiver
# nodes sharing it, and nginx load-balancing over them, all on 127.0.0.1. Prints the URLs and
# runs until Ctrl-C (or SIGTERM), then stops everything and removes the temp directory.
#
#   deploy/local-cluster.sh QUIVER_BIN REPO_DIR
#
# Environment: CLUSTER_PORT (nginx's port, default 8080), CLUSTER_NODES (default 3),
# CLUSTER_DIR (the temp directory to use; default a new one under /tmp).
set -euo pipefail

bin=${1:?usage: local-cluster.sh QUIVER_BIN REPO_DIR}
repo=${2:?usage: local-cluster.sh QUIVER_BIN REPO_DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
port=${CLUSTER_PORT:-8080}
nodes=${CLUSTER_NODES:-3}
dir=${CLUSTER_DIR:-$(mktemp -d /tmp/quiver-cluster-XXXXXX)}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
repo=$(cd "$repo" && pwd)
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx" ] || { echo "local-cluster: nginx not found; install nginx-light" >&2; exit 1; }

pids=()
ngx_pid=""
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "local-cluster: stopping"
  [ -n "$ngx_pid" ] && kill "$ngx_pid" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "$ngx_pid" ] && wait "$ngx_pid" 2>/dev/null || true
  bash "$here/tests/cluster/pg.sh" stop "$dir/pg" || true
  rm -rf "$dir"
}
trap cleanup INT TERM EXIT

chmod 0755 "$dir" # the PostgreSQL user (nobody, when run as root) must reach $dir/pg
mkdir -p "$dir/pg"
url=$(bash "$here/tests/cluster/pg.sh" start "$dir/pg")

upstream=""
for i in $(seq 1 "$nodes"); do
  mkdir -p "$dir/n$i"
  "$bin" serve --repo "$repo" --data "$dir/n$i" --store "$url" --node-name "n$i" \
    --port 0 --port-file "$dir/n$i/port" >"$dir/n$i/server.log" 2>&1 &
  pids+=($!)
done
for i in $(seq 1 "$nodes"); do
  for _ in $(seq 1 600); do
    [ -s "$dir/n$i/port" ] && break
    kill -0 "${pids[$((i-1))]}" 2>/dev/null || { cat "$dir/n$i/server.log" >&2; exit 1; }
    sleep 0.1
  done
  [ -s "$dir/n$i/port" ] || { echo "local-cluster: node n$i did not start" >&2; exit 1; }
  upstream+="    server 127.0.0.1:$(cat "$dir/n$i/port");"$'\n'
done

mkdir -p "$dir/nginx/logs"
cat >"$dir/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $dir/nginx/body;
  proxy_temp_path $dir/nginx/proxy;
  fastcgi_temp_path $dir/nginx/fastcgi;
  uwsgi_temp_path $dir/nginx/uwsgi;
  scgi_temp_path $dir/nginx/scgi;
  client_max_body_size 16m;
  upstream quiver {
$upstream    keepalive 32;
  }
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://quiver;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout;
    }
  }
}
CONF
"$nginx" -p "$dir/nginx" -c "$dir/nginx/nginx.conf" &
ngx_pid=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/v2/health/ready" >/dev/null 2>&1 && break
  kill -0 "$ngx_pid" 2>/dev/null || { cat "$dir/nginx/logs/error.log" >&2; exit 1; }
  sleep 0.1
done

echo "local-cluster: ready (state in $dir)"
echo "  load balancer (nginx): http://127.0.0.1:$port"
for i in $(seq 1 "$nodes"); do
  echo "  node n$i:              http://127.0.0.1:$(cat "$dir/n$i/port")   log: $dir/n$i/server.log"
done
echo "  PostgreSQL:            $url"
echo "Ctrl-C stops everything."
wait "$ngx_pid"
