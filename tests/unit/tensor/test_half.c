/* SPDX-License-Identifier: MIT
 *
 * FP16 (IEEE 754 binary16) and BF16 (bfloat16) conversion, on values whose encodings are known,
 * and the non-finite JSON tokens quoting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../../../src/tensor/tensor.h"

static void test_half_known_values(void **state)
{
    (void)state;
    assert_int_equal(qv_float_to_half(1.0f), 0x3c00);
    assert_int_equal(qv_float_to_half(-2.0f), 0xc000);
    assert_int_equal(qv_float_to_half(0.0f), 0x0000);
    assert_int_equal(qv_float_to_half(65504.0f), 0x7bff);         /* largest finite */
    assert_int_equal(qv_float_to_half(70000.0f), 0x7c00);         /* overflow: +inf */
    assert_int_equal(qv_float_to_half(ldexpf(1.0f, -24)), 0x0001); /* smallest subnormal */
    assert_int_equal(qv_float_to_half(1.0f + ldexpf(1.0f, -11)), 0x3c00); /* tie: to even */
    assert_int_equal(qv_float_to_half(1.0f + 3 * ldexpf(1.0f, -11)), 0x3c02);
    assert_int_equal(qv_float_to_half(INFINITY), 0x7c00);
    assert_int_equal(qv_float_to_half(-INFINITY), 0xfc00);
    assert_true((qv_float_to_half(NAN) & 0x7c00) == 0x7c00 && (qv_float_to_half(NAN) & 0x3ff));
    assert_true(qv_half_to_float(0x3c00) == 1.0f);
    assert_true(qv_half_to_float(0x7bff) == 65504.0f);
    assert_true(qv_half_to_float(0x0001) == ldexpf(1.0f, -24));
    assert_true(qv_half_to_float(0x8000) == 0.0f && signbit(qv_half_to_float(0x8000)));
    assert_true(isinf(qv_half_to_float(0xfc00)) && qv_half_to_float(0xfc00) < 0);
    assert_true(isnan(qv_half_to_float(0x7e00)));
    /* Every finite half survives the round trip. */
    for (uint32_t h = 0; h < 0x10000; h++)
        if ((h & 0x7c00) != 0x7c00)
            assert_int_equal(qv_float_to_half(qv_half_to_float((uint16_t)h)), h);
}

static void test_bf16_known_values(void **state)
{
    struct qv_tensor t;
    struct qv_buf b = {0};
    int64_t shape[1] = {4};

    (void)state;
    assert_int_equal(qv_float_to_bf16(1.0f), 0x3f80);
    assert_int_equal(qv_float_to_bf16(-2.0f), 0xc000);
    assert_int_equal(qv_float_to_bf16(0.0f), 0x0000);
    assert_int_equal(qv_float_to_bf16(-0.0f), 0x8000);
    /* 1 + 2^-8 is halfway between 0x3f80 and 0x3f81: to even (0x3f80);
     * 1 + 3*2^-8 is halfway between 0x3f81 and 0x3f82: to even (0x3f82). */
    assert_int_equal(qv_float_to_bf16(1.0f + ldexpf(1.0f, -8)), 0x3f80);
    assert_int_equal(qv_float_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)), 0x3f82);
    assert_int_equal(qv_float_to_bf16(1.0f + ldexpf(1.0f, -8) + ldexpf(1.0f, -20)), 0x3f81);
    assert_int_equal(qv_float_to_bf16(INFINITY), 0x7f80);
    assert_int_equal(qv_float_to_bf16(-INFINITY), 0xff80);
    assert_int_equal(qv_float_to_bf16(FLT_MAX), 0x7f80); /* rounds past the largest: +inf */
    assert_true(isnan(qv_bf16_to_float(qv_float_to_bf16(NAN))));
    assert_true(isnan(qv_bf16_to_float(qv_float_to_bf16(-NAN))));
    {
        /* a NaN whose payload sits only in the low bits must not become inf */
        uint32_t bits = 0x7f800001u;
        float f;
        memcpy(&f, &bits, sizeof(f));
        assert_true(isnan(qv_bf16_to_float(qv_float_to_bf16(f))));
    }
    assert_true(qv_bf16_to_float(0x3f80) == 1.0f);
    assert_true(qv_bf16_to_float(0xc049) == -3.140625f);
    assert_true(isinf(qv_bf16_to_float(0xff80)) && qv_bf16_to_float(0xff80) < 0);
    assert_string_equal(qv_dtype_name(QV_DTYPE_BF16), "BF16");
    assert_int_equal(qv_dtype_from_name("BF16"), QV_DTYPE_BF16);
    assert_int_equal(qv_dtype_size(QV_DTYPE_BF16), 2);

    /* Written to JSON with NaN and +-Inf kept apart; converted to FP32. */
    assert_int_equal(qv_tensor_alloc(&t, "x", QV_DTYPE_BF16, 1, shape), 0);
    ((uint16_t *)t.data)[0] = 0x3fc0; /* 1.5 */
    ((uint16_t *)t.data)[1] = 0x7fc0;
    ((uint16_t *)t.data)[2] = 0x7f80;
    ((uint16_t *)t.data)[3] = 0xff80;
    assert_int_equal(qv_tensor_values_to_json(&t, 0, 4, &b), 0);
    assert_int_equal(b.len, strlen("[1.5,NaN,Infinity,-Infinity]"));
    assert_memory_equal(b.data, "[1.5,NaN,Infinity,-Infinity]", b.len);
    assert_int_equal(qv_tensor_convert(&t, QV_DTYPE_F32, NULL), 0);
    assert_true(((float *)t.data)[0] == 1.5f);
    assert_true(isnan(((float *)t.data)[1]));
    qv_tensor_fini(&t);
    qv_buf_free(&b);
}

static void test_quote_nonfinite(void **state)
{
    const char *in = "{\"a\":[NaN,-Infinity,Infinity],\"s\":\"NaN \\\" Infinity\"}";
    size_t n = 0;
    char *out = qv_json_quote_nonfinite(in, strlen(in), &n);

    (void)state;
    assert_non_null(out);
    assert_string_equal(out, "{\"a\":[\"NaN\",\"-Infinity\",\"Infinity\"],"
                             "\"s\":\"NaN \\\" Infinity\"}");
    assert_int_equal(n, strlen(out));
    free(out);
    assert_null(qv_json_quote_nonfinite("{\"a\":[1,2]}", 11, &n)); /* nothing to do */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_half_known_values),
        cmocka_unit_test(test_bf16_known_values),
        cmocka_unit_test(test_quote_nonfinite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
