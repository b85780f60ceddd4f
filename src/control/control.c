/* SPDX-License-Identifier: MIT
 *
 * The controller's tick: route restore at start, score-driven weights, the
 * route weights in force exported to the monitor, then history, alerts and
 * rollouts (history.c, alerts.c, rollout.c).
 */
#include "control_int.h"

#define QV_LOG_MODULE "control"

#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void restore_routes(qv_control *c)
{
    struct qv_store_route *routes = NULL;
    struct qv_diag d = {{0}};
    size_t n = 0;

    if (c->store == NULL || qv_store_route_list(c->store, &routes, &n, &d) != QV_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        char *bandit = NULL;
        struct qv_diag rd = {{0}};
        if (routes[i].doc == NULL || routes[i].doc[0] == '\0')
            continue; /* an empty document stands for "no route" */
        /* No READY check (NULL resolver): at start a routed version may still be
         * loading, and picks skip versions that are not READY. */
        if (qv_router_set_route(c->router, routes[i].model, routes[i].doc, NULL, &rd) != QV_OK) {
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

/* Online accuracy (feedback counts and reward sums) from the last run. */
static void restore_feedback(qv_control *c)
{
    struct qv_store_kv *kv = NULL;
    struct qv_diag d = {{0}};
    size_t n = 0;

    if (c->store == NULL || qv_store_kv_list(c->store, "feedback", &kv, &n, &d) != QV_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        char *slash = strrchr(kv[i].key, '/');
        json_t *j = json_loads(kv[i].value, 0, NULL);
        json_t *count = json_object_get(j, "count"), *sum = json_object_get(j, "reward_sum");
        int64_t version = slash ? qv_repo_parse_version(slash + 1) : -1;

        if (version > 0 && json_is_integer(count) && json_is_number(sum)) {
            *slash = '\0';
            qv_vstats_feedback_restore(qv_monitor_version(c->monitor, kv[i].key, version),
                                       (uint64_t)json_integer_value(count), json_number_value(sum));
        }
        json_decref(j);
    }
    qv_store_kv_free(kv, n);
}

static double env_seconds(const char *name, double dflt)
{
    const char *s = getenv(name);
    char *end;
    double x;

    if (s == NULL || *s == '\0')
        return dflt;
    x = strtod(s, &end);
    if (*end != '\0' || !(x > 0)) {
        qv_log(QV_LOG_WARN, "%s=\"%s\" msg=\"expected a positive number of seconds; using %g\"",
               name, s, dflt);
        return dflt;
    }
    return x;
}

uint64_t qv__control_now_ms(const qv_control *c)
{
    return c->opt.clock_ms ? c->opt.clock_ms(c->opt.clock_ud) : qv_wall_ms();
}

int qv_control_create_opts(qv_engine *e, qv_router *r, qv_monitor *m, qv_store *s,
                           const struct qv_control_options *o, qv_control **out, struct qv_diag *d)
{
    qv_control *c = qv_xcalloc(1, sizeof(*c));

    (void)d;
    c->engine = e;
    c->router = r;
    c->monitor = m;
    c->store = s;
    if (o != NULL)
        c->opt = *o;
    if (!(c->opt.history_interval_s > 0))
        c->opt.history_interval_s = env_seconds("QUIVER_HISTORY_INTERVAL_S", 10);
    if (!(c->opt.history_retention_s > 0))
        c->opt.history_retention_s = env_seconds("QUIVER_HISTORY_RETENTION_S", 7 * 86400);
    pthread_mutex_init(&c->mu, NULL);
    c->was_leader = true; /* a single node runs the controller from the start */
    restore_routes(c);
    restore_feedback(c);
    qv__rollout_load(c);
    if (!c->opt.no_webhooks) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        c->webhook = qv__webhook_start();
    }
    *out = c;
    return QV_OK;
}

int qv_control_create(qv_engine *e, qv_router *r, qv_monitor *m, qv_store *s, qv_control **out,
                      struct qv_diag *d)
{
    return qv_control_create_opts(e, r, m, s, NULL, out, d);
}

void qv_control_destroy(qv_control *c)
{
    if (c == NULL)
        return;
    if (!c->opt.no_webhooks) {
        qv__webhook_stop(c->webhook);
        curl_global_cleanup();
    }
    qv__rollout_free(c);
    qv__alerts_free(c);
    qv__history_free(c);
    qv__watch_free(c);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Which monitored versions the engine still has: each is exported until the
 * model or the version is removed (or unloaded), then forgotten, so /metrics
 * tells what serves; a version that is known but not READY gets no traffic,
 * so its route weight is 0. */
struct reconcile {
    qv_control *c;
    char model[QV_MODEL_NAME_MAX]; /* the model info below is of this model */
    bool known;
    struct qv_model_info mi;
};

static void reconcile_one(void *ud, const char *model, int64_t version)
{
    struct reconcile *rc = ud;
    const struct qv_version_info *vi = NULL;

    if (strcmp(rc->model, model) != 0) {
        if (rc->known)
            qv_model_info_free(&rc->mi);
        snprintf(rc->model, sizeof(rc->model), "%s", model);
        rc->known = qv_engine_model_info(rc->c->engine, model, &rc->mi) == QV_OK;
    }
    for (int i = 0; rc->known && i < rc->mi.n_versions; i++)
        if (rc->mi.versions[i].version == version)
            vi = &rc->mi.versions[i];
    if (vi == NULL || vi->state == QV_STATE_UNLOADED) {
        qv_log(QV_LOG_DEBUG, "model=%s version=%lld msg=\"series no longer exported\"", model,
               (long long)version);
        qv_monitor_forget(rc->c->monitor, model, version);
    } else if (vi->state != QV_STATE_READY) {
        qv_monitor_route_weight(rc->c->monitor, model, version, 0.0);
    }
}

static void reconcile_metrics(qv_control *c)
{
    struct reconcile rc;

    memset(&rc, 0, sizeof(rc));
    rc.c = c;
    qv_monitor_each(c->monitor, reconcile_one, &rc);
    if (rc.known)
        qv_model_info_free(&rc.mi);
}

/* In a cluster, the controller node shares the weights the score policy moved: the
 * route goes to the store, whose notification brings it to every other node. */
static void share_moved_route(qv_control *c, const char *model)
{
    struct qv_diag d = {{0}};
    char *doc = NULL;

    if (c->cluster == NULL || c->store == NULL ||
        qv_router_get_route(c->router, model, &doc) != QV_OK)
        return;
    if (qv_store_route_put(c->store, model, doc, &d) != QV_OK)
        qv_log(QV_LOG_WARN, "model=%s msg=\"cannot share the score-moved weights: %s\"", model,
               d.msg);
    free(doc);
}

/* Feeds each model's windows to the router's score policy and exports the
 * route weights in force to the monitor. Only the node running the controller (lead)
 * moves score-driven weights; the others keep the scores for the stats endpoint and
 * receive the weights with the shared route. */
static void update_scores(qv_control *c, bool lead)
{
    char(*names)[QV_MODEL_NAME_MAX] = NULL;
    int n = 0;

    qv_engine_model_names(c->engine, &names, &n);
    for (int i = 0; i < n; i++) {
        int64_t versions[QV_MAX_VERSIONS];
        struct qv_window w[QV_MAX_VERSIONS];
        double weights[QV_MAX_VERSIONS];
        int k = qv_engine_ready_versions(c->engine, names[i], versions, QV_MAX_VERSIONS);
        for (int j = 0; j < k; j++)
            qv_monitor_window(c->monitor, names[i], versions[j], 30, &w[j]);
        if (k > 0) {
            bool moved = false;

            qv_router_update_scores_ex(c->router, names[i], versions, w, k, lead, &moved);
            if (moved)
                share_moved_route(c, names[i]);
        }
        qv_control_route_weights(c, names[i], versions, k, weights);
        for (int j = 0; j < k; j++)
            qv_monitor_route_weight(c->monitor, names[i], versions[j], weights[j] / 100.0);
    }
    free(names);
}

void qv_control_set_cluster(qv_control *c, const struct qv_cluster *cl)
{
    pthread_mutex_lock(&c->mu);
    c->cluster = cl;
    /* In a cluster, the first tick that holds the controller lock takes over the stored state. */
    c->was_leader = cl == NULL;
    pthread_mutex_unlock(&c->mu);
}

void qv_control_cluster_kv(void *control, const char *ns)
{
    qv_control *c = control;

    bool rollout = strcmp(ns, "rollout") == 0, bandit = strcmp(ns, "bandit") == 0,
         alerts = strcmp(ns, "alerts") == 0;

    if (!rollout && !bandit && !alerts)
        return;
    pthread_mutex_lock(&c->mu);
    if (rollout)
        qv__rollout_sync(c);
    /* The controller node is where these states come from. */
    else if (bandit && !qv_cluster_is_leader(c->cluster))
        qv__bandit_follow(c);
    else if (alerts && !qv_cluster_is_leader(c->cluster))
        qv__alerts_follow(c);
    pthread_mutex_unlock(&c->mu);
}

void qv_control_tick(qv_control *c)
{
    bool lead;

    pthread_mutex_lock(&c->mu);
    lead = qv_cluster_is_leader(c->cluster);
    if (lead && !c->was_leader && c->cluster != NULL) {
        qv_log(QV_LOG_INFO, "node=%s msg=\"this node runs the controller; resuming the persisted "
                            "rollouts and alert states\"", qv_cluster_node(c->cluster));
        qv__rollout_sync(c);
        qv__alerts_follow(c); /* an alert that fired before is not fired again */
    }
    c->was_leader = lead;
    qv__counters_publish(c);
    update_scores(c, lead);
    reconcile_metrics(c);
    qv__history_tick(c);
    /* In a cluster, alerts are evaluated, fired and shared by the controller node only (one
     * webhook per alert); the other nodes show its states (qv_control_cluster_kv). */
    if (lead) {
        qv__alerts_tick(c);
        qv__bandit_tick(c);
        qv__rollout_tick(c);
    }
    qv__watch_tick(c);
    pthread_mutex_unlock(&c->mu);
}
