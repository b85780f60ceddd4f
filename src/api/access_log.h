/* SPDX-License-Identifier: MIT
 *
 * api/access_log.h -- one line per HTTP request (off by default), and a warn
 * line for each refusal an operator must hear about (401, 403, 413, 429 and
 * server errors), whether or not the access log is on. Warn lines are
 * limited to 10 a second per kind; the next one says how many were left out
 * (suppressed=N).
 *
 * The access log is process-wide: opened once by `quiver serve` before the
 * HTTP server starts, closed after it stops. Lines use the log's format
 * (logfmt or JSON, see qv_log_set_format):
 *
 *   ts=... level=info module=access remote=127.0.0.1 method=POST
 *   path=/v2/models/fraud/infer status=200 model=fraud version=2 bytes=131
 *   latency_us=412 request_id=7f3a...
 */
#ifndef QV_ACCESS_LOG_H
#define QV_ACCESS_LOG_H

#include "../util/util.h"

struct sockaddr;
struct qv_http_req;

/* "logfmt" or "json" for --log-format; 0, or -1 with a message on stderr. */
int qv_access_log_parse_format(const char *s);

/* path: a file (appended to, created 0640) or "-" for stderr; NULL: no
 * access log. sample: log one request in `sample` (1: every one); error
 * answers (status >= 400) are always logged. Main thread, before the server
 * starts. */
int qv_access_log_open(const char *path, int sample, struct qv_diag *d);
void qv_access_log_close(void);

/* HTTP thread, once per request, when its response is queued. t0_ns is
 * qv_now_ns() when the request arrived; bytes the response body's length;
 * remote the peer's address (NULL if unknown); was_pending true when the
 * response came from a worker (its errors were not logged yet). */
void qv_access_log_request(struct qv_http_req *r, uint64_t t0_ns, size_t bytes,
                           const struct sockaddr *remote, bool was_pending);

#endif /* QV_ACCESS_LOG_H */
