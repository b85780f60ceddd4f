/* SPDX-License-Identifier: MIT
 *
 * Sockets that misbehave as real ones may: the real server runs with a shim
 * (tests/fault/sockfault_shim.c, LD_PRELOAD) that makes its send, sendmsg,
 * write, writev, recv and read on sockets return short counts, EINTR or
 * EAGAIN at a seeded rate. Every answer must still arrive complete and right:
 * small and large JSON, the binary tensor extension, gzip, /metrics, request
 * bodies sent whole or chunked, on new and on kept-alive connections.
 *
 * Skipped (exit 77) when the shim cannot interpose the server's socket calls
 * (a clang sanitizer runtime linked into the binary defines them first): the
 * shim's own counts show whether it saw any call.
 */
#include "integration/harness.h"

#include <zlib.h>

#ifndef QV_SOCKFAULT_SHIM
#error "QV_SOCKFAULT_SHIM: the path of the shim library (set by CMake)"
#endif

#define ROWS_LARGE 20000

/* y = 2 * mean(row) + 1 over rows of 2 features: row i = [i, i + 1] gives
 * y = 2i + 2, exact in FP32 for the sizes used here. */
static void lin_model(struct h_srv *s)
{
    h_test_model(s, "lin", "");
    h_test_version(s, "lin", 1,
                   "{\"features\": 2, \"linear\": true, \"scale\": 2.0, \"bias\": 1.0}");
}

static void start_faulty(struct h_srv *s, const char *seed, char *stats, size_t stats_len)
{
    const char *asan = getenv("ASAN_OPTIONS");
    char *asan_old = asan ? strdup(asan) : NULL;
    char opts[1024];

    snprintf(stats, stats_len, "%s/sockfault.stats", s->dir);
    /* libasan checks that it comes first among the libraries; the shim is
     * preloaded before it and calls it through RTLD_NEXT. */
    snprintf(opts, sizeof(opts), "%s%sverify_asan_link_order=0", asan ? asan : "",
             asan && *asan ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    setenv("LD_PRELOAD", QV_SOCKFAULT_SHIM, 1);
    setenv("QV_SOCKFAULT_SEED", seed, 1);
    setenv("QV_SOCKFAULT_RATE", "30", 1);
    setenv("QV_SOCKFAULT_STATS", stats, 1);
    h_start(s, NULL);
    unsetenv("LD_PRELOAD");
    unsetenv("QV_SOCKFAULT_SEED");
    if (asan_old)
        setenv("ASAN_OPTIONS", asan_old, 1);
    else
        unsetenv("ASAN_OPTIONS");
    free(asan_old);
}

/* One request on handle c (kept alive between calls): the answer in r.
 * Extra header lines are NULL-terminated. With chunked, the body is sent with
 * Transfer-Encoding: chunked, 1,000 bytes a chunk. */
struct upload {
    const char *p;
    size_t left;
};

static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
    struct upload *u = ud;
    size_t k = size * n;

    if (k > 1000) /* many small chunks */
        k = 1000;
    if (k > u->left)
        k = u->left;
    memcpy(buf, u->p, k);
    u->p += k;
    u->left -= k;
    return k;
}

static struct h_resp do_req(CURL *c, const struct h_srv *s, const char *method, const char *path,
                            const char *body, size_t body_len, int chunked, ...)
{
    struct h_resp r;
    struct curl_slist *hdrs = NULL;
    struct upload up = {body, body_len};
    char url[512];
    const char *line;
    va_list ap;
    CURLcode rc;

    memset(&r, 0, sizeof(r));
    r.body = calloc(1, 1);
    r.headers = calloc(1, 1);
    curl_easy_reset(c);
    snprintf(url, sizeof(url), "%s%s", s->base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, h_on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, h_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)H_DEADLINE_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r.err);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    va_start(ap, chunked);
    while ((line = va_arg(ap, const char *)) != NULL)
        hdrs = curl_slist_append(hdrs, line);
    va_end(ap);
    if (body != NULL && chunked) {
        hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &up);
    } else if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK && r.err[0] == '\0')
        snprintf(r.err, sizeof(r.err), "%s", curl_easy_strerror(rc));
    if (rc != CURLE_OK)
        fail_msg("%s %s: transfer failed: %s", method, path, r.err);
    h_finish(c, &r);
    curl_slist_free_all(hdrs);
    return r;
}

/* The JSON request for rows [i, i + 1], i = 0 .. n - 1. */
static char *rows_json(int n, const char *extra, size_t *len)
{
    size_t cap = (size_t)n * 24 + 256, k = 0;
    char *b = malloc(cap);

    assert_non_null(b);
    k += (size_t)snprintf(b + k, cap - k,
                          "{\"inputs\":[{\"name\":\"input__0\",\"shape\":[%d,2],"
                          "\"datatype\":\"FP32\",\"data\":[", n);
    for (int i = 0; i < n; i++)
        k += (size_t)snprintf(b + k, cap - k, "%s%d,%d", i ? "," : "", i, i + 1);
    k += (size_t)snprintf(b + k, cap - k, "]}]%s}", extra ? extra : "");
    *len = k;
    return b;
}

static void check_outputs_json(json_t *j, int n, const char *what)
{
    json_t *data = json_object_get(json_array_get(json_object_get(j, "outputs"), 0), "data");

    if (!json_is_array(data) || json_array_size(data) != (size_t)n)
        fail_msg("%s: %zu outputs, expected %d", what, json_array_size(data), n);
    for (int i = 0; i < n; i++) {
        double y = json_number_value(json_array_get(data, (size_t)i));
        if (y != 2.0 * i + 2.0)
            fail_msg("%s: output %d is %g, expected %d", what, i, y, 2 * i + 2);
    }
}

static void check_json_answer(const struct h_resp *r, int n, const char *what)
{
    if (r->status != 200 || r->json == NULL)
        fail_msg("%s: %ld %.200s", what, r->status, r->body);
    check_outputs_json(r->json, n, what);
}

static void inference_rounds(const struct h_srv *s, CURL *c)
{
    size_t len;
    char *large = rows_json(ROWS_LARGE, NULL, &len);
    struct h_resp r;

    /* Small and large JSON, the large body also sent in chunks. */
    {
        size_t sl;
        char *small = rows_json(3, NULL, &sl);
        r = do_req(c, s, "POST", "/v2/models/lin/infer", small, sl, false, NULL);
        check_json_answer(&r, 3, "small JSON");
        h_resp_free(&r);
        free(small);
    }
    r = do_req(c, s, "POST", "/v2/models/lin/infer", large, len, false, NULL);
    check_json_answer(&r, ROWS_LARGE, "large JSON");
    h_resp_free(&r);
    r = do_req(c, s, "POST", "/v2/models/lin/infer", large, len, true, NULL);
    check_json_answer(&r, ROWS_LARGE, "large JSON sent chunked");
    h_resp_free(&r);

    /* gzip: the answer compressed, then inflated here. */
    {
        uLongf cap = 4u << 20;
        unsigned char *plain = malloc(cap);
        z_stream zs;
        json_t *j;
        char v[32];

        assert_non_null(plain);
        r = do_req(c, s, "POST", "/v2/models/lin/infer", large, len, false,
                   "Accept-Encoding: gzip", NULL);
        if (r.status != 200 || !h_header(&r, "Content-Encoding", v, sizeof(v)) ||
            strcmp(v, "gzip") != 0)
            fail_msg("gzip: %ld, headers %s", r.status, r.headers);
        memset(&zs, 0, sizeof(zs));
        assert_int_equal(inflateInit2(&zs, 16 + 15), Z_OK);
        zs.next_in = (Bytef *)r.body;
        zs.avail_in = (uInt)r.len;
        zs.next_out = plain;
        zs.avail_out = (uInt)cap;
        assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
        assert_int_equal(zs.avail_in, 0); /* nothing after the gzip stream */
        j = json_loadb((char *)plain, cap - zs.avail_out, 0, NULL);
        assert_non_null(j);
        check_outputs_json(j, ROWS_LARGE, "gzip");
        json_decref(j);
        inflateEnd(&zs);
        free(plain);
        h_resp_free(&r);
    }

    /* The binary extension: FP32 rows in, FP32 outputs out. */
    {
        char head[512];
        size_t hl, raw_len = (size_t)ROWS_LARGE * 2 * sizeof(float), n;
        char *body;
        char hdr[96], v[32];
        float *rows;
        json_t *j;

        hl = (size_t)snprintf(head, sizeof(head),
                              "{\"inputs\":[{\"name\":\"input__0\",\"shape\":[%d,2],"
                              "\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":%zu}}],"
                              "\"parameters\":{\"binary_data_output\":true}}",
                              ROWS_LARGE, raw_len);
        body = malloc(hl + raw_len);
        assert_non_null(body);
        memcpy(body, head, hl);
        rows = (float *)(void *)(body + hl);
        for (int i = 0; i < ROWS_LARGE; i++) {
            float a = (float)i, b = (float)(i + 1);
            memcpy(body + hl + (size_t)i * 8, &a, 4);
            memcpy(body + hl + (size_t)i * 8 + 4, &b, 4);
        }
        (void)rows;
        snprintf(hdr, sizeof(hdr), "Inference-Header-Content-Length: %zu", hl);
        r = do_req(c, s, "POST", "/v2/models/lin/infer", body, hl + raw_len, false, hdr,
                   "Content-Type: application/octet-stream", NULL);
        if (r.status != 200 || !h_header(&r, "Inference-Header-Content-Length", v, sizeof(v)))
            fail_msg("binary: %ld %.200s", r.status, r.body);
        n = (size_t)strtoull(v, NULL, 10);
        assert_true(n > 0 && n <= r.len);
        j = json_loadb(r.body, n, 0, NULL);
        assert_non_null(j);
        json_decref(j);
        if (r.len - n != (size_t)ROWS_LARGE * sizeof(float))
            fail_msg("binary: %zu bytes of outputs, expected %zu", r.len - n,
                     (size_t)ROWS_LARGE * sizeof(float));
        for (int i = 0; i < ROWS_LARGE; i++) {
            float y;
            memcpy(&y, r.body + n + (size_t)i * 4, 4);
            if (y != (float)(2 * i + 2))
                fail_msg("binary: output %d is %g, expected %d", i, (double)y, 2 * i + 2);
        }
        h_resp_free(&r);
        free(body);
    }

    /* /metrics: a complete text exposition (curl checks its length). */
    r = do_req(c, s, "GET", "/metrics", NULL, 0, false, NULL);
    if (r.status != 200 || r.len == 0 || r.body[r.len - 1] != '\n' ||
        strstr(r.body, "quiver_memory_budget_bytes ") == NULL ||
        strstr(r.body, "model=\"lin\"") == NULL)
        fail_msg("/metrics: %ld, %zu bytes", r.status, r.len);
    h_resp_free(&r);
    free(large);
}

static void read_stats(const char *path, unsigned long *calls, unsigned long *shorts,
                       unsigned long *eintr, unsigned long *eagain)
{
    char *text = h_read_file(path, NULL);

    *calls = *shorts = *eintr = *eagain = 0;
    if (text == NULL)
        return;
    sscanf(text, "calls=%lu short=%lu eintr=%lu eagain=%lu", calls, shorts, eintr, eagain);
    free(text);
}

static void test_faulty_sockets(void **state)
{
    struct h_srv *s = *state;
    char stats[400];
    unsigned long calls, shorts, eintr, eagain;
    const char *seeds[] = {"1", "7"};

    lin_model(s);
    for (size_t k = 0; k < sizeof(seeds) / sizeof(seeds[0]); k++) {
        CURL *kept = curl_easy_init();
        assert_non_null(kept);
        start_faulty(s, seeds[k], stats, sizeof(stats));
        /* Three rounds on one kept-alive connection, then one on new ones. */
        for (int round = 0; round < 3; round++)
            inference_rounds(s, kept);
        curl_easy_cleanup(kept);
        for (int round = 0; round < 2; round++) {
            CURL *fresh = curl_easy_init();
            assert_non_null(fresh);
            inference_rounds(s, fresh);
            curl_easy_cleanup(fresh);
        }
        h_stop_ok(s);
        read_stats(stats, &calls, &shorts, &eintr, &eagain);
        fprintf(stderr, "seed %s: %lu socket calls, %lu short, %lu EINTR, %lu EAGAIN\n",
                seeds[k], calls, shorts, eintr, eagain);
        if (calls == 0)
            skip(); /* the shim could not interpose this build's socket calls */
        assert_true(shorts > 0 && eintr > 0 && eagain > 0);
    }
}

static const struct CMUnitTest tests[] = {
    H_TEST(test_faulty_sockets),
};

H_MAIN(tests)
