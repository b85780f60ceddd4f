/* SPDX-License-Identifier: MIT
 *
 * Unit tests of the JSON tensor codec (src/tensor/tensor_json.c): the
 * structure check that runs before any allocation (flat, exactly nested,
 * ragged, mixed depth, counts), and names escaped in encoded tensors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../../../src/tensor/tensor.h"

static int check(const char *data, int ndim, const int64_t *shape, struct qv_diag *d)
{
    json_t *j = json_loads(data, 0, NULL);
    int err;

    assert_non_null(j);
    memset(d, 0, sizeof(*d));
    err = qv_tensor_json_check(j, ndim, shape, "inputs[0]", "x", d);
    json_decref(j);
    return err;
}

static void test_structure(void **state)
{
    const int64_t s22[] = {2, 2}, s3[] = {3}, s0[] = {0, 4}, s122[] = {1, 2, 2};
    struct qv_diag d;

    (void)state;
    assert_int_equal(check("[1,2,3,4]", 2, s22, &d), QV_OK);
    assert_int_equal(check("[[1,2],[3,4]]", 2, s22, &d), QV_OK);
    assert_int_equal(check("[1,2,3]", 1, s3, &d), QV_OK);
    assert_int_equal(check("[]", 2, s0, &d), QV_OK);
    assert_int_equal(check("[[[1,2],[3,4]]]", 3, s122, &d), QV_OK);
    /* Ragged, with the right total. */
    assert_int_equal(check("[[1,2,3],[4]]", 2, s22, &d), QV_EINVAL);
    assert_non_null(strstr(d.msg, "\"x\""));
    assert_non_null(strstr(d.msg, "ragged"));
    /* Mixed depth. */
    assert_int_equal(check("[1,[2,3],4]", 2, s22, &d), QV_EINVAL);
    /* Too deep, too shallow for a nested form. */
    assert_int_equal(check("[[[1],[2]],[[3],[4]]]", 2, s22, &d), QV_EINVAL);
    assert_int_equal(check("[[1,2,3,4]]", 3, s122, &d), QV_EINVAL);
    /* Counts that differ, flat. */
    assert_int_equal(check("[1,2,3]", 2, s22, &d), QV_EINVAL);
    assert_non_null(strstr(d.msg, "holds 3 values"));
    assert_int_equal(check("[1,2,3,4,5]", 2, s22, &d), QV_EINVAL);
    /* Objects are no values. */
    assert_int_equal(check("[[1,2],[3,{}]]", 2, s22, &d), QV_EINVAL);
    /* Not an array at all. */
    assert_int_equal(check("{}", 2, s22, &d), QV_EINVAL);
}

static void test_huge_shape_refused_before_allocating(void **state)
{
    json_t *j = json_loads("{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[4294967296],"
                           "\"data\":[1,2]}", 0, NULL);
    struct qv_tensor t;
    struct qv_diag d = {{0}};

    (void)state;
    assert_non_null(j);
    assert_int_equal(qv_tensor_from_json(j, "inputs[0]", &t, &d), QV_EINVAL);
    assert_non_null(strstr(d.msg, "\"x\""));
    assert_null(t.data);
    json_decref(j);
    j = json_loads("{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[65536,16384],"
                   "\"data\":[1,2]}", 0, NULL);
    memset(&d, 0, sizeof(d));
    assert_int_equal(qv_tensor_from_json(j, "inputs[0]", &t, &d), QV_EINVAL);
    assert_non_null(strstr(d.msg, "holds 2 values"));
    json_decref(j);
}

static void test_name_escaped(void **state)
{
    const int64_t shape[] = {1};
    struct qv_tensor t;
    struct qv_buf b = QV_BUF_INIT(0);
    json_t *j;

    (void)state;
    assert_int_equal(qv_tensor_alloc(&t, "a\"b\\c\n", QV_DTYPE_F32, 1, shape), QV_OK);
    ((float *)t.data)[0] = 1.5f;
    assert_int_equal(qv_tensor_to_json(&t, &b), QV_OK);
    j = json_loadb(b.data, b.len, 0, NULL);
    assert_non_null(j); /* valid JSON */
    assert_string_equal(json_string_value(json_object_get(j, "name")), "a\"b\\c\n");
    json_decref(j);
    qv_buf_free(&b);
    qv_tensor_fini(&t);
}

static void test_strings_always_valid_json(void **state)
{
    struct qv_buf b = QV_BUF_INIT(0);
    json_t *j;

    (void)state;
    /* Invalid UTF-8 (a lone continuation, a truncated sequence, an overlong
     * form, a surrogate), DEL and control bytes; valid multi-byte kept. */
    assert_int_equal(qv_json_put_string(&b, "a" "\x80" "b" "\xe2\x82" "c" "\xc0\xaf"
                                            "\xed\xa0\x80" "\x7f" "\x01"
                                            "\xc3\xa9" "\xe2\x82\xac" "\xf0\x9f\x98\x80"),
                     QV_OK);
    j = json_loadb(b.data, b.len, JSON_DECODE_ANY, NULL);
    assert_non_null(j);
#define FFFD "\xef\xbf\xbd"
    assert_string_equal(json_string_value(j), "a" FFFD "b" FFFD FFFD "c" FFFD FFFD FFFD FFFD FFFD
                                              "\x7f" "\x01" "\xc3\xa9" "\xe2\x82\xac"
                                              "\xf0\x9f\x98\x80");
#undef FFFD
    json_decref(j);
    qv_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_huge_shape_refused_before_allocating),
        cmocka_unit_test(test_name_escaped),
        cmocka_unit_test(test_strings_always_valid_json),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
