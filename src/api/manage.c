/* SPDX-License-Identifier: MIT
 *
 * Routing management: the route document of a model (GET/PUT/DELETE),
 * labels, ground-truth feedback for the bandit and online accuracy, and the
 * audit log. Every change goes through the router's atomic swap, is persisted
 * in the store and leaves an audit event; a rejected change leaves the route
 * in force untouched.
 */
#include "api_int.h"

#define QV_LOG_MODULE "api"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int require_model(struct qv_http_req *r)
{
    struct qv_model_info mi;

    if (qv_engine_model_info(r->deps->engine, r->params[0], &mi) != QV_OK)
        return qv_fail(&r->diag, QV_ENOENT, "unknown model \"%s\"", r->params[0]);
    qv_model_info_free(&mi);
    return QV_OK;
}

/* Persists the router's current route of the model (after a change). */
static void persist_route(struct qv_http_req *r, const char *model, const char *doc)
{
    struct qv_diag d = {{0}};

    if (r->deps->store == NULL)
        return;
    if (doc == NULL)
        doc = "{\"policy\":\"default\"}"; /* cleared: back to the default */
    if (qv_store_route_put(r->deps->store, model, doc, &d) != QV_OK)
        qv_log(QV_LOG_WARN, "model=%s msg=\"route not persisted\" reason=\"%s\"", model, d.msg);
}

static char *current_route(struct qv_http_req *r, const char *model)
{
    char *doc = NULL;

    if (qv_router_get_route(r->deps->router, model, &doc) != QV_OK)
        return NULL;
    return doc;
}

/* GET /v2/models/{m}/route */
int qv__on_route_get(struct qv_http_req *r)
{
    char *doc;
    int err = require_model(r);

    if (err)
        return err;
    doc = current_route(r, r->params[0]);
    if (doc == NULL)
        return qv_buf_append(&r->resp, "{\"policy\":\"default\"}", 20);
    err = qv_buf_append(&r->resp, doc, strlen(doc));
    free(doc);
    return err;
}

/* PUT /v2/models/{m}/route: the whole document, validated, applied atomically. */
int qv__on_route_put(struct qv_http_req *r)
{
    const struct qv_resolver *res = qv_router_resolver(r->deps->router);
    char *old, *now;
    int err = require_model(r);

    if (err)
        return err;
    old = current_route(r, r->params[0]);
    err = qv_router_set_route(r->deps->router, r->params[0], r->body, res, &r->diag);
    if (err) {
        free(old);
        return err;
    }
    now = current_route(r, r->params[0]);
    persist_route(r, r->params[0], now);
    qv__api_audit(r, r->params[0], "route.put", old, now);
    err = now ? qv_buf_append(&r->resp, now, strlen(now)) : QV_OK;
    free(old);
    free(now);
    return err;
}

/* DELETE /v2/models/{m}/route: back to the default (highest READY). */
int qv__on_route_delete(struct qv_http_req *r)
{
    char *old;
    int err = require_model(r);

    if (err)
        return err;
    old = current_route(r, r->params[0]);
    err = qv_router_clear(r->deps->router, r->params[0]);
    if (err) {
        free(old);
        return qv_fail(&r->diag, QV_ENOENT, "model %s has no route", r->params[0]);
    }
    persist_route(r, r->params[0], NULL);
    qv__api_audit(r, r->params[0], "route.delete", old, NULL);
    free(old);
    return qv_buf_append(&r->resp, "{\"policy\":\"default\"}", 20);
}

/* PUT /v2/models/{m}/labels/{label} {"version": N} */
int qv__on_label_put(struct qv_http_req *r)
{
    const struct qv_resolver *res = qv_router_resolver(r->deps->router);
    json_t *root, *v;
    json_error_t jerr;
    int64_t version, before = 0;
    char *now, oldv[32] = "", newv[96];
    int err = require_model(r);

    if (err)
        return err;
    root = json_loadb(r->body, r->body_len, 0, &jerr);
    if (root == NULL)
        return qv_fail(&r->diag, QV_EINVAL, "body: invalid JSON at line %d: %s", jerr.line,
                       jerr.text);
    v = json_object_get(root, "version");
    if (json_is_string(v))
        version = qv_repo_parse_version(json_string_value(v));
    else
        version = json_is_integer(v) ? json_integer_value(v) : -1;
    json_decref(root);
    if (version <= 0)
        return qv_fail(&r->diag, QV_EINVAL, "version: expected a version number");
    if (qv_router_get_label(r->deps->router, r->params[0], r->params[1], &before) == QV_OK)
        snprintf(oldv, sizeof(oldv), "%s=%lld", r->params[1], (long long)before);
    err = qv_router_set_label(r->deps->router, r->params[0], r->params[1], version, res,
                              &r->diag);
    if (err)
        return err;
    now = current_route(r, r->params[0]);
    persist_route(r, r->params[0], now);
    if (r->deps->store) {
        struct qv_diag d = {{0}};
        qv_store_label_set(r->deps->store, r->params[0], r->params[1], version, &d);
    }
    snprintf(newv, sizeof(newv), "%s=%lld", r->params[1], (long long)version);
    qv__api_audit(r, r->params[0], "label.set", oldv[0] ? oldv : NULL, newv);
    free(now);
    return qv_buf_printf(&r->resp, "{\"label\":\"%s\",\"version\":%lld}", r->params[1],
                         (long long)version);
}

/* DELETE /v2/models/{m}/labels/{label} */
int qv__on_label_delete(struct qv_http_req *r)
{
    int64_t before = 0;
    char oldv[96], *now;
    int err = require_model(r);

    if (err)
        return err;
    if (qv_router_get_label(r->deps->router, r->params[0], r->params[1], &before) != QV_OK)
        return qv_fail(&r->diag, QV_ENOENT, "label \"%s\": model %s has no such label",
                       r->params[1], r->params[0]);
    err = qv_router_delete_label(r->deps->router, r->params[0], r->params[1], &r->diag);
    if (err)
        return err;
    now = current_route(r, r->params[0]);
    persist_route(r, r->params[0], now);
    if (r->deps->store) {
        struct qv_diag d = {{0}};
        qv_store_label_delete(r->deps->store, r->params[0], r->params[1], &d);
    }
    snprintf(oldv, sizeof(oldv), "%s=%lld", r->params[1], (long long)before);
    qv__api_audit(r, r->params[0], "label.delete", oldv, NULL);
    free(now);
    return qv_buf_append(&r->resp, "{\"deleted\":true}", 16);
}

/* POST /v2/models/{m}/feedback {"id": "...", "label": L} or {"id": ..., "reward": x}.
 * A label is compared with the class the serving version predicted for that
 * request (reward 1 when equal, else 0). */
int qv__on_feedback(struct qv_http_req *r)
{
    json_t *root, *id, *label, *reward;
    json_error_t jerr;
    char model[QV_ROUTER_MODEL_MAX];
    int64_t version = 0;
    double rw;
    int predicted = -1, err;

    root = json_loadb(r->body, r->body_len, 0, &jerr);
    if (root == NULL)
        return qv_fail(&r->diag, QV_EINVAL, "body: invalid JSON at line %d: %s", jerr.line,
                       jerr.text);
    id = json_object_get(root, "id");
    label = json_object_get(root, "label");
    reward = json_object_get(root, "reward");
    if (!json_is_string(id)) {
        err = qv_fail(&r->diag, QV_EINVAL, "id: expected the request id (a string)");
        goto out;
    }
    if ((label == NULL) == (reward == NULL)) {
        err = qv_fail(&r->diag, QV_EINVAL, "body: expected exactly one of \"label\" or \"reward\"");
        goto out;
    }
    if (reward && (!json_is_number(reward) || json_number_value(reward) < 0 ||
                   json_number_value(reward) > 1)) {
        err = qv_fail(&r->diag, QV_EINVAL, "reward: expected a number from 0 to 1");
        goto out;
    }
    if (label && !json_is_integer(label) && !json_is_boolean(label)) {
        err = qv_fail(&r->diag, QV_EINVAL, "label: expected an integer class");
        goto out;
    }
    if (qv_router_lookup_outcome(r->deps->router, json_string_value(id), model, &version,
                                 &predicted) != QV_OK ||
        strcmp(model, r->params[0]) != 0) {
        err = qv_fail(&r->diag, QV_ENOENT, "id: no request \"%s\" of model %s is remembered "
                      "(unknown or too old)", json_string_value(id), r->params[0]);
        goto out;
    }
    if (label) {
        long long want = json_is_boolean(label) ? json_is_true(label) : json_integer_value(label);
        if (predicted < 0) {
            err = qv_fail(&r->diag, QV_ENOENT, "id: request \"%s\" has no answer to score "
                          "(it failed, or is still running)", json_string_value(id));
            goto out;
        }
        rw = predicted == want ? 1.0 : 0.0;
    } else {
        rw = json_number_value(reward);
    }
    /* One feedback per request: the first is kept, so that one id cannot steer the
     * bandit or the accuracy again and again. */
    if (qv_router_feedback_claim(r->deps->router, json_string_value(id), r->params[0]) ==
        QV_ECONFLICT) {
        err = qv_fail(&r->diag, QV_ECONFLICT,
                      "id: feedback for request \"%s\" was already recorded (the first is kept)",
                      json_string_value(id));
        goto out;
    }
    qv_router_feedback(r->deps->router, r->params[0], version, rw);
    qv_monitor_feedback(r->deps->monitor, r->params[0], version, rw);
    if (r->deps->store) {
        char *state = NULL, key[QV_ROUTER_MODEL_MAX + 24], value[96];
        struct qv_diag d = {{0}};
        uint64_t count = 0;
        double sum = 0;
        if (qv_router_bandit_state_get(r->deps->router, r->params[0], &state) == QV_OK) {
            qv_store_kv_put(r->deps->store, "bandit", r->params[0], state, &d);
            free(state);
        }
        /* Online accuracy survives a restart (control.c restores it). */
        if (qv_monitor_feedback_get(r->deps->monitor, r->params[0], version, &count, &sum) ==
            QV_OK) {
            snprintf(key, sizeof(key), "%s/%lld", r->params[0], (long long)version);
            snprintf(value, sizeof(value), "{\"count\": %llu, \"reward_sum\": %.17g}",
                     (unsigned long long)count, sum);
            qv_store_kv_put(r->deps->store, "feedback", key, value, &d);
        }
    }
    err = qv_buf_printf(&r->resp, "{\"model_version\":\"%lld\",\"reward\":%g}",
                        (long long)version, rw);
out:
    json_decref(root);
    return err;
}

/* GET /v2/models/{m}/events?since=MS&limit=N and GET /v2/events */
int qv__on_events(struct qv_http_req *r)
{
    struct qv_store_event_filter f;
    struct qv_store_event *ev = NULL;
    const char *since = r->query ? r->query(r, "since") : NULL;
    const char *limit = r->query ? r->query(r, "limit") : NULL;
    size_t n = 0;
    int err;

    if (r->deps->store == NULL)
        return qv_fail(&r->diag, QV_ENOENT, "no store configured");
    memset(&f, 0, sizeof(f));
    f.model = r->n_params > 0 ? r->params[0] : NULL;
    f.since_ms = since ? strtoull(since, NULL, 10) : 0;
    f.limit = limit ? (size_t)strtoull(limit, NULL, 10) : 1000;
    err = qv_store_event_list(r->deps->store, &f, &ev, &n, &r->diag);
    if (err)
        return err;
    err = qv_buf_append(&r->resp, "[", 1);
    for (size_t i = 0; i < n && !err; i++) {
        char ts[32];
        qv_iso8601(ev[i].ts_ms, ts);
        err = qv_buf_printf(&r->resp, "%s{\"id\":%lld,\"ts\":\"%s\",\"ts_ms\":%llu,\"model\":",
                            i ? "," : "", (long long)ev[i].id, ts,
                            (unsigned long long)ev[i].ts_ms);
        err = err ? err : qv__api_json_string(&r->resp, ev[i].model);
        err = err ? err : qv_buf_append(&r->resp, ",\"who\":", 7);
        err = err ? err : qv__api_json_string(&r->resp, ev[i].who);
        err = err ? err : qv_buf_append(&r->resp, ",\"what\":", 8);
        err = err ? err : qv__api_json_string(&r->resp, ev[i].what);
        err = err ? err : qv_buf_append(&r->resp, ",\"old\":", 7);
        err = err ? err : (ev[i].old_value ? qv__api_json_string(&r->resp, ev[i].old_value)
                                           : qv_buf_append(&r->resp, "null", 4));
        err = err ? err : qv_buf_append(&r->resp, ",\"new\":", 7);
        err = err ? err : (ev[i].new_value ? qv__api_json_string(&r->resp, ev[i].new_value)
                                           : qv_buf_append(&r->resp, "null", 4));
        err = err ? err : qv_buf_append(&r->resp, "}", 1);
    }
    qv_store_event_free(ev, n);
    return err ? err : qv_buf_append(&r->resp, "]", 1);
}

/* POST /v2/models/{m}/route/rollback: the previous route document. */
int qv__on_route_rollback(struct qv_http_req *r)
{
    const struct qv_resolver *res = qv_router_resolver(r->deps->router);
    char *prev = NULL, *old, *now;
    int err = require_model(r);

    if (err)
        return err;
    if (r->deps->store == NULL ||
        qv_store_route_get_previous(r->deps->store, r->params[0], &prev, &r->diag) != QV_OK)
        return qv_fail(&r->diag, QV_ENOENT, "model %s has no previous route", r->params[0]);
    old = current_route(r, r->params[0]);
    err = qv_router_set_route(r->deps->router, r->params[0], prev, res, &r->diag);
    if (!err) {
        now = current_route(r, r->params[0]);
        persist_route(r, r->params[0], now);
        qv__api_audit(r, r->params[0], "route.rollback", old, now);
        err = now ? qv_buf_append(&r->resp, now, strlen(now))
                  : qv_buf_append(&r->resp, "{\"policy\":\"default\"}", 20);
        free(now);
    }
    free(old);
    free(prev);
    return err;
}
