/* SPDX-License-Identifier: MIT
 *
 * Protocol fidelity, part 3: TF Serving's REST API details (api_rest.md:
 * GET /v1/models/{m}[/versions/{v}]/metadata with a signature_def,
 * signature_name other than serving_default refused, ragged instances
 * refused) and non-finite numbers in request JSON (NaN, Infinity, -Infinity
 * as Python's json module writes them, e.g. numpy arrays through
 * tritonclient's set_data_from_numpy(binary_data=False)), written back so
 * that the three stay apart.
 */
#include "integration/harness.h"

static void lin_model(struct h_srv *s)
{
    h_test_model(s, "lin", "");
    h_test_version(s, "lin", 1, "{\"features\": 2, \"linear\": true, \"scale\": 2.0, \"bias\": 1.0}");
}

static void test_tfs_metadata_and_signature(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;
    json_t *sig, *in;

    lin_model(s);
    h_start(s, NULL);
    /* The shape of api_rest.md's "Model Metadata API" answer. */
    r = h_get(s, "/v1/models/lin/metadata");
    assert_int_equal(r.status, 200);
    assert_string_equal(h_jstr(json_object_get(r.json, "model_spec"), "name"), "lin");
    assert_string_equal(h_jstr(json_object_get(r.json, "model_spec"), "version"), "1");
    sig = json_object_get(json_object_get(json_object_get(json_object_get(r.json, "metadata"),
                                                          "signature_def"),
                                          "signature_def"),
                          "serving_default");
    assert_non_null(sig);
    assert_string_equal(h_jstr(sig, "method_name"), "tensorflow/serving/predict");
    in = json_object_get(json_object_get(sig, "inputs"), "input__0");
    assert_non_null(in);
    assert_string_equal(h_jstr(in, "dtype"), "DT_FLOAT");
    assert_int_equal(json_array_size(json_object_get(json_object_get(in, "tensor_shape"), "dim")),
                     2);
    assert_non_null(json_object_get(json_object_get(sig, "outputs"), "output__0"));
    h_resp_free(&r);
    r = h_get(s, "/v1/models/lin/versions/1/metadata");
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    r = h_get(s, "/v1/models/lin/versions/3/metadata");
    h_expect_error(&r, 404, "version 3");
    h_resp_free(&r);
    r = h_get(s, "/v1/models/nope/metadata");
    h_expect_error(&r, 404, "nope");
    h_resp_free(&r);

    /* signature_name: serving_default passes, anything else is refused. */
    r = h_post(s, "/v1/models/lin:predict",
               "{\"signature_name\": \"serving_default\", \"instances\": [[1, 3]]}");
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    r = h_post(s, "/v1/models/lin:predict",
               "{\"signature_name\": \"classify_x\", \"instances\": [[1, 3]]}");
    h_expect_error(&r, 400, "signature_name");
    h_resp_free(&r);
    r = h_post(s, "/v1/models/lin:predict", "{\"signature_name\": 3, \"instances\": [[1, 3]]}");
    h_expect_error(&r, 400, "signature_name");
    h_resp_free(&r);
    /* Ragged instances (json_tensor_test.cc's mismatched rows). */
    r = h_post(s, "/v1/models/lin:predict", "{\"instances\": [[1, 3], [1]]}");
    h_expect_error(&r, 400, "instances");
    h_resp_free(&r);
    r = h_post(s, "/v1/models/lin:predict", "{\"instances\": [[1, 3], [[1], [2]]]}");
    h_expect_error(&r, 400, "instances");
    h_resp_free(&r);
    h_stop_ok(s); /* a clean exit: no sanitizer report, no leak */
}

static void test_nonfinite_values(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;

    lin_model(s);
    h_start(s, NULL);
    /* Rows: NaN -> NaN; +Inf -> Infinity; -Inf -> -Infinity; finite -> 5. */
    r = h_post(s, "/v2/models/lin/infer",
               "{\"inputs\":[{\"name\":\"input__0\",\"shape\":[4,2],\"datatype\":\"FP32\","
               "\"data\":[NaN,1,Infinity,1,-Infinity,1,1,3]}]}");
    if (r.status != 200)
        fail_msg("non-finite input: %ld %s", r.status, r.body);
    if (strstr(r.body, "\"data\":[NaN,Infinity,-Infinity,5]") == NULL)
        fail_msg("non-finite outputs not written apart: %s", r.body);
    h_resp_free(&r);
    /* TF Serving too, and the tokens inside strings are left alone. */
    r = h_post(s, "/v1/models/lin:predict",
               "{\"signature_name\":\"serving_default\",\"instances\":[[-Infinity,0]]}");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "-Infinity"));
    h_resp_free(&r);
    r = h_post(s, "/v2/models/lin/infer",
               "{\"id\":\"NaN Infinity\",\"inputs\":[{\"name\":\"input__0\",\"shape\":[1,2],"
               "\"datatype\":\"FP32\",\"data\":[1,3]}]}");
    assert_int_equal(r.status, 200);
    assert_string_equal(h_jstr(r.json, "id"), "NaN Infinity");
    h_resp_free(&r);
    /* Other words are still invalid JSON; a non-finite integer is refused. */
    r = h_post(s, "/v2/models/lin/infer",
               "{\"inputs\":[{\"name\":\"input__0\",\"shape\":[1,2],\"datatype\":\"FP32\","
               "\"data\":[Nope,1]}]}");
    h_expect_error(&r, 400, "invalid JSON");
    h_resp_free(&r);
    r = h_post(s, "/v2/models/lin/infer",
               "{\"inputs\":[{\"name\":\"input__0\",\"shape\":[1,2],\"datatype\":\"INT64\","
               "\"data\":[NaN,1]}]}");
    h_expect_error(&r, 400, "inputs[0].data[0]");
    h_resp_free(&r);
    r = h_post(s, "/v2/models/lin/infer",
               "{\"inputs\":[{\"name\":\"input__0\",\"shape\":[1,2],\"datatype\":\"FP32\","
               "\"data\":[\"nan\",1]}]}");
    h_expect_error(&r, 400, "inputs[0].data[0]");
    h_resp_free(&r);
    h_stop_ok(s); /* a clean exit: no sanitizer report, no leak */
}

/* api_rest.md: "/v1/models/${MODEL_NAME}[/versions/${VERSION}|/labels/${LABEL}]". */
static void test_tfs_labels(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;

    h_test_model(s, "lin", "");
    h_test_version(s, "lin", 1, "{\"features\": 2, \"linear\": true, \"scale\": 2.0, \"bias\": 1.0}");
    h_test_version(s, "lin", 2, "{\"features\": 2, \"linear\": true, \"scale\": 0.0, \"bias\": 7.0}");
    h_start(s, NULL);
    r = h_req(s, "PUT", "/v2/models/lin/labels/stable", "{\"version\": 1}");
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    r = h_post(s, "/v1/models/lin/labels/stable:predict", "{\"instances\": [[1, 3]]}");
    assert_int_equal(r.status, 200);
    assert_true(fabs(json_number_value(json_array_get(json_object_get(r.json, "predictions"), 0)) -
                     5.0) < 1e-5); /* version 1, not the default (2) */
    h_resp_free(&r);
    r = h_get(s, "/v1/models/lin/labels/stable");
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "model_version_status")), 1);
    assert_string_equal(h_jstr(json_array_get(json_object_get(r.json, "model_version_status"), 0),
                               "version"), "1");
    h_resp_free(&r);
    r = h_get(s, "/v1/models/lin/labels/stable/metadata");
    assert_int_equal(r.status, 200);
    assert_string_equal(h_jstr(json_object_get(r.json, "model_spec"), "version"), "1");
    h_resp_free(&r);
    r = h_post(s, "/v1/models/lin/labels/canary:predict", "{\"instances\": [[1, 3]]}");
    h_expect_error(&r, 404, "canary");
    h_resp_free(&r);
    r = h_get(s, "/v1/models/lin/labels/canary");
    h_expect_error(&r, 404, "canary");
    h_resp_free(&r);
    h_stop_ok(s); /* a clean exit: no sanitizer report, no leak */
}

/* :classify and :regress (TF Serving's api_rest.md "Classify and Regress
 * API"): fraud (a binary probability) gives classes "0"/"1" with scores 1-p
 * and p; housing (regression) gives one number per row. */
static json_t *ref_rows(const char *model, json_t **outputs)
{
    char path[1024];
    json_t *root;

    snprintf(path, sizeof(path), "%s/examples/models/%s/reference.json", h_env("QV_SOURCE_DIR"),
             model);
    root = json_load_file(path, 0, NULL);
    assert_non_null(root);
    *outputs = json_object_get(root, "outputs");
    return root;
}

static char *dump_new(json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);

    json_decref(j);
    return text;
}

static void test_tfs_classify_regress(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;
    json_t *ref, *outs, *want, *res, *row;
    char *body;
    size_t i;

    h_copy_examples(s);
    h_start(s, NULL);

    ref = ref_rows("fraud", &outs);
    want = json_object_get(outs, "1");
    body = dump_new(json_pack("{s:O}", "instances", json_object_get(ref, "inputs")));
    r = h_post(s, "/v1/models/fraud/versions/1:classify", body);
    if (r.status != 200)
        fail_msg("classify: %ld %s", r.status, r.body);
    res = json_object_get(r.json, "results");
    if (json_array_size(res) != json_array_size(want))
        fail_msg("classify body: %s", r.body);
    assert_int_equal(json_array_size(res), json_array_size(want));
    json_array_foreach(res, i, row) {
        double p = json_number_value(json_array_get(want, i));
        assert_int_equal(json_array_size(row), 2);
        assert_string_equal(json_string_value(json_array_get(json_array_get(row, 0), 0)), "0");
        assert_string_equal(json_string_value(json_array_get(json_array_get(row, 1), 0)), "1");
        assert_float_equal(json_number_value(json_array_get(json_array_get(row, 0), 1)), 1 - p,
                           1e-5);
        assert_float_equal(json_number_value(json_array_get(json_array_get(row, 1), 1)), p, 1e-5);
    }
    h_resp_free(&r);
    free(body);
    /* "examples" rows, each an object naming the input. */
    {
        json_t *ex = json_array(), *x;
        json_array_foreach(json_object_get(ref, "inputs"), i, x)
            json_array_append_new(ex, json_pack("{s:O}", "features", x));
        body = dump_new(json_pack("{s:o}", "examples", ex));
    }
    r = h_post(s, "/v1/models/fraud/versions/1:classify", body);
    if (r.status != 200)
        fail_msg("classify examples: %ld %s", r.status, r.body);
    assert_int_equal(json_array_size(json_object_get(r.json, "results")), json_array_size(want));
    h_resp_free(&r);
    free(body);
    json_decref(ref);

    ref = ref_rows("housing", &outs);
    want = json_object_get(outs, "1");
    body = dump_new(json_pack("{s:O}", "examples", json_object_get(ref, "inputs")));
    r = h_post(s, "/v1/models/housing:regress", body);
    if (r.status != 200)
        fail_msg("regress: %ld %s", r.status, r.body);
    res = json_object_get(r.json, "results");
    assert_int_equal(json_array_size(res), json_array_size(want));
    json_array_foreach(res, i, row)
        assert_float_equal(json_number_value(row), json_number_value(json_array_get(want, i)),
                           1e-3);
    h_resp_free(&r);
    free(body);
    json_decref(ref);

    /* Bad requests: each named, the server keeps serving. */
    r = h_post(s, "/v1/models/housing:regress", "{\"rows\": [[1]]}");
    h_expect_error(&r, 400, "examples");
    h_resp_free(&r);
    r = h_post(s, "/v1/models/housing:regress", "{\"examples\": [[1, 2]]}");
    h_expect_error(&r, 400, "examples");
    h_resp_free(&r);
    r = h_post(s, "/v1/models/nope:classify", "{\"examples\": [[1]]}");
    h_expect_error(&r, 404, "nope");
    h_resp_free(&r);
    r = h_post(s, "/v1/models/housing:regress",
               "{\"signature_name\": \"x\", \"examples\": [[1, 2, 3, 4, 5, 6, 7, 8]]}");
    h_expect_error(&r, 400, "signature_name");
    h_resp_free(&r);
    r = h_get(s, "/v2/health/live");
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    h_stop_ok(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_tfs_metadata_and_signature),
        H_TEST(test_nonfinite_values),
        H_TEST(test_tfs_labels),
        H_TEST(test_tfs_classify_regress),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
