/* SPDX-License-Identifier: MIT
 *
 * The serving core, end to end: the real `quiver serve` on the example
 * repository, every documented endpoint, KServe v2 and TF Serving inference
 * against xgboost's own reference outputs, datatypes, requested outputs, the
 * default version, and a graceful shutdown with a request in flight.
 */
#include "harness.h"

#include <openssl/evp.h>

#define TOL 1e-6

/* ---- Helpers ---- */

/* SHA-256 of a file as lowercase hex, computed here (not by the server). */
static void sha256_hex(const char *path, char out[65])
{
    size_t len;
    char *data = h_read_file(path, &len);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    assert_non_null(data);
    assert_int_equal(EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL), 1);
    assert_int_equal(mdlen, 32);
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    free(data);
}

struct reference {
    json_t *root;   /* reference.json */
    int rows, cols;
    float *x;       /* rows * cols */
};

static void ref_load(const char *model, struct reference *ref)
{
    char path[1024];
    json_t *rows, *row, *v;
    size_t i, j;

    snprintf(path, sizeof(path), "%s/examples/models/%s/reference.json", h_env("QV_SOURCE_DIR"),
             model);
    ref->root = json_load_file(path, 0, NULL);
    assert_non_null(ref->root);
    rows = json_object_get(ref->root, "inputs");
    ref->rows = (int)json_array_size(rows);
    ref->cols = (int)json_array_size(json_array_get(rows, 0));
    assert_true(ref->rows > 0 && ref->cols > 0);
    ref->x = calloc((size_t)(ref->rows * ref->cols), sizeof(float));
    json_array_foreach(rows, i, row) {
        json_array_foreach(row, j, v) {
            ref->x[i * (size_t)ref->cols + j] = (float)json_number_value(v);
        }
    }
}

static void ref_free(struct reference *ref)
{
    json_decref(ref->root);
    free(ref->x);
}

/* Asserts that 'got' (a JSON array of numbers) equals reference outputs of version v. */
static void ref_check(const struct reference *ref, int v, json_t *got)
{
    char key[16];
    json_t *want;

    snprintf(key, sizeof(key), "%d", v);
    want = json_object_get(json_object_get(ref->root, "outputs"), key);
    assert_non_null(want);
    assert_non_null(got);
    assert_int_equal(json_array_size(got), json_array_size(want));
    for (size_t i = 0; i < json_array_size(want); i++) {
        double a = json_number_value(json_array_get(got, i));
        double b = json_number_value(json_array_get(want, i));
        if (fabs(a - b) > TOL)
            fail_msg("output %zu of version %d: got %.9g, reference %.9g", i, v, a, b);
    }
}

/* Row-major nested "instances" for TF Serving. */
static json_t *ref_rows(const struct reference *ref)
{
    json_t *rows = json_array();

    for (int r = 0; r < ref->rows; r++) {
        json_t *row = json_array();
        for (int c = 0; c < ref->cols; c++)
            json_array_append_new(row, json_real(ref->x[r * ref->cols + c]));
        json_array_append_new(rows, row);
    }
    return rows;
}

static void start_examples(struct h_srv *s)
{
    h_copy_examples(s);
    h_start(s, NULL);
}

/* ---- Endpoints ---- */

static void test_health_and_server_metadata(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;
    json_t *ext;

    start_examples(s);

    r = h_get(s, "/v2/health/live");
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(r.json, "live")));
    h_resp_free(&r);

    r = h_get(s, "/v2/health/ready");
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(r.json, "ready")));
    h_resp_free(&r);

    r = h_get(s, "/v2");
    assert_int_equal(r.status, 200);
    assert_string_equal(h_jstr(r.json, "name"), "quiver");
    assert_non_null(h_jstr(r.json, "version"));
    ext = json_object_get(r.json, "extensions");
    assert_true(json_is_array(ext));
    assert_true(json_array_size(ext) > 0);
    h_resp_free(&r);

    r = h_get(s, "/v2/no/such/endpoint");
    h_expect_error(&r, 404, "/v2/no/such/endpoint");
    h_resp_free(&r);

    r = h_req(s, "DELETE", "/v2/health/live", NULL);
    h_expect_error(&r, 405, "DELETE");
    h_resp_free(&r);

    h_stop_ok(s);
}

static void test_model_metadata(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;
    json_t *in, *out, *e;
    char path[600], sha1[65], sha2[65];

    start_examples(s);
    snprintf(path, sizeof(path), "%s/fraud/1/model.json", s->repo);
    sha256_hex(path, sha1);
    snprintf(path, sizeof(path), "%s/fraud/2/model.ubj", s->repo);
    sha256_hex(path, sha2);

    r = h_get(s, "/v2/models/fraud");
    assert_int_equal(r.status, 200);
    assert_string_equal(h_jstr(r.json, "name"), "fraud");
    assert_string_equal(h_jstr(r.json, "platform"), "xgboost");
    assert_string_equal(h_jstr(r.json, "engine"), "compiled"); /* the compiled forest */
    assert_int_equal(json_array_size(json_object_get(r.json, "versions")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(r.json, "versions"), 0)),
                        "1");
    assert_string_equal(json_string_value(json_array_get(json_object_get(r.json, "versions"), 1)),
                        "2");
    in = json_array_get(json_object_get(r.json, "inputs"), 0);
    assert_string_equal(h_jstr(in, "name"), "features");
    assert_string_equal(h_jstr(in, "datatype"), "FP32");
    assert_int_equal(json_integer_value(json_array_get(json_object_get(in, "shape"), 0)), -1);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(in, "shape"), 1)), 30);
    out = json_array_get(json_object_get(r.json, "outputs"), 0);
    assert_string_equal(h_jstr(out, "name"), "probability");
    assert_string_equal(h_jstr(out, "datatype"), "FP32");
    e = h_version_state(r.json, 1);
    assert_non_null(e);
    assert_string_equal(h_jstr(e, "state"), "READY");
    assert_string_equal(h_jstr(e, "sha256"), sha1);
    e = h_version_state(r.json, 2);
    assert_non_null(e);
    assert_string_equal(h_jstr(e, "state"), "READY");
    assert_string_equal(h_jstr(e, "sha256"), sha2);
    h_resp_free(&r);

    r = h_get(s, "/v2/models/fraud/versions/1");
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "versions")), 1);
    assert_int_equal(json_array_size(json_object_get(r.json, "version_states")), 1);
    e = h_version_state(r.json, 1);
    assert_non_null(e);
    assert_string_equal(h_jstr(e, "sha256"), sha1);
    h_resp_free(&r);

    r = h_get(s, "/v2/models/housing");
    assert_int_equal(r.status, 200);
    in = json_array_get(json_object_get(r.json, "inputs"), 0);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(in, "shape"), 1)), 8);
    h_resp_free(&r);

    r = h_get(s, "/v2/models/fraud/ready");
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(r.json, "ready")));
    h_resp_free(&r);
    r = h_get(s, "/v2/models/fraud/versions/1/ready");
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(r.json, "ready")));
    h_resp_free(&r);
    r = h_get(s, "/v2/models/fraud/versions/9/ready");
    h_expect_error(&r, 404, NULL);
    h_resp_free(&r);
    r = h_get(s, "/v2/models/nosuch/ready");
    h_expect_error(&r, 404, NULL);
    h_resp_free(&r);

    h_stop_ok(s);
}

/* ---- KServe v2 inference ---- */

static void infer_reference(struct h_srv *s, const char *model, int v, const char *input)
{
    struct reference ref;
    struct h_resp r;
    char path[256], hdr[32], id[64];
    char *body;
    json_t *outs;

    ref_load(model, &ref);
    snprintf(id, sizeof(id), "req-%s-%d", model, v);
    body = h_kserve_body(id, input, ref.x, ref.rows, ref.cols);
    snprintf(path, sizeof(path), "/v2/models/%s/versions/%d/infer", model, v);
    r = h_post(s, path, body);
    if (r.status != 200)
        fail_msg("%s: %ld %s", path, r.status, r.body);
    assert_string_equal(h_jstr(r.json, "model_name"), model);
    assert_string_equal(h_jstr(r.json, "id"), id);
    snprintf(path, sizeof(path), "%d", v);
    assert_string_equal(h_jstr(r.json, "model_version"), path);
    assert_true(h_header(&r, "X-Quiver-Version", hdr, sizeof(hdr)));
    assert_string_equal(hdr, path);
    outs = json_object_get(r.json, "outputs");
    assert_int_equal(json_array_size(outs), 1);
    assert_int_equal(json_integer_value(json_array_get(
                         json_object_get(json_array_get(outs, 0), "shape"), 0)),
                     ref.rows);
    ref_check(&ref, v, json_object_get(json_array_get(outs, 0), "data"));
    h_resp_free(&r);
    free(body);
    ref_free(&ref);
}

static void test_kserve_infer_matches_reference(void **state)
{
    struct h_srv *s = *state;

    start_examples(s);
    infer_reference(s, "fraud", 1, "features");
    infer_reference(s, "fraud", 2, "features");
    infer_reference(s, "housing", 1, "features");
    h_stop_ok(s);
}

static void test_kserve_nested_data(void **state)
{
    struct h_srv *s = *state;
    struct reference ref;
    struct h_resp r;
    json_t *root, *in;
    char *body;

    start_examples(s);
    ref_load("fraud", &ref);
    in = json_pack("{s:s, s:s, s:[i,i], s:o}", "name", "features", "datatype", "FP32", "shape",
                   ref.rows, ref.cols, "data", ref_rows(&ref));
    root = json_pack("{s:[o]}", "inputs", in);
    body = json_dumps(root, JSON_COMPACT);
    r = h_post(s, "/v2/models/fraud/versions/2/infer", body);
    if (r.status != 200)
        fail_msg("nested data: %ld %s", r.status, r.body);
    assert_null(json_object_get(r.json, "id")); /* no id sent, none echoed */
    ref_check(&ref, 2, json_object_get(json_array_get(json_object_get(r.json, "outputs"), 0),
                                       "data"));
    h_resp_free(&r);
    free(body);
    json_decref(root);
    ref_free(&ref);
    h_stop_ok(s);
}

/* The JSON codec parses each datatype: the request reaches the model's input
 * check, which names the datatype it got. The FP32 one is served. */
static void test_datatypes_parsed(void **state)
{
    struct h_srv *s = *state;
    static const char *const cases[][2] = {
        {"FP64", "[0.5, 1.5, -2.25, 4.0]"},
        {"INT32", "[1, -2, 3, 2147483647]"},
        {"INT64", "[1, -2, 3, 9007199254740993]"},
        {"BOOL", "[true, false, true, true]"},
    };
    char body[512], want[64];
    struct h_resp r;
    double y[2];

    h_test_model(s, "lin", "");
    h_test_version(s, "lin", 1, "{\"features\": 2, \"linear\": true, \"scale\": 2.0, \"bias\": 1.0}");
    h_start(s, NULL);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(body, sizeof(body),
                 "{\"inputs\":[{\"name\":\"input__0\",\"datatype\":\"%s\",\"shape\":[2,2],"
                 "\"data\":%s}]}", cases[i][0], cases[i][1]);
        r = h_post(s, "/v2/models/lin/infer", body);
        h_expect_error(&r, 400, "datatype");
        snprintf(want, sizeof(want), "got %s", cases[i][0]);
        h_expect_error(&r, 400, want);
        h_expect_error(&r, 400, "FP32");
        h_resp_free(&r);
    }
    /* An unknown datatype is refused by the codec itself. */
    r = h_post(s, "/v2/models/lin/infer",
               "{\"inputs\":[{\"name\":\"input__0\",\"datatype\":\"FP128\",\"shape\":[1,2],"
               "\"data\":[1,2]}]}");
    h_expect_error(&r, 400, "datatype");
    h_resp_free(&r);

    r = h_post(s, "/v2/models/lin/infer",
               "{\"inputs\":[{\"name\":\"input__0\",\"datatype\":\"FP32\",\"shape\":[2,2],"
               "\"data\":[[1,3],[-1,0]]}]}");
    if (r.status != 200)
        fail_msg("FP32: %ld %s", r.status, r.body);
    assert_int_equal(h_output_values(r.json, 0, y, 2), 2);
    /* linear: 2 * mean(row) + 1 */
    assert_true(fabs(y[0] - 5.0) < TOL);
    assert_true(fabs(y[1] - 0.0) < TOL);
    h_resp_free(&r);
    h_stop_ok(s);
}

static void test_requested_outputs(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;
    json_t *outs;

    start_examples(s);
    r = h_post(s, "/v2/models/fraud/versions/1/infer",
               "{\"inputs\":[{\"name\":\"features\",\"datatype\":\"FP32\",\"shape\":[1,30],"
               "\"data\":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}],"
               "\"outputs\":[{\"name\":\"probability\"}]}");
    assert_int_equal(r.status, 200);
    outs = json_object_get(r.json, "outputs");
    assert_int_equal(json_array_size(outs), 1);
    assert_string_equal(h_jstr(json_array_get(outs, 0), "name"), "probability");
    h_resp_free(&r);

    /* An output the model does not have is a client error naming it (as in
     * Triton), not a silent empty "outputs". */
    r = h_post(s, "/v2/models/fraud/versions/1/infer",
               "{\"inputs\":[{\"name\":\"features\",\"datatype\":\"FP32\",\"shape\":[1,30],"
               "\"data\":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}],"
               "\"outputs\":[{\"name\":\"margin\"}]}");
    h_expect_error(&r, 400, "margin");
    h_resp_free(&r);
    h_stop_ok(s);
}

/* ---- TF Serving REST ---- */

static void test_tfserving_predict(void **state)
{
    struct h_srv *s = *state;
    struct reference ref;
    struct h_resp r;
    json_t *root, *st;
    char *body;

    start_examples(s);
    ref_load("fraud", &ref);

    /* Row format; no version: the default (highest READY) answers. */
    root = json_pack("{s:o}", "instances", ref_rows(&ref));
    body = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    r = h_post(s, "/v1/models/fraud:predict", body);
    if (r.status != 200)
        fail_msg("instances: %ld %s", r.status, r.body);
    ref_check(&ref, 2, json_object_get(r.json, "predictions"));
    h_resp_free(&r);
    /* Versioned. */
    r = h_post(s, "/v1/models/fraud/versions/1:predict", body);
    assert_int_equal(r.status, 200);
    ref_check(&ref, 1, json_object_get(r.json, "predictions"));
    h_resp_free(&r);
    free(body);

    /* Columnar, one-input model: "inputs" is the tensor itself. */
    root = json_pack("{s:o}", "inputs", ref_rows(&ref));
    body = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    r = h_post(s, "/v1/models/fraud/versions/2:predict", body);
    if (r.status != 200)
        fail_msg("columnar: %ld %s", r.status, r.body);
    ref_check(&ref, 2, json_object_get(r.json, "outputs"));
    h_resp_free(&r);
    free(body);

    /* Columnar with named inputs. */
    root = json_pack("{s:{s:o}}", "inputs", "features", ref_rows(&ref));
    body = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    r = h_post(s, "/v1/models/fraud/versions/1:predict", body);
    if (r.status != 200)
        fail_msg("columnar named: %ld %s", r.status, r.body);
    ref_check(&ref, 1, json_object_get(r.json, "outputs"));
    h_resp_free(&r);
    free(body);

    /* Neither instances nor inputs. */
    r = h_post(s, "/v1/models/fraud:predict", "{\"signature_name\":\"x\"}");
    h_expect_error(&r, 400, "instances");
    h_resp_free(&r);

    /* Model status. */
    r = h_get(s, "/v1/models/fraud");
    assert_int_equal(r.status, 200);
    st = json_object_get(r.json, "model_version_status");
    assert_int_equal(json_array_size(st), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *e = json_array_get(st, i);
        assert_string_equal(h_jstr(e, "state"), "AVAILABLE");
        assert_string_equal(h_jstr(json_object_get(e, "status"), "error_code"), "OK");
    }
    h_resp_free(&r);
    r = h_get(s, "/v1/models/fraud/versions/1");
    assert_int_equal(r.status, 200);
    st = json_object_get(r.json, "model_version_status");
    assert_int_equal(json_array_size(st), 1);
    assert_string_equal(h_jstr(json_array_get(st, 0), "version"), "1");
    h_resp_free(&r);
    r = h_get(s, "/v1/models/nosuch");
    h_expect_error(&r, 404, "nosuch");
    h_resp_free(&r);

    ref_free(&ref);
    h_stop_ok(s);
}

/* ---- Default version ---- */

static void test_default_is_highest_ready(void **state)
{
    struct h_srv *s = *state;
    struct reference ref;
    struct h_resp r;
    char *body, hdr[32];

    start_examples(s);
    ref_load("fraud", &ref);
    body = h_kserve_body(NULL, "features", ref.x, ref.rows, ref.cols);

    r = h_post(s, "/v2/models/fraud/infer", body);
    assert_int_equal(r.status, 200);
    assert_string_equal(h_jstr(r.json, "model_version"), "2");
    assert_true(h_header(&r, "X-Quiver-Version", hdr, sizeof(hdr)));
    assert_string_equal(hdr, "2");
    ref_check(&ref, 2, json_object_get(json_array_get(json_object_get(r.json, "outputs"), 0),
                                       "data"));
    h_resp_free(&r);

    /* Version 2 leaves: version 1 is now the highest READY. */
    r = h_post(s, "/v2/repository/models/fraud/versions/2/unload", NULL);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    h_wait_state(s, "fraud", 2, "UNLOADED");
    r = h_post(s, "/v2/models/fraud/infer", body);
    assert_int_equal(r.status, 200);
    assert_string_equal(h_jstr(r.json, "model_version"), "1");
    ref_check(&ref, 1, json_object_get(json_array_get(json_object_get(r.json, "outputs"), 0),
                                       "data"));
    h_resp_free(&r);

    free(body);
    ref_free(&ref);
    h_stop_ok(s);
}

/* ---- Graceful shutdown ---- */

struct bg_req {
    const struct h_srv *s;
    const char *path, *body;
    struct h_resp resp;
};

static void *bg_post(void *arg)
{
    struct bg_req *b = arg;

    b->resp = h_post(b->s, b->path, b->body);
    return NULL;
}

static void test_graceful_shutdown_finishes_inflight(void **state)
{
    struct h_srv *s = *state;
    struct bg_req b;
    pthread_t th;
    uint64_t deadline;
    double y;

    h_test_model(s, "slow", "");
    h_test_version(s, "slow", 1, "{\"features\": 1, \"linear\": true, \"delay_us\": 500000}");
    h_start(s, NULL);

    memset(&b, 0, sizeof(b));
    b.s = s;
    b.path = "/v2/models/slow/infer";
    b.body = "{\"inputs\":[{\"name\":\"input__0\",\"datatype\":\"FP32\",\"shape\":[1,1],"
             "\"data\":[3]}]}";
    assert_int_equal(pthread_create(&th, NULL, bg_post, &b), 0);

    /* Wait until the server holds the request (queued or running). */
    deadline = h_now_ms() + H_DEADLINE_MS;
    for (;;) {
        struct h_resp r = h_get(s, "/v2/models/slow/versions/1");
        json_t *e = h_version_state(r.json, 1);
        long busy = json_integer_value(json_object_get(e, "inflight")) +
                    json_integer_value(json_object_get(e, "queue_depth"));
        h_resp_free(&r);
        if (busy > 0)
            break;
        if (h_now_ms() > deadline)
            fail_msg("the slow request never reached the server");
        h_sleep_ms(5);
    }
    assert_int_equal(h_stop(s), 0);
    pthread_join(th, NULL);
    if (b.resp.status != 200)
        fail_msg("in-flight request: %ld %s %s", b.resp.status, b.resp.body, b.resp.err);
    assert_int_equal(h_output_values(b.resp.json, 0, &y, 1), 1);
    assert_true(fabs(y - 3.0) < TOL);
    h_resp_free(&b.resp);
}

static const struct CMUnitTest tests[] = {
    H_TEST(test_health_and_server_metadata),
    H_TEST(test_model_metadata),
    H_TEST(test_kserve_infer_matches_reference),
    H_TEST(test_kserve_nested_data),
    H_TEST(test_datatypes_parsed),
    H_TEST(test_requested_outputs),
    H_TEST(test_tfserving_predict),
    H_TEST(test_default_is_highest_ready),
    H_TEST(test_graceful_shutdown_finishes_inflight),
};

H_MAIN(tests)
