/* SPDX-License-Identifier: MIT
 *
 * The HTTP layer's limits and its shutdown, against the real server:
 *
 *  - SIGTERM with a request stuck in a backend past --drain-timeout-ms: that
 *    client gets 503, the process exits 0 (no abort);
 *  - a half-sent body does not hold SIGTERM up to the drain deadline;
 *  - SIGHUP, SIGUSR1, SIGUSR2 and SIGALRM do not kill the server; SIGQUIT
 *    stops it gracefully;
 *  - a repository load runs off the HTTP threads: with one HTTP thread,
 *    health answers while a slow load is in progress;
 *  - with --tokens-protect-inference an unauthenticated request is refused
 *    (401) on its headers, before its body is sent; "bearer" in lower case
 *    is accepted;
 *  - the global in-flight body budget: a body that would exceed it gets 429;
 *    the default body limit is 16 MiB;
 *  - duplicated, conflicting Content-Length headers get 400; headers past
 *    32 KiB get 431;
 *  - the per-address connection limit, and the header and body deadlines
 *    that a client trickling bytes cannot extend;
 *  - health answers while a large body is being received;
 *  - a second server on the same --data directory refuses to start;
 *  - the tokens file: a long comment never becomes a token, an over-long
 *    token line is refused naming the line.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#define INFER_BODY                                                                                 \
    "{\"inputs\":[{\"name\":\"input__0\",\"datatype\":\"FP32\",\"shape\":[1,2],"                   \
    "\"data\":[1,2]}]}"

/* ---- Raw sockets, for what libcurl will not send ---- */

static int raw_connect(const struct h_srv *s)
{
    struct sockaddr_in sin;
    struct timeval tv = {30, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)s->port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void raw_send(int fd, const char *text)
{
    size_t n = strlen(text);

    assert_int_equal(send(fd, text, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Reads until the peer closes or the response head is in; returns the status
 * code of the first status line, 0 when the connection closed without one,
 * -1 on a receive timeout. */
static int raw_status(int fd, char *buf, size_t cap)
{
    size_t n = 0;

    buf[0] = '\0';
    while (n + 1 < cap) {
        ssize_t got = recv(fd, buf + n, cap - n - 1, 0);
        if (got < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? -1 : 0;
        if (got == 0)
            break;
        n += (size_t)got;
        buf[n] = '\0';
        if (strstr(buf, "\r\n\r\n"))
            break;
    }
    if (strncmp(buf, "HTTP/1.", 7) != 0 || n < 12)
        return 0;
    return atoi(buf + 9);
}

/* Bytes queued on the loopback connection between local port 'from' and
 * port 'to' (from /proc/net/tcp): the sender's unsent bytes plus the
 * receiver's unread ones. -1 when the connection is not listed. */
static long queued_bytes(int from, int to)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    char line[512];
    long total = -1;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        unsigned lport, rport;
        unsigned long tx, rx;
        if (sscanf(line, " %*d: %*8s:%x %*8s:%x %*x %lx:%lx", &lport, &rport, &tx, &rx) != 4)
            continue;
        if ((int)lport == from && (int)rport == to)
            total = (total < 0 ? 0 : total) + (long)tx;
        else if ((int)lport == to && (int)rport == from)
            total = (total < 0 ? 0 : total) + (long)rx;
    }
    fclose(f);
    return total;
}

/* Waits until the server has read everything sent on fd. */
static void wait_consumed(const struct h_srv *s, int fd)
{
    struct sockaddr_in me;
    socklen_t len = sizeof(me);
    uint64_t deadline = h_now_ms() + H_DEADLINE_MS;

    assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &len), 0);
    while (queued_bytes(ntohs(me.sin_port), s->port) != 0) {
        if (h_now_ms() > deadline)
            fail_msg("the server never read the whole body");
        h_sleep_ms(5);
    }
}

static long get_status(const struct h_srv *s, const char *path)
{
    struct h_resp r = h_get(s, path);
    long st = r.status;

    h_resp_free(&r);
    return st;
}

static void hang_model(struct h_srv *s, const char *name, const char *artifact)
{
    h_test_model(s, name, "\"instances\": 1, \"max_batch_size\": 0");
    h_test_version(s, name, 1, artifact);
}

/* ---- Shutdown ---- */

struct bg_req {
    const struct h_srv *s;
    const char *method, *path, *body, *hdr;
    struct h_resp r;
    pthread_t th;
    _Atomic bool done;
};

static void *bg_main(void *arg)
{
    struct bg_req *b = arg;
    struct curl_slist *hdrs = NULL;
    CURL *c = h_easy(b->s, b->method, b->path, b->body, b->body ? strlen(b->body) : 0, &b->r,
                     &hdrs);

    if (b->hdr) {
        hdrs = curl_slist_append(hdrs, b->hdr);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    }
    curl_easy_perform(c);
    h_finish(c, &b->r);
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    atomic_store(&b->done, true);
    return NULL;
}

static void bg_start(struct bg_req *b, const struct h_srv *s, const char *method, const char *path,
                     const char *body)
{
    memset(b, 0, sizeof(*b));
    b->s = s;
    b->method = method;
    b->path = path;
    b->body = body;
    assert_int_equal(pthread_create(&b->th, NULL, bg_main, b), 0);
}

/* Waits until the version's metadata shows n requests inside the engine. */
static void wait_inflight(const struct h_srv *s, const char *model, long want)
{
    uint64_t deadline = h_now_ms() + H_DEADLINE_MS;
    char path[200];

    snprintf(path, sizeof(path), "/v2/models/%s", model);
    for (;;) {
        struct h_resp r = h_get(s, path);
        json_t *e = r.status == 200 ? h_version_state(r.json, 1) : NULL;
        long n = e ? (long)json_integer_value(json_object_get(e, "inflight")) +
                         (long)json_integer_value(json_object_get(e, "queue_depth"))
                   : 0;
        h_resp_free(&r);
        if (n >= want)
            return;
        if (h_now_ms() > deadline)
            fail_msg("no request of %s ever reached the engine", model);
        h_sleep_ms(10);
    }
}

static void test_stop_past_drain_deadline(void **state)
{
    struct h_srv *s = *state;
    struct bg_req b[3];

    /* Each call sleeps 10 minutes: far past the drain deadline. One instance:
     * one request runs, two wait in the queue. */
    hang_model(s, "hang", "{\"features\": 2, \"linear\": true, \"delay_us\": 600000000}");
    h_start(s, "--drain-timeout-ms", "300", NULL);
    for (int i = 0; i < 3; i++)
        bg_start(&b[i], s, "POST", "/v2/models/hang/infer", INFER_BODY);
    wait_inflight(s, "hang", 3);

    assert_int_equal(h_stop(s), 0);
    for (int i = 0; i < 3; i++) {
        char v[64];
        pthread_join(b[i].th, NULL);
        h_expect_error(&b[i].r, 503, "drain deadline");
        assert_true(h_header(&b[i].r, "Connection", v, sizeof(v)));
        assert_string_equal(v, "close");
        h_resp_free(&b[i].r);
    }
}

static void test_half_sent_body_does_not_hold_stop(void **state)
{
    struct h_srv *s = *state;
    int fd;
    uint64_t t0;

    hang_model(s, "m", "{\"features\": 2, \"linear\": true}");
    /* A drain deadline longer than the harness waits for a stop: were the
     * half-sent body waited for, h_stop would have to kill the server. */
    h_start(s, "--drain-timeout-ms", "3000000", NULL);
    fd = raw_connect(s);
    raw_send(fd, "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\n"
                 "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"inputs\":");
    wait_consumed(s, fd); /* the server holds the headers and part of the body */
    assert_int_equal(get_status(s, "/v2/health/live"), 200);
    t0 = h_now_ms();
    assert_int_equal(h_stop(s), 0);
    (void)t0;
    close(fd);
}

static void test_signals(void **state)
{
    struct h_srv *s = *state;
    const int ignored[] = {SIGHUP, SIGUSR1, SIGUSR2, SIGALRM};
    int status;

    hang_model(s, "m", "{\"features\": 2, \"linear\": true}");
    h_start(s, NULL);
    for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++) {
        assert_int_equal(kill(s->pid, ignored[i]), 0);
        /* Each is processed (and logged) before the next request's answer. */
        assert_int_equal(get_status(s, "/v2/health/live"), 200);
    }
    h_sleep_ms(200); /* let any late default action happen (none must) */
    assert_int_equal(waitpid(s->pid, &status, WNOHANG), 0);
    assert_int_equal(get_status(s, "/v2/health/live"), 200);
    /* SIGQUIT: a graceful stop, exit 0 (not a core dump). */
    assert_int_equal(kill(s->pid, SIGQUIT), 0);
    assert_int_equal(waitpid(s->pid, &status, 0), s->pid);
    s->pid = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- Loads off the HTTP threads ---- */

static void test_health_answers_during_slow_load(void **state)
{
    struct h_srv *s = *state;
    struct bg_req b;
    uint64_t deadline;
    char st[32];

    h_test_model(s, "m", "");
    h_test_version(s, "m", 1, "{\"features\": 2}");
    h_test_model(s, "slow", "");
    h_test_version(s, "slow", 1, "{\"features\": 2, \"load_delay_ms\": 4000}");
    /* One HTTP thread: a load run on it would hold every other request. */
    h_start(s, "--model-control", "explicit", "--http-threads", "1", NULL);
    bg_start(&b, s, "POST", "/v2/repository/models/slow/load", NULL);
    deadline = h_now_ms() + H_DEADLINE_MS;
    for (;;) {
        h_state_of(s, "slow", 1, st, sizeof(st), NULL, 0);
        if (strcmp(st, "LOADING") == 0)
            break;
        if (h_now_ms() > deadline || atomic_load(&b.done))
            fail_msg("slow/1 was never seen LOADING (state \"%s\")", st);
        h_sleep_ms(10);
    }
    assert_int_equal(get_status(s, "/v2/health/live"), 200);
    assert_false(atomic_load(&b.done)); /* the load is still running */
    pthread_join(b.th, NULL);
    if (b.r.status != 200)
        fail_msg("load: %ld %s", b.r.status, b.r.body);
    h_resp_free(&b.r);
    h_state_of(s, "slow", 1, st, sizeof(st), NULL, 0);
    assert_string_equal(st, "READY");
    h_stop_ok(s);
}

/* ---- Bodies and authentication ---- */

static void write_tokens(struct h_srv *s, const char *text, char *path, size_t len)
{
    snprintf(path, len, "%s/tokens", s->dir);
    h_write_file(path, text);
}

static void test_auth_before_body(void **state)
{
    struct h_srv *s = *state;
    char tokens[400], buf[4096];
    struct bg_req b;
    int fd;

    hang_model(s, "m", "{\"features\": 2, \"linear\": true}");
    write_tokens(s, "alice adm-7f3c9e admin\n", tokens, sizeof(tokens));
    h_start(s, "--tokens", tokens, "--tokens-protect-inference", NULL);

    /* Headers only: the 401 comes without the 10 MB body ever being sent. */
    fd = raw_connect(s);
    raw_send(fd, "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\n"
                 "Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n");
    assert_int_equal(raw_status(fd, buf, sizeof(buf)), 401);
    close(fd);

    /* The scheme is case-insensitive. */
    memset(&b, 0, sizeof(b));
    b.s = s;
    b.method = "POST";
    b.path = "/v2/models/m/infer";
    b.body = INFER_BODY;
    b.hdr = "Authorization: bearer adm-7f3c9e";
    bg_main(&b);
    if (b.r.status != 200)
        fail_msg("lower-case bearer: %ld %s", b.r.status, b.r.body);
    h_resp_free(&b.r);
    b.hdr = "Authorization: BEARER wrong";
    bg_main(&b);
    h_expect_error(&b.r, 401, "token");
    h_resp_free(&b.r);
    h_stop_ok(s);
}

static void test_body_budget(void **state)
{
    struct h_srv *s = *state;
    char buf[4096];
    struct h_resp r;
    char *big;
    size_t n = 600000;
    int fd;

    hang_model(s, "m", "{\"features\": 2, \"linear\": true}");
    h_start(s, "--max-body-bytes", "700000", "--body-budget-bytes", "1000000", NULL);
    /* One client announces 600 kB and sends part of it: held in the budget. */
    fd = raw_connect(s);
    raw_send(fd, "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\n"
                 "Content-Type: application/json\r\nContent-Length: 600000\r\n\r\n{\"inputs\":");
    wait_consumed(s, fd); /* the server has its headers: the budget is taken */
    assert_int_equal(get_status(s, "/v2/health/live"), 200); /* answered while it waits */
    big = malloc(n + 1);
    assert_non_null(big);
    memset(big, ' ', n);
    big[n] = '\0';
    big[0] = '{';
    big[n - 1] = '}';
    /* A second 600 kB body would pass the 1 MB budget: 429 with Retry-After. */
    r = h_post(s, "/v2/models/m/infer", big);
    h_expect_error(&r, 429, "budget");
    assert_true(h_header(&r, "Retry-After", buf, sizeof(buf)));
    h_resp_free(&r);
    close(fd);
    /* Once the first is gone the budget is free again (400: the body is no request). */
    {
        uint64_t deadline = h_now_ms() + H_DEADLINE_MS;
        for (;;) {
            r = h_post(s, "/v2/models/m/infer", big);
            long st = r.status;
            h_resp_free(&r);
            if (st == 400)
                break;
            if (st != 429 || h_now_ms() > deadline)
                fail_msg("after the first client left: %ld", st);
            h_sleep_ms(20);
        }
    }
    free(big);
    h_stop_ok(s);
}

static void test_default_body_limit(void **state)
{
    struct h_srv *s = *state;
    char buf[4096];
    int fd;

    hang_model(s, "m", "{\"features\": 2, \"linear\": true}");
    h_start(s, NULL);
    fd = raw_connect(s);
    raw_send(fd, "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\n"
                 "Content-Type: application/json\r\nContent-Length: 17000000\r\n\r\n");
    assert_int_equal(raw_status(fd, buf, sizeof(buf)), 413);
    close(fd);
    h_stop_ok(s);
}

static void test_conflicting_content_length(void **state)
{
    struct h_srv *s = *state;
    char buf[4096];
    int fd, st;

    hang_model(s, "m", "{\"features\": 2, \"linear\": true}");
    h_start(s, NULL);
    fd = raw_connect(s);
    raw_send(fd, "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\n"
                 "Content-Type: application/json\r\nContent-Length: 2\r\n"
                 "Content-Length: 60\r\n\r\n{}");
    st = raw_status(fd, buf, sizeof(buf));
    /* Refused as a bad request; never treated as a request of 2 bytes. */
    if (st != 400)
        fail_msg("two Content-Length headers: got %d: %s", st, buf);
    close(fd);
    fd = raw_connect(s);
    raw_send(fd, "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\n"
                 "Content-Type: application/json\r\nContent-Length: 2\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n");
    st = raw_status(fd, buf, sizeof(buf));
    if (st != 400)
        fail_msg("Content-Length with Transfer-Encoding: got %d: %s", st, buf);
    close(fd);
    assert_int_equal(get_status(s, "/v2/health/live"), 200);
    h_stop_ok(s);
}

static void test_header_size_bound(void **state)
{
    struct h_srv *s = *state;
    char buf[4096], *big;
    size_t n = 40000;
    int fd;

    hang_model(s, "m", "{\"features\": 2, \"linear\": true}");
    h_start(s, NULL);
    big = malloc(n + 200);
    assert_non_null(big);
    strcpy(big, "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: ");
    {
        size_t at = strlen(big);
        memset(big + at, 'a', n);
        strcpy(big + at + n, "\r\n\r\n");
    }
    fd = raw_connect(s);
    raw_send(fd, big);
    /* 32 KiB for the request line and headers: past it, 431. */
    assert_int_equal(raw_status(fd, buf, sizeof(buf)), 431);
    close(fd);
    free(big);
    assert_int_equal(get_status(s, "/v2/health/live"), 200);
    h_stop_ok(s);
}

/* ---- Connections ---- */

static void test_connections_per_ip(void **state)
{
    struct h_srv *s = *state;
    int fds[3];
    uint64_t deadline;

    hang_model(s, "m", "{\"features\": 2, \"linear\": true}");
    h_start(s, "--max-connections-per-ip", "3", NULL);
    /* Three kept-alive connections, each proven accepted by an answer (the
     * start-up's own connections may take a moment to be closed: retried). */
    deadline = h_now_ms() + H_DEADLINE_MS;
    for (int i = 0; i < 3; i++) {
        char buf[4096];
        for (;;) {
            fds[i] = raw_connect(s);
            raw_send(fds[i], "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n");
            if (raw_status(fds[i], buf, sizeof(buf)) == 200)
                break;
            close(fds[i]);
            if (h_now_ms() > deadline)
                fail_msg("connection %d was never accepted", i);
            h_sleep_ms(20);
        }
    }
    /* A fourth connection from the same address is refused. */
    assert_int_equal(get_status(s, "/v2/health/live"), 0);
    close(fds[0]);
    /* A slot frees when one of them leaves. */
    deadline = h_now_ms() + H_DEADLINE_MS;
    while (get_status(s, "/v2/health/live") != 200) {
        if (h_now_ms() > deadline)
            fail_msg("health never answered after a connection closed");
        h_sleep_ms(20);
    }
    close(fds[1]);
    close(fds[2]);
    h_stop_ok(s);
}

static void test_header_deadline(void **state)
{
    struct h_srv *s = *state;
    uint64_t deadline;
    int fd;
    bool closed = false;

    hang_model(s, "m", "{\"features\": 2, \"linear\": true}");
    h_start(s, "--header-timeout-ms", "500", NULL);
    fd = raw_connect(s);
    raw_send(fd, "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n");
    /* One header byte every 50 ms: activity that an idle timeout would count. */
    deadline = h_now_ms() + H_DEADLINE_MS;
    while (!closed && h_now_ms() < deadline) {
        char c;
        ssize_t got;
        if (send(fd, "X", 1, MSG_NOSIGNAL) != 1)
            closed = true;
        got = recv(fd, &c, 1, MSG_DONTWAIT);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            closed = true;
        h_sleep_ms(50);
    }
    close(fd);
    assert_true(closed);
    assert_int_equal(get_status(s, "/v2/health/live"), 200);
    h_stop_ok(s);
}

static void test_body_deadline(void **state)
{
    struct h_srv *s = *state;
    uint64_t deadline;
    int fd;
    bool closed = false;

    hang_model(s, "m", "{\"features\": 2, \"linear\": true}");
    h_start(s, "--body-timeout-ms", "500", NULL);
    fd = raw_connect(s);
    raw_send(fd, "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\n"
                 "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n");
    /* One body byte every 50 ms. */
    deadline = h_now_ms() + H_DEADLINE_MS;
    while (!closed && h_now_ms() < deadline) {
        char c;
        ssize_t got;
        if (send(fd, " ", 1, MSG_NOSIGNAL) != 1)
            closed = true;
        got = recv(fd, &c, 1, MSG_DONTWAIT);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            closed = true;
        h_sleep_ms(50);
    }
    close(fd);
    assert_true(closed);
    assert_int_equal(get_status(s, "/v2/health/live"), 200);
    h_stop_ok(s);
}

static void test_health_during_large_body(void **state)
{
    struct h_srv *s = *state;
    const char *head = "{\"inputs\":[{\"name\":\"input__0\",\"datatype\":\"FP32\","
                       "\"shape\":[1,2],\"data\":[";
    size_t n_vals = 6u << 20, len, pos;
    char hdr[300], buf[4096], c;
    char *body, *chunk;
    size_t n = 4u << 20;
    int fd;

    hang_model(s, "m", "{\"features\": 2, \"linear\": true}");
    h_start(s, "--http-threads", "1", NULL);

    /* Receiving: a body a third sent does not hold the only HTTP thread. */
    fd = raw_connect(s);
    raw_send(fd, "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\n"
                 "Content-Type: application/json\r\nContent-Length: 12000000\r\n\r\n");
    chunk = malloc(n + 1);
    assert_non_null(chunk);
    memset(chunk, ' ', n);
    chunk[n] = '\0';
    raw_send(fd, chunk);
    assert_int_equal(get_status(s, "/v2/health/live"), 200);
    free(chunk);
    close(fd);

    /* Decoding: a 12 MB body of 6 M values (a 400 once decoded: the shape
     * says 2) is parsed off the HTTP thread, so health is answered before it. */
    len = strlen(head) + 2 * n_vals + 8;
    body = malloc(len + 1);
    assert_non_null(body);
    pos = (size_t)snprintf(body, len + 1, "%s", head);
    for (size_t i = 0; i < n_vals; i++) {
        body[pos++] = '0';
        body[pos++] = i + 1 < n_vals ? ',' : ']';
    }
    pos += (size_t)snprintf(body + pos, len + 1 - pos, "}]}");
    fd = raw_connect(s);
    snprintf(hdr, sizeof(hdr), "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n", pos);
    raw_send(fd, hdr);
    raw_send(fd, body);
    free(body);
    /* The whole body is in the server: from here it is being decoded. */
    wait_consumed(s, fd);
    assert_int_equal(get_status(s, "/v2/health/live"), 200);
    /* Health came first: the big request has no answer yet. */
    assert_int_equal(recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK), -1);
    {
        struct timeval tv = {H_DEADLINE_MS / 1000, 0}; /* sanitizer builds decode slowly */
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    }
    assert_int_equal(raw_status(fd, buf, sizeof(buf)), 400);
    close(fd);
    h_stop_ok(s);
}

/* ---- Start-up ---- */

static void test_second_server_same_data(void **state)
{
    struct h_srv *s = *state;
    char out[400], *text;
    int rc;

    hang_model(s, "m", "{\"features\": 2, \"linear\": true}");
    h_start(s, NULL);
    snprintf(out, sizeof(out), "%s/second.log", s->dir);
    rc = h_run("timeout 60 '%s' serve --repo '%s' --data '%s' --port 0 > '%s' 2>&1",
               h_env("QUIVER_BIN"), s->repo, s->data, out);
    assert_int_not_equal(rc, 0);
    text = h_read_file(out, NULL);
    assert_non_null(text);
    if (strstr(text, "in use by another quiver serve") == NULL)
        fail_msg("second server: %s", text);
    free(text);
    assert_int_equal(get_status(s, "/v2/health/live"), 200);
    h_stop_ok(s);
}

static void test_tokens_file_lines(void **state)
{
    struct h_srv *s = *state;
    char tokens[400], line[2000], out[400], *text;
    struct bg_req b;
    int rc;

    hang_model(s, "m", "{\"features\": 2, \"linear\": true}");
    /* A comment whose tail, past byte 511, reads like a token line. */
    memset(line, 0, sizeof(line));
    strcpy(line, "# ");
    memset(line + 2, 'x', 509);
    strcat(line, " evil sneaky-token admin\nalice adm-7f3c9e admin\n");
    write_tokens(s, line, tokens, sizeof(tokens));
    h_start(s, "--tokens", tokens, NULL);
    memset(&b, 0, sizeof(b));
    b.s = s;
    b.method = "PUT";
    b.path = "/v2/models/m/labels/prod";
    b.body = "{\"version\": 1}";
    b.hdr = "Authorization: Bearer sneaky-token";
    bg_main(&b);
    h_expect_error(&b.r, 401, "unknown token");
    h_resp_free(&b.r);
    h_stop_ok(s);

    /* A token longer than 255 bytes: refused at start, naming the line. */
    memset(line, 0, sizeof(line));
    strcpy(line, "# tokens\nbob ");
    memset(line + strlen(line), 'k', 300);
    strcat(line, " admin\n");
    h_write_file(tokens, line);
    snprintf(out, sizeof(out), "%s/bad-tokens.log", s->dir);
    rc = h_run("timeout 60 '%s' serve --repo '%s' --data '%s/d2' --port 0 --tokens '%s' "
               "> '%s' 2>&1", h_env("QUIVER_BIN"), s->repo, s->dir, tokens, out);
    assert_int_not_equal(rc, 0);
    text = h_read_file(out, NULL);
    assert_non_null(text);
    if (strstr(text, "tokens:2:") == NULL || strstr(text, "longer than") == NULL)
        fail_msg("over-long token: %s", text);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_stop_past_drain_deadline),
        H_TEST(test_half_sent_body_does_not_hold_stop),
        H_TEST(test_signals),
        H_TEST(test_health_answers_during_slow_load),
        H_TEST(test_auth_before_body),
        H_TEST(test_body_budget),
        H_TEST(test_default_body_limit),
        H_TEST(test_conflicting_content_length),
        H_TEST(test_header_size_bound),
        H_TEST(test_connections_per_ip),
        H_TEST(test_header_deadline),
        H_TEST(test_body_deadline),
        H_TEST(test_health_during_large_body),
        H_TEST(test_second_server_same_data),
        H_TEST(test_tokens_file_lines),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
