/* SPDX-License-Identifier: MIT
 *
 * util/util.h -- the bottom of the module graph: error codes, diagnostics,
 * logging, clocks, SHA-256 and allocation helpers. Everything here is safe to
 * call from any thread.
 */
#ifndef QV_UTIL_H
#define QV_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

/* ---- Errors ----
 * One table, three uses: the enum, the message and the HTTP status (libuv's
 * UV_ERRNO_MAP). Functions that can fail return 0 or one of these. */
#define QV_ERR_MAP(X)                                                                              \
    X(OK, 0, 200, "success")                                                                       \
    X(EINVAL, -1, 400, "invalid argument")                                                         \
    X(ENOENT, -2, 404, "no such model or version")                                                 \
    X(E2BIG, -3, 413, "request too large")                                                         \
    X(ENOMEM, -4, 503, "out of memory")                                                            \
    X(EBUSY, -5, 503, "model version not ready")                                                   \
    X(ENOTSUP, -6, 501, "operator or type not supported")                                          \
    X(EBACKEND, -7, 500, "backend failure")                                                        \
    X(EOVERLOAD, -8, 429, "queue full")                                                            \
    X(EIO, -9, 500, "input/output error")                                                          \
    X(EUNAUTH, -10, 401, "missing or invalid token")                                               \
    X(EFORBIDDEN, -11, 403, "not allowed")                                                         \
    X(ECONFLICT, -12, 409, "conflict")                                                             \
    X(ETIMEDOUT, -13, 504, "timed out")                                                            \
    X(ESHUTDOWN, -14, 503, "server is shutting down")                                              \
    X(ESTORE, -15, 500, "store failure")                                                           \
    X(EUNAVAIL, -16, 503, "model version unavailable")                                             \
    X(ESTOREDOWN, -17, 503, "store unreachable")

enum qv_err {
#define X(name, code, http, msg) QV_##name = (code),
    QV_ERR_MAP(X)
#undef X
};

const char *qv_strerror(int err);   /* Any thread. Never NULL. */
const char *qv_err_name(int err);   /* "EINVAL", ... Any thread. Never NULL. */
int qv_err_http_status(int err);    /* Any thread. 500 for unknown codes. */

/* Error detail for the caller: which model, which field, what was expected.
 * Caller-owned, filled by the callee on failure (SQLite's errmsg, made
 * explicit and thread-safe). */
struct qv_diag {
    char msg[256];
};

void qv_diag_set(struct qv_diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Fills d (if not NULL and still empty) and returns err, for `return qv_fail(...)`. */
int qv_fail(struct qv_diag *d, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- Logging ----
 * One line per event, key=value fields:
 *   ts=... level=warn module=repo model=fraud version=3 msg="load failed" */
enum qv_log_level { QV_LOG_DEBUG, QV_LOG_INFO, QV_LOG_WARN, QV_LOG_ERROR };

enum qv_log_format { QV_LOG_LOGFMT, QV_LOG_JSON };

void qv_log_set_level(enum qv_log_level lvl);
bool qv_log_enabled(enum qv_log_level lvl);
void qv_log_set_format(enum qv_log_format form);
enum qv_log_format qv_log_get_format(void);
void qv_log_(enum qv_log_level lvl, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same line written to fd (an access log) instead of stderr. */
void qv_log_to(int fd, enum qv_log_level lvl, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Formats one line, without its newline, into out (NUL-terminated, cut to
 * cap): "ts=TS level=L module=M " and fmt, where a %s inside a quoted value
 * (key="%s") is escaped (\" \\ \n \r \t \u00XX; invalid UTF-8 becomes
 * U+FFFD) and a %s right after "key=" is quoted when it is empty or holds a
 * space, '"', '=', '\\', a control or non-ASCII byte. With QV_LOG_JSON the
 * same fields as one JSON object (values that are JSON numbers stay
 * numbers). Returns the length written. */
size_t qv_log_format_line(char *out, size_t cap, enum qv_log_format form, const char *ts,
                          enum qv_log_level lvl, const char *module, const char *fmt, va_list ap);
#define qv_log(lvl, ...)                                                                           \
    do {                                                                                           \
        if (qv_log_enabled(lvl))                                                                   \
            qv_log_((lvl), QV_LOG_MODULE, __VA_ARGS__);                                            \
    } while (0)

/* ---- Time ---- */
uint64_t qv_now_ns(void);      /* CLOCK_MONOTONIC. */
uint64_t qv_wall_ms(void);     /* CLOCK_REALTIME, ms since the epoch. */
uint64_t qv_thread_cpu_ns(void);
void qv_iso8601(uint64_t wall_ms, char buf[32]);
/* A point in time as a client writes it (util/timeparse.c): milliseconds since the epoch
 * (digits only); ISO 8601: YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS[.fff]] followed by Z,
 * +HH:MM, -HH:MM or nothing (UTC), ' ' may stand for 'T'; or a duration back from now,
 * digits and one of s, m, h, d ("10m": ten minutes ago). *ms gets ms since the epoch.
 * QV_EINVAL for anything else (out-of-range fields, before 1970, overflow). Any thread. */
int qv_time_parse(const char *s, uint64_t *ms);

/* ---- Hashing ---- */
#define QV_SHA256_HEX 65
/* SHA-256 of the file at path as lowercase hex (OpenSSL libcrypto). */
int qv_sha256_file(const char *path, char hex[QV_SHA256_HEX], struct qv_diag *d);
uint64_t qv_hash64(const void *data, size_t len, uint64_t seed); /* FNV-1a + mix; not crypto. */
uint64_t qv_mix64(uint64_t x);                                   /* splitmix64 finalizer. */

/* SipHash with a 128-bit key (util/siphash.c). For tables indexed by names a client
 * chooses (request ids, ...), use qv_hash_keyed(): SipHash-1-3 under a random key drawn
 * once per process with getrandom(), so chains cannot be flooded on purpose. Hashes
 * change from one process to the next: never store them or use them across processes. */
struct qv_sipkey {
    uint64_t k0, k1; /* the key's bytes 0..7 and 8..15, little-endian */
};
uint64_t qv_siphash13(const struct qv_sipkey *key, const void *data, size_t len);
uint64_t qv_siphash24(const struct qv_sipkey *key, const void *data, size_t len);
int qv_sipkey_random(struct qv_sipkey *key);          /* getrandom(); QV_EIO if it fails. */
uint64_t qv_hash_keyed(const void *data, size_t len); /* Any thread. */

/* ---- Memory ----
 * qv_x* are for small, fixed-size control-plane allocations: they log and
 * abort on failure. Input-sized allocations use plain malloc and fail with
 * QV_ENOMEM / QV_E2BIG. */
void *qv_xmalloc(size_t n);
void *qv_xcalloc(size_t n, size_t size);
void *qv_xrealloc(void *p, size_t n);
char *qv_xstrdup(const char *s);

/* A growable byte buffer (curl's dynbuf). */
struct qv_buf {
    char *data;
    size_t len, cap;
    size_t max; /* 0: no limit */
};
#define QV_BUF_INIT(limit) {NULL, 0, 0, (limit)}
int qv_buf_append(struct qv_buf *b, const void *p, size_t n); /* QV_E2BIG past max, QV_ENOMEM */
int qv_buf_printf(struct qv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *qv_buf_take(struct qv_buf *b); /* NUL-terminated; caller frees; b is reset. */
void qv_buf_free(struct qv_buf *b);

/* Read a whole file; *out is NUL-terminated, caller frees. QV_E2BIG past max. */
int qv_file_read_all(const char *path, size_t max, char **out, size_t *len, struct qv_diag *d);
int qv_mkdir_p(const char *path);

/* ---- Threads ----
 * clang thread-safety annotations; expand to nothing elsewhere. */
#if defined(__clang__)
#define QV_CAPABILITY(x) __attribute__((capability(x)))
#define QV_REQUIRES(...) __attribute__((requires_capability(__VA_ARGS__)))
#define QV_ACQUIRE(...) __attribute__((acquire_capability(__VA_ARGS__)))
#define QV_RELEASE(...) __attribute__((release_capability(__VA_ARGS__)))
#else
#define QV_CAPABILITY(x)
#define QV_REQUIRES(...)
#define QV_ACQUIRE(...)
#define QV_RELEASE(...)
#endif

typedef struct QV_CAPABILITY("mutex") qv_mutex {
    pthread_mutex_t m;
} qv_mutex;
void qv_mutex_init(qv_mutex *mu);
void qv_mutex_fini(qv_mutex *mu);
void qv_mutex_lock(qv_mutex *mu) QV_ACQUIRE(mu);
void qv_mutex_unlock(qv_mutex *mu) QV_RELEASE(mu);

int qv_cpu_count(void);
uint64_t qv_mem_total_bytes(void);
uint64_t qv_rss_bytes(void);

#define QV_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif /* QV_UTIL_H */
