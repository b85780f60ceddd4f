/* SPDX-License-Identifier: MIT
 *
 * The endpoint table, read top to bottom (nginx's command table), the path
 * matcher, and the one place where an error code becomes a JSON body.
 */
#include "api_int.h"
#include "../control/cluster.h"

#define QV_LOG_MODULE "api"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* clang-format off */
const struct qv_api_route qv__api_routes[] = {
    /* method  pattern                                             handler               flags */
    { "GET",  "/v2/health/live",                                   qv__on_live,          ROUTE_NO_LOG | ROUTE_OPEN },
    { "GET",  "/v2/health/ready",                                  qv__on_ready,         ROUTE_NO_LOG | ROUTE_OPEN },
    { "GET",  "/v2",                                               qv__on_server_meta,   0 },
    { "GET",  "/metrics",                                          qv__on_metrics,       ROUTE_NO_LOG | ROUTE_OPEN },
    { "POST", "/v2/models/{name}/infer",                           qv__on_infer,         0 },
    { "POST", "/v2/models/{name}/versions/{ver}/infer",            qv__on_infer,         0 },
    { "GET",  "/v2/models/stats",                                  qv__on_triton_stats,  0 },
    { "GET",  "/v2/models/{name}",                                 qv__on_model_meta,    0 },
    { "GET",  "/v2/models/{name}/versions/{ver}",                  qv__on_model_meta,    0 },
    { "GET",  "/v2/models/{name}/ready",                           qv__on_model_ready,   0 },
    { "GET",  "/v2/models/{name}/config",                          qv__on_model_config,  0 },
    { "GET",  "/v2/models/{name}/versions/{ver}/config",           qv__on_model_config,  0 },
    { "GET",  "/v2/models/{name}/versions/{ver}/ready",            qv__on_model_ready,   0 },
    { "GET",  "/v2/repository/index",                              qv__on_repo_index,    ROUTE_MANAGE },
    { "POST", "/v2/repository/index",                              qv__on_repo_index,    ROUTE_MANAGE },
    { "POST", "/v2/repository/models/{name}/load",                 qv__on_repo_load,     ROUTE_MANAGE | ROUTE_ADMIN },
    { "POST", "/v2/repository/models/{name}/unload",               qv__on_repo_unload,   ROUTE_MANAGE | ROUTE_ADMIN },
    { "POST", "/v2/repository/models/{name}/versions/{ver}/load",  qv__on_repo_load,     ROUTE_MANAGE | ROUTE_ADMIN },
    { "POST", "/v2/repository/models/{name}/versions/{ver}/unload",qv__on_repo_unload,   ROUTE_MANAGE | ROUTE_ADMIN },
    { "POST", "/v1/models/{name}:predict",                         qv__on_tfs_predict,   0 },
    { "POST", "/v1/models/{name}/versions/{ver}:predict",          qv__on_tfs_predict,   0 },
    { "POST", "/v1/models/{name}/labels/{label}:predict",          qv__on_tfs_label,     0 },
    { "POST", "/v1/models/{name}:classify",                        qv__on_tfs_predict,   0 },
    { "POST", "/v1/models/{name}/versions/{ver}:classify",         qv__on_tfs_predict,   0 },
    { "POST", "/v1/models/{name}/labels/{label}:classify",         qv__on_tfs_label,     0 },
    { "POST", "/v1/models/{name}:regress",                         qv__on_tfs_predict,   0 },
    { "POST", "/v1/models/{name}/versions/{ver}:regress",          qv__on_tfs_predict,   0 },
    { "POST", "/v1/models/{name}/labels/{label}:regress",          qv__on_tfs_label,     0 },
    { "GET",  "/v1/models/{name}",                                 qv__on_tfs_status,    0 },
    { "GET",  "/v1/models/{name}/metadata",                        qv__on_tfs_metadata,  0 },
    { "GET",  "/v1/models/{name}/versions/{ver}/metadata",         qv__on_tfs_metadata,  0 },
    { "GET",  "/v1/models/{name}/labels/{label}",                  qv__on_tfs_label,     0 },
    { "GET",  "/v1/models/{name}/labels/{label}/metadata",         qv__on_tfs_label,     0 },
    { "GET",  "/v1/models/{name}/versions/{ver}",                  qv__on_tfs_status,    0 },
    { "GET",  "/v2/models/{name}/route",                           qv__on_route_get,     ROUTE_MANAGE },
    { "PUT",  "/v2/models/{name}/route",                           qv__on_route_put,     ROUTE_MANAGE | ROUTE_ADMIN },
    { "DELETE", "/v2/models/{name}/route",                         qv__on_route_delete,  ROUTE_MANAGE | ROUTE_ADMIN },
    { "POST", "/v2/models/{name}/route/rollback",                  qv__on_route_rollback, ROUTE_MANAGE | ROUTE_ADMIN },
    { "PUT",  "/v2/models/{name}/labels/{label}",                  qv__on_label_put,     ROUTE_MANAGE | ROUTE_ADMIN },
    { "DELETE", "/v2/models/{name}/labels/{label}",                qv__on_label_delete,  ROUTE_MANAGE | ROUTE_ADMIN },
    { "POST", "/v2/models/{name}/feedback",                        qv__on_feedback,      ROUTE_MANAGE },
    { "GET",  "/v2/models/{name}/events",                          qv__on_events,        ROUTE_MANAGE },
    { "GET",  "/v2/events",                                        qv__on_events,        ROUTE_MANAGE },
    { "GET",  "/v2/models/{name}/stats",                           qv__on_triton_stats,  0 },
    { "GET",  "/v2/models/{name}/versions/{ver}/stats",            qv__on_triton_stats,  0 },
    { "GET",  "/v2/models/{name}/quiver-stats",                    qv__on_model_stats,   0 },
    { "GET",  "/v2/models/{name}/versions/{ver}/quiver-stats",     qv__on_model_stats,   0 },
    { "GET",  "/v2/models/{name}/history",                         qv__on_model_history, ROUTE_MANAGE },
    { "GET",  "/v2/models/{name}/alerts",                          qv__on_model_alerts,  ROUTE_MANAGE },
    { "GET",  "/v2/models/{name}/rollout",                         qv__on_rollout_get,   ROUTE_MANAGE },
    { "POST", "/v2/models/{name}/rollout",                         qv__on_rollout_post,  ROUTE_MANAGE | ROUTE_ADMIN },
    { "DELETE", "/v2/models/{name}/rollout",                       qv__on_rollout_delete, ROUTE_MANAGE | ROUTE_ADMIN },
    { "GET",  "/",                                                 qv__on_ui_root,       ROUTE_NO_LOG | ROUTE_OPEN },
    { "GET",  "/ui",                                               qv__on_ui,            ROUTE_NO_LOG | ROUTE_OPEN },
    { "GET",  "/ui/",                                              qv__on_ui,            ROUTE_NO_LOG | ROUTE_OPEN },
    { "GET",  "/ui/{file}",                                        qv__on_ui,            ROUTE_NO_LOG | ROUTE_OPEN },
};
/* clang-format on */
const int qv__api_n_routes = (int)QV_ARRAY_LEN(qv__api_routes);

/* Matches one pattern segment ("{name}" or "{name}:predict" or a literal)
 * against one path segment; a {param} captures up to the literal suffix. */
static bool match_segment(const char *pat, size_t plen, const char *seg, size_t slen,
                          struct qv_http_req *r)
{
    const char *close;
    size_t suffix, vlen;

    if (plen == 0 || pat[0] != '{')
        return plen == slen && memcmp(pat, seg, plen) == 0;
    close = memchr(pat, '}', plen);
    if (close == NULL)
        return false;
    suffix = plen - (size_t)(close + 1 - pat);
    if (slen <= suffix || memcmp(seg + slen - suffix, close + 1, suffix) != 0)
        return false;
    vlen = slen - suffix;
    if (vlen >= QV_MODEL_NAME_MAX || r->n_params >= QV_MAX_PATH_PARAMS)
        return false;
    memcpy(r->params[r->n_params], seg, vlen);
    r->params[r->n_params][vlen] = '\0';
    r->n_params++;
    return true;
}

static bool match_path(const char *pattern, const char *path, struct qv_http_req *r)
{
    r->n_params = 0;
    for (;;) {
        const char *pe = strchr(pattern + 1, '/'), *se = strchr(path + 1, '/');
        size_t plen, slen;

        if (*pattern != '/' || *path != '/')
            return *pattern == *path;
        plen = pe ? (size_t)(pe - pattern - 1) : strlen(pattern + 1);
        slen = se ? (size_t)(se - path - 1) : strlen(path + 1);
        if (!match_segment(pattern + 1, plen, path + 1, slen, r))
            return false;
        if (pe == NULL || se == NULL)
            return pe == NULL && se == NULL;
        pattern = pe;
        path = se;
    }
}

const struct qv_api_route *qv__api_match(struct qv_http_req *r, int *status)
{
    bool path_known = false;

    for (int i = 0; i < qv__api_n_routes; i++) {
        if (!match_path(qv__api_routes[i].pattern, r->path, r))
            continue;
        path_known = true;
        if (strcmp(qv__api_routes[i].method, r->method) == 0)
            return &qv__api_routes[i];
    }
    *status = path_known ? 405 : 404;
    return NULL;
}

/* Client bytes reach messages (a percent-decoded path, a truncated name), so
 * a byte that is not well-formed UTF-8 becomes U+FFFD: the body stays JSON. */
int qv__api_json_string(struct qv_buf *b, const char *s)
{
    return qv_json_put_string(b, s);
}

void qv__api_error(struct qv_http_req *r, int err)
{
    r->status = qv_err_http_status(err);
    r->resp.len = 0;
    r->n_resp_headers = 0; /* headers of a success (binary data, ...) do not apply */
    r->content_type = NULL;
    qv_buf_append(&r->resp, "{\"error\":", 9);
    qv__api_json_string(&r->resp, r->diag.msg[0] ? r->diag.msg : qv_strerror(err));
    qv_buf_append(&r->resp, "}", 1);
    if (err == QV_EOVERLOAD)
        r->retry_after = 1;
    else if (err == QV_EBUSY || err == QV_ESHUTDOWN || err == QV_ENOMEM || err == QV_ESTOREDOWN)
        r->retry_after = 5;
}

/* TF Serving's /v1/models/{m}/labels/{label}[...]: the label (quiver's route
 * labels) becomes the version, then the version's handler runs. */
int qv__on_tfs_label(struct qv_http_req *r)
{
    int64_t v = 0;
    size_t n = strlen(r->path);

    if (r->deps->router == NULL ||
        qv_router_get_label(r->deps->router, r->params[0], r->params[1], &v) != QV_OK)
        return qv_fail(&r->diag, QV_ENOENT, "labels/%s: model %s has no such label", r->params[1],
                       r->params[0]);
    snprintf(r->params[1], sizeof(r->params[1]), "%lld", (long long)v);
    if (strcmp(r->method, "POST") == 0)
        return qv__on_tfs_predict(r);
    if (n >= 9 && strcmp(r->path + n - 9, "/metadata") == 0)
        return qv__on_tfs_metadata(r);
    return qv__on_tfs_status(r);
}

int64_t qv__api_param_version(struct qv_http_req *r, int idx)
{
    return idx < r->n_params ? qv_repo_parse_version(r->params[idx]) : -1;
}

int qv__api_add_header(struct qv_http_req *r, const char *name, const char *value)
{
    size_t n = strlen(value) + 1;
    char *copy;

    if (r->n_resp_headers >= QV_API_MAX_HEADERS ||
        n > sizeof(r->header_text) - r->header_text_used)
        return QV_ENOMEM;
    copy = r->header_text + r->header_text_used;
    memcpy(copy, value, n);
    r->header_text_used += n;
    r->resp_headers[r->n_resp_headers].name = name;
    r->resp_headers[r->n_resp_headers].value = copy;
    r->n_resp_headers++;
    return QV_OK;
}

const char *qv__api_resp_header(const struct qv_http_req *r, const char *name)
{
    for (int i = 0; i < r->n_resp_headers; i++)
        if (strcasecmp(r->resp_headers[i].name, name) == 0)
            return r->resp_headers[i].value;
    return NULL;
}

/* The methods the path allows, for a 405's Allow header. */
static void allow_header(struct qv_http_req *r)
{
    char allow[64] = "";
    size_t n = 0;

    for (int i = 0; i < qv__api_n_routes; i++) {
        const char *m = qv__api_routes[i].method;
        if (!match_path(qv__api_routes[i].pattern, r->path, r) || strstr(allow, m) != NULL)
            continue;
        n += (size_t)snprintf(allow + n, sizeof(allow) - n, "%s%s", n ? ", " : "", m);
        if (n >= sizeof(allow))
            break;
    }
    qv__api_add_header(r, "Allow", allow);
}

int qv__api_dispatch(struct qv_http_req *r)
{
    const struct qv_api_route *rt;
    int status = 404, err;

    rt = qv__api_match(r, &status);
    if (rt == NULL) {
        if (status == 405)
            qv_diag_set(&r->diag, "method %s is not allowed on %s", r->method, r->path);
        else
            qv_diag_set(&r->diag, "no such endpoint: %s %s", r->method, r->path);
        qv__api_error(r, QV_ENOENT);
        r->status = status;
        if (status == 405)
            allow_header(r);
        return QV_OK;
    }
    r->who = "anonymous";
    err = qv__api_auth(r, rt->flags);
    /* A compressed body is decoded once the caller may send one. */
    if (err == QV_OK && r->header != NULL && r->header(r, "Content-Encoding") != NULL &&
        qv__api_decode_body(r, &status) != QV_OK) {
        qv__api_error(r, QV_EINVAL);
        r->status = status;
        return QV_OK;
    }
    if (err == QV_OK)
        err = rt->handler(r);
    if (err == QV_API_PENDING)
        return QV_API_PENDING;
    if (err != QV_OK) {
        qv__api_error(r, err);
        if (err != QV_EOVERLOAD)
            qv_log(r->status >= 500 ? QV_LOG_WARN : QV_LOG_DEBUG,
                   "method=%s path=%s status=%d err=%s msg=\"%s\"", r->method, r->path, r->status,
                   qv_err_name(err), r->diag.msg);
    } else if (r->status == 0) {
        r->status = 200;
    }
    return QV_OK;
}

void qv__api_audit(struct qv_http_req *r, const char *model, const char *what,
                   const char *old_value, const char *new_value)
{
    struct qv_store_event ev;
    struct qv_diag d = {{0}};
    const char *node = qv_cluster_node_name();
    char who_node[192];

    if (r->deps->store == NULL)
        return;
    memset(&ev, 0, sizeof(ev));
    ev.model = (char *)model;
    ev.who = (char *)(r->who ? r->who : "anonymous");
    /* In a cluster, an event names the node that took the call: WHO@NODE. */
    if (node[0] != '\0') {
        snprintf(who_node, sizeof(who_node), "%s@%s", ev.who, node);
        ev.who = who_node;
    }
    ev.what = (char *)what;
    ev.old_value = (char *)old_value;
    ev.new_value = (char *)new_value;
    if (qv_store_event_add(r->deps->store, &ev, NULL, &d) != QV_OK)
        qv_log(QV_LOG_WARN, "model=%s what=%s msg=\"audit event not stored\" reason=\"%s\"",
               model, what, d.msg);
}
