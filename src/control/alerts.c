/* SPDX-License-Identifier: MIT
 *
 * Alerts: rules per model from config.json's "alerts" array, validated here
 * (the repository keeps the array as JSON text), evaluated every tick per
 * READY version over the monitor's windows. A rule that starts to hold fires,
 * one that stops holding (or loses its data) resolves; both are logged,
 * recorded as audit events ("alert.fire" / "alert.resolve", who "controller",
 * with the figures) and POSTed to the rule's webhook from a background
 * thread.
 */
#include "control_int.h"

#define QV_LOG_MODULE "control"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Rules (pure) ---- */

static const char *const metric_names[QV_AM_COUNT] = {
    [QV_AM_ERROR_RATE] = "error_rate",
    [QV_AM_P50_MS] = "p50_ms",
    [QV_AM_P95_MS] = "p95_ms",
    [QV_AM_P99_MS] = "p99_ms",
    [QV_AM_MEAN_MS] = "mean_ms",
    [QV_AM_MEMORY_BYTES] = "memory_bytes",
    [QV_AM_MEMORY_SHARE] = "memory_share",
    [QV_AM_CPU_MS_PER_REQ] = "cpu_ms_per_req",
    [QV_AM_REQUESTS] = "requests",
};

static const char *const op_names[] = {">", ">=", "<", "<="};

const char *qv_alert_metric_name(enum qv_alert_metric m)
{
    return (unsigned)m < QV_AM_COUNT ? metric_names[m] : "unknown";
}

const char *qv_alert_op_name(enum qv_alert_op op)
{
    return (unsigned)op < QV_ARRAY_LEN(op_names) ? op_names[op] : "?";
}

bool qv_alert_compare(enum qv_alert_op op, double value, double threshold)
{
    switch (op) {
    case QV_OP_GT:
        return value > threshold;
    case QV_OP_GE:
        return value >= threshold;
    case QV_OP_LT:
        return value < threshold;
    case QV_OP_LE:
        return value <= threshold;
    }
    return false;
}

bool qv_alert_value(enum qv_alert_metric m, const struct qv_window *w, uint64_t budget,
                    double *value)
{
    switch (m) {
    case QV_AM_ERROR_RATE:
        *value = w->error_rate;
        return w->requests > 0;
    case QV_AM_P50_MS:
        *value = w->p50_ms;
        return w->latency_count > 0;
    case QV_AM_P95_MS:
        *value = w->p95_ms;
        return w->latency_count > 0;
    case QV_AM_P99_MS:
        *value = w->p99_ms;
        return w->latency_count > 0;
    case QV_AM_MEAN_MS:
        *value = w->mean_ms;
        return w->latency_count > 0;
    case QV_AM_CPU_MS_PER_REQ:
        *value = w->cpu_ms_per_req;
        return w->batches > 0;
    case QV_AM_MEMORY_BYTES:
        *value = (double)w->memory_bytes;
        return true;
    case QV_AM_MEMORY_SHARE:
        *value = budget ? (double)w->memory_bytes / (double)budget : 0;
        return budget > 0;
    case QV_AM_REQUESTS:
        *value = (double)w->requests;
        return true;
    case QV_AM_COUNT:
        break;
    }
    return false;
}

static void add_err(char ***errs, int *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_err(char ***errs, int *n, const char *fmt, ...)
{
    char buf[300];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    *errs = qv_xrealloc(*errs, (size_t)(*n + 1) * sizeof(**errs));
    (*errs)[(*n)++] = qv_xstrdup(buf);
}

void qv_alert_errors_free(char **errs, int n)
{
    for (int i = 0; i < n; i++)
        free(errs[i]);
    free(errs);
}

/* One rule; returns false with an error added when it is invalid. */
static bool parse_rule(json_t *e, size_t i, struct qv_alert_rule *r, char ***errs, int *n_errs)
{
    static const char *const keys[] = {"name",     "metric",  "op",      "threshold",
                                       "window_s", "version", "webhook", NULL};
    const char *key;
    json_t *v;
    bool found;

    memset(r, 0, sizeof(*r));
    r->window_s = 60;
    r->min_requests = 10;
    if (!json_is_object(e)) {
        add_err(errs, n_errs, "alerts[%zu]: expected an object", i);
        return false;
    }
    json_object_foreach(e, key, v)
    {
        found = false;
        for (int k = 0; keys[k]; k++)
            found = found || strcmp(keys[k], key) == 0;
        if (!found) {
            add_err(errs, n_errs, "alerts[%zu].%.64s: unknown key", i, key);
            return false;
        }
    }
    v = json_object_get(e, "metric");
    if (!json_is_string(v)) {
        add_err(errs, n_errs,
                "alerts[%zu].metric: required, one of error_rate, p50_ms, p95_ms, "
                "p99_ms, mean_ms, memory_bytes, memory_share, cpu_ms_per_req, requests",
                i);
        return false;
    }
    found = false;
    for (int k = 0; k < QV_AM_COUNT && !found; k++)
        if (strcmp(json_string_value(v), metric_names[k]) == 0) {
            r->metric = (enum qv_alert_metric)k;
            found = true;
        }
    if (!found) {
        add_err(errs, n_errs, "alerts[%zu].metric: unknown metric \"%.64s\"", i,
                json_string_value(v));
        return false;
    }
    v = json_object_get(e, "op");
    found = false;
    for (unsigned k = 0; json_is_string(v) && k < QV_ARRAY_LEN(op_names) && !found; k++)
        if (strcmp(json_string_value(v), op_names[k]) == 0) {
            r->op = (enum qv_alert_op)k;
            found = true;
        }
    if (!found) {
        add_err(errs, n_errs, "alerts[%zu].op: expected \">\", \">=\", \"<\" or \"<=\"", i);
        return false;
    }
    v = json_object_get(e, "threshold");
    if (!json_is_number(v) || !isfinite(json_number_value(v))) {
        add_err(errs, n_errs, "alerts[%zu].threshold: expected a number", i);
        return false;
    }
    r->threshold = json_number_value(v);
    v = json_object_get(e, "window_s");
    if (v != NULL) {
        if (!json_is_number(v) || json_number_value(v) < 1 || json_number_value(v) > 600) {
            add_err(errs, n_errs, "alerts[%zu].window_s: expected seconds from 1 to 600", i);
            return false;
        }
        r->window_s = json_number_value(v);
    }
    v = json_object_get(e, "version");
    if (v != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) <= 0) {
            add_err(errs, n_errs, "alerts[%zu].version: expected a version number", i);
            return false;
        }
        r->version = json_integer_value(v);
    }
    v = json_object_get(e, "min_requests");
    if (v != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            add_err(errs, n_errs, "alerts[%zu].min_requests: expected a non-negative integer", i);
            return false;
        }
        r->min_requests = (uint64_t)json_integer_value(v);
    }
    v = json_object_get(e, "name");
    if (v != NULL) {
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) >= sizeof(r->name)) {
            add_err(errs, n_errs, "alerts[%zu].name: expected a string of 1 to %zu bytes", i,
                    sizeof(r->name) - 1);
            return false;
        }
        snprintf(r->name, sizeof(r->name), "%s", json_string_value(v));
    } else {
        snprintf(r->name, sizeof(r->name), "%s %s %g", metric_names[r->metric], op_names[r->op],
                 r->threshold);
    }
    v = json_object_get(e, "webhook");
    if (v != NULL) {
        const char *u = json_is_string(v) ? json_string_value(v) : "";
        if ((strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0) ||
            strlen(u) >= sizeof(r->webhook)) {
            add_err(errs, n_errs, "alerts[%zu].webhook: expected an http:// or https:// URL", i);
            return false;
        }
        snprintf(r->webhook, sizeof(r->webhook), "%s", u);
    }
    return true;
}

int qv_alert_rules_parse(const char *json, struct qv_alert_rule *rules, int *idx, char ***errs,
                         int *n_errs)
{
    json_error_t jerr;
    json_t *root, *e;
    size_t i;
    int n = 0;

    root = json_loads(json ? json : "[]", 0, &jerr);
    *errs = NULL;
    *n_errs = 0;
    /* The text is what json_dumps wrote from config.json, so it parses unless
     * jansson runs out of memory (which it may report as a syntax error). */
    if (root == NULL) {
        add_err(errs, n_errs, "alerts: the rules cannot be read now (out of memory)");
        return -1;
    }
    if (!json_is_array(root)) {
        add_err(errs, n_errs, "alerts: expected an array of rules");
        json_decref(root);
        return 0;
    }
    json_array_foreach(root, i, e)
    {
        if (n >= QV_ALERT_MAX_RULES) {
            add_err(errs, n_errs, "alerts[%zu]: more than %d rules", i, QV_ALERT_MAX_RULES);
            break;
        }
        if (parse_rule(e, i, &rules[n], errs, n_errs))
            idx[n++] = (int)i;
    }
    json_decref(root);
    return n;
}

int qv_control_alerts_validate(const char *alerts_json, struct qv_diag *d)
{
    struct qv_alert_rule *rules = qv_xcalloc(QV_ALERT_MAX_RULES, sizeof(*rules));
    int idx[QV_ALERT_MAX_RULES], n_errs = 0, err = QV_OK;
    char **errs = NULL;

    qv_alert_rules_parse(alerts_json, rules, idx, &errs, &n_errs);
    if (n_errs > 0)
        err = qv_fail(d, QV_EINVAL, "%s", errs[0]);
    qv_alert_errors_free(errs, n_errs);
    free(rules);
    return err;
}

/* ---- Per-model state ---- */

struct firing {
    int rule; /* index into rules[] */
    int64_t version;
    bool firing;
    double value;
    uint64_t since_ms;
};

struct qv__alert_state {
    char model[QV_MODEL_NAME_MAX];
    char *json; /* the "alerts" text the rules came from; NULL: none */
    int n_rules;
    struct qv_alert_rule rules[QV_ALERT_MAX_RULES];
    int idx[QV_ALERT_MAX_RULES];
    char **errs;
    int n_errs;
    struct firing *f;
    int n_f;
    bool changed; /* a transition since the state was last shared (cluster mode) */
};

static void state_fini(struct qv__alert_state *a)
{
    free(a->json);
    qv_alert_errors_free(a->errs, a->n_errs);
    free(a->f);
    a->json = NULL;
    a->errs = NULL;
    a->f = NULL;
    a->n_errs = a->n_f = a->n_rules = 0;
}

void qv__alerts_free(qv_control *c)
{
    for (int i = 0; i < c->n_alerts; i++)
        state_fini(&c->alerts[i]);
    free(c->alerts);
    c->alerts = NULL;
    c->n_alerts = 0;
}

static bool same_text(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* The model's state with rules parsed from 'json' (reparsed when it changed). */
static struct qv__alert_state *model_state(qv_control *c, const char *model, const char *json)
{
    struct qv__alert_state *a = NULL;

    for (int i = 0; i < c->n_alerts && a == NULL; i++)
        if (strcmp(c->alerts[i].model, model) == 0)
            a = &c->alerts[i];
    if (a == NULL) {
        c->alerts = qv_xrealloc(c->alerts, (size_t)(c->n_alerts + 1) * sizeof(*c->alerts));
        a = &c->alerts[c->n_alerts++];
        memset(a, 0, sizeof(*a));
        snprintf(a->model, sizeof(a->model), "%s", model);
    } else if (same_text(a->json, json)) {
        return a;
    }
    state_fini(a);
    a->json = json ? qv_xstrdup(json) : NULL;
    if (json != NULL)
        a->n_rules = qv_alert_rules_parse(json, a->rules, a->idx, &a->errs, &a->n_errs);
    if (a->n_rules < 0) {
        /* Out of memory: no rules this time, read again on the next call. */
        a->n_rules = 0;
        free(a->json);
        a->json = NULL;
    }
    for (int i = 0; i < a->n_errs; i++)
        qv_log(QV_LOG_WARN, "model=%s msg=\"alert rule ignored\" reason=\"%s\"", model, a->errs[i]);
    return a;
}

static struct firing *firing_of(struct qv__alert_state *a, int rule, int64_t version)
{
    for (int i = 0; i < a->n_f; i++)
        if (a->f[i].rule == rule && a->f[i].version == version)
            return &a->f[i];
    a->f = qv_xrealloc(a->f, (size_t)(a->n_f + 1) * sizeof(*a->f));
    memset(&a->f[a->n_f], 0, sizeof(a->f[0]));
    a->f[a->n_f].rule = rule;
    a->f[a->n_f].version = version;
    return &a->f[a->n_f++];
}

/* Records a transition: log, audit event, webhook. */
static void transition(qv_control *c, struct qv__alert_state *a, struct firing *f, bool fire,
                       bool has_value, double value, const struct qv_window *w)
{
    const struct qv_alert_rule *r = &a->rules[f->rule];
    json_t *o = json_object();
    int bad = o == NULL;
    struct qv_store_event ev;
    struct qv_diag d = {{0}};
    char *text;

    bad |= json_object_set_new(o, "status", json_string(fire ? "firing" : "resolved"));
    bad |= json_object_set_new(o, "model", json_string(a->model));
    bad |= json_object_set_new(o, "version", json_integer(f->version));
    bad |= json_object_set_new(o, "rule", json_string(r->name));
    bad |= json_object_set_new(o, "index", json_integer(a->idx[f->rule]));
    bad |= json_object_set_new(o, "metric", json_string(metric_names[r->metric]));
    bad |= json_object_set_new(o, "op", json_string(op_names[r->op]));
    bad |= json_object_set_new(o, "threshold", json_real(r->threshold));
    bad |= json_object_set_new(o, "value", has_value ? json_real(value) : json_null());
    bad |= json_object_set_new(o, "window_s", json_real(r->window_s));
    bad |= json_object_set_new(o, "requests", json_integer(w ? (json_int_t)w->requests : 0));
    bad |= json_object_set_new(o, "ts_ms", json_integer((json_int_t)qv__control_now_ms(c)));
    text = bad ? NULL
               : qv__json_dumps_checked(o, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                               JSON_REAL_PRECISION(8));
    json_decref(o);
    if (text == NULL) {
        /* Out of memory: the transition is not recorded, so the next
         * evaluation makes it again, with its event and webhook. */
        qv_log(QV_LOG_WARN, "model=%s version=%" PRId64 " alert=\"%s\" msg=\"alert %s: event "
               "skipped (out of memory); retried on the next evaluation\"", a->model, f->version,
               r->name, fire ? "firing" : "resolved");
        return;
    }
    qv_log(fire ? QV_LOG_WARN : QV_LOG_INFO, "model=%s version=%" PRId64 " alert=\"%s\" msg=\"%s\"",
           a->model, f->version, r->name, fire ? "alert firing" : "alert resolved");
    if (c->store != NULL) {
        char who[96];

        /* In a cluster, the node whose controller fired it: controller@NODE. */
        snprintf(who, sizeof(who), "controller%s%s", c->cluster ? "@" : "",
                 c->cluster ? qv_cluster_node(c->cluster) : "");
        memset(&ev, 0, sizeof(ev));
        ev.model = a->model;
        ev.who = who;
        ev.what = fire ? "alert.fire" : "alert.resolve";
        ev.new_value = text;
        if (qv_store_event_add(c->store, &ev, NULL, &d) != QV_OK)
            qv_log(QV_LOG_WARN, "model=%s msg=\"alert event not stored\" reason=\"%s\"", a->model,
                   d.msg);
    }
    if (r->webhook[0] && c->webhook != NULL)
        qv__webhook_post(c->webhook, r->webhook, text);
    free(text);
    f->firing = fire;
    f->since_ms = qv__control_now_ms(c);
    a->changed = true;
}

/* ---- Cluster mode: the controller's alert states, shared ---- */

#define ALERTS_NS "alerts"

/* Store the model's states (kv "alerts", key MODEL), for the other nodes to show. */
static bool share_state(qv_control *c, struct qv__alert_state *a)
{
    json_t *arr = json_array();
    struct qv_diag d = {{0}};
    bool ok = false;
    char *text;

    for (int k = 0; k < a->n_f; k++)
        json_array_append_new(arr, json_pack("{sisIsbsfsI}", "index", a->idx[a->f[k].rule],
                                             "version", (json_int_t)a->f[k].version, "firing",
                                             a->f[k].firing, "value", a->f[k].value, "since_ms",
                                             (json_int_t)a->f[k].since_ms));
    text = json_dumps(arr, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(arr);
    if (text != NULL) {
        ok = qv_store_kv_put(c->store, ALERTS_NS, a->model, text, &d) == QV_OK;
        if (!ok)
            qv_log(QV_LOG_WARN, "model=%s msg=\"alert state not shared; retrying next tick\" "
                                "reason=\"%s\"", a->model, d.msg);
    }
    free(text);
    return ok;
}

/* Replace the model's states with the stored ones; rules are matched by their index in the
 * model's "alerts" array (every node reads the same config.json). */
static void take_state(struct qv__alert_state *a, const char *text)
{
    json_t *arr = json_loads(text, 0, NULL), *e;
    size_t i;

    if (!json_is_array(arr)) {
        json_decref(arr);
        return;
    }
    a->n_f = 0;
    json_array_foreach(arr, i, e)
    {
        json_int_t idx = json_integer_value(json_object_get(e, "index"));
        json_int_t since = json_integer_value(json_object_get(e, "since_ms"));
        int64_t version = json_integer_value(json_object_get(e, "version"));

        for (int r = 0; r < a->n_rules; r++) {
            struct firing *f;
            if (a->idx[r] != idx)
                continue;
            f = firing_of(a, r, version);
            f->firing = json_is_true(json_object_get(e, "firing"));
            f->value = json_number_value(json_object_get(e, "value"));
            f->since_ms = since > 0 ? (uint64_t)since : 0;
        }
    }
    json_decref(arr);
}

void qv__alerts_follow(qv_control *c)
{
    struct qv_store_kv *kv = NULL;
    struct qv_diag d = {{0}};
    size_t n = 0;

    if (c->store == NULL || qv_store_kv_list(c->store, ALERTS_NS, &kv, &n, &d) != QV_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        struct qv_model_info mi;

        if (qv_engine_model_info(c->engine, kv[i].key, &mi) != QV_OK)
            continue;
        take_state(model_state(c, kv[i].key, mi.alerts_json), kv[i].value);
        qv_model_info_free(&mi);
    }
    qv_store_kv_free(kv, n);
}

static bool per_request(enum qv_alert_metric m)
{
    return m != QV_AM_MEMORY_BYTES && m != QV_AM_MEMORY_SHARE && m != QV_AM_REQUESTS;
}

static void eval_model(qv_control *c, struct qv__alert_state *a, const int64_t *ready, int n)
{
    uint64_t budget = qv_engine_memory_budget(c->engine);

    for (int i = 0; i < a->n_rules; i++) {
        const struct qv_alert_rule *r = &a->rules[i];
        for (int j = 0; j < n; j++) {
            struct qv_window w;
            struct firing *f;
            double value = 0;
            bool has, holds;
            if (r->version != 0 && r->version != ready[j])
                continue;
            if (qv_monitor_window(c->monitor, a->model, ready[j], r->window_s, &w) != QV_OK)
                continue;
            has = qv_alert_value(r->metric, &w, budget, &value);
            /* Too few requests for a per-request figure: no data, not a verdict. */
            if (per_request(r->metric) && w.requests < r->min_requests)
                has = false;
            holds = has && qv_alert_compare(r->op, value, r->threshold);
            f = firing_of(a, i, ready[j]);
            if (has)
                f->value = value;
            if (holds != f->firing)
                transition(c, a, f, holds, has, value, &w);
        }
    }
    /* Versions that are gone resolve. */
    for (int k = 0; k < a->n_f; k++) {
        bool present = false;
        for (int j = 0; j < n; j++)
            present = present || a->f[k].version == ready[j];
        if (!present && a->f[k].firing)
            transition(c, a, &a->f[k], false, false, 0, NULL);
    }
}

void qv__alerts_tick(qv_control *c)
{
    char(*names)[QV_MODEL_NAME_MAX] = NULL;
    int n = 0;

    qv_engine_model_names(c->engine, &names, &n);
    for (int i = 0; i < n; i++) {
        struct qv_model_info mi;
        struct qv__alert_state *a;
        int64_t ready[QV_MAX_VERSIONS];
        int k;
        if (qv_engine_model_info(c->engine, names[i], &mi) != QV_OK)
            continue;
        if (mi.alerts_json == NULL) {
            bool known = false;
            for (int j = 0; j < c->n_alerts; j++)
                known = known || strcmp(c->alerts[j].model, names[i]) == 0;
            if (!known) {
                qv_model_info_free(&mi);
                continue;
            }
        }
        a = model_state(c, names[i], mi.alerts_json);
        qv_model_info_free(&mi);
        k = qv_engine_ready_versions(c->engine, names[i], ready, QV_MAX_VERSIONS);
        eval_model(c, a, ready, k);
        if (c->cluster == NULL || c->store == NULL || (a->changed && share_state(c, a)))
            a->changed = false;
    }
    free(names);
}

/* ---- HTTP ---- */

int qv_control_alerts_json(qv_control *c, const char *model, char **json, struct qv_diag *d)
{
    struct qv_model_info mi;
    struct qv__alert_state *a;
    json_t *root, *rules, *errs;
    char ts[32];
    int bad;

    if (qv_engine_model_info(c->engine, model, &mi) != QV_OK)
        return qv_fail(d, QV_ENOENT, "unknown model \"%s\"", model);
    pthread_mutex_lock(&c->mu);
    a = model_state(c, model, mi.alerts_json);
    qv_model_info_free(&mi);
    root = json_object();
    rules = json_array();
    errs = json_array();
    bad = root == NULL;
    for (int i = 0; i < a->n_rules; i++) {
        const struct qv_alert_rule *r = &a->rules[i];
        json_t *o = json_object(), *vs = json_array();
        bool any = false;
        bad |= json_object_set_new(o, "index", json_integer(a->idx[i]));
        bad |= json_object_set_new(o, "name", json_string(r->name));
        bad |= json_object_set_new(o, "metric", json_string(metric_names[r->metric]));
        bad |= json_object_set_new(o, "op", json_string(op_names[r->op]));
        bad |= json_object_set_new(o, "threshold", json_real(r->threshold));
        bad |= json_object_set_new(o, "window_s", json_real(r->window_s));
        bad |= json_object_set_new(o, "min_requests", json_integer((json_int_t)r->min_requests));
        if (r->version)
            bad |= json_object_set_new(o, "version", json_integer(r->version));
        bad |= json_object_set_new(o, "webhook",
                                   r->webhook[0] ? json_string(r->webhook) : json_null());
        for (int k = 0; k < a->n_f; k++) {
            const struct firing *f = &a->f[k];
            json_t *fv;
            if (f->rule != i)
                continue;
            fv = json_object();
            any = any || f->firing;
            bad |= json_object_set_new(fv, "version", json_integer(f->version));
            bad |= json_object_set_new(fv, "state", json_string(f->firing ? "firing" : "ok"));
            bad |= json_object_set_new(fv, "value", json_real(f->value));
            if (f->since_ms) {
                qv_iso8601(f->since_ms, ts);
                bad |= json_object_set_new(fv, "since", json_string(ts));
            }
            bad |= json_array_append_new(vs, fv);
        }
        bad |= json_object_set_new(o, "state", json_string(any ? "firing" : "ok"));
        bad |= json_object_set_new(o, "versions", vs);
        bad |= json_array_append_new(rules, o);
    }
    for (int i = 0; i < a->n_errs; i++)
        bad |= json_array_append_new(errs, json_string(a->errs[i]));
    pthread_mutex_unlock(&c->mu);
    bad |= json_object_set_new(root, "model", json_string(model));
    bad |= json_object_set_new(root, "rules", rules);
    bad |= json_object_set_new(root, "errors", errs);
    *json = bad ? NULL
                : qv__json_dumps_checked(root, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                                   JSON_REAL_PRECISION(8));
    json_decref(root);
    if (*json == NULL)
        return qv_fail(d, QV_ENOMEM, "cannot encode the alerts of %s (out of memory)", model);
    return QV_OK;
}
