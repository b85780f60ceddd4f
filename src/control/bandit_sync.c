/* SPDX-License-Identifier: MIT
 *
 * Cluster mode: the bandit's arms are the cluster's. A feedback accepted on any node adds its
 * reward to the store's totals of (model, version) (qv_store_feedback_add, once per request id
 * for the whole cluster). Each tick the controller node sets every arm from its version's
 * totals, Beta(1 + rewards, 1 + (count - rewards)) with sum = rewards and n = count, and when
 * they moved writes the arms to the store (kv namespace "bandit", key MODEL); the kv write's
 * notification brings them to every other node, which applies them as they are. So every node
 * draws from the same arms, moved by the feedback of every node; the arms are a function of the
 * totals, so a controller taking over (or a write lost while PostgreSQL was down) never counts a
 * feedback twice or loses one.
 */
#define QV_LOG_MODULE "control"

#include "control_int.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define NS "bandit"

/* Sets the arms of model from the cluster's totals; stores and applies them when they moved.
 * Controller node only, under c->mu. */
static void sync_model(qv_control *c, const char *model)
{
    struct qv_store_feedback_total *t = NULL;
    struct qv_diag d = {{0}};
    char *local = NULL, *stored = NULL, *text = NULL;
    json_t *doc = NULL, *arm;
    size_t n = 0, i;

    if (qv_router_bandit_state_get(c->router, model, &local) != QV_OK)
        return; /* not a bandit route */
    if (qv_store_feedback_totals(c->store, model, &t, &n, &d) != QV_OK)
        goto out;
    doc = json_loads(local, 0, NULL);
    if (doc == NULL)
        goto out;
    json_array_foreach(json_object_get(doc, "arms"), i, arm)
    {
        json_int_t version = json_integer_value(json_object_get(arm, "version"));
        double count = 0, sum = 0;

        for (size_t k = 0; k < n; k++) {
            if (t[k].version != version)
                continue;
            count = (double)t[k].count;
            sum = t[k].reward_sum < 0 ? 0 : t[k].reward_sum > count ? count : t[k].reward_sum;
        }
        json_object_set_new(arm, "alpha", json_real(1.0 + sum));
        json_object_set_new(arm, "beta", json_real(1.0 + count - sum));
        json_object_set_new(arm, "sum", json_real(sum));
        json_object_set_new(arm, "n", json_integer((json_int_t)count));
    }
    text = json_dumps(doc, JSON_PRESERVE_ORDER | JSON_COMPACT | JSON_REAL_PRECISION(17));
    if (text == NULL)
        goto out;
    if (qv_store_kv_get(c->store, NS, model, &stored, &d) != QV_OK || strcmp(stored, text) != 0) {
        /* Stored first: the arms move on this node only once every node can follow. */
        if (qv_store_kv_put(c->store, NS, model, text, &d) != QV_OK) {
            qv_log(QV_LOG_WARN, "model=%s msg=\"bandit arms not shared\" reason=\"%s\"", model,
                   d.msg);
            goto out;
        }
    }
    if (strcmp(local, text) != 0 && qv_router_bandit_state_set(c->router, model, text, &d) != QV_OK)
        qv_log(QV_LOG_WARN, "model=%s msg=\"bandit arms not applied\" reason=\"%s\"", model,
               d.msg);
out:
    json_decref(doc);
    free(t);
    free(text);
    free(stored);
    free(local);
}

void qv__bandit_tick(qv_control *c)
{
    char(*names)[QV_MODEL_NAME_MAX] = NULL;
    int n = 0;

    if (c->cluster == NULL || c->store == NULL)
        return;
    qv_engine_model_names(c->engine, &names, &n);
    for (int i = 0; i < n; i++)
        sync_model(c, names[i]);
    free(names);
}

void qv__bandit_follow(qv_control *c)
{
    struct qv_store_kv *kv = NULL;
    struct qv_diag d = {{0}};
    size_t n = 0;

    if (c->store == NULL || qv_store_kv_list(c->store, NS, &kv, &n, &d) != QV_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        struct qv_diag rd = {{0}};

        /* QV_ENOENT: the model's route here is not a bandit (yet): nothing to follow. */
        if (qv_router_bandit_state_set(c->router, kv[i].key, kv[i].value, &rd) != QV_OK)
            qv_log(QV_LOG_DEBUG, "model=%s msg=\"bandit arms from the cluster not applied\" "
                                 "reason=\"%s\"", kv[i].key, rd.msg);
    }
    qv_store_kv_free(kv, n);
}
