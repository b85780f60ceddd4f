/* SPDX-License-Identifier: MIT
 *
 * A socket fault injector for the fault suite, loaded into the real server
 * with LD_PRELOAD (built for the tests only, never installed). On stream
 * sockets, send/sendmsg/write/writev/recv/read return, at a seeded rate, a
 * short count, EINTR or EAGAIN instead of doing their whole work:
 *
 *   QV_SOCKFAULT_SEED   seed of the generator (required: without it the shim
 *                       passes every call through)
 *   QV_SOCKFAULT_RATE   percent of calls that get a fault (default 30)
 *   QV_SOCKFAULT_STATS  file the counts are written to at exit
 *   QV_SOCKFAULT_KINDS  which faults, any of "short", "eintr", "eagain"
 *                       (default all three)
 *   QV_SOCKFAULT_DIR    "in" (recv, read), "out" (send, sendmsg, write,
 *                       writev) or "both" (default)
 *
 * A real EAGAIN is followed by readiness when the socket becomes readable or
 * writable again; an injected one is not (the socket is ready already, and
 * an edge-triggered epoll would wait forever). The same holds for a short
 * count: libmicrohttpd, like most edge-triggered servers, takes a short recv
 * or send to mean that the socket is drained or full, which the kernel makes
 * true, and waits for the next edge. So the shim remembers which epoll set
 * holds each socket (epoll_ctl is wrapped too) and, after an injected EAGAIN
 * or short count, re-arms the socket there (EPOLL_CTL_MOD with the same
 * events), which reports it again when it is ready: the sequence a kernel
 * produces when the rest of the data arrives (or the buffer drains) right
 * after the call.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FD 65536
#define MAX_IOV 64

static ssize_t (*real_send)(int, const void *, size_t, int);
static ssize_t (*real_sendmsg)(int, const struct msghdr *, int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_recv)(int, void *, size_t, int);
static ssize_t (*real_read)(int, void *, size_t);
static int (*real_epoll_ctl)(int, int, int, struct epoll_event *);

static bool active;
static bool k_short = true, k_eintr = true, k_eagain = true;
static bool d_in = true, d_out = true;
static unsigned rate = 30;
static uint64_t seed;
static _Atomic uint64_t draws;
static _Atomic unsigned long n_calls, n_short, n_eintr, n_eagain, n_rearm;

/* Which epoll set holds each socket, and with which events. */
static pthread_mutex_t ep_mu = PTHREAD_MUTEX_INITIALIZER;
static struct { int epfd; struct epoll_event ev; } ep_of[MAX_FD];

/* dlsym returns an object pointer; POSIX allows reading it as a function
 * pointer through memcpy. */
static void *sym(const char *name, void *fn_ptr, size_t size)
{
    void *p = dlsym(RTLD_NEXT, name);

    memcpy(fn_ptr, &p, size);
    return p;
}

static void resolve(void)
{
    sym("send", &real_send, sizeof(real_send));
    sym("sendmsg", &real_sendmsg, sizeof(real_sendmsg));
    sym("write", &real_write, sizeof(real_write));
    sym("writev", &real_writev, sizeof(real_writev));
    sym("recv", &real_recv, sizeof(real_recv));
    sym("read", &real_read, sizeof(real_read));
    sym("epoll_ctl", &real_epoll_ctl, sizeof(real_epoll_ctl));
}

__attribute__((constructor)) static void shim_init(void)
{
    const char *s = getenv("QV_SOCKFAULT_SEED");
    const char *r = getenv("QV_SOCKFAULT_RATE");

    resolve();
    if (s == NULL || *s == '\0')
        return;
    seed = strtoull(s, NULL, 10);
    if (r != NULL && *r != '\0')
        rate = (unsigned)strtoul(r, NULL, 10);
    if (rate > 100)
        rate = 100;
    s = getenv("QV_SOCKFAULT_KINDS");
    if (s != NULL && *s != '\0') {
        k_short = strstr(s, "short") != NULL;
        k_eintr = strstr(s, "eintr") != NULL;
        k_eagain = strstr(s, "eagain") != NULL;
    }
    s = getenv("QV_SOCKFAULT_DIR");
    if (s != NULL && *s != '\0') {
        d_in = strcmp(s, "out") != 0;
        d_out = strcmp(s, "in") != 0;
    }
    active = true;
}

__attribute__((destructor)) static void shim_fini(void)
{
    const char *path = getenv("QV_SOCKFAULT_STATS");
    char line[256];
    int fd, n;

    if (!active || path == NULL || *path == '\0')
        return;
    n = snprintf(line, sizeof(line), "calls=%lu short=%lu eintr=%lu eagain=%lu rearm=%lu\n",
                 atomic_load(&n_calls), atomic_load(&n_short), atomic_load(&n_eintr),
                 atomic_load(&n_eagain), atomic_load(&n_rearm));
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        if (real_write(fd, line, (size_t)n) < 0) {
        }
        close(fd);
    }
}

/* splitmix64 over a shared counter: the same seed gives the same sequence of
 * draws (their order across threads depends on scheduling). */
static uint64_t draw(void)
{
    uint64_t z = seed + 0x9e3779b97f4a7c15ull * (atomic_fetch_add(&draws, 1) + 1);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static bool is_stream_socket(int fd)
{
    struct stat st;
    int type = 0;
    socklen_t len = sizeof(type);

    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
        return false;
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

enum fault { F_NONE, F_SHORT, F_EINTR, F_EAGAIN };

static enum fault pick(int fd, size_t len, bool out)
{
    uint64_t x;

    if (!active || !(out ? d_out : d_in) || !is_stream_socket(fd))
        return F_NONE;
    atomic_fetch_add(&n_calls, 1);
    x = draw();
    if (x % 100 >= rate)
        return F_NONE;
    switch ((x >> 8) % 3) {
    case 0:
        if (k_short && len > 1) {
            atomic_fetch_add(&n_short, 1);
            return F_SHORT;
        }
        return F_NONE;
    case 1:
        if (!k_eintr)
            return F_NONE;
        atomic_fetch_add(&n_eintr, 1);
        return F_EINTR;
    default:
        if (!k_eagain)
            return F_NONE;
        atomic_fetch_add(&n_eagain, 1);
        return F_EAGAIN;
    }
}

/* A shorter length in [1, len - 1]. */
static size_t cut(size_t len)
{
    return 1 + (size_t)(draw() % (len - 1));
}

/* Reports fd ready again in its epoll set (after an injected EAGAIN or short
 * count). */
static void rearm(int fd)
{
    if (fd < MAX_FD) {
        pthread_mutex_lock(&ep_mu);
        if (ep_of[fd].epfd > 0) {
            struct epoll_event ev = ep_of[fd].ev;
            if (real_epoll_ctl(ep_of[fd].epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
                atomic_fetch_add(&n_rearm, 1);
        }
        pthread_mutex_unlock(&ep_mu);
    }
}

static ssize_t fail_with(int fd, int err)
{
    if (err == EAGAIN)
        rearm(fd);
    errno = err;
    return -1;
}

static ssize_t cut_done(int fd, ssize_t rc)
{
    rearm(fd);
    return rc;
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    int rc;

    if (real_epoll_ctl == NULL)
        resolve();
    rc = real_epoll_ctl(epfd, op, fd, ev);
    if (rc == 0 && fd >= 0 && fd < MAX_FD) {
        pthread_mutex_lock(&ep_mu);
        if (op == EPOLL_CTL_DEL) {
            ep_of[fd].epfd = 0;
        } else if (ev != NULL) {
            ep_of[fd].epfd = epfd;
            ep_of[fd].ev = *ev;
        }
        pthread_mutex_unlock(&ep_mu);
    }
    return rc;
}

ssize_t send(int fd, const void *buf, size_t len, int flags)
{
    if (real_send == NULL)
        resolve();
    switch (pick(fd, len, true)) {
    case F_SHORT:
        return cut_done(fd, real_send(fd, buf, cut(len), flags));
    case F_EINTR:
        return fail_with(fd, EINTR);
    case F_EAGAIN:
        return fail_with(fd, EAGAIN);
    default:
        return real_send(fd, buf, len, flags);
    }
}

ssize_t write(int fd, const void *buf, size_t len)
{
    if (real_write == NULL)
        resolve();
    switch (pick(fd, len, true)) {
    case F_SHORT:
        return cut_done(fd, real_write(fd, buf, cut(len)));
    case F_EINTR:
        return fail_with(fd, EINTR);
    case F_EAGAIN:
        return fail_with(fd, EAGAIN);
    default:
        return real_write(fd, buf, len);
    }
}

ssize_t recv(int fd, void *buf, size_t len, int flags)
{
    if (real_recv == NULL)
        resolve();
    switch (pick(fd, len, false)) {
    case F_SHORT:
        return cut_done(fd, real_recv(fd, buf, cut(len), flags));
    case F_EINTR:
        return fail_with(fd, EINTR);
    case F_EAGAIN:
        return fail_with(fd, EAGAIN);
    default:
        return real_recv(fd, buf, len, flags);
    }
}

ssize_t read(int fd, void *buf, size_t len)
{
    if (real_read == NULL)
        resolve();
    switch (pick(fd, len, false)) {
    case F_SHORT:
        return cut_done(fd, real_read(fd, buf, cut(len)));
    case F_EINTR:
        return fail_with(fd, EINTR);
    case F_EAGAIN:
        return fail_with(fd, EAGAIN);
    default:
        return real_read(fd, buf, len);
    }
}

/* Copies the first 'keep' bytes' worth of iov into out; returns the count. */
static int trim_iov(const struct iovec *iov, int n, size_t keep, struct iovec *out)
{
    int k = 0;

    for (int i = 0; i < n && k < MAX_IOV && keep > 0; i++) {
        size_t l = iov[i].iov_len < keep ? iov[i].iov_len : keep;
        if (l == 0)
            continue;
        out[k].iov_base = iov[i].iov_base;
        out[k].iov_len = l;
        keep -= l;
        k++;
    }
    return k;
}

static size_t iov_total(const struct iovec *iov, int n)
{
    size_t t = 0;

    for (int i = 0; i < n; i++)
        t += iov[i].iov_len;
    return t;
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    struct iovec part[MAX_IOV];
    struct msghdr m;

    if (real_sendmsg == NULL)
        resolve();
    switch (pick(fd, iov_total(msg->msg_iov, (int)msg->msg_iovlen), true)) {
    case F_SHORT:
        m = *msg;
        m.msg_iov = part;
        m.msg_iovlen = (size_t)trim_iov(msg->msg_iov, (int)msg->msg_iovlen,
                                        cut(iov_total(msg->msg_iov, (int)msg->msg_iovlen)),
                                        part);
        return cut_done(fd, real_sendmsg(fd, &m, flags));
    case F_EINTR:
        return fail_with(fd, EINTR);
    case F_EAGAIN:
        return fail_with(fd, EAGAIN);
    default:
        return real_sendmsg(fd, msg, flags);
    }
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
    struct iovec part[MAX_IOV];

    if (real_writev == NULL)
        resolve();
    switch (pick(fd, iov_total(iov, n), true)) {
    case F_SHORT:
        return cut_done(fd, real_writev(fd, part, trim_iov(iov, n, cut(iov_total(iov, n)), part)));
    case F_EINTR:
        return fail_with(fd, EINTR);
    case F_EAGAIN:
        return fail_with(fd, EAGAIN);
    default:
        return real_writev(fd, iov, n);
    }
}
