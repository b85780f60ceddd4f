/* SPDX-License-Identifier: MIT
 *
 * The feedback join: request id -> (model, version), bounded FIFO with eviction.
 */
#include <pthread.h>
#include <stdio.h>

#include "router_test.h"
#include "router/router_int.h"

static void test_remember_lookup(void **state)
{
    struct qv_router_config cfg = {.feedback_capacity = 0};
    char model[QV_ROUTE_NAME_MAX];
    char id[QV_ROUTER_ID_MAX + 8];
    int64_t v = 0;
    qv_router *r;

    (void)state;
    assert_int_equal(qv_router_create(&cfg, &r), 0);
    assert_int_equal(qv_router_lookup(r, "nope", model, &v), QV_ENOENT);
    assert_int_equal(qv_router_remember(r, "req-1", "fraud", 2), 0);
    assert_int_equal(qv_router_remember(r, "req-2", "churn", 5), 0);
    assert_int_equal(qv_router_lookup(r, "req-1", model, &v), 0);
    assert_string_equal(model, "fraud");
    assert_int_equal(v, 2);
    assert_int_equal(qv_router_lookup(r, "req-2", NULL, &v), 0);
    assert_int_equal(v, 5);
    /* The same id again: the newest answer wins. */
    assert_int_equal(qv_router_remember(r, "req-1", "fraud", 3), 0);
    assert_int_equal(qv_router_lookup(r, "req-1", model, &v), 0);
    assert_int_equal(v, 3);
    /* Bad ids. */
    memset(id, 'x', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    assert_int_equal(qv_router_remember(r, id, "fraud", 1), QV_EINVAL);
    assert_int_equal(qv_router_remember(r, "", "fraud", 1), QV_EINVAL);
    assert_int_equal(qv_router_remember(r, "a", "", 1), QV_EINVAL);
    assert_int_equal(qv_router_lookup(r, id, model, &v), QV_ENOENT);
    qv_router_destroy(r);
}

static void test_eviction(void **state)
{
    struct qv_router_config cfg = {.feedback_capacity = 1000};
    char id[32];
    int64_t v = 0;
    qv_router *r;

    (void)state;
    assert_int_equal(qv_router_create(&cfg, &r), 0);
    for (int i = 0; i < 2500; i++) {
        snprintf(id, sizeof(id), "req-%d", i);
        assert_int_equal(qv_router_remember(r, id, "m", i + 1), 0);
    }
    /* Exactly the last 1000 are known. */
    for (int i = 0; i < 2500; i++) {
        snprintf(id, sizeof(id), "req-%d", i);
        int err = qv_router_lookup(r, id, NULL, &v);
        if (i < 1500) {
            assert_int_equal(err, QV_ENOENT);
        } else {
            assert_int_equal(err, 0);
            assert_int_equal(v, i + 1);
        }
    }
    qv_router_destroy(r);
}

#define N_WRITERS 4
#define PER_WRITER 20000

struct writer_arg {
    qv_router *r;
    int t, bad;
};

static void *writer(void *p)
{
    struct writer_arg *a = p;
    char id[32];
    int64_t v;

    for (int i = 0; i < PER_WRITER; i++) {
        snprintf(id, sizeof(id), "t%d-%d", a->t, i);
        if (qv_router_remember(a->r, id, "m", a->t * PER_WRITER + i + 1) != 0)
            a->bad++;
        /* The entry just written is there: the capacity exceeds all writes together,
         * so nothing is evicted in this test. */
        if (qv_router_lookup(a->r, id, NULL, &v) != 0 || v != a->t * PER_WRITER + i + 1)
            a->bad++;
    }
    return NULL;
}

/* One id sent again and again: the newest answer wins, and the ring keeps
 * working for other ids while it wraps many times over. */
static void test_repeated_id(void **state)
{
    struct qv_router_config cfg = {.feedback_capacity = 1000};
    int64_t v = 0;
    qv_router *r;

    (void)state;
    assert_int_equal(qv_router_create(&cfg, &r), 0);
    for (int i = 0; i < 5000; i++)
        assert_int_equal(qv_router_remember(r, "same", "m", i % 3 + 1), 0);
    assert_int_equal(qv_router_lookup(r, "same", NULL, &v), 0);
    assert_int_equal(v, 4999 % 3 + 1);
    assert_int_equal(qv_router_remember(r, "other", "m", 7), 0);
    for (int i = 0; i < 998; i++)
        assert_int_equal(qv_router_remember(r, "same", "m", 2), 0);
    /* "other" is one of the last 1000 entries written; "same" too. */
    assert_int_equal(qv_router_lookup(r, "other", NULL, &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(qv_router_lookup(r, "same", NULL, &v), 0);
    assert_int_equal(v, 2);
    qv_router_destroy(r);
}

static void test_concurrent(void **state)
{
    struct qv_router_config cfg = {.feedback_capacity = 2 * N_WRITERS * PER_WRITER};
    struct writer_arg args[N_WRITERS];
    pthread_t th[N_WRITERS];
    qv_router *r;

    (void)state;
    assert_int_equal(qv_router_create(&cfg, &r), 0);
    for (int i = 0; i < N_WRITERS; i++) {
        args[i] = (struct writer_arg){.r = r, .t = i};
        assert_int_equal(pthread_create(&th[i], NULL, writer, &args[i]), 0);
    }
    for (int i = 0; i < N_WRITERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].bad, 0);
    }
    qv_router_destroy(r);
}

/* Ids chosen to share a bucket under the old unkeyed hash (FNV-1a, what an attacker
 * can compute) spread out under the ring's random key. */
static void test_unkeyed_collisions_spread(void **state)
{
    struct qv_router_config cfg = {.feedback_capacity = 1000};
    char id[32];
    int found = 0;
    qv_router *r;

    (void)state;
    assert_int_equal(qv_router_create(&cfg, &r), 0);
    for (int i = 0; found < 200 && i < 10000000; i++) {
        snprintf(id, sizeof(id), "flood-%d", i);
        if ((qv_hash64(id, strlen(id), 0) & 1023) != 7)
            continue;
        assert_int_equal(qv_router_remember(r, id, "m", 1), 0);
        found++;
    }
    assert_int_equal(found, 200);
    /* 200 ids in 1024 buckets by chance: a chain of 8 has odds far below 1e-6. */
    assert_true(qv__router_feedback_longest_chain(r) < 8);
    qv_router_destroy(r);
}

/* Even someone who knows the key cannot make a chain longer than the cap: the
 * oldest entry of a full chain goes, the newest are found. */
static void test_chain_cap(void **state)
{
    struct qv_router_config cfg = {.feedback_capacity = 1000};
    struct qv_sipkey key = {0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull};
    char ids[100][32];
    int found = 0;
    int64_t v;
    qv_router *r;

    (void)state;
    assert_int_equal(qv_router_create(&cfg, &r), 0);
    qv__router_feedback_set_key(r, &key);
    for (int i = 0; found < 100 && i < 10000000; i++) {
        snprintf(ids[found], sizeof(ids[found]), "c-%d", i);
        if ((qv_siphash13(&key, ids[found], strlen(ids[found])) & 1023) != 3)
            continue;
        assert_int_equal(qv_router_remember(r, ids[found], "m", found + 1), 0);
        found++;
    }
    assert_int_equal(found, 100);
    assert_true(qv__router_feedback_longest_chain(r) <= 16);
    assert_int_equal(qv_router_lookup(r, ids[99], NULL, &v), 0);
    assert_int_equal(v, 100);
    assert_int_equal(qv_router_lookup(r, ids[0], NULL, &v), QV_ENOENT);
    qv_router_destroy(r);
}

/* One feedback per request id: the first is accepted, later ones conflict; a new
 * request under the same id can be scored again. */
static void test_feedback_claim_once(void **state)
{
    struct qv_router_config cfg = {.feedback_capacity = 0};
    qv_router *r;

    (void)state;
    assert_int_equal(qv_router_create(&cfg, &r), 0);
    assert_int_equal(qv_router_remember(r, "req-1", "m", 2), 0);
    assert_int_equal(qv_router_feedback_claim(r, "req-1", "other"), QV_ENOENT);
    assert_int_equal(qv_router_feedback_claim(r, "req-1", "m"), 0);
    assert_int_equal(qv_router_feedback_claim(r, "req-1", "m"), QV_ECONFLICT);
    assert_int_equal(qv_router_feedback_claim(r, "nope", "m"), QV_ENOENT);
    assert_int_equal(qv_router_remember(r, "req-1", "m", 3), 0);
    assert_int_equal(qv_router_feedback_claim(r, "req-1", "m"), 0);
    qv_router_destroy(r);
}

struct claimer {
    qv_router *r;
    int won;
};

static void *claimer(void *p)
{
    struct claimer *c = p;
    char id[32];

    for (int i = 0; i < 2000; i++) {
        snprintf(id, sizeof(id), "c-%d", i);
        if (qv_router_feedback_claim(c->r, id, "m") == 0)
            c->won++;
    }
    return NULL;
}

/* Threads racing to give feedback for the same ids: each id is accepted exactly once,
 * while other threads keep remembering new requests on every shard. */
static void test_claim_race(void **state)
{
    struct qv_router_config cfg = {.feedback_capacity = 0};
    struct claimer c[4];
    pthread_t th[4];
    char id[32];
    qv_router *r;
    int total = 0;

    (void)state;
    assert_int_equal(qv_router_create(&cfg, &r), 0);
    for (int i = 0; i < 2000; i++) {
        snprintf(id, sizeof(id), "c-%d", i);
        assert_int_equal(qv_router_remember(r, id, "m", 1), 0);
    }
    for (int i = 0; i < 4; i++) {
        c[i] = (struct claimer){.r = r};
        assert_int_equal(pthread_create(&th[i], NULL, claimer, &c[i]), 0);
    }
    for (int i = 0; i < 2000; i++) {
        snprintf(id, sizeof(id), "other-%d", i);
        assert_int_equal(qv_router_remember(r, id, "m", 2), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += c[i].won;
    }
    assert_int_equal(total, 2000);
    qv_router_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_remember_lookup),
        cmocka_unit_test(test_eviction),
        cmocka_unit_test(test_repeated_id),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_unkeyed_collisions_spread),
        cmocka_unit_test(test_chain_cap),
        cmocka_unit_test(test_feedback_claim_once),
        cmocka_unit_test(test_claim_race),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
