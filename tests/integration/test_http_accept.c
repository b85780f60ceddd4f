/* SPDX-License-Identifier: MIT
 *
 * The main port's accept thread (src/api/http.c):
 *  - connections opened at once are spread over every HTTP thread
 *    (quiver_http_connections_accepted_total{thread="i"} on /metrics): each
 *    gets its share (libmicrohttpd's own accept gave one of two threads 31
 *    to 34 of 34 connections in three runs out of four);
 *  - at --max-connections it stops accepting: a new client waits in the
 *    listen backlog (the open gauge stays at the cap) and is served once a
 *    connection closes;
 *  - the per-address limit still refuses the connection over it.
 * Nothing asserts on timing.
 */
#include "integration/harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#define N_BURST 32

static int raw_connect(int port)
{
    struct sockaddr_in sin;
    struct timeval tv = {30, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Sends a GET on fd and returns the status of the answer: 0 when the
 * connection closed without one, -1 on the receive timeout. */
static int ask(int fd, const char *path)
{
    char req[256], buf[4096];
    size_t n = 0;
    int len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);

    if (send(fd, req, (size_t)len, MSG_NOSIGNAL) != len)
        return 0;
    buf[0] = '\0';
    while (n + 1 < sizeof(buf)) {
        ssize_t got = recv(fd, buf + n, sizeof(buf) - n - 1, 0);
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

/* The value of a metric line starting with 'name' (labels included), or -1. */
static long metric(const char *text, const char *name)
{
    size_t len = strlen(name);

    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, len) == 0 && p[len] == ' ')
            return atol(p + len + 1);
    }
    return -1;
}

/* A served kept-alive connection; the start-up's own connections may take a
 * moment to close under a small cap: retried. */
static int served_connection(const struct h_srv *s)
{
    uint64_t deadline = h_now_ms() + H_DEADLINE_MS;

    for (;;) {
        int fd = raw_connect(s->port);
        if (ask(fd, "/v2/health/live") == 200)
            return fd;
        close(fd);
        if (h_now_ms() > deadline)
            fail_msg("a connection was never served");
        h_sleep_ms(20);
    }
}

static void check_spread(struct h_srv *s, const char *threads)
{
    int fds[N_BURST], n = atoi(threads);
    long total = 0;
    struct h_resp r;

    h_start(s, "--http-threads", threads, NULL);
    /* All connections open before the first request is sent. */
    for (int i = 0; i < N_BURST; i++)
        fds[i] = raw_connect(s->port);
    for (int i = 0; i < N_BURST; i++)
        assert_int_equal(ask(fds[i], "/v2/health/live"), 200);
    r = h_get(s, "/metrics");
    assert_int_equal(r.status, 200);
    for (int i = 0; i < n + 1; i++) {
        char name[96];
        long v;

        snprintf(name, sizeof(name), "quiver_http_connections_accepted_total{thread=\"%d\"}", i);
        v = metric(r.body, name);
        if (i == n) {
            assert_int_equal(v, -1); /* one series per HTTP thread, no more */
            break;
        }
        /* The burst's descriptors are consecutive but for a few holes, and
         * a connection goes to the thread its descriptor modulo n names:
         * every thread gets its share of the burst, less a few. */
        if (v < N_BURST / n - 4)
            fail_msg("HTTP thread %d of %d got %ld connections of a burst of %d:\n%s", i, n, v,
                     N_BURST, r.body);
        total += v;
    }
    /* The burst, the metrics request and the start-up's own connections. */
    assert_true(total >= N_BURST + 1);
    assert_true(metric(r.body, "quiver_http_connections_open") >= N_BURST + 1);
    h_resp_free(&r);
    for (int i = 0; i < N_BURST; i++)
        close(fds[i]);
    h_stop_ok(s);
}

static void test_burst_spread_over_threads(void **state)
{
    struct h_srv *s = *state;

    check_spread(s, "2");
    check_spread(s, "3");
}

static int admin_port(const struct h_srv *s)
{
    char *text = h_read_file(s->port_file, NULL);
    const char *nl = text ? strchr(text, '\n') : NULL;
    int port = nl ? atoi(nl + 1) : 0;

    free(text);
    return port;
}

/* --max-connections 4: the fifth client is not accepted (the open gauge, read
 * on the admin port, stays at 4) and is served once one of the four closes. */
static void test_cap_holds_the_next_client(void **state)
{
    struct h_srv *s = *state, admin;
    int fds[4], late;
    struct h_resp r;
    uint64_t deadline;

    h_start(s, "--max-connections", "4", "--admin-port", "0", NULL);
    admin = *s;
    admin.port = admin_port(s);
    assert_true(admin.port > 0);
    snprintf(admin.base, sizeof(admin.base), "http://127.0.0.1:%d", admin.port);
    for (int i = 0; i < 4; i++)
        fds[i] = served_connection(s);
    /* Connected (the kernel's backlog) and its request sent, not accepted. */
    late = raw_connect(s->port);
    assert_int_equal(send(late, "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n", 41, MSG_NOSIGNAL),
                     41);
    r = h_get(&admin, "/metrics");
    assert_int_equal(r.status, 200);
    assert_int_equal(metric(r.body, "quiver_http_connections_open"), 4);
    h_resp_free(&r);
    /* A slot frees: the waiting client is accepted and answered. */
    close(fds[0]);
    {
        char buf[1024];
        size_t n = 0;

        deadline = h_now_ms() + H_DEADLINE_MS;
        buf[0] = '\0';
        while (strstr(buf, "\r\n\r\n") == NULL && n + 1 < sizeof(buf)) {
            ssize_t got = recv(late, buf + n, sizeof(buf) - n - 1, 0);
            if (got <= 0 || h_now_ms() > deadline)
                fail_msg("the waiting client was not served after a slot freed");
            n += (size_t)got;
            buf[n] = '\0';
        }
        assert_int_equal(strncmp(buf, "HTTP/1.1 200", 12), 0);
    }
    close(late);
    for (int i = 1; i < 4; i++)
        close(fds[i]);
    h_stop_ok(s);
}

/* Over --max-connections-per-ip the connection is accepted and closed at
 * once, and the count of open connections does not leak. */
static void test_per_address_limit(void **state)
{
    struct h_srv *s = *state, admin;
    int fds[2], extra;
    struct h_resp r;

    h_start(s, "--max-connections-per-ip", "2", "--admin-port", "0", NULL);
    admin = *s;
    admin.port = admin_port(s);
    snprintf(admin.base, sizeof(admin.base), "http://127.0.0.1:%d", admin.port);
    for (int i = 0; i < 2; i++)
        fds[i] = served_connection(s);
    for (int i = 0; i < 5; i++) {
        extra = raw_connect(s->port);
        assert_int_equal(ask(extra, "/v2/health/live"), 0);
        close(extra);
    }
    r = h_get(&admin, "/metrics");
    assert_int_equal(r.status, 200);
    assert_int_equal(metric(r.body, "quiver_http_connections_open"), 2);
    h_resp_free(&r);
    close(fds[0]);
    close(fds[1]);
    h_stop_ok(s);
}

static int setup(void **state)
{
    struct h_srv *s = calloc(1, sizeof(*s));

    h_init(s);
    h_copy_examples(s);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    h_fini(*state);
    free(*state);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_burst_spread_over_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap_holds_the_next_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_address_limit, setup, teardown),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
