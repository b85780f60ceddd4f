/* SPDX-License-Identifier: MIT
 *
 * FP16 (IEEE 754 binary16) conversion, on values whose encodings are known,
 * and the non-finite JSON tokens quoting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
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
        cmocka_unit_test(test_quote_nonfinite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
