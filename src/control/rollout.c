/* SPDX-License-Identifier: MIT
 *
 * The rollout controller's driver: plans started and aborted over HTTP, one
 * decision per tick (stats.c decides; this file observes and acts), route
 * documents built for each step, and the state persisted in the store's kv
 * namespace "rollout" so a restart resumes where it stopped.
 *
 * Order of a change, so that a store failure never leaves traffic on a route
 * that is not recorded: validate the new document, persist the rollout state,
 * persist the route, swap it in the router, then append the audit event. A
 * failure before the swap undoes what was written (best effort) and the tick
 * retries; the audit event is logged if it cannot be stored (the change has
 * happened).
 */
#include "control_int.h"

#define QV_LOG_MODULE "control"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum ro_state { RO_RUNNING, RO_PROMOTED, RO_ROLLED_BACK, RO_ABORTED };

static const char *const state_names[] = {"running", "promoted", "rolled_back", "aborted"};

struct qv__rollout {
    char model[QV_MODEL_NAME_MAX];
    struct qv_rollout_plan plan;
    int64_t stable;
    enum ro_state state;
    int step;
    uint64_t started_ms, step_started_ms, ended_ms;
    char *route; /* canonical route document last published by the rollout; NULL: none */
    struct qv_rollout_ref ref;
    bool has_last;
    struct qv_rollout_verdict last;
    char reason[256];
    char warning[256]; /* a guard of the plan that can never act; "" when none */
    /* In memory only: counters at the start of the step (zero after a restart:
     * the monitor starts from zero too). */
    struct qv_vstats_snap base_canary, base_stable;
    uint64_t base_agree_count, base_agree_n;
};

/* ---- Helpers ---- */

static struct qv__rollout *find(qv_control *c, const char *model)
{
    for (int i = 0; i < c->n_rollouts; i++)
        if (strcmp(c->rollouts[i].model, model) == 0)
            return &c->rollouts[i];
    return NULL;
}

static struct qv__rollout *find_or_add(qv_control *c, const char *model)
{
    struct qv__rollout *ro = find(c, model);

    if (ro != NULL)
        return ro;
    c->rollouts = qv_xrealloc(c->rollouts, (size_t)(c->n_rollouts + 1) * sizeof(*c->rollouts));
    ro = &c->rollouts[c->n_rollouts++];
    memset(ro, 0, sizeof(*ro));
    snprintf(ro->model, sizeof(ro->model), "%s", model);
    return ro;
}

static void ro_fini(struct qv__rollout *ro)
{
    free(ro->route);
    ro->route = NULL;
}

void qv__rollout_free(qv_control *c)
{
    for (int i = 0; i < c->n_rollouts; i++)
        ro_fini(&c->rollouts[i]);
    free(c->rollouts);
    c->rollouts = NULL;
    c->n_rollouts = 0;
}

static double canary_weight(const struct qv__rollout *ro)
{
    switch (ro->state) {
    case RO_RUNNING:
        return ro->plan.steps[ro->step];
    case RO_PROMOTED:
        return 100;
    default:
        return 0;
    }
}

/* The documents below are built with every json_object_set_new and
 * json_array_append_new checked ('bad' collects their -1: a value jansson
 * could not allocate, or a failed insertion), so that running out of memory
 * gives no document at all, never one with keys missing. */
static char *dumps(json_t *j)
{
    return qv__json_dumps_checked(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
}

static json_t *figures_json(const struct qv_rollout_figures *f)
{
    json_t *o = json_object();
    int bad = o == NULL;

    bad |= json_object_set_new(o, "enough_requests", json_boolean(f->enough));
    bad |= json_object_set_new(o, "canary_requests", json_integer((json_int_t)f->canary_requests));
    bad |= json_object_set_new(o, "canary_errors", json_integer((json_int_t)f->canary_errors));
    bad |= json_object_set_new(o, "canary_answered", json_integer((json_int_t)f->canary_answered));
    bad |= json_object_set_new(o, "canary_bad_input",
                               json_integer((json_int_t)f->canary_bad_input));
    bad |= json_object_set_new(o, "canary_bad_input_rate", json_real(f->canary_bad_input_rate));
    bad |= json_object_set_new(o, "stable_bad_input",
                               json_integer((json_int_t)f->stable_bad_input));
    bad |= json_object_set_new(o, "stable_bad_input_rate",
                               f->bad_input_evaluated ? json_real(f->stable_bad_input_rate)
                                                      : json_null());
    bad |= json_object_set_new(o, "canary_error_rate", json_real(f->canary_error_rate));
    bad |= json_object_set_new(o, "stable_source",
                               json_string(f->stable_source ? f->stable_source : "none"));
    bad |= json_object_set_new(o, "stable_requests", json_integer((json_int_t)f->stable_requests));
    bad |= json_object_set_new(o, "stable_errors", json_integer((json_int_t)f->stable_errors));
    bad |= json_object_set_new(o, "stable_error_rate", json_real(f->stable_error_rate));
    bad |= json_object_set_new(o, "error_rate_delta", json_real(f->error_rate_delta));
    bad |= json_object_set_new(o, "z", json_real(f->z));
    bad |= json_object_set_new(o, "p_value", json_real(f->p_value));
    bad |= json_object_set_new(o, "canary_p99_ms", json_real(f->canary_p99_ms));
    bad |= json_object_set_new(o, "stable_p99_ms", json_real(f->stable_p99_ms));
    bad |= json_object_set_new(o, "p99_ratio",
                               f->p99_evaluated ? json_real(f->p99_ratio) : json_null());
    bad |= json_object_set_new(o, "shadow_agreement",
                               f->agreement >= 0 ? json_real(f->agreement) : json_null());
    bad |= json_object_set_new(o, "shadow_comparisons", json_integer((json_int_t)f->agreement_n));
    bad |= json_object_set_new(o, "error_breach", json_boolean(f->error_breach));
    bad |= json_object_set_new(o, "p99_breach", json_boolean(f->p99_breach));
    bad |= json_object_set_new(o, "agreement_breach", json_boolean(f->agreement_breach));
    bad |= json_object_set_new(o, "bad_input_breach", json_boolean(f->bad_input_breach));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *iso(uint64_t ms)
{
    char ts[32];

    if (ms == 0)
        return json_null();
    qv_iso8601(ms, ts);
    return json_string(ts);
}

/* The rollout as JSON: what is persisted and what GET .../rollout shows. */
static json_t *ro_json(const struct qv__rollout *ro)
{
    json_t *o = json_object(), *w = json_object(), *plan = NULL, *ref = json_object();
    char *plan_text = qv_rollout_plan_json(&ro->plan);
    double cw = canary_weight(ro);
    int bad = o == NULL;

    if (plan_text != NULL)
        plan = json_loads(plan_text, 0, NULL);
    free(plan_text);
    bad |= json_object_set_new(o, "model", json_string(ro->model));
    bad |= json_object_set_new(o, "state", json_string(state_names[ro->state]));
    bad |= json_object_set_new(o, "canary", json_integer(ro->plan.canary));
    bad |= json_object_set_new(o, "stable", json_integer(ro->stable));
    bad |= json_object_set_new(o, "step", json_integer(ro->step));
    bad |= json_object_set_new(o, "n_steps", json_integer(ro->plan.n_steps));
    bad |= json_object_set_new(w, "stable", json_real(100 - cw));
    bad |= json_object_set_new(w, "canary", json_real(cw));
    bad |= json_object_set_new(o, "weights", w);
    bad |= json_object_set_new(o, "started_ms", json_integer((json_int_t)ro->started_ms));
    bad |= json_object_set_new(o, "step_started_ms", json_integer((json_int_t)ro->step_started_ms));
    bad |= json_object_set_new(o, "ended_ms", json_integer((json_int_t)ro->ended_ms));
    bad |= json_object_set_new(o, "started", iso(ro->started_ms));
    bad |= json_object_set_new(o, "step_started", iso(ro->step_started_ms));
    bad |= json_object_set_new(o, "ended", iso(ro->ended_ms));
    bad |= json_object_set_new(o, "plan", plan); /* NULL (out of memory): bad */
    bad |= json_object_set_new(ref, "requests", json_integer((json_int_t)ro->ref.requests));
    bad |= json_object_set_new(ref, "errors", json_integer((json_int_t)ro->ref.errors));
    bad |= json_object_set_new(ref, "bad_input", json_integer((json_int_t)ro->ref.bad_input));
    bad |= json_object_set_new(ref, "latency_count",
                               json_integer((json_int_t)ro->ref.latency_count));
    bad |= json_object_set_new(ref, "p99_ms", json_real(ro->ref.p99_ms));
    bad |= json_object_set_new(o, "stable_reference", ref);
    bad |= json_object_set_new(o, "route", ro->route ? json_string(ro->route) : json_null());
    bad |= json_object_set_new(o, "reason", json_string(ro->reason));
    {
        json_t *warnings = json_array();
        if (ro->warning[0] != '\0')
            bad |= json_array_append_new(warnings, json_string(ro->warning));
        bad |= json_object_set_new(o, "warnings", warnings);
    }
    if (ro->has_last) {
        json_t *last = figures_json(&ro->last.f);
        bad |= last == NULL;
        bad |= json_object_set_new(last, "decision",
                                   json_string(qv_rollout_action_name(ro->last.action)));
        bad |= json_object_set_new(last, "detail", json_string(ro->last.reason));
        bad |= json_object_set_new(o, "last", last);
    } else {
        bad |= json_object_set_new(o, "last", json_null());
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The rollout's JSON text, or NULL when it cannot be built (out of memory). */
static char *ro_text(const struct qv__rollout *ro)
{
    json_t *o = ro_json(ro);
    char *s = dumps(o);

    json_decref(o);
    return s;
}

static uint64_t jint(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

/* Restores a rollout from its persisted JSON. QV_EINVAL when unreadable. */
static int ro_from_json(const char *model, const char *text, struct qv__rollout *ro)
{
    json_t *o = json_loads(text, 0, NULL), *v, *ref;
    struct qv_diag d = {{0}};
    char *plan = NULL;
    int err = QV_EINVAL;

    memset(ro, 0, sizeof(*ro));
    snprintf(ro->model, sizeof(ro->model), "%s", model);
    if (o == NULL)
        return QV_EINVAL;
    v = json_object_get(o, "plan");
    if (v == NULL)
        goto out;
    plan = json_dumps(v, JSON_COMPACT);
    if (plan == NULL || qv_rollout_plan_parse(plan, &ro->plan, &d) != QV_OK)
        goto out;
    v = json_object_get(o, "state");
    ro->state = RO_ABORTED;
    for (unsigned i = 0; json_is_string(v) && i < QV_ARRAY_LEN(state_names); i++)
        if (strcmp(json_string_value(v), state_names[i]) == 0)
            ro->state = (enum ro_state)i;
    ro->stable = (int64_t)jint(o, "stable");
    ro->step = (int)jint(o, "step");
    if (ro->step >= ro->plan.n_steps || ro->stable <= 0)
        goto out;
    ro->started_ms = jint(o, "started_ms");
    ro->step_started_ms = jint(o, "step_started_ms");
    ro->ended_ms = jint(o, "ended_ms");
    v = json_object_get(o, "route");
    ro->route = json_is_string(v) ? qv_xstrdup(json_string_value(v)) : NULL;
    v = json_object_get(o, "reason");
    snprintf(ro->reason, sizeof(ro->reason), "%s", json_is_string(v) ? json_string_value(v) : "");
    v = json_array_get(json_object_get(o, "warnings"), 0);
    snprintf(ro->warning, sizeof(ro->warning), "%s", json_is_string(v) ? json_string_value(v) : "");
    ref = json_object_get(o, "stable_reference");
    ro->ref.requests = jint(ref, "requests");
    ro->ref.errors = jint(ref, "errors");
    ro->ref.bad_input = jint(ref, "bad_input");
    ro->ref.latency_count = jint(ref, "latency_count");
    ro->ref.p99_ms = json_number_value(json_object_get(ref, "p99_ms"));
    err = QV_OK;
out:
    free(plan);
    json_decref(o);
    return err;
}

/* ---- Effective route weights ---- */

static int64_t label_version(json_t *labels, const char *name)
{
    json_t *v = json_object_get(labels, name);

    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    return 0;
}

static int64_t target_version(json_t *labels, const char *name)
{
    char *end;
    long long x = strtoll(name, &end, 10);

    if (*name && *end == '\0')
        return x;
    return label_version(labels, name);
}

void qv_control_route_weights(qv_control *c, const char *model, const int64_t *versions, int n,
                              double *weights)
{
    char *doc = NULL;
    json_t *root = NULL, *labels, *v;
    double sum = 0;

    for (int i = 0; i < n; i++)
        weights[i] = 0;
    if (n == 0)
        return;
    if (qv_router_get_route(c->router, model, &doc) == QV_OK)
        root = json_loads(doc, 0, NULL);
    free(doc);
    labels = json_object_get(root, "labels");
    v = json_object_get(root, "policy");
    if (root != NULL && json_is_string(v) && strcmp(json_string_value(v), "default") != 0) {
        const char *pol = json_string_value(v);
        if (strcmp(pol, "pinned") == 0) {
            json_t *t = json_object_get(root, "target");
            int64_t tv = json_is_string(t) ? target_version(labels, json_string_value(t)) : 0;
            for (int i = 0; i < n; i++)
                weights[i] = versions[i] == tv ? 100 : 0;
        } else if (strcmp(pol, "compare") == 0) {
            json_t *t =
                json_array_get(json_object_get(json_object_get(root, "compare"), "targets"), 0);
            int64_t tv = json_is_string(t) ? target_version(labels, json_string_value(t))
                                           : (json_is_integer(t) ? json_integer_value(t) : 0);
            for (int i = 0; i < n; i++)
                weights[i] = versions[i] == tv ? 100 : 0;
        } else {
            const char *key;
            json_t *w;
            json_object_foreach(json_object_get(root, "weights"), key, w)
            {
                int64_t tv = target_version(labels, key);
                for (int i = 0; i < n; i++)
                    if (versions[i] == tv)
                        weights[i] += json_number_value(w);
            }
        }
    }
    json_decref(root);
    for (int i = 0; i < n; i++)
        sum += weights[i];
    if (sum <= 0) {
        /* Default, or no routed version READY: the highest READY version. */
        int hi = 0;
        for (int i = 1; i < n; i++)
            if (versions[i] > versions[hi])
                hi = i;
        weights[hi] = 100;
        return;
    }
    for (int i = 0; i < n; i++)
        weights[i] = weights[i] * 100.0 / sum;
}

/* ---- Route documents ---- */

enum doc_kind { DOC_STEP, DOC_PROMOTE, DOC_BACK };

/* Builds the model's next route document from the current one: labels kept
 * (stable and canary set or removed), shadow entries kept (those naming the
 * canary label dropped when it goes), sticky kept, policy weighted (sticky
 * stays sticky), weights {"stable": 100 - w, "canary": w}; target, compare,
 * score and bandit are dropped. *out is malloc'ed. QV_ENOMEM (and *out NULL)
 * when the document cannot be built. */
static int build_doc(qv_control *c, const struct qv__rollout *ro, enum doc_kind kind, double w,
                     char **out, struct qv_diag *d)
{
    char *cur = NULL;
    json_t *root = NULL, *labels, *weights = json_object(), *pol, *shadow;
    bool sticky;
    int bad = weights == NULL;

    *out = NULL;
    if (qv_router_get_route(c->router, ro->model, &cur) == QV_OK) {
        json_error_t jerr;
        root = json_loads(cur, 0, &jerr);
        /* The route in force always parses: failing here is running out of
         * memory, and a document built from nothing would drop its labels. */
        if (root == NULL && cur != NULL)
            bad = 1;
    }
    free(cur);
    if (!bad && !json_is_object(root)) {
        json_decref(root);
        root = json_object();
        bad = root == NULL;
    }
    pol = json_object_get(root, "policy");
    sticky = json_is_string(pol) && strcmp(json_string_value(pol), "sticky") == 0;
    bad |= json_object_set_new(root, "policy", json_string(sticky ? "sticky" : "weighted"));
    json_object_del(root, "target");
    json_object_del(root, "compare");
    json_object_del(root, "score");
    json_object_del(root, "bandit");
    labels = json_object_get(root, "labels");
    if (!json_is_object(labels)) {
        labels = json_object();
        json_incref(labels); /* still used below when the insertion fails */
        bad |= json_object_set_new(root, "labels", labels);
    } else {
        json_incref(labels);
    }
    if (kind == DOC_STEP) {
        bad |= json_object_set_new(labels, "stable", json_integer(ro->stable));
        bad |= json_object_set_new(labels, "canary", json_integer(ro->plan.canary));
        bad |= json_object_set_new(weights, "stable", json_real(100 - w));
        bad |= json_object_set_new(weights, "canary", json_real(w));
    } else {
        size_t i = 0;
        bad |= json_object_set_new(labels, "stable",
                                   json_integer(kind == DOC_PROMOTE ? ro->plan.canary
                                                                    : ro->stable));
        json_object_del(labels, "canary");
        bad |= json_object_set_new(weights, "stable", json_integer(100));
        shadow = json_object_get(root, "shadow");
        while (json_is_array(shadow) && i < json_array_size(shadow)) {
            json_t *t = json_object_get(json_array_get(shadow, i), "target");
            if (json_is_string(t) && strcmp(json_string_value(t), "canary") == 0)
                json_array_remove(shadow, i);
            else
                i++;
        }
        if (json_is_array(shadow) && json_array_size(shadow) == 0)
            json_object_del(root, "shadow");
    }
    json_decref(labels);
    bad |= json_object_set_new(root, "weights", weights);
    if (!bad)
        *out = dumps(root);
    json_decref(root);
    if (*out == NULL)
        return qv_fail(d, QV_ENOMEM, "cannot build the route document of %s (out of memory)",
                       ro->model);
    return QV_OK;
}

/* True when the route document 'doc' copies traffic to the canary as a shadow
 * (a "shadow" entry whose target is the "canary" label or the canary's number):
 * only then are stable and canary compared, so that min_shadow_agreement can act. */
static bool doc_shadows_canary(const char *doc, int64_t canary)
{
    json_t *root = json_loads(doc, 0, NULL), *e;
    size_t i;
    bool found = false;

    json_array_foreach(json_object_get(root, "shadow"), i, e)
    {
        json_t *t = json_object_get(e, "target");
        if (json_is_string(t) && (strcmp(json_string_value(t), "canary") == 0 ||
                                  strtoll(json_string_value(t), NULL, 10) == canary))
            found = true;
        if (json_is_integer(t) && json_integer_value(t) == canary)
            found = true;
    }
    json_decref(root);
    return found;
}

/* ---- Applying a change ---- */

static void audit(qv_control *c, const char *who, const char *model, const char *what,
                  const char *old_value, const char *new_value)
{
    struct qv_store_event ev;
    struct qv_diag d = {{0}};
    char who_node[160];

    if (new_value == NULL) {
        /* Its body could not be built: the change stands, its event is skipped. */
        qv_log(QV_LOG_WARN, "model=%s what=%s msg=\"audit event skipped: out of memory\"", model,
               what);
        return;
    }
    qv_log(QV_LOG_INFO, "model=%s what=%s msg=\"%s\"", model, what, new_value);
    if (c->store == NULL)
        return;
    /* In a cluster, the controller's decisions name the node that made them. */
    if (c->cluster != NULL && strcmp(who, "controller") == 0) {
        snprintf(who_node, sizeof(who_node), "controller@%s", qv_cluster_node(c->cluster));
        who = who_node;
    }
    memset(&ev, 0, sizeof(ev));
    ev.model = (char *)model;
    ev.who = (char *)who;
    ev.what = (char *)what;
    ev.old_value = (char *)old_value;
    ev.new_value = (char *)new_value;
    if (qv_store_event_add(c->store, &ev, NULL, &d) != QV_OK)
        qv_log(QV_LOG_WARN, "model=%s what=%s msg=\"audit event not stored\" reason=\"%s\"", model,
               what, d.msg);
}

static int persist_state(qv_control *c, const struct qv__rollout *ro, struct qv_diag *d)
{
    char *text;
    int err;

    if (c->store == NULL)
        return QV_OK;
    text = ro_text(ro);
    if (text == NULL)
        return qv_fail(d, QV_ENOMEM, "cannot encode the rollout state of %s (out of memory)",
                       ro->model);
    err = qv_store_kv_put(c->store, "rollout", ro->model, text, d);
    free(text);
    return err;
}

/* Publishes 'doc' for next (a modified copy of *ro) and commits next into *ro.
 * check_ready: validate that the versions the document routes to are READY.
 * On failure nothing observable changes and *ro is untouched (next's route
 * is freed). Caller holds c->mu. */
static int apply(qv_control *c, struct qv__rollout *ro, struct qv__rollout *next, const char *doc,
                 bool check_ready, struct qv_diag *d)
{
    const struct qv_resolver *res = qv_router_resolver(c->router);
    qv_route *rt = NULL;
    char *canon = NULL, *old_stored = NULL;
    bool had_stored = false;
    int err;

    err = qv_route_parse(doc, ro->model, check_ready ? res : NULL, &rt, d);
    if (err)
        return err;
    err = qv_route_to_json(rt, &canon);
    qv_route_free(rt);
    if (err)
        return qv_fail(d, err, "cannot encode the route of %s", ro->model);
    next->route = canon;
    if (c->store != NULL) {
        struct qv_diag ignore = {{0}};
        had_stored = qv_store_route_get(c->store, ro->model, &old_stored, &ignore) == QV_OK;
        err = persist_state(c, next, d);
        if (err)
            goto fail;
        err = qv_store_route_put(c->store, ro->model, canon, d);
        if (err)
            goto undo_state;
    }
    err = qv_router_set_route(c->router, ro->model, canon, check_ready ? res : NULL, d);
    if (err) {
        /* Undo the put: pop the document it pushed on the history (a put of the document
         * already in force pushed nothing, and there is nothing to undo). */
        if (c->store != NULL && had_stored && strcmp(old_stored, canon) != 0) {
            struct qv_diag ignore = {{0}};
            qv_store_route_rollback(c->store, ro->model, NULL, &ignore);
        }
        goto undo_state;
    }
    free(old_stored);
    ro_fini(ro);
    *ro = *next;
    return QV_OK;
undo_state:
    if (c->store != NULL) {
        struct qv_diag ignore = {{0}};
        if (ro->plan.canary != 0)
            persist_state(c, ro, &ignore);
        else
            qv_store_kv_delete(c->store, "rollout", ro->model, &ignore);
    }
fail:
    free(old_stored);
    free(canon);
    next->route = NULL;
    return err;
}

/* The event body: who moved where, why, and the figures; NULL when it cannot
 * be built (out of memory). */
static char *event_value(const struct qv__rollout *ro, const char *reason)
{
    json_t *o = json_object();
    char *s = NULL;
    int bad = o == NULL;

    bad |= json_object_set_new(o, "canary", json_integer(ro->plan.canary));
    bad |= json_object_set_new(o, "stable", json_integer(ro->stable));
    bad |= json_object_set_new(o, "step", json_integer(ro->step));
    bad |= json_object_set_new(o, "canary_weight", json_real(canary_weight(ro)));
    bad |= json_object_set_new(o, "state", json_string(state_names[ro->state]));
    bad |= json_object_set_new(o, "reason", json_string(reason ? reason : ""));
    if (ro->warning[0] != '\0') {
        json_t *warnings = json_array();
        bad |= json_array_append_new(warnings, json_string(ro->warning));
        bad |= json_object_set_new(o, "warnings", warnings);
    }
    if (ro->has_last)
        bad |= json_object_set_new(o, "figures", figures_json(&ro->last.f));
    bad |= json_object_set_new(o, "route", ro->route ? json_string(ro->route) : json_null());
    if (!bad)
        s = dumps(o);
    json_decref(o);
    return s;
}

static void take_base(qv_control *c, struct qv__rollout *ro)
{
    qv_vstats *vc = NULL, *vs = NULL;
    struct qv_pair_summary ps;

    memset(&ro->base_canary, 0, sizeof(ro->base_canary));
    memset(&ro->base_stable, 0, sizeof(ro->base_stable));
    if (c->cluster != NULL && c->store != NULL) {
        /* Cluster mode: every node's traffic counts (counters.c). */
        qv__counters_sum(c, ro->model, ro->plan.canary, &ro->base_canary);
        qv__counters_sum(c, ro->model, ro->stable, &ro->base_stable);
    } else {
        vc = qv_monitor_find_hold(c->monitor, ro->model, ro->plan.canary);
        vs = qv_monitor_find_hold(c->monitor, ro->model, ro->stable);
    }
    if (vc)
        qv_vstats_snapshot(vc, &ro->base_canary);
    if (vs)
        qv_vstats_snapshot(vs, &ro->base_stable);
    qv_monitor_release(c->monitor, vc);
    qv_monitor_release(c->monitor, vs);
    ro->base_agree_count = ro->base_agree_n = 0;
    if (qv_monitor_agreement_get(c->monitor, ro->model, ro->stable, ro->plan.canary, &ps) ==
        QV_OK) {
        ro->base_agree_count = ps.agreements;
        ro->base_agree_n = ps.count;
    }
}

/* Ends the rollout (promote, rollback or abort) with a route change. */
static int finish(qv_control *c, const char *who, struct qv__rollout *ro, enum ro_state st,
                  const char *what, const char *reason, struct qv_diag *d)
{
    struct qv__rollout next = *ro;
    char *doc = NULL, *old = ro->route ? strdup(ro->route) : NULL, *ev;
    int err;

    if (ro->route != NULL && old == NULL)
        return qv_fail(d, QV_ENOMEM, "out of memory");
    next.route = NULL;
    next.state = st;
    next.ended_ms = qv__control_now_ms(c);
    snprintf(next.reason, sizeof(next.reason), "%s", reason);
    err = build_doc(c, ro, st == RO_PROMOTED ? DOC_PROMOTE : DOC_BACK, 0, &doc, d);
    if (!err)
        err = apply(c, ro, &next, doc, st == RO_PROMOTED, d);
    free(doc);
    if (err) {
        free(old);
        return err;
    }
    ev = event_value(ro, reason);
    audit(c, who, ro->model, what, old, ev);
    free(ev);
    free(old);
    return QV_OK;
}

/* ---- Ticks ---- */

static void window_since(qv_control *c, const char *model, int64_t v,
                         const struct qv_vstats_snap *base, struct qv_window *w)
{
    qv_vstats *s;
    struct qv_vstats_snap now;

    memset(w, 0, sizeof(*w));
    if (c->cluster != NULL && c->store != NULL &&
        qv__counters_sum(c, model, v, &now) == QV_OK) {
        qv_vstats_window(&now, base, w);
        return;
    }
    s = qv_monitor_find_hold(c->monitor, model, v);
    if (s == NULL)
        return;
    qv_vstats_snapshot(s, &now);
    qv_monitor_release(c->monitor, s);
    qv_vstats_window(&now, base, w);
}

/* Marks the rollout aborted without touching the route (someone else owns it now). */
static void give_up(qv_control *c, struct qv__rollout *ro, const char *reason)
{
    struct qv_diag d = {{0}};
    char *ev;

    ro->state = RO_ABORTED;
    ro->ended_ms = qv__control_now_ms(c);
    snprintf(ro->reason, sizeof(ro->reason), "%s", reason);
    if (persist_state(c, ro, &d) != QV_OK)
        qv_log(QV_LOG_WARN, "model=%s msg=\"rollout state not persisted\" reason=\"%s\"", ro->model,
               d.msg);
    ev = event_value(ro, reason);
    audit(c, "controller", ro->model, "rollout.abort", NULL, ev);
    free(ev);
}

static void tick_one(qv_control *c, struct qv__rollout *ro)
{
    struct qv_rollout_obs obs;
    struct qv_rollout_verdict v;
    struct qv_pair_summary ps;
    struct qv_diag d = {{0}};
    char *cur = NULL, reason[300];
    uint64_t now = qv__control_now_ms(c);
    int err = QV_OK;

    /* An operator changed the route: the rollout steps aside. */
    if (qv_router_get_route(c->router, ro->model, &cur) != QV_OK || ro->route == NULL ||
        strcmp(cur, ro->route) != 0) {
        free(cur);
        give_up(c, ro, "the route was changed by someone else during the rollout");
        return;
    }
    free(cur);
    if (!qv_engine_is_ready(c->engine, ro->model, ro->plan.canary) ||
        !qv_engine_is_ready(c->engine, ro->model, ro->stable)) {
        snprintf(reason, sizeof(reason), "version %" PRId64 " is no longer READY",
                 qv_engine_is_ready(c->engine, ro->model, ro->stable) ? ro->plan.canary
                                                                      : ro->stable);
        err = finish(c, "controller", ro, RO_ABORTED, "rollout.abort", reason, &d);
        goto out;
    }

    memset(&obs, 0, sizeof(obs));
    obs.elapsed_s = now > ro->step_started_ms ? (double)(now - ro->step_started_ms) / 1000.0 : 0;
    window_since(c, ro->model, ro->plan.canary, &ro->base_canary, &obs.canary);
    window_since(c, ro->model, ro->stable, &ro->base_stable, &obs.stable);
    obs.ref = ro->ref;
    if (qv_monitor_agreement_get(c->monitor, ro->model, ro->stable, ro->plan.canary, &ps) ==
            QV_OK &&
        ps.count >= ro->base_agree_n) {
        obs.agree_n = ps.count - ro->base_agree_n;
        obs.agree_count = ps.agreements - ro->base_agree_count;
    }
    qv_rollout_decide(&ro->plan, ro->step, &obs, &v);
    ro->last = v;
    ro->has_last = true;

    switch (v.action) {
    case QV_ROLLOUT_WAIT:
        break;
    case QV_ROLLOUT_ROLLBACK:
        err = finish(c, "controller", ro, RO_ROLLED_BACK, "rollout.rollback", v.reason, &d);
        if (!err)
            qv_log(QV_LOG_WARN,
                   "model=%s canary=%" PRId64 " msg=\"canary rolled back\" "
                   "reason=\"%s\"",
                   ro->model, ro->plan.canary, v.reason);
        break;
    case QV_ROLLOUT_PROMOTE:
        err = finish(c, "controller", ro, RO_PROMOTED, "rollout.promote", v.reason, &d);
        break;
    case QV_ROLLOUT_NEXT: {
        struct qv__rollout next = *ro;
        char *doc = NULL, *old = ro->route ? strdup(ro->route) : NULL, *ev;
        if (ro->route != NULL && old == NULL) {
            err = qv_fail(&d, QV_ENOMEM, "out of memory");
            break;
        }
        next.route = NULL;
        next.step = ro->step + 1;
        next.step_started_ms = now;
        if (obs.stable.requests - obs.stable.bad_input >= ro->plan.min_requests) {
            next.ref.requests = obs.stable.requests - obs.stable.bad_input;
            next.ref.errors = obs.stable.errors;
            next.ref.bad_input = obs.stable.bad_input;
        }
        if (obs.stable.latency_count >= ro->plan.min_requests) {
            next.ref.latency_count = obs.stable.latency_count;
            next.ref.p99_ms = obs.stable.p99_ms;
        }
        snprintf(next.reason, sizeof(next.reason), "%s", v.reason);
        err = build_doc(c, &next, DOC_STEP, next.plan.steps[next.step], &doc, &d);
        if (!err)
            err = apply(c, ro, &next, doc, true, &d);
        free(doc);
        if (!err) {
            take_base(c, ro);
            ev = event_value(ro, v.reason);
            audit(c, "controller", ro->model, "rollout.step", old, ev);
            free(ev);
        }
        free(old);
        break;
    }
    }
out:
    if (err)
        qv_log(QV_LOG_WARN,
               "model=%s msg=\"rollout tick failed; route kept, retrying\" "
               "reason=\"%s\"",
               ro->model, d.msg);
}

void qv__rollout_tick(qv_control *c)
{
    for (int i = 0; i < c->n_rollouts; i++)
        if (c->rollouts[i].state == RO_RUNNING)
            tick_one(c, &c->rollouts[i]);
}

void qv__rollout_load(qv_control *c)
{
    struct qv_store_kv *kv = NULL;
    struct qv_diag d = {{0}};
    size_t n = 0;

    if (c->store == NULL)
        return;
    if (qv_store_kv_list(c->store, "rollout", &kv, &n, &d) != QV_OK) {
        qv_log(QV_LOG_WARN, "msg=\"cannot read persisted rollouts\" reason=\"%s\"", d.msg);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct qv__rollout tmp, *ro;
        if (ro_from_json(kv[i].key, kv[i].value, &tmp) != QV_OK) {
            qv_log(QV_LOG_WARN, "model=%s msg=\"persisted rollout unreadable; ignored\"",
                   kv[i].key);
            ro_fini(&tmp);
            continue;
        }
        ro = find_or_add(c, kv[i].key);
        ro_fini(ro);
        *ro = tmp;
        /* Base snapshots stay zero: the monitor restarted from zero as well. */
        if (ro->state == RO_RUNNING)
            qv_log(QV_LOG_INFO, "model=%s canary=%" PRId64 " step=%d msg=\"rollout resumed\"",
                   ro->model, ro->plan.canary, ro->step);
    }
    qv_store_kv_free(kv, n);
}

void qv__rollout_sync(qv_control *c)
{
    struct qv_store_kv *kv = NULL;
    struct qv_diag d = {{0}};
    size_t n = 0;

    if (c->store == NULL || qv_store_kv_list(c->store, "rollout", &kv, &n, &d) != QV_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        struct qv__rollout tmp, *ro = find(c, kv[i].key);
        char *mine = ro != NULL ? ro_text(ro) : NULL;
        bool same = mine != NULL && strcmp(mine, kv[i].value) == 0;

        free(mine);
        if (same)
            continue;
        if (ro_from_json(kv[i].key, kv[i].value, &tmp) != QV_OK) {
            ro_fini(&tmp);
            continue;
        }
        ro = find_or_add(c, kv[i].key);
        ro_fini(ro);
        *ro = tmp;
        qv_log(QV_LOG_INFO, "model=%s canary=%" PRId64 " step=%d msg=\"rollout state taken from "
                            "the store\"", ro->model, ro->plan.canary, ro->step);
    }
    qv_store_kv_free(kv, n);
}

/* ---- HTTP commands ---- */

int qv_control_rollout_start(qv_control *c, const char *model, const char *body, const char *who,
                             char **status_json, struct qv_diag *d)
{
    struct qv_rollout_plan plan;
    struct qv_model_info mi;
    struct qv__rollout next, *ro, blank;
    int64_t ready[QV_MAX_VERSIONS], stable = 0;
    char *doc = NULL, *old = NULL, *ev;
    int n, err;

    if (qv_engine_model_info(c->engine, model, &mi) != QV_OK)
        return qv_fail(d, QV_ENOENT, "unknown model \"%s\"", model);
    qv_model_info_free(&mi);
    err = qv_rollout_plan_parse(body, &plan, d);
    if (err)
        return err;
    if (!qv_engine_is_ready(c->engine, model, plan.canary))
        return qv_fail(d, QV_EINVAL, "canary: version %" PRId64 " of model %s is not READY",
                       plan.canary, model);
    pthread_mutex_lock(&c->mu);
    ro = find(c, model);
    if (ro != NULL && ro->state == RO_RUNNING) {
        err = qv_fail(d, QV_ECONFLICT,
                      "model %s: a rollout of version %" PRId64
                      " is running; abort it first (DELETE .../rollout)",
                      model, ro->plan.canary);
        goto out;
    }
    /* Stable: the route's "stable" label, else the highest READY version other than the canary. */
    if (qv_router_get_label(c->router, model, "stable", &stable) != QV_OK ||
        stable == plan.canary || !qv_engine_is_ready(c->engine, model, stable)) {
        stable = 0;
        n = qv_engine_ready_versions(c->engine, model, ready, QV_MAX_VERSIONS);
        for (int i = 0; i < n; i++)
            if (ready[i] != plan.canary)
                stable = ready[i];
    }
    if (stable == 0) {
        err = qv_fail(d, QV_EINVAL,
                      "canary: model %s has no READY stable version other than "
                      "%" PRId64,
                      model, plan.canary);
        goto out;
    }
    memset(&next, 0, sizeof(next));
    snprintf(next.model, sizeof(next.model), "%s", model);
    next.plan = plan;
    next.stable = stable;
    next.state = RO_RUNNING;
    next.started_ms = next.step_started_ms = qv__control_now_ms(c);
    snprintf(next.reason, sizeof(next.reason), "started by %s", who ? who : "anonymous");
    {
        /* The stable reference starts as everything stable has served so far. */
        struct qv_window w;
        struct qv_vstats_snap zero;
        memset(&zero, 0, sizeof(zero));
        window_since(c, model, stable, &zero, &w);
        next.ref.requests = w.requests - w.bad_input;
        next.ref.errors = w.errors;
        next.ref.bad_input = w.bad_input;
        next.ref.latency_count = w.latency_count;
        next.ref.p99_ms = w.p99_ms;
    }
    err = build_doc(c, &next, DOC_STEP, plan.steps[0], &doc, d);
    if (err)
        goto out;
    if (plan.has_min_shadow_agreement && !doc_shadows_canary(doc, plan.canary)) {
        snprintf(next.warning, sizeof(next.warning),
                 "guards.min_shadow_agreement: the route of %s has no shadow of the canary, so "
                 "no comparison is made and this guard can never act",
                 model);
        qv_log(QV_LOG_WARN, "model=%s canary=%" PRId64 " msg=\"%s\"", model, plan.canary,
               next.warning);
    }
    qv_router_get_route(c->router, model, &old);
    if (ro == NULL) {
        memset(&blank, 0, sizeof(blank));
        snprintf(blank.model, sizeof(blank.model), "%s", model);
        err = apply(c, &blank, &next, doc, true, d);
        if (!err) {
            ro = find_or_add(c, model);
            *ro = blank;
        }
    } else {
        err = apply(c, ro, &next, doc, true, d);
    }
    free(doc);
    if (err)
        goto out;
    take_base(c, ro);
    ev = event_value(ro, ro->reason);
    audit(c, who ? who : "anonymous", model, "rollout.start", old, ev);
    free(ev);
    *status_json = ro_text(ro); /* NULL (out of memory): started, answered without a body */
out:
    free(old);
    pthread_mutex_unlock(&c->mu);
    return err;
}

int qv_control_rollout_status(qv_control *c, const char *model, char **json, struct qv_diag *d)
{
    struct qv__rollout *ro;
    int err = QV_OK;

    pthread_mutex_lock(&c->mu);
    ro = find(c, model);
    if (ro == NULL)
        err = qv_fail(d, QV_ENOENT, "model %s has no rollout", model);
    else if ((*json = ro_text(ro)) == NULL)
        err = qv_fail(d, QV_ENOMEM, "cannot encode the rollout of %s (out of memory)", model);
    pthread_mutex_unlock(&c->mu);
    return err;
}

int qv_control_rollout_abort(qv_control *c, const char *model, const char *who, char **status_json,
                             struct qv_diag *d)
{
    struct qv__rollout *ro;
    char reason[128];
    int err;

    pthread_mutex_lock(&c->mu);
    ro = find(c, model);
    if (ro == NULL || ro->state != RO_RUNNING) {
        err = qv_fail(d, QV_ENOENT, "model %s has no running rollout", model);
        goto out;
    }
    snprintf(reason, sizeof(reason), "aborted by %s", who ? who : "anonymous");
    err = finish(c, who ? who : "anonymous", ro, RO_ABORTED, "rollout.abort", reason, d);
    if (!err)
        *status_json = ro_text(ro); /* NULL (out of memory): aborted, answered without a body */
out:
    pthread_mutex_unlock(&c->mu);
    return err;
}
