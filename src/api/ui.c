/* SPDX-License-Identifier: MIT
 *
 * The dashboard: GET /ui serves web/index.html and GET /ui/<file> the other
 * files of web/, all compiled into the binary (cmake/embed_ui.cmake). Every
 * answer carries a strong ETag (If-None-Match gets a 304), "no-cache" so the
 * browser revalidates instead of guessing, a Content-Security-Policy that
 * allows nothing but this origin (no inline script or style), and nosniff.
 * A client that accepts gzip gets the copy compressed at build time.
 * GET / redirects to /ui.
 */
#include "api_int.h"
#include "api/ui_assets.h"

#define QV_LOG_MODULE "ui"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define UI_CSP                                                                                     \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "                    \
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "                    \
    "form-action 'none'; frame-ancestors 'none'"

static const struct qv_ui_asset *find_asset(const char *name)
{
    for (int i = 0; i < qv__ui_n_assets; i++)
        if (strcmp(qv__ui_assets[i].name, name) == 0)
            return &qv__ui_assets[i];
    return NULL;
}

/* True when an Accept-Encoding value names gzip (or *) without q=0. Each
 * element is "coding[;q=N]"; the header is bounded by libmicrohttpd. */
static bool accepts_gzip(const char *h)
{
    while (h != NULL && *h) {
        const char *end = strchr(h, ','), *semi;
        size_t len = end ? (size_t)(end - h) : strlen(h), name_len;

        while (len > 0 && isspace((unsigned char)*h)) {
            h++;
            len--;
        }
        semi = memchr(h, ';', len);
        name_len = semi ? (size_t)(semi - h) : len;
        while (name_len > 0 && isspace((unsigned char)h[name_len - 1]))
            name_len--;
        if ((name_len == 4 && strncasecmp(h, "gzip", 4) == 0) || (name_len == 1 && h[0] == '*')) {
            const char *q = semi ? semi + 1 : NULL;
            while (q && q < h + len && isspace((unsigned char)*q))
                q++;
            if (q == NULL || q >= h + len || strncmp(q, "q=", 2) != 0)
                return true;
            return strtod(q + 2, NULL) > 0.0;
        }
        h = end ? end + 1 : NULL;
    }
    return false;
}

/* True when If-None-Match lists this ETag or is "*". */
static bool etag_matches(const char *h, const char *etag)
{
    size_t n = strlen(etag);

    if (h == NULL)
        return false;
    for (const char *p = h; *p; p++) {
        if (*p == '*')
            return true;
        if (strncmp(p, etag, n) == 0)
            return true;
        if (strncmp(p, "W/", 2) == 0 && strncmp(p + 2, etag, n) == 0)
            return true;
    }
    return false;
}

int qv__on_ui(struct qv_http_req *r)
{
    const char *name = r->n_params > 0 ? r->params[0] : "index.html";
    const struct qv_ui_asset *a = find_asset(name);
    const char *enc = r->header ? r->header(r, "Accept-Encoding") : NULL;
    bool gz;
    const char *etag;
    int err = QV_OK;

    if (a == NULL)
        return qv_fail(&r->diag, QV_ENOENT, "no such file in the dashboard: %s", name);
    gz = a->gz != NULL && accepts_gzip(enc);
    etag = gz ? a->etag_gz : a->etag;
    r->content_type = a->type;
    err |= qv__api_add_header(r, "ETag", etag);
    err |= qv__api_add_header(r, "Cache-Control", "no-cache");
    err |= qv__api_add_header(r, "Vary", "Accept-Encoding");
    err |= qv__api_add_header(r, "Content-Security-Policy", UI_CSP);
    err |= qv__api_add_header(r, "X-Content-Type-Options", "nosniff");
    err |= qv__api_add_header(r, "Referrer-Policy", "no-referrer");
    if (err == QV_OK && etag_matches(r->header ? r->header(r, "If-None-Match") : NULL, etag)) {
        r->status = 304;
        return QV_OK;
    }
    if (gz)
        err |= qv__api_add_header(r, "Content-Encoding", "gzip");
    if (err) /* more headers than QV_API_MAX_HEADERS / QV_API_HEADER_TEXT hold */
        return qv_fail(&r->diag, QV_ENOMEM, "the dashboard's response headers do not fit");
    r->status = 200;
    return gz ? qv_buf_append(&r->resp, a->gz, a->gz_len)
              : qv_buf_append(&r->resp, a->data, a->len);
}

int qv__on_ui_root(struct qv_http_req *r)
{
    r->status = 302;
    r->content_type = "text/plain; charset=utf-8";
    if (qv__api_add_header(r, "Location", "/ui") != QV_OK)
        return qv_fail(&r->diag, QV_ENOMEM, "the response headers do not fit");
    return qv_buf_append(&r->resp, "see /ui\n", 8);
}
