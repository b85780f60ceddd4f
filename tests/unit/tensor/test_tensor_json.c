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

/* BYTES: the serialized form is walked without reading past its length. */
static void test_bytes_helpers(void **state)
{
    static const char *const strs[3] = {"ab", "", "xyz"};
    const int64_t shape[2] = {1, 3};
    struct qv_tensor t, c;
    struct qv_diag d;
    const uint8_t *p;
    uint32_t n;
    size_t off = 0, len;
    unsigned char *cut;
    struct qv_buf b = {0};

    (void)state;
    assert_int_equal(qv_tensor_from_strings(&t, "s", 2, shape, strs, 3), QV_OK);
    assert_int_equal(t.dtype, QV_DTYPE_BYTES);
    assert_int_equal(t.nbytes, 3 * 4 + 5);
    memset(&d, 0, sizeof(d));
    assert_int_equal(qv_bytes_check(t.data, t.nbytes, 3, "s", &d), QV_OK);
    assert_true(qv_bytes_next(t.data, t.nbytes, &off, &p, &n));
    assert_int_equal(n, 2);
    assert_memory_equal(p, "ab", 2);
    assert_true(qv_bytes_next(t.data, t.nbytes, &off, &p, &n));
    assert_int_equal(n, 0);
    assert_true(qv_bytes_next(t.data, t.nbytes, &off, &p, &n));
    assert_int_equal(n, 3);
    assert_false(qv_bytes_next(t.data, t.nbytes, &off, &p, &n));
    assert_int_equal(qv_bytes_offset(&t, 2), 4 + 2 + 4);
    /* Every cut short of the whole is refused, in a buffer of exactly that
     * size (ASan catches a read past it). */
    for (len = 0; len < t.nbytes; len++) {
        cut = malloc(len + 1);
        assert_non_null(cut);
        memcpy(cut, t.data, len);
        memset(&d, 0, sizeof(d));
        assert_int_equal(qv_bytes_check(cut, len, 3, "inputs[0]", &d), QV_EINVAL);
        assert_non_null(strstr(d.msg, "inputs[0]"));
        free(cut);
    }
    memset(&d, 0, sizeof(d));
    assert_int_equal(qv_bytes_check(t.data, t.nbytes, 2, "s", &d), QV_EINVAL);
    assert_non_null(strstr(d.msg, "left after"));
    memset(&d, 0, sizeof(d));
    assert_int_equal(qv_bytes_check(t.data, t.nbytes, 4, "s", &d), QV_EINVAL);
    assert_non_null(strstr(d.msg, "truncated"));
    assert_int_equal(qv_tensor_copy(&c, &t), QV_OK);
    assert_int_equal(c.nbytes, t.nbytes);
    assert_memory_equal(c.data, t.data, t.nbytes);
    assert_int_equal(qv_tensor_to_json(&c, &b), QV_OK);
    assert_non_null(strstr(b.data, "\"datatype\":\"BYTES\",\"shape\":[1,3],\"data\":[\"ab\",\"\",\"xyz\"]"));
    qv_buf_free(&b);
    qv_tensor_fini(&c);
    qv_tensor_fini(&t);
}

/* BYTES from JSON: strings, {"b64": ...} where allowed, and refusals. */
static void test_bytes_json(void **state)
{
    const int64_t shape[2] = {2, 2};
    struct qv_tensor t;
    struct qv_diag d;
    json_t *j;
    size_t off = 0;
    const uint8_t *p;
    uint32_t n;

    (void)state;
    j = json_loads("[[\"a\",{\"b64\":\"AP8=\"}],[{\"b64\":\"\"},\"bc\"]]", 0, NULL);
    memset(&d, 0, sizeof(d));
    assert_int_equal(qv_tensor_bytes_from_json(j, "inputs[0]", "x", 2, shape, true, &t, &d), QV_OK);
    assert_int_equal(t.nbytes, 4 * 4 + 1 + 2 + 0 + 2);
    assert_int_equal(qv_bytes_check(t.data, t.nbytes, 4, "x", &d), QV_OK);
    assert_true(qv_bytes_next(t.data, t.nbytes, &off, &p, &n));
    assert_true(qv_bytes_next(t.data, t.nbytes, &off, &p, &n));
    assert_int_equal(n, 2);
    assert_int_equal(p[0], 0x00);
    assert_int_equal(p[1], 0xff);
    qv_tensor_fini(&t);
    /* Without b64 (KServe), an object is no string. */
    memset(&d, 0, sizeof(d));
    assert_int_equal(qv_tensor_bytes_from_json(j, "inputs[0]", "x", 2, shape, false, &t, &d),
                     QV_EINVAL);
    assert_non_null(strstr(d.msg, "\"x\""));
    json_decref(j);
    j = json_loads("[\"a\",{\"b64\":\"A=A=\"},\"c\",\"d\"]", 0, NULL);
    memset(&d, 0, sizeof(d));
    assert_int_equal(qv_tensor_bytes_from_json(j, "inputs[0]", "x", 2, shape, true, &t, &d),
                     QV_EINVAL);
    assert_non_null(strstr(d.msg, "base64"));
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_huge_shape_refused_before_allocating),
        cmocka_unit_test(test_name_escaped),
        cmocka_unit_test(test_strings_always_valid_json),
        cmocka_unit_test(test_bytes_helpers),
        cmocka_unit_test(test_bytes_json),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
