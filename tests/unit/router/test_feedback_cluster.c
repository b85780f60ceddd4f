/* SPDX-License-Identifier: MIT
 *
 * The feedback ring in cluster mode: entries exported once each, only when old enough for
 * their outcome to be recorded; a request another node answered (the feedback source) is
 * taken into the ring by lookup and claim, and claimed once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "router/router.h"

static int source_calls;

static int source(void *ud, const char *id, char *model_out, int64_t *version, int *cls)
{
    (void)ud;
    source_calls++;
    if (strcmp(id, "remote-1") != 0)
        return -1;
    snprintf(model_out, QV_ROUTER_MODEL_MAX, "fraud");
    *version = 7;
    *cls = 1;
    return 0;
}

static void test_export_once_when_settled(void **state)
{
    struct qv_router_config cfg = {.feedback_capacity = 64};
    struct qv_router_fb_entry out[16];
    qv_router *r = NULL;
    size_t n;

    (void)state;
    qv_router_create(&cfg, &r);
    assert_int_equal(qv_router_remember(r, "a", "fraud", 1), 0);
    assert_int_equal(qv_router_remember(r, "b", "fraud", 2), 0);
    assert_int_equal(qv_router_set_outcome(r, "b", 1), 0);
    /* Too young for a cutoff in the past: nothing yet, and nothing lost. */
    assert_int_equal(qv_router_feedback_export(r, 1, out, 16), 0);
    n = qv_router_feedback_export(r, UINT64_MAX / 2, out, 16);
    assert_int_equal(n, 2);
    assert_string_equal(out[0].id, "a");
    assert_int_equal(out[0].cls, -1);
    assert_string_equal(out[1].id, "b");
    assert_int_equal(out[1].version, 2);
    assert_int_equal(out[1].cls, 1);
    /* Exported once. */
    assert_int_equal(qv_router_feedback_export(r, UINT64_MAX / 2, out, 16), 0);
    /* A full wrap between exports skips what was overwritten, never more than the ring. */
    for (int i = 0; i < 200; i++) {
        char id[16];
        snprintf(id, sizeof(id), "w%d", i);
        assert_int_equal(qv_router_remember(r, id, "fraud", 1), 0);
    }
    n = 0;
    for (size_t k; (k = qv_router_feedback_export(r, UINT64_MAX / 2, out, 16)) > 0;)
        n += k;
    assert_true(n > 0 && n <= 64);
    qv_router_destroy(r);
}

static void test_source_imported_and_claimed_once(void **state)
{
    char model[QV_ROUTER_MODEL_MAX];
    int64_t v = 0;
    int cls = -1;
    qv_router *r = NULL;

    (void)state;
    qv_router_create(NULL, &r);
    assert_int_equal(qv_router_lookup_outcome(r, "remote-1", model, &v, &cls), QV_ENOENT);
    qv_router_set_feedback_source(r, source, NULL);
    assert_int_equal(qv_router_lookup_outcome(r, "remote-1", model, &v, &cls), 0);
    assert_string_equal(model, "fraud");
    assert_int_equal(v, 7);
    assert_int_equal(cls, 1);
    assert_int_equal(qv_router_feedback_claim(r, "remote-1", "fraud"), 0);
    assert_int_equal(qv_router_feedback_claim(r, "remote-1", "fraud"), QV_ECONFLICT);
    source_calls = 0;
    assert_int_equal(qv_router_feedback_claim(r, "unknown", "fraud"), QV_ENOENT);
    assert_int_equal(source_calls, 1);
    qv_router_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_export_once_when_settled),
        cmocka_unit_test(test_source_imported_and_claimed_once),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
