/* SPDX-License-Identifier: MIT
 *
 * The store's front: URL dispatch, argument checks and the free functions. Everything that
 * touches a database lives behind struct qv_store_ops (sqlite.c), so an implementation only ever
 * sees valid requests and every implementation rejects bad ones with the same words.
 */
#define QV_LOG_MODULE "store"

#include "store_impl.h"

#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- URL ---- */

/* Split url into an implementation and its target. The diag names the scheme only: the rest of
 * a URL may hold a password. */
static int parse_url(const char *url, const struct qv_store_ops **ops, const char **target,
                     struct qv_diag *d)
{
    size_t len = 0;

    if (url == NULL || url[0] == '\0')
        return qv_fail(d, QV_EINVAL, "store URL is empty; expected sqlite:PATH");
    if (isalpha((unsigned char)url[0])) {
        len = 1;
        while (isalnum((unsigned char)url[len]) || url[len] == '+' || url[len] == '-' ||
               url[len] == '.')
            len++;
    }
    if (len == 0 || url[len] != ':')
        return qv_fail(d, QV_EINVAL,
                       "store URL has no scheme; expected sqlite:PATH or "
                       "postgres://HOST/DB");

    if (len == 6 && strncasecmp(url, "sqlite", len) == 0) {
        const char *path = url + len + 1;

        if (strncmp(path, "//", 2) == 0) /* sqlite:///abs/path */
            path += 2;
        if (path[0] == '\0')
            return qv_fail(d, QV_EINVAL,
                           "store URL 'sqlite:' has no path; expected "
                           "sqlite:PATH");
        *ops = &qv_store_sqlite;
        *target = path;
        return 0;
    }
    if ((len == 8 && strncasecmp(url, "postgres", len) == 0) ||
        (len == 10 && strncasecmp(url, "postgresql", len) == 0)) {
        if (strncmp(url + len + 1, "//", 2) != 0)
            return qv_fail(d, QV_EINVAL,
                           "store URL '%.*s:' must be followed by //; expected "
                           "postgres://USER@HOST:PORT/DB",
                           (int)len, url);
        *ops = &qv_store_postgres;
        *target = url; /* libpq parses the whole URI */
        return 0;
    }
    return qv_fail(d, QV_EINVAL,
                   "unknown store URL scheme '%.*s'; expected sqlite:PATH or postgres://HOST/DB",
                   len > 32 ? 32 : (int)len, url);
}

int qv__store_open_with(const char *url, const struct qv_store_migration *m, qv_store **out,
                        struct qv_diag *d)
{
    const struct qv_store_ops *ops = NULL;
    const char *target = NULL;
    qv_store *s = NULL;
    int err;

    assert(out != NULL);
    err = parse_url(url, &ops, &target, d);
    if (err)
        return err;
    err = ops->open(target, m != NULL ? m : ops->migrations, &s, d);
    if (err)
        return err;
    *out = s;
    return 0;
}

int qv_store_open(const char *url, qv_store **out, struct qv_diag *d)
{
    return qv__store_open_with(url, NULL, out, d);
}

void qv_store_close(qv_store *s)
{
    if (s != NULL)
        s->ops->close(s);
}

const char *qv_store_kind(const qv_store *s)
{
    return s->ops->kind;
}

int qv_store_schema_version(qv_store *s, int *out, struct qv_diag *d)
{
    assert(out != NULL);
    return s->ops->schema_version(s, out, d);
}

/* ---- Argument checks ---- */

static int check_name(const char *what, const char *v, struct qv_diag *d)
{
    if (v == NULL || v[0] == '\0')
        return qv_fail(d, QV_EINVAL, "store: %s must not be empty", what);
    return 0;
}

static int check_text(const char *what, const char *v, struct qv_diag *d)
{
    if (v == NULL)
        return qv_fail(d, QV_EINVAL, "store: %s must not be NULL", what);
    return 0;
}

static int check_version(int64_t version, struct qv_diag *d)
{
    if (version < 0)
        return qv_fail(d, QV_EINVAL, "store: version %" PRId64 " is negative", version);
    return 0;
}

/* Timestamps and counters are unsigned in C and signed 64-bit in every SQL database. */
static int check_u63(const char *what, uint64_t v, struct qv_diag *d)
{
    if (v > (uint64_t)INT64_MAX)
        return qv_fail(d, QV_EINVAL, "store: %s %" PRIu64 " is out of range", what, v);
    return 0;
}

static bool is_state(const char *s)
{
    static const char *const states[] = {QV_STORE_STATE_LOADING, QV_STORE_STATE_READY,
                                         QV_STORE_STATE_DRAINING, QV_STORE_STATE_UNLOADED,
                                         QV_STORE_STATE_UNAVAILABLE};

    for (size_t i = 0; i < QV_ARRAY_LEN(states); i++)
        if (strcmp(s, states[i]) == 0)
            return true;
    return false;
}

static bool is_sha256_hex(const char *h)
{
    size_t i;

    for (i = 0; i < QV_SHA256_HEX - 1; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
            return false;
    return h[i] == '\0';
}

/* ---- Model versions ---- */

int qv_store_version_upsert(qv_store *s, const struct qv_store_version *v, struct qv_diag *d)
{
    struct qv_store_version row;
    int err;

    assert(v != NULL);
    err = check_name("model", v->model, d);
    if (!err)
        err = check_version(v->version, d);
    if (!err)
        err = check_u63("updated_ms", v->updated_ms, d);
    if (err)
        return err;
    if (memchr(v->state, '\0', sizeof(v->state)) == NULL || !is_state(v->state))
        return qv_fail(d, QV_EINVAL,
                       "store: model '%s' version %" PRId64 ": state '%.*s' is not one of "
                       "LOADING, READY, DRAINING, UNLOADED, UNAVAILABLE",
                       v->model, v->version, (int)sizeof(v->state), v->state);
    if (memchr(v->sha256, '\0', sizeof(v->sha256)) == NULL ||
        (v->sha256[0] != '\0' && !is_sha256_hex(v->sha256)))
        return qv_fail(d, QV_EINVAL,
                       "store: model '%s' version %" PRId64 ": sha256 must be 64 lowercase hex "
                       "digits or empty",
                       v->model, v->version);

    row = *v;
    if (row.reason == NULL)
        row.reason = "";
    if (row.updated_ms == 0)
        row.updated_ms = qv_wall_ms();
    row.first_seen_ms = row.updated_ms;
    return s->ops->version_upsert(s, &row, d);
}

int qv_store_version_get(qv_store *s, const char *model, int64_t version,
                         struct qv_store_version *out, struct qv_diag *d)
{
    int err;

    assert(out != NULL);
    err = check_name("model", model, d);
    if (err)
        return err;
    return s->ops->version_get(s, model, version, out, d);
}

int qv_store_version_list(qv_store *s, const char *model, struct qv_store_version **out, size_t *n,
                          struct qv_diag *d)
{
    assert(out != NULL && n != NULL);
    if (model != NULL && model[0] == '\0')
        return qv_fail(d, QV_EINVAL, "store: model must be NULL (all) or not empty");
    return s->ops->version_list(s, model, out, n, d);
}

void qv_store_version_fini(struct qv_store_version *v)
{
    if (v == NULL)
        return;
    free(v->model);
    free(v->reason);
    v->model = NULL;
    v->reason = NULL;
}

void qv_store_version_free(struct qv_store_version *a, size_t n)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        qv_store_version_fini(&a[i]);
    free(a);
}

/* ---- Routes ---- */

int qv_store_route_put(qv_store *s, const char *model, const char *doc, struct qv_diag *d)
{
    int err;

    err = check_name("model", model, d);
    if (!err)
        err = check_name("route document", doc, d);
    if (err)
        return err;
    return s->ops->route_put(s, model, doc, qv_wall_ms(), d);
}

int qv_store_route_get(qv_store *s, const char *model, char **doc, struct qv_diag *d)
{
    int err;

    assert(doc != NULL);
    err = check_name("model", model, d);
    if (err)
        return err;
    return s->ops->route_get(s, model, 0, doc, d);
}

int qv_store_route_get_previous(qv_store *s, const char *model, char **doc, struct qv_diag *d)
{
    int err;

    assert(doc != NULL);
    err = check_name("model", model, d);
    if (err)
        return err;
    return s->ops->route_get(s, model, 1, doc, d);
}

int qv_store_route_rollback(qv_store *s, const char *model, char **doc, struct qv_diag *d)
{
    return qv_store_route_rollback_rev(s, model, doc, NULL, d);
}

int qv_store_route_rollback_rev(qv_store *s, const char *model, char **doc, int64_t *revision,
                                struct qv_diag *d)
{
    int64_t rev = 0;
    int err;

    err = check_name("model", model, d);
    if (err)
        return err;
    err = s->ops->route_rollback(s, model, qv_wall_ms(), doc, &rev, d);
    if (err == 0 && revision != NULL)
        *revision = rev;
    return err;
}

int qv_store_route_revision(qv_store *s, const char *model, int64_t *revision, size_t *depth,
                            struct qv_diag *d)
{
    int64_t rev = 0;
    size_t n = 0;
    int err;

    err = check_name("model", model, d);
    if (err)
        return err;
    err = s->ops->route_revision(s, model, &rev, &n, d);
    if (err == 0) {
        if (revision != NULL)
            *revision = rev;
        if (depth != NULL)
            *depth = n;
    }
    return err;
}

int qv_store_route_list(qv_store *s, struct qv_store_route **out, size_t *n, struct qv_diag *d)
{
    assert(out != NULL && n != NULL);
    return s->ops->route_list(s, out, n, d);
}

void qv_store_route_free(struct qv_store_route *a, size_t n)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(a[i].model);
        free(a[i].doc);
        free(a[i].prev_doc);
    }
    free(a);
}

/* ---- Labels ---- */

int qv_store_label_set(qv_store *s, const char *model, const char *label, int64_t version,
                       struct qv_diag *d)
{
    int err;

    err = check_name("model", model, d);
    if (!err)
        err = check_name("label", label, d);
    if (!err)
        err = check_version(version, d);
    if (err)
        return err;
    return s->ops->label_set(s, model, label, version, qv_wall_ms(), d);
}

int qv_store_label_get(qv_store *s, const char *model, const char *label, int64_t *version,
                       struct qv_diag *d)
{
    int err;

    assert(version != NULL);
    err = check_name("model", model, d);
    if (!err)
        err = check_name("label", label, d);
    if (err)
        return err;
    return s->ops->label_get(s, model, label, version, d);
}

int qv_store_label_delete(qv_store *s, const char *model, const char *label, struct qv_diag *d)
{
    int err;

    err = check_name("model", model, d);
    if (!err)
        err = check_name("label", label, d);
    if (err)
        return err;
    return s->ops->label_delete(s, model, label, d);
}

int qv_store_label_list(qv_store *s, const char *model, struct qv_store_label **out, size_t *n,
                        struct qv_diag *d)
{
    assert(out != NULL && n != NULL);
    if (model != NULL && model[0] == '\0')
        return qv_fail(d, QV_EINVAL, "store: model must be NULL (all) or not empty");
    return s->ops->label_list(s, model, out, n, d);
}

void qv_store_label_free(struct qv_store_label *a, size_t n)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(a[i].model);
        free(a[i].label);
    }
    free(a);
}

/* ---- Audit log ---- */

int qv_store_event_add(qv_store *s, const struct qv_store_event *ev, int64_t *id, struct qv_diag *d)
{
    struct qv_store_event row;
    int err;

    assert(ev != NULL);
    err = check_name("event who", ev->who, d);
    if (!err)
        err = check_name("event what", ev->what, d);
    if (!err)
        err = check_u63("event ts_ms", ev->ts_ms, d);
    if (err)
        return err;
    row = *ev;
    if (row.model == NULL)
        row.model = "";
    if (row.ts_ms == 0)
        row.ts_ms = qv_wall_ms();
    return s->ops->event_add(s, &row, id, d);
}

int qv_store_event_list(qv_store *s, const struct qv_store_event_filter *f,
                        struct qv_store_event **out, size_t *n, struct qv_diag *d)
{
    static const struct qv_store_event_filter all = {NULL, 0, 0};
    int err;

    assert(out != NULL && n != NULL);
    if (f == NULL)
        f = &all;
    err = check_u63("since_ms", f->since_ms, d);
    if (!err)
        err = check_u63("limit", f->limit, d);
    if (err)
        return err;
    return s->ops->event_list(s, f, out, n, d);
}

void qv_store_event_free(struct qv_store_event *a, size_t n)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(a[i].model);
        free(a[i].who);
        free(a[i].what);
        free(a[i].old_value);
        free(a[i].new_value);
    }
    free(a);
}

/* ---- Metric history ---- */

int qv_store_history_add(qv_store *s, const char *model, const struct qv_history_row *rows,
                         size_t n, struct qv_diag *d)
{
    int err;

    err = check_name("model", model, d);
    if (err)
        return err;
    if (n == 0)
        return 0;
    assert(rows != NULL);
    for (size_t i = 0; i < n; i++) {
        const struct qv_history_row *r = &rows[i];

        err = check_version(r->version, d);
        if (!err)
            err = check_u63("history ts_ms", r->ts_ms, d);
        if (!err)
            err = check_u63("history requests", r->requests, d);
        if (!err)
            err = check_u63("history errors", r->errors, d);
        if (!err)
            err = check_u63("history memory_bytes", r->memory_bytes, d);
        if (!err)
            err = check_u63("history queue_depth", r->queue_depth, d);
        if (err)
            return err;
    }
    return s->ops->history_add(s, model, rows, n, qv_wall_ms(), d);
}

int qv_store_history_query(qv_store *s, const struct qv_history_query *q,
                           struct qv_history_row **out, size_t *n, struct qv_diag *d)
{
    int err;

    assert(q != NULL && out != NULL && n != NULL);
    err = check_name("model", q->model, d);
    if (!err && q->version < 0 && q->version != QV_STORE_ANY_VERSION)
        err = check_version(q->version, d);
    if (!err)
        err = check_u63("since_ms", q->since_ms, d);
    if (!err)
        err = check_u63("limit", q->limit, d);
    if (err)
        return err;
    return s->ops->history_query(s, q, out, n, d);
}

int qv_store_history_prune(qv_store *s, uint64_t before_ms, uint64_t *deleted, struct qv_diag *d)
{
    int err;

    err = check_u63("before_ms", before_ms, d);
    if (err)
        return err;
    return s->ops->history_prune(s, before_ms, deleted, d);
}

/* ---- Key/value ---- */

int qv_store_kv_put(qv_store *s, const char *ns, const char *key, const char *value,
                    struct qv_diag *d)
{
    int err;

    err = check_name("namespace", ns, d);
    if (!err)
        err = check_name("key", key, d);
    if (!err)
        err = check_text("value", value, d);
    if (err)
        return err;
    return s->ops->kv_put(s, ns, key, value, qv_wall_ms(), d);
}

int qv_store_kv_get(qv_store *s, const char *ns, const char *key, char **value, struct qv_diag *d)
{
    int err;

    assert(value != NULL);
    err = check_name("namespace", ns, d);
    if (!err)
        err = check_name("key", key, d);
    if (err)
        return err;
    return s->ops->kv_get(s, ns, key, value, d);
}

int qv_store_kv_delete(qv_store *s, const char *ns, const char *key, struct qv_diag *d)
{
    int err;

    err = check_name("namespace", ns, d);
    if (!err)
        err = check_name("key", key, d);
    if (err)
        return err;
    return s->ops->kv_delete(s, ns, key, d);
}

int qv_store_kv_list(qv_store *s, const char *ns, struct qv_store_kv **out, size_t *n,
                     struct qv_diag *d)
{
    int err;

    assert(out != NULL && n != NULL);
    err = check_name("namespace", ns, d);
    if (err)
        return err;
    return s->ops->kv_list(s, ns, out, n, d);
}

void qv_store_kv_free(struct qv_store_kv *a, size_t n)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(a[i].key);
        free(a[i].value);
    }
    free(a);
}

/* ---- Requests answered ---- */

#define REQUEST_FIELD_MAX 127

int qv_store_request_add(qv_store *s, const struct qv_store_request *rows, size_t n,
                         struct qv_diag *d)
{
    struct qv_store_request *copy;
    uint64_t now = qv_wall_ms();
    int err;

    if (s->ops->request_add == NULL)
        return qv_fail(d, QV_ENOTSUP, "store: %s does not keep requests", s->ops->kind);
    if (n == 0)
        return 0;
    copy = calloc(n, sizeof(*copy));
    if (copy == NULL)
        return qv_fail(d, QV_ENOMEM, "store: out of memory for %zu requests", n);
    for (size_t i = 0; i < n; i++) {
        copy[i] = rows[i];
        err = check_name("request id", rows[i].id, d);
        if (!err)
            err = check_name("model", rows[i].model, d);
        if (!err && (strlen(rows[i].id) > REQUEST_FIELD_MAX ||
                     strlen(rows[i].model) > REQUEST_FIELD_MAX))
            err = qv_fail(d, QV_EINVAL, "store: request id or model longer than %d bytes",
                          REQUEST_FIELD_MAX);
        if (!err)
            err = check_version(rows[i].version, d);
        if (!err)
            err = check_u63("ts_ms", rows[i].ts_ms, d);
        if (err) {
            free(copy);
            return err;
        }
        if (copy[i].ts_ms == 0)
            copy[i].ts_ms = now;
        if (copy[i].cls < -1)
            copy[i].cls = -1;
    }
    err = s->ops->request_add(s, copy, n, d);
    free(copy);
    return err;
}

int qv_store_request_get(qv_store *s, const char *id, char *model_out, int64_t *version, int *cls,
                         struct qv_diag *d)
{
    int err = check_name("request id", id, d);

    if (err)
        return err;
    if (s->ops->request_get == NULL)
        return qv_fail(d, QV_ENOTSUP, "store: %s does not keep requests", s->ops->kind);
    return s->ops->request_get(s, id, model_out, version, cls, d);
}

int qv_store_request_prune(qv_store *s, uint64_t before_ms, uint64_t *deleted, struct qv_diag *d)
{
    int err = check_u63("before_ms", before_ms, d);

    if (err)
        return err;
    if (s->ops->request_prune == NULL)
        return qv_fail(d, QV_ENOTSUP, "store: %s does not keep requests", s->ops->kind);
    return s->ops->request_prune(s, before_ms, deleted, d);
}

/* ---- Feedback ---- */

int qv_store_feedback_add(qv_store *s, const char *id, const char *model, int64_t version,
                          double reward, struct qv_diag *d)
{
    int err;

    /* A store that is not shared first: a single node's feedback never depends on it. */
    if (s->ops->feedback_add == NULL)
        return qv_fail(d, QV_ENOTSUP, "store: %s does not share feedback", s->ops->kind);
    err = check_name("request id", id, d);
    if (!err)
        err = check_name("model", model, d);
    if (!err && (strlen(id) > REQUEST_FIELD_MAX || strlen(model) > REQUEST_FIELD_MAX))
        err = qv_fail(d, QV_EINVAL, "store: request id or model longer than %d bytes",
                      REQUEST_FIELD_MAX);
    if (!err)
        err = check_version(version, d);
    if (!err && !(reward >= 0.0 && reward <= 1.0))
        err = qv_fail(d, QV_EINVAL, "store: reward must be a number from 0 to 1");
    if (err)
        return err;
    return s->ops->feedback_add(s, id, model, version, reward, qv_wall_ms(), d);
}

int qv_store_feedback_totals(qv_store *s, const char *model, struct qv_store_feedback_total **out,
                             size_t *n, struct qv_diag *d)
{
    int err = check_name("model", model, d);

    *out = NULL;
    *n = 0;
    if (err)
        return err;
    if (s->ops->feedback_totals == NULL)
        return qv_fail(d, QV_ENOTSUP, "store: %s does not share feedback", s->ops->kind);
    return s->ops->feedback_totals(s, model, out, n, d);
}
