/* SPDX-License-Identifier: MIT
 *
 * The route watch: a route (or a label) that names a version the engine no longer serves
 * -- unloaded because the version policy changed, removed from the repository, failed --
 * does not fail requests: the router skips that version and the others (or the default)
 * take its traffic. That fallback must never be silent, so every tick this file checks
 * the versions each route names and, when one stops being served, logs a warning and adds
 * a `route.version_missing` event (once, until it is served again, which adds
 * `route.version_restored`).
 */
#include "control_int.h"

#define QV_LOG_MODULE "control"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct qv__missing {
    char model[QV_MODEL_NAME_MAX];
    int64_t version;
    bool seen; /* still missing at this tick */
};

void qv__watch_free(qv_control *c)
{
    free(c->missing);
    c->missing = NULL;
    c->n_missing = 0;
}

static struct qv__missing *find_missing(qv_control *c, const char *model, int64_t v)
{
    for (int i = 0; i < c->n_missing; i++)
        if (c->missing[i].version == v && strcmp(c->missing[i].model, model) == 0)
            return &c->missing[i];
    return NULL;
}

static void audit(qv_control *c, const char *model, const char *what, const char *value)
{
    struct qv_store_event ev;
    struct qv_diag d = {{0}};

    if (c->store == NULL)
        return;
    memset(&ev, 0, sizeof(ev));
    ev.model = (char *)model;
    ev.who = (char *)"controller";
    ev.what = (char *)what;
    ev.new_value = (char *)value;
    if (qv_store_event_add(c->store, &ev, NULL, &d) != QV_OK)
        qv_log(QV_LOG_WARN, "model=%s what=%s msg=\"audit event not stored\" reason=\"%s\"", model,
               what, d.msg);
}

/* The versions a canonical route document names, each with the first field that names it
 * ("labels.stable", "target", "weights.2", "shadow", "compare"). Returns how many. */
#define NAMED_MAX                                                                                  \
    (QV_ROUTE_MAX_LABELS + QV_ROUTE_MAX_TARGETS + QV_ROUTE_MAX_SHADOW + QV_ROUTE_MAX_COMPARE + 1)

struct named {
    int64_t version;
    char field[QV_ROUTE_NAME_MAX + 16];
};

static int64_t resolve(json_t *labels, const char *name)
{
    char *end;
    long long x = strtoll(name, &end, 10);
    json_t *v;

    if (*name != '\0' && *end == '\0')
        return x;
    v = json_object_get(labels, name);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

static void add(struct named *out, int *n, int64_t v, const char *field, const char *name)
{
    if (v <= 0 || *n >= NAMED_MAX)
        return;
    for (int i = 0; i < *n; i++)
        if (out[i].version == v)
            return;
    out[*n].version = v;
    snprintf(out[*n].field, sizeof(out[*n].field), "%s%s%s", field, name ? "." : "",
             name ? name : "");
    (*n)++;
}

static int named_versions(const char *doc, struct named *out)
{
    json_t *root = json_loads(doc, 0, NULL), *labels, *v, *e;
    const char *key;
    size_t i;
    int n = 0;

    labels = json_object_get(root, "labels");
    v = json_object_get(root, "target");
    if (json_is_string(v))
        add(out, &n, resolve(labels, json_string_value(v)), "target", NULL);
    json_object_foreach(json_object_get(root, "weights"), key, v)
        add(out, &n, resolve(labels, key), "weights", key);
    json_array_foreach(json_object_get(root, "shadow"), i, e)
    {
        json_t *t = json_object_get(e, "target");
        if (json_is_string(t))
            add(out, &n, resolve(labels, json_string_value(t)), "shadow", NULL);
    }
    json_array_foreach(json_object_get(json_object_get(root, "compare"), "targets"), i,
                       e) if (json_is_string(e))
        add(out, &n, resolve(labels, json_string_value(e)), "compare", NULL);
    json_object_foreach(labels, key, v) if (json_is_integer(v))
        add(out, &n, json_integer_value(v), "labels", key);
    json_decref(root);
    return n;
}

/* The engine's state of a version: "absent" when it does not know it. */
static const char *state_of(const struct qv_model_info *mi, bool known, int64_t v,
                            enum qv_version_state *st)
{
    for (int i = 0; known && i < mi->n_versions; i++)
        if (mi->versions[i].version == v) {
            *st = mi->versions[i].state;
            return qv_version_state_name(*st);
        }
    *st = QV_STATE_UNLOADED;
    return "absent";
}

static void watch_model(qv_control *c, const char *model)
{
    struct named named[NAMED_MAX];
    struct qv_model_info mi;
    char *doc = NULL;
    bool known;
    int n;

    if (qv_router_get_route(c->router, model, &doc) != QV_OK)
        return;
    n = named_versions(doc, named);
    known = qv_engine_model_info(c->engine, model, &mi) == QV_OK;
    for (int i = 0; i < n; i++) {
        enum qv_version_state st;
        const char *name = state_of(&mi, known, named[i].version, &st);
        struct qv__missing *m = find_missing(c, model, named[i].version);
        bool gone = st == QV_STATE_UNLOADED || st == QV_STATE_UNAVAILABLE;
        char value[512];

        if (gone && m == NULL) {
            c->missing = qv_xrealloc(c->missing, (size_t)(c->n_missing + 1) * sizeof(*m));
            m = &c->missing[c->n_missing++];
            memset(m, 0, sizeof(*m));
            snprintf(m->model, sizeof(m->model), "%s", model);
            m->version = named[i].version;
            snprintf(value, sizeof(value),
                     "{\"version\": %" PRId64 ", \"state\": \"%s\", \"named_by\": \"%s\", "
                     "\"effect\": \"its traffic goes to the route's other versions, or to the "
                     "default when none is READY\"}",
                     named[i].version, name, named[i].field);
            qv_log(QV_LOG_WARN,
                   "model=%s version=%" PRId64 " state=%s named_by=%s msg=\"the route names a "
                   "version that is not served; its traffic falls back\"",
                   model, named[i].version, name, named[i].field);
            audit(c, model, "route.version_missing", value);
        } else if (!gone && st == QV_STATE_READY && m != NULL) {
            snprintf(value, sizeof(value),
                     "{\"version\": %" PRId64 ", \"state\": \"READY\", \"named_by\": \"%s\"}",
                     named[i].version, named[i].field);
            qv_log(QV_LOG_INFO, "model=%s version=%" PRId64 " msg=\"named version served again\"",
                   model, named[i].version);
            audit(c, model, "route.version_restored", value);
            *m = c->missing[--c->n_missing];
            m = NULL;
        }
        if (m != NULL)
            m->seen = true;
    }
    if (known)
        qv_model_info_free(&mi);
    free(doc);
}

void qv__watch_tick(qv_control *c)
{
    char(*names)[QV_MODEL_NAME_MAX] = NULL;
    int n = 0;

    for (int i = 0; i < c->n_missing; i++)
        c->missing[i].seen = false;
    qv_engine_model_names(c->engine, &names, &n);
    for (int i = 0; i < n; i++)
        watch_model(c, names[i]);
    free(names);
    /* No longer named by any route (or the model is gone): forget it quietly. */
    for (int i = 0; i < c->n_missing;)
        if (!c->missing[i].seen)
            c->missing[i] = c->missing[--c->n_missing];
        else
            i++;
}
