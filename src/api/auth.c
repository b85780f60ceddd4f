/* SPDX-License-Identifier: MIT
 *
 * Bearer tokens for the management endpoints. The tokens file has one token a
 * line, "name token role" with role admin or read; '#' starts a comment.
 * When no file is configured the management endpoints are open (the default
 * bind is 127.0.0.1). Inference and metadata endpoints are open unless
 * --tokens-protect-inference; health and /metrics are always open.
 */
#include "api_int.h"

#define QV_LOG_MODULE "auth"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TOKEN_NAME_MAX 63
#define TOKEN_MAX 255
#define TOKENS_LINE_MAX 4096

struct qv_api_token {
    char name[TOKEN_NAME_MAX + 1];
    unsigned char digest[SHA256_DIGEST_LENGTH]; /* of the token; the token is not kept */
    bool admin;
};

struct qv_api_tokens {
    int n;
    struct qv_api_token *t;
};

static void free_tokens(struct qv_api_tokens *ts)
{
    if (ts == NULL)
        return;
    OPENSSL_cleanse(ts->t, sizeof(*ts->t) * (size_t)ts->n);
    free(ts->t);
    free(ts);
}

/* One line "name token admin|read" (comment already cut); 0 fields is a blank line. */
static int parse_line(char *line, struct qv_api_tokens *ts, const char *path, int lineno,
                      struct qv_diag *d)
{
    char *save = NULL, *f[4];
    int n = 0;
    struct qv_api_token *t;

    for (char *w = strtok_r(line, " \t\r\n\v\f", &save); w;
         w = strtok_r(NULL, " \t\r\n\v\f", &save)) {
        if (n == 4)
            break;
        f[n++] = w;
    }
    if (n == 0)
        return QV_OK;
    if (n != 3 || (strcmp(f[2], "admin") != 0 && strcmp(f[2], "read") != 0))
        return qv_fail(d, QV_EINVAL, "%s:%d: expected \"name token admin|read\"", path, lineno);
    if (strlen(f[0]) > TOKEN_NAME_MAX)
        return qv_fail(d, QV_EINVAL, "%s:%d: token name longer than %d bytes", path, lineno,
                       TOKEN_NAME_MAX);
    if (strlen(f[1]) > TOKEN_MAX)
        return qv_fail(d, QV_EINVAL, "%s:%d: token longer than %d bytes", path, lineno,
                       TOKEN_MAX);
    t = realloc(ts->t, sizeof(*ts->t) * (size_t)(ts->n + 1));
    if (t == NULL)
        return qv_fail(d, QV_ENOMEM, "%s:%d: out of memory", path, lineno);
    ts->t = t;
    t = &ts->t[ts->n++];
    memset(t, 0, sizeof(*t));
    memcpy(t->name, f[0], strlen(f[0]) + 1);
    SHA256((const unsigned char *)f[1], strlen(f[1]), t->digest);
    t->admin = strcmp(f[2], "admin") == 0;
    OPENSSL_cleanse(f[1], strlen(f[1]));
    return QV_OK;
}

/* Reads whole lines (getline), so a long line is never split into two; a
 * line over TOKENS_LINE_MAX bytes is refused, naming it. */
int qv__api_tokens_load(struct qv_api *a, const char *path, struct qv_diag *d)
{
    struct qv_api_tokens *ts;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, err = QV_OK;
    FILE *f = fopen(path, "r");

    if (f == NULL)
        return qv_fail(d, QV_EINVAL, "--tokens: cannot open %s", path);
    ts = calloc(1, sizeof(*ts));
    if (ts == NULL) {
        fclose(f);
        return qv_fail(d, QV_ENOMEM, "--tokens: out of memory");
    }
    while (err == QV_OK && (len = getline(&line, &cap, f)) >= 0) {
        char *hash;

        lineno++;
        if ((size_t)len > TOKENS_LINE_MAX) {
            err = qv_fail(d, QV_EINVAL, "%s:%d: line longer than %d bytes", path, lineno,
                          TOKENS_LINE_MAX);
            break;
        }
        if (memchr(line, '\0', (size_t)len) != NULL) {
            err = qv_fail(d, QV_EINVAL, "%s:%d: NUL byte in the line", path, lineno);
            break;
        }
        hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        err = parse_line(line, ts, path, lineno, d);
    }
    if (line)
        OPENSSL_cleanse(line, cap);
    free(line);
    fclose(f);
    if (err) {
        free_tokens(ts);
        return err;
    }
    a->tokens = ts;
    qv_log(QV_LOG_INFO, "tokens=%d file=%s msg=\"management endpoints need a token\"", ts->n,
           path);
    return QV_OK;
}

void qv__api_tokens_free(struct qv_api *a)
{
    free_tokens(a->tokens);
    a->tokens = NULL;
}

/* The presented token is hashed once and compared with every configured
 * digest, always all of them, in constant time: the time taken does not
 * depend on the token's length, on how much of it matches, or on which entry
 * matched. */
static const struct qv_api_token *find_token(const struct qv_api_tokens *ts, const char *given)
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    const struct qv_api_token *found = NULL;

    SHA256((const unsigned char *)given, strlen(given), digest);
    for (int i = 0; i < ts->n; i++) {
        /* Branch-free select of the first match. */
        uintptr_t hit = (uintptr_t)(CRYPTO_memcmp(digest, ts->t[i].digest, sizeof(digest)) == 0);
        uintptr_t take = hit & (uintptr_t)(found == NULL);
        uintptr_t mask = (uintptr_t)0 - take;
        found = (const struct qv_api_token *)(((uintptr_t)&ts->t[i] & mask) |
                                              ((uintptr_t)found & ~mask));
    }
    OPENSSL_cleanse(digest, sizeof(digest));
    return found;
}

int qv__api_auth(struct qv_http_req *r, unsigned flags)
{
    const struct qv_api_tokens *ts = r->api ? r->api->tokens : NULL;
    const char *h;
    bool write = strcmp(r->method, "GET") != 0;

    if (flags & ROUTE_OPEN)
        return QV_OK;
    if (!(flags & ROUTE_MANAGE) && !(ts != NULL && r->api->cfg.protect_inference))
        return QV_OK;
    if (ts == NULL) {
        /* No tokens: the audit log can still tell the CLI from other clients. */
        h = r->header ? r->header(r, "User-Agent") : NULL;
        if (h != NULL && strncmp(h, "quiver-cli/", 11) == 0)
            r->who = "cli";
        return QV_OK;
    }
    h = r->header ? r->header(r, "Authorization") : NULL;
    /* The scheme name is case-insensitive (RFC 7235). */
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return qv_fail(&r->diag, QV_EUNAUTH,
                       "Authorization: a bearer token is required for %s %s", r->method,
                       r->path);
    h += 7;
    while (*h == ' ')
        h++;
    {
        const struct qv_api_token *t = find_token(ts, h);
        if (t != NULL) {
            r->who = t->name;
            /* Inference (protected on request) takes any token; management writes need admin. */
            if ((flags & ROUTE_MANAGE) && (write || (flags & ROUTE_ADMIN)) && !t->admin)
                return qv_fail(&r->diag, QV_EFORBIDDEN,
                               "Authorization: token \"%s\" has role read; %s %s needs admin",
                               t->name, r->method, r->path);
            return QV_OK;
        }
    }
    return qv_fail(&r->diag, QV_EUNAUTH, "Authorization: unknown token");
}
