-- SPDX-License-Identifier: MIT
-- wrk script for bench/rows_binary.sh: POSTs one body file made of a JSON header and raw
-- tensor bytes (KServe v2 / Triton binary tensor data extension) on every request, with the
-- header's length in Inference-Header-Content-Length, and prints the same BENCH line as
-- bench/post.lua:
--   BENCH requests=N duration_us=N rps=F p50_us=N p99_us=N non2xx=N errors=N
-- Usage: wrk ... -s bench/post_binary.lua URL -- BODY.bin JSON_HEADER_LENGTH

local function read_file(path)
  local f = assert(io.open(path, "rb"), "post_binary.lua: cannot open body file " .. tostring(path))
  local s = f:read("*a")
  f:close()
  return s
end

function init(args)
  assert(args[1] and args[2], "post_binary.lua: give BODY.bin and the JSON header length after --")
  wrk.method = "POST"
  wrk.body = read_file(args[1])
  wrk.headers["Content-Type"] = "application/octet-stream"
  wrk.headers["Inference-Header-Content-Length"] = args[2]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d non2xx=%d errors=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
