/* SPDX-License-Identifier: MIT
 *
 * The access log and the warn line for refusals; see access_log.h.
 */
#include "access_log.h"

#include "api_int.h"

#define QV_LOG_MODULE "http"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int access_fd = -1; /* set before the server starts, read by HTTP threads */
static bool access_own_fd; /* opened here: closed at the end */
static int access_sample = 1;
static _Atomic unsigned long long access_count;
static _Atomic unsigned long long request_seq;

int qv_access_log_parse_format(const char *s)
{
    if (strcmp(s, "logfmt") == 0)
        qv_log_set_format(QV_LOG_LOGFMT);
    else if (strcmp(s, "json") == 0)
        qv_log_set_format(QV_LOG_JSON);
    else {
        fprintf(stderr, "quiver serve: --log-format: expected logfmt or json, got \"%s\"\n", s);
        return -1;
    }
    return 0;
}

int qv_access_log_open(const char *path, int sample, struct qv_diag *d)
{
    access_sample = sample > 0 ? sample : 1;
    if (path == NULL)
        return QV_OK;
    if (strcmp(path, "-") == 0) {
        access_fd = STDERR_FILENO;
        access_own_fd = false;
        return QV_OK;
    }
    access_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (access_fd < 0)
        return qv_fail(d, QV_EIO, "--access-log: cannot open %s: %s", path, strerror(errno));
    access_own_fd = true;
    return QV_OK;
}

void qv_access_log_close(void)
{
    if (access_own_fd && access_fd >= 0)
        close(access_fd);
    access_fd = -1;
    access_own_fd = false;
}

static void format_remote(const struct sockaddr *sa, char *out, size_t len)
{
    snprintf(out, len, "-");
    if (sa == NULL)
        return;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)len);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)len);
}

/* Refusals that are about the server or the client's standing, not about
 * one request's content: the index of their rate limiter, or -1. Server
 * errors answered at once were logged where they happened (routes.c). */
static int warn_class(int status, bool was_pending)
{
    switch (status) {
    case 401:
    case 403:
        return 0;
    case 413:
        return 1;
    case 429:
        return 2;
    default:
        return status >= 500 && was_pending ? 3 : -1;
    }
}

/* A flood of refusals (a queue full under load, a client without its
 * token) must not turn into a flood of log lines: at most WARN_PER_SECOND
 * lines per class and second; the next line that passes says how many were
 * left out. */
#define WARN_PER_SECOND 10

struct limiter {
    _Atomic uint64_t second;
    _Atomic unsigned n;
    _Atomic unsigned long long dropped;
};

static struct limiter limiters[4];

static bool limiter_pass(struct limiter *l, unsigned long long *dropped)
{
    uint64_t now = qv_now_ns() / 1000000000u;
    uint64_t sec = atomic_load(&l->second);

    if (sec != now && atomic_compare_exchange_strong(&l->second, &sec, now))
        atomic_store(&l->n, 0);
    if (atomic_fetch_add(&l->n, 1) >= WARN_PER_SECOND) {
        atomic_fetch_add(&l->dropped, 1);
        return false;
    }
    *dropped = atomic_exchange(&l->dropped, 0);
    return true;
}

void qv_access_log_request(struct qv_http_req *r, uint64_t t0_ns, size_t bytes,
                           const struct sockaddr *remote, bool was_pending)
{
    char addr[INET6_ADDRSTRLEN + 1], rid[40];
    const char *given = r->header ? r->header(r, "X-Request-Id") : NULL;
    const char *model = r->n_params > 0 ? r->params[0] : "-";
    const char *version = r->version_header[0] ? r->version_header : "-";
    int wc = warn_class(r->status, was_pending);
    unsigned long long dropped = 0;
    bool warn = wc >= 0 && qv_log_enabled(QV_LOG_WARN);
    bool log = access_fd >= 0;
    uint64_t now = qv_now_ns();
    unsigned long long us = now > t0_ns ? (unsigned long long)((now - t0_ns) / 1000u) : 0;

    if (log && r->status < 400 && access_sample > 1)
        log = atomic_fetch_add(&access_count, 1) % (unsigned long long)access_sample == 0;
    if (warn)
        warn = limiter_pass(&limiters[wc], &dropped);
    if (!log && !warn)
        return;
    format_remote(remote, addr, sizeof(addr));
    if (given && *given && strlen(given) <= 128) {
        snprintf(rid, sizeof(rid), "%.*s", 39, given);
    } else {
        snprintf(rid, sizeof(rid), "%llx-%llx", (unsigned long long)(t0_ns & 0xffffffffffull),
                 (unsigned long long)atomic_fetch_add(&request_seq, 1));
    }
    if (log)
        qv_log_to(access_fd, QV_LOG_INFO, "access",
                  "remote=%s method=%s path=%s status=%d model=%s version=%s bytes=%zu "
                  "latency_us=%llu request_id=%s",
                  addr, r->method, r->path, r->status, model, version, bytes, us, rid);
    if (warn)
        qv_log(QV_LOG_WARN,
               "remote=%s method=%s path=%s status=%d model=%s request_id=%s msg=\"refused\" "
               "reason=\"%s\" suppressed=%llu",
               addr, r->method, r->path, r->status, model, rid, r->diag.msg[0] ? r->diag.msg : "-",
               dropped);
}
