/* SPDX-License-Identifier: MIT
 *
 * The HTTP layer on libmicrohttpd, the only file that sees <microhttpd.h>.
 * libmicrohttpd is used with its internal thread pool on epoll and with
 * suspend/resume: an inference request suspends its connection and the
 * worker that completes it resumes it, so HTTP threads never wait for a
 * backend. Bodies are accumulated up to max_body_bytes and within a global
 * in-flight budget; a Content-Length over either is refused (413, 429) and a
 * request that fails authentication is refused (401, 403) on its headers,
 * before the body is read.
 *
 * Lifetime of a request context. A conn_ctx is shared by the HTTP side and,
 * once a handler hands it to another thread, by that thread: two references.
 * The HTTP side drops its reference when libmicrohttpd reports the request
 * finished; the other thread drops its reference in complete(). When the
 * drain deadline of a stop passes, a request still out is abandoned: it is
 * answered 503 from a buffer of its own (the worker may still be writing the
 * regular response) and its connection resumed; the context stays allocated
 * until the worker's complete() or the process exit.
 */
#define _GNU_SOURCE /* accept4 */
#include "access_log.h"
#include "api_int.h"

#define QV_LOG_MODULE "http"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/tcp.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum ctx_state { CTX_READING, CTX_PENDING, CTX_RESUMED };

struct conn_ctx {
    struct qv_http_req r; /* first: the handlers' qv_http_req is the context */
    struct qv_buf body;
    enum ctx_state state;
    bool too_big;
    bool over_budget;
    bool counted;          /* dispatched before the stop: counted in pending */
    size_t budget;         /* bytes reserved from the in-flight body budget */
    _Atomic int refs;      /* the HTTP side, plus one while another thread holds it */
    /* Guarded by a->susp_mu. */
    bool suspended;
    bool handed;           /* suspend() called: another thread (or the engine inline) holds it */
    bool early;            /* completed before the connection was suspended */
    uint64_t t0_ns;        /* arrival, for the access log */
    bool pended;           /* answered by another thread (a worker or a lane) */
    bool abandoned;        /* answered 503 at the drain deadline */
    struct conn_ctx *prev, *next; /* the suspended list */
    struct qv_buf alt;     /* the 503 body of an abandoned request */
    struct MHD_Connection *conn;
};

/* Where a connection's current request is, for the reaper's deadlines. */
enum sock_phase {
    SOCK_HEADERS,          /* waiting for complete request headers */
    SOCK_IDLE,             /* kept alive between requests: the idle timeout only */
    SOCK_BODY,             /* headers in, the body arriving */
    SOCK_BUSY,             /* dispatched or answered: no deadline */
};

/* One TCP connection, for the header and body deadlines. */
struct sock_ctx {
    int fd;
    uint64_t t_begin;      /* when the current phase began */
    uint64_t rx_mark;      /* SOCK_IDLE: bytes received when the reaper first saw it idle */
    enum sock_phase phase;
    bool cut;              /* shut down by the reaper */
    struct sock_ctx *prev, *next;
};

bool qv__api_shutting_down(const struct qv_api *a)
{
    return atomic_load(&a->stopping);
}

static const char *get_header(struct qv_http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

static const char *get_query(struct qv_http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* ---- The in-flight body budget ---- */

static bool budget_take(struct qv_api *a, struct conn_ctx *c, size_t n)
{
    size_t cur = atomic_load(&a->body_bytes);

    do {
        if (cur + n < cur || cur + n > a->cfg.body_budget_bytes)
            return false;
    } while (!atomic_compare_exchange_weak(&a->body_bytes, &cur, cur + n));
    c->budget += n;
    return true;
}

/* Frees the body and gives its budget back; large bodies also trim the heap,
 * so that one big request does not leave the RSS high. */
static void body_release(struct qv_api *a, struct conn_ctx *c)
{
    bool large = c->body.cap >= (4u << 20);

    qv_buf_free(&c->body);
    qv_buf_free(&c->r.body_plain);
    if (c->budget) {
        atomic_fetch_sub(&a->body_bytes, c->budget);
        c->budget = 0;
    }
    c->r.body = NULL;
    c->r.body_len = 0;
    if (large)
        malloc_trim(0);
}

static void ctx_put(struct qv_api *a, struct conn_ctx *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    body_release(a, c);
    qv_buf_free(&c->r.resp);
    qv_buf_free(&c->alt);
    free(c);
}

/* ---- Responses ---- */

static enum MHD_Result queue(struct conn_ctx *c, int status, struct qv_buf *b,
                             const char *version_header, int retry_after)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    const struct qv_http_req *r = &c->r;
    bool own = b == &c->r.resp; /* the handler's answer (not an abandoned request's 503) */
    size_t len = b->len;
    char *body = qv_buf_take(b);
    const char *type = "application/json";
    char num[24];

    resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    if (own && r->content_type != NULL)
        type = r->content_type;
    else if (strncmp(r->path, "/metrics", 8) == 0)
        type = "text/plain; version=0.0.4; charset=utf-8";
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    for (int i = 0; own && i < r->n_resp_headers; i++)
        MHD_add_response_header(resp, r->resp_headers[i].name, r->resp_headers[i].value);
    if (version_header && version_header[0])
        MHD_add_response_header(resp, "X-Quiver-Version", version_header);
    if (retry_after > 0) {
        snprintf(num, sizeof(num), "%d", retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, num);
    }
    /* While stopping, kept-alive clients are told to reconnect (elsewhere). */
    if (atomic_load(&c->r.api->stopping))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    ret = MHD_queue_response(c->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_response(struct conn_ctx *c)
{
    struct qv_http_req *r = &c->r;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

    qv_access_log_request(r, c->t0_ns, r->resp.len, ci ? ci->client_addr : NULL,
                          c->pended);
    qv__api_encode_response(r);
    return queue(c, r->status, &r->resp, r->version_header, r->retry_after);
}

static void set_phase(struct qv_api *a, struct MHD_Connection *conn, enum sock_phase phase);

/* Answers at once with an error (the request is not dispatched). */
static enum MHD_Result send_error(struct conn_ctx *c, int err)
{
    set_phase(c->r.api, c->conn, SOCK_BUSY);
    qv__api_error(&c->r, err);
    c->state = CTX_RESUMED;
    return send_response(c);
}

/* A lane thread: the body has been decoded. */
static void on_body_done(struct qv_http_req *r)
{
    body_release(r->api, (struct conn_ctx *)r);
}

/* Any thread: the response of a pending request is ready. */
static void on_complete(struct qv_http_req *r)
{
    struct conn_ctx *c = (struct conn_ctx *)r;
    struct qv_api *a = r->api;
    bool abandoned;

    pthread_mutex_lock(&a->susp_mu);
    abandoned = c->abandoned;
    if (!abandoned && !c->suspended) {
        /* Completed before the handler returned (inline execution, or a
         * worker faster than the HTTP thread): the connection was never
         * suspended and the HTTP thread answers it when the handler returns. */
        c->early = true;
    } else if (!abandoned) {
        if (c->prev)
            c->prev->next = c->next;
        else
            a->suspended = c->next;
        if (c->next)
            c->next->prev = c->prev;
        c->prev = c->next = NULL;
        c->suspended = false;
        MHD_resume_connection(c->conn);
    }
    pthread_mutex_unlock(&a->susp_mu);
    ctx_put(a, c);
}

/* Under susp_mu: answers c 503 from its own buffer and resumes it; the thread
 * that holds c still calls complete() later, which then only lets go. */
static void abandon(struct conn_ctx *c)
{
    atomic_fetch_add(&c->r.api->n_abandoned, 1);
    c->abandoned = true;
    c->suspended = false;
    c->prev = c->next = NULL;
    qv_buf_append(&c->alt, "{\"error\":", 9);
    qv__api_json_string(&c->alt, "the server stopped before this request finished "
                                 "(drain deadline passed)");
    qv_buf_append(&c->alt, "}", 1);
    MHD_resume_connection(c->conn);
}

/* HTTP thread: the handler is about to hand the request to another thread
 * (or to the engine, which may run it at once on this thread). The
 * connection is suspended only when the handler has returned and the request
 * is still out (suspend_if_out): a request completed before that is answered
 * without a suspend, a resume and their epoll_ctl calls. */
static void on_suspend(struct qv_http_req *r)
{
    struct conn_ctx *c = (struct conn_ctx *)r;

    atomic_fetch_add(&c->refs, 1);
    c->handed = true;
}

/* HTTP thread, after a handler returned QV_API_PENDING: true when the request
 * was completed meanwhile (answer it now); otherwise suspends the connection,
 * which complete() resumes. */
static bool suspend_if_out(struct qv_api *a, struct conn_ctx *c)
{
    bool early;

    pthread_mutex_lock(&a->susp_mu);
    early = c->early;
    if (!early) {
        MHD_suspend_connection(c->conn);
        if (a->abandoning) {
            /* The drain deadline has passed: answered 503 at once. */
            abandon(c);
        } else {
            c->suspended = true;
            c->next = a->suspended;
            if (c->next)
                c->next->prev = c;
            a->suspended = c;
        }
    }
    pthread_mutex_unlock(&a->susp_mu);
    return early;
}

/* A request smuggled behind a proxy needs two Content-Length headers that
 * disagree (or one next to Transfer-Encoding); libmicrohttpd reads the
 * first. Counted here and refused. */
struct cl_scan {
    int n_cl, n_te;
    const char *first;
    bool differ;
};

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct cl_scan *s = cls;

    (void)kind;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        if (s->n_cl++ == 0)
            s->first = value;
        else if (value == NULL || s->first == NULL || strcmp(value, s->first) != 0)
            s->differ = true;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        s->n_te++;
    }
    return MHD_YES;
}

/* Parses a Content-Length value: digits only. */
static bool parse_length(const char *s, unsigned long long *out)
{
    unsigned long long v = 0;

    if (s == NULL || *s == '\0')
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (~0ull - 9) / 10)
            return false;
        v = v * 10 + (unsigned)(*s - '0');
    }
    *out = v;
    return true;
}

#define RX_UNMARKED (UINT64_MAX - 1)

/* Bytes the kernel has received on a TCP socket so far (TCP_INFO), or
 * UINT64_MAX when it cannot tell. */
static uint64_t rx_bytes(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);

    memset(&ti, 0, sizeof(ti));
    if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received))
        return UINT64_MAX;
    return ti.tcpi_bytes_received;
}

static void set_phase(struct qv_api *a, struct MHD_Connection *conn, enum sock_phase phase)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct sock_ctx *s = ci ? ci->socket_context : NULL;

    if (s == NULL)
        return;
    pthread_mutex_lock(&a->sock_mu);
    s->phase = phase;
    s->rx_mark = RX_UNMARKED; /* SOCK_IDLE: the reaper takes the mark */
    s->t_begin = qv_now_ns();
    pthread_mutex_unlock(&a->sock_mu);
}

/* First call for a request: the headers are complete, the body not read.
 * Everything that can be decided on the headers is decided here. */
static enum MHD_Result on_headers(struct qv_api *a, struct conn_ctx *c)
{
    struct MHD_Connection *conn = c->conn;
    struct cl_scan scan = {0, 0, NULL, false};
    unsigned long long len = 0;
    const struct qv_api_route *rt;
    int status = 404, err;

    set_phase(a, conn, SOCK_BODY);
    MHD_get_connection_values(conn, MHD_HEADER_KIND, scan_header, &scan);
    if (scan.differ || (scan.n_cl > 0 && scan.n_te > 0) ||
        (scan.n_cl > 0 && !parse_length(scan.first, &len))) {
        qv_fail(&c->r.diag, QV_EINVAL,
                "Content-Length: %s", scan.differ ? "given twice with different values"
                                      : scan.n_te ? "sent together with Transfer-Encoding"
                                                  : "not a number");
        return send_error(c, QV_EINVAL);
    }
    /* Authentication on the headers: a client without a valid token never
     * gets its body read. */
    rt = qv__api_match(&c->r, &status);
    if (a->admin != NULL && rt != NULL && !(rt->flags & ROUTE_OPEN)) {
        const union MHD_ConnectionInfo *di =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_DAEMON);
        if (di != NULL && di->daemon == a->admin) {
            /* The admin listener answers health and metrics only. */
            qv_fail(&c->r.diag, QV_ENOENT, "the admin port serves /v2/health/* and /metrics "
                    "only");
            return send_error(c, QV_ENOENT);
        }
    }
    if (rt != NULL) {
        c->r.who = "anonymous";
        err = qv__api_auth(&c->r, rt->flags);
        if (err != QV_OK)
            return send_error(c, err);
    }
    if (scan.n_cl > 0 && len > a->cfg.max_body_bytes) {
        qv_fail(&c->r.diag, QV_E2BIG, "request body of %llu bytes is over the limit of %zu",
                len, a->cfg.max_body_bytes);
        return send_error(c, QV_E2BIG);
    }
    if (scan.n_cl > 0 && len > 0) {
        if (!budget_take(a, c, (size_t)len)) {
            qv_fail(&c->r.diag, QV_EOVERLOAD,
                    "request bodies in flight would exceed the server's budget of %zu bytes; "
                    "retry shortly", a->cfg.body_budget_bytes);
            return send_error(c, QV_EOVERLOAD);
        }
        /* One allocation of the announced size, never a doubling past it. */
        c->body.data = malloc((size_t)len + 1);
        if (c->body.data == NULL) {
            qv_fail(&c->r.diag, QV_ENOMEM, "cannot hold a request body of %llu bytes", len);
            return send_error(c, QV_ENOMEM);
        }
        c->body.cap = (size_t)len + 1;
        c->body.max = (size_t)len;
    }
    return MHD_YES;
}

static void on_body(struct qv_api *a, struct conn_ctx *c, const char *data, size_t n)
{
    if (c->too_big || c->over_budget)
        return;
    if (c->body.len + n > a->cfg.max_body_bytes) {
        c->too_big = true;
        body_release(a, c);
        return;
    }
    /* A chunked body (no Content-Length) takes its budget as it arrives. */
    if (c->body.len + n > c->budget && !budget_take(a, c, c->body.len + n - c->budget)) {
        c->over_budget = true;
        body_release(a, c);
        return;
    }
    if (qv_buf_append(&c->body, data, n) != QV_OK) {
        c->too_big = true;
        body_release(a, c);
    }
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    struct qv_api *a = cls;
    struct conn_ctx *c = *con_cls;
    int rc;

    (void)version;
    if (c == NULL) {
        c = calloc(1, sizeof(*c));
        if (c == NULL)
            return MHD_NO;
        atomic_init(&c->refs, 1);
        c->conn = conn;
        c->t0_ns = qv_now_ns();
        c->r.api = a;
        c->r.deps = &a->deps;
        c->r.method = method;
        c->r.path = url;
        c->r.conn = conn;
        c->r.header = get_header;
        c->r.query = get_query;
        c->r.suspend = on_suspend;
        c->r.complete = on_complete;
        c->r.body_done = on_body_done;
        c->body.max = a->cfg.max_body_bytes;
        *con_cls = c;
        atomic_fetch_add(&a->inflight, 1);
        return on_headers(a, c);
    }
    if (*upload_data_size > 0) {
        if (c->state == CTX_READING)
            on_body(a, c, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (c->state == CTX_PENDING) {
        bool abandoned;
        c->state = CTX_RESUMED;
        pthread_mutex_lock(&a->susp_mu);
        abandoned = c->abandoned;
        pthread_mutex_unlock(&a->susp_mu);
        if (abandoned)
            return queue(c, 503, &c->alt, NULL, 5);
        return send_response(c);
    }
    if (c->state == CTX_RESUMED)
        return MHD_YES; /* answered already (refused on the headers) */
    if (c->too_big) {
        qv_fail(&c->r.diag, QV_E2BIG, "request body is over the limit of %zu bytes",
                a->cfg.max_body_bytes);
        return send_error(c, QV_E2BIG);
    }
    if (c->over_budget) {
        qv_fail(&c->r.diag, QV_EOVERLOAD,
                "request bodies in flight would exceed the server's budget of %zu bytes; "
                "retry shortly", a->cfg.body_budget_bytes);
        return send_error(c, QV_EOVERLOAD);
    }
    c->r.body = c->body.data ? c->body.data : "";
    c->r.body_len = c->body.len;
    c->state = CTX_PENDING;
    set_phase(a, conn, SOCK_BUSY);
    /* Counted first, then the stop checked: a stop either sees this request
     * in pending or this request sees the stop (both sequentially consistent). */
    atomic_fetch_add(&a->pending, 1);
    c->counted = true;
    if (atomic_load(&a->stopping)) {
        atomic_fetch_sub(&a->pending, 1);
        c->counted = false;
        qv_fail(&c->r.diag, QV_ESHUTDOWN, "the server is shutting down");
        body_release(a, c);
        return send_error(c, QV_ESHUTDOWN);
    }
    rc = qv__api_dispatch(&c->r);
    /* Handlers decode the body before they return, unless they handed it to
     * a lane (keep_body): nothing reads it after. */
    if (!c->r.keep_body)
        body_release(a, c);
    if (rc == QV_API_PENDING) {
        if (!suspend_if_out(a, c)) {
            c->pended = true;
            return MHD_YES; /* suspended; resumed by complete() */
        }
        /* Completed already: c->r.resp was written before complete(), and
         * susp_mu orders it before this read. */
        c->state = CTX_RESUMED;
        return send_response(c);
    }
    c->state = CTX_RESUMED;
    return send_response(c);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct qv_api *a = cls;
    struct conn_ctx *c = *con_cls;

    (void)toe;
    set_phase(a, conn, SOCK_IDLE); /* a kept-alive connection, until its next request */
    if (c == NULL)
        return;
    *con_cls = NULL;
    if (c->counted)
        atomic_fetch_sub(&a->pending, 1);
    if (!c->r.keep_body) /* a lane may still read it: freed with the context */
        body_release(a, c);
    atomic_fetch_sub(&a->inflight, 1);
    ctx_put(a, c);
}

/* ---- Connections: accepting ---- */

/* A connection handed to libmicrohttpd is gone (closed, or refused by it):
 * at the cap, the accept thread is woken to take the next one. */
static void conn_closed(struct qv_api *a)
{
    uint64_t one = 1;

    if (atomic_fetch_sub(&a->open_conns, 1) >= a->cfg.max_connections && a->accept_wake >= 0 &&
        write(a->accept_wake, &one, sizeof(one)) < 0) {
        /* The counter is saturated: the accept thread is awake already. */
    }
}

/* Counts a connection for the pool thread (libmicrohttpd worker daemon)
 * that serves it. Called with sock_mu held. */
static void count_worker(struct qv_api *a, const void *daemon)
{
    if (daemon == NULL)
        return;
    for (int i = 0; i < a->n_workers; i++) {
        if (a->workers[i].daemon == daemon || a->workers[i].daemon == NULL) {
            a->workers[i].daemon = daemon;
            a->workers[i].accepted++;
            return;
        }
    }
}

int qv__api_http_metrics(struct qv_api *a, struct qv_buf *b)
{
    int err = 0;

    if (a == NULL || a->n_workers == 0)
        return 0;
    err = qv_buf_printf(b, "# HELP quiver_http_connections_accepted_total Connections accepted "
                        "on the main port, per HTTP thread.\n"
                        "# TYPE quiver_http_connections_accepted_total counter\n");
    pthread_mutex_lock(&a->sock_mu);
    for (int i = 0; i < a->n_workers && !err; i++)
        err = qv_buf_printf(b, "quiver_http_connections_accepted_total{thread=\"%d\"} %ld\n", i,
                            a->workers[i].accepted);
    pthread_mutex_unlock(&a->sock_mu);
    err = err ? err : qv_buf_printf(b, "# HELP quiver_http_connections_open Connections open on "
                                    "the main port.\n"
                                    "# TYPE quiver_http_connections_open gauge\n"
                                    "quiver_http_connections_open %d\n",
                                    atomic_load(&a->open_conns));
    return err;
}

/* libmicrohttpd 0.9.75's thread pool does not spread connections: every pool
 * thread polls the listening socket and the one that wakes accepts in a loop,
 * so a burst of connections often lands on one thread. The main daemon has no
 * listening socket of its own: this thread accepts and hands each connection
 * to MHD_add_connection, which gives it to the pool thread numbered by the
 * descriptor modulo the pool size (the next one with room when that one is
 * full). At --max-connections it stops accepting until a connection closes,
 * so a new client waits in the listen backlog; the per-address limit is
 * applied by MHD_add_connection (over it, the connection is closed). */
static void *acceptor_main(void *arg)
{
    struct qv_api *a = arg;
    int cap = a->cfg.max_connections;

    while (!atomic_load(&a->accept_stop)) {
        struct pollfd p[2] = {{a->accept_wake, POLLIN, 0}, {a->listen_fd, POLLIN, 0}};
        bool full = atomic_load(&a->open_conns) >= cap;
        uint64_t v;

        if (poll(p, full ? 1 : 2, -1) < 0)
            continue; /* EINTR */
        if ((p[0].revents & POLLIN) && read(a->accept_wake, &v, sizeof(v)) < 0) {
            /* EAGAIN: another wake-up read it */
        }
        if (full || !(p[1].revents & POLLIN))
            continue;
        while (atomic_load(&a->open_conns) < cap && !atomic_load(&a->accept_stop)) {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof(ss);
            int fd = accept4(a->listen_fd, (struct sockaddr *)&ss, &sl,
                             SOCK_CLOEXEC | SOCK_NONBLOCK);

            if (fd < 0) {
                if (errno == EINTR || errno == ECONNABORTED)
                    continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK) {
                    /* Out of descriptors or memory: the client stays in the
                     * backlog; retried after a pause, not in a busy loop. */
                    qv_log(QV_LOG_WARN, "msg=\"cannot accept a connection: %s\"",
                           strerror(errno));
                    poll(p, 1, 100);
                }
                break;
            }
            atomic_fetch_add(&a->open_conns, 1);
            if (MHD_add_connection(a->daemon, fd, (struct sockaddr *)&ss, sl) != MHD_YES)
                conn_closed(a); /* refused (per-address limit) and closed by it */
        }
    }
    return NULL;
}

/* Stops the accept thread and closes the listening socket: a new client is
 * refused from now on. */
static void stop_acceptor(struct qv_api *a)
{
    uint64_t one = 1;

    if (a->acceptor_running) {
        atomic_store(&a->accept_stop, true);
        if (write(a->accept_wake, &one, sizeof(one)) < 0) {
            /* saturated: the thread is awake already */
        }
        pthread_join(a->acceptor, NULL);
        a->acceptor_running = false;
    }
    if (a->listen_fd >= 0)
        close(a->listen_fd);
    a->listen_fd = -1;
}

/* The main port's listening socket, as libmicrohttpd opens its own:
 * SO_REUSEADDR, IPv6-only for an IPv6 address, close-on-exec, non-blocking,
 * a backlog of 1,024. Returns -1 with errno set. */
static int open_listener(const struct sockaddr *addr, socklen_t len)
{
    int one = 1;
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int e;

    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (addr->sa_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
        bind(fd, addr, len) != 0 || listen(fd, 1024) != 0) {
        e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* ---- Connections: the header deadline ---- */

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct qv_api *a = cls;
    struct sock_ctx *s = *socket_context;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *di =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_DAEMON);

        s = calloc(1, sizeof(*s));
        pthread_mutex_lock(&a->sock_mu);
        count_worker(a, di ? di->daemon : NULL);
        if (s) {
            s->fd = ci ? ci->connect_fd : -1;
            s->t_begin = qv_now_ns();
            s->next = a->socks;
            if (s->next)
                s->next->prev = s;
            a->socks = s;
        }
        pthread_mutex_unlock(&a->sock_mu);
        *socket_context = s;
        return;
    }
    conn_closed(a);
    if (s == NULL)
        return;
    /* Called before libmicrohttpd closes the socket: once s is off the list
     * the reaper can no longer touch its descriptor. */
    pthread_mutex_lock(&a->sock_mu);
    if (s->prev)
        s->prev->next = s->next;
    else
        a->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    pthread_mutex_unlock(&a->sock_mu);
    free(s);
    *socket_context = NULL;
}

/* libmicrohttpd's connection timeout is reset by every byte, so a client
 * trickling a byte at a time holds its slot forever. This thread cuts a
 * connection whose request headers are not complete within header_timeout_ms
 * of its start (or of the first byte of a kept-alive connection's next
 * request), or whose body is not complete within body_timeout_ms of its
 * headers. A dispatched request (in the engine, a lane, or being answered) is
 * never cut, and a kept-alive connection idle between requests is left to
 * libmicrohttpd's idle timeout: the reaper watches its received byte count
 * (TCP_INFO) and starts the header deadline when the count moves (within one
 * pass, 200 ms). */
static void *reaper_main(void *arg)
{
    struct qv_api *a = arg;
    uint64_t head_limit = (uint64_t)a->cfg.header_timeout_ms * 1000000ull;
    uint64_t body_limit = (uint64_t)a->cfg.body_timeout_ms * 1000000ull;

    pthread_mutex_lock(&a->sock_mu);
    while (!a->reaper_stop) {
        struct timespec ts;
        uint64_t now = qv_now_ns();

        for (struct sock_ctx *s = a->socks; s; s = s->next) {
            uint64_t limit = s->phase == SOCK_HEADERS ? head_limit : body_limit;
            if (s->phase == SOCK_IDLE && !s->cut) {
                uint64_t rx = rx_bytes(s->fd);
                if (s->rx_mark == RX_UNMARKED && rx != UINT64_MAX) {
                    /* The first look at this idle spell: the count to watch.
                     * Taken here rather than by the serving thread at the end
                     * of each request, which would cost a system call per
                     * request. Bytes of the next request that arrived before
                     * this look are in the mark; a client that trickles the
                     * rest moves the count by the next pass, and one that has
                     * stopped is the idle timeout's. */
                    s->rx_mark = rx;
                    continue;
                }
                if (rx == s->rx_mark)
                    continue;
                s->phase = SOCK_HEADERS; /* the next request's first byte */
                s->t_begin = now;
                continue;
            }
            if (s->phase == SOCK_BUSY || s->cut || s->fd < 0 || now - s->t_begin < limit)
                continue;
            s->cut = true;
            shutdown(s->fd, SHUT_RDWR);
            atomic_fetch_add(&a->cut_connections, 1);
        }
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&a->reaper_cond, &a->sock_mu, &ts);
    }
    pthread_mutex_unlock(&a->sock_mu);
    return NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    qv_log(QV_LOG_WARN, "msg=\"%s\"", msg);
}

static void stop_lanes(struct qv_api *a)
{
    if (!qv__api_lane_stop(a->ctl))
        a->lanes_left = true;
    if (!qv__api_lane_stop(a->decode))
        a->lanes_left = true;
    a->ctl = a->decode = NULL;
}

static void api_free(struct qv_api *a)
{
    qv__api_tokens_free(a);
    if (a->listen_fd >= 0)
        close(a->listen_fd);
    if (a->accept_wake >= 0)
        close(a->accept_wake);
    free(a->workers);
    pthread_mutex_destroy(&a->susp_mu);
    pthread_mutex_destroy(&a->sock_mu);
    pthread_cond_destroy(&a->reaper_cond);
    free(a);
}

int qv_api_start(const struct qv_api_config *cfg, const struct qv_api_deps *deps, qv_api **out,
                 struct qv_diag *d)
{
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    struct sockaddr *addr;
    socklen_t addr_len;
    unsigned mhd_limit;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    const char *host = cfg->host && *cfg->host ? cfg->host : "127.0.0.1";
    const union MHD_DaemonInfo *info;
    struct qv_api *a;
    int threads = cfg->threads > 0 ? cfg->threads : qv_cpu_count();
    int err;

    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    memset(&sin, 0, sizeof(sin));
    memset(&sin6, 0, sizeof(sin6));
    if (inet_pton(AF_INET, host, &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        sin.sin_port = htons((uint16_t)cfg->port);
        addr = (struct sockaddr *)&sin;
        addr_len = sizeof(sin);
    } else if (inet_pton(AF_INET6, host, &sin6.sin6_addr) == 1) {
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons((uint16_t)cfg->port);
        addr = (struct sockaddr *)&sin6;
        addr_len = sizeof(sin6);
        flags |= MHD_USE_IPv6;
    } else {
        return qv_fail(d, QV_EINVAL, "--host: \"%s\" is not an IPv4 or IPv6 address", host);
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL)
        return qv_fail(d, QV_ENOMEM, "cannot allocate the HTTP server");
    a->cfg = *cfg;
    a->deps = *deps;
    a->listen_fd = -1;
    a->accept_wake = -1;
    if (a->cfg.max_body_bytes == 0)
        a->cfg.max_body_bytes = QV_API_DEFAULT_MAX_BODY;
    if (a->cfg.body_budget_bytes == 0)
        a->cfg.body_budget_bytes = QV_API_DEFAULT_BODY_BUDGET;
    if (a->cfg.max_connections <= 0)
        a->cfg.max_connections = QV_API_DEFAULT_MAX_CONNECTIONS;
    if (a->cfg.max_connections_per_ip <= 0)
        a->cfg.max_connections_per_ip = QV_API_DEFAULT_MAX_CONNECTIONS_PER_IP;
    if (a->cfg.header_timeout_ms <= 0)
        a->cfg.header_timeout_ms = QV_API_DEFAULT_HEADER_TIMEOUT_MS;
    if (a->cfg.body_timeout_ms <= 0)
        a->cfg.body_timeout_ms = QV_API_DEFAULT_BODY_TIMEOUT_MS;
    if (a->cfg.idle_timeout_s <= 0)
        a->cfg.idle_timeout_s = QV_API_DEFAULT_IDLE_TIMEOUT_S;
    if (a->cfg.decode_budget_bytes == 0)
        a->cfg.decode_budget_bytes = QV_API_DEFAULT_DECODE_BUDGET;
    pthread_mutex_init(&a->susp_mu, NULL);
    pthread_mutex_init(&a->sock_mu, NULL);
    pthread_cond_init(&a->reaper_cond, NULL);
    a->n_workers = threads;
    a->workers = calloc((size_t)threads, sizeof(*a->workers));
    a->accept_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (a->workers == NULL || a->accept_wake < 0) {
        api_free(a);
        return qv_fail(d, QV_ENOMEM, "cannot allocate the HTTP server");
    }
    a->listen_fd = open_listener(addr, addr_len);
    if (a->listen_fd < 0) {
        api_free(a);
        return qv_fail(d, QV_EIO, "cannot listen on %s:%d (in use, or not permitted)", host,
                       cfg->port);
    }
    if (cfg->tokens_file) {
        err = qv__api_tokens_load(a, cfg->tokens_file, d);
        if (err) {
            api_free(a);
            return err;
        }
    }
    /* The lanes exist before the first request can arrive. */
    a->ctl = qv__api_lane_start("load/unload", 1, QV_API_CTL_QUEUE_MAX, d);
    a->decode = a->ctl ? qv__api_lane_start("large inference", QV_API_DECODE_THREADS,
                                            QV_API_DECODE_QUEUE_MAX, d)
                       : NULL;
    if (a->decode == NULL) {
        stop_lanes(a);
        api_free(a);
        return QV_ENOMEM;
    }
    /* No listening socket of its own: acceptor_main hands it connections.
     * The cap is kept by the accept thread; libmicrohttpd splits its own
     * limit evenly over the pool threads and checks a thread's share before
     * the connections still queued to it are counted, so each share is the
     * whole cap and never refuses a connection the accept thread took. */
    mhd_limit = (unsigned)a->cfg.max_connections > UINT32_MAX / (unsigned)threads
                    ? UINT32_MAX
                    : (unsigned)a->cfg.max_connections * (unsigned)threads;
    a->daemon = MHD_start_daemon(
        flags | MHD_USE_NO_LISTEN_SOCKET, 0, NULL, NULL, on_access, a,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, a, MHD_OPTION_CONNECTION_LIMIT, mhd_limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)a->cfg.max_connections_per_ip,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)QV_API_CONNECTION_MEMORY,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)a->cfg.idle_timeout_s, MHD_OPTION_END);
    if (a->daemon == NULL) {
        stop_lanes(a);
        api_free(a);
        return qv_fail(d, QV_EIO, "cannot start the HTTP threads on %s:%d", host, cfg->port);
    }
    if (cfg->admin) {
        /* One thread of its own (no pool, no suspend): health and metrics
         * are answered at once, whatever the main port is doing. */
        struct sockaddr_in asin = sin;
        struct sockaddr_in6 asin6 = sin6;
        struct sockaddr *aaddr = addr == (struct sockaddr *)&sin ? (struct sockaddr *)&asin
                                                                 : (struct sockaddr *)&asin6;
        asin.sin_port = htons((uint16_t)cfg->admin_port);
        asin6.sin6_port = htons((uint16_t)cfg->admin_port);
        a->admin = MHD_start_daemon(
            (flags & ~(unsigned)MHD_ALLOW_SUSPEND_RESUME), (uint16_t)cfg->admin_port, NULL, NULL,
            on_access, a, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
            aaddr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, a, MHD_OPTION_CONNECTION_LIMIT,
            (unsigned)QV_API_ADMIN_CONNECTIONS, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
            (size_t)QV_API_CONNECTION_MEMORY, MHD_OPTION_CONNECTION_TIMEOUT,
            (unsigned)a->cfg.idle_timeout_s, MHD_OPTION_END);
        if (a->admin == NULL) {
            MHD_stop_daemon(a->daemon);
            stop_lanes(a);
            api_free(a);
            return qv_fail(d, QV_EIO, "--admin-port: cannot listen on %s:%d (in use, or not "
                           "permitted)", host, cfg->admin_port);
        }
        info = MHD_get_daemon_info(a->admin, MHD_DAEMON_INFO_BIND_PORT);
        a->admin_port = info ? info->port : cfg->admin_port;
    }
    if (pthread_create(&a->reaper, NULL, reaper_main, a) != 0) {
        if (a->admin)
            MHD_stop_daemon(a->admin);
        MHD_stop_daemon(a->daemon);
        stop_lanes(a);
        api_free(a);
        return qv_fail(d, QV_ENOMEM, "cannot start the connection reaper");
    }
    if (pthread_create(&a->acceptor, NULL, acceptor_main, a) != 0) {
        pthread_mutex_lock(&a->sock_mu);
        a->reaper_stop = true;
        pthread_cond_signal(&a->reaper_cond);
        pthread_mutex_unlock(&a->sock_mu);
        pthread_join(a->reaper, NULL);
        if (a->admin)
            MHD_stop_daemon(a->admin);
        MHD_stop_daemon(a->daemon);
        stop_lanes(a);
        api_free(a);
        return qv_fail(d, QV_ENOMEM, "cannot start the accept thread");
    }
    a->acceptor_running = true;
    pthread_setname_np(a->acceptor, "qv-accept");
    {
        struct sockaddr_storage bound;
        socklen_t bl = sizeof(bound);

        a->port = cfg->port;
        if (getsockname(a->listen_fd, (struct sockaddr *)&bound, &bl) == 0)
            a->port = bound.ss_family == AF_INET6
                          ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                          : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    }
    *out = a;
    return QV_OK;
}

int qv_api_port(const qv_api *a)
{
    return a->port;
}

int qv_api_admin_port(const qv_api *a)
{
    return a->admin ? a->admin_port : 0;
}

/* A stop that could not finish leaves the server here, reachable, for the
 * process exit: an abandoned request's thread may still write into it. */
static struct qv_api *abandoned_api;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* The accept thread stops first and the listening socket is closed: a new
 * connection is refused. Then the server stops taking work on the open ones
 * (libmicrohttpd's MHD_quiesce_daemon is not used: it races with its own
 * epoll threads in a thread pool, an abort): once stopping is set, a new
 * request is answered 503 at once, and dispatched ones are waited for (a
 * request still sending its body is not: it gets 503 when the body is in, or
 * its connection is closed). At the deadline every request still out is
 * answered 503 and its connection resumed, since libmicrohttpd aborts the
 * process when stopped with a suspended connection. */
int qv_api_stop(qv_api *a, int timeout_ms)
{
    uint64_t deadline, grace;
    int abandoned = 0;

    if (a == NULL)
        return 0;
    stop_acceptor(a);
    atomic_store(&a->stopping, true);
    deadline = qv_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000ull;
    while (atomic_load(&a->pending) > 0 && qv_now_ns() < deadline)
        sleep_ms(5);
    stop_lanes(a);
    pthread_mutex_lock(&a->susp_mu);
    a->abandoning = true;
    for (struct conn_ctx *c = a->suspended, *next; c; c = next) {
        next = c->next;
        abandon(c);
    }
    a->suspended = NULL;
    pthread_mutex_unlock(&a->susp_mu);
    abandoned = atomic_load(&a->n_abandoned);
    if (abandoned > 0) {
        qv_log(QV_LOG_WARN, "requests=%d msg=\"drain deadline passed: answered 503, their work "
               "abandoned\"", abandoned);
        /* The 503s go out before the daemon stops (bounded wait). */
        grace = qv_now_ns() + 2000ull * 1000000ull;
        while (atomic_load(&a->pending) > 0 && qv_now_ns() < grace)
            sleep_ms(5);
    }
    pthread_mutex_lock(&a->sock_mu);
    a->reaper_stop = true;
    pthread_cond_signal(&a->reaper_cond);
    pthread_mutex_unlock(&a->sock_mu);
    pthread_join(a->reaper, NULL);
    MHD_stop_daemon(a->daemon);
    a->daemon = NULL;
    if (a->admin)
        MHD_stop_daemon(a->admin);
    a->admin = NULL;
    abandoned = atomic_load(&a->n_abandoned);
    if (abandoned > 0 || a->lanes_left) {
        abandoned_api = a;
        return abandoned > 0 ? abandoned : 1;
    }
    api_free(a);
    return 0;
}
