/* SPDX-License-Identifier: MIT
 *
 * Protocol fidelity, part 1: the binary tensor data extension of the KServe
 * v2 / Triton HTTP protocol, HTTP content codings (gzip, deflate), and the
 * 405's Allow header, against the real binary.
 *
 * The client below writes the binary format from its specification
 * (Triton's docs/protocol/extension_binary_data.md): a JSON header whose
 * length goes in Inference-Header-Content-Length, then each binary input's
 * raw little-endian bytes in input order. The cases follow what Triton's
 * client library sends by default (tritonclient/http/_utils.py,
 * _get_inference_request: inputs with parameters.binary_data_size, outputs
 * with parameters.binary_data) and what its L0_http tests check
 * (qa/L0_http/http_test.py: wrong sizes, missing header).
 */
#include "integration/harness.h"

#include "util/util.h"

#include <zlib.h>

/* y = 2 * mean(row) + 1 over rows of 2 features. */
static void lin_model(struct h_srv *s)
{
    h_test_model(s, "lin", "");
    h_test_version(s, "lin", 1, "{\"features\": 2, \"linear\": true, \"scale\": 2.0, \"bias\": 1.0}");
}

/* A binary request to the lin model. */
static struct h_resp post_bin(const struct h_srv *s, const char *json, const void *raw,
                              size_t raw_len)
{
    return h_post_binary(s, "/v2/models/lin/infer", json, raw, raw_len);
}

/* Parses a binary response: *json the header, *raw the bytes after it. */
static json_t *split_resp(const struct h_resp *r, const char **raw, size_t *raw_len)
{
    char v[32];
    size_t n;
    json_t *j;

    if (!h_header(r, "Inference-Header-Content-Length", v, sizeof(v)))
        fail_msg("no Inference-Header-Content-Length in a binary response: %s", r->headers);
    n = (size_t)strtoull(v, NULL, 10);
    assert_true(n > 0 && n <= r->len);
    j = json_loadb(r->body, n, 0, NULL);
    assert_non_null(j);
    *raw = r->body + n;
    *raw_len = r->len - n;
    return j;
}

static const float ROWS[4] = {1, 3, -1, 0}; /* two rows: y = 5 and 0 */

static void test_binary_in_binary_out(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;
    const char *raw;
    size_t raw_len;
    json_t *j, *out;
    float y[2];

    lin_model(s);
    h_start(s, NULL);
    /* Request-level binary_data_output (tritonclient sends it when no
     * outputs are named: _utils.py). */
    r = post_bin(s,
                 "{\"inputs\":[{\"name\":\"input__0\",\"shape\":[2,2],\"datatype\":\"FP32\","
                 "\"parameters\":{\"binary_data_size\":16}}],"
                 "\"parameters\":{\"binary_data_output\":true}}",
                 ROWS, sizeof(ROWS));
    if (r.status != 200)
        fail_msg("binary request: %ld %s", r.status, r.body);
    j = split_resp(&r, &raw, &raw_len);
    out = json_array_get(json_object_get(j, "outputs"), 0);
    assert_string_equal(h_jstr(out, "name"), "output__0");
    assert_string_equal(h_jstr(out, "datatype"), "FP32");
    assert_null(json_object_get(out, "data"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(out, "parameters"),
                                                        "binary_data_size")), 8);
    assert_int_equal(raw_len, 8);
    memcpy(y, raw, 8);
    assert_true(fabsf(y[0] - 5.0f) < 1e-5f && fabsf(y[1]) < 1e-5f);
    json_decref(j);
    h_resp_free(&r);

    /* Per-output binary_data (tritonclient's InferRequestedOutput default). */
    r = post_bin(s,
                 "{\"inputs\":[{\"name\":\"input__0\",\"shape\":[2,2],\"datatype\":\"FP32\","
                 "\"parameters\":{\"binary_data_size\":16}}],"
                 "\"outputs\":[{\"name\":\"output__0\",\"parameters\":{\"binary_data\":true}}]}",
                 ROWS, sizeof(ROWS));
    assert_int_equal(r.status, 200);
    j = split_resp(&r, &raw, &raw_len);
    assert_int_equal(raw_len, 8);
    json_decref(j);
    h_resp_free(&r);

    /* Binary input, JSON output: a plain JSON response. */
    r = post_bin(s,
                 "{\"inputs\":[{\"name\":\"input__0\",\"shape\":[2,2],\"datatype\":\"FP32\","
                 "\"parameters\":{\"binary_data_size\":16}}],"
                 "\"outputs\":[{\"name\":\"output__0\",\"parameters\":{\"binary_data\":false}}],"
                 "\"parameters\":{\"binary_data_output\":true}}",
                 ROWS, sizeof(ROWS));
    assert_int_equal(r.status, 200);
    {
        char v[32];
        assert_false(h_header(&r, "Inference-Header-Content-Length", v, sizeof(v)));
    }
    assert_non_null(r.json);
    out = json_array_get(json_object_get(r.json, "outputs"), 0);
    assert_true(fabs(json_number_value(json_array_get(json_object_get(out, "data"), 0)) - 5.0) <
                1e-5);
    h_resp_free(&r);

    /* JSON input with the header present (an empty binary part) and a binary output. */
    {
        const char *js = "{\"inputs\":[{\"name\":\"input__0\",\"shape\":[1,2],\"datatype\":\"FP32\","
                         "\"data\":[2,2]}],\"parameters\":{\"binary_data_output\":true}}";
        r = post_bin(s, js, NULL, 0);
        assert_int_equal(r.status, 200);
        j = split_resp(&r, &raw, &raw_len);
        assert_int_equal(raw_len, 4);
        memcpy(y, raw, 4);
        assert_true(fabsf(y[0] - 5.0f) < 1e-5f);
        json_decref(j);
        h_resp_free(&r);
    }
    h_stop_ok(s); /* a clean exit: no sanitizer report, no leak */
}

static void test_binary_bad_sizes(void **state)
{
    struct h_srv *s = *state;
    static const struct {
        const char *json;
        size_t raw;
        const char *needle, *needle2;
    } cases[] = {
        /* Size that does not match shape x datatype (http_test.py's wrong sizes). */
        {"{\"inputs\":[{\"name\":\"input__0\",\"shape\":[2,2],\"datatype\":\"FP32\","
         "\"parameters\":{\"binary_data_size\":12}}]}", 12, "inputs[0].parameters.binary_data_size",
         "need 16"},
        /* More than the body holds. */
        {"{\"inputs\":[{\"name\":\"input__0\",\"shape\":[2,2],\"datatype\":\"FP32\","
         "\"parameters\":{\"binary_data_size\":16}}]}", 8, "inputs[0].parameters.binary_data_size",
         "left in the body"},
        /* Bytes nobody claims. */
        {"{\"inputs\":[{\"name\":\"input__0\",\"shape\":[1,2],\"datatype\":\"FP32\","
         "\"parameters\":{\"binary_data_size\":8}}]}", 16, "binary_data_size", "not claimed"},
        /* Not an integer, negative. */
        {"{\"inputs\":[{\"name\":\"input__0\",\"shape\":[1,2],\"datatype\":\"FP32\","
         "\"parameters\":{\"binary_data_size\":\"8\"}}]}", 8,
         "inputs[0].parameters.binary_data_size", "non-negative integer"},
        {"{\"inputs\":[{\"name\":\"input__0\",\"shape\":[1,2],\"datatype\":\"FP32\","
         "\"parameters\":{\"binary_data_size\":-8}}]}", 8,
         "inputs[0].parameters.binary_data_size", "non-negative integer"},
        /* Both data and binary. */
        {"{\"inputs\":[{\"name\":\"input__0\",\"shape\":[1,2],\"datatype\":\"FP32\","
         "\"data\":[1,2],\"parameters\":{\"binary_data_size\":8}}]}", 8, "inputs[0]", "both"},
        /* Flags that are not booleans. */
        {"{\"inputs\":[{\"name\":\"input__0\",\"shape\":[1,2],\"datatype\":\"FP32\","
         "\"parameters\":{\"binary_data_size\":8}}],\"parameters\":{\"binary_data_output\":1}}",
         8, "parameters.binary_data_output", "true or false"},
        {"{\"inputs\":[{\"name\":\"input__0\",\"shape\":[1,2],\"datatype\":\"FP32\","
         "\"parameters\":{\"binary_data_size\":8}}],"
         "\"outputs\":[{\"name\":\"output__0\",\"parameters\":{\"binary_data\":\"yes\"}}]}",
         8, "outputs[0].parameters.binary_data", "true or false"},
        /* The same output twice. */
        {"{\"inputs\":[{\"name\":\"input__0\",\"shape\":[1,2],\"datatype\":\"FP32\","
         "\"parameters\":{\"binary_data_size\":8}}],"
         "\"outputs\":[{\"name\":\"output__0\"},{\"name\":\"output__0\"}]}",
         8, "outputs[1].name", "twice"},
    };
    static const float zeros[4];
    struct h_resp r;

    lin_model(s);
    h_start(s, NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        r = post_bin(s, cases[i].json, zeros, cases[i].raw);
        h_expect_error(&r, 400, cases[i].needle);
        h_expect_error(&r, 400, cases[i].needle2);
        h_resp_free(&r);
    }

    /* The header itself: not a number, past the body, zero. */
    {
        const char *js = "{\"inputs\":[{\"name\":\"input__0\",\"shape\":[1,2],\"datatype\":\"FP32\","
                         "\"data\":[1,2]}]}";
        const char *bad[] = {"Inference-Header-Content-Length: abc",
                             "Inference-Header-Content-Length: 100000",
                             "Inference-Header-Content-Length: 0",
                             "Inference-Header-Content-Length: -5"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            r = h_post_hdrs(s, "/v2/models/lin/infer", js, strlen(js), bad[i], NULL);
            h_expect_error(&r, 400, "Inference-Header-Content-Length");
            h_resp_free(&r);
        }
        /* A header length that cuts the JSON. */
        r = h_post_hdrs(s, "/v2/models/lin/infer", js, strlen(js),
                   "Inference-Header-Content-Length: 10", NULL);
        h_expect_error(&r, 400, "invalid JSON");
        h_resp_free(&r);
    }
    /* binary_data_size without the header: the body is JSON only. */
    r = h_post(s, "/v2/models/lin/infer",
               "{\"inputs\":[{\"name\":\"input__0\",\"shape\":[1,2],\"datatype\":\"FP32\","
               "\"parameters\":{\"binary_data_size\":8}}]}");
    h_expect_error(&r, 400, "no Inference-Header-Content-Length");
    h_resp_free(&r);
    /* TF Serving requests are JSON only. */
    {
        const char *js = "{\"instances\":[[1,2]]}";
        r = h_post_hdrs(s, "/v1/models/lin:predict", js, strlen(js),
                   "Inference-Header-Content-Length: 5", NULL);
        h_expect_error(&r, 400, "Inference-Header-Content-Length");
        h_resp_free(&r);
    }
    /* Still serving. */
    r = post_bin(s,
                 "{\"inputs\":[{\"name\":\"input__0\",\"shape\":[2,2],\"datatype\":\"FP32\","
                 "\"parameters\":{\"binary_data_size\":16}}]}",
                 ROWS, sizeof(ROWS));
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    h_stop_ok(s); /* a clean exit: no sanitizer report, no leak */
}

/* Compresses src with zlib: gzip (window 31) or zlib-wrapped deflate (15). */
static unsigned char *zip(const void *src, size_t len, int window, size_t *out_len)
{
    z_stream z;
    uLong bound;
    unsigned char *out;

    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, window, 8, Z_DEFAULT_STRATEGY), Z_OK);
    bound = deflateBound(&z, (uLong)len);
    out = malloc(bound);
    assert_non_null(out);
    z.next_in = (Bytef *)(uintptr_t)src;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)bound;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    *out_len = bound - z.avail_out;
    deflateEnd(&z);
    return out;
}

static void test_content_encoding(void **state)
{
    struct h_srv *s = *state;
    const char *js = "{\"inputs\":[{\"name\":\"input__0\",\"shape\":[1,2],\"datatype\":\"FP32\","
                     "\"data\":[2,2]}]}";
    unsigned char *z;
    size_t zl;
    struct h_resp r;

    lin_model(s);
    h_start(s, "--max-body-bytes", "1M", NULL);
    z = zip(js, strlen(js), 16 + 15, &zl);
    r = h_post_hdrs(s, "/v2/models/lin/infer", z, zl, "Content-Encoding: gzip", NULL);
    if (r.status != 200)
        fail_msg("gzip body: %ld %s", r.status, r.body);
    h_resp_free(&r);
    /* A corrupt stream: 400. */
    z[zl / 2] ^= 0x55;
    z[zl / 2 + 1] ^= 0x55;
    r = h_post_hdrs(s, "/v2/models/lin/infer", z, zl, "Content-Encoding: gzip", NULL);
    h_expect_error(&r, 400, "gzip");
    h_resp_free(&r);
    free(z);
    z = zip(js, strlen(js), 15, &zl);
    r = h_post_hdrs(s, "/v2/models/lin/infer", z, zl, "Content-Encoding: deflate", NULL);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    /* Truncated. */
    r = h_post_hdrs(s, "/v2/models/lin/infer", z, zl / 2, "Content-Encoding: deflate", NULL);
    h_expect_error(&r, 400, "deflate");
    h_resp_free(&r);
    free(z);
    /* Unknown coding: 415 naming it. */
    r = h_post_hdrs(s, "/v2/models/lin/infer", js, strlen(js), "Content-Encoding: br", NULL);
    h_expect_error(&r, 415, "Content-Encoding");
    h_expect_error(&r, 415, "br");
    h_resp_free(&r);
    /* A zip bomb: 8 MiB of zeros in a few KiB is refused once past the limit. */
    {
        size_t n = 8u << 20;
        char *big = calloc(1, n);
        assert_non_null(big);
        z = zip(big, n, 16 + 15, &zl);
        free(big);
        assert_true(zl < (64u << 10));
        r = h_post_hdrs(s, "/v2/models/lin/infer", z, zl, "Content-Encoding: gzip", NULL);
        h_expect_error(&r, 413, "decompressed");
        h_resp_free(&r);
        free(z);
    }
    /* Accept-Encoding: gzip compresses a large response. */
    {
        struct qv_buf b = QV_BUF_INIT(0);
        int rows = 400;
        unsigned char *plain;
        uLongf pl = 1u << 20;
        z_stream zs;

        qv_buf_printf(&b, "{\"inputs\":[{\"name\":\"input__0\",\"shape\":[%d,2],"
                          "\"datatype\":\"FP32\",\"data\":[", rows);
        for (int i = 0; i < rows; i++)
            qv_buf_printf(&b, "%s%d,%d", i ? "," : "", i, i);
        qv_buf_printf(&b, "]}]}");
        r = h_post_hdrs(s, "/v2/models/lin/infer", b.data, b.len, "Accept-Encoding: gzip", NULL);
        assert_int_equal(r.status, 200);
        {
            char v[32];
            assert_true(h_header(&r, "Content-Encoding", v, sizeof(v)));
            assert_string_equal(v, "gzip");
        }
        plain = malloc(pl);
        memset(&zs, 0, sizeof(zs));
        assert_int_equal(inflateInit2(&zs, 16 + 15), Z_OK);
        zs.next_in = (Bytef *)r.body;
        zs.avail_in = (uInt)r.len;
        zs.next_out = plain;
        zs.avail_out = (uInt)pl;
        assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
        {
            json_t *j = json_loadb((char *)plain, pl - zs.avail_out, 0, NULL);
            json_t *out = json_array_get(json_object_get(j, "outputs"), 0);
            assert_non_null(j);
            assert_int_equal(json_array_size(json_object_get(out, "data")), rows);
            json_decref(j);
        }
        inflateEnd(&zs);
        free(plain);
        h_resp_free(&r);
        /* Without Accept-Encoding: plain JSON. */
        r = h_req_n(s, "POST", "/v2/models/lin/infer", b.data, b.len);
        assert_int_equal(r.status, 200);
        assert_non_null(r.json);
        h_resp_free(&r);
        qv_buf_free(&b);
    }
    h_stop_ok(s); /* a clean exit: no sanitizer report, no leak */
}

static void test_method_not_allowed(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;
    char v[64];

    lin_model(s);
    h_start(s, NULL);
    r = h_req(s, "DELETE", "/v2/models/lin/infer", NULL);
    h_expect_error(&r, 405, "DELETE");
    assert_true(h_header(&r, "Allow", v, sizeof(v)));
    assert_string_equal(v, "POST");
    h_resp_free(&r);
    r = h_req(s, "PATCH", "/v2/models/lin/route", NULL);
    h_expect_error(&r, 405, "PATCH");
    assert_true(h_header(&r, "Allow", v, sizeof(v)));
    assert_string_equal(v, "GET, PUT, DELETE");
    h_resp_free(&r);
    h_stop_ok(s); /* a clean exit: no sanitizer report, no leak */
}

/* FP16 in binary and in JSON, widened for a model that computes in FP32. */
static void test_fp16_inputs(void **state)
{
    struct h_srv *s = *state;
    /* 1, 3, -1, 0 in IEEE half precision. */
    static const uint16_t half[4] = {0x3c00, 0x4200, 0xbc00, 0x0000};
    struct h_resp r;
    json_t *out;

    lin_model(s);
    h_start(s, NULL);
    r = post_bin(s,
                 "{\"inputs\":[{\"name\":\"input__0\",\"shape\":[2,2],\"datatype\":\"FP16\","
                 "\"parameters\":{\"binary_data_size\":8}}]}",
                 half, sizeof(half));
    if (r.status != 200)
        fail_msg("FP16 binary: %ld %s", r.status, r.body);
    out = json_object_get(json_array_get(json_object_get(r.json, "outputs"), 0), "data");
    assert_true(fabs(json_number_value(json_array_get(out, 0)) - 5.0) < 1e-5);
    assert_true(fabs(json_number_value(json_array_get(out, 1)) - 0.0) < 1e-5);
    h_resp_free(&r);
    /* The size is checked as 2 bytes per value. */
    r = post_bin(s,
                 "{\"inputs\":[{\"name\":\"input__0\",\"shape\":[2,2],\"datatype\":\"FP16\","
                 "\"parameters\":{\"binary_data_size\":16}}]}",
                 ROWS, sizeof(ROWS));
    h_expect_error(&r, 400, "need 8");
    h_resp_free(&r);
    r = h_post(s, "/v2/models/lin/infer",
               "{\"inputs\":[{\"name\":\"input__0\",\"shape\":[1,2],\"datatype\":\"FP16\","
               "\"data\":[1.5,2.5]}]}");
    assert_int_equal(r.status, 200);
    out = json_object_get(json_array_get(json_object_get(r.json, "outputs"), 0), "data");
    assert_true(fabs(json_number_value(json_array_get(out, 0)) - 5.0) < 1e-5);
    h_resp_free(&r);
    h_stop_ok(s); /* a clean exit: no sanitizer report, no leak */
}

/* BF16 in binary and in JSON (NaN and infinities as tokens), widened for a
 * model that computes in FP32. */
static void test_bf16_inputs(void **state)
{
    struct h_srv *s = *state;
    /* 1, 3, -1, 0 in bfloat16. */
    static const uint16_t bf[4] = {0x3f80, 0x4040, 0xbf80, 0x0000};
    struct h_resp r;
    json_t *out;

    lin_model(s);
    h_start(s, NULL);
    r = post_bin(s,
                 "{\"inputs\":[{\"name\":\"input__0\",\"shape\":[2,2],\"datatype\":\"BF16\","
                 "\"parameters\":{\"binary_data_size\":8}}]}",
                 bf, sizeof(bf));
    if (r.status != 200)
        fail_msg("BF16 binary: %ld %s", r.status, r.body);
    out = json_object_get(json_array_get(json_object_get(r.json, "outputs"), 0), "data");
    assert_true(fabs(json_number_value(json_array_get(out, 0)) - 5.0) < 1e-5);
    assert_true(fabs(json_number_value(json_array_get(out, 1)) - 0.0) < 1e-5);
    h_resp_free(&r);
    /* The size is checked as 2 bytes per value. */
    r = post_bin(s,
                 "{\"inputs\":[{\"name\":\"input__0\",\"shape\":[2,2],\"datatype\":\"BF16\","
                 "\"parameters\":{\"binary_data_size\":16}}]}",
                 ROWS, sizeof(ROWS));
    h_expect_error(&r, 400, "need 8");
    h_resp_free(&r);
    r = h_post(s, "/v2/models/lin/infer",
               "{\"inputs\":[{\"name\":\"input__0\",\"shape\":[2,2],\"datatype\":\"BF16\","
               "\"data\":[1.5,2.5,Infinity,1]}]}");
    if (r.status != 200 || strstr(r.body, "\"data\":[5,Infinity]") == NULL)
        fail_msg("BF16 JSON: %ld %s", r.status, r.body);
    h_resp_free(&r);
    r = h_post(s, "/v2/models/lin/infer",
               "{\"inputs\":[{\"name\":\"input__0\",\"shape\":[1,2],\"datatype\":\"BF16\","
               "\"data\":[1.5,\"x\"]}]}");
    h_expect_error(&r, 400, "data[1]");
    h_resp_free(&r);
    h_stop_ok(s); /* a clean exit: no sanitizer report, no leak */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_binary_in_binary_out),
        H_TEST(test_binary_bad_sizes),
        H_TEST(test_content_encoding),
        H_TEST(test_method_not_allowed),
        H_TEST(test_fp16_inputs),
        H_TEST(test_bf16_inputs),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
