/* SPDX-License-Identifier: MIT
 *
 * The xgboost backend's engines through a running server: the same fraud
 * model served compiled (the default) and with "parameters": {"engine":
 * "libxgboost"}; the metadata names each engine, both answer the same
 * request with the same probabilities, and a bad engine name leaves that
 * version UNAVAILABLE with a reason naming the parameter.
 */
#include "harness.h"

static void model(struct h_srv *s, const char *name, const char *params)
{
    char cfg[512];

    h_mkdir("%s/%s/1", s->repo, name);
    assert_int_equal(h_run("cp '%s/examples/models/fraud/1/model.json' '%s/%s/1/'",
                           h_env("QV_SOURCE_DIR"), s->repo, name),
                     0);
    snprintf(cfg, sizeof(cfg),
             "{\"backend\": \"xgboost\", \"inputs\": [{\"name\": \"features\", \"datatype\":"
             " \"FP32\", \"shape\": [-1, 30]}], \"parameters\": {%s}}\n",
             params);
    h_writef(cfg, "%s/%s/config.json", s->repo, name);
}

static json_t *infer(struct h_srv *s, const char *name, const char *body)
{
    char path[256];
    struct h_resp r;
    json_t *data;

    snprintf(path, sizeof(path), "/v2/models/%s/infer", name);
    r = h_post(s, path, body);
    assert_int_equal(r.status, 200);
    data = json_object_get(json_array_get(json_object_get(r.json, "outputs"), 0), "data");
    assert_true(json_is_array(data));
    json_incref(data);
    h_resp_free(&r);
    return data;
}

static void test_engines_agree(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;
    char req[4096];
    char *body;
    json_t *a, *b, *st;

    model(s, "compiled", "");
    model(s, "library", "\"engine\": \"libxgboost\"");
    model(s, "badengine", "\"engine\": \"fastest\"");
    h_start(s, NULL);

    r = h_get(s, "/v2/models/compiled");
    assert_int_equal(r.status, 200);
    assert_string_equal(h_jstr(r.json, "engine"), "compiled");
    h_resp_free(&r);
    r = h_get(s, "/v2/models/library/versions/1");
    assert_int_equal(r.status, 200);
    assert_string_equal(h_jstr(r.json, "engine"), "libxgboost");
    h_resp_free(&r);
    r = h_get(s, "/v2/models/badengine");
    assert_int_equal(r.status, 200);
    st = h_version_state(r.json, 1);
    assert_string_equal(h_jstr(st, "state"), "UNAVAILABLE");
    assert_non_null(strstr(h_jstr(st, "reason"), "parameters.engine"));
    h_resp_free(&r);

    snprintf(req, sizeof(req), "%s/examples/requests/fraud.json", h_env("QV_SOURCE_DIR"));
    body = h_read_file(req, NULL);
    assert_non_null(body);
    a = infer(s, "compiled", body);
    b = infer(s, "library", body);
    assert_true(json_array_size(a) > 1);
    assert_int_equal(json_array_size(a), json_array_size(b));
    for (size_t i = 0; i < json_array_size(a); i++)
        assert_true(fabs(json_number_value(json_array_get(a, i)) -
                         json_number_value(json_array_get(b, i))) <= 1e-6);
    json_decref(a);
    json_decref(b);
    free(body);
    h_stop_ok(s);
}

static const struct CMUnitTest tests[] = {
    H_TEST(test_engines_agree),
};

H_MAIN(tests)
