/* SPDX-License-Identifier: MIT
 *
 * The lifetime of a version's monitor record while another thread reads it:
 * one thread creates and forgets the records of a few versions over and
 * over (a forgotten record nobody holds is freed at once), while others find
 * them (qv_monitor_find_hold), read and record through the pointer, and the
 * monitor's own lookups (feedback, window, summary) run meanwhile. A reader
 * working on a record the forget freed is a use after free: AddressSanitizer
 * reports it in the ASan build and ThreadSanitizer the race under TSan.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "../../../src/monitor/monitor.h"

#define ROUNDS 20000
#define VERSIONS 4
#define READERS 2

struct shared {
    qv_monitor *m;
    atomic_bool stop;
    atomic_long found;
};

static void *forgetter(void *arg)
{
    struct shared *sh = arg;

    for (int i = 0; i < ROUNDS; i++) {
        int64_t v = 1 + i % VERSIONS;
        qv_vstats *s = qv_monitor_version(sh->m, "m", v);
        qv_vstats_request(s, QV_OUTCOME_OK, 1000, 2000, 4000);
        qv_monitor_forget(sh->m, "m", v);
    }
    atomic_store(&sh->stop, true);
    return NULL;
}

static void *reader(void *arg)
{
    struct shared *sh = arg;
    uint64_t count;
    double sum;
    struct qv_window w;
    struct qv_vstats_summary sum_out;

    for (long i = 0; !atomic_load(&sh->stop); i++) {
        int64_t v = 1 + i % VERSIONS;
        qv_vstats *s = qv_monitor_find_hold(sh->m, "m", v);
        if (s != NULL) {
            struct qv_vstats_snap snap;
            qv_vstats_snapshot(s, &snap);
            qv_vstats_request(s, QV_OUTCOME_OK, 1000, 2000, 4000);
            qv_vstats_feedback(s, 1.0);
            qv_monitor_release(sh->m, s);
            atomic_fetch_add(&sh->found, 1);
        }
        qv_monitor_feedback(sh->m, "m", v, 0.5);
        qv_monitor_feedback_get(sh->m, "m", v, &count, &sum);
        qv_monitor_window(sh->m, "m", v, 10.0, &w);
        qv_monitor_summary(sh->m, "m", v, 10.0, &sum_out);
    }
    return NULL;
}

static void test_forget_while_reading(void **state)
{
    struct shared sh;
    pthread_t f, r[READERS];

    (void)state;
    memset(&sh, 0, sizeof(sh));
    assert_int_equal(qv_monitor_create(&sh.m), 0);
    for (int i = 0; i < READERS; i++)
        assert_int_equal(pthread_create(&r[i], NULL, reader, &sh), 0);
    assert_int_equal(pthread_create(&f, NULL, forgetter, &sh), 0);
    pthread_join(f, NULL);
    for (int i = 0; i < READERS; i++)
        pthread_join(r[i], NULL);
    /* Every record was forgotten and every hold given back: none is left. */
    assert_int_equal(qv_monitor_records(sh.m), 0);
    qv_monitor_destroy(sh.m);
}

/* A held record outlives its forget, and goes with the last release. */
static void test_hold_outlives_forget(void **state)
{
    qv_monitor *m;
    qv_vstats *s, *h;
    struct qv_vstats_snap snap;

    (void)state;
    assert_int_equal(qv_monitor_create(&m), 0);
    s = qv_monitor_version(m, "m", 7);
    qv_vstats_request(s, QV_OUTCOME_OK, 1000, 2000, 4000);
    h = qv_monitor_find_hold(m, "m", 7);
    assert_ptr_equal(h, s);
    qv_monitor_forget(m, "m", 7);
    assert_int_equal(qv_monitor_records(m), 1); /* held: still there */
    qv_vstats_snapshot(h, &snap);
    assert_int_equal(snap.outcomes[QV_OUTCOME_OK], 1);
    qv_monitor_release(m, h);
    assert_int_equal(qv_monitor_records(m), 0); /* freed with the last hold */
    assert_null(qv_monitor_find_hold(m, "m", 7));
    qv_monitor_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hold_outlives_forget),
        cmocka_unit_test(test_forget_while_reading),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
