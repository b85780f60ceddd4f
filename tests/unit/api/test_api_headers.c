/* SPDX-License-Identifier: MIT
 *
 * Response headers (qv__api_add_header, src/api/routes.c): values are
 * copied; past QV_API_MAX_HEADERS headers or QV_API_HEADER_TEXT bytes of
 * values a header is refused (QV_ENOMEM), never cut; and gzip
 * (qv__api_encode_response) is applied only when its Content-Encoding
 * header fits, so a body is never gzip without saying so.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "../../../src/api/api_int.h"

static const char *accepts_gzip(struct qv_http_req *r, const char *name)
{
    (void)r;
    return strcmp(name, "Accept-Encoding") == 0 ? "gzip" : NULL;
}

static struct qv_http_req *new_req(void)
{
    struct qv_http_req *r = calloc(1, sizeof(*r));

    assert_non_null(r);
    r->header = accepts_gzip;
    return r;
}

static void test_values_copied_and_bounded(void **state)
{
    struct qv_http_req *r = new_req();
    char value[32], big[QV_API_HEADER_TEXT + 1];

    (void)state;
    strcpy(value, "first");
    assert_int_equal(qv__api_add_header(r, "X-One", value), QV_OK);
    strcpy(value, "changed");
    assert_string_equal(qv__api_resp_header(r, "x-one"), "first"); /* copied; any case */
    assert_null(qv__api_resp_header(r, "X-Two"));
    /* A value larger than what is left is refused whole. */
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(qv__api_add_header(r, "X-Big", big), QV_ENOMEM);
    assert_null(qv__api_resp_header(r, "X-Big"));
    /* At most QV_API_MAX_HEADERS headers. */
    for (int i = 1; i < QV_API_MAX_HEADERS; i++)
        assert_int_equal(qv__api_add_header(r, "X-More", "v"), QV_OK);
    assert_int_equal(qv__api_add_header(r, "X-Last", "v"), QV_ENOMEM);
    assert_int_equal(r->n_resp_headers, QV_API_MAX_HEADERS);
    free(r);
}

static void fill_body(struct qv_http_req *r)
{
    for (int i = 0; i < 400; i++)
        assert_int_equal(qv_buf_append(&r->resp, "{\"x\":12345}", 11), QV_OK);
}

static void test_gzip_only_with_its_header(void **state)
{
    struct qv_http_req *r = new_req();
    size_t plain;

    (void)state;
    fill_body(r);
    plain = r->resp.len;
    qv__api_encode_response(r);
    assert_string_equal(qv__api_resp_header(r, "Content-Encoding"), "gzip");
    assert_true(r->resp.len < plain);
    qv_buf_free(&r->resp);
    free(r);

    /* Every header slot taken: the body stays as it was. */
    r = new_req();
    fill_body(r);
    plain = r->resp.len;
    for (int i = 0; i < QV_API_MAX_HEADERS; i++)
        assert_int_equal(qv__api_add_header(r, "X-Fill", "v"), QV_OK);
    qv__api_encode_response(r);
    assert_null(qv__api_resp_header(r, "Content-Encoding"));
    assert_int_equal(r->resp.len, plain);
    assert_int_equal(memcmp(r->resp.data, "{\"x\":12345}", 11), 0);
    qv_buf_free(&r->resp);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_copied_and_bounded),
        cmocka_unit_test(test_gzip_only_with_its_header),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
