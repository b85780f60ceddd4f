/* SPDX-License-Identifier: MIT
 *
 * HTTP content codings with zlib: request bodies sent with
 * `Content-Encoding: gzip` or `deflate` are inflated before any handler
 * reads them, never past the server's body limit (a small compressed body
 * that would inflate beyond it is refused with 413 as soon as it gets there,
 * so a zip bomb costs at most the limit); responses over a threshold are
 * gzip-compressed for clients that send `Accept-Encoding: gzip`.
 */
#include "api_int.h"

#define QV_LOG_MODULE "api"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* Responses smaller than this are sent as they are: compressing them saves
 * fewer bytes than the header costs. */
#define QV_COMPRESS_MIN 1024

/* True when the comma-separated list 'list' names 'coding' (q=0 excluded). */
static bool coding_listed(const char *list, const char *coding)
{
    size_t n = strlen(coding);
    const char *p = list;

    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (strncasecmp(p, coding, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ';' ||
                                               p[n] == ' ')) {
            const char *q = strchr(p, ',');
            const char *semi = strchr(p, ';');
            if (semi && (!q || semi < q)) {
                const char *qv = strstr(semi, "q=");
                if (qv && (!q || qv < q) && strtod(qv + 2, NULL) <= 0.0)
                    return false;
            }
            return true;
        }
        p = strchr(p, ',');
    }
    return false;
}

int qv__api_decode_body(struct qv_http_req *r, int *status)
{
    const char *enc = r->header(r, "Content-Encoding");
    size_t max = r->api ? r->api->cfg.max_body_bytes : QV_API_DEFAULT_MAX_BODY;
    z_stream z;
    int window, rc, err = QV_OK;

    if (strcasecmp(enc, "identity") == 0)
        return QV_OK;
    if (strcasecmp(enc, "gzip") == 0 || strcasecmp(enc, "x-gzip") == 0) {
        window = 16 + MAX_WBITS;
    } else if (strcasecmp(enc, "deflate") == 0) {
        window = 32 + MAX_WBITS; /* zlib-wrapped (RFC 1950), detected like gzip */
    } else {
        *status = 415;
        return qv_fail(&r->diag, QV_EINVAL,
                       "Content-Encoding: \"%s\" is not supported (gzip, deflate or identity)",
                       enc);
    }
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, window) != Z_OK) {
        *status = 503;
        return qv_fail(&r->diag, QV_ENOMEM, "Content-Encoding: cannot start zlib");
    }
    r->body_plain.len = 0;
    r->body_plain.max = 0;
    z.next_in = (Bytef *)(uintptr_t)r->body;
    z.avail_in = (uInt)r->body_len;
    if ((size_t)z.avail_in != r->body_len) {
        inflateEnd(&z);
        *status = 413;
        return qv_fail(&r->diag, QV_E2BIG, "body: too large to decompress");
    }
    do {
        size_t room;
        if (r->body_plain.len >= max) {
            *status = 413;
            err = qv_fail(&r->diag, QV_E2BIG,
                          "body: decompressed (Content-Encoding: %s) it is over the limit of "
                          "%zu bytes", enc, max);
            break;
        }
        room = max - r->body_plain.len;
        if (room > (64u << 10))
            room = 64u << 10;
        if (r->body_plain.cap - r->body_plain.len < room + 1) {
            size_t cap = r->body_plain.cap ? r->body_plain.cap * 2 : (64u << 10);
            char *nb;
            while (cap - r->body_plain.len < room + 1)
                cap *= 2;
            nb = realloc(r->body_plain.data, cap);
            if (nb == NULL) {
                *status = 503;
                err = qv_fail(&r->diag, QV_ENOMEM, "body: cannot allocate the decompressed body");
                break;
            }
            r->body_plain.data = nb;
            r->body_plain.cap = cap;
        }
        z.next_out = (Bytef *)r->body_plain.data + r->body_plain.len;
        z.avail_out = (uInt)room;
        rc = inflate(&z, Z_NO_FLUSH);
        r->body_plain.len += room - z.avail_out;
        if (rc == Z_STREAM_END) {
            if (z.avail_in != 0) {
                *status = 400;
                err = qv_fail(&r->diag, QV_EINVAL,
                              "body: %u bytes after the end of the %s stream", z.avail_in, enc);
            }
            break;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            *status = 400;
            err = qv_fail(&r->diag, QV_EINVAL, "body: corrupt %s data (Content-Encoding): %s",
                          enc, z.msg ? z.msg : "inflate failed");
            break;
        }
        if (rc == Z_BUF_ERROR && z.avail_in == 0) {
            *status = 400;
            err = qv_fail(&r->diag, QV_EINVAL, "body: the %s stream is truncated", enc);
            break;
        }
    } while (1);
    inflateEnd(&z);
    if (err)
        return err;
    r->body_plain.data[r->body_plain.len] = '\0';
    r->body = r->body_plain.data;
    r->body_len = r->body_plain.len;
    return QV_OK;
}

void qv__api_encode_response(struct qv_http_req *r)
{
    const char *acc;
    struct qv_buf out = QV_BUF_INIT(0);
    z_stream z;
    uLong bound;

    if (r->header == NULL || r->resp.len < QV_COMPRESS_MIN)
        return;
    /* A handler that encoded its own answer (the dashboard's precompressed
     * files) keeps it as it is. */
    if (qv__api_resp_header(r, "Content-Encoding") != NULL)
        return;
    acc = r->header(r, "Accept-Encoding");
    if (acc == NULL || !coding_listed(acc, "gzip"))
        return;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return;
    bound = deflateBound(&z, (uLong)r->resp.len);
    out.data = malloc(bound + 1);
    if (out.data == NULL || (size_t)(uInt)r->resp.len != r->resp.len) {
        free(out.data);
        deflateEnd(&z);
        return;
    }
    z.next_in = (Bytef *)r->resp.data;
    z.avail_in = (uInt)r->resp.len;
    z.next_out = (Bytef *)out.data;
    z.avail_out = (uInt)bound;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
        free(out.data);
        deflateEnd(&z);
        return; /* sent uncompressed */
    }
    out.len = bound - z.avail_out;
    out.cap = bound + 1;
    deflateEnd(&z);
    /* The coding is announced before the body is swapped: a body that could
     * not say it is gzip is sent as it was. */
    if (qv__api_add_header(r, "Content-Encoding", "gzip") != QV_OK) {
        free(out.data);
        return;
    }
    qv__api_add_header(r, "Vary", "Accept-Encoding"); /* advisory: a cache may do without */
    qv_buf_free(&r->resp);
    r->resp = out;
}
