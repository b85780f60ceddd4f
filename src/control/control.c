/* SPDX-License-Identifier: MIT
 *
 * The controller's tick: route restore at start, score-driven weights. */
#include "control.h"

#define QV_LOG_MODULE "control"

#include <stdlib.h>
#include <string.h>

struct qv_control {
    qv_engine *engine;
    qv_router *router;
    qv_monitor *monitor;
    qv_store *store;
    pthread_mutex_t mu;
};

static bool is_ready(void *ud, const char *model, int64_t version)
{
    return qv_engine_is_ready(ud, model, version);
}

/* Routes are restored without the READY check: at start a routed version may
 * still be loading, and the router skips versions that are not READY. */
static bool always(void *ud, const char *model, int64_t version)
{
    (void)ud;
    (void)model;
    (void)version;
    return true;
}

static void restore_routes(qv_control *c)
{
    struct qv_store_route *routes = NULL;
    struct qv_resolver res = {always, NULL, NULL};
    struct qv_diag d = {{0}};
    size_t n = 0;

    if (c->store == NULL || qv_store_route_list(c->store, &routes, &n, &d) != QV_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        char *bandit = NULL;
        struct qv_diag rd = {{0}};
        if (qv_router_set_route(c->router, routes[i].model, routes[i].doc, &res, &rd) != QV_OK) {
            qv_log(QV_LOG_WARN, "model=%s msg=\"stored route rejected\" reason=\"%s\"",
                   routes[i].model, rd.msg);
            continue;
        }
        if (qv_store_kv_get(c->store, "bandit", routes[i].model, &bandit, &rd) == QV_OK) {
            qv_router_bandit_state_set(c->router, routes[i].model, bandit, &rd);
            free(bandit);
        }
        qv_log(QV_LOG_INFO, "model=%s msg=\"route restored\"", routes[i].model);
    }
    qv_store_route_free(routes, n);
}

int qv_control_create(qv_engine *e, qv_router *r, qv_monitor *m, qv_store *s, qv_control **out,
                      struct qv_diag *d)
{
    qv_control *c = qv_xcalloc(1, sizeof(*c));

    (void)d;
    c->engine = e;
    c->router = r;
    c->monitor = m;
    c->store = s;
    pthread_mutex_init(&c->mu, NULL);
    restore_routes(c);
    *out = c;
    return QV_OK;
}

void qv_control_destroy(qv_control *c)
{
    if (c == NULL)
        return;
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Feeds each model's windows to the router's score policy. */
static void update_scores(qv_control *c)
{
    char (*names)[QV_MODEL_NAME_MAX] = NULL;
    int n = 0;

    qv_engine_model_names(c->engine, &names, &n);
    for (int i = 0; i < n; i++) {
        int64_t versions[QV_MAX_VERSIONS];
        struct qv_window w[QV_MAX_VERSIONS];
        int k = qv_engine_ready_versions(c->engine, names[i], versions, QV_MAX_VERSIONS);
        for (int j = 0; j < k; j++)
            qv_monitor_window(c->monitor, names[i], versions[j], 30, &w[j]);
        if (k > 0)
            qv_router_update_scores(c->router, names[i], versions, w, k);
    }
    free(names);
}

void qv_control_tick(qv_control *c)
{
    pthread_mutex_lock(&c->mu);
    update_scores(c);
    pthread_mutex_unlock(&c->mu);
    (void)is_ready;
}
