/* SPDX-License-Identifier: MIT
 *
 * monitor/monitor.h -- per-version measurements, windows and Prometheus text.
 * (Being built; struct qv_window is the contract the router's score reads.)
 */
#ifndef QV_MONITOR_H
#define QV_MONITOR_H

#include "../util/util.h"

/* One version's figures over a window (the difference of two snapshots). */
struct qv_window {
    double seconds;         /* length of the window */
    uint64_t requests;      /* finished requests, any outcome */
    uint64_t ok;            /* answered with success */
    uint64_t errors;        /* failed: bad input excluded, overload and timeout included */
    double error_rate;      /* errors / requests, 0 when no requests */
    double mean_ms, p50_ms, p95_ms, p99_ms; /* total latency */
    double cpu_ms_per_req;  /* CPU time spent in inference per request */
    uint64_t memory_bytes;  /* gauge at the end of the window */
};

#endif /* QV_MONITOR_H */
