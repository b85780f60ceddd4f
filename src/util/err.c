/* SPDX-License-Identifier: MIT
 *
 * Error codes and diagnostics. The messages and HTTP statuses all come from
 * QV_ERR_MAP so that no caller invents a mapping of its own. */
#include "util.h"

#include <stdio.h>

const char *qv_strerror(int err)
{
    switch (err) {
#define X(name, code, http, msg)                                                                   \
    case code:                                                                                     \
        return msg;
        QV_ERR_MAP(X)
#undef X
    }
    return "unknown error";
}

const char *qv_err_name(int err)
{
    switch (err) {
#define X(name, code, http, msg)                                                                   \
    case code:                                                                                     \
        return #name;
        QV_ERR_MAP(X)
#undef X
    }
    return "EUNKNOWN";
}

int qv_err_http_status(int err)
{
    switch (err) {
#define X(name, code, http, msg)                                                                   \
    case code:                                                                                     \
        return http;
        QV_ERR_MAP(X)
#undef X
    }
    return 500;
}

void qv_diag_set(struct qv_diag *d, const char *fmt, ...)
{
    va_list ap;

    if (d == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
    va_end(ap);
}

int qv_fail(struct qv_diag *d, int err, const char *fmt, ...)
{
    va_list ap;

    if (d == NULL || d->msg[0] != '\0')
        return err;
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
    va_end(ap);
    return err;
}
