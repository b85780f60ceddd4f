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

/* Route changes made through the API are serialized, so that the store's history and
 * the router see them in the same order (a rollback reads the top of the history and
 * pops it). */
static pthread_mutex_t change_mu = PTHREAD_MUTEX_INITIALIZER;
/* Feedback counts are counted and saved under one lock (see qv__on_feedback). */
static pthread_mutex_t feedback_mu = PTHREAD_MUTEX_INITIALIZER;

/* What a change records in the store before the router publishes it (the router's
 * commit hook): the route document, or the pop of its history for a rollback. A change
 * the store did not save is refused (5xx) and never applied. */
struct commit_ctx {
    struct qv_http_req *r;
    bool rollback;
    int64_t revision; /* out: the revision now in force (0: no store) */
};

static int commit_route(void *ud, const char *model, const char *canonical, struct qv_diag *d)
{
    struct commit_ctx *c = ud;
    qv_store *st = c->r->deps->store;
    struct qv_diag ignore = {{0}};
    int err;

    if (st == NULL)
        return QV_OK;
    if (c->rollback)
        err = qv_store_route_rollback_rev(st, model, NULL, &c->revision, d);
    else
        err = qv_store_route_put(st, model, canonical ? canonical : "{\"policy\":\"default\"}", d);
    if (err) {
        qv_log(QV_LOG_WARN, "model=%s msg=\"route change not saved; refused\" reason=\"%s\"", model,
               d->msg);
        return err == QV_ENOENT || err == QV_ESTOREDOWN ? err : QV_ESTORE;
    }
    if (!c->rollback)
        qv_store_route_revision(st, model, &c->revision, NULL, &ignore);
    return QV_OK;
}

/* The audit value of a change: the document in force and its revision. */
static char *with_revision(const char *doc, int64_t revision)
{
    struct qv_buf b = QV_BUF_INIT(0);

    if (doc == NULL)
        doc = "{\"policy\":\"default\"}";
    if (revision <= 0)
        return qv_xstrdup(doc);
    if (qv_buf_printf(&b, "{\"revision\":%lld,\"route\":%s}", (long long)revision, doc) != 0) {
        qv_buf_free(&b);
        return qv_xstrdup(doc);
    }
    return qv_buf_take(&b);
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

/* The body of a PUT .../route with the labels in force added when it has no "labels"
 * key: labels are their own resource, and a route document only replaces them when
 * it says so ("labels": {} removes them all). *out is the text to apply (malloc'ed),
 * or NULL to apply the body as it is (not an object: the router names the error). */
static char *keep_labels(struct qv_http_req *r, const char *cur)
{
    json_t *body, *now, *labels;
    char *out = NULL;

    if (cur == NULL)
        return NULL;
    body = json_loadb(r->body, r->body_len, 0, NULL);
    if (!json_is_object(body) || json_object_get(body, "labels") != NULL) {
        json_decref(body);
        return NULL;
    }
    now = json_loads(cur, 0, NULL);
    labels = json_object_get(now, "labels");
    if (json_is_object(labels) && json_object_size(labels) > 0) {
        json_object_set(body, "labels", labels);
        out = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    }
    json_decref(now);
    json_decref(body);
    return out;
}

/* PUT /v2/models/{m}/route: the whole document, validated, saved, applied atomically.
 * Without a "labels" key the labels in force are kept. */
int qv__on_route_put(struct qv_http_req *r)
{
    const struct qv_resolver *res = qv_router_resolver(r->deps->router);
    struct commit_ctx cc = {.r = r};
    struct qv_route_commit commit = {commit_route, &cc};
    char *old, *now, *doc;
    int err = require_model(r);

    if (err)
        return err;
    pthread_mutex_lock(&change_mu);
    old = current_route(r, r->params[0]);
    doc = keep_labels(r, old);
    err = qv_router_set_route_commit(r->deps->router, r->params[0], doc ? doc : r->body, res,
                                     &commit, &r->diag);
    free(doc);
    if (err) {
        pthread_mutex_unlock(&change_mu);
        free(old);
        return err;
    }
    now = current_route(r, r->params[0]);
    pthread_mutex_unlock(&change_mu);
    qv__api_audit(r, r->params[0], "route.put", old, now);
    /* The change is saved and in force: it is answered 200 even when the
     * document cannot be echoed (then the body is empty). */
    if (now != NULL && qv_buf_append(&r->resp, now, strlen(now)) != QV_OK)
        r->resp.len = 0;
    free(old);
    free(now);
    return QV_OK;
}

/* DELETE /v2/models/{m}/route: back to the default (highest READY). */
int qv__on_route_delete(struct qv_http_req *r)
{
    struct commit_ctx cc = {.r = r};
    struct qv_route_commit commit = {commit_route, &cc};
    char *old;
    int err = require_model(r);

    if (err)
        return err;
    pthread_mutex_lock(&change_mu);
    old = current_route(r, r->params[0]);
    err = qv_router_clear_commit(r->deps->router, r->params[0], &commit, &r->diag);
    pthread_mutex_unlock(&change_mu);
    if (err) {
        free(old);
        if (err == QV_ENOENT)
            return qv_fail(&r->diag, QV_ENOENT, "model %s has no route", r->params[0]);
        return err;
    }
    qv__api_audit(r, r->params[0], "route.delete", old, NULL);
    free(old);
    return qv_buf_append(&r->resp, "{\"policy\":\"default\"}", 20);
}

/* PUT /v2/models/{m}/labels/{label} {"version": N} */
int qv__on_label_put(struct qv_http_req *r)
{
    const struct qv_resolver *res = qv_router_resolver(r->deps->router);
    struct commit_ctx cc = {.r = r};
    struct qv_route_commit commit = {commit_route, &cc};
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
    pthread_mutex_lock(&change_mu);
    if (qv_router_get_label(r->deps->router, r->params[0], r->params[1], &before) == QV_OK)
        snprintf(oldv, sizeof(oldv), "%s=%lld", r->params[1], (long long)before);
    err = qv_router_set_label_commit(r->deps->router, r->params[0], r->params[1], version, res,
                                     &commit, &r->diag);
    pthread_mutex_unlock(&change_mu);
    if (err)
        return err;
    now = current_route(r, r->params[0]);
    /* The route document (saved above) is the record; the labels table is an index of it. */
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
    struct commit_ctx cc = {.r = r};
    struct qv_route_commit commit = {commit_route, &cc};
    int64_t before = 0;
    char oldv[96], *now;
    int err = require_model(r);

    if (err)
        return err;
    if (qv_router_get_label(r->deps->router, r->params[0], r->params[1], &before) != QV_OK)
        return qv_fail(&r->diag, QV_ENOENT, "label \"%s\": model %s has no such label",
                       r->params[1], r->params[0]);
    pthread_mutex_lock(&change_mu);
    err = qv_router_delete_label_commit(r->deps->router, r->params[0], r->params[1], &commit,
                                        &r->diag);
    pthread_mutex_unlock(&change_mu);
    if (err)
        return err;
    now = current_route(r, r->params[0]);
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
    bool shared = false; /* the cluster's store accepted it */

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
        err = qv_fail(&r->diag, QV_ENOENT,
                      "id: no request \"%s\" of model %s is remembered "
                      "(unknown or too old)",
                      json_string_value(id), r->params[0]);
        goto out;
    }
    if (label) {
        long long want = json_is_boolean(label) ? json_is_true(label) : json_integer_value(label);
        if (predicted < 0) {
            err = qv_fail(&r->diag, QV_ENOENT,
                          "id: request \"%s\" has no answer to score "
                          "(it failed, or is still running)",
                          json_string_value(id));
            goto out;
        }
        rw = predicted == want ? 1.0 : 0.0;
    } else {
        rw = json_number_value(reward);
    }
    /* One feedback per request: the first is kept, so that one id cannot steer the
     * bandit or the accuracy again and again. */
    err = qv_router_feedback_claim(r->deps->router, json_string_value(id), r->params[0]);
    if (err == QV_ECONFLICT) {
        err = qv_fail(&r->diag, QV_ECONFLICT,
                      "id: feedback for request \"%s\" was already recorded (the first is kept)",
                      json_string_value(id));
        goto out;
    }
    if (err) {
        err = qv_fail(&r->diag, QV_ENOENT,
                      "id: no request \"%s\" of model %s is remembered "
                      "(unknown or too old)",
                      json_string_value(id), r->params[0]);
        goto out;
    }
    /* In a cluster, the store decides for every node at once (and adds the reward to the
     * cluster's totals, from which the controller moves the bandit's arms). */
    if (r->deps->store) {
        struct qv_diag sd = {{0}};
        err = qv_store_feedback_add(r->deps->store, json_string_value(id), r->params[0], version,
                                    rw, &sd);
        if (err == QV_OK) {
            shared = true;
        } else if (err == QV_ECONFLICT) {
            err = qv_fail(&r->diag, QV_ECONFLICT,
                          "id: feedback for request \"%s\" was already recorded (the first is "
                          "kept)",
                          json_string_value(id));
            goto out;
        } else if (err != QV_ENOTSUP) {
            /* Not recorded anywhere: the client may send it again. */
            qv_router_feedback_unclaim(r->deps->router, json_string_value(id), r->params[0]);
            err = qv_fail(&r->diag, err, "feedback not saved: %s", sd.msg);
            goto out;
        }
    }
    /* Counting and saving are one step: two feedbacks saved out of order would leave
     * the older count in the store after the newer one was acknowledged. */
    pthread_mutex_lock(&feedback_mu);
    if (!shared) /* in a cluster the controller moves the arms from the totals */
        qv_router_feedback(r->deps->router, r->params[0], version, rw);
    qv_monitor_feedback(r->deps->monitor, r->params[0], version, rw);
    if (r->deps->store) {
        char *state = NULL, key[QV_ROUTER_MODEL_MAX + 24], value[96];
        struct qv_diag d = {{0}};
        uint64_t count = 0;
        double sum = 0;
        int serr = QV_OK;
        if (!shared &&
            qv_router_bandit_state_get(r->deps->router, r->params[0], &state) == QV_OK) {
            serr = qv_store_kv_put(r->deps->store, "bandit", r->params[0], state, &d);
            free(state);
        }
        /* Online accuracy survives a restart (control.c restores it). */
        if (serr == QV_OK && qv_monitor_feedback_get(r->deps->monitor, r->params[0], version,
                                                     &count, &sum) == QV_OK) {
            snprintf(key, sizeof(key), "%s/%lld", r->params[0], (long long)version);
            snprintf(value, sizeof(value), "{\"count\": %llu, \"reward_sum\": %.17g}",
                     (unsigned long long)count, sum);
            serr = qv_store_kv_put(r->deps->store, "feedback", key, value, &d);
        }
        /* Not saved: say so (5xx) rather than acknowledge what a restart would lose. The
         * reward already counts in memory; the next saved feedback saves it too. */
        if (serr != QV_OK) {
            pthread_mutex_unlock(&feedback_mu);
            err = qv_fail(&r->diag, QV_ESTORE, "feedback counted but not saved: %s", d.msg);
            goto out;
        }
    }
    pthread_mutex_unlock(&feedback_mu);
    err = qv_buf_printf(&r->resp, "{\"model_version\":\"%lld\",\"reward\":%g}", (long long)version,
                        rw);
out:
    json_decref(root);
    return err;
}

#define EVENTS_LIMIT_DEFAULT 1000
#define EVENTS_LIMIT_MAX 100000

/* Digits only, at least one, into *out (no overflow past max). */
static bool parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (s == NULL || *s == '\0')
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        if (v > (max - (uint64_t)(*s - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return true;
}

/* GET /v2/models/{m}/events?since=T&limit=N and GET /v2/events: the newest N events (default
 * 1000, at most 100000) at or after T (epoch ms or ISO 8601), oldest first. */
int qv__on_events(struct qv_http_req *r)
{
    struct qv_store_event_filter f;
    struct qv_store_event *ev = NULL;
    const char *since = r->query ? r->query(r, "since") : NULL;
    const char *limit = r->query ? r->query(r, "limit") : NULL;
    uint64_t lim = EVENTS_LIMIT_DEFAULT, since_ms = 0;
    size_t n = 0;
    int err;

    if (limit != NULL && (!parse_uint(limit, EVENTS_LIMIT_MAX, &lim) || lim == 0))
        return qv_fail(&r->diag, QV_EINVAL, "limit: expected a whole number from 1 to %d",
                       EVENTS_LIMIT_MAX);
    if (since != NULL && qv_time_parse(since, &since_ms) != 0)
        return qv_fail(&r->diag, QV_EINVAL,
                       "since: expected milliseconds since the epoch or an ISO 8601 time such as "
                       "2026-12-01T10:00:00Z");
    if (r->deps->store == NULL)
        return qv_fail(&r->diag, QV_ENOENT, "no store configured");
    memset(&f, 0, sizeof(f));
    f.model = r->n_params > 0 ? r->params[0] : NULL;
    f.since_ms = since_ms;
    f.limit = (size_t)lim;
    err = qv_store_event_list(r->deps->store, &f, &ev, &n, &r->diag);
    if (err)
        return err;
    err = qv_buf_append(&r->resp, "[", 1);
    for (size_t i = 0; i < n && !err; i++) {
        char ts[32];
        qv_iso8601(ev[i].ts_ms, ts);
        err = qv_buf_printf(&r->resp,
                            "%s{\"id\":%lld,\"ts\":\"%s\",\"ts_ms\":%llu,\"model\":", i ? "," : "",
                            (long long)ev[i].id, ts, (unsigned long long)ev[i].ts_ms);
        err = err ? err : qv__api_json_string(&r->resp, ev[i].model);
        err = err ? err : qv_buf_append(&r->resp, ",\"who\":", 7);
        err = err ? err : qv__api_json_string(&r->resp, ev[i].who);
        err = err ? err : qv_buf_append(&r->resp, ",\"what\":", 8);
        err = err ? err : qv__api_json_string(&r->resp, ev[i].what);
        err = err ? err : qv_buf_append(&r->resp, ",\"old\":", 7);
        err = err ? err
                  : (ev[i].old_value ? qv__api_json_string(&r->resp, ev[i].old_value)
                                     : qv_buf_append(&r->resp, "null", 4));
        err = err ? err : qv_buf_append(&r->resp, ",\"new\":", 7);
        err = err ? err
                  : (ev[i].new_value ? qv__api_json_string(&r->resp, ev[i].new_value)
                                     : qv_buf_append(&r->resp, "null", 4));
        err = err ? err : qv_buf_append(&r->resp, "}", 1);
    }
    qv_store_event_free(ev, n);
    return err ? err : qv_buf_append(&r->resp, "]", 1);
}

/* POST /v2/models/{m}/route/rollback: one step back in the route's history (a stack:
 * rolling back twice goes back two changes). The answer and the event say which
 * revision is now in force. */
int qv__on_route_rollback(struct qv_http_req *r)
{
    const struct qv_resolver *res = qv_router_resolver(r->deps->router);
    struct commit_ctx cc = {.r = r, .rollback = true};
    struct qv_route_commit commit = {commit_route, &cc};
    char *prev = NULL, *old = NULL, *now = NULL, *ev_new = NULL;
    int err = require_model(r);

    if (err)
        return err;
    if (r->deps->store == NULL)
        return qv_fail(&r->diag, QV_ENOENT, "model %s has no previous route", r->params[0]);
    pthread_mutex_lock(&change_mu);
    if (qv_store_route_get_previous(r->deps->store, r->params[0], &prev, &r->diag) != QV_OK) {
        pthread_mutex_unlock(&change_mu);
        memset(&r->diag, 0, sizeof(r->diag));
        return qv_fail(&r->diag, QV_ENOENT, "model %s has no previous route", r->params[0]);
    }
    old = current_route(r, r->params[0]);
    err = qv_router_set_route_commit(r->deps->router, r->params[0], prev, res, &commit, &r->diag);
    if (!err)
        now = current_route(r, r->params[0]);
    pthread_mutex_unlock(&change_mu);
    if (!err) {
        ev_new = with_revision(now, cc.revision);
        qv__api_audit(r, r->params[0], "route.rollback", old, ev_new);
        qv_log(QV_LOG_INFO, "model=%s revision=%lld msg=\"route rolled back\"", r->params[0],
               (long long)cc.revision);
        if (now == NULL)
            now = qv_xstrdup("{\"policy\":\"default\"}");
        err = qv_buf_append(&r->resp, now, strlen(now));
    }
    free(ev_new);
    free(now);
    free(old);
    free(prev);
    return err;
}
