/* SPDX-License-Identifier: MIT
 *
 * Bearer tokens on the management endpoints of a real server started with
 * `--tokens FILE` (lines "name token admin|read"):
 *
 *  - no token: 401 on route, labels, feedback, events (message names the
 *    Authorization header); a wrong token: 401;
 *  - a read token may GET the route and the events but PUT/DELETE/POST get
 *    403 naming the role; the route in force is unchanged afterwards;
 *  - the admin token changes the route, and the audit log names it (who);
 *  - inference, health and /metrics stay open without a token;
 *  - a malformed tokens file stops `quiver serve` with the file and line.
 */
#include "integration/harness.h"

#define ADMIN "Authorization: Bearer adm-7f3c9e"
#define READER "Authorization: Bearer rd-41b2aa"

static const char body4[] =
    "{\"inputs\": [{\"name\": \"input__0\", \"datatype\": \"FP32\", \"shape\": [1, 4], "
    "\"data\": [0.1, 0.2, 0.3, 0.4]}]}";

/* One request with an optional extra header line ("Name: value"). */
static struct h_resp rq(const struct h_srv *s, const char *method, const char *path,
                        const char *body, const char *hdr)
{
    struct h_resp r;
    struct curl_slist *hdrs = NULL;
    CURL *c = h_easy(s, method, path, body, body ? strlen(body) : 0, &r, &hdrs);
    CURLcode rc;

    if (hdr) {
        hdrs = curl_slist_append(hdrs, hdr);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    }
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK && r.err[0] == '\0')
        snprintf(r.err, sizeof(r.err), "%s", curl_easy_strerror(rc));
    h_finish(c, &r);
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    return r;
}

static void expect(const struct h_srv *s, const char *method, const char *path, const char *body,
                   const char *hdr, long status, const char *needle)
{
    struct h_resp r = rq(s, method, path, body, hdr);

    if (status >= 400) {
        h_expect_error(&r, status, needle);
    } else if (r.status != status) {
        fail_msg("%s %s (%s): expected %ld, got %ld %s", method, path, hdr ? hdr : "no token",
                 status, r.status, r.body);
    }
    h_resp_free(&r);
}

static char *route_text(const struct h_srv *s)
{
    struct h_resp r = rq(s, "GET", "/v2/models/fraud/route", NULL, ADMIN);
    char *text;

    assert_int_equal(r.status, 200);
    text = strdup(r.body);
    h_resp_free(&r);
    return text;
}

static void start_with_tokens(struct h_srv *s)
{
    char tokens[400];

    h_test_model(s, "fraud", "\"version_policy\": {\"all\": {}}");
    h_test_version(s, "fraud", 1, "{\"features\": 4, \"scale\": 1.0}");
    h_test_version(s, "fraud", 2, "{\"features\": 4, \"scale\": 2.0}");
    snprintf(tokens, sizeof(tokens), "%s/tokens", s->dir);
    h_write_file(tokens, "# name token role\n"
                         "alice adm-7f3c9e admin\n"
                         "\n"
                         "bob rd-41b2aa read   # dashboards\n");
    h_start(s, "--tokens", tokens, NULL);
    h_wait_state(s, "fraud", 1, "READY");
    h_wait_state(s, "fraud", 2, "READY");
}

static void test_tokens_on_management_endpoints(void **state)
{
    struct h_srv *s = *state;
    const char *rp = "/v2/models/fraud/route";
    const char *doc = "{\"policy\": \"weighted\", \"labels\": {\"stable\": 1, \"canary\": 2},"
                      " \"weights\": {\"stable\": 90, \"canary\": 10}}";
    const char *other = "{\"policy\": \"pinned\", \"target\": 2}";
    char *before, *after;
    struct h_resp r;
    json_t *e;
    size_t i;
    bool by_alice = false;

    start_with_tokens(s);

    /* The admin sets the route. */
    expect(s, "PUT", rp, doc, ADMIN, 200, NULL);
    before = route_text(s);

    /* No token, a wrong token, a malformed header: 401. */
    expect(s, "GET", rp, NULL, NULL, 401, "Authorization");
    expect(s, "PUT", rp, other, NULL, 401, "Authorization");
    expect(s, "GET", rp, NULL, "Authorization: Bearer adm-7f3c9f", 401, "Authorization");
    expect(s, "PUT", rp, other, "Authorization: Bearer adm-7f3c9", 401, "Authorization");
    expect(s, "PUT", rp, other, "Authorization: adm-7f3c9e", 401, "Authorization");
    expect(s, "PUT", "/v2/models/fraud/labels/canary", "{\"version\": 1}", NULL, 401,
           "Authorization");
    expect(s, "DELETE", rp, NULL, NULL, 401, "Authorization");
    expect(s, "POST", "/v2/models/fraud/route/rollback", NULL, NULL, 401, "Authorization");
    expect(s, "POST", "/v2/models/fraud/feedback", "{\"id\": \"x\", \"label\": 1}", NULL, 401,
           "Authorization");
    expect(s, "GET", "/v2/models/fraud/events", NULL, NULL, 401, "Authorization");
    expect(s, "GET", "/v2/repository/index", NULL, NULL, 401, "Authorization");

    /* The read token reads, and is refused every change with 403. */
    expect(s, "GET", rp, NULL, READER, 200, NULL);
    expect(s, "GET", "/v2/models/fraud/events", NULL, READER, 200, NULL);
    expect(s, "PUT", rp, other, READER, 403, "read");
    expect(s, "DELETE", rp, NULL, READER, 403, "admin");
    expect(s, "PUT", "/v2/models/fraud/labels/stable", "{\"version\": 2}", READER, 403, "read");
    expect(s, "DELETE", "/v2/models/fraud/labels/canary", NULL, READER, 403, "read");
    expect(s, "POST", "/v2/models/fraud/route/rollback", NULL, READER, 403, "read");
    expect(s, "POST", "/v2/repository/models/fraud/unload", NULL, READER, 403, "read");

    after = route_text(s);
    assert_string_equal(after, before);
    free(after);

    /* Inference, health and metrics stay open. */
    for (int k = 0; k < 20; k++) {
        r = rq(s, "POST", "/v2/models/fraud/infer", body4, NULL);
        assert_int_equal(r.status, 200);
        h_resp_free(&r);
    }
    expect(s, "POST", "/v2/models/fraud/versions/2/infer", body4, NULL, 200, NULL);
    expect(s, "GET", "/v2/health/ready", NULL, NULL, 200, NULL);
    expect(s, "GET", "/v2/health/live", NULL, NULL, 200, NULL);
    expect(s, "GET", "/metrics", NULL, NULL, 200, NULL);
    expect(s, "GET", "/v2/models/fraud", NULL, NULL, 200, NULL);

    /* Feedback with the admin token works (reward form). */
    r = rq(s, "POST", "/v2/models/fraud/infer",
           "{\"id\": \"q1\", \"inputs\": [{\"name\": \"input__0\", \"datatype\": \"FP32\", "
           "\"shape\": [1, 4], \"data\": [0.1, 0.2, 0.3, 0.4]}]}",
           NULL);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    expect(s, "POST", "/v2/models/fraud/feedback", "{\"id\": \"q1\", \"reward\": 1}", ADMIN, 200,
           NULL);

    /* The admin's change is in the audit log under its name. */
    expect(s, "PUT", "/v2/models/fraud/labels/canary", "{\"version\": 2}", ADMIN, 200, NULL);
    r = rq(s, "GET", "/v2/models/fraud/events", NULL, READER);
    assert_int_equal(r.status, 200);
    json_array_foreach(r.json, i, e)
    {
        const char *who = h_jstr(e, "who"), *what = h_jstr(e, "what");
        if (what && strncmp(what, "version.", 8) == 0)
            continue; /* the engine's own events */
        assert_non_null(who);
        assert_string_equal(who, "alice"); /* bob changed nothing */
        by_alice = true;
    }
    assert_true(by_alice);
    h_resp_free(&r);
    free(before);
    h_stop_ok(s);
}

/* --tokens-protect-inference: inference and metadata need a token (any
 * role); health and /metrics stay open. */
static void test_tokens_protect_inference(void **state)
{
    struct h_srv *s = *state;
    char tokens[400];

    h_test_model(s, "fraud", "\"version_policy\": {\"all\": {}}");
    h_test_version(s, "fraud", 1, "{\"features\": 4, \"scale\": 1.0}");
    snprintf(tokens, sizeof(tokens), "%s/tokens", s->dir);
    h_write_file(tokens, "alice adm-7f3c9e admin\nbob rd-41b2aa read\n");
    h_start(s, "--tokens", tokens, "--tokens-protect-inference", NULL);
    expect(s, "POST", "/v2/models/fraud/infer", body4, NULL, 401, "Authorization");
    expect(s, "GET", "/v2/models/fraud", NULL, NULL, 401, "Authorization");
    expect(s, "POST", "/v2/models/fraud/infer", body4, READER, 200, NULL);
    expect(s, "POST", "/v2/models/fraud/infer", body4, ADMIN, 200, NULL);
    expect(s, "GET", "/v2/health/ready", NULL, NULL, 200, NULL);
    expect(s, "GET", "/metrics", NULL, NULL, 200, NULL);
    /* Management still needs admin to change anything. */
    expect(s, "DELETE", "/v2/models/fraud/route", NULL, READER, 403, "admin");
    h_stop_ok(s);
}

static void test_malformed_tokens_file_stops_serve(void **state)
{
    struct h_srv *s = *state;
    char tokens[400], *log;
    int rc;

    h_test_model(s, "fraud", NULL);
    h_test_version(s, "fraud", 1, "{\"features\": 4}");
    snprintf(tokens, sizeof(tokens), "%s/tokens", s->dir);
    h_write_file(tokens, "alice adm-7f3c9e admin\nbob rd-41b2aa superuser\n");
    rc = h_run("timeout 60 '%s' serve --repo '%s' --data '%s' --port 0 --tokens '%s' > '%s' 2>&1",
               h_env("QUIVER_BIN"), s->repo, s->data, tokens, s->log) == 0;
    assert_false(rc); /* it must not run */
    log = h_read_file(s->log, NULL);
    assert_non_null(log);
    if (strstr(log, "tokens:2") == NULL)
        fail_msg("the error does not name the file and line: %s", log);
    free(log);

    /* A missing file too. */
    rc = h_run("timeout 60 '%s' serve --repo '%s' --data '%s' --port 0 --tokens '%s/none' > "
               "'%s' 2>&1",
               h_env("QUIVER_BIN"), s->repo, s->data, s->dir, s->log) == 0;
    assert_false(rc);
    log = h_read_file(s->log, NULL);
    assert_non_null(log);
    assert_non_null(strstr(log, "--tokens"));
    free(log);
}

static const struct CMUnitTest tests[] = {
    H_TEST(test_tokens_on_management_endpoints),
    H_TEST(test_tokens_protect_inference),
    H_TEST(test_malformed_tokens_file_stops_serve),
};

H_MAIN(tests)
