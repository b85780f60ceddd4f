-- SPDX-License-Identifier: MIT
-- wrk script for bench/run.sh: POSTs one JSON body file on every request and, at the end,
-- prints one machine-readable line that run.sh parses:
--   BENCH requests=N duration_us=N rps=F p50_us=N p99_us=N non2xx=N errors=N
-- Usage: wrk ... -s bench/post.lua URL -- BODY.json
-- (the body file may also come from the BENCH_BODY environment variable)

local function read_file(path)
  local f = assert(io.open(path, "rb"), "post.lua: cannot open body file " .. tostring(path))
  local s = f:read("*a")
  f:close()
  return s
end

-- Runs in every thread before its request is built, so the body is set in each.
function init(args)
  local path = args[1] or os.getenv("BENCH_BODY")
  assert(path, "post.lua: give the body file after --, or set BENCH_BODY")
  wrk.method = "POST"
  wrk.body = read_file(path)
  wrk.headers["Content-Type"] = "application/json"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d non2xx=%d errors=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
