/* SPDX-License-Identifier: MIT
 *
 * The example ONNX models (the MLP and the CNN exported from PyTorch) served
 * over both HTTP APIs: outputs within each reference's tolerance (1e-4) of
 * PyTorch's, shapes and metadata from the graph, batching along the first
 * dimension, and a 400 for a wrong input shape.
 */
#include "harness.h"

/* Reads examples/models/<model>/reference.json. */
static json_t *reference(const char *model)
{
    char path[512];
    json_error_t jerr;
    json_t *ref;

    snprintf(path, sizeof(path), "%s/examples/models/%s/reference.json", h_env("QV_SOURCE_DIR"),
             model);
    ref = json_load_file(path, 0, &jerr);
    if (ref == NULL)
        fail_msg("%s: %s", path, jerr.text);
    return ref;
}

/* Compares a flat JSON array (or nested) of numbers with the reference data. */
static void expect_close(json_t *got, json_t *want, double tol, const char *what)
{
    size_t n = json_array_size(want);

    assert_int_equal(json_array_size(got), n);
    for (size_t i = 0; i < n; i++) {
        double a = json_number_value(json_array_get(got, i));
        double b = json_number_value(json_array_get(want, i));
        if (fabs(a - b) > tol)
            fail_msg("%s[%zu]: %.7g, PyTorch gives %.7g (tolerance %g)", what, i, a, b, tol);
    }
}

/* Flattens TF Serving's nested predictions into one array. */
static void flatten(json_t *v, json_t *out)
{
    size_t i;
    json_t *e;

    if (!json_is_array(v)) {
        json_array_append(out, v);
        return;
    }
    json_array_foreach(v, i, e) flatten(e, out);
}

/* The values data[*pos..] nested as dims[0..ndim) (row-major), as TF Serving's
 * instances carry each row. */
static json_t *nest(json_t *data, size_t *pos, const json_t *dims, size_t d)
{
    json_t *a;
    int64_t n;

    if (d == json_array_size(dims))
        return json_incref(json_array_get(data, (*pos)++));
    a = json_array();
    n = json_integer_value(json_array_get(dims, d));
    for (int64_t i = 0; i < n; i++)
        json_array_append_new(a, nest(data, pos, dims, d + 1));
    return a;
}

static void check_model(struct h_srv *s, const char *model)
{
    json_t *ref = reference(model);
    json_t *in = json_object_get(ref, "input"), *out = json_object_get(ref, "output");
    double tol = json_number_value(json_object_get(ref, "tolerance"));
    json_t *req, *tensor, *rows, *flat;
    struct h_resp r;
    char path[128], *body;
    int64_t n_rows = json_integer_value(json_array_get(json_object_get(in, "shape"), 0));

    assert_true(tol > 0 && tol <= 1e-4);

    /* Metadata: names, datatypes and shapes come from the graph. */
    snprintf(path, sizeof(path), "/v2/models/%s", model);
    r = h_get(s, path);
    assert_int_equal(r.status, 200);
    assert_string_equal(h_jstr(r.json, "platform"), "onnx_onnxv1");
    assert_string_equal(
        h_jstr(json_array_get(json_object_get(r.json, "inputs"), 0), "name"),
        json_string_value(json_object_get(in, "name")));
    h_resp_free(&r);

    /* KServe v2, all reference rows in one request. */
    tensor = json_pack("{s:O, s:s, s:O, s:O}", "name", json_object_get(in, "name"), "datatype",
                       "FP32", "shape", json_object_get(in, "shape"), "data",
                       json_object_get(in, "data"));
    req = json_pack("{s:s, s:[o]}", "id", "onnx-ref", "inputs", tensor);
    body = json_dumps(req, JSON_COMPACT);
    snprintf(path, sizeof(path), "/v2/models/%s/infer", model);
    r = h_post(s, path, body);
    if (r.status != 200)
        fail_msg("%s: %ld %s", path, r.status, r.body);
    {
        json_t *o = json_array_get(json_object_get(r.json, "outputs"), 0);
        assert_string_equal(h_jstr(o, "name"), json_string_value(json_object_get(out, "name")));
        assert_true(json_equal(json_object_get(o, "shape"), json_object_get(out, "shape")));
        expect_close(json_object_get(o, "data"), json_object_get(out, "data"), tol, model);
    }
    h_resp_free(&r);
    free(body);
    json_decref(req);

    /* TF Serving rows: each instance is one input row, nested as the input's
     * shape without its batch dimension (a ragged or flattened row is 400). */
    {
        json_t *dims = json_array();
        size_t pos = 0;
        for (size_t k = 1; k < json_array_size(json_object_get(in, "shape")); k++)
            json_array_append(dims, json_array_get(json_object_get(in, "shape"), k));
        rows = json_array();
        for (int64_t k = 0; k < n_rows; k++)
            json_array_append_new(rows, nest(json_object_get(in, "data"), &pos, dims, 0));
        json_decref(dims);
    }
    req = json_pack("{s:o}", "instances", rows);
    body = json_dumps(req, JSON_COMPACT);
    snprintf(path, sizeof(path), "/v1/models/%s:predict", model);
    r = h_post(s, path, body);
    if (r.status != 200)
        fail_msg("%s: %ld %s", path, r.status, r.body);
    flat = json_array();
    flatten(json_object_get(r.json, "predictions"), flat);
    expect_close(flat, json_object_get(out, "data"), tol, path);
    json_decref(flat);
    h_resp_free(&r);
    free(body);
    json_decref(req);

    /* A wrong inner shape is the client's error. */
    snprintf(path, sizeof(path), "/v2/models/%s/infer", model);
    body = NULL;
    {
        char bad[256];
        snprintf(bad, sizeof(bad),
                 "{\"inputs\":[{\"name\":\"%s\",\"datatype\":\"FP32\",\"shape\":[1,3],"
                 "\"data\":[1,2,3]}]}",
                 json_string_value(json_object_get(in, "name")));
        r = h_post(s, path, bad);
        h_expect_error(&r, 400, "shape");
        h_resp_free(&r);
    }
    json_decref(ref);
}

static void test_mlp_and_cnn_match_pytorch(void **state)
{
    struct h_srv *s = *state;

    h_copy_examples(s);
    h_start(s, NULL);
    h_wait_state(s, "mlp", 1, "READY");
    h_wait_state(s, "cnn", 1, "READY");
    check_model(s, "mlp");
    check_model(s, "cnn");
    h_stop_ok(s);
}

/* A request whose values imply a huge working arena (ConstantOfShape of the
 * request's "shape") is answered 413 naming the input, and the server keeps
 * serving. (The first value stays 2, the input's own dim 0, as the engine
 * reads dim 0 as the batch.) */
static void test_request_memory_bounded(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;

    h_mkdir("%s/fill/1", s->repo);
    assert_int_equal(h_run("cp '%s/tests/onnx/models/const_of_shape.onnx' '%s/fill/1/model.onnx'",
                           h_env("QV_SOURCE_DIR"), s->repo),
                     0);
    h_writef("{\"backend\": \"onnx\", \"parameters\": {\"max_request_memory\": \"64M\"}}\n",
             "%s/fill/config.json", s->repo);
    h_start(s, NULL);
    h_wait_state(s, "fill", 1, "READY");

    r = h_post(s, "/v2/models/fill/infer",
               "{\"inputs\": [{\"name\": \"shape\", \"datatype\": \"INT64\", \"shape\": [2],"
               " \"data\": [2, 3]}]}");
    if (r.status != 200)
        fail_msg("small request: %ld %s", r.status, r.body);
    h_resp_free(&r);

    /* 2^36 floats: 256 GiB. */
    r = h_post(s, "/v2/models/fill/infer",
               "{\"inputs\": [{\"name\": \"shape\", \"datatype\": \"INT64\", \"shape\": [2],"
               " \"data\": [262144, 262144]}]}");
    h_expect_error(&r, 413, "shape");
    h_resp_free(&r);

    r = h_post(s, "/v2/models/fill/infer",
               "{\"inputs\": [{\"name\": \"shape\", \"datatype\": \"INT64\", \"shape\": [2],"
               " \"data\": [2, 5]}]}");
    if (r.status != 200)
        fail_msg("after the refusal: %ld %s", r.status, r.body);
    h_resp_free(&r);
    h_stop_ok(s);

    /* The server-wide bound, for models that set none: 2^26 floats (256 MiB)
     * past --max-request-memory 64M. */
    h_writef("{\"backend\": \"onnx\"}\n", "%s/fill/config.json", s->repo);
    h_start(s, "--max-request-memory", "64M", NULL);
    h_wait_state(s, "fill", 1, "READY");
    r = h_post(s, "/v2/models/fill/infer",
               "{\"inputs\": [{\"name\": \"shape\", \"datatype\": \"INT64\", \"shape\": [2],"
               " \"data\": [8192, 8192]}]}");
    h_expect_error(&r, 413, "shape");
    h_resp_free(&r);
    h_stop_ok(s);
}

static const struct CMUnitTest tests[] = {
    H_TEST(test_mlp_and_cnn_match_pytorch),
    H_TEST(test_request_memory_bounded),
};

H_MAIN(tests)
