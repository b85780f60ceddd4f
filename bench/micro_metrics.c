/* SPDX-License-Identifier: MIT
 *
 * bench/micro_metrics.c -- cost of recording one request in the monitor
 * (qv_vstats_request), single-threaded and with 2 threads recording into the
 * same version at once. The goal is under 100 ns per call. It prints figures
 * and asserts nothing.
 *
 * Build and run from the repository root
 * (bench/run.sh's rows_micro does the same), linked with the core library and the
 * libraries of quiver's own link line, after a build in build/:
 *   cc -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Isrc bench/micro_metrics.c \
 *      $(sed -e 's/.* -o quiver //' -e 's#libquiver_core.a#build/libquiver_core.a#' \
 *        build/CMakeFiles/quiver.dir/link.txt) -pthread -lm -o /tmp/micro_metrics
 *   /tmp/micro_metrics [calls_per_thread]
 */
#include "monitor/monitor.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

struct run {
    qv_vstats *s;
    uint64_t calls;
    uint64_t ns;     /* wall time of this thread's loop */
    uint64_t cpu_ns; /* CPU time of this thread's loop */
};

static void *record_loop(void *p)
{
    struct run *r = p;
    uint64_t x = 0x9e3779b97f4a7c15ull, t0, c0;

    t0 = qv_now_ns();
    c0 = qv_thread_cpu_ns();
    for (uint64_t i = 0; i < r->calls; i++) {
        /* Latencies spread over the buckets (about 10 us to 1 s), as in real
         * traffic, so that bucket search and cache misses are not flattered. */
        x = qv_mix64(x + i);
        qv_vstats_request(r->s, (x & 63) == 0 ? QV_OUTCOME_BACKEND : QV_OUTCOME_OK,
                          10000 + (x >> 44), 10000 + ((x >> 20) & 0xfffff) * 64, 20000 + (x >> 34));
    }
    r->cpu_ns = qv_thread_cpu_ns() - c0;
    r->ns = qv_now_ns() - t0;
    return NULL;
}

struct result {
    double cpu;  /* mean CPU ns per call of one thread */
    double wall; /* mean wall ns per call of one thread */
};

/* Runs `threads` threads of `calls` each on one version. CPU time is the
 * figure to read: on a busy machine wall time also counts the time a thread
 * waited for a core. */
static struct result bench(qv_monitor *m, int threads, uint64_t calls, const char *model)
{
    pthread_t th[8];
    struct run runs[8];
    struct result res = {0.0, 0.0};

    for (int t = 0; t < threads; t++) {
        runs[t].s = qv_monitor_version(m, model, 1);
        runs[t].calls = calls;
        if (pthread_create(&th[t], NULL, record_loop, &runs[t]) != 0) {
            fprintf(stderr, "micro_metrics: cannot start a thread\n");
            exit(1);
        }
    }
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        res.cpu += (double)runs[t].cpu_ns / (double)runs[t].calls / threads;
        res.wall += (double)runs[t].ns / (double)runs[t].calls / threads;
    }
    return res;
}

int main(int argc, char **argv)
{
    uint64_t calls = argc > 1 ? strtoull(argv[1], NULL, 10) : 5000000;
    struct qv_vstats_snap sn;
    qv_monitor *m = NULL;
    struct result one, two;
    uint64_t snap_t0;

    if (calls == 0)
        calls = 1;
    qv_monitor_create(&m);
    (void)bench(m, 1, calls / 10 + 1, "warmup");
    one = bench(m, 1, calls, "one");
    two = bench(m, 2, calls, "two");

    snap_t0 = qv_now_ns();
    for (int i = 0; i < 1000; i++)
        qv_vstats_snapshot(qv_monitor_version(m, "two", 1), &sn);
    printf("qv_vstats_request, 1 thread:  %6.1f ns/call CPU (%6.1f wall); goal < 100 ns\n", one.cpu,
           one.wall);
    printf("qv_vstats_request, 2 threads: %6.1f ns/call CPU (%6.1f wall) per thread\n", two.cpu,
           two.wall);
    printf("qv_vstats_snapshot: %.1f us (reader side, not on the hot path)\n",
           (double)(qv_now_ns() - snap_t0) / 1000.0 / 1000.0);
    printf("check: %" PRIu64 " requests recorded with 2 threads (want %" PRIu64 ")\n",
           sn.outcomes[QV_OUTCOME_OK] + sn.outcomes[QV_OUTCOME_BACKEND], 2 * calls);
    qv_monitor_destroy(m);
    return 0;
}
