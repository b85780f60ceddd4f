/* SPDX-License-Identifier: MIT
 *
 * The artifact checks of the xgboost backend: the UBJSON structure walk, the
 * reason cleaning, and the child-process check (a checker killed by a signal,
 * one that hangs past its deadline, verdicts cached by SHA-256). The checker
 * is a small shell script standing in for `quiver model check`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend/backend.h"
#include "backend/ubj_check.h"

static int ubj(const char *s, size_t n)
{
    struct qv_diag d = {{0}};

    return qv_ubj_check((const unsigned char *)s, n, &d);
}

#define UBJ(lit) ubj(lit, sizeof(lit) - 1)

static void test_ubj_valid(void **state)
{
    (void)state;
    assert_int_equal(UBJ("{L\0\0\0\0\0\0\0\1aSU\2hi}"), QV_OK);
    assert_int_equal(UBJ("{i\1a[$d#U\2\0\0\0\0\0\0\0\0}"), QV_OK);
    assert_int_equal(ubj("[#U\3i\1TZ", 8), QV_OK);
    assert_int_equal(UBJ("[[[]]]"), QV_OK);
    assert_int_equal(UBJ("{U\1k{U\1jD\0\0\0\0\0\0\0\0}}"), QV_OK);
}

static void test_ubj_malformed(void **state)
{
    char deep[400];

    (void)state;
    assert_int_equal(ubj("", 0), QV_EINVAL);
    /* A string length past the end, a negative one, an 8 GiB one. */
    assert_int_equal(UBJ("{L\0\0\0\0\0\0\0\x09\x61}"), QV_EINVAL);
    assert_int_equal(UBJ("Si\xff"), QV_EINVAL);
    assert_int_equal(UBJ("SL\0\0\0\2\0\0\0\0abc"), QV_EINVAL);
    /* A typed-array count whose size overflows, or is past the end. */
    assert_int_equal(UBJ("[$D#L\x0f\xff\xff\xff\xff\xff\xff\xff"), QV_EINVAL);
    assert_int_equal(UBJ("[$d#U\3\0\0\0\0"), QV_EINVAL);
    /* A count that is not an integer, a typed container without a count. */
    assert_int_equal(UBJ("[#d\0\0\0\0"), QV_EINVAL);
    assert_int_equal(UBJ("[$i]"), QV_EINVAL);
    /* Unknown markers, unterminated containers, trailing bytes. */
    assert_int_equal(UBJ("{U\1kq}"), QV_EINVAL);
    assert_int_equal(UBJ("[[]"), QV_EINVAL);
    assert_int_equal(UBJ("[]]"), QV_EINVAL);
    /* Nesting past the limit. */
    memset(deep, '[', 200);
    memset(deep + 200, ']', 200);
    assert_int_equal(ubj(deep, sizeof(deep)), QV_EINVAL);
    assert_int_equal(ubj(deep + 200 - QV_UBJ_MAX_DEPTH, 2 * QV_UBJ_MAX_DEPTH), QV_OK);
}

static void test_reason_clean(void **state)
{
    char a[] = "cannot load: [1] \xff\xfe bytes \x1b[31m\xc3\xa9t\xc3\xa9\nStack trace:\n  [bt] 0";
    char b[] = "\xe2\x82\xac ok \xed\xa0\x80 \xf0\x9f\x98\x80";

    (void)state;
    qv_reason_clean(a);
    assert_string_equal(a, "cannot load: [1] ?? bytes ?[31m\xc3\xa9t\xc3\xa9");
    qv_reason_clean(b);
    assert_string_equal(b, "\xe2\x82\xac ok ??? \xf0\x9f\x98\x80");
}

#ifdef QV_WITH_XGBOOST
static char dir[] = "/tmp/qv-check-XXXXXX";
static char model[600], counter[600];

/* A checker script: counts its runs, then runs 'body'. The cache of
 * verdicts is kept when 'keep_cache'. */
static void checker_script(const char *body, bool keep_cache)
{
    char path[600];
    FILE *f;

    snprintf(path, sizeof(path), "%s/checker.sh", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "#!/bin/sh\necho run >> '%s'\n%s\n", counter, body);
    fclose(f);
    assert_int_equal(chmod(path, 0755), 0);
    qv_xgb_set_checker_path(path);
    if (!keep_cache)
        qv_xgb_check_cache_clear();
    unlink(counter);
}

static void checker(const char *body)
{
    checker_script(body, false);
}

static int runs(void)
{
    FILE *f = fopen(counter, "r");
    int n = 0, c;

    if (f == NULL)
        return 0;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static int load(const char *timeout_s, char *reason, size_t cap)
{
    const struct qv_backend *be = qv_backend_find("xgboost");
    struct qv_kv kv[] = {{"artifact_check_timeout_s", timeout_s}};
    struct qv_backend_params p = {.version_dir = dir, .threads = 1, .params = kv,
                                  .n_params = timeout_s ? 1 : 0};
    struct qv_diag d = {{0}};
    void *st = NULL;
    int err = qv_backend_load(be, model, &p, &st, &d);

    snprintf(reason, cap, "%s", d.msg);
    qv_backend_unload(be, st);
    return err;
}

static int setup_dir(void **state)
{
    char cmd[1200];

    (void)state;
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(model, sizeof(model), "%s/model.ubj", dir);
    snprintf(counter, sizeof(counter), "%s/runs", dir);
    snprintf(cmd, sizeof(cmd), "cp '%s/examples/models/fraud/2/model.ubj' '%s'",
             getenv("QV_SOURCE_DIR") ? getenv("QV_SOURCE_DIR") : ".", model);
    return system(cmd) == 0 ? 0 : -1;
}

static int teardown_dir(void **state)
{
    char cmd[600];

    (void)state;
    qv_xgb_set_checker_path(NULL);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_checker_verdicts_are_cached(void **state)
{
    char reason[256];

    (void)state;
    checker("echo 'ok: fine'");
    assert_int_equal(load(NULL, reason, sizeof(reason)), QV_OK);
    assert_int_equal(load(NULL, reason, sizeof(reason)), QV_OK);
    assert_int_equal(runs(), 1); /* the same bytes are not checked twice */
    assert_int_equal(load("30", reason, sizeof(reason)), QV_OK);
    assert_int_equal(runs(), 2); /* other limits, another verdict */

    checker("echo 'error: the trees are \xff\nbroken'; exit 1");
    assert_int_not_equal(load(NULL, reason, sizeof(reason)), QV_OK);
    assert_string_equal(reason, "artifact check failed: the trees are ?");
    assert_int_not_equal(load(NULL, reason, sizeof(reason)), QV_OK);
    assert_int_equal(runs(), 1);
}

static void test_checker_killed_by_a_signal(void **state)
{
    char reason[256];

    (void)state;
    checker("kill -SEGV $$");
    assert_int_not_equal(load(NULL, reason, sizeof(reason)), QV_OK);
    assert_string_equal(reason, "artifact check failed: killed by signal 11 (SIGSEGV)");
}

static void test_checker_past_its_deadline(void **state)
{
    char reason[256];

    (void)state;
    checker("exec sleep 600");
    assert_int_not_equal(load("1", reason, sizeof(reason)), QV_OK);
    assert_string_equal(reason, "artifact check failed: no verdict within 1 s");
    /* A time-out is not remembered: the next load checks again. */
    checker_script("echo 'ok: fine'", true);
    assert_int_equal(load("1", reason, sizeof(reason)), QV_OK);
    assert_int_equal(runs(), 1);
}

static void test_checker_without_a_verdict(void **state)
{
    char reason[256];

    (void)state;
    checker("exit 0");
    assert_int_not_equal(load(NULL, reason, sizeof(reason)), QV_OK);
    assert_non_null(strstr(reason, "artifact check failed"));
}

static void test_real_checker(void **state)
{
    char reason[256];

    (void)state;
    if (getenv("QUIVER_BIN") == NULL)
        skip();
    qv_xgb_set_checker_path(getenv("QUIVER_BIN"));
    qv_xgb_check_cache_clear();
    assert_int_equal(load(NULL, reason, sizeof(reason)), QV_OK);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ubj_valid),
        cmocka_unit_test(test_ubj_malformed),
        cmocka_unit_test(test_reason_clean),
#ifdef QV_WITH_XGBOOST
        cmocka_unit_test(test_checker_verdicts_are_cached),
        cmocka_unit_test(test_checker_killed_by_a_signal),
        cmocka_unit_test(test_checker_past_its_deadline),
        cmocka_unit_test(test_checker_without_a_verdict),
        cmocka_unit_test(test_real_checker),
#endif
    };

#ifdef QV_WITH_XGBOOST
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
#else
    return cmocka_run_group_tests(tests, NULL, NULL);
#endif
}
