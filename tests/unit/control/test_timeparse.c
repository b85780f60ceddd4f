/* SPDX-License-Identifier: MIT
 *
 * The "since" parameter of the events and history endpoints (qv_time_parse): epoch
 * milliseconds or ISO 8601, everything else refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/util.h"

static void ok(const char *s, uint64_t want)
{
    uint64_t ms = 0;

    if (qv_time_parse(s, &ms) != 0)
        fail_msg("\"%s\" refused", s);
    if (ms != want)
        fail_msg("\"%s\" -> %llu, expected %llu", s, (unsigned long long)ms,
                 (unsigned long long)want);
}

static void bad(const char *s)
{
    uint64_t ms = 0;

    if (qv_time_parse(s, &ms) != QV_EINVAL)
        fail_msg("\"%s\" accepted as %llu", s ? s : "(null)", (unsigned long long)ms);
}

static void test_accepted(void **state)
{
    (void)state;
    ok("0", 0);
    ok("1764583200000", 1764583200000ull);
    /* 2025-12-01T10:00:00Z is 1764583200 s after the epoch. */
    ok("2025-12-01T10:00:00Z", 1764583200000ull);
    ok("2025-12-01T10:00:00", 1764583200000ull);
    ok("2025-12-01 10:00:00z", 1764583200000ull);
    ok("2025-12-01T10:00Z", 1764583200000ull);
    ok("2025-12-01T10:00:00.250Z", 1764583200250ull);
    ok("2025-12-01T10:00:00.2Z", 1764583200200ull);
    ok("2025-12-01T11:00:00+01:00", 1764583200000ull);
    ok("2025-12-01T08:30:00-0130", 1764583200000ull);
    ok("2025-12-01", 1764547200000ull);
}

/* A duration back from now. */
static void test_relative(void **state)
{
    uint64_t ms = 0, before, after;

    (void)state;
    before = qv_wall_ms();
    assert_int_equal(qv_time_parse("10m", &ms), 0);
    after = qv_wall_ms();
    assert_true(ms >= before - 600000 && ms <= after - 600000);
    assert_int_equal(qv_time_parse("2h", &ms), 0);
    assert_true(ms <= qv_wall_ms() - 7200000);
    assert_int_equal(qv_time_parse("90s", &ms), 0);
    assert_int_equal(qv_time_parse("7d", &ms), 0);
    assert_int_equal(qv_time_parse("m", &ms), QV_EINVAL);
    assert_int_equal(qv_time_parse("10w", &ms), QV_EINVAL);
    assert_int_equal(qv_time_parse("-10m", &ms), QV_EINVAL);
    assert_int_equal(qv_time_parse("99999999999999d", &ms), QV_EINVAL);
}

static void test_refused(void **state)
{
    (void)state;
    bad("");
    bad("yesterday");
    bad("-5");
    bad("12abc");
    bad("99999999999999999999999");
    bad("2025-13-01T00:00:00Z");
    bad("2025-12-32");
    bad("2025-12-01T24:00:00Z");
    bad("2025-12-01T10:60:00Z");
    bad("2025-12-01T10:00:00+25:00");
    bad("2025-12-01T10:00:00.Z");
    bad("2025-12-01T10:00:00Zjunk");
    bad("1969-12-31T23:59:59Z");
    bad("2025-1-01");
    bad(" 2025-12-01");
}

static void test_null(void **state)
{
    uint64_t ms = 0;

    (void)state;
    assert_int_equal(qv_time_parse(NULL, &ms), QV_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_relative),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
