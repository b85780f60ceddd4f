/* SPDX-License-Identifier: MIT
 *
 * Protocol fidelity, part 2: Triton's statistics extension
 * (docs/protocol/extension_statistics.md), the model configuration
 * extension (extension_model_configuration.md), the repository index's
 * "ready" filter and load's parameters (extension_model_repository.md),
 * the extensions GET /v2 lists, and quiver's own statistics moved to
 * /quiver-stats. The requests are those tritonclient.http sends
 * (tritonclient/http/_client.py: get_inference_statistics,
 * get_model_config, get_model_repository_index, load_model with config).
 */
#include "integration/harness.h"

static const char *INFER = "{\"inputs\":[{\"name\":\"input__0\",\"shape\":[2,2],"
                           "\"datatype\":\"FP32\",\"data\":[1,3,-1,0]}]}";

static void two_models(struct h_srv *s)
{
    h_test_model(s, "lin", "\"max_batch_size\": 8");
    h_test_version(s, "lin", 1, "{\"features\": 2, \"linear\": true}");
    h_test_model(s, "other", "");
    h_test_version(s, "other", 1, "{\"features\": 2}");
}

static json_t *dur_field(json_t *stats, const char *key)
{
    return json_object_get(json_object_get(stats, "inference_stats"), key);
}

static void test_triton_statistics(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;
    json_t *ms, *e;

    two_models(s);
    h_start(s, NULL);
    for (int i = 0; i < 3; i++) {
        r = h_post(s, "/v2/models/lin/infer", INFER);
        assert_int_equal(r.status, 200);
        h_resp_free(&r);
    }
    r = h_post(s, "/v2/models/lin/infer", "{\"inputs\":[]}"); /* a failure */
    assert_int_equal(r.status, 400);
    h_resp_free(&r);

    r = h_get(s, "/v2/models/lin/stats");
    assert_int_equal(r.status, 200);
    ms = json_object_get(r.json, "model_stats");
    assert_int_equal(json_array_size(ms), 1);
    e = json_array_get(ms, 0);
    assert_string_equal(h_jstr(e, "name"), "lin");
    assert_string_equal(h_jstr(e, "version"), "1");
    assert_true(json_is_integer(json_object_get(e, "last_inference")));
    assert_int_equal(json_integer_value(json_object_get(e, "inference_count")), 6); /* rows */
    assert_true(json_integer_value(json_object_get(e, "execution_count")) >= 1);
    assert_int_equal(json_integer_value(json_object_get(dur_field(e, "success"), "count")), 3);
    assert_true(json_integer_value(json_object_get(dur_field(e, "success"), "ns")) > 0);
    for (const char *const *k = (const char *const[]){"fail", "queue", "compute_input",
                                                      "compute_infer", "compute_output", NULL};
         *k; k++) {
        json_t *d = dur_field(e, *k);
        if (!json_is_integer(json_object_get(d, "count")) ||
            !json_is_integer(json_object_get(d, "ns")))
            fail_msg("inference_stats.%s lacks count/ns: %s", *k, r.body);
    }
    assert_true(json_is_array(json_object_get(e, "batch_stats")));
    h_resp_free(&r);

    /* Every model; one version; unknown ones. */
    r = h_get(s, "/v2/models/stats");
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "model_stats")), 2);
    h_resp_free(&r);
    r = h_get(s, "/v2/models/lin/versions/1/stats");
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "model_stats")), 1);
    h_resp_free(&r);
    r = h_get(s, "/v2/models/lin/versions/7/stats");
    h_expect_error(&r, 404, "version 7");
    h_resp_free(&r);
    r = h_get(s, "/v2/models/lin/versions/x/stats");
    h_expect_error(&r, 400, "version");
    h_resp_free(&r);
    r = h_get(s, "/v2/models/nope/stats");
    h_expect_error(&r, 404, "nope");
    h_resp_free(&r);

    /* quiver's own figures live at /quiver-stats. */
    r = h_get(s, "/v2/models/lin/quiver-stats");
    assert_int_equal(r.status, 200);
    assert_non_null(json_object_get(r.json, "versions"));
    h_resp_free(&r);
    r = h_get(s, "/v2/models/lin/versions/1/quiver-stats?window=10");
    assert_int_equal(r.status, 200);
    h_resp_free(&r);

    /* GET /v2 lists the extensions really there. */
    r = h_get(s, "/v2");
    assert_int_equal(r.status, 200);
    {
        json_t *ext = json_object_get(r.json, "extensions"), *v;
        size_t i;
        bool bin = false, stats = false, cfg = false;
        json_array_foreach(ext, i, v) {
            const char *n = json_string_value(v);
            bin |= strcmp(n, "binary_tensor_data") == 0;
            stats |= strcmp(n, "statistics") == 0;
            cfg |= strcmp(n, "model_configuration") == 0;
            assert_true(strstr(n, "shared_memory") == NULL && strcmp(n, "trace") != 0 &&
                        strcmp(n, "logging") != 0 && strcmp(n, "sequence") != 0);
        }
        assert_true(bin && stats && cfg);
    }
    h_resp_free(&r);
    h_stop_ok(s); /* a clean exit: no sanitizer report, no leak */
}

static void test_model_config_and_repository(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;
    json_t *in;

    two_models(s);
    /* A model whose config does not load: never READY. */
    h_mkdir("%s/broken", s->repo);
    h_writef("{\"backend\": \"nope\"}", "%s/broken/config.json", s->repo);
    h_start(s, NULL);

    r = h_get(s, "/v2/models/lin/config");
    assert_int_equal(r.status, 200);
    assert_string_equal(h_jstr(r.json, "name"), "lin");
    assert_string_equal(h_jstr(r.json, "backend"), "test");
    assert_int_equal(json_integer_value(json_object_get(r.json, "max_batch_size")), 8);
    in = json_array_get(json_object_get(r.json, "input"), 0);
    assert_string_equal(h_jstr(in, "name"), "input__0");
    assert_string_equal(h_jstr(in, "data_type"), "TYPE_FP32");
    /* The batch dimension is implied by max_batch_size, as in Triton. */
    assert_int_equal(json_array_size(json_object_get(in, "dims")), 1);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(in, "dims"), 0)), 2);
    assert_non_null(json_object_get(r.json, "output"));
    h_resp_free(&r);
    r = h_get(s, "/v2/models/lin/versions/1/config");
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    r = h_get(s, "/v2/models/nope/config");
    h_expect_error(&r, 404, "nope");
    h_resp_free(&r);

    /* Index: all, ready only, and a "ready" that is not a boolean. */
    r = h_post(s, "/v2/repository/index", "{}");
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 3);
    h_resp_free(&r);
    r = h_post(s, "/v2/repository/index", "{\"ready\": true}");
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 2);
    for (size_t i = 0; i < 2; i++)
        assert_string_equal(h_jstr(json_array_get(r.json, i), "state"), "READY");
    h_resp_free(&r);
    r = h_post(s, "/v2/repository/index", "{\"ready\": \"yes\"}");
    h_expect_error(&r, 400, "ready");
    h_resp_free(&r);
    r = h_post(s, "/v2/repository/index", "{\"ready\": true, \"all\": 1}");
    h_expect_error(&r, 400, "all");
    h_resp_free(&r);
    r = h_post(s, "/v2/repository/index", "[1]");
    h_expect_error(&r, 400, "body");
    h_resp_free(&r);

    /* Load with a configuration override: refused, naming the field. */
    r = h_post(s, "/v2/repository/models/lin/load",
               "{\"parameters\": {\"config\": \"{\\\"max_batch_size\\\": 4}\"}}");
    h_expect_error(&r, 400, "parameters.config");
    h_resp_free(&r);
    r = h_post(s, "/v2/repository/models/lin/load",
               "{\"parameters\": {\"file:1/model.test\": \"e30=\"}}");
    h_expect_error(&r, 400, "parameters.file:1/model.test");
    h_resp_free(&r);
    r = h_post(s, "/v2/repository/models/lin/load", "{\"parameters\": 3}");
    h_expect_error(&r, 400, "parameters");
    h_resp_free(&r);
    r = h_post(s, "/v2/repository/models/lin/load", "{}");
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    r = h_post(s, "/v2/repository/models/lin/load", NULL);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    /* The model kept its configuration. */
    r = h_get(s, "/v2/models/lin/config");
    assert_int_equal(json_integer_value(json_object_get(r.json, "max_batch_size")), 8);
    h_resp_free(&r);
    h_stop_ok(s); /* a clean exit: no sanitizer report, no leak */
}

/* The model's reason in the repository index. */
static const char *index_reason(const struct h_resp *r, const char *model)
{
    json_t *e;
    size_t i;

    json_array_foreach(r->json, i, e) {
        if (strcmp(h_jstr(e, "name"), model) == 0)
            return h_jstr(e, "reason");
    }
    return NULL;
}

/* Triton's config field names (model_config.proto as config.json takes it):
 * loaded with Triton's meaning, or refused naming the key. */
static void test_triton_config_names(void **state)
{
    struct h_srv *s = *state;
    static const struct {
        const char *model, *extra, *needle;
    } bad[] = {
        {"b_io_key", "\"input\": [{\"name\": \"input__0\", \"data_type\": \"TYPE_FP32\", "
                     "\"dims\": [2], \"format\": \"FORMAT_NHWC\"}]", "input[0].format"},
        {"b_type", "\"input\": [{\"name\": \"input__0\", \"data_type\": \"TYPE_BF16\", "
                   "\"dims\": [2]}]", "input[0].data_type"},
        {"b_both", "\"input\": [{\"name\": \"input__0\", \"datatype\": \"FP32\", "
                   "\"data_type\": \"TYPE_FP32\", \"shape\": [-1, 2]}]", "not both"},
        {"b_db", "\"dynamic_batching\": {\"priority_levels\": 2}", "dynamic_batching.priority_levels"},
        {"b_ig", "\"instance_group\": [{\"count\": 2, \"kind\": \"KIND_GPU\"}]",
         "instance_group[0].kind"},
        {"b_ig2", "\"instance_group\": [{\"count\": 1, \"gpus\": [0]}]", "instance_group[0].gpus"},
        {"b_top", "\"sequence_batching\": {}", "sequence_batching"},
    };
    struct h_resp r;
    json_t *in;

    /* INT32 is really INT32 now (it used to load as FP32). */
    h_test_model(s, "tri", "\"max_batch_size\": 8, \"input\": [{\"name\": \"input__0\", "
                           "\"data_type\": \"TYPE_FP32\", \"dims\": [2]}], \"output\": "
                           "[{\"name\": \"output__0\", \"data_type\": \"TYPE_FP32\", \"dims\": []}], "
                           "\"dynamic_batching\": {\"max_queue_delay_microseconds\": 100, "
                           "\"preferred_batch_size\": [4]}, "
                           "\"instance_group\": [{\"count\": 1, \"kind\": \"KIND_CPU\"}]");
    h_test_version(s, "tri", 1, "{\"features\": 2, \"linear\": true}");
    h_test_model(s, "i32", "\"max_batch_size\": 8, \"input\": [{\"name\": \"input__0\", "
                           "\"data_type\": \"TYPE_INT32\", \"dims\": [2]}]");
    h_test_version(s, "i32", 1, "{\"features\": 2, \"linear\": true}");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        h_test_model(s, bad[i].model, bad[i].extra);
        h_test_version(s, bad[i].model, 1, "{\"features\": 2}");
    }
    h_start(s, NULL);
    r = h_get(s, "/v2/models/tri/config");
    assert_int_equal(r.status, 200);
    in = json_array_get(json_object_get(r.json, "input"), 0);
    assert_string_equal(h_jstr(in, "data_type"), "TYPE_FP32");
    assert_int_equal(json_array_size(json_object_get(in, "dims")), 1);
    h_resp_free(&r);
    r = h_get(s, "/v2/models/tri");
    assert_int_equal(r.status, 200);
    in = json_array_get(json_object_get(r.json, "inputs"), 0);
    assert_int_equal(json_array_size(json_object_get(in, "shape")), 2);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(in, "shape"), 0)), -1);
    h_resp_free(&r);
    r = h_post(s, "/v2/models/tri/infer", INFER);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);

    r = h_post(s, "/v2/repository/index", "{}");
    assert_int_equal(r.status, 200);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = index_reason(&r, bad[i].model);
        if (why == NULL || strstr(why, bad[i].needle) == NULL)
            fail_msg("%s: reason \"%s\" does not name %s", bad[i].model, why ? why : "(none)",
                     bad[i].needle);
    }
    h_resp_free(&r);
    /* TYPE_INT32 means INT32: the test backend computes in FP32, so the
     * version is refused with a reason naming both, not served as FP32. */
    r = h_post(s, "/v2/repository/index", "{}");
    {
        const char *why = index_reason(&r, "i32");
        if (why == NULL || strstr(why, "INT32") == NULL)
            fail_msg("i32: reason \"%s\" does not name INT32", why ? why : "(none)");
    }
    h_resp_free(&r);
    h_stop_ok(s); /* a clean exit: no sanitizer report, no leak */
}

/* Readiness as Kubernetes probes (and Triton's default) expect it: 200 only
 * when every model the repository asks for has a READY version; the 503
 * names the model that does not. --strict-readiness=false restores 200
 * whenever the server is serving. */
static void test_strict_readiness(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;
    json_t *e;

    h_test_model(s, "good", "");
    h_test_version(s, "good", 1, "{\"features\": 2}");
    h_test_model(s, "bad", "");
    h_test_version(s, "bad", 1, "{\"fail_load\": \"weights are corrupt\"}");
    h_start(s, NULL);
    h_wait_state(s, "bad", 1, "UNAVAILABLE");
    r = h_get(s, "/v2/health/ready");
    if (r.status != 503)
        fail_msg("strict, a model failed: %ld %s", r.status, r.body);
    assert_true(json_is_false(json_object_get(r.json, "ready")));
    assert_int_equal(json_array_size(json_object_get(r.json, "not_ready")), 1);
    e = json_array_get(json_object_get(r.json, "not_ready"), 0);
    assert_string_equal(h_jstr(e, "name"), "bad");
    assert_string_equal(h_jstr(e, "state"), "UNAVAILABLE");
    assert_non_null(strstr(h_jstr(e, "reason"), "weights are corrupt"));
    h_resp_free(&r);
    /* Liveness is unaffected, and so is serving the good model. */
    r = h_get(s, "/v2/health/live");
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    r = h_get(s, "/v2/models/good/ready");
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    /* Unloaded on purpose, the model is no longer asked for: ready again. */
    r = h_post(s, "/v2/repository/models/bad/unload", "");
    if (r.status != 200)
        fail_msg("unload: %ld %s", r.status, r.body);
    h_resp_free(&r);
    r = h_get(s, "/v2/health/ready");
    if (r.status != 200)
        fail_msg("strict, the broken model unloaded: %ld %s", r.status, r.body);
    assert_true(json_is_true(json_object_get(r.json, "ready")));
    h_resp_free(&r);
    h_stop_ok(s);

    /* The same repository with --strict-readiness=false: 200 while serving. */
    h_start(s, "--strict-readiness=false", NULL);
    h_wait_state(s, "bad", 1, "UNAVAILABLE");
    r = h_get(s, "/v2/health/ready");
    if (r.status != 200)
        fail_msg("lax: %ld %s", r.status, r.body);
    h_resp_free(&r);
    h_stop_ok(s);
}

static void test_strict_readiness_flag(void **state)
{
    struct h_srv *s = *state;
    char cmd[1200];

    (void)s;
    snprintf(cmd, sizeof(cmd), "'%s' serve --repo /nonexistent --strict-readiness=maybe "
             ">/dev/null 2>&1", h_env("QUIVER_BIN"));
    assert_int_not_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_triton_statistics),
        H_TEST(test_model_config_and_repository),
        H_TEST(test_triton_config_names),
        H_TEST(test_strict_readiness),
        H_TEST(test_strict_readiness_flag),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
