/* SPDX-License-Identifier: MIT
 *
 * The HTTP layer on libmicrohttpd, the only file that sees <microhttpd.h>.
 * libmicrohttpd is used with its internal thread pool on epoll and with
 * suspend/resume: an inference request suspends its connection and the
 * worker that completes it resumes it, so HTTP threads never wait for a
 * backend. Bodies are accumulated up to max_body_bytes; a Content-Length over
 * the limit is refused with 413 before the body is read.
 */
#include "api_int.h"

#define QV_LOG_MODULE "http"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum ctx_state { CTX_READING, CTX_PENDING, CTX_RESUMED };

struct conn_ctx {
    struct qv_http_req r;
    struct qv_buf body;
    enum ctx_state state;
    bool too_big;
    bool suspended;
    bool counted;   /* began before the stop: counted in pending */
    struct MHD_Connection *conn;
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

static enum MHD_Result send_response(struct conn_ctx *c)
{
    struct qv_http_req *r = &c->r;
    struct MHD_Response *resp;
    enum MHD_Result ret;
    size_t len = r->resp.len;
    char *body = qv_buf_take(&r->resp);
    const char *type = "application/json";
    char num[24];

    resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    if (r->content_type != NULL)
        type = r->content_type;
    else if (strncmp(r->path, "/metrics", 8) == 0)
        type = "text/plain; version=0.0.4; charset=utf-8";
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    for (int i = 0; i < r->n_headers; i++)
        MHD_add_response_header(resp, r->headers[i][0], r->headers[i][1]);
    if (r->version_header[0])
        MHD_add_response_header(resp, "X-Quiver-Version", r->version_header);
    if (r->retry_after > 0) {
        snprintf(num, sizeof(num), "%d", r->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, num);
    }
    ret = MHD_queue_response(c->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Any thread: the response of a pending request is ready. */
static void on_complete(struct qv_http_req *r)
{
    struct conn_ctx *c = (struct conn_ctx *)r;

    MHD_resume_connection(c->conn);
}

/* HTTP thread: the handler is about to hand the request to another thread. */
static void on_suspend(struct qv_http_req *r)
{
    struct conn_ctx *c = (struct conn_ctx *)r;

    c->suspended = true;
    MHD_suspend_connection(c->conn);
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
        const char *cl;

        c = calloc(1, sizeof(*c));
        if (c == NULL)
            return MHD_NO;
        c->conn = conn;
        c->r.api = a;
        c->r.deps = &a->deps;
        c->r.method = method;
        c->r.path = url;
        c->r.conn = conn;
        c->r.header = get_header;
        c->r.query = get_query;
        c->r.suspend = on_suspend;
        c->r.complete = on_complete;
        c->body.max = a->cfg.max_body_bytes;
        *con_cls = c;
        atomic_fetch_add(&a->inflight, 1);
        if (!atomic_load(&a->stopping)) {
            c->counted = true;
            atomic_fetch_add(&a->pending, 1);
        }
        cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > a->cfg.max_body_bytes) {
            qv_fail(&c->r.diag, QV_E2BIG, "request body of %s bytes is over the limit of %zu",
                    cl, a->cfg.max_body_bytes);
            qv__api_error(&c->r, QV_E2BIG);
            c->state = CTX_RESUMED;
            return send_response(c);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!c->too_big && qv_buf_append(&c->body, upload_data, *upload_data_size) != QV_OK)
            c->too_big = true;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (c->state == CTX_PENDING) {
        c->state = CTX_RESUMED;
        return send_response(c);
    }
    if (c->state == CTX_RESUMED)
        return MHD_YES; /* the 413 was queued already */
    if (c->too_big) {
        qv_fail(&c->r.diag, QV_E2BIG, "request body is over the limit of %zu bytes",
                a->cfg.max_body_bytes);
        qv__api_error(&c->r, QV_E2BIG);
        c->state = CTX_RESUMED;
        return send_response(c);
    }
    c->r.body = c->body.data ? c->body.data : "";
    c->r.body_len = c->body.len;
    c->state = CTX_PENDING;
    if (atomic_load(&a->stopping) && !c->counted) {
        qv_fail(&c->r.diag, QV_ESHUTDOWN, "the server is shutting down");
        qv__api_error(&c->r, QV_ESHUTDOWN);
        c->state = CTX_RESUMED;
        return send_response(c);
    }
    rc = qv__api_dispatch(&c->r);
    if (rc == QV_API_PENDING)
        return MHD_YES; /* suspended; resumed by complete() */
    c->state = CTX_RESUMED;
    return send_response(c);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct qv_api *a = cls;
    struct conn_ctx *c = *con_cls;

    (void)conn;
    (void)toe;
    if (c == NULL)
        return;
    if (c->counted)
        atomic_fetch_sub(&a->pending, 1);
    qv_buf_free(&c->body);
    qv_buf_free(&c->r.resp);
    free(c);
    *con_cls = NULL;
    atomic_fetch_sub(&a->inflight, 1);
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

int qv_api_start(const struct qv_api_config *cfg, const struct qv_api_deps *deps, qv_api **out,
                 struct qv_diag *d)
{
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    struct sockaddr *addr;
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
    } else if (inet_pton(AF_INET6, host, &sin6.sin6_addr) == 1) {
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons((uint16_t)cfg->port);
        addr = (struct sockaddr *)&sin6;
        flags |= MHD_USE_IPv6;
    } else {
        return qv_fail(d, QV_EINVAL, "--host: \"%s\" is not an IPv4 or IPv6 address", host);
    }
    a = qv_xcalloc(1, sizeof(*a));
    a->cfg = *cfg;
    a->deps = *deps;
    if (cfg->tokens_file) {
        err = qv__api_tokens_load(a, cfg->tokens_file, d);
        if (err) {
            free(a);
            return err;
        }
    }
    a->daemon = MHD_start_daemon(
        flags, (uint16_t)cfg->port, NULL, NULL, on_access, a, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
        a, MHD_OPTION_CONNECTION_LIMIT, (unsigned)8192, MHD_OPTION_LISTEN_BACKLOG_SIZE,
        (unsigned)1024, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_END);
    if (a->daemon == NULL) {
        qv__api_tokens_free(a);
        free(a);
        return qv_fail(d, QV_EIO, "cannot listen on %s:%d (in use, or not permitted)", host,
                       cfg->port);
    }
    info = MHD_get_daemon_info(a->daemon, MHD_DAEMON_INFO_BIND_PORT);
    a->port = info ? info->port : cfg->port;
    *out = a;
    return QV_OK;
}

int qv_api_port(const qv_api *a)
{
    return a->port;
}

/* libmicrohttpd's MHD_quiesce_daemon races with its own epoll threads when a
 * thread pool is used ("Failed to remove listen FD from epoll set", an abort),
 * so the server stops accepting work its own way: once stopping is set, a new
 * request is answered 503 at once, and in-flight ones are waited for. */
void qv_api_stop(qv_api *a, int timeout_ms)
{
    uint64_t deadline;

    if (a == NULL)
        return;
    atomic_store(&a->stopping, true);
    deadline = qv_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    while (atomic_load(&a->pending) > 0 && qv_now_ns() < deadline) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(a->daemon);
    qv__api_tokens_free(a);
    free(a);
}
