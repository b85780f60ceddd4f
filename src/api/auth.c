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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct qv_api_token {
    char name[64];
    char token[256];
    bool admin;
};

struct qv_api_tokens {
    int n;
    struct qv_api_token *t;
};

int qv__api_tokens_load(struct qv_api *a, const char *path, struct qv_diag *d)
{
    struct qv_api_tokens *ts;
    char line[512];
    int lineno = 0;
    FILE *f = fopen(path, "r");

    if (f == NULL)
        return qv_fail(d, QV_EINVAL, "--tokens: cannot open %s", path);
    ts = qv_xcalloc(1, sizeof(*ts));
    while (fgets(line, sizeof(line), f)) {
        char name[64], token[256], role[16];
        char *hash = strchr(line, '#');
        int n;

        lineno++;
        if (hash)
            *hash = '\0';
        n = sscanf(line, "%63s %255s %15s", name, token, role);
        if (n <= 0)
            continue;
        if (n != 3 || (strcmp(role, "admin") != 0 && strcmp(role, "read") != 0)) {
            fclose(f);
            free(ts->t);
            free(ts);
            return qv_fail(d, QV_EINVAL, "%s:%d: expected \"name token admin|read\"", path,
                           lineno);
        }
        ts->t = qv_xrealloc(ts->t, sizeof(*ts->t) * (size_t)(ts->n + 1));
        snprintf(ts->t[ts->n].name, sizeof(ts->t[ts->n].name), "%s", name);
        snprintf(ts->t[ts->n].token, sizeof(ts->t[ts->n].token), "%s", token);
        ts->t[ts->n].admin = strcmp(role, "admin") == 0;
        ts->n++;
    }
    fclose(f);
    a->tokens = ts;
    qv_log(QV_LOG_INFO, "tokens=%d file=%s msg=\"management endpoints need a token\"", ts->n,
           path);
    return QV_OK;
}

void qv__api_tokens_free(struct qv_api *a)
{
    if (a->tokens == NULL)
        return;
    free(a->tokens->t);
    free(a->tokens);
    a->tokens = NULL;
}

/* Compares in time that depends only on the lengths. */
static bool same_secret(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = la != lb;

    for (size_t i = 0; i < la && i < lb; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
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
    if (h == NULL || strncmp(h, "Bearer ", 7) != 0)
        return qv_fail(&r->diag, QV_EUNAUTH,
                       "Authorization: a bearer token is required for %s %s", r->method,
                       r->path);
    for (int i = 0; i < ts->n; i++) {
        if (!same_secret(h + 7, ts->t[i].token))
            continue;
        r->who = ts->t[i].name;
        /* Inference (protected on request) takes any token; management writes need admin. */
        if ((flags & ROUTE_MANAGE) && (write || (flags & ROUTE_ADMIN)) && !ts->t[i].admin)
            return qv_fail(&r->diag, QV_EFORBIDDEN,
                           "Authorization: token \"%s\" has role read; %s %s needs admin",
                           ts->t[i].name, r->method, r->path);
        return QV_OK;
    }
    return qv_fail(&r->diag, QV_EUNAUTH, "Authorization: unknown token");
}
