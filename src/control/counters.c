/* SPDX-License-Identifier: MIT
 *
 * Cluster-wide figures: every node publishes its cumulative counters of each (model, version)
 * to the store's kv space each tick (namespace "counters", key "MODEL/VERSION/NODE"), and the
 * controller sums the latest of every node, so a rollout on three nodes sees all the canary's
 * traffic rather than the third its own node answered. Only what decisions use is shared:
 * outcomes, the total latency histogram, batches and CPU time.
 */
#define QV_LOG_MODULE "control"

#include "control_int.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define NS "counters"

static json_t *u64s(const uint64_t *a, int n)
{
    json_t *arr = json_array();

    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_integer((json_int_t)a[i]));
    return arr;
}

static void read_u64s(json_t *arr, uint64_t *a, int n)
{
    for (int i = 0; i < n && i < (int)json_array_size(arr); i++) {
        json_int_t v = json_integer_value(json_array_get(arr, (size_t)i));

        a[i] += v > 0 ? (uint64_t)v : 0;
    }
}

static uint64_t jget(json_t *o, const char *k)
{
    json_int_t v = json_integer_value(json_object_get(o, k));

    return v > 0 ? (uint64_t)v : 0;
}

struct publish {
    qv_control *c;
    const char *node;
};

static void publish_one(void *ud, const char *model, int64_t version)
{
    struct publish *p = ud;
    qv_vstats *vs = qv_monitor_find_hold(p->c->monitor, model, version);
    struct qv_vstats_snap s;
    struct qv_diag d = {{0}};
    char key[QV_MODEL_NAME_MAX + 128], *text;
    json_t *o;

    if (vs == NULL)
        return;
    qv_vstats_snapshot(vs, &s);
    qv_monitor_release(p->c->monitor, vs);
    o = json_object();
    json_object_set_new(o, "outcomes", u64s(s.outcomes, QV_OUTCOME_COUNT));
    json_object_set_new(o, "latency", u64s(s.total.buckets, QV_MONITOR_LAT_BUCKETS));
    json_object_set_new(o, "latency_sum_ns", json_integer((json_int_t)s.total.sum_ns));
    json_object_set_new(o, "batches", u64s(s.batch_buckets, QV_MONITOR_BATCH_BUCKETS));
    json_object_set_new(o, "batch_items", json_integer((json_int_t)s.batch_items));
    json_object_set_new(o, "cpu_ns", json_integer((json_int_t)s.cpu_ns));
    json_object_set_new(o, "memory_bytes", json_integer((json_int_t)s.memory_bytes));
    text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    snprintf(key, sizeof(key), "%s/%" PRId64 "/%s", model, version, p->node);
    if (text != NULL && qv_store_kv_put(p->c->store, NS, key, text, &d) != QV_OK)
        qv_log(QV_LOG_DEBUG, "model=%s version=%" PRId64 " msg=\"counters not published\" "
                             "reason=\"%s\"", model, version, d.msg);
    free(text);
}

void qv__counters_publish(qv_control *c)
{
    struct publish p = {c, NULL};

    if (c->cluster == NULL || c->store == NULL)
        return;
    p.node = qv_cluster_node(c->cluster);
    qv_monitor_each(c->monitor, publish_one, &p);
}

int qv__counters_sum(qv_control *c, const char *model, int64_t version,
                     struct qv_vstats_snap *out)
{
    struct qv_store_kv *kv = NULL;
    struct qv_diag d = {{0}};
    char prefix[QV_MODEL_NAME_MAX + 64];
    size_t n = 0, plen;

    if (qv_store_kv_list(c->store, NS, &kv, &n, &d) != QV_OK)
        return QV_ESTORE;
    memset(out, 0, sizeof(*out));
    snprintf(prefix, sizeof(prefix), "%s/%" PRId64 "/", model, version);
    plen = strlen(prefix);
    for (size_t i = 0; i < n; i++) {
        json_t *o;

        if (strncmp(kv[i].key, prefix, plen) != 0 || strchr(kv[i].key + plen, '/') != NULL)
            continue;
        o = json_loads(kv[i].value, 0, NULL);
        if (o == NULL)
            continue;
        read_u64s(json_object_get(o, "outcomes"), out->outcomes, QV_OUTCOME_COUNT);
        read_u64s(json_object_get(o, "latency"), out->total.buckets, QV_MONITOR_LAT_BUCKETS);
        out->total.sum_ns += jget(o, "latency_sum_ns");
        read_u64s(json_object_get(o, "batches"), out->batch_buckets, QV_MONITOR_BATCH_BUCKETS);
        out->batch_items += jget(o, "batch_items");
        out->cpu_ns += jget(o, "cpu_ns");
        out->memory_bytes += jget(o, "memory_bytes");
        json_decref(o);
    }
    qv_store_kv_free(kv, n);
    out->t_ns = qv_now_ns();
    out->created_ns = out->t_ns;
    return QV_OK;
}
