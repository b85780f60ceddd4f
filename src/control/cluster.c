/* SPDX-License-Identifier: MIT
 *
 * Cluster mode's listener thread: LISTEN/NOTIFY on the store's channel, route sync into the
 * router, full re-read on (re)connect and periodically, and the controller lock.
 */
#define QV_LOG_MODULE "cluster"

#include "cluster.h"

#include "../store/postgres.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define LEADER_LOCK_SQL "SELECT pg_try_advisory_lock(x'71636c6561646572'::bigint)"
#define RESYNC_MS 5000      /* full re-read, in case a notification was missed */
#define LEADER_TRY_MS 1000  /* how often a follower tries to take the controller lock */
#define BACKOFF_MAX_MS 5000 /* reconnect backoff ceiling */
#define DEFAULT_DOC "{\"policy\":\"default\"}"
#define RING_FLUSH_MS 250        /* answered requests are written this often */
#define RING_SETTLE_MS 1000      /* ... once this old, so their outcome is recorded */
#define RING_BATCH 4096          /* at most this many per write */
#define RING_PRUNE_MS 60000      /* old rows are deleted this often */
#define RING_RETENTION_MS 900000 /* a request stays joinable across nodes for 15 min */

/* This process's node name, for metadata and metrics ("" outside cluster mode). */
static char node_name[64];

const char *qv_cluster_node_name(void)
{
    return node_name;
}

struct qv_cluster {
    char *url;
    qv_store *store;
    qv_router *router;
    char node[128];
    qv_cluster_kv_fn kv_fn;
    void *kv_ud;
    pthread_t thread;
    atomic_bool stop;
    atomic_bool leader;
    atomic_bool connected;
    PGconn *conn; /* listener thread only (and start, before the thread runs) */
    struct qv_router_fb_entry *ring; /* export buffer, RING_BATCH entries */
};

/* Write the requests this node answered (older than RING_SETTLE_MS) for the other nodes'
 * feedback joins. While the store is unreachable they are dropped: such requests are joinable
 * on this node only. */
static void flush_ring(qv_cluster *c)
{
    struct qv_store_request rows[256];
    size_t n = qv_router_feedback_export(c->router, qv_wall_ms() - RING_SETTLE_MS, c->ring,
                                         RING_BATCH);

    for (size_t i = 0; i < n;) {
        size_t k = 0;
        struct qv_diag d = {{0}};

        for (; k < QV_ARRAY_LEN(rows) && i < n; k++, i++) {
            rows[k].id = c->ring[i].id;
            rows[k].model = c->ring[i].model;
            rows[k].version = c->ring[i].version;
            rows[k].cls = c->ring[i].cls;
            rows[k].ts_ms = c->ring[i].ts_ms;
        }
        if (qv_store_request_add(c->store, rows, k, &d) != QV_OK)
            qv_log(QV_LOG_DEBUG, "node=%s requests=%zu msg=\"answered requests not shared\" "
                                 "reason=\"%s\"", c->node, k, d.msg);
    }
}

static void prune_ring(qv_cluster *c)
{
    struct qv_diag d = {{0}};

    qv_store_request_prune(c->store, qv_wall_ms() - RING_RETENTION_MS, NULL, &d);
}

int qv_cluster_fb_source(void *ud, const char *id, char *model_out, int64_t *version, int *cls)
{
    qv_cluster *c = ud;
    struct qv_diag d = {{0}};

    return qv_store_request_get(c->store, id, model_out, version, cls, &d) == QV_OK ? 0 : -1;
}

/* Make model's route in this node's router equal to the stored document. */
static void sync_model(qv_cluster *c, const char *model, const char *doc)
{
    struct qv_diag d = {{0}};
    char *cur = NULL;
    bool have = qv_router_get_route(c->router, model, &cur) == QV_OK;

    if (doc == NULL || doc[0] == '\0' || strcmp(doc, DEFAULT_DOC) == 0) {
        if (have && (doc == NULL || strcmp(cur, DEFAULT_DOC) != 0)) {
            qv_router_clear(c->router, model);
            qv_log(QV_LOG_INFO, "node=%s model=%s msg=\"route cleared by another node\"", c->node,
                   model);
        }
        free(cur);
        return;
    }
    if (have && strcmp(cur, doc) == 0) {
        free(cur);
        return;
    }
    free(cur);
    /* No READY check: a version routed by another node may still be loading here, and picks
     * skip versions that are not READY. */
    if (qv_router_set_route(c->router, model, doc, NULL, &d) != QV_OK)
        qv_log(QV_LOG_WARN, "node=%s model=%s msg=\"route from the cluster rejected\" reason=\"%s\"",
               c->node, model, d.msg);
    else
        qv_log(QV_LOG_INFO, "node=%s model=%s msg=\"route applied from the cluster\"", c->node,
               model);
}

static void sync_one(qv_cluster *c, const char *model)
{
    struct qv_diag d = {{0}};
    char *doc = NULL;
    int err = qv_store_route_get(c->store, model, &doc, &d);

    if (err == QV_OK)
        sync_model(c, model, doc);
    else if (err == QV_ENOENT)
        sync_model(c, model, NULL);
    free(doc);
}

static void sync_all(qv_cluster *c)
{
    struct qv_store_route *routes = NULL;
    struct qv_diag d = {{0}};
    size_t n = 0;

    if (qv_store_route_list(c->store, &routes, &n, &d) != QV_OK) {
        qv_log(QV_LOG_DEBUG, "node=%s msg=\"route re-read failed\" reason=\"%s\"", c->node, d.msg);
        return;
    }
    for (size_t i = 0; i < n; i++)
        sync_model(c, routes[i].model, routes[i].doc);
    qv_store_route_free(routes, n);
}

static void drop_conn(qv_cluster *c)
{
    if (c->conn != NULL)
        PQfinish(c->conn);
    c->conn = NULL;
    atomic_store(&c->connected, false);
    if (atomic_exchange(&c->leader, false))
        qv_log(QV_LOG_WARN, "node=%s msg=\"lost the controller lock (connection lost)\"", c->node);
}

static bool try_connect(qv_cluster *c)
{
    struct qv_diag d = {{0}};
    PGresult *r;
    char sql[64];

    c->conn = qv__pg_connect(c->url, "cluster", &d);
    if (c->conn == NULL)
        return false;
    snprintf(sql, sizeof(sql), "LISTEN %s", QV_STORE_PG_CHANNEL);
    r = PQexec(c->conn, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        PQclear(r);
        drop_conn(c);
        return false;
    }
    PQclear(r);
    atomic_store(&c->connected, true);
    return true;
}

static void try_lead(qv_cluster *c)
{
    PGresult *r;

    if (atomic_load(&c->leader) || c->conn == NULL)
        return;
    r = PQexec(c->conn, LEADER_LOCK_SQL);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
        strcmp(PQgetvalue(r, 0, 0), "t") == 0) {
        atomic_store(&c->leader, true);
        qv_log(QV_LOG_INFO, "node=%s msg=\"took the controller lock: this node runs the cluster's "
                            "controller\"", c->node);
    }
    PQclear(r);
}

/* Sleep up to ms, waking early when asked to stop. */
static void nap(qv_cluster *c, unsigned ms)
{
    while (ms > 0 && !atomic_load(&c->stop)) {
        unsigned step = ms < 100 ? ms : 100;
        poll(NULL, 0, (int)step);
        ms -= step;
    }
}

static void handle_notify(qv_cluster *c, const char *payload)
{
    const char *sp = strchr(payload, ' ');

    if (sp == NULL)
        return;
    if (strncmp(payload, "route ", 6) == 0 || strncmp(payload, "label ", 6) == 0)
        sync_one(c, sp + 1);
    else if (strncmp(payload, "kv ", 3) == 0 && c->kv_fn != NULL)
        c->kv_fn(c->kv_ud, sp + 1);
}

static void *run(void *arg)
{
    qv_cluster *c = arg;
    unsigned backoff = 0;
    uint64_t next_sync = 0, next_lead = 0, next_flush = 0, next_prune = 0;

    while (!atomic_load(&c->stop)) {
        struct pollfd pfd;
        PGnotify *n;
        uint64_t now;

        if (c->conn == NULL) {
            if (!try_connect(c)) {
                backoff = backoff == 0 ? 100 : backoff * 2;
                if (backoff > BACKOFF_MAX_MS)
                    backoff = BACKOFF_MAX_MS;
                nap(c, backoff);
                continue;
            }
            if (backoff != 0)
                qv_log(QV_LOG_INFO, "node=%s msg=\"reconnected to PostgreSQL; re-reading the "
                                    "cluster state\"", c->node);
            backoff = 0;
            next_sync = 0;
            next_lead = 0;
        }
        now = qv_wall_ms();
        if (now >= next_lead) {
            try_lead(c);
            next_lead = now + LEADER_TRY_MS;
        }
        if (now >= next_flush) {
            flush_ring(c);
            next_flush = now + RING_FLUSH_MS;
        }
        if (now >= next_prune) {
            if (atomic_load(&c->leader))
                prune_ring(c);
            next_prune = now + RING_PRUNE_MS;
        }
        if (now >= next_sync) {
            sync_all(c);
            if (c->kv_fn != NULL) {
                c->kv_fn(c->kv_ud, "rollout");
                c->kv_fn(c->kv_ud, "bandit");
                c->kv_fn(c->kv_ud, "alerts");
            }
            next_sync = now + RESYNC_MS;
        }
        pfd.fd = PQsocket(c->conn);
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (pfd.fd < 0) {
            drop_conn(c);
            continue;
        }
        if (poll(&pfd, 1, 200) < 0 && errno != EINTR) {
            drop_conn(c);
            continue;
        }
        if (!PQconsumeInput(c->conn) || PQstatus(c->conn) != CONNECTION_OK) {
            qv_log(QV_LOG_WARN, "node=%s msg=\"lost the connection to PostgreSQL; reconnecting\"",
                   c->node);
            drop_conn(c);
            backoff = 100;
            continue;
        }
        while ((n = PQnotifies(c->conn)) != NULL) {
            handle_notify(c, n->extra);
            PQfreemem(n);
        }
    }
    drop_conn(c);
    return NULL;
}

int qv_cluster_start(const char *store_url, qv_store *store, qv_router *router, const char *node,
                     qv_cluster_kv_fn kv_fn, void *kv_ud, qv_cluster **out, struct qv_diag *d)
{
    qv_cluster *c = qv_xcalloc(1, sizeof(*c));

    c->kv_fn = kv_fn;
    c->kv_ud = kv_ud;
    c->ring = qv_xcalloc(RING_BATCH, sizeof(*c->ring));
    c->url = qv_xstrdup(store_url);
    c->store = store;
    c->router = router;
    snprintf(c->node, sizeof(c->node), "%s", node != NULL ? node : "");
    snprintf(node_name, sizeof(node_name), "%s", c->node);
    atomic_init(&c->stop, false);
    atomic_init(&c->leader, false);
    atomic_init(&c->connected, false);
    if (pthread_create(&c->thread, NULL, run, c) != 0) {
        free(c->ring);
        free(c->url);
        free(c);
        return qv_fail(d, QV_ENOMEM, "cluster: cannot start the listener thread");
    }
    *out = c;
    return QV_OK;
}

void qv_cluster_stop(qv_cluster *c)
{
    if (c == NULL)
        return;
    atomic_store(&c->stop, true);
    pthread_join(c->thread, NULL);
    free(c->ring);
    free(c->url);
    free(c);
}

bool qv_cluster_is_leader(const qv_cluster *c)
{
    return c == NULL || atomic_load(&c->leader);
}

const char *qv_cluster_node(const qv_cluster *c)
{
    return c->node;
}

bool qv_cluster_connected(const qv_cluster *c)
{
    return c != NULL && atomic_load(&c->connected);
}
