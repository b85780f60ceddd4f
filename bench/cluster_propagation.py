#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Route change visible on every node: PUT a route on the first node, poll the others until
they serve it, N times; prints p50/p99/max of the time until the last node has it (and the
same as one `BENCH_PROPAGATION ...` line for bench/cluster.sh).

    bench/cluster_propagation.py MODEL V1 V2 URL1 URL2 [URL3 ...] [--changes 100]

Use it against `make cluster` (deploy/local-cluster.sh prints the node URLs). The figure
includes the polling interval (2 ms) and the HTTP round trips.
"""
import json
import sys
import time
import urllib.request


def req(method, url, body=None):
    data = body.encode() if body is not None else None
    r = urllib.request.Request(url, data=data, method=method,
                               headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(r, timeout=10) as resp:
        return resp.status, resp.read().decode()


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    changes = 100
    if "--changes" in sys.argv:
        changes = int(sys.argv[sys.argv.index("--changes") + 1])
        args.remove(str(changes))
    model, v1, v2, urls = args[0], args[1], args[2], args[3:]
    lat = []
    for i in range(changes):
        w = 1 + i % 98
        doc = json.dumps({"policy": "weighted", "weights": {v1: w, v2: 100 - w}})
        t0 = time.monotonic()
        req("PUT", f"{urls[0]}/v2/models/{model}/route", doc)
        for u in urls[1:]:
            while True:
                _, body = req("GET", f"{u}/v2/models/{model}/route")
                if json.loads(body).get("weights", {}).get(v1) == w:
                    break
                time.sleep(0.002)
        lat.append(time.monotonic() - t0)
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
    print(f"route changes: {changes}; visible on all {len(urls)} nodes: "
          f"p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, max {lat[-1] * 1000:.1f} ms")
    print(f"BENCH_PROPAGATION changes={changes} nodes={len(urls)} p50_ms={p(0.5):.1f} "
          f"p99_ms={p(0.99):.1f} max_ms={lat[-1] * 1000:.1f}")


main()
