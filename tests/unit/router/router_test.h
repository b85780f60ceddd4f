/* SPDX-License-Identifier: MIT
 *
 * tests/unit/router/router_test.h -- a fake engine for the router tests: a table of
 * READY versions per test, answered through struct qv_resolver.
 */
#ifndef QV_ROUTER_TEST_H
#define QV_ROUTER_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "router/router.h"

#define FAKE_MAX 32

struct fake_engine {
    int64_t ready[FAKE_MAX]; /* READY versions; 0 ends */
    int n;
};

static inline bool fake_is_ready(void *ud, const char *model, int64_t version)
{
    const struct fake_engine *f = ud;

    (void)model;
    for (int i = 0; i < f->n; i++)
        if (f->ready[i] == version)
            return true;
    return false;
}

static inline int64_t fake_highest(void *ud, const char *model)
{
    const struct fake_engine *f = ud;
    int64_t best = 0;

    (void)model;
    for (int i = 0; i < f->n; i++)
        if (f->ready[i] > best)
            best = f->ready[i];
    return best;
}

static inline void fake_set(struct fake_engine *f, int n, const int64_t *v)
{
    f->n = n;
    for (int i = 0; i < n; i++)
        f->ready[i] = v[i];
}

static inline struct qv_resolver fake_resolver(struct fake_engine *f)
{
    struct qv_resolver res = {.is_ready = fake_is_ready, .highest_ready = fake_highest, .ud = f};
    return res;
}

static inline qv_router *fake_router(struct fake_engine *f)
{
    struct qv_router_config cfg = {.resolver = fake_resolver(f), .feedback_capacity = 0};
    qv_router *r = NULL;

    assert_int_equal(qv_router_create(&cfg, &r), 0);
    return r;
}

#endif /* QV_ROUTER_TEST_H */
