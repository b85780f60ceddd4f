/* SPDX-License-Identifier: MIT
 *
 * Bad requests and bad repositories against the real server: each gets its
 * HTTP status and a JSON {"error": "..."} that names the field, model or
 * version at fault, and nothing else stops serving.
 */
#include "harness.h"

#define ROW30 "[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]"
#define GOOD_1ROW                                                                                  \
    "{\"inputs\":[{\"name\":\"features\",\"datatype\":\"FP32\",\"shape\":[1,30],\"data\":" ROW30  \
    "}]}"

static void expect_ok(const struct h_srv *s, const char *path, const char *body)
{
    struct h_resp r = h_post(s, path, body);

    if (r.status != 200)
        fail_msg("%s: %ld %s", path, r.status, r.body);
    h_resp_free(&r);
}

static void expect_post_error(const struct h_srv *s, const char *path, const char *body,
                              long status, const char *needle)
{
    struct h_resp r = h_post(s, path, body);

    h_expect_error(&r, status, needle);
    h_resp_free(&r);
}

static void test_malformed_requests(void **state)
{
    struct h_srv *s = *state;
    const char *p = "/v2/models/fraud/versions/1/infer";

    h_copy_examples(s);
    h_start(s, NULL);

    /* Malformed JSON. */
    expect_post_error(s, p, "{\"inputs\": [", 400, "body");
    expect_post_error(s, p, "{\"inputs\": [", 400, "JSON");
    expect_post_error(s, p, "[1,2,3]", 400, "body");
    /* Wrong datatype. */
    expect_post_error(s, p,
                      "{\"inputs\":[{\"name\":\"features\",\"datatype\":\"INT32\",\"shape\":[1,30],"
                      "\"data\":" ROW30 "}]}",
                      400, "inputs[0].datatype");
    expect_post_error(s, p,
                      "{\"inputs\":[{\"name\":\"features\",\"datatype\":\"FLOAT\",\"shape\":[1,30],"
                      "\"data\":" ROW30 "}]}",
                      400, "inputs[0].datatype");
    /* Shape not matching the data length, both ways. */
    expect_post_error(s, p,
                      "{\"inputs\":[{\"name\":\"features\",\"datatype\":\"FP32\",\"shape\":[2,30],"
                      "\"data\":" ROW30 "}]}",
                      400, "inputs[0].data");
    expect_post_error(s, p,
                      "{\"inputs\":[{\"name\":\"features\",\"datatype\":\"FP32\",\"shape\":[1,29],"
                      "\"data\":" ROW30 "}]}",
                      400, "inputs[0].data");
    /* Shape consistent with its data but not with the model's input. */
    expect_post_error(s, p,
                      "{\"inputs\":[{\"name\":\"features\",\"datatype\":\"FP32\",\"shape\":[1,3],"
                      "\"data\":[1,2,3]}]}",
                      400, "inputs[0].shape");
    expect_post_error(s, p,
                      "{\"inputs\":[{\"name\":\"features\",\"datatype\":\"FP32\",\"shape\":[1,3],"
                      "\"data\":[1,2,3]}]}",
                      400, "[-1,30]");
    /* Missing inputs: absent, empty, or wrong name. */
    expect_post_error(s, p, "{\"id\": \"x\"}", 400, "inputs");
    expect_post_error(s, p, "{\"inputs\": []}", 400, "inputs");
    expect_post_error(s, p,
                      "{\"inputs\":[{\"name\":\"feats\",\"datatype\":\"FP32\",\"shape\":[1,30],"
                      "\"data\":" ROW30 "}]}",
                      400, "features");
    expect_post_error(s, p, "{\"inputs\":[{\"name\":\"features\",\"datatype\":\"FP32\"}]}", 400,
                      "inputs[0].shape");
    /* Unknown model and version. */
    expect_post_error(s, "/v2/models/nosuch/infer", GOOD_1ROW, 404, "nosuch");
    expect_post_error(s, "/v2/models/fraud/versions/7/infer", GOOD_1ROW, 404, "7");
    expect_post_error(s, "/v2/models/fraud/versions/x7/infer", GOOD_1ROW, 400, "version");
    {
        struct h_resp r = h_get(s, "/v2/models/nosuch");
        h_expect_error(&r, 404, "nosuch");
        h_resp_free(&r);
        r = h_get(s, "/v2/models/fraud/versions/7");
        h_expect_error(&r, 404, "7");
        h_resp_free(&r);
    }
    /* After all that, the model still serves. */
    expect_ok(s, p, GOOD_1ROW);
    h_stop_ok(s);
}

/* JSON tensor data must follow the declared shape: flat with exactly numel
 * values, or nested exactly as the shape. Nothing is allocated before that is
 * known, so a huge declared shape with little data is a 400, not a 503. */
static void test_tensor_structure(void **state)
{
    struct h_srv *s = *state;
    const char *p = "/v2/models/m/infer";

    h_test_model(s, "m", "");
    h_test_version(s, "m", 1, "{\"features\": 2, \"linear\": true}");
    h_start(s, NULL);
    /* Flat and exactly nested are both served. */
    expect_ok(s, p, "{\"inputs\":[{\"name\":\"input__0\",\"datatype\":\"FP32\","
                    "\"shape\":[2,2],\"data\":[1,2,3,4]}]}");
    expect_ok(s, p, "{\"inputs\":[{\"name\":\"input__0\",\"datatype\":\"FP32\","
                    "\"shape\":[2,2],\"data\":[[1,2],[3,4]]}]}");
    /* Ragged: the right count of values, but rows of 3 and 1. */
    expect_post_error(s, p,
                      "{\"inputs\":[{\"name\":\"input__0\",\"datatype\":\"FP32\","
                      "\"shape\":[2,2],\"data\":[[1,2,3],[4]]}]}",
                      400, "input__0");
    expect_post_error(s, p,
                      "{\"inputs\":[{\"name\":\"input__0\",\"datatype\":\"FP32\","
                      "\"shape\":[2,2],\"data\":[[1,2,3],[4]]}]}",
                      400, "ragged");
    /* Mixed depth: an array beside plain values. */
    expect_post_error(s, p,
                      "{\"inputs\":[{\"name\":\"input__0\",\"datatype\":\"FP32\","
                      "\"shape\":[2,2],\"data\":[1,[2,3],4]}]}",
                      400, "input__0");
    /* Nested one level too deep. */
    expect_post_error(s, p,
                      "{\"inputs\":[{\"name\":\"input__0\",\"datatype\":\"FP32\","
                      "\"shape\":[2,2],\"data\":[[[1],[2]],[[3],[4]]]}]}",
                      400, "input__0");
    /* 2^32 elements declared, two given: 400 naming the input, no Retry-After. */
    {
        struct h_resp r = h_post(s, p,
                                 "{\"inputs\":[{\"name\":\"input__0\",\"datatype\":\"FP32\","
                                 "\"shape\":[2147483648,2],\"data\":[1,2]}]}");
        char v[32];
        h_expect_error(&r, 400, "input__0");
        assert_false(h_header(&r, "Retry-After", v, sizeof(v)));
        h_resp_free(&r);
        r = h_post(s, p,
                   "{\"inputs\":[{\"name\":\"input__0\",\"datatype\":\"FP32\","
                   "\"shape\":[65536,65536],\"data\":[1,2]}]}");
        h_expect_error(&r, 400, "input__0");
        assert_false(h_header(&r, "Retry-After", v, sizeof(v)));
        h_resp_free(&r);
    }
    /* Deep nesting: past jansson's depth bound (2048) the body is invalid JSON;
     * within it, data nested deeper than the shape is refused before decoding. */
    {
        size_t depth = 3000, len = 0;
        char *deep = malloc(2 * depth + 200);
        assert_non_null(deep);
        len += (size_t)sprintf(deep, "{\"inputs\":[{\"name\":\"input__0\",\"datatype\":"
                                     "\"FP32\",\"shape\":[1,2],\"data\":");
        for (size_t i = 0; i < depth; i++)
            deep[len++] = '[';
        for (size_t i = 0; i < depth; i++)
            deep[len++] = ']';
        strcpy(deep + len, "}]}");
        expect_post_error(s, p, deep, 400, "JSON");
        len = (size_t)sprintf(deep, "{\"inputs\":[{\"name\":\"input__0\",\"datatype\":"
                                    "\"FP32\",\"shape\":[1,2],\"data\":");
        for (size_t i = 0; i < 500; i++)
            deep[len++] = '[';
        deep[len++] = '1';
        for (size_t i = 0; i < 500; i++)
            deep[len++] = ']';
        strcpy(deep + len, "}]}");
        expect_post_error(s, p, deep, 400, "input__0");
        free(deep);
    }
    /* TF Serving rows: ragged instances are refused too. */
    expect_post_error(s, "/v1/models/m:predict", "{\"instances\": [[1,2],[3]]}", 400,
                      "input__0");
    expect_post_error(s, "/v1/models/m:predict", "{\"instances\": [[1,2],[3,[4]]]}", 400,
                      "input__0");
    expect_ok(s, "/v1/models/m:predict", "{\"instances\": [[1,2],[3,4]]}");
    h_stop_ok(s);
}

static void test_body_over_limit_is_413(void **state)
{
    struct h_srv *s = *state;
    size_t n = 8192;
    char *big = malloc(n + 1);
    struct h_resp r;

    h_copy_examples(s);
    h_start(s, "--max-body-bytes", "2048", NULL);
    /* A syntactically fine body whose Content-Length is over the limit. */
    memset(big, ' ', n);
    memcpy(big, GOOD_1ROW, strlen(GOOD_1ROW));
    big[n] = '\0';
    r = h_req_n(s, "POST", "/v2/models/fraud/versions/1/infer", big, n);
    h_expect_error(&r, 413, "2048");
    h_resp_free(&r);
    /* Under the limit, the same request is served. */
    expect_ok(s, "/v2/models/fraud/versions/1/infer", GOOD_1ROW);
    free(big);
    h_stop_ok(s);
}

static void test_corrupt_version_is_unavailable(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;
    json_t *e;
    char reason[64];

    h_copy_examples(s);
    h_mkdir("%s/fraud/3", s->repo);
    h_writef("{\"learner\": this is not a model", "%s/fraud/3/model.json", s->repo);
    h_start(s, NULL);

    r = h_get(s, "/v2/models/fraud");
    assert_int_equal(r.status, 200);
    e = h_version_state(r.json, 3);
    assert_non_null(e);
    assert_string_equal(h_jstr(e, "state"), "UNAVAILABLE");
    assert_true(strlen(h_jstr(e, "reason")) > 0);
    snprintf(reason, sizeof(reason), "%.24s", h_jstr(e, "reason"));
    assert_string_equal(h_jstr(h_version_state(r.json, 1), "state"), "READY");
    assert_string_equal(h_jstr(h_version_state(r.json, 2), "state"), "READY");
    h_resp_free(&r);

    /* Infer on it: 503 with its state and reason. */
    r = h_post(s, "/v2/models/fraud/versions/3/infer", GOOD_1ROW);
    h_expect_error(&r, 503, "UNAVAILABLE");
    h_expect_error(&r, 503, reason);
    h_resp_free(&r);
    r = h_get(s, "/v2/models/fraud/versions/3/ready");
    assert_int_equal(r.status, 503);
    assert_true(json_is_false(json_object_get(r.json, "ready")));
    h_resp_free(&r);

    /* TF Serving status shows it too. */
    r = h_get(s, "/v1/models/fraud/versions/3");
    assert_int_equal(r.status, 200);
    e = json_array_get(json_object_get(r.json, "model_version_status"), 0);
    assert_string_equal(h_jstr(json_object_get(e, "status"), "error_code"), "UNAVAILABLE");
    h_resp_free(&r);

    /* Versions 1 and 2 keep serving; the default is 2, not the broken 3. */
    expect_ok(s, "/v2/models/fraud/versions/1/infer", GOOD_1ROW);
    expect_ok(s, "/v2/models/fraud/versions/2/infer", GOOD_1ROW);
    r = h_post(s, "/v2/models/fraud/infer", GOOD_1ROW);
    assert_int_equal(r.status, 200);
    assert_string_equal(h_jstr(r.json, "model_version"), "2");
    h_resp_free(&r);
    h_stop_ok(s);
}

static void test_bad_configs(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;
    const char *err;
    bool seen_broken = false, seen_nobackend = false;
    json_t *e;
    size_t i;

    h_copy_examples(s);
    /* Malformed config.json. */
    h_mkdir("%s/broken/1", s->repo);
    h_writef("{\"backend\": \"test\", ", "%s/broken/config.json", s->repo);
    h_writef("{\"features\": 2}", "%s/broken/1/model.test", s->repo);
    /* A config naming a backend that does not exist. */
    h_mkdir("%s/nobackend/1", s->repo);
    h_writef("{\"backend\": \"tensorflow_savedmodel\"}", "%s/nobackend/config.json", s->repo);
    h_writef("{\"features\": 2}", "%s/nobackend/1/model.test", s->repo);
    h_start(s, NULL);

    r = h_get(s, "/v2/models/broken");
    assert_int_equal(r.status, 200);
    err = h_jstr(r.json, "config_error");
    assert_non_null(err);
    assert_non_null(strstr(err, "config.json"));
    h_resp_free(&r);

    r = h_get(s, "/v2/models/nobackend");
    assert_int_equal(r.status, 200);
    err = h_jstr(r.json, "config_error");
    assert_non_null(err);
    assert_non_null(strstr(err, "backend"));
    assert_non_null(strstr(err, "tensorflow_savedmodel"));
    h_resp_free(&r);

    /* Inference on them: 503 with the config error, not a crash. */
    expect_post_error(s, "/v2/models/broken/infer",
                      "{\"inputs\":[{\"name\":\"input__0\",\"datatype\":\"FP32\",\"shape\":[1,2],"
                      "\"data\":[1,2]}]}",
                      503, "config.json");
    expect_post_error(s, "/v2/models/nobackend/infer",
                      "{\"inputs\":[{\"name\":\"input__0\",\"datatype\":\"FP32\",\"shape\":[1,2],"
                      "\"data\":[1,2]}]}",
                      503, "tensorflow_savedmodel");

    /* The repository index lists both with their errors. */
    r = h_get(s, "/v2/repository/index");
    assert_int_equal(r.status, 200);
    json_array_foreach(r.json, i, e) {
        const char *name = h_jstr(e, "name"), *reason = h_jstr(e, "reason");
        if (strcmp(name, "broken") == 0) {
            seen_broken = true;
            assert_string_not_equal(h_jstr(e, "state"), "READY");
            assert_non_null(strstr(reason, "config.json"));
        } else if (strcmp(name, "nobackend") == 0) {
            seen_nobackend = true;
            assert_string_not_equal(h_jstr(e, "state"), "READY");
            assert_non_null(strstr(reason, "tensorflow_savedmodel"));
        }
    }
    assert_true(seen_broken && seen_nobackend);
    h_resp_free(&r);

    /* The other models keep serving. */
    expect_ok(s, "/v2/models/fraud/infer", GOOD_1ROW);
    expect_ok(s, "/v2/models/housing/infer",
              "{\"inputs\":[{\"name\":\"features\",\"datatype\":\"FP32\",\"shape\":[1,8],"
              "\"data\":[1,2,3,4,5,6,7,8]}]}");
    h_stop_ok(s);
}

static void test_load_unknown_version_is_404(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;

    h_copy_examples(s);
    h_start(s, NULL);
    r = h_post(s, "/v2/repository/models/fraud/versions/9/load", NULL);
    h_expect_error(&r, 404, "9");
    h_resp_free(&r);
    r = h_post(s, "/v2/repository/models/fraud/versions/9/unload", NULL);
    h_expect_error(&r, 404, "9");
    h_resp_free(&r);
    r = h_post(s, "/v2/repository/models/nosuch/load", NULL);
    h_expect_error(&r, 404, "nosuch");
    h_resp_free(&r);
    expect_ok(s, "/v2/models/fraud/versions/1/infer", GOOD_1ROW);
    h_stop_ok(s);
}

static const struct CMUnitTest tests[] = {
    H_TEST(test_malformed_requests),
    H_TEST(test_tensor_structure),
    H_TEST(test_body_over_limit_is_413),
    H_TEST(test_corrupt_version_is_unavailable),
    H_TEST(test_bad_configs),
    H_TEST(test_load_unknown_version_is_404),
};

H_MAIN(tests)
