/* SPDX-License-Identifier: MIT
 *
 * The access log and the warn lines for refusals:
 *  - off by default: no access lines;
 *  - --access-log FILE: one line per request with time, remote address,
 *    method, path, status, model, version, bytes, latency and request id
 *    (X-Request-Id when the client sent one, quoted when it holds a quote);
 *  - --access-log-sample N: one successful request in N, every error;
 *  - --log-format json: every line of the server log and the access log is a
 *    JSON object;
 *  - 413 (too large), 401 (no token) are logged at warn with the reason, at
 *    most ten lines a second of each kind, the others counted.
 */
#include "integration/harness.h"

static const char body4[] =
    "{\"inputs\": [{\"name\": \"input__0\", \"datatype\": \"FP32\", \"shape\": [1, 4], "
    "\"data\": [0.1, 0.2, 0.3, 0.4]}]}";

static void one_model(struct h_srv *s)
{
    h_test_model(s, "fraud", "");
    h_test_version(s, "fraud", 1, "{\"features\": 4, \"scale\": 1.0}");
}

/* The lines of a file holding needle (caller frees each and the array). */
static int lines_with(const char *path, const char *needle, char ***out)
{
    char *text = h_read_file(path, NULL), *save = NULL;
    char **v = NULL;
    int n = 0;

    if (text == NULL) {
        *out = NULL;
        return 0;
    }
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (strstr(l, needle) == NULL)
            continue;
        v = realloc(v, sizeof(*v) * (size_t)(n + 1));
        assert_non_null(v);
        v[n++] = strdup(l);
    }
    free(text);
    *out = v;
    return n;
}

static void free_lines(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int count_with(const char *path, const char *needle)
{
    char **v;
    int n = lines_with(path, needle, &v);

    free_lines(v, n);
    return n;
}

/* The access log's files: appended by the server; wait until the line with
 * needle is there (the log is written as the response is queued). */
static void wait_line(const char *path, const char *needle)
{
    uint64_t deadline = h_now_ms() + H_DEADLINE_MS;

    while (count_with(path, needle) == 0) {
        if (h_now_ms() > deadline)
            fail_msg("no line with %s in %s", needle, path);
        h_sleep_ms(10);
    }
}

static struct h_resp req_with_id(const struct h_srv *s, const char *method, const char *path,
                                 const char *body, const char *id)
{
    struct h_resp r;
    struct curl_slist *hdrs = NULL;
    CURL *c = h_easy(s, method, path, body, body ? strlen(body) : 0, &r, &hdrs);
    char h[256];

    snprintf(h, sizeof(h), "X-Request-Id: %s", id);
    hdrs = curl_slist_append(hdrs, h);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_perform(c);
    h_finish(c, &r);
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    return r;
}

static void test_off_by_default(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;

    one_model(s);
    h_start(s, NULL);
    h_wait_state(s, "fraud", 1, "READY");
    r = h_post(s, "/v2/models/fraud/infer", body4);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    h_stop_ok(s);
    assert_int_equal(count_with(s->log, "module=access"), 0);
    assert_int_equal(count_with(s->log, "latency_us="), 0);
}

static void test_access_lines(void **state)
{
    struct h_srv *s = *state;
    char path[400], **v, *big;
    struct h_resp r;
    int n;

    snprintf(path, sizeof(path), "%s/access.log", s->dir);
    one_model(s);
    h_start(s, "--access-log", path, "--max-body-bytes", "2048", NULL);
    h_wait_state(s, "fraud", 1, "READY");

    r = req_with_id(s, "POST", "/v2/models/fraud/infer", body4, "req-ok-1");
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    wait_line(path, "request_id=req-ok-1");
    n = lines_with(path, "request_id=req-ok-1", &v);
    assert_int_equal(n, 1);
    assert_non_null(strstr(v[0], "level=info module=access remote=127.0.0.1 method=POST "
                                 "path=/v2/models/fraud/infer status=200 model=fraud version=1 "
                                 "bytes="));
    assert_non_null(strstr(v[0], " latency_us="));
    assert_true(strncmp(v[0], "ts=20", 5) == 0);
    free_lines(v, n);

    /* A bad input is logged too (status 400); a request id with a quote and
     * a space stays one quoted value. */
    r = req_with_id(s, "POST", "/v2/models/fraud/infer", "{bad", "id \"q\"");
    assert_int_equal(r.status, 400);
    h_resp_free(&r);
    wait_line(path, "status=400");
    n = lines_with(path, "status=400", &v);
    assert_int_equal(n, 1);
    assert_non_null(strstr(v[0], "request_id=\"id \\\"q\\\"\""));
    free_lines(v, n);

    /* Unknown paths and methods. */
    r = h_get(s, "/nosuch");
    assert_int_equal(r.status, 404);
    h_resp_free(&r);
    wait_line(path, "path=/nosuch status=404 model=- version=-");

    /* 413: in the access log and at warn in the server log, with the reason. */
    big = malloc(4096);
    memset(big, ' ', 4095);
    big[4095] = '\0';
    r = h_post(s, "/v2/models/fraud/infer", big);
    assert_int_equal(r.status, 413);
    h_resp_free(&r);
    free(big);
    wait_line(path, "status=413");
    wait_line(s->log, "level=warn module=http");
    n = lines_with(s->log, "status=413", &v);
    assert_int_equal(n, 1);
    assert_non_null(strstr(v[0], "level=warn"));
    assert_non_null(strstr(v[0], "reason=\"request body"));
    free_lines(v, n);

    /* Every line of the access log is logfmt with the ten fields. */
    n = lines_with(path, "module=access", &v);
    assert_true(n >= 4);
    for (int i = 0; i < n; i++) {
        static const char *const keys[] = {
            "ts=",     " remote=",  " method=", " path=",       " status=",
            " model=", " version=", " bytes=",  " latency_us=", " request_id="};
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
            if (strstr(v[i], keys[k]) == NULL)
                fail_msg("no %s in %s", keys[k], v[i]);
    }
    free_lines(v, n);
    h_stop_ok(s);
}

static void test_sampling(void **state)
{
    struct h_srv *s = *state;
    char path[400];
    int before, after;
    struct h_resp r;

    snprintf(path, sizeof(path), "%s/access.log", s->dir);
    one_model(s);
    h_start(s, "--access-log", path, "--access-log-sample", "3", NULL);
    h_wait_state(s, "fraud", 1, "READY");
    before = count_with(path, "status=200");
    for (int i = 0; i < 9; i++) {
        r = h_post(s, "/v2/models/fraud/infer", body4);
        assert_int_equal(r.status, 200);
        h_resp_free(&r);
    }
    /* Errors are always logged: each of these three is. */
    for (int i = 0; i < 3; i++) {
        r = h_post(s, "/v2/models/fraud/infer", "{bad");
        assert_int_equal(r.status, 400);
        h_resp_free(&r);
    }
    wait_line(path, "status=400");
    h_stop_ok(s);
    after = count_with(path, "status=200");
    assert_int_equal(after - before, 3);
    assert_int_equal(count_with(path, "status=400"), 3);
}

static void test_json_format(void **state)
{
    struct h_srv *s = *state;
    char path[400], **v;
    struct h_resp r;
    int n;

    snprintf(path, sizeof(path), "%s/access.log", s->dir);
    one_model(s);
    h_writef("admin admin-token-123 admin\n", "%s/tokens", s->dir);
    {
        char tokens[400];
        snprintf(tokens, sizeof(tokens), "%s/tokens", s->dir);
        h_start(s, "--access-log", path, "--log-format", "json", "--tokens", tokens, NULL);
    }
    h_wait_state(s, "fraud", 1, "READY");
    r = h_post(s, "/v2/models/fraud/infer", body4);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    /* 401: a warn line with the reason. */
    r = h_get(s, "/v2/models/fraud/route");
    assert_int_equal(r.status, 401);
    h_resp_free(&r);
    wait_line(path, "\"status\":401");
    h_stop_ok(s);

    n = lines_with(path, "", &v);
    assert_true(n >= 2);
    for (int i = 0; i < n; i++) {
        json_t *j = json_loads(v[i], 0, NULL);
        if (j == NULL)
            fail_msg("access log line is not JSON: %s", v[i]);
        assert_string_equal(h_jstr(j, "module"), "access");
        assert_true(json_is_integer(json_object_get(j, "status")));
        assert_true(json_is_integer(json_object_get(j, "latency_us")));
        assert_non_null(h_jstr(j, "remote"));
        json_decref(j);
    }
    free_lines(v, n);
    /* The server log too: every line is JSON; the 401 is a warn. */
    n = lines_with(s->log, "", &v);
    assert_true(n >= 2);
    for (int i = 0; i < n; i++) {
        json_t *j = json_loads(v[i], 0, NULL);
        if (j == NULL)
            fail_msg("server log line is not JSON: %s", v[i]);
        json_decref(j);
    }
    free_lines(v, n);
    n = lines_with(s->log, "\"status\":401", &v);
    assert_int_equal(n, 1);
    assert_non_null(strstr(v[0], "\"level\":\"warn\""));
    free_lines(v, n);
}

/* A flood of 401s: at most ten warn lines a second, and every refusal is
 * either a line or counted in a later line's suppressed=N. */
static void test_warn_lines_limited(void **state)
{
    struct h_srv *s = *state;
    char tokens[400], **v;
    struct h_resp r;
    unsigned long long total = 0;
    int n;

    one_model(s);
    snprintf(tokens, sizeof(tokens), "%s/tokens", s->dir);
    h_writef("admin admin-token-123 admin\n", "%s", tokens);
    h_start(s, "--tokens", tokens, NULL);
    for (int i = 0; i < 40; i++) {
        r = h_get(s, "/v2/models/fraud/route");
        assert_int_equal(r.status, 401);
        h_resp_free(&r);
    }
    /* One more in a later second reports what the last second left out. */
    h_sleep_ms(1100);
    r = h_get(s, "/v2/models/fraud/route");
    assert_int_equal(r.status, 401);
    h_resp_free(&r);
    h_stop_ok(s);

    n = lines_with(s->log, "status=401", &v);
    assert_true(n >= 2);
    assert_true(n <= 40);
    for (int i = 0; i < n; i++) {
        const char *p = strstr(v[i], "suppressed=");
        assert_non_null(strstr(v[i], "level=warn"));
        assert_non_null(p);
        total += 1 + strtoull(p + 11, NULL, 10);
    }
    assert_int_equal(total, 41);
    free_lines(v, n);
}

static const struct CMUnitTest tests[] = {
    H_TEST(test_warn_lines_limited), H_TEST(test_off_by_default), H_TEST(test_access_lines),
    H_TEST(test_sampling),           H_TEST(test_json_format),
};

H_MAIN(tests)
