/* SPDX-License-Identifier: MIT
 *
 * Clocks, hashing, memory helpers, files and machine facts. */
#define _GNU_SOURCE
#include "util.h"

#define QV_LOG_MODULE "util"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint64_t qv_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t qv_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

uint64_t qv_thread_cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void qv_iso8601(uint64_t wall_ms, char buf[32])
{
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;

    gmtime_r(&secs, &tm);
    snprintf(buf, 32, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", (unsigned)(tm.tm_year + 1900) % 10000u,
             (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u,
             (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u, (unsigned)(wall_ms % 1000u) % 1000u);
}

int qv_sha256_file(const char *path, char hex[QV_SHA256_HEX], struct qv_diag *d)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    unsigned char chunk[65536];
    EVP_MD_CTX *ctx = NULL;
    struct stat st;
    uint64_t left;
    int fd, err = QV_OK;

    /* O_NONBLOCK: opening a FIFO with no writer must not wait for one. Only
     * a regular file is read, and only the size it had when opened (a
     * device such as /dev/zero never ends). */
    fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return qv_fail(d, QV_EIO, "cannot open %s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        err = qv_fail(d, QV_EIO, "%s is not a regular file", path);
        goto out;
    }
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        err = qv_fail(d, QV_ENOMEM, "cannot start SHA-256");
        goto out;
    }
    for (left = (uint64_t)st.st_size; left > 0;) {
        ssize_t n = read(fd, chunk, left < sizeof(chunk) ? (size_t)left : sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            err = qv_fail(d, QV_EIO, "cannot read %s: %s", path,
                          n < 0 ? strerror(errno) : "shorter than its size");
            goto out;
        }
        EVP_DigestUpdate(ctx, chunk, (size_t)n);
        left -= (uint64_t)n;
    }
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    for (unsigned i = 0; i < mdlen && i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    hex[64] = '\0';
out:
    EVP_MD_CTX_free(ctx);
    close(fd);
    return err;
}

uint64_t qv_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

uint64_t qv_hash64(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull ^ seed;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return qv_mix64(h);
}

static void oom(size_t n)
{
    qv_log(QV_LOG_ERROR, "bytes=%zu msg=\"out of memory on a control-plane allocation\"", n);
    abort();
}

void *qv_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (p == NULL)
        oom(n);
    return p;
}

void *qv_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (p == NULL)
        oom(n * size);
    return p;
}

void *qv_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (q == NULL)
        oom(n);
    return q;
}

char *qv_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = qv_xmalloc(n);

    memcpy(p, s, n);
    return p;
}

int qv_buf_append(struct qv_buf *b, const void *p, size_t n)
{
    if (b->max && b->len + n > b->max)
        return QV_E2BIG;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *q;

        while (cap < b->len + n + 1)
            cap *= 2;
        q = realloc(b->data, cap);
        if (q == NULL)
            return QV_ENOMEM;
        b->data = q;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return QV_OK;
}

int qv_buf_printf(struct qv_buf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return QV_EINVAL;
    if ((size_t)n < sizeof(small))
        return qv_buf_append(b, small, (size_t)n);
    {
        char *big = malloc((size_t)n + 1);
        int err;

        if (big == NULL)
            return QV_ENOMEM;
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        err = qv_buf_append(b, big, (size_t)n);
        free(big);
        return err;
    }
}

char *qv_buf_take(struct qv_buf *b)
{
    char *p = b->data;

    if (p == NULL)
        p = qv_xstrdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void qv_buf_free(struct qv_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int qv_file_read_all(const char *path, size_t max, char **out, size_t *len, struct qv_diag *d)
{
    struct stat st;
    char *buf = NULL;
    FILE *f;
    size_t n;

    f = fopen(path, "rb");
    if (f == NULL)
        return qv_fail(d, errno == ENOENT ? QV_ENOENT : QV_EIO, "cannot open %s: %s", path,
                       strerror(errno));
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return qv_fail(d, QV_EIO, "%s is not a regular file", path);
    }
    if (max && (size_t)st.st_size > max) {
        fclose(f);
        return qv_fail(d, QV_E2BIG, "%s is %lld bytes, over the limit of %zu", path,
                       (long long)st.st_size, max);
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        fclose(f);
        return qv_fail(d, QV_ENOMEM, "cannot allocate %lld bytes for %s", (long long)st.st_size,
                       path);
    }
    n = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    if (n != (size_t)st.st_size) {
        free(buf);
        return qv_fail(d, QV_EIO, "short read on %s", path);
    }
    buf[n] = '\0';
    *out = buf;
    if (len)
        *len = n;
    return QV_OK;
}

int qv_mkdir_p(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(tmp))
        return QV_EINVAL;
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return QV_EIO;
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return QV_EIO;
    return QV_OK;
}

void qv_mutex_init(qv_mutex *mu)
{
    pthread_mutex_init(&mu->m, NULL);
}

void qv_mutex_fini(qv_mutex *mu)
{
    pthread_mutex_destroy(&mu->m);
}

void qv_mutex_lock(qv_mutex *mu)
{
    pthread_mutex_lock(&mu->m);
}

void qv_mutex_unlock(qv_mutex *mu)
{
    pthread_mutex_unlock(&mu->m);
}

int qv_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n > 0 ? (int)n : 1;
}

uint64_t qv_mem_total_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);

    return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
}

uint64_t qv_rss_bytes(void)
{
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}
