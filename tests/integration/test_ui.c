/* SPDX-License-Identifier: MIT
 *
 * The dashboard's files as the server sends them: every file of web/ comes
 * back byte for byte with its Content-Type, a strong ETag (If-None-Match gets
 * an empty 304), no-cache, a Content-Security-Policy that allows only this
 * origin and no inline code, nosniff; gzip only when the client accepts it;
 * / redirects to /ui (and /ui/ is /ui); an unknown file is a 404 naming it;
 * the pages need no token when the management API does; the HTML has no
 * inline script or style and the whole bundle stays under 150 KB.
 */
#include "integration/harness.h"

#include <dirent.h>

static struct h_resp rq(const struct h_srv *s, const char *path, const char *hdr1, const char *hdr2)
{
    struct h_resp r;
    struct curl_slist *hdrs = NULL;
    CURL *c = h_easy(s, "GET", path, NULL, 0, &r, &hdrs);
    CURLcode rc;

    if (hdr1)
        hdrs = curl_slist_append(hdrs, hdr1);
    if (hdr2)
        hdrs = curl_slist_append(hdrs, hdr2);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK && r.err[0] == '\0')
        snprintf(r.err, sizeof(r.err), "%s", curl_easy_strerror(rc));
    h_finish(c, &r);
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    return r;
}

static void header_is(const struct h_resp *r, const char *name, const char *want)
{
    char v[1024];

    if (!h_header(r, name, v, sizeof(v)))
        fail_msg("no %s header in\n%s", name, r->headers);
    if (strcmp(v, want) != 0)
        fail_msg("%s: expected \"%s\", got \"%s\"", name, want, v);
}

static const char *type_of(const char *name)
{
    const char *dot = strrchr(name, '.');

    if (dot && strcmp(dot, ".html") == 0)
        return "text/html; charset=utf-8";
    if (dot && strcmp(dot, ".js") == 0)
        return "text/javascript; charset=utf-8";
    if (dot && strcmp(dot, ".css") == 0)
        return "text/css; charset=utf-8";
    if (dot && strcmp(dot, ".svg") == 0)
        return "image/svg+xml";
    return NULL;
}

static void start_with_tokens(struct h_srv *s)
{
    char tokens[600];

    h_test_model(s, "m", "");
    h_test_version(s, "m", 1, "{\"features\": 4}");
    snprintf(tokens, sizeof(tokens), "%s/tokens", s->dir);
    h_write_file(tokens, "ops adm-5e1f admin\n");
    h_start(s, "--tokens", tokens, NULL);
}

/* Every file of web/ is served as it is, with its headers; the total is small. */
static void test_every_file_served_as_is(void **state)
{
    struct h_srv *s = *state;
    char dir[600], path[900], url[700];
    DIR *d;
    struct dirent *e;
    size_t total = 0;
    int n = 0;

    start_with_tokens(s);
    snprintf(dir, sizeof(dir), "%s/web", h_env("QV_SOURCE_DIR"));
    d = opendir(dir);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        size_t len;
        char *want, v[1024];
        struct h_resp r;

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        want = h_read_file(path, &len);
        assert_non_null(want);
        snprintf(url, sizeof(url), "/ui/%s", e->d_name);
        r = rq(s, url, NULL, NULL); /* no token: the pages are open */
        if (r.status != 200)
            fail_msg("GET %s: %ld %s", url, r.status, r.body);
        if (r.len != len || memcmp(r.body, want, len) != 0)
            fail_msg("GET %s: %zu bytes differ from the %zu of %s", url, r.len, len, path);
        assert_non_null(type_of(e->d_name));
        header_is(&r, "Content-Type", type_of(e->d_name));
        header_is(&r, "Cache-Control", "no-cache");
        header_is(&r, "X-Content-Type-Options", "nosniff");
        assert_true(h_header(&r, "Content-Security-Policy", v, sizeof(v)));
        assert_non_null(strstr(v, "default-src 'self'"));
        assert_non_null(strstr(v, "script-src 'self'"));
        assert_non_null(strstr(v, "style-src 'self'"));
        assert_null(strstr(v, "unsafe"));
        assert_null(strstr(v, "http"));
        assert_false(h_header(&r, "Content-Encoding", v, sizeof(v)));
        if (strcmp(e->d_name + strlen(e->d_name) - 5, ".html") == 0) {
            /* No inline script or style: every <script has a src, no style= or <style. */
            for (const char *p = want; (p = strstr(p, "<script")) != NULL; p++) {
                const char *end = strchr(p, '>');
                char tag[256];
                assert_non_null(end);
                snprintf(tag, sizeof(tag), "%.*s", (int)(end - p), p);
                if (strstr(tag, "src=") == NULL)
                    fail_msg("%s: inline <script> at byte %td", path, p - want);
            }
            assert_null(strstr(want, "style="));
            assert_null(strstr(want, "<style"));
            assert_null(strstr(want, "http://"));
            assert_null(strstr(want, "https://"));
        }
        total += len;
        n++;
        free(want);
        h_resp_free(&r);
    }
    closedir(d);
    assert_true(n >= 4);
    if (total >= 150 * 1024)
        fail_msg("the dashboard is %zu bytes, over 150 KB", total);
}

/* GET /ui is index.html; / redirects there; an unknown file is a 404. */
static void test_index_redirect_and_unknown(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;

    start_with_tokens(s);
    r = rq(s, "/", NULL, NULL);
    assert_int_equal(r.status, 302);
    header_is(&r, "Location", "/ui");
    h_resp_free(&r);

    r = rq(s, "/ui", NULL, NULL);
    assert_int_equal(r.status, 200);
    header_is(&r, "Content-Type", "text/html; charset=utf-8");
    assert_non_null(strstr(r.body, "<script type=\"module\" src=\"/ui/app.js\"></script>"));
    h_resp_free(&r);

    r = rq(s, "/ui/", NULL, NULL);
    assert_int_equal(r.status, 200);
    header_is(&r, "Content-Type", "text/html; charset=utf-8");
    h_resp_free(&r);

    r = rq(s, "/ui/nope.js", NULL, NULL);
    h_expect_error(&r, 404, "nope.js");
    h_resp_free(&r);

    /* The management API still wants its token. */
    r = rq(s, "/v2/repository/index", NULL, NULL);
    assert_int_equal(r.status, 401);
    h_resp_free(&r);
}

/* The ETag answers a revalidation with an empty 304; another ETag gets the file. */
static void test_etag_304(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;
    char etag[128], inm[200];

    start_with_tokens(s);
    r = rq(s, "/ui/app.js", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_true(h_header(&r, "ETag", etag, sizeof(etag)));
    assert_true(etag[0] == '"' && strlen(etag) > 10);
    h_resp_free(&r);

    snprintf(inm, sizeof(inm), "If-None-Match: %s", etag);
    r = rq(s, "/ui/app.js", inm, NULL);
    assert_int_equal(r.status, 304);
    assert_int_equal(r.len, 0);
    header_is(&r, "ETag", etag);
    h_resp_free(&r);

    snprintf(inm, sizeof(inm), "If-None-Match: \"0000\", W/%s", etag);
    r = rq(s, "/ui/app.js", inm, NULL);
    assert_int_equal(r.status, 304);
    h_resp_free(&r);

    r = rq(s, "/ui/app.js", "If-None-Match: \"0123456789\"", NULL);
    assert_int_equal(r.status, 200);
    assert_true(r.len > 1000);
    h_resp_free(&r);

    /* The ETag of one file does not revalidate another. */
    r = rq(s, "/ui/style.css", inm, NULL);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
}

/* gzip only when accepted (q=0 is a refusal), with its own ETag. */
static void test_gzip_when_accepted(void **state)
{
    struct h_srv *s = *state;
    struct h_resp plain, gz;
    char v[128], etag[128], etag_gz[128], inm[200];

    start_with_tokens(s);
    plain = rq(s, "/ui/app.js", "Accept-Encoding: identity", NULL);
    assert_int_equal(plain.status, 200);
    assert_false(h_header(&plain, "Content-Encoding", v, sizeof(v)));
    header_is(&plain, "Vary", "Accept-Encoding");
    assert_true(h_header(&plain, "ETag", etag, sizeof(etag)));

    gz = rq(s, "/ui/app.js", "Accept-Encoding: br, gzip;q=0.8", NULL);
    assert_int_equal(gz.status, 200);
    header_is(&gz, "Content-Encoding", "gzip");
    assert_true(gz.len > 10 && gz.len < plain.len);
    assert_true((unsigned char)gz.body[0] == 0x1f && (unsigned char)gz.body[1] == 0x8b);
    assert_true(h_header(&gz, "ETag", etag_gz, sizeof(etag_gz)));
    assert_string_not_equal(etag, etag_gz);
    h_resp_free(&gz);

    gz = rq(s, "/ui/app.js", "Accept-Encoding: gzip;q=0, deflate", NULL);
    assert_int_equal(gz.status, 200);
    assert_false(h_header(&gz, "Content-Encoding", v, sizeof(v)));
    assert_int_equal(gz.len, plain.len);
    h_resp_free(&gz);

    /* The gzip ETag revalidates the gzip copy, not the plain one. */
    snprintf(inm, sizeof(inm), "If-None-Match: %s", etag_gz);
    gz = rq(s, "/ui/app.js", inm, "Accept-Encoding: gzip");
    assert_int_equal(gz.status, 304);
    h_resp_free(&gz);
    gz = rq(s, "/ui/app.js", inm, "Accept-Encoding: identity");
    assert_int_equal(gz.status, 200);
    h_resp_free(&gz);
    h_resp_free(&plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_every_file_served_as_is),
        H_TEST(test_index_redirect_and_unknown),
        H_TEST(test_etag_304),
        H_TEST(test_gzip_when_accepted),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
