-- SPDX-License-Identifier: MIT
-- wrk script for bench/run.sh's overload row: like post.lua (POSTs one JSON body file on every
-- request), but also counts the answers by HTTP status across all threads. It prints the same
-- BENCH line as post.lua, then one STATUS line:
--   BENCH requests=N duration_us=N rps=F p50_us=N p99_us=N non2xx=N errors=N
--   STATUS 200=N 429=N ... connect=N read=N write=N timeout=N
-- Usage: wrk ... -s bench/status.lua URL -- BODY.json
-- Counting needs a response() callback in Lua for every answer, which costs wrk some CPU:
-- use post.lua for throughput rows.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local function read_file(path)
  local f = assert(io.open(path, "rb"), "status.lua: cannot open body file " .. tostring(path))
  local s = f:read("*a")
  f:close()
  return s
end

function init(args)
  local path = args[1] or os.getenv("BENCH_BODY")
  assert(path, "status.lua: give the body file after --, or set BENCH_BODY")
  wrk.method = "POST"
  wrk.body = read_file(path)
  wrk.headers["Content-Type"] = "application/json"
  counts = {}
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d non2xx=%d errors=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
  local total = {}
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for status, n in pairs(c or {}) do
      total[status] = (total[status] or 0) + n
    end
  end
  local keys = {}
  for status in pairs(total) do table.insert(keys, status) end
  table.sort(keys)
  local parts = {}
  for _, status in ipairs(keys) do
    table.insert(parts, string.format("%d=%d", status, total[status]))
  end
  io.write(string.format("STATUS %s connect=%d read=%d write=%d timeout=%d\n",
    table.concat(parts, " "), e.connect, e.read, e.write, e.timeout))
end
