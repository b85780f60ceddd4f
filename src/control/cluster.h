/* SPDX-License-Identifier: MIT
 *
 * control/cluster.h -- cluster mode: several nodes share one PostgreSQL store.
 *
 * A listener thread keeps its own connection, LISTENs on the store's notification channel and
 * applies every route (and so label) change another node committed to this node's router,
 * usually within milliseconds; it re-reads every route in full after each (re)connect and every
 * few seconds, so a missed notification is never a lost change. The same connection holds the
 * cluster's controller lock (a session-level advisory lock): exactly one node at a time runs
 * the rollout controller; when it dies its session ends, the lock is free and the next node to
 * try (every second) takes over and resumes the persisted rollouts.
 *
 * Nothing here is on the inference path: the router is updated with its atomic swap.
 * docs/cluster.md describes the model and each fault.
 */
#ifndef QV_CLUSTER_H
#define QV_CLUSTER_H

#include <stdbool.h>

#include "../router/router.h"
#include "../store/store.h"

typedef struct qv_cluster qv_cluster;

/* Called from the listener thread when a namespace of the kv space changed on some node
 * ("rollout", "bandit", ...). */
typedef void (*qv_cluster_kv_fn)(void *ud, const char *ns);

/* Start the listener for store_url (a postgres:// URL; store is the node's open store on the
 * same database, router the node's router). node names this node in logs. kv_fn (may be NULL)
 * is told of kv changes, and of "rollout" at every full re-read. The first full read runs on
 * the listener thread as soon as it is connected. Main thread. */
int qv_cluster_start(const char *store_url, qv_store *store, qv_router *router, const char *node,
                     qv_cluster_kv_fn kv_fn, void *kv_ud, qv_cluster **out, struct qv_diag *d);
/* Stop the listener and free c (releasing the controller lock). NULL is a no-op. */
void qv_cluster_stop(qv_cluster *c);
/* Whether this node holds the controller lock. NULL: true (a single node). Any thread. */
bool qv_cluster_is_leader(const qv_cluster *c);
/* The node's name. Any thread. */
const char *qv_cluster_node(const qv_cluster *c);
/* This process's node name in cluster mode, "" otherwise ([A-Za-z0-9._-] only: safe in JSON
 * and label values). Set once by qv_cluster_start, before the HTTP server starts. */
const char *qv_cluster_node_name(void);
/* For qv_router_set_feedback_source (ud = the cluster): looks a request another node
 * answered up in the store. Every node writes the requests it answered every 250 ms, once
 * they are 1 s old, and they are kept 15 minutes: feedback sent to another node than the one
 * that answered joins from about 1.5 s after the answer until 15 minutes after it. */
int qv_cluster_fb_source(void *ud, const char *id, char *model_out, int64_t *version, int *cls);
/* Whether the listener's connection to PostgreSQL is up. Any thread. */
bool qv_cluster_connected(const qv_cluster *c);

#endif /* QV_CLUSTER_H */
