/* SPDX-License-Identifier: MIT
 *
 * The one-pass KServe v2 decoder (src/api/infer_fast.c) against the general
 * one (jansson and the tensor codec), through tests/fuzz/infer_fast_ref.h:
 * - generated requests (fixed seed) with numbers in every form JSON allows
 *   (integers to the int64 limits, reals of 1 to 25 digits, exponents from
 *   -400 to 400, subnormals, -0, float boundaries), flat and nested data,
 *   optional id and outputs, random white space: the fast decoder takes
 *   each one and gives the general decoder's request bit for bit;
 * - the same requests with random byte edits: whenever the fast decoder
 *   still takes one, the general decoder takes it too, with the same result;
 * - bodies it must decline (the general decoder then decides): parameters,
 *   escapes, NaN, duplicate keys, a leading zero, trailing bytes, data before
 *   its shape, ragged nesting, a shape far larger than the body, a value out
 *   of range for its datatype.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fuzz/infer_fast_ref.h"

#include <inttypes.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int pick(int n)
{
    return (int)(next() % (uint64_t)n);
}

struct out {
    char *s;
    size_t len, cap;
};

static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(o->s + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        assert_true(n >= 0);
        if ((size_t)n < o->cap - o->len)
            break;
        o->cap = o->cap * 2 + (size_t)n + 64;
        o->s = realloc(o->s, o->cap);
        assert_non_null(o->s);
    }
    o->len += (size_t)n;
}

static void ws(struct out *o)
{
    static const char *k_ws[] = {"", "", "", " ", "\n", "\t ", "\r\n  "};
    put(o, "%s", k_ws[pick(7)]);
}

/* A random digit string of n digits, the first not zero. */
static void digits(struct out *o, int n)
{
    put(o, "%d", 1 + pick(9));
    for (int i = 1; i < n; i++)
        put(o, "%d", pick(10));
}

static void real(struct out *o)
{
    static const char *k_edge[] = {
        "-0.0", "0.0", "1e-320", "4.9e-324", "2.4703282292062328e-324", "1.7976931348623157e308",
        "3.4028234663852886e38", "3.4028235677973366e38", "1.401298464324817e-45",
        "0.1", "0.30000000000000004", "9007199254740993.0", "9007199254740992.5",
        "123456789012345678901234567890.5", "0.000000000000000000000000001", "1E+2", "1e-7",
        "-2.5e-3", "7.038531e-26", "1.00000005960464477539", "1.0000000596046448"};
    char buf[64];

    switch (pick(6)) {
    case 0:
        put(o, "%s", k_edge[pick((int)(sizeof(k_edge) / sizeof(k_edge[0])))]);
        break;
    case 1: { /* %.Ng of a random double */
        double x = (double)(int64_t)next() / (double)(1ull << pick(64));
        snprintf(buf, sizeof(buf), "%.*g", 1 + pick(20), x);
        if (strpbrk(buf, ".e") == NULL)
            strcat(buf, ".0");
        put(o, "%s", buf);
        break;
    }
    case 2: /* digits.digits */
        if (pick(2))
            put(o, "-");
        if (pick(3) == 0)
            put(o, "0");
        else
            digits(o, 1 + pick(20));
        put(o, ".");
        for (int i = 0, n = 1 + pick(22); i < n; i++)
            put(o, "%d", pick(10));
        break;
    case 3: /* digits e exponent */
        if (pick(2))
            put(o, "-");
        digits(o, 1 + pick(25));
        put(o, "%se%s%d", pick(2) ? "" : ".5", pick(2) ? "-" : (pick(2) ? "+" : ""), pick(400));
        break;
    case 4: /* near float: a float's shortest text */
        snprintf(buf, sizeof(buf), "%.9g", (double)(float)((double)(int32_t)next() / 65536.0));
        if (strpbrk(buf, ".e") == NULL)
            strcat(buf, ".0");
        put(o, "%s", buf);
        break;
    default: /* small exponent ranges, the fast path's */
        put(o, "%s%d.%de%d", pick(2) ? "-" : "", pick(1000), pick(1000), pick(45) - 22);
        break;
    }
}

static void integer(struct out *o, int dtype)
{
    static const char *k_i64[] = {"0", "-0", "9223372036854775807", "-9223372036854775808",
                                  "9007199254740993", "-1", "16777217"};
    static const char *k_i32[] = {"0", "-0", "2147483647", "-2147483648", "1", "-7"};

    if (pick(3) == 0) {
        put(o, "%s", dtype == 64 ? k_i64[pick(7)] : k_i32[pick(6)]);
        return;
    }
    if (dtype == 64)
        put(o, "%" PRId64, (int64_t)next() >> pick(64));
    else
        put(o, "%" PRId32, (int32_t)((int64_t)next() >> (32 + pick(32))));
}

static void value(struct out *o, const char *dt)
{
    if (strcmp(dt, "INT64") == 0)
        integer(o, 64);
    else if (strcmp(dt, "INT32") == 0)
        integer(o, 32);
    else if (pick(4) == 0)
        integer(o, 64); /* an integer token for a float input */
    else
        real(o);
}

static void data(struct out *o, const char *dt, const int64_t *shape, int ndim, int dim,
                 bool nested)
{
    int64_t n = 1;

    if (nested) {
        n = shape[dim];
    } else {
        for (int k = 0; k < ndim; k++)
            n *= shape[k];
    }
    put(o, "[");
    for (int64_t i = 0; i < n; i++) {
        if (i)
            put(o, ",");
        ws(o);
        if (nested && dim < ndim - 1)
            data(o, dt, shape, ndim, dim + 1, true);
        else
            value(o, dt);
        ws(o);
    }
    put(o, "]");
}

/* A random request the fast decoder should take. */
static void request(struct out *o)
{
    static const char *k_dt[] = {"FP32", "FP64", "INT32", "INT64"};
    int n_in = 1 + pick(3);

    o->len = 0;
    put(o, "{");
    ws(o);
    if (pick(2)) {
        put(o, "\"id\":");
        ws(o);
        put(o, "\"req-%d\",", pick(100000));
        ws(o);
    }
    put(o, "\"inputs\":");
    ws(o);
    put(o, "[");
    for (int i = 0; i < n_in; i++) {
        const char *dt = k_dt[pick(4)];
        int64_t shape[3];
        int ndim = 1 + pick(3);
        for (int k = 0; k < ndim; k++)
            shape[k] = 1 + pick(4);
        if (i)
            put(o, ",");
        ws(o);
        put(o, "{\"name\":\"in%d\",", i);
        ws(o);
        {
            bool dt_first = pick(2);
            if (dt_first)
                put(o, "\"datatype\": \"%s\", ", dt);
            put(o, "\"shape\": [");
            for (int k = 0; k < ndim; k++)
                put(o, "%s%" PRId64, k ? ", " : "", shape[k]);
            put(o, "],");
            if (!dt_first)
                put(o, "\"datatype\":\"%s\",", dt);
        }
        ws(o);
        put(o, "\"data\":");
        data(o, dt, shape, ndim, 0, ndim > 1 && pick(2));
        put(o, "}");
    }
    put(o, "]");
    if (pick(3) == 0)
        put(o, ",\"outputs\":[{\"name\":\"out0\"}%s]", pick(2) ? ",{\"name\":\"out1\"}" : "");
    ws(o);
    put(o, "}");
    ws(o);
}

static void test_generated_requests_agree(void **state)
{
    struct out o = {NULL, 0, 0};
    int taken = 0;

    (void)state;
    for (int i = 0; i < 20000; i++) {
        const char *why;
        int r;
        request(&o);
        r = ifr_check(o.s, o.len, &why);
        if (r < 0)
            fail_msg("fast and general decoders differ (%s) on: %s", why, o.s);
        if (r == 0) {
            /* Declined: only for a value the general decoder refuses too
             * (a real past the double range). */
            struct qv_fast_req g;
            bool ok = ifr_general(o.s, o.len, &g);
            ifr_free(&g);
            if (ok)
                fail_msg("the fast decoder declined a valid common request: %s", o.s);
        }
        taken += r;
    }
    /* Every valid one was taken (above); the rest hold a real past the
     * double range, which both refuse. */
    assert_true(taken > 15000);
    free(o.s);
}

static void test_edited_requests_never_disagree(void **state)
{
    static const char k_bytes[] = "{}[],:\"\\ 0123456789.eE+-aNI\x80\x01";
    struct out o = {NULL, 0, 0};
    int taken = 0, declined = 0;

    (void)state;
    for (int i = 0; i < 40000; i++) {
        const char *why;
        int r;
        request(&o);
        for (int e = 0, n = 1 + pick(3); e < n && o.len > 0; e++) {
            size_t at = (size_t)pick((int)o.len);
            switch (pick(3)) {
            case 0: /* replace */
                o.s[at] = k_bytes[pick((int)sizeof(k_bytes) - 1)];
                break;
            case 1: /* delete */
                memmove(o.s + at, o.s + at + 1, o.len - at - 1);
                o.len--;
                break;
            default: /* insert */
                put(&o, " ");
                memmove(o.s + at + 1, o.s + at, o.len - at - 1);
                o.s[at] = k_bytes[pick((int)sizeof(k_bytes) - 1)];
                break;
            }
        }
        r = ifr_check(o.s, o.len, &why);
        if (r < 0)
            fail_msg("fast and general decoders differ (%s) on: %.*s", why, (int)o.len, o.s);
        if (r)
            taken++;
        else
            declined++;
    }
    /* Both kinds happen: edits inside numbers or white space keep a valid
     * request, structural ones make it one the fast decoder leaves alone. */
    assert_true(taken > 1000);
    assert_true(declined > 1000);
    free(o.s);
}

static void test_declines(void **state)
{
    static const char *k_declined[] = {
        /* parameters: request, input and output level */
        "{\"parameters\":{},\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[1],"
        "\"data\":[1]}]}",
        "{\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1],"
        "\"parameters\":{}}]}",
        "{\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}],"
        "\"outputs\":[{\"name\":\"o\",\"parameters\":{\"binary_data\":true}}]}",
        /* escapes, bare NaN, duplicate keys, a leading zero, trailing bytes */
        "{\"inputs\":[{\"name\":\"a\\u0041\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}]}",
        "{\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[NaN]}]}",
        "{\"inputs\":[{\"name\":\"a\",\"name\":\"b\",\"datatype\":\"FP32\",\"shape\":[1],"
        "\"data\":[1]}]}",
        "{\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[01]}]}",
        "{\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}]}x",
        /* data before its shape; ragged or wrongly nested; flat of the wrong size */
        "{\"inputs\":[{\"name\":\"a\",\"data\":[1],\"datatype\":\"FP32\",\"shape\":[1]}]}",
        "{\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[2,2],"
        "\"data\":[[1,2],[3]]}]}",
        "{\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[2,2],"
        "\"data\":[[1,2],3,4]}]}",
        "{\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[4],\"data\":[[1,2,3,4]]}]}",
        "{\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[2,2],\"data\":[1,2,3]}]}",
        /* a shape no body of this size can fill: declined before any allocation */
        "{\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[1000000000],"
        "\"data\":[1]}]}",
        /* out of range for the datatype; a real for an integer input; overflow */
        "{\"inputs\":[{\"name\":\"a\",\"datatype\":\"INT32\",\"shape\":[1],"
        "\"data\":[2147483648]}]}",
        "{\"inputs\":[{\"name\":\"a\",\"datatype\":\"INT64\",\"shape\":[1],\"data\":[1.0]}]}",
        "{\"inputs\":[{\"name\":\"a\",\"datatype\":\"INT64\",\"shape\":[1],"
        "\"data\":[9223372036854775808]}]}",
        "{\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP64\",\"shape\":[1],\"data\":[1e400]}]}",
        /* other datatypes, other keys, no inputs, two inputs of one name */
        "{\"inputs\":[{\"name\":\"a\",\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"x\"]}]}",
        "{\"inputs\":[{\"name\":\"a\",\"datatype\":\"BOOL\",\"shape\":[1],\"data\":[true]}]}",
        "{\"model_name\":\"m\",\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[1],"
        "\"data\":[1]}]}",
        "{\"inputs\":[]}",
        "{\"id\":\"x\"}",
        "{\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]},"
        "{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[2]}]}",
        "", "{", "[]", "null"};
    struct qv_fast_req f;

    (void)state;
    for (size_t i = 0; i < sizeof(k_declined) / sizeof(k_declined[0]); i++) {
        const char *why;
        if (qv__infer_fast_decode(k_declined[i], strlen(k_declined[i]), &f))
            fail_msg("the fast decoder took: %s", k_declined[i]);
        assert_int_equal(f.n_inputs, 0);
        /* And the check agrees (no disagreement reported for them). */
        assert_int_equal(ifr_check(k_declined[i], strlen(k_declined[i]), &why), 0);
    }
}

static void test_values_exact(void **state)
{
    const char *body = "{\"id\":\"r1\",\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\","
                       "\"shape\":[2,3],\"data\":[[0.1, -0, 1e-50],[16777217, 3.4028235677973366e38,"
                       " -2.5e-3]]},{\"shape\":[2],\"name\":\"k\",\"datatype\":\"INT64\","
                       "\"data\":[-9223372036854775808, 9223372036854775807]}],"
                       "\"outputs\":[{\"name\":\"p\"}]}";
    struct qv_fast_req f;
    const float *x;
    const int64_t *k;

    (void)state;
    assert_true(qv__infer_fast_decode(body, strlen(body), &f));
    assert_int_equal(f.n_inputs, 2);
    assert_string_equal(f.id, "r1");
    assert_int_equal(f.n_wanted, 1);
    assert_string_equal(f.wanted[0], "p");
    x = f.inputs[0].data;
    assert_true(x[0] == (float)0.1);
    assert_true(x[1] == 0.0f);
    assert_true(x[2] == 0.0f);
    assert_true(x[3] == 16777216.0f); /* (float)(double)16777217: round to even */
    assert_true(x[4] == (float)3.4028235677973366e38);
    assert_true(x[5] == (float)-2.5e-3);
    k = f.inputs[1].data;
    assert_true(k[0] == INT64_MIN);
    assert_true(k[1] == INT64_MAX);
    ifr_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_exact),
        cmocka_unit_test(test_declines),
        cmocka_unit_test(test_generated_requests_agree),
        cmocka_unit_test(test_edited_requests_never_disagree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
