/* SPDX-License-Identifier: MIT
 *
 * router/route.c -- the route document: parsing, validation and canonical JSON.
 *
 * Validation is complete before anything is published: a document that parses here
 * can be picked from without further checks. Every error names the field
 * ("weights.canary: unknown label \"canary\"").
 */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router_int.h"

#define QV_LOG_MODULE "router"

static const char *const policy_names[] = {
    [QV_POLICY_DEFAULT] = "default",   [QV_POLICY_PINNED] = "pinned",
    [QV_POLICY_WEIGHTED] = "weighted", [QV_POLICY_STICKY] = "sticky",
    [QV_POLICY_COMPARE] = "compare",   [QV_POLICY_SCORE] = "score",
    [QV_POLICY_BANDIT] = "bandit",
};

static const char *const select_names[] = {
    [QV_SELECT_FIRST] = "first",
    [QV_SELECT_MEAN] = "mean",
    [QV_SELECT_MAJORITY] = "majority",
    [QV_SELECT_BEST_SCORE] = "best_score",
};

const char *qv_policy_name(enum qv_policy p)
{
    if ((unsigned)p < QV_ARRAY_LEN(policy_names))
        return policy_names[p];
    return "unknown";
}

const char *qv_select_name(enum qv_select s)
{
    if ((unsigned)s < QV_ARRAY_LEN(select_names))
        return select_names[s];
    return "unknown";
}

void qv_score_cfg_default(struct qv_score_cfg *c)
{
    c->w_latency = 0.5;
    c->w_resource = 0.3;
    c->w_error = 0.2;
    c->latency_slo_ms = 100.0;
    c->min_weight = 1.0;
    c->min_requests = 20;
    c->threshold = 1.0;
    c->step = 0.5;
}

enum qv_policy qv_route_policy(const qv_route *rt)
{
    return rt->policy;
}

void qv_route_free(qv_route *rt)
{
    free(rt);
}

/* ---- Names ---- */

bool qv__label_name_ok(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n >= QV_ROUTE_NAME_MAX)
        return false;
    if (!((name[0] >= 'A' && name[0] <= 'Z') || (name[0] >= 'a' && name[0] <= 'z') ||
          name[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

/* A version number written as decimal digits: 1 .. 10^18-1. */
static bool parse_version_text(const char *s, int64_t *v)
{
    size_t n = strlen(s);
    int64_t x = 0;

    if (n == 0 || n > 18)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        x = x * 10 + (s[i] - '0');
    }
    if (x <= 0)
        return false;
    *v = x;
    return true;
}

void qv__weights_bp(const double *w, int n, uint32_t *bp)
{
    double rem[QV_ROUTE_MAX_TARGETS];
    double sum = 0;
    int64_t total = 0;

    for (int i = 0; i < n; i++)
        sum += w[i] > 0 ? w[i] : 0;
    for (int i = 0; i < n; i++) {
        double x = sum > 0 ? (w[i] > 0 ? w[i] : 0) * 10000.0 / sum : 0;
        bp[i] = (uint32_t)floor(x);
        rem[i] = x - bp[i];
        total += bp[i];
    }
    /* Hand the missing hundredths to the largest remainders, first index on ties. */
    while (sum > 0 && total < 10000) {
        int best = 0;
        for (int i = 1; i < n; i++)
            if (rem[i] > rem[best])
                best = i;
        bp[best]++;
        rem[best] = -1.0;
        total++;
    }
}

void qv__round_weights(double *w, int n)
{
    uint32_t bp[QV_ROUTE_MAX_TARGETS];

    qv__weights_bp(w, n, bp);
    for (int i = 0; i < n; i++)
        w[i] = bp[i] / 100.0;
}

int qv__route_find_label(const struct qv_route *rt, const char *name)
{
    for (int i = 0; i < rt->n_labels; i++)
        if (strcmp(rt->labels[i].name, name) == 0)
            return i;
    return -1;
}

/* ---- Parsing ---- */

static int check_keys(json_t *obj, const char *field, const char *const *allowed, struct qv_diag *d)
{
    const char *key;
    json_t *v;

    json_object_foreach(obj, key, v)
    {
        bool ok = false;
        for (int i = 0; allowed[i] != NULL; i++)
            if (strcmp(key, allowed[i]) == 0)
                ok = true;
        if (!ok) {
            if (field[0] == '\0')
                return qv_fail(d, QV_EINVAL, "%s: unknown key", key);
            return qv_fail(d, QV_EINVAL, "%s.%s: unknown key", field, key);
        }
    }
    return 0;
}

/* A target from a JSON value (integer version, digit string or label name) or from an
 * object key (json NULL, text in 'key'). Labels must already be parsed. */
static int parse_target(const struct qv_route *rt, json_t *v, const char *key, const char *field,
                        struct qv__target *t, struct qv_diag *d)
{
    const char *s = key;
    int64_t ver;

    memset(t, 0, sizeof(*t));
    if (v != NULL && json_is_integer(v)) {
        ver = json_integer_value(v);
        if (ver <= 0)
            return qv_fail(d, QV_EINVAL, "%s: version must be a positive integer", field);
        t->version = ver;
        snprintf(t->name, sizeof(t->name), "%" PRId64, ver);
        return 0;
    }
    if (v != NULL) {
        if (!json_is_string(v))
            return qv_fail(d, QV_EINVAL, "%s: expected a version number or a label name", field);
        s = json_string_value(v);
    }
    if (parse_version_text(s, &ver)) {
        t->version = ver;
        snprintf(t->name, sizeof(t->name), "%" PRId64, ver);
        return 0;
    }
    if (!qv__label_name_ok(s))
        return qv_fail(d, QV_EINVAL, "%s: \"%.64s\" is neither a version number nor a label", field,
                       s);
    int li = qv__route_find_label(rt, s);
    if (li < 0)
        return qv_fail(d, QV_EINVAL, "%s: unknown label \"%s\"", field, s);
    t->is_label = true;
    snprintf(t->name, sizeof(t->name), "%s", s);
    t->version = rt->labels[li].version;
    return 0;
}

static int parse_labels(struct qv_route *rt, json_t *o, struct qv_diag *d)
{
    const char *key;
    json_t *v;

    if (!json_is_object(o))
        return qv_fail(d, QV_EINVAL, "labels: expected an object");
    if (json_object_size(o) > QV_ROUTE_MAX_LABELS)
        return qv_fail(d, QV_EINVAL, "labels: more than %d labels", QV_ROUTE_MAX_LABELS);
    json_object_foreach(o, key, v)
    {
        int64_t ver = 0;
        if (!qv__label_name_ok(key))
            return qv_fail(d, QV_EINVAL,
                           "labels.%.64s: a label name is a letter or '_' followed by up to "
                           "62 letters, digits, '_', '.', '-'",
                           key);
        if (json_is_integer(v))
            ver = json_integer_value(v);
        else if (json_is_string(v) && !parse_version_text(json_string_value(v), &ver))
            ver = 0;
        if (ver <= 0)
            return qv_fail(d, QV_EINVAL, "labels.%s: expected a positive version number", key);
        struct qv__label *l = &rt->labels[rt->n_labels++];
        snprintf(l->name, sizeof(l->name), "%s", key);
        l->version = ver;
    }
    return 0;
}

static int parse_weights(struct qv_route *rt, json_t *o, struct qv_diag *d)
{
    const char *key;
    json_t *v;
    double sum = 0;
    char field[QV_ROUTE_NAME_MAX + 16];
    int err;

    if (!json_is_object(o))
        return qv_fail(d, QV_EINVAL, "weights: expected an object");
    if (json_object_size(o) == 0)
        return qv_fail(d, QV_EINVAL, "weights: empty");
    if (json_object_size(o) > QV_ROUTE_MAX_TARGETS)
        return qv_fail(d, QV_EINVAL, "weights: more than %d targets", QV_ROUTE_MAX_TARGETS);
    json_object_foreach(o, key, v)
    {
        struct qv__weighted *w = &rt->weights[rt->n_weights];
        snprintf(field, sizeof(field), "weights.%.64s", key);
        err = parse_target(rt, NULL, key, field, &w->t, d);
        if (err)
            return err;
        if (!json_is_number(v))
            return qv_fail(d, QV_EINVAL, "%s: expected a number", field);
        w->weight = json_number_value(v);
        if (!isfinite(w->weight) || w->weight < 0)
            return qv_fail(d, QV_EINVAL, "%s: negative weight", field);
        if (w->weight > 100)
            return qv_fail(d, QV_EINVAL, "%s: weight above 100", field);
        sum += w->weight;
        rt->n_weights++;
    }
    if (fabs(sum - 100.0) > 1e-6)
        return qv_fail(d, QV_EINVAL, "weights: sum is %g, expected 100", sum);
    double w[QV_ROUTE_MAX_TARGETS] = {0};
    for (int i = 0; i < rt->n_weights; i++)
        w[i] = rt->weights[i].weight;
    qv__round_weights(w, rt->n_weights);
    for (int i = 0; i < rt->n_weights; i++)
        rt->weights[i].weight = w[i];
    return 0;
}

static int parse_sticky(struct qv_route *rt, json_t *o, struct qv_diag *d)
{
    static const char *const keys[] = {"header", "parameter", NULL};
    json_t *h, *p, *v;
    int err;

    if (!json_is_object(o))
        return qv_fail(d, QV_EINVAL, "sticky: expected an object");
    err = check_keys(o, "sticky", keys, d);
    if (err)
        return err;
    h = json_object_get(o, "header");
    p = json_object_get(o, "parameter");
    if ((h == NULL) == (p == NULL))
        return qv_fail(d, QV_EINVAL, "sticky: expected exactly one of header, parameter");
    v = h != NULL ? h : p;
    const char *field = h != NULL ? "sticky.header" : "sticky.parameter";
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        json_string_length(v) >= QV_ROUTE_NAME_MAX)
        return qv_fail(d, QV_EINVAL, "%s: expected a name of 1 to %d bytes", field,
                       QV_ROUTE_NAME_MAX - 1);
    rt->sticky_kind = h != NULL ? QV_STICKY_HEADER : QV_STICKY_PARAMETER;
    snprintf(rt->sticky_name, sizeof(rt->sticky_name), "%s", json_string_value(v));
    return 0;
}

static int parse_shadow(struct qv_route *rt, json_t *a, struct qv_diag *d)
{
    static const char *const keys[] = {"target", "percent", NULL};
    char field[48];
    size_t i;
    json_t *e;
    int err;

    if (!json_is_array(a))
        return qv_fail(d, QV_EINVAL, "shadow: expected an array");
    if (json_array_size(a) > QV_ROUTE_MAX_SHADOW)
        return qv_fail(d, QV_EINVAL, "shadow: more than %d targets", QV_ROUTE_MAX_SHADOW);
    json_array_foreach(a, i, e)
    {
        struct qv__shadow *s = &rt->shadow[rt->n_shadow];
        snprintf(field, sizeof(field), "shadow[%zu]", i);
        if (!json_is_object(e))
            return qv_fail(d, QV_EINVAL, "%s: expected an object", field);
        err = check_keys(e, field, keys, d);
        if (err)
            return err;
        json_t *t = json_object_get(e, "target");
        json_t *p = json_object_get(e, "percent");
        snprintf(field, sizeof(field), "shadow[%zu].target", i);
        if (t == NULL)
            return qv_fail(d, QV_EINVAL, "%s: required", field);
        err = parse_target(rt, t, NULL, field, &s->t, d);
        if (err)
            return err;
        snprintf(field, sizeof(field), "shadow[%zu].percent", i);
        s->percent = 100.0;
        if (p != NULL) {
            if (!json_is_number(p))
                return qv_fail(d, QV_EINVAL, "%s: expected a number", field);
            s->percent = json_number_value(p);
        }
        if (!isfinite(s->percent) || s->percent < 0 || s->percent > 100)
            return qv_fail(d, QV_EINVAL, "%s: must be between 0 and 100", field);
        rt->n_shadow++;
    }
    return 0;
}

static int get_real(json_t *o, const char *key, double lo, double hi, double *out,
                    struct qv_diag *d)
{
    json_t *v = json_object_get(o, key);

    if (v == NULL)
        return 0;
    if (!json_is_number(v))
        return qv_fail(d, QV_EINVAL, "score.%s: expected a number", key);
    double x = json_number_value(v);
    if (!isfinite(x) || x < lo || x > hi)
        return qv_fail(d, QV_EINVAL, "score.%s: must be between %g and %g", key, lo, hi);
    *out = x;
    return 0;
}

static int parse_score(struct qv_route *rt, json_t *o, struct qv_diag *d)
{
    static const char *const keys[] = {"w_latency",      "w_resource", "w_error",
                                       "latency_slo_ms", "min_weight", "min_requests",
                                       "threshold",      "step",       NULL};
    struct qv_score_cfg *c = &rt->score;
    double minreq = (double)c->min_requests;
    int err;

    if (!json_is_object(o))
        return qv_fail(d, QV_EINVAL, "score: expected an object");
    err = check_keys(o, "score", keys, d);
    if (!err)
        err = get_real(o, "w_latency", 0, 1e6, &c->w_latency, d);
    if (!err)
        err = get_real(o, "w_resource", 0, 1e6, &c->w_resource, d);
    if (!err)
        err = get_real(o, "w_error", 0, 1e6, &c->w_error, d);
    if (!err)
        err = get_real(o, "latency_slo_ms", 1e-6, 1e9, &c->latency_slo_ms, d);
    if (!err)
        err = get_real(o, "min_weight", 0, 100, &c->min_weight, d);
    if (!err)
        err = get_real(o, "min_requests", 0, 1e12, &minreq, d);
    if (!err)
        err = get_real(o, "threshold", 0, 100, &c->threshold, d);
    if (!err)
        err = get_real(o, "step", 1e-6, 1, &c->step, d);
    if (err)
        return err;
    if (c->w_latency + c->w_resource + c->w_error <= 0)
        return qv_fail(d, QV_EINVAL, "score: w_latency + w_resource + w_error must be > 0");
    c->min_requests = (uint64_t)minreq;
    rt->has_score = true;
    return 0;
}

static int parse_compare(struct qv_route *rt, json_t *o, struct qv_diag *d)
{
    static const char *const keys[] = {"targets", "select", NULL};
    char field[48];
    json_t *a, *s, *e;
    size_t i;
    int err;

    if (!json_is_object(o))
        return qv_fail(d, QV_EINVAL, "compare: expected an object");
    err = check_keys(o, "compare", keys, d);
    if (err)
        return err;
    a = json_object_get(o, "targets");
    if (!json_is_array(a) || json_array_size(a) == 0)
        return qv_fail(d, QV_EINVAL, "compare.targets: expected a non-empty array");
    if (json_array_size(a) > QV_ROUTE_MAX_COMPARE)
        return qv_fail(d, QV_EINVAL, "compare.targets: more than %d targets", QV_ROUTE_MAX_COMPARE);
    json_array_foreach(a, i, e)
    {
        snprintf(field, sizeof(field), "compare.targets[%zu]", i);
        err = parse_target(rt, e, NULL, field, &rt->compare[rt->n_compare], d);
        if (err)
            return err;
        rt->n_compare++;
    }
    rt->select = QV_SELECT_FIRST;
    s = json_object_get(o, "select");
    if (s != NULL) {
        bool found = false;
        if (json_is_string(s))
            for (unsigned k = 0; k < QV_ARRAY_LEN(select_names); k++)
                if (strcmp(json_string_value(s), select_names[k]) == 0) {
                    rt->select = (enum qv_select)k;
                    found = true;
                }
        if (!found)
            return qv_fail(d, QV_EINVAL,
                           "compare.select: expected first, mean, majority or best_score");
    }
    return 0;
}

static int parse_bandit(struct qv_route *rt, json_t *o, struct qv_diag *d)
{
    static const char *const keys[] = {"algorithm", "seed", NULL};
    json_t *a, *s;
    int err;

    if (!json_is_object(o))
        return qv_fail(d, QV_EINVAL, "bandit: expected an object");
    err = check_keys(o, "bandit", keys, d);
    if (err)
        return err;
    rt->has_bandit = true;
    a = json_object_get(o, "algorithm");
    if (a != NULL) {
        if (json_is_string(a) && strcmp(json_string_value(a), "thompson") == 0)
            rt->bandit_algo = QV__BANDIT_THOMPSON;
        else if (json_is_string(a) && strcmp(json_string_value(a), "ucb1") == 0)
            rt->bandit_algo = QV__BANDIT_UCB1;
        else
            return qv_fail(d, QV_EINVAL, "bandit.algorithm: expected thompson or ucb1");
    }
    s = json_object_get(o, "seed");
    if (s != NULL) {
        if (!json_is_integer(s) || json_integer_value(s) < 0)
            return qv_fail(d, QV_EINVAL, "bandit.seed: expected a non-negative integer");
        rt->bandit_seed = (uint64_t)json_integer_value(s);
    }
    return 0;
}

static int parse_policy(struct qv_route *rt, json_t *p, struct qv_diag *d)
{
    if (p == NULL)
        return qv_fail(d, QV_EINVAL, "policy: required");
    if (json_is_string(p))
        for (unsigned k = 0; k < QV_ARRAY_LEN(policy_names); k++)
            if (strcmp(json_string_value(p), policy_names[k]) == 0) {
                rt->policy = (enum qv_policy)k;
                return 0;
            }
    return qv_fail(d, QV_EINVAL,
                   "policy: unknown policy (expected default, pinned, weighted, sticky, "
                   "compare, score or bandit)");
}

/* What each policy needs from the document. */
static int check_policy_needs(const struct qv_route *rt, struct qv_diag *d)
{
    const char *name = qv_policy_name(rt->policy);

    switch (rt->policy) {
    case QV_POLICY_DEFAULT:
        break;
    case QV_POLICY_PINNED:
        if (!rt->has_target)
            return qv_fail(d, QV_EINVAL, "target: required by policy pinned");
        break;
    case QV_POLICY_STICKY:
        if (rt->sticky_kind == QV_STICKY_NONE)
            return qv_fail(d, QV_EINVAL, "sticky: required by policy sticky");
        /* fall through */
    case QV_POLICY_WEIGHTED:
    case QV_POLICY_SCORE:
        if (rt->n_weights == 0)
            return qv_fail(d, QV_EINVAL, "weights: required by policy %s", name);
        break;
    case QV_POLICY_COMPARE:
        if (rt->n_compare == 0)
            return qv_fail(d, QV_EINVAL, "compare: required by policy compare");
        break;
    case QV_POLICY_BANDIT:
        if (rt->n_weights == 0 && rt->n_compare == 0)
            return qv_fail(d, QV_EINVAL,
                           "weights: policy bandit needs its arms in weights or compare.targets");
        break;
    }
    if (rt->policy == QV_POLICY_SCORE && rt->score.min_weight * rt->n_weights > 100.0)
        return qv_fail(d, QV_EINVAL, "score.min_weight: %d versions x %g exceeds 100",
                       rt->n_weights, rt->score.min_weight);
    return 0;
}

static int route_from_json(json_t *root, struct qv_route *rt, struct qv_diag *d)
{
    static const char *const keys[] = {"policy", "target", "labels",  "weights", "sticky",
                                       "shadow", "score",  "compare", "bandit",  NULL};
    json_t *v;
    int err;

    if (!json_is_object(root))
        return qv_fail(d, QV_EINVAL, "route: expected a JSON object");
    err = check_keys(root, "", keys, d);
    if (err)
        return err;
    err = parse_policy(rt, json_object_get(root, "policy"), d);
    if (err)
        return err;
    v = json_object_get(root, "labels");
    if (v != NULL && (err = parse_labels(rt, v, d)) != 0)
        return err;
    v = json_object_get(root, "target");
    if (v != NULL) {
        err = parse_target(rt, v, NULL, "target", &rt->target, d);
        if (err)
            return err;
        rt->has_target = true;
    }
    v = json_object_get(root, "weights");
    if (v != NULL && (err = parse_weights(rt, v, d)) != 0)
        return err;
    v = json_object_get(root, "sticky");
    if (v != NULL && (err = parse_sticky(rt, v, d)) != 0)
        return err;
    v = json_object_get(root, "shadow");
    if (v != NULL && (err = parse_shadow(rt, v, d)) != 0)
        return err;
    v = json_object_get(root, "score");
    if (v != NULL && (err = parse_score(rt, v, d)) != 0)
        return err;
    v = json_object_get(root, "compare");
    if (v != NULL && (err = parse_compare(rt, v, d)) != 0)
        return err;
    v = json_object_get(root, "bandit");
    if (v != NULL && (err = parse_bandit(rt, v, d)) != 0)
        return err;
    return check_policy_needs(rt, d);
}

int qv_route_parse(const char *json_text, const char *model, const struct qv_resolver *res,
                   qv_route **out, struct qv_diag *d)
{
    struct qv_route *rt = NULL;
    json_error_t jerr;
    json_t *root = NULL;
    int err;

    if (model == NULL)
        model = "";
    root = json_loads(json_text != NULL ? json_text : "", JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        err = qv_fail(d, QV_EINVAL, "route: invalid JSON at line %d column %d: %s", jerr.line,
                      jerr.column, jerr.text);
        goto out;
    }
    rt = qv_xcalloc(1, sizeof(*rt));
    qv_score_cfg_default(&rt->score);
    rt->bandit_algo = QV__BANDIT_THOMPSON;
    rt->bandit_seed = 1;
    err = route_from_json(root, rt, d);
    if (err)
        goto out;
    err = qv__route_resolve(rt, model, res, d);
    if (err)
        goto out;
    *out = rt;
    rt = NULL;
out:
    free(rt);
    json_decref(root);
    return err;
}

/* ---- Resolution ---- */

static int resolve_one(const struct qv_route *rt, struct qv__target *t, const char *field,
                       const char *model, const struct qv_resolver *res, struct qv_diag *d)
{
    if (t->is_label) {
        int li = qv__route_find_label(rt, t->name);
        if (li < 0)
            return qv_fail(d, QV_EINVAL, "%s: unknown label \"%s\"", field, t->name);
        t->version = rt->labels[li].version;
    }
    if (res != NULL && res->is_ready != NULL && !res->is_ready(res->ud, model, t->version))
        return qv_fail(d, QV_EINVAL, "%s: version %" PRId64 " of model %s is not READY", field,
                       t->version, model);
    return 0;
}

int qv__route_resolve(struct qv_route *rt, const char *model, const struct qv_resolver *res,
                      struct qv_diag *d)
{
    char field[QV_ROUTE_NAME_MAX + 32];
    int err;

    /* Labels that no target uses are not checked: a label may keep pointing at a
     * version that was unloaded (e.g. "previous") without blocking route changes. */
    if (rt->has_target) {
        err = resolve_one(rt, &rt->target, "target", model, res, d);
        if (err)
            return err;
    }
    for (int i = 0; i < rt->n_weights; i++) {
        snprintf(field, sizeof(field), "weights.%s", rt->weights[i].t.name);
        err = resolve_one(rt, &rt->weights[i].t, field, model, res, d);
        if (err)
            return err;
        for (int j = 0; j < i; j++)
            if (rt->weights[j].t.version == rt->weights[i].t.version)
                return qv_fail(d, QV_EINVAL, "%s: version %" PRId64 " is also weights.%s", field,
                               rt->weights[i].t.version, rt->weights[j].t.name);
    }
    for (int i = 0; i < rt->n_shadow; i++) {
        snprintf(field, sizeof(field), "shadow[%d].target", i);
        err = resolve_one(rt, &rt->shadow[i].t, field, model, res, d);
        if (err)
            return err;
    }
    for (int i = 0; i < rt->n_compare; i++) {
        snprintf(field, sizeof(field), "compare.targets[%d]", i);
        err = resolve_one(rt, &rt->compare[i], field, model, res, d);
        if (err)
            return err;
        for (int j = 0; j < i; j++)
            if (rt->compare[j].version == rt->compare[i].version)
                return qv_fail(d, QV_EINVAL, "%s: version %" PRId64 " is also compare.targets[%d]",
                               field, rt->compare[i].version, j);
    }
    return 0;
}

const char *qv__route_label_user(const struct qv_route *rt, const char *name, char *buf, size_t n)
{
    if (rt->has_target && rt->target.is_label && strcmp(rt->target.name, name) == 0) {
        snprintf(buf, n, "target");
        return buf;
    }
    for (int i = 0; i < rt->n_weights; i++)
        if (rt->weights[i].t.is_label && strcmp(rt->weights[i].t.name, name) == 0) {
            snprintf(buf, n, "weights.%s", name);
            return buf;
        }
    for (int i = 0; i < rt->n_shadow; i++)
        if (rt->shadow[i].t.is_label && strcmp(rt->shadow[i].t.name, name) == 0) {
            snprintf(buf, n, "shadow[%d].target", i);
            return buf;
        }
    for (int i = 0; i < rt->n_compare; i++)
        if (rt->compare[i].is_label && strcmp(rt->compare[i].name, name) == 0) {
            snprintf(buf, n, "compare.targets[%d]", i);
            return buf;
        }
    return NULL;
}

/* ---- Canonical JSON ---- */

/* Weights keep at most two decimals; integral values print as integers. */
static json_t *number(double x)
{
    double r = round(x * 100.0) / 100.0;

    if (r == floor(r) && fabs(r) < 1e15)
        return json_integer((json_int_t)r);
    return json_real(r);
}

static int add(json_t *o, const char *key, json_t *v)
{
    return v == NULL || json_object_set_new(o, key, v) != 0 ? QV_ENOMEM : 0;
}

/* a and b are the same document, reals compared to the 12 digits they are
 * written with. */
static bool same_doc(json_t *a, json_t *b)
{
    const char *k;
    json_t *v;
    size_t i;

    if (json_is_number(a) && json_is_number(b)) {
        double x = json_number_value(a), y = json_number_value(b);
        return fabs(x - y) <= 1e-11 * fmax(1.0, fabs(x));
    }
    if (json_typeof(a) != json_typeof(b))
        return false;
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b))
            return false;
        json_object_foreach(a, k, v) {
            json_t *w = json_object_get(b, k);
            if (w == NULL || !same_doc(v, w))
                return false;
        }
        return true;
    }
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return false;
        json_array_foreach(a, i, v) {
            if (!same_doc(v, json_array_get(b, i)))
                return false;
        }
        return true;
    }
    return json_equal(a, b);
}

int qv_route_to_json(const qv_route *rt, char **json)
{
    json_t *root = json_object(), *o = NULL, *a = NULL;
    int err = 0;

    if (root == NULL)
        return QV_ENOMEM;
    err |= add(root, "policy", json_string(qv_policy_name(rt->policy)));
    if (rt->has_target)
        err |= add(root, "target", json_string(rt->target.name));
    if (rt->n_labels > 0) {
        o = json_object();
        for (int i = 0; o != NULL && i < rt->n_labels; i++)
            err |= add(o, rt->labels[i].name, json_integer(rt->labels[i].version));
        err |= add(root, "labels", o);
    }
    if (rt->n_weights > 0) {
        o = json_object();
        for (int i = 0; o != NULL && i < rt->n_weights; i++)
            err |= add(o, rt->weights[i].t.name, number(rt->weights[i].weight));
        err |= add(root, "weights", o);
    }
    if (rt->sticky_kind != QV_STICKY_NONE) {
        o = json_object();
        if (o != NULL)
            err |= add(o, rt->sticky_kind == QV_STICKY_HEADER ? "header" : "parameter",
                       json_string(rt->sticky_name));
        err |= add(root, "sticky", o);
    }
    if (rt->n_shadow > 0) {
        a = json_array();
        for (int i = 0; a != NULL && i < rt->n_shadow; i++) {
            o = json_object();
            if (o != NULL) {
                err |= add(o, "target", json_string(rt->shadow[i].t.name));
                err |= add(o, "percent", number(rt->shadow[i].percent));
            }
            if (o == NULL || json_array_append_new(a, o) != 0)
                err = QV_ENOMEM;
        }
        err |= add(root, "shadow", a);
    }
    if (rt->has_score) {
        const struct qv_score_cfg *c = &rt->score;
        o = json_object();
        if (o != NULL) {
            err |= add(o, "w_latency", json_real(c->w_latency));
            err |= add(o, "w_resource", json_real(c->w_resource));
            err |= add(o, "w_error", json_real(c->w_error));
            err |= add(o, "latency_slo_ms", json_real(c->latency_slo_ms));
            err |= add(o, "min_weight", json_real(c->min_weight));
            err |= add(o, "min_requests", json_integer((json_int_t)c->min_requests));
            err |= add(o, "threshold", json_real(c->threshold));
            err |= add(o, "step", json_real(c->step));
        }
        err |= add(root, "score", o);
    }
    if (rt->n_compare > 0) {
        o = json_object();
        a = json_array();
        for (int i = 0; a != NULL && i < rt->n_compare; i++)
            if (json_array_append_new(a, json_string(rt->compare[i].name)) != 0)
                err = QV_ENOMEM;
        if (o != NULL) {
            err |= add(o, "targets", a);
            err |= add(o, "select", json_string(qv_select_name(rt->select)));
        } else {
            json_decref(a);
        }
        err |= add(root, "compare", o);
    }
    if (rt->has_bandit) {
        o = json_object();
        if (o != NULL) {
            err |= add(o, "algorithm",
                       json_string(rt->bandit_algo == QV__BANDIT_UCB1 ? "ucb1" : "thompson"));
            err |= add(o, "seed", json_integer((json_int_t)rt->bandit_seed));
        }
        err |= add(root, "bandit", o);
    }
    if (err == 0) {
        json_t *back;

        *json = json_dumps(root, JSON_PRESERVE_ORDER | JSON_COMPACT | JSON_REAL_PRECISION(12));
        /* jansson's encoder can leave a key out when it runs out of memory and
         * still return text: the text is what gets saved, so it must read back
         * as the same document. */
        back = *json ? json_loads(*json, 0, NULL) : NULL;
        if (back == NULL || !same_doc(root, back)) {
            free(*json);
            *json = NULL;
            err = QV_ENOMEM;
        }
        json_decref(back);
    } else {
        err = QV_ENOMEM;
    }
    json_decref(root);
    return err;
}
