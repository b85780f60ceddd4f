/* SPDX-License-Identifier: MIT
 *
 * bench/micro_router.c -- cost of one qv_router_pick for the weighted, sticky and
 * score policies (3 versions each; sticky with a 16-byte key string), plus pinned
 * and the default, single-threaded, then weighted and sticky with 2 threads picking
 * the same model at once. The resolver is a trivial "every version is READY", so
 * the figures are the router's own cost. The goal is under 1 us per pick. It
 * prints figures and asserts nothing.
 *
 * Build and run from the repository root
 * (bench/run.sh's rows_micro does the same), linked with the core library and the
 * libraries of quiver's own link line, after a build in build/:
 *   cc -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Isrc bench/micro_router.c \
 *      $(sed -e 's/.* -o quiver //' -e 's#libquiver_core.a#build/libquiver_core.a#' \
 *        build/CMakeFiles/quiver.dir/link.txt) -pthread -lm -o /tmp/micro_router
 *   /tmp/micro_router [picks_per_run]
 */
#include "router/router.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static bool all_ready(void *ud, const char *model, int64_t version)
{
    (void)ud;
    (void)model;
    return version > 0;
}

static int64_t highest(void *ud, const char *model)
{
    (void)ud;
    (void)model;
    return 3;
}

struct run {
    qv_router *r;
    const char *model;
    bool keyed;
    uint64_t picks;
    uint64_t ns, cpu_ns;
    int64_t sink;
};

static void *pick_loop(void *p)
{
    struct run *run = p;
    char key[17] = "user-00000000000";
    struct qv_pick out;
    uint64_t t0 = qv_now_ns(), c0 = qv_thread_cpu_ns();

    for (uint64_t i = 0; i < run->picks; i++) {
        struct qv_pick_in in = {0};
        if (run->keyed) {
            /* A different key per pick, as from distinct users. */
            uint64_t x = i;
            for (int k = 15; k >= 5 && x > 0; k--, x /= 10)
                key[k] = (char)('0' + x % 10);
            in.has_key = true;
            in.key = key;
        }
        qv_router_pick(run->r, run->model, &in, &out);
        run->sink += out.version;
    }
    run->ns = qv_now_ns() - t0;
    run->cpu_ns = qv_thread_cpu_ns() - c0;
    return NULL;
}

static void bench(qv_router *r, const char *model, bool keyed, int threads, uint64_t picks)
{
    struct run runs[2];
    pthread_t th[2];
    uint64_t ns = 0, cpu = 0;

    for (int i = 0; i < threads; i++) {
        runs[i] = (struct run){.r = r, .model = model, .keyed = keyed, .picks = picks};
        pthread_create(&th[i], NULL, pick_loop, &runs[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        ns += runs[i].ns;
        cpu += runs[i].cpu_ns;
    }
    printf("%-10s threads=%d picks=%" PRIu64 "  wall %.1f ns/pick  cpu %.1f ns/pick\n", model,
           threads, picks, (double)ns / (double)(picks * threads),
           (double)cpu / (double)(picks * threads));
}

int main(int argc, char **argv)
{
    struct qv_router_config cfg = {.resolver = {.is_ready = all_ready, .highest_ready = highest}};
    struct qv_diag d = {{0}};
    uint64_t picks = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
    qv_router *r = NULL;
    static const char *const routes[][2] = {
        {"weighted", "{\"policy\": \"weighted\", \"labels\": {\"stable\": 1, \"canary\": 2},"
                     " \"weights\": {\"stable\": 85, \"canary\": 10, \"3\": 5}}"},
        {"sticky", "{\"policy\": \"sticky\", \"weights\": {\"1\": 85, \"2\": 10, \"3\": 5},"
                   " \"sticky\": {\"header\": \"X-User-Id\"}}"},
        {"score", "{\"policy\": \"score\", \"weights\": {\"1\": 34, \"2\": 33, \"3\": 33}}"},
        {"pinned", "{\"policy\": \"pinned\", \"target\": 2}"},
    };

    qv_log_set_level(QV_LOG_WARN);
    qv_router_create(&cfg, &r);
    for (size_t i = 0; i < QV_ARRAY_LEN(routes); i++)
        if (qv_router_set_route(r, routes[i][0], routes[i][1], NULL, &d) != 0) {
            fprintf(stderr, "%s: %s\n", routes[i][0], d.msg);
            return 1;
        }
    bench(r, "weighted", false, 1, picks);
    bench(r, "sticky", true, 1, picks);
    bench(r, "score", false, 1, picks);
    bench(r, "pinned", false, 1, picks);
    bench(r, "none", false, 1, picks); /* no route: the default */
    bench(r, "weighted", false, 2, picks);
    bench(r, "sticky", true, 2, picks);
    qv_router_destroy(r);
    return 0;
}
