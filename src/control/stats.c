/* SPDX-License-Identifier: MIT
 *
 * The rollout's pure half: the two-proportion z-test, the plan parser and the
 * per-tick decision. Nothing here reads a clock, a store or a lock, so the
 * unit tests drive it with made-up windows.
 */
#include "control_int.h"

#define QV_LOG_MODULE "control"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Statistics ---- */

double qv_two_prop_z(uint64_t x1, uint64_t n1, uint64_t x2, uint64_t n2)
{
    double p1, p2, p, se;

    if (n1 == 0 || n2 == 0)
        return 0.0;
    p1 = (double)x1 / (double)n1;
    p2 = (double)x2 / (double)n2;
    p = (double)(x1 + x2) / (double)(n1 + n2);
    se = sqrt(p * (1.0 - p) * (1.0 / (double)n1 + 1.0 / (double)n2));
    if (!(se > 0))
        return 0.0;
    return (p1 - p2) / se;
}

double qv_normal_sf(double z)
{
    return 0.5 * erfc(z / sqrt(2.0));
}

/* ---- Plan ---- */

static int plan_number(json_t *o, const char *key, const char *field, double lo, double hi,
                       bool lo_open, double *out, struct qv_diag *d)
{
    json_t *v = json_object_get(o, key);
    double x;

    if (v == NULL)
        return 0;
    if (!json_is_number(v))
        return qv_fail(d, QV_EINVAL, "%s: expected a number", field);
    x = json_number_value(v);
    if (!isfinite(x) || x < lo || x > hi || (lo_open && x <= lo))
        return qv_fail(d, QV_EINVAL, "%s: must be %s %g and at most %g, got %g", field,
                       lo_open ? "above" : "at least", lo, hi, x);
    *out = x;
    return 0;
}

static int check_keys(json_t *o, const char *prefix, const char *const *allowed, struct qv_diag *d)
{
    const char *key;
    json_t *v;

    json_object_foreach(o, key, v)
    {
        bool ok = false;
        for (int i = 0; allowed[i]; i++)
            ok = ok || strcmp(key, allowed[i]) == 0;
        if (!ok)
            return qv_fail(d, QV_EINVAL, "%s%s: unknown key", prefix, key);
    }
    return 0;
}

static int parse_guards(json_t *g, struct qv_rollout_plan *p, struct qv_diag *d)
{
    static const char *const keys[] = {"max_error_rate_delta", "max_p99_ratio",
                                       "min_shadow_agreement", "alpha", NULL};
    int err;

    if (!json_is_object(g))
        return qv_fail(d, QV_EINVAL, "guards: expected an object");
    err = check_keys(g, "guards.", keys, d);
    err = err ? err
              : plan_number(g, "max_error_rate_delta", "guards.max_error_rate_delta", 0, 1, false,
                            &p->max_error_rate_delta, d);
    err = err ? err
              : plan_number(g, "max_p99_ratio", "guards.max_p99_ratio", 0, 1e6, true,
                            &p->max_p99_ratio, d);
    err = err ? err : plan_number(g, "alpha", "guards.alpha", 0, 0.5, true, &p->alpha, d);
    if (!err && json_object_get(g, "min_shadow_agreement") != NULL) {
        err = plan_number(g, "min_shadow_agreement", "guards.min_shadow_agreement", 0, 1, false,
                          &p->min_shadow_agreement, d);
        p->has_min_shadow_agreement = err == 0;
    }
    return err;
}

static int parse_steps(json_t *a, struct qv_rollout_plan *p, struct qv_diag *d)
{
    size_t i;
    json_t *e;

    if (!json_is_array(a))
        return qv_fail(d, QV_EINVAL, "steps: expected an array of canary weights (1..100)");
    if (json_array_size(a) == 0)
        return qv_fail(d, QV_EINVAL, "steps: empty; expected at least one canary weight");
    if (json_array_size(a) > QV_ROLLOUT_MAX_STEPS)
        return qv_fail(d, QV_EINVAL, "steps: more than %d steps", QV_ROLLOUT_MAX_STEPS);
    p->n_steps = 0;
    json_array_foreach(a, i, e)
    {
        double x;
        if (!json_is_number(e))
            return qv_fail(d, QV_EINVAL, "steps[%zu]: expected a number", i);
        x = json_number_value(e);
        if (!isfinite(x) || x < 1 || x > 100)
            return qv_fail(d, QV_EINVAL, "steps[%zu]: %g is outside 1..100", i, x);
        if (i > 0 && x <= p->steps[i - 1])
            return qv_fail(d, QV_EINVAL, "steps[%zu]: %g does not increase (after %g)", i, x,
                           p->steps[i - 1]);
        p->steps[p->n_steps++] = round(x * 100.0) / 100.0;
    }
    return 0;
}

int qv_rollout_plan_parse(const char *json, struct qv_rollout_plan *out, struct qv_diag *d)
{
    static const char *const keys[] = {"canary",       "steps",  "step_seconds",
                                       "min_requests", "guards", NULL};
    static const double def_steps[] = {5, 25, 50, 100};
    struct qv_rollout_plan p;
    json_error_t jerr;
    json_t *root, *v;
    double minreq = 500;
    int err;

    memset(&p, 0, sizeof(p));
    p.n_steps = (int)QV_ARRAY_LEN(def_steps);
    memcpy(p.steps, def_steps, sizeof(def_steps));
    p.step_seconds = 60;
    p.max_error_rate_delta = 0.01;
    p.max_p99_ratio = 1.5;
    p.alpha = 0.05;
    root = json_loads(json ? json : "", JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return qv_fail(d, QV_EINVAL, "body: invalid JSON at line %d column %d: %s", jerr.line,
                       jerr.column, jerr.text);
    if (!json_is_object(root)) {
        err = qv_fail(d, QV_EINVAL, "body: expected a JSON object");
        goto out;
    }
    err = check_keys(root, "", keys, d);
    if (err)
        goto out;
    v = json_object_get(root, "canary");
    if (json_is_string(v)) {
        char *end;
        long long x = strtoll(json_string_value(v), &end, 10);
        p.canary = *end == '\0' && end != json_string_value(v) ? x : 0;
    } else if (json_is_integer(v)) {
        p.canary = json_integer_value(v);
    } else if (v == NULL) {
        err = qv_fail(d, QV_EINVAL, "canary: required (the version to roll out)");
        goto out;
    }
    if (p.canary <= 0) {
        err = qv_fail(d, QV_EINVAL, "canary: expected a version number");
        goto out;
    }
    v = json_object_get(root, "steps");
    if (v != NULL && (err = parse_steps(v, &p, d)) != 0)
        goto out;
    err = plan_number(root, "step_seconds", "step_seconds", 0, 86400 * 7, true, &p.step_seconds, d);
    if (err)
        goto out;
    v = json_object_get(root, "min_requests");
    if (v != NULL && !json_is_integer(v)) {
        err = qv_fail(d, QV_EINVAL, "min_requests: expected an integer");
        goto out;
    }
    err = plan_number(root, "min_requests", "min_requests", 1, 1e12, false, &minreq, d);
    if (err)
        goto out;
    p.min_requests = (uint64_t)minreq;
    v = json_object_get(root, "guards");
    if (v != NULL && (err = parse_guards(v, &p, d)) != 0)
        goto out;
    *out = p;
out:
    json_decref(root);
    return err;
}

/* True when b (parsed back from a's text) says what a says: the same
 * structure, keys, strings and integers, and reals to the 8 digits (or more)
 * they are written with. */
static bool json_same(const json_t *a, const json_t *b, int depth)
{
    const char *key;
    json_t *v;
    size_t i;

    if (a == NULL || b == NULL || depth > 64)
        return false;
    if (json_is_number(a) && json_is_number(b) && (json_is_real(a) || json_is_real(b))) {
        double x = json_number_value(a), y = json_number_value(b);
        return fabs(x - y) <= 1e-7 * fmax(fabs(x), fabs(y)); /* 8 digits or more */
    }
    if (json_typeof(a) != json_typeof(b))
        return false;
    switch (json_typeof(a)) {
    case JSON_OBJECT:
        if (json_object_size(a) != json_object_size(b))
            return false;
        json_object_foreach((json_t *)a, key, v)
            if (!json_same(v, json_object_get(b, key), depth + 1))
                return false;
        return true;
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (i = 0; i < json_array_size(a); i++)
            if (!json_same(json_array_get(a, i), json_array_get(b, i), depth + 1))
                return false;
        return true;
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_INTEGER:
        return json_integer_value(a) == json_integer_value(b);
    default:
        return true; /* true, false, null */
    }
}

/* jansson 2.14's encoder does not check the write of an object's key
 * (dump.c), so when its buffer cannot grow it returns a text with a key or a
 * string cut short, which may still parse. The text is read back and
 * compared: a document is whole or absent. */
char *qv__json_dumps_checked(const json_t *j, size_t flags)
{
    char *s = j ? json_dumps(j, flags) : NULL;
    json_t *back = s ? json_loads(s, JSON_DECODE_ANY, NULL) : NULL;
    bool same = back != NULL && json_same(j, back, 0);

    json_decref(back);
    if (!same) {
        free(s);
        return NULL;
    }
    return s;
}

/* The plan as canonical JSON; NULL when it cannot be built (out of memory:
 * every insertion is checked, so a document is whole or absent). */
char *qv_rollout_plan_json(const struct qv_rollout_plan *p)
{
    json_t *root = json_object(), *steps = json_array(), *g = json_object();
    char *s = NULL;
    int bad = root == NULL;

    for (int i = 0; i < p->n_steps; i++)
        bad |= json_array_append_new(steps, json_real(p->steps[i]));
    bad |= json_object_set_new(g, "max_error_rate_delta", json_real(p->max_error_rate_delta));
    bad |= json_object_set_new(g, "max_p99_ratio", json_real(p->max_p99_ratio));
    if (p->has_min_shadow_agreement)
        bad |= json_object_set_new(g, "min_shadow_agreement", json_real(p->min_shadow_agreement));
    bad |= json_object_set_new(g, "alpha", json_real(p->alpha));
    bad |= json_object_set_new(root, "canary", json_integer(p->canary));
    bad |= json_object_set_new(root, "steps", steps);
    bad |= json_object_set_new(root, "step_seconds", json_real(p->step_seconds));
    bad |= json_object_set_new(root, "min_requests", json_integer((json_int_t)p->min_requests));
    bad |= json_object_set_new(root, "guards", g);
    if (!bad)
        s = qv__json_dumps_checked(root, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                             JSON_REAL_PRECISION(10));
    json_decref(root);
    return s;
}

/* ---- Decision ---- */

const char *qv_rollout_action_name(enum qv_rollout_action a)
{
    switch (a) {
    case QV_ROLLOUT_WAIT:
        return "wait";
    case QV_ROLLOUT_NEXT:
        return "next";
    case QV_ROLLOUT_PROMOTE:
        return "promote";
    case QV_ROLLOUT_ROLLBACK:
        return "rollback";
    }
    return "unknown";
}

static uint64_t sub0(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

static void append(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t cap, const char *fmt, ...)
{
    size_t n = strlen(buf);
    va_list ap;

    if (n + 2 >= cap)
        return;
    if (n > 0) {
        buf[n++] = ';';
        buf[n++] = ' ';
        buf[n] = '\0';
    }
    va_start(ap, fmt);
    vsnprintf(buf + n, cap - n, fmt, ap);
    va_end(ap);
}

void qv_rollout_decide(const struct qv_rollout_plan *p, int step, const struct qv_rollout_obs *o,
                       struct qv_rollout_verdict *v)
{
    struct qv_rollout_figures *f = &v->f;
    uint64_t min = p->min_requests, c_total, c_nonbad, s_nonbad;
    bool have_stable;

    memset(v, 0, sizeof(*v));
    f->agreement = -1;
    c_total = o->canary.requests;
    c_nonbad = sub0(c_total, o->canary.bad_input);
    f->canary_requests = c_nonbad;
    f->canary_errors = o->canary.errors;
    f->canary_answered = sub0(c_nonbad, o->canary.overload);
    f->canary_bad_input = o->canary.bad_input;
    f->canary_error_rate = c_nonbad ? (double)o->canary.errors / (double)c_nonbad : 0;
    f->canary_bad_input_rate = c_total ? (double)o->canary.bad_input / (double)c_total : 0;
    f->canary_p99_ms = o->canary.p99_ms;
    f->enough = f->canary_answered >= min;

    /* The stable side: its own step figures, else the reference kept from earlier. */
    s_nonbad = sub0(o->stable.requests, o->stable.bad_input);
    if (s_nonbad >= min) {
        f->stable_source = "step";
        f->stable_requests = s_nonbad;
        f->stable_errors = o->stable.errors;
        f->stable_bad_input = o->stable.bad_input;
    } else if (o->ref.requests >= min) {
        f->stable_source = "reference";
        f->stable_requests = o->ref.requests;
        f->stable_errors = o->ref.errors;
        f->stable_bad_input = o->ref.bad_input;
    } else {
        f->stable_source = "none";
    }
    have_stable = strcmp(f->stable_source, "none") != 0;
    f->stable_error_rate = f->stable_requests ? (double)f->stable_errors / f->stable_requests : 0;
    if (o->stable.latency_count >= min)
        f->stable_p99_ms = o->stable.p99_ms;
    else if (o->ref.latency_count >= min)
        f->stable_p99_ms = o->ref.p99_ms;

    /* Error rate. */
    f->error_rate_delta = f->canary_error_rate - f->stable_error_rate;
    if (have_stable) {
        f->z = qv_two_prop_z(f->canary_errors, f->canary_requests, f->stable_errors,
                             f->stable_requests);
        f->p_value = qv_normal_sf(f->z);
        f->error_breach = f->p_value < p->alpha && f->error_rate_delta > p->max_error_rate_delta;
    } else {
        f->p_value = 1;
        f->error_breach = f->canary_error_rate > p->max_error_rate_delta;
    }
    if (f->error_breach)
        append(v->reason, sizeof(v->reason),
               "error_rate: canary %.4f vs stable %.4f, delta %.4f > %.4f", f->canary_error_rate,
               f->stable_error_rate, f->error_rate_delta, p->max_error_rate_delta);
    if (f->error_breach && have_stable)
        append(v->reason, sizeof(v->reason), "z %.2f, p %.2g < alpha %.2g", f->z, f->p_value,
               p->alpha);

    /* Bad input: a canary that refuses what stable accepts. */
    if (have_stable && c_total >= min) {
        uint64_t s_total = f->stable_requests + f->stable_bad_input;
        double z, pv, delta;
        f->bad_input_evaluated = true;
        f->stable_bad_input_rate = s_total ? (double)f->stable_bad_input / (double)s_total : 0;
        delta = f->canary_bad_input_rate - f->stable_bad_input_rate;
        z = qv_two_prop_z(f->canary_bad_input, c_total, f->stable_bad_input, s_total);
        pv = qv_normal_sf(z);
        f->bad_input_breach = pv < p->alpha && delta > p->max_error_rate_delta;
        if (f->bad_input_breach)
            append(v->reason, sizeof(v->reason),
                   "bad_input_rate: canary %.4f vs stable %.4f, delta %.4f > %.4f (z %.2f, "
                   "p %.2g < alpha %.2g)",
                   f->canary_bad_input_rate, f->stable_bad_input_rate, delta,
                   p->max_error_rate_delta, z, pv, p->alpha);
    }

    /* p99 ratio. */
    if (o->canary.latency_count >= min && f->stable_p99_ms > 0) {
        f->p99_evaluated = true;
        f->p99_ratio = f->canary_p99_ms / f->stable_p99_ms;
        f->p99_breach = f->p99_ratio > p->max_p99_ratio;
        if (f->p99_breach)
            append(v->reason, sizeof(v->reason),
                   "p99: canary %.3f ms vs stable %.3f ms, ratio %.2f > %.2f", f->canary_p99_ms,
                   f->stable_p99_ms, f->p99_ratio, p->max_p99_ratio);
    }

    /* Shadow agreement. */
    f->agreement_n = o->agree_n;
    if (o->agree_n > 0)
        f->agreement = (double)o->agree_count / (double)o->agree_n;
    if (p->has_min_shadow_agreement && o->agree_n >= min) {
        f->agreement_breach = f->agreement < p->min_shadow_agreement;
        if (f->agreement_breach)
            append(v->reason, sizeof(v->reason),
                   "shadow agreement %.4f < %.4f over %llu comparisons", f->agreement,
                   p->min_shadow_agreement, (unsigned long long)o->agree_n);
    }

    /* The figures are shown either way; only min_requests answered lets them decide
     * (the bad-input guard has its own: a canary that answers nothing may well be
     * refusing everything). */
    if (!f->enough) {
        f->error_breach = f->p99_breach = f->agreement_breach = false;
        if (f->bad_input_breach) {
            v->action = QV_ROLLOUT_ROLLBACK;
            return;
        }
        v->action = QV_ROLLOUT_WAIT;
        snprintf(v->reason, sizeof(v->reason),
                 "waiting for min_requests: canary answered %llu of %llu (bad-input refusals, "
                 "%llu here, do not count)",
                 (unsigned long long)f->canary_answered, (unsigned long long)min,
                 (unsigned long long)f->canary_bad_input);
        return;
    }
    if (f->error_breach || f->p99_breach || f->agreement_breach || f->bad_input_breach) {
        v->action = QV_ROLLOUT_ROLLBACK;
        return;
    }
    if (o->elapsed_s < p->step_seconds) {
        v->action = QV_ROLLOUT_WAIT;
        snprintf(v->reason, sizeof(v->reason), "guards pass; step ends in %.0f s",
                 ceil(p->step_seconds - o->elapsed_s));
        return;
    }
    v->action = step + 1 < p->n_steps ? QV_ROLLOUT_NEXT : QV_ROLLOUT_PROMOTE;
    snprintf(v->reason, sizeof(v->reason),
             "guards pass after %.0f s and %llu answered canary requests", o->elapsed_s,
             (unsigned long long)f->canary_answered);
}
