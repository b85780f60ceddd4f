/* SPDX-License-Identifier: MIT
 *
 * tests/integration/harness.h -- boots the real `quiver` binary in a temp
 * directory and talks HTTP to it. Header-only (static functions), included
 * by each integration test file.
 *
 *   struct h_srv s;               one server: temp dir, repo, data, log, pid, port
 *   h_init(&s)                    mkdtemp /tmp/qv-it-XXXXXX with repo/ and data/
 *   h_copy_examples(&s)           copy examples/models into repo/
 *   h_start(&s, "--flag", ..., NULL)
 *                                 fork/exec `quiver serve`, wait for the port file
 *                                 and /v2/health/ready (settled)
 *   h_req(&s, "POST", path, body) -> struct h_resp (status, body, headers, json)
 *   h_stop(&s)                    SIGTERM + waitpid, returns the exit status
 *   h_fini(&s)                    kills a server still running (printing its log),
 *                                 removes the temp dir
 *
 * The environment gives QUIVER_BIN and QV_SOURCE_DIR (CTest sets both).
 * Every wait is a polling loop with a generous deadline (ASan builds are
 * slow); nothing asserts on timing.
 */
#ifndef QV_IT_HARNESS_H
#define QV_IT_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>
#include <curl/curl.h>

/* Every helper is static; a test file uses only some of them. */
#define H_FN static __attribute__((unused))

#define H_DEADLINE_MS 90000 /* for anything that waits on the server */
#define H_MAX_ARGS 48

struct h_srv {
    char dir[256];       /* the temp dir */
    char repo[300];      /* dir/repo */
    char data[300];      /* dir/data */
    char log[300];       /* dir/server.log */
    char port_file[300]; /* dir/port */
    char base[64];       /* http://127.0.0.1:PORT */
    pid_t pid;           /* 0 when not running */
    int port;
    struct h_loop *loop; /* a client loop to stop at teardown, or NULL */
    bool production;     /* start without --enable-test-backend */
};

struct h_loop;

struct h_resp {
    long status;    /* 0 when the transfer failed */
    char *body;     /* NUL-terminated */
    size_t len;
    char *headers;  /* raw header block, NUL-terminated */
    json_t *json;   /* parsed body or NULL */
    char err[256];  /* curl's error, if any */
};

/* ---- Small utilities ---- */

H_FN uint64_t h_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

H_FN void h_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

H_FN const char *h_env(const char *name)
{
    const char *v = getenv(name);

    if (v == NULL || *v == '\0') {
        fprintf(stderr, "harness: %s is not set (run the tests with ctest)\n", name);
        abort();
    }
    return v;
}

H_FN int h_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
H_FN int h_run(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    int rc;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "harness: command failed (%d): %s\n", rc, cmd);
    return rc;
}

H_FN char *h_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;

    if (f == NULL)
        return NULL;
    for (;;) {
        size_t got;
        if (n + 4097 > cap) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

H_FN void h_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

H_FN void h_writef(const char *text, const char *path_fmt, ...)
    __attribute__((format(printf, 2, 3)));
H_FN void h_writef(const char *text, const char *path_fmt, ...)
{
    char path[1024];
    va_list ap;

    va_start(ap, path_fmt);
    vsnprintf(path, sizeof(path), path_fmt, ap);
    va_end(ap);
    h_write_file(path, text);
}

H_FN void h_mkdir(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
H_FN void h_mkdir(const char *fmt, ...)
{
    char path[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    assert_int_equal(h_run("mkdir -p '%s'", path), 0);
}

/* ---- Temp dir and repository ---- */

H_FN void h_init(struct h_srv *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "/tmp/qv-it-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    snprintf(s->repo, sizeof(s->repo), "%s/repo", s->dir);
    snprintf(s->data, sizeof(s->data), "%s/data", s->dir);
    snprintf(s->log, sizeof(s->log), "%s/server.log", s->dir);
    snprintf(s->port_file, sizeof(s->port_file), "%s/port", s->dir);
    assert_int_equal(mkdir(s->repo, 0755), 0);
}

H_FN void h_copy_examples(struct h_srv *s)
{
    assert_int_equal(h_run("cp -r '%s/examples/models/.' '%s/'", h_env("QV_SOURCE_DIR"), s->repo),
                     0);
}

/* A model served by the "test" backend: config.json holds 'config_extra'
 * (JSON members without braces, may be "") after "backend": "test". */
H_FN void h_test_model(struct h_srv *s, const char *model, const char *config_extra)
{
    char cfg[4096];

    h_mkdir("%s/%s", s->repo, model);
    snprintf(cfg, sizeof(cfg), "{\"backend\": \"test\"%s%s}\n",
             config_extra && *config_extra ? ", " : "", config_extra ? config_extra : "");
    h_writef(cfg, "%s/%s/config.json", s->repo, model);
}

/* Version 'v' of a test-backend model with artifact JSON 'artifact'. */
H_FN void h_test_version(struct h_srv *s, const char *model, int v, const char *artifact)
{
    h_mkdir("%s/%s/%d", s->repo, model, v);
    h_writef(artifact, "%s/%s/%d/model.test", s->repo, model, v);
}

/* ---- The server process ---- */

H_FN void h_wait_ready(const struct h_srv *s);

H_FN void h_print_log(const struct h_srv *s)
{
    char *text = h_read_file(s->log, NULL);

    fprintf(stderr, "---- server log (%s) ----\n%s\n---- end of server log ----\n", s->log,
            text ? text : "(none)");
    free(text);
}

/* Starts the server; extra arguments follow (NULL-terminated). */
H_FN void h_start(struct h_srv *s, ...)
{
    const char *argv[H_MAX_ARGS];
    int argc = 0;
    va_list ap;
    const char *a;
    uint64_t deadline;

    unlink(s->port_file);
    argv[argc++] = h_env("QUIVER_BIN");
    argv[argc++] = "serve";
    if (!s->production)
        argv[argc++] = "--enable-test-backend";
    argv[argc++] = "--repo";
    argv[argc++] = s->repo;
    argv[argc++] = "--data";
    argv[argc++] = s->data;
    argv[argc++] = "--port";
    argv[argc++] = "0";
    argv[argc++] = "--port-file";
    argv[argc++] = s->port_file;
    argv[argc++] = "--workers";
    argv[argc++] = "2";
    argv[argc++] = "--http-threads";
    argv[argc++] = "2";
    va_start(ap, s);
    while ((a = va_arg(ap, const char *)) != NULL && argc < H_MAX_ARGS - 1)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;

    fflush(NULL);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "harness: cannot exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }

    deadline = h_now_ms() + H_DEADLINE_MS;
    for (;;) {
        int status;
        char *text;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            h_print_log(s);
            fail_msg("quiver serve exited during start-up (status 0x%x)", status);
        }
        text = h_read_file(s->port_file, NULL);
        if (text != NULL) {
            s->port = atoi(text);
            free(text);
            if (s->port > 0)
                break;
        }
        if (h_now_ms() > deadline) {
            h_print_log(s);
            fail_msg("quiver serve wrote no port file in %d ms", H_DEADLINE_MS);
        }
        h_sleep_ms(20);
    }
    snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%d", s->port);
    h_wait_ready(s);
}

/* SIGTERM, then waits for the process; returns its exit status (or -1 when
 * it died of a signal, -2 when it had to be killed). */
H_FN int h_stop(struct h_srv *s)
{
    uint64_t deadline = h_now_ms() + H_DEADLINE_MS;
    int status = 0, rc;

    if (s->pid <= 0)
        return 0;
    kill(s->pid, SIGTERM);
    for (;;) {
        pid_t p = waitpid(s->pid, &status, WNOHANG);
        if (p == s->pid)
            break;
        if (h_now_ms() > deadline) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &status, 0);
            s->pid = 0;
            h_print_log(s);
            return -2;
        }
        h_sleep_ms(20);
    }
    s->pid = 0;
    rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (rc != 0)
        h_print_log(s);
    return rc;
}

/* Stops gracefully and asserts exit code 0. */
H_FN void h_stop_ok(struct h_srv *s)
{
    assert_int_equal(h_stop(s), 0);
}

H_FN void h_loop_stop(struct h_loop *l);

/* Teardown: a server still running means the test failed midway. */
H_FN void h_fini(struct h_srv *s)
{
    if (s->loop) {
        h_loop_stop(s->loop);
        free(s->loop);
        s->loop = NULL;
    }
    if (s->pid > 0) {
        int status;
        h_print_log(s);
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &status, 0);
        s->pid = 0;
    }
    if (s->dir[0] && getenv("QV_IT_KEEP") == NULL)
        h_run("rm -rf '%s'", s->dir);
}

/* ---- HTTP ---- */

/* Responses not yet freed, so that a failed assertion (which leaves the test
 * function by longjmp) leaks nothing: teardown frees what is left. */
#define H_LIVE_MAX 512
static struct {
    char *body, *headers;
    json_t *json;
} h_live[H_LIVE_MAX];
static pthread_mutex_t h_live_mu = PTHREAD_MUTEX_INITIALIZER;

H_FN void h_live_add(char *body, char *headers, json_t *json)
{
    pthread_mutex_lock(&h_live_mu);
    for (int i = 0; i < H_LIVE_MAX; i++) {
        if (h_live[i].body == NULL) {
            h_live[i].body = body;
            h_live[i].headers = headers;
            h_live[i].json = json;
            break;
        }
    }
    pthread_mutex_unlock(&h_live_mu);
}

H_FN void h_live_del(const char *body)
{
    pthread_mutex_lock(&h_live_mu);
    for (int i = 0; i < H_LIVE_MAX && body; i++)
        if (h_live[i].body == body)
            memset(&h_live[i], 0, sizeof(h_live[i]));
    pthread_mutex_unlock(&h_live_mu);
}

H_FN void h_live_free_all(void)
{
    pthread_mutex_lock(&h_live_mu);
    for (int i = 0; i < H_LIVE_MAX; i++) {
        free(h_live[i].body);
        free(h_live[i].headers);
        json_decref(h_live[i].json);
        memset(&h_live[i], 0, sizeof(h_live[i]));
    }
    pthread_mutex_unlock(&h_live_mu);
}

H_FN size_t h_on_data(char *p, size_t size, size_t n, void *ud)
{
    struct h_resp *r = ud;
    size_t add = size * n;
    char *nb = realloc(r->body, r->len + add + 1);

    if (nb == NULL)
        return 0;
    memcpy(nb + r->len, p, add);
    r->body = nb;
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

H_FN size_t h_on_header(char *p, size_t size, size_t n, void *ud)
{
    struct h_resp *r = ud;
    size_t add = size * n, have = r->headers ? strlen(r->headers) : 0;
    char *nb = realloc(r->headers, have + add + 1);

    if (nb == NULL)
        return 0;
    memcpy(nb + have, p, add);
    nb[have + add] = '\0';
    r->headers = nb;
    return add;
}

H_FN CURL *h_easy(const struct h_srv *s, const char *method, const char *path,
                    const char *body, size_t body_len, struct h_resp *r,
                    struct curl_slist **hdrs)
{
    CURL *c = curl_easy_init();
    char url[1200];

    assert_non_null(c);
    memset(r, 0, sizeof(*r));
    r->body = calloc(1, 1);
    r->headers = calloc(1, 1);
    snprintf(url, sizeof(url), "%s%s", s->base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, h_on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, h_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)H_DEADLINE_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->err);
    *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    } else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    }
    return c;
}

H_FN void h_finish(CURL *c, struct h_resp *r)
{
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    r->json = r->len ? json_loadb(r->body, r->len, 0, NULL) : NULL;
    h_live_add(r->body, r->headers, r->json);
}

H_FN struct h_resp h_req_n(const struct h_srv *s, const char *method, const char *path,
                             const char *body, size_t body_len)
{
    struct h_resp r;
    struct curl_slist *hdrs = NULL;
    CURL *c = h_easy(s, method, path, body, body_len, &r, &hdrs);
    CURLcode rc = curl_easy_perform(c);

    if (rc != CURLE_OK && r.err[0] == '\0')
        snprintf(r.err, sizeof(r.err), "%s", curl_easy_strerror(rc));
    h_finish(c, &r);
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    return r;
}

/* POST with extra header lines (NULL-terminated) and a body of len bytes. */
H_FN struct h_resp h_post_hdrs(const struct h_srv *s, const char *path, const void *body,
                               size_t len, ...)
{
    struct h_resp r;
    struct curl_slist *hdrs = NULL;
    CURL *c = h_easy(s, "POST", path, body, len, &r, &hdrs);
    const char *line;
    va_list ap;
    CURLcode rc;

    va_start(ap, len);
    while ((line = va_arg(ap, const char *)) != NULL)
        hdrs = curl_slist_append(hdrs, line);
    va_end(ap);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK && r.err[0] == '\0')
        snprintf(r.err, sizeof(r.err), "%s", curl_easy_strerror(rc));
    h_finish(c, &r);
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    return r;
}

/* A binary tensor data request (KServe/Triton extension): the JSON header,
 * then raw_len raw bytes, with Inference-Header-Content-Length set. */
H_FN struct h_resp h_post_binary(const struct h_srv *s, const char *path, const char *json,
                                 const void *raw, size_t raw_len)
{
    size_t jl = strlen(json);
    char *body = malloc(jl + raw_len + 1);
    char hdr[96];
    struct h_resp r;

    assert_non_null(body);
    memcpy(body, json, jl);
    if (raw_len)
        memcpy(body + jl, raw, raw_len);
    snprintf(hdr, sizeof(hdr), "Inference-Header-Content-Length: %zu", jl);
    r = h_post_hdrs(s, path, body, jl + raw_len, hdr, "Content-Type: application/octet-stream",
                    NULL);
    free(body);
    return r;
}

H_FN struct h_resp h_req(const struct h_srv *s, const char *method, const char *path,
                           const char *body)
{
    return h_req_n(s, method, path, body, body ? strlen(body) : 0);
}

H_FN struct h_resp h_get(const struct h_srv *s, const char *path)
{
    return h_req(s, "GET", path, NULL);
}

H_FN struct h_resp h_post(const struct h_srv *s, const char *path, const char *body)
{
    return h_req(s, "POST", path, body);
}

H_FN void h_resp_free(struct h_resp *r)
{
    h_live_del(r->body);
    free(r->body);
    free(r->headers);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

/* Value of header 'name' (case-insensitive) copied into out; false if absent. */
H_FN bool h_header(const struct h_resp *r, const char *name, char *out, size_t len)
{
    size_t nl = strlen(name);
    const char *p = r->headers;

    while (p && *p) {
        const char *eol = strchr(p, '\n');
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            size_t vl;
            while (*v == ' ' || *v == '\t')
                v++;
            vl = (size_t)(p + ll - v);
            while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
                vl--;
            snprintf(out, len, "%.*s", (int)vl, v);
            return true;
        }
        p = eol ? eol + 1 : NULL;
    }
    return false;
}

/* Runs n requests concurrently (curl multi); out[i] gets the i-th response. */
H_FN void h_multi(const struct h_srv *s, int n, const char *method, const char *const *paths,
                    const char *const *bodies, struct h_resp *out)
{
    CURLM *m = curl_multi_init();
    CURL **easy = calloc((size_t)n, sizeof(*easy));
    struct curl_slist **hdrs = calloc((size_t)n, sizeof(*hdrs));
    int running = 0;

    assert_non_null(m);
    assert_non_null(easy);
    assert_non_null(hdrs);
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)n);
    for (int i = 0; i < n; i++) {
        easy[i] = h_easy(s, method, paths[i], bodies ? bodies[i] : NULL,
                         bodies && bodies[i] ? strlen(bodies[i]) : 0, &out[i], &hdrs[i]);
        curl_easy_setopt(easy[i], CURLOPT_FORBID_REUSE, 1L);
        curl_multi_add_handle(m, easy[i]);
    }
    do {
        int numfds;
        curl_multi_perform(m, &running);
        if (running)
            curl_multi_poll(m, NULL, 0, 100, &numfds);
    } while (running);
    for (int i = 0; i < n; i++) {
        h_finish(easy[i], &out[i]);
        curl_multi_remove_handle(m, easy[i]);
        curl_easy_cleanup(easy[i]);
        curl_slist_free_all(hdrs[i]);
    }
    curl_multi_cleanup(m);
    free(easy);
    free(hdrs);
}

/* ---- JSON helpers ---- */

H_FN const char *h_jstr(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Asserts the response has 'status' and, for errors, a JSON {"error": "..."}
 * whose message contains 'needle' (may be NULL). */
H_FN void h_expect_error(const struct h_resp *r, long status, const char *needle)
{
    const char *msg;

    if (r->status != status)
        fprintf(stderr, "expected %ld, got %ld: %s %s\n", status, r->status, r->body, r->err);
    assert_int_equal(r->status, status);
    assert_non_null(r->json);
    msg = h_jstr(r->json, "error");
    if (msg == NULL)
        fprintf(stderr, "no \"error\" in: %s\n", r->body);
    assert_non_null(msg);
    if (needle != NULL && strstr(msg, needle) == NULL)
        fail_msg("error message \"%s\" does not mention \"%s\"", msg, needle);
}

/* The version_states entry of version v in a model metadata body, or NULL. */
H_FN json_t *h_version_state(json_t *meta, int v)
{
    json_t *states = json_object_get(meta, "version_states"), *e;
    size_t i;
    char want[32];

    snprintf(want, sizeof(want), "%d", v);
    json_array_foreach(states, i, e) {
        const char *ver = h_jstr(e, "version");
        if (ver && strcmp(ver, want) == 0)
            return e;
    }
    return NULL;
}

/* State name of model/v ("READY", ...), "" when the version is not listed.
 * 'reason' (may be NULL) receives the reason. */
H_FN void h_state_of(const struct h_srv *s, const char *model, int v, char *state, size_t len,
                       char *reason, size_t rlen)
{
    char path[300];
    struct h_resp r;
    json_t *e;

    snprintf(path, sizeof(path), "/v2/models/%s", model);
    r = h_get(s, path);
    e = r.status == 200 ? h_version_state(r.json, v) : NULL;
    snprintf(state, len, "%s", e && h_jstr(e, "state") ? h_jstr(e, "state") : "");
    if (reason)
        snprintf(reason, rlen, "%s", e && h_jstr(e, "reason") ? h_jstr(e, "reason") : "");
    h_resp_free(&r);
}

/* Polls until model/v is in 'want' ("" = not listed); fails at the deadline. */
H_FN void h_wait_state(const struct h_srv *s, const char *model, int v, const char *want)
{
    uint64_t deadline = h_now_ms() + H_DEADLINE_MS;
    char st[32], reason[256];

    for (;;) {
        h_state_of(s, model, v, st, sizeof(st), reason, sizeof(reason));
        if (strcmp(st, want) == 0)
            return;
        if (h_now_ms() > deadline)
            fail_msg("%s/%d is \"%s\" (%s), expected \"%s\"", model, v, st, reason, want);
        h_sleep_ms(25);
    }
}

/* Polls /v2/health/ready until the start-up loads have settled: 200 (every
 * model READY), or a 503 that lists the models not ready with none of them
 * still LOADING (a repository with a deliberately broken model). */
H_FN void h_wait_ready(const struct h_srv *s)
{
    uint64_t deadline = h_now_ms() + H_DEADLINE_MS;

    for (;;) {
        struct h_resp r = h_get(s, "/v2/health/ready");
        long st = r.status;
        bool settled = st == 200;
        json_t *list = st == 503 && r.json ? json_object_get(r.json, "not_ready") : NULL, *e;
        size_t i;
        if (json_array_size(list) > 0) {
            settled = true;
            json_array_foreach(list, i, e) {
                const char *state = h_jstr(e, "state");
                if (state == NULL || strcmp(state, "LOADING") == 0)
                    settled = false;
            }
        }
        h_resp_free(&r);
        if (settled)
            return;
        if (h_now_ms() > deadline)
            fail_msg("/v2/health/ready did not settle (last %ld)", st);
        h_sleep_ms(25);
    }
}

/* A KServe request for one FP32 input "name" of shape [rows, cols]. */
H_FN char *h_kserve_body(const char *id, const char *name, const float *x, int rows, int cols)
{
    json_t *root = json_object(), *in = json_object(), *data = json_array();
    char *text;

    for (int i = 0; i < rows * cols; i++)
        json_array_append_new(data, json_real(x[i]));
    if (id)
        json_object_set_new(root, "id", json_string(id));
    json_object_set_new(in, "name", json_string(name));
    json_object_set_new(in, "datatype", json_string("FP32"));
    json_object_set_new(in, "shape", json_pack("[ii]", rows, cols));
    json_object_set_new(in, "data", data);
    json_object_set_new(root, "inputs", json_pack("[o]", in));
    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}

/* Output 'k' (or the only one) of a KServe response as doubles; returns its
 * length, fills out (at most max). */
H_FN size_t h_output_values(json_t *resp, size_t k, double *out, size_t max)
{
    json_t *outs = json_object_get(resp, "outputs");
    json_t *data = json_object_get(json_array_get(outs, k), "data"), *v;
    size_t i, n = 0;

    json_array_foreach(data, i, v) {
        if (n < max)
            out[n] = json_number_value(v);
        n++;
    }
    return n;
}

/* ---- A client loop: one thread sending the same request until stopped ---- */

#define H_LOOP_MAX_VERSION 16

struct h_loop {
    const struct h_srv *s;
    const char *path, *body;
    pthread_t th;
    bool joined;
    _Atomic bool stop;
    _Atomic long total, failed;
    _Atomic long by_version[H_LOOP_MAX_VERSION]; /* responses per model_version */
    _Atomic int last_version;
    char first_failure[512];                     /* written once, before failed turns 1 */
};

H_FN void *h_loop_main(void *arg)
{
    struct h_loop *l = arg;

    while (!atomic_load(&l->stop)) {
        struct h_resp r = h_post(l->s, l->path, l->body);
        if (r.status == 200) {
            const char *mv = h_jstr(r.json, "model_version");
            int v = mv ? atoi(mv) : 0;
            if (v > 0 && v < H_LOOP_MAX_VERSION)
                atomic_fetch_add(&l->by_version[v], 1);
            atomic_store(&l->last_version, v);
        } else {
            if (atomic_load(&l->failed) == 0)
                snprintf(l->first_failure, sizeof(l->first_failure), "%ld %s %s", r.status,
                         r.body ? r.body : "", r.err);
            atomic_fetch_add(&l->failed, 1);
        }
        atomic_fetch_add(&l->total, 1);
        h_resp_free(&r);
    }
    return NULL;
}

/* Starts a loop sending 'body' to 'path'; the server owns it (h_fini stops
 * and frees it), so a failed assertion never leaves the thread running. */
H_FN struct h_loop *h_loop_start(struct h_srv *s, const char *path, const char *body)
{
    struct h_loop *l = calloc(1, sizeof(*l));

    assert_non_null(l);
    assert_null(s->loop);
    l->s = s;
    l->path = path;
    l->body = body;
    s->loop = l;
    assert_int_equal(pthread_create(&l->th, NULL, h_loop_main, l), 0);
    return l;
}

H_FN void h_loop_stop(struct h_loop *l)
{
    atomic_store(&l->stop, true);
    if (!l->joined)
        pthread_join(l->th, NULL);
    l->joined = true;
}

/* Waits until the loop has made 'more' further requests (proof it is running). */
H_FN void h_loop_advance(struct h_loop *l, long more)
{
    long until = atomic_load(&l->total) + more;
    uint64_t deadline = h_now_ms() + H_DEADLINE_MS;

    while (atomic_load(&l->total) < until) {
        if (h_now_ms() > deadline && (h_loop_stop(l), 1))
            fail_msg("the client loop is stuck at %ld requests", atomic_load(&l->total));
        h_sleep_ms(5);
    }
}

/* Waits until the loop has been answered by version v 'n' more times. */
H_FN void h_loop_wait_version(struct h_loop *l, int v, long n)
{
    long until = atomic_load(&l->by_version[v]) + n;
    uint64_t deadline = h_now_ms() + H_DEADLINE_MS;

    while (atomic_load(&l->by_version[v]) < until) {
        if (h_now_ms() > deadline && (h_loop_stop(l), 1))
            fail_msg("version %d never answered the client loop (last answer from %d)", v,
                     atomic_load(&l->last_version));
        h_sleep_ms(5);
    }
}

/* ---- Main ---- */

#define H_MAIN(tests)                                                                              \
    int main(void)                                                                                 \
    {                                                                                              \
        int rc;                                                                                    \
        signal(SIGPIPE, SIG_IGN);                                                                  \
        curl_global_init(CURL_GLOBAL_DEFAULT);                                                     \
        rc = cmocka_run_group_tests(tests, NULL, NULL);                                            \
        curl_global_cleanup();                                                                     \
        return rc;                                                                                 \
    }

/* Per-test state: setup makes the temp dir, teardown cleans up. */
H_FN int h_setup(void **state)
{
    struct h_srv *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return -1;
    h_init(s);
    *state = s;
    return 0;
}

H_FN int h_teardown(void **state)
{
    struct h_srv *s = *state;

    h_fini(s);
    free(s);
    h_live_free_all();
    return 0;
}

#define H_TEST(fn) cmocka_unit_test_setup_teardown(fn, h_setup, h_teardown)

#endif /* QV_IT_HARNESS_H */
