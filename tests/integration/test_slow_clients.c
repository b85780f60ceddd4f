/* SPDX-License-Identifier: MIT
 *
 * Slow and idle clients against the real binary (docs/security.md,
 * "Connections"):
 *
 *  - 2,000 kept-alive connections sitting idle and 300 trickling request
 *    headers one byte at a time: a new client still gets every answer right;
 *    the trickling ones are cut by the header deadline, the idle ones are not
 *    (they are governed by the idle timeout) and answer their next request;
 *  - the per-address cap: connections past --max-connections-per-ip from one
 *    address are closed at once while other addresses are served;
 *  - the global cap: with --max-connections reached a new connection is
 *    refused, the admin listener still answers health, and a slot freed is
 *    a slot a new client gets;
 *  - a kept-alive connection idle longer than the header deadline is not
 *    closed by it; the deadline starts with the first byte of its next
 *    request.
 *
 * The connections come from several loopback addresses (127.0.0.2 ...), so
 * that the per-address cap is not what holds them back. Nothing asserts on
 * timing.
 */
#include "integration/harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>

#define N_IDLE 2000
#define N_TRICKLE 300
#define PER_ADDR 250 /* idle connections per source address (cap 256) */

static void raise_nofile(void)
{
    struct rlimit rl;

    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < 8192) {
        rl.rlim_cur = rl.rlim_max < 8192 ? rl.rlim_max : 8192;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    if (rl.rlim_cur < N_IDLE + N_TRICKLE + 200)
        skip(); /* not enough descriptors for this test on this machine */
}

/* A connection to port from 127.0.0.<host>; -1 when refused. */
static int connect_from(int host, int port)
{
    struct sockaddr_in src, dst;
    struct timeval tv = {30, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&src, 0, sizeof(src));
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(0x7f000000u | (unsigned)host);
    if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0)
        fail_msg("bind 127.0.0.%d: %s", host, strerror(errno));
    memset(&dst, 0, sizeof(dst));
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)port);
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) != 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static bool send_all(int fd, const char *text)
{
    size_t n = strlen(text), off = 0;

    while (off < n) {
        ssize_t k = send(fd, text + off, n - off, MSG_NOSIGNAL);
        if (k <= 0)
            return false;
        off += (size_t)k;
    }
    return true;
}

/* Reads one response (head, then Content-Length bytes of body). Returns its
 * status, 0 when the connection closed first, -1 on a receive timeout. */
static int read_resp(int fd, char *body, size_t cap)
{
    char buf[8192];
    size_t n = 0, want;
    char *end, *cl;
    int status;

    body[0] = '\0';
    for (;;) {
        ssize_t got = recv(fd, buf + n, sizeof(buf) - n - 1, 0);
        if (got < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? -1 : 0;
        if (got == 0)
            return 0;
        n += (size_t)got;
        buf[n] = '\0';
        if ((end = strstr(buf, "\r\n\r\n")) != NULL)
            break;
        if (n + 1 >= sizeof(buf))
            return 0;
    }
    if (strncmp(buf, "HTTP/1.", 7) != 0)
        return 0;
    status = atoi(buf + 9);
    cl = NULL;
    for (char *p = buf; p + 17 <= end && cl == NULL; p++)
        if (strncasecmp(p, "\r\nContent-Length:", 17) == 0)
            cl = p;
    want = cl && cl < end ? (size_t)strtoul(cl + 17, NULL, 10) : 0;
    end += 4;
    n -= (size_t)(end - buf);
    if (want + 1 > cap)
        return 0;
    memcpy(body, end, n);
    while (n < want) {
        ssize_t got = recv(fd, body + n, want - n, 0);
        if (got <= 0)
            return 0;
        n += (size_t)got;
    }
    body[want] = '\0';
    return status;
}

/* One request on an open connection: status, body in body. */
static int ask(int fd, const char *method, const char *path, const char *json, char *body,
               size_t cap)
{
    char req[1024];

    if (json)
        snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                 "\r\nContent-Length: %zu\r\n\r\n%s", method, path, strlen(json), json);
    else
        snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: x\r\n\r\n", method, path);
    if (!send_all(fd, req))
        return 0;
    return read_resp(fd, body, cap);
}

/* True once fd's peer has closed it (without waiting). */
static bool closed_by_peer(int fd)
{
    char c;
    ssize_t got = recv(fd, &c, 1, MSG_DONTWAIT);

    return got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Opens n kept-alive connections from 127.0.0.<first_host> on, per_addr per
 * address, each proven served by a health request. */
static void open_idle(const struct h_srv *s, int *fds, int n, int first_host, int per_addr)
{
    char body[256];

    for (int i = 0; i < n; i++) {
        fds[i] = connect_from(first_host + i / per_addr, s->port);
        if (fds[i] < 0 || ask(fds[i], "GET", "/v2/health/live", NULL, body, sizeof(body)) != 200)
            fail_msg("idle connection %d (from 127.0.0.%d) was not served", i,
                     first_host + i / per_addr);
    }
}

#define INFER "{\"inputs\":[{\"name\":\"input__0\",\"shape\":[1,2],\"datatype\":\"FP32\"," \
              "\"data\":[1,3]}]}"

/* A new client (127.0.0.1, a new connection per request, as libcurl makes
 * them): health, an inference and /metrics, each checked. */
static void new_client_is_served(const struct h_srv *s, int rounds)
{
    for (int i = 0; i < rounds; i++) {
        struct h_resp r = h_get(s, "/v2/health/ready");
        if (r.status != 200)
            fail_msg("new client, health: %ld %s", r.status, r.err);
        h_resp_free(&r);
        r = h_post(s, "/v2/models/lin/infer", INFER);
        if (r.status != 200 || strstr(r.body, "\"data\":[5]") == NULL)
            fail_msg("new client, inference: %ld %s %s", r.status, r.body, r.err);
        h_resp_free(&r);
        r = h_get(s, "/metrics");
        if (r.status != 200 || strstr(r.body, "model=\"lin\"") == NULL)
            fail_msg("new client, /metrics: %ld %s", r.status, r.err);
        h_resp_free(&r);
    }
}

static void lin_model(struct h_srv *s)
{
    h_test_model(s, "lin", "");
    h_test_version(s, "lin", 1,
                   "{\"features\": 2, \"linear\": true, \"scale\": 2.0, \"bias\": 1.0}");
}

static void close_all(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

static void test_idle_and_trickling(void **state)
{
    struct h_srv *s = *state;
    static int idle[N_IDLE], trickle[N_TRICKLE], extra[10];
    int n_cut = 0, ok = 0, refused = 0;
    char body[4096];
    uint64_t deadline;

    raise_nofile();
    lin_model(s);
    h_start(s, "--header-timeout-ms", "2000", NULL);
    open_idle(s, idle, N_IDLE, 2, PER_ADDR); /* 127.0.0.2 .. 127.0.0.9 */
    /* Trickling: the request line, then one header byte at a time. */
    for (int i = 0; i < N_TRICKLE; i++) {
        trickle[i] = connect_from(20 + i / 150, s->port);
        assert_true(trickle[i] >= 0);
        assert_true(send_all(trickle[i], "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Slow: "));
    }
    /* While they trickle, a new client gets its answers; then until every
     * trickling connection has been cut by the header deadline. */
    deadline = h_now_ms() + H_DEADLINE_MS;
    for (int round = 0; n_cut < N_TRICKLE; round++) {
        n_cut = 0;
        for (int i = 0; i < N_TRICKLE; i++) {
            if (trickle[i] < 0) {
                n_cut++;
            } else if (closed_by_peer(trickle[i]) || send(trickle[i], "a", 1, MSG_NOSIGNAL) != 1) {
                close(trickle[i]);
                trickle[i] = -1;
                n_cut++;
            }
        }
        if (round < 5)
            new_client_is_served(s, 1);
        if (h_now_ms() > deadline)
            fail_msg("%d of %d trickling connections still open", N_TRICKLE - n_cut, N_TRICKLE);
        h_sleep_ms(100);
    }
    /* The idle ones outlived the header deadline: every one is still open and
     * a sample answers its next request. */
    for (int i = 0; i < N_IDLE; i++)
        if (closed_by_peer(idle[i]))
            fail_msg("idle connection %d was closed (header deadline applied to an idle "
                     "kept-alive connection?)", i);
    for (int i = 0; i < N_IDLE; i += 97)
        if (ask(idle[i], "POST", "/v2/models/lin/infer", INFER, body, sizeof(body)) != 200 ||
            strstr(body, "\"data\":[5]") == NULL)
            fail_msg("idle connection %d: no right answer to its next request: %s", i, body);
    new_client_is_served(s, 3);

    /* The per-address cap (256 by default): 127.0.0.2 holds 250; six more are
     * served, the rest are closed at once. */
    for (int i = 0; i < 10; i++) {
        extra[i] = connect_from(2, s->port);
        if (extra[i] >= 0 && ask(extra[i], "GET", "/v2/health/live", NULL, body,
                                 sizeof(body)) == 200)
            ok++;
        else
            refused++;
    }
    assert_int_equal(ok, 256 - PER_ADDR);
    assert_int_equal(refused, 10 - (256 - PER_ADDR));
    new_client_is_served(s, 1); /* another address meanwhile */
    close_all(extra, 10);
    close_all(idle, N_IDLE);
    h_stop_ok(s);
}

/* The port of the admin listener: the port file's second line. */
static int admin_port(const struct h_srv *s)
{
    char *text = h_read_file(s->port_file, NULL);
    char *nl = text ? strchr(text, '\n') : NULL;
    int port = nl ? atoi(nl + 1) : 0;

    free(text);
    return port;
}

struct waiter {
    const struct h_srv *s;
    struct h_resp r;
    atomic_bool done;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;

    w->r = h_post(w->s, "/v2/models/lin/infer", INFER);
    atomic_store(&w->done, true);
    return NULL;
}

static void test_global_cap(void **state)
{
    struct h_srv *s = *state;
    static int fds[300];
    static struct waiter waiter;
    struct h_srv admin;
    struct h_resp r;
    pthread_t th;
    uint64_t deadline;

    lin_model(s);
    h_start(s, "--max-connections", "300", "--admin-port", "0", NULL);
    /* The start-up's own connections may take a moment to close: retried. */
    deadline = h_now_ms() + H_DEADLINE_MS;
    for (int i = 0; i < 300; i++) {
        char body[256];
        for (;;) {
            fds[i] = connect_from(2 + i / 150, s->port);
            if (fds[i] >= 0 && ask(fds[i], "GET", "/v2/health/live", NULL, body,
                                   sizeof(body)) == 200)
                break;
            if (fds[i] >= 0)
                close(fds[i]);
            if (h_now_ms() > deadline)
                fail_msg("connection %d of 300 was never served", i);
            h_sleep_ms(20);
        }
    }
    /* Full: a new client waits (the accept thread stops accepting at the cap;
     * the connection waits in the listen backlog) ... */
    waiter.s = s;
    assert_int_equal(pthread_create(&th, NULL, waiter_main, &waiter), 0);
    /* ... health still answers on the admin listener ... */
    admin = *s;
    admin.port = admin_port(s);
    assert_true(admin.port > 0);
    snprintf(admin.base, sizeof(admin.base), "http://127.0.0.1:%d", admin.port);
    for (int i = 0; i < 5; i++) {
        r = h_get(&admin, "/v2/health/ready");
        assert_int_equal(r.status, 200);
        h_resp_free(&r);
        h_sleep_ms(100);
    }
    /* ... and is not served while every slot is held. */
    assert_false(atomic_load(&waiter.done));
    /* A slot freed is a slot the waiting client gets. */
    close(fds[0]);
    fds[0] = -1;
    pthread_join(th, NULL);
    if (waiter.r.status != 200 || strstr(waiter.r.body, "\"data\":[5]") == NULL)
        fail_msg("the waiting client: %ld %s %s", waiter.r.status, waiter.r.body, waiter.r.err);
    h_resp_free(&waiter.r);
    close_all(fds, 300);
    h_stop_ok(s);
}

static void test_keepalive_idle_past_header_deadline(void **state)
{
    struct h_srv *s = *state;
    char body[4096];
    uint64_t deadline;
    int fd;
    bool closed = false;

    lin_model(s);
    h_start(s, "--header-timeout-ms", "300", NULL);
    fd = connect_from(1, s->port);
    assert_true(fd >= 0);
    assert_int_equal(ask(fd, "GET", "/v2/health/live", NULL, body, sizeof(body)), 200);
    /* Idle for several header deadlines (the reaper looks every 200 ms). */
    h_sleep_ms(1500);
    assert_false(closed_by_peer(fd));
    assert_int_equal(ask(fd, "POST", "/v2/models/lin/infer", INFER, body, sizeof(body)), 200);
    assert_non_null(strstr(body, "\"data\":[5]"));
    /* Idle again, then a next request that trickles: the deadline starts at
     * its first byte and cuts it. */
    h_sleep_ms(1000);
    assert_true(send_all(fd, "GET /v2/health/live HTTP/1.1\r\nX-Slow: "));
    deadline = h_now_ms() + H_DEADLINE_MS;
    while (!closed && h_now_ms() < deadline) {
        if (send(fd, "a", 1, MSG_NOSIGNAL) != 1 || closed_by_peer(fd))
            closed = true;
        h_sleep_ms(50);
    }
    close(fd);
    assert_true(closed);
    h_stop_ok(s);
}

static const struct CMUnitTest tests[] = {
    H_TEST(test_keepalive_idle_past_header_deadline),
    H_TEST(test_idle_and_trickling),
    H_TEST(test_global_cap),
};

H_MAIN(tests)
