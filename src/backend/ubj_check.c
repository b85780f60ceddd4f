/* SPDX-License-Identifier: MIT
 *
 * Bounds-checked walk of a UBJSON document, a safe whole-file reader for
 * artifacts, and the cleaning of load-failure reasons. No library sees an
 * artifact's bytes before these checks pass.
 */
#include "ubj_check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct ubj {
    const unsigned char *p;
    size_t len, pos;
    struct qv_diag *d;
};

static int ubj_fail(struct ubj *u, const char *what)
{
    return qv_fail(u->d, QV_EINVAL, "malformed UBJSON at byte %zu: %s", u->pos, what);
}

static size_t ubj_left(const struct ubj *u)
{
    return u->len - u->pos;
}

/* Payload size of a fixed-size scalar type; 0 for the empty ones (Z N T F),
 * -1 for anything that is not a fixed-size scalar. */
static int fixed_size(unsigned char t)
{
    switch (t) {
    case 'Z': case 'N': case 'T': case 'F':
        return 0;
    case 'i': case 'U': case 'C':
        return 1;
    case 'I':
        return 2;
    case 'l': case 'd':
        return 4;
    case 'L': case 'D':
        return 8;
    default:
        return -1;
    }
}

/* An integer of type t (big-endian), as a length or count: >= 0. */
static int read_int(struct ubj *u, unsigned char t, uint64_t *out)
{
    int n = fixed_size(t);
    uint64_t v = 0;

    if (t != 'i' && t != 'U' && t != 'I' && t != 'l' && t != 'L')
        return ubj_fail(u, "a length must be an integer");
    if (ubj_left(u) < (size_t)n)
        return ubj_fail(u, "truncated integer");
    for (int i = 0; i < n; i++)
        v = (v << 8) | u->p[u->pos + (size_t)i];
    u->pos += (size_t)n;
    if (t != 'U' && (v >> (8 * n - 1)) & 1)
        return ubj_fail(u, "negative length");
    *out = v;
    return QV_OK;
}

static int read_length(struct ubj *u, uint64_t *out)
{
    if (ubj_left(u) < 1)
        return ubj_fail(u, "truncated length");
    return read_int(u, u->p[u->pos++], out);
}

/* A length followed by that many bytes (strings, keys, high-precision numbers). */
static int skip_string(struct ubj *u)
{
    uint64_t n;
    int err = read_length(u, &n);

    if (err)
        return err;
    if (n > ubj_left(u))
        return ubj_fail(u, "string longer than the file");
    u->pos += (size_t)n;
    return QV_OK;
}

static int walk_value(struct ubj *u, unsigned char t, int depth);

/* After '[' or '{': [$type] [#count], then the elements. */
static int walk_container(struct ubj *u, bool object, int depth)
{
    unsigned char type = 0, close = object ? '}' : ']';
    bool counted = false;
    uint64_t count = 0;
    int err;

    if (depth > QV_UBJ_MAX_DEPTH)
        return ubj_fail(u, "nesting deeper than the limit");
    if (ubj_left(u) >= 1 && u->p[u->pos] == '$') {
        u->pos++;
        if (ubj_left(u) < 1)
            return ubj_fail(u, "truncated container type");
        type = u->p[u->pos++];
        if (fixed_size(type) < 0 && type != 'S' && type != 'H')
            return ubj_fail(u, "unsupported container element type");
        if (ubj_left(u) < 1 || u->p[u->pos] != '#')
            return ubj_fail(u, "a typed container needs a count");
    }
    if (ubj_left(u) >= 1 && u->p[u->pos] == '#') {
        u->pos++;
        err = read_length(u, &count);
        if (err)
            return err;
        counted = true;
        if (!object && type != 0 && fixed_size(type) >= 0) {
            /* A typed array of scalars: count * size bytes, no markers. */
            uint64_t size = (uint64_t)fixed_size(type);
            if (size > 0 && count > ubj_left(u) / size)
                return ubj_fail(u, "count larger than the file");
            u->pos += (size_t)(count * size);
            return QV_OK;
        }
        /* Every other element (or key) takes at least one byte. */
        if (count > ubj_left(u))
            return ubj_fail(u, "count larger than the file");
    }
    for (uint64_t i = 0; !counted || i < count; i++) {
        if (!counted) {
            if (ubj_left(u) < 1)
                return ubj_fail(u, "unterminated container");
            if (u->p[u->pos] == close) {
                u->pos++;
                return QV_OK;
            }
        }
        if (object) {
            err = skip_string(u);
            if (err)
                return err;
        }
        if (type != 0) {
            err = walk_value(u, type, depth + 1);
        } else {
            if (ubj_left(u) < 1)
                return ubj_fail(u, "truncated value");
            err = walk_value(u, u->p[u->pos++], depth + 1);
        }
        if (err)
            return err;
    }
    return QV_OK;
}

static int walk_value(struct ubj *u, unsigned char t, int depth)
{
    int n = fixed_size(t);

    if (n >= 0) {
        if (ubj_left(u) < (size_t)n)
            return ubj_fail(u, "truncated number");
        u->pos += (size_t)n;
        return QV_OK;
    }
    switch (t) {
    case 'S': case 'H':
        return skip_string(u);
    case '[':
        return walk_container(u, false, depth);
    case '{':
        return walk_container(u, true, depth);
    default:
        u->pos--;
        return ubj_fail(u, "unknown marker");
    }
}

int qv_ubj_check(const unsigned char *buf, size_t len, struct qv_diag *d)
{
    struct ubj u = {.p = buf, .len = len, .pos = 0, .d = d};
    int err;

    if (len < 1)
        return qv_fail(d, QV_EINVAL, "malformed UBJSON: empty file");
    u.pos = 1;
    err = walk_value(&u, buf[0], 1);
    if (err)
        return err;
    if (u.pos != len)
        return ubj_fail(&u, "bytes after the document");
    return QV_OK;
}

int qv_artifact_read(const char *path, size_t max, unsigned char **out, size_t *len,
                     struct qv_diag *d)
{
    struct stat st;
    unsigned char *buf = NULL;
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);

    *out = NULL;
    *len = 0;
    if (fd < 0)
        return qv_fail(d, errno == ENOENT ? QV_ENOENT : QV_EIO, "cannot open the artifact: %s",
                       strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return qv_fail(d, QV_EINVAL, "the artifact is not a regular file");
    }
    if ((uint64_t)st.st_size > (uint64_t)max) {
        close(fd);
        return qv_fail(d, QV_E2BIG, "the artifact is larger than %zu bytes", max);
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        close(fd);
        return qv_fail(d, QV_ENOMEM, "cannot hold the artifact in memory");
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : 0;
            free(buf);
            close(fd);
            return qv_fail(d, QV_EIO, "cannot read the artifact: %s",
                           e ? strerror(e) : "file shrank while reading");
        }
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return QV_OK;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        return (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (s[0] >= 0xe0 && s[0] <= 0xef) {
        if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if (s[0] == 0xe0 && s[1] < 0xa0)
            return 0; /* overlong */
        if (s[0] == 0xed && s[1] >= 0xa0)
            return 0; /* surrogate */
        return 3;
    }
    if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if ((s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

void qv_reason_clean(char *s)
{
    unsigned char *p = (unsigned char *)s;

    while (*p != '\0') {
        size_t n;

        if (*p == '\n' || *p == '\r') {
            *p = '\0';
            break;
        }
        /* The NUL terminator fails the continuation test, so utf8_len never
         * reads past the end. */
        n = utf8_len(p);
        if (n == 0 || (n == 1 && (*p < 0x20 || *p == 0x7f))) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
    /* No trailing blanks left by the cut. */
    while (p > (unsigned char *)s && (p[-1] == ' ' || p[-1] == ':'))
        *--p = '\0';
}
