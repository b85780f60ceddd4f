/* SPDX-License-Identifier: MIT
 *
 * store/store.h -- everything quiver keeps across a restart: the model versions it has seen,
 * routes, labels, the audit log, metric history and a small key/value space for controller and
 * router state.
 *
 * A store is opened from a URL: `sqlite:/path/to/state.db` (also `sqlite:relative.db`,
 * `sqlite:///abs/path.db` and `sqlite::memory:`), or `postgres://USER@HOST:PORT/DB` /
 * `postgresql://...?param=value` for PostgreSQL (libpq's URI, with its PG* environment). Opening applies the
 * schema migrations the database does not have yet, each in its own transaction.
 *
 * Every function may be called from any thread on one shared handle; the implementation
 * serializes. Several handles (or processes) on the same database are allowed too.
 *
 * Errors: QV_EINVAL for bad arguments (diag says which), QV_ENOENT when a looked-up row does not
 * exist, QV_ENOMEM when a result does not fit in memory, QV_ESTORE when the database fails (the
 * diag carries the database's own message), QV_ESTOREDOWN when a PostgreSQL store cannot reach
 * its server (the call changed nothing; later calls reconnect with a backoff). On error, out-parameters are left untouched and
 * nothing is changed in the database.
 *
 * A write that cannot be saved fails with QV_ESTORE, and callers must not act on a change that
 * failed to save. Before each write the SQLite store checks that its database file is still the
 * one it opened (fstat: st_nlink == 0 means it was deleted or replaced, e.g. by removing the data
 * directory): such a write fails with QV_ESTORE saying so, instead of going to a file nobody
 * will ever open again.
 *
 * The store never writes audit events on its own: a caller that changes a route or a label and
 * wants it audited also calls qv_store_event_add().
 *
 * Results that hold strings are returned as caller-owned arrays, freed with the matching
 * *_free() function. Strings passed in are borrowed for the duration of the call.
 */
#ifndef QV_STORE_H
#define QV_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "../util/util.h"

typedef struct qv_store qv_store; /* opaque; one per open database */

/* Open (creating if needed) the store at url and bring its schema up to date. On success *out
 * owns the handle; close it with qv_store_close(). Any thread.
 * QV_EINVAL: malformed URL or unknown scheme (the diag names the scheme, never the whole URL,
 * which may hold a password). QV_ENOTSUP: a known scheme this build cannot serve.
 * QV_ESTORE: the database cannot be opened or migrated (the diag names the path). */
int qv_store_open(const char *url, qv_store **out, struct qv_diag *d);
void qv_store_close(qv_store *s); /* NULL is a no-op. No call may be in flight. */

/* "sqlite", ... Any thread. Never NULL. */
const char *qv_store_kind(const qv_store *s);
/* Highest migration applied to the database. Any thread. */
int qv_store_schema_version(qv_store *s, int *out, struct qv_diag *d);

/* ---- Model versions seen ---- */

/* Lifecycle states, stored as text. Anything else is QV_EINVAL. */
#define QV_STORE_STATE_LOADING "LOADING"
#define QV_STORE_STATE_READY "READY"
#define QV_STORE_STATE_DRAINING "DRAINING"
#define QV_STORE_STATE_UNLOADED "UNLOADED"
#define QV_STORE_STATE_UNAVAILABLE "UNAVAILABLE"

struct qv_store_version {
    char *model;
    int64_t version;
    char sha256[QV_SHA256_HEX]; /* lowercase hex, "" when unknown */
    char state[16];             /* one of QV_STORE_STATE_* */
    char *reason;               /* why it is in this state; "" when none; never NULL in results */
    uint64_t first_seen_ms;     /* wall ms of the first upsert; kept by later upserts */
    uint64_t updated_ms;        /* wall ms of the last upsert */
};

/* Insert or update (model, version). Updates sha256, state, reason and updated_ms; first_seen_ms
 * is set to updated_ms on insert and never changed afterwards (v->first_seen_ms is ignored).
 * updated_ms 0 means now. reason may be NULL. Any thread. */
int qv_store_version_upsert(qv_store *s, const struct qv_store_version *v, struct qv_diag *d);
/* Fill *out with (model, version); free with qv_store_version_fini(). QV_ENOENT if unknown. */
int qv_store_version_get(qv_store *s, const char *model, int64_t version,
                         struct qv_store_version *out, struct qv_diag *d);
/* All versions of model (all models when model is NULL), ordered by model then version.
 * *out (NULL when *n is 0) is freed with qv_store_version_free(). Any thread. */
int qv_store_version_list(qv_store *s, const char *model, struct qv_store_version **out, size_t *n,
                          struct qv_diag *d);
void qv_store_version_fini(struct qv_store_version *v);           /* frees the strings of one row */
void qv_store_version_free(struct qv_store_version *a, size_t n); /* NULL is a no-op */

/* ---- Routes: one opaque document (JSON text) per model ---- */

struct qv_store_route {
    char *model;
    char *doc;      /* current document */
    char *prev_doc; /* the document it replaced; NULL if none */
    uint64_t updated_ms;
};

/* Replace model's route document with doc; the old one is pushed on the model's route history
 * (a stack of the documents changes replaced, newest on top, at most QV_STORE_ROUTE_HISTORY_MAX
 * kept). Each new document gets the next revision of the model (1, 2, ...; never reused, also
 * after a rollback). Putting the document in force again changes nothing. Any thread. */
#define QV_STORE_ROUTE_HISTORY_MAX 100
int qv_store_route_put(qv_store *s, const char *model, const char *doc, struct qv_diag *d);
/* *doc (caller frees) is model's current document. QV_ENOENT if model has none. Any thread. */
int qv_store_route_get(qv_store *s, const char *model, char **doc, struct qv_diag *d);
/* *doc (caller frees) is the document the current one replaced (the top of the history).
 * QV_ENOENT if none. */
int qv_store_route_get_previous(qv_store *s, const char *model, char **doc, struct qv_diag *d);
/* Atomically pop the top of the route history and make it current; the current document is
 * dropped, so a second rollback goes one more step back (a stack, not a toggle). *doc
 * (optional, caller frees) receives the now-current document and *revision (optional) its
 * revision. QV_ENOENT if the history is empty. Any thread. */
int qv_store_route_rollback(qv_store *s, const char *model, char **doc, struct qv_diag *d);
int qv_store_route_rollback_rev(qv_store *s, const char *model, char **doc, int64_t *revision,
                                struct qv_diag *d);
/* Revision of model's current document and how many documents its history holds.
 * QV_ENOENT if model has no route. Any thread. */
int qv_store_route_revision(qv_store *s, const char *model, int64_t *revision, size_t *depth,
                            struct qv_diag *d);
/* Every model's route, ordered by model; free with qv_store_route_free(). Any thread. */
int qv_store_route_list(qv_store *s, struct qv_store_route **out, size_t *n, struct qv_diag *d);
void qv_store_route_free(struct qv_store_route *a, size_t n);

/* ---- Labels: (model, label) -> version ---- */

struct qv_store_label {
    char *model;
    char *label;
    int64_t version;
    uint64_t updated_ms;
};

/* Point (model, label) at version, creating or moving the label. Any thread. */
int qv_store_label_set(qv_store *s, const char *model, const char *label, int64_t version,
                       struct qv_diag *d);
/* *version is where (model, label) points. QV_ENOENT if the label does not exist. */
int qv_store_label_get(qv_store *s, const char *model, const char *label, int64_t *version,
                       struct qv_diag *d);
/* Remove (model, label). QV_ENOENT if it did not exist. Any thread. */
int qv_store_label_delete(qv_store *s, const char *model, const char *label, struct qv_diag *d);
/* Labels of model (all models when NULL), ordered by model then label. Any thread. */
int qv_store_label_list(qv_store *s, const char *model, struct qv_store_label **out, size_t *n,
                        struct qv_diag *d);
void qv_store_label_free(struct qv_store_label *a, size_t n);

/* ---- Audit log ---- */

struct qv_store_event {
    int64_t id;      /* assigned by the store, increasing */
    uint64_t ts_ms;  /* wall ms; 0 on add means now */
    char *model;     /* "" for events about no model in particular; never NULL in results */
    char *who;       /* token name, "cli", "config", "controller" */
    char *what;      /* "route.put", "label.set", "version.state", "alert.fire", ... */
    char *old_value; /* JSON or plain text; may be NULL */
    char *new_value; /* JSON or plain text; may be NULL */
};

/* Append ev (ev->id is ignored; model NULL is stored as ""). who and what are required.
 * *id (optional) receives the new event's id. Any thread. */
int qv_store_event_add(qv_store *s, const struct qv_store_event *ev, int64_t *id,
                       struct qv_diag *d);

struct qv_store_event_filter {
    const char *model; /* NULL: every model */
    uint64_t since_ms; /* only events with ts_ms >= since_ms */
    size_t limit;      /* 0: all; else only the newest `limit` matching events */
};

/* Matching events, oldest first (newest last), ordered by ts_ms then id. f may be NULL (all
 * events). Free with qv_store_event_free(). Any thread. */
int qv_store_event_list(qv_store *s, const struct qv_store_event_filter *f,
                        struct qv_store_event **out, size_t *n, struct qv_diag *d);
void qv_store_event_free(struct qv_store_event *a, size_t n);

/* ---- Metric history: one row per (model, version, ts_ms) ---- */

struct qv_history_row {
    int64_t version;
    uint64_t ts_ms; /* wall ms at the end of the window; 0 on add means now */
    uint64_t requests;
    uint64_t errors;
    double p50_ms, p95_ms, p99_ms, mean_ms;
    double cpu_ms_per_req;
    uint64_t memory_bytes;
    uint64_t queue_depth;
    double weight; /* routing weight the version had, 0..1 */
};

/* Insert n rows for model in one transaction: all or none. A row with the same (model,
 * version, ts_ms) as a stored one replaces it. Any thread. */
int qv_store_history_add(qv_store *s, const char *model, const struct qv_history_row *rows,
                         size_t n, struct qv_diag *d);

#define QV_STORE_ANY_VERSION INT64_C(-1)

struct qv_history_query {
    const char *model; /* required */
    int64_t version;   /* one version, or QV_STORE_ANY_VERSION */
    uint64_t since_ms; /* only rows with ts_ms >= since_ms */
    size_t limit;      /* 0: all; else only the newest `limit` matching rows */
};

/* Matching rows ordered by ts_ms then version, oldest first. *out (NULL when *n is 0) is
 * released with free(). Any thread. */
int qv_store_history_query(qv_store *s, const struct qv_history_query *q,
                           struct qv_history_row **out, size_t *n, struct qv_diag *d);
/* Delete every row (all models) with ts_ms < before_ms, i.e. pass now - retention.
 * *deleted (optional) receives the number of rows removed. Any thread. */
int qv_store_history_prune(qv_store *s, uint64_t before_ms, uint64_t *deleted, struct qv_diag *d);

/* ---- Key/value: small persistent state in namespaces ("bandit", "rollout", ...) ---- */

struct qv_store_kv {
    char *key;
    char *value;
    uint64_t updated_ms;
};

/* Set (ns, key) to value, replacing any old value. Any thread. */
int qv_store_kv_put(qv_store *s, const char *ns, const char *key, const char *value,
                    struct qv_diag *d);
/* *value (caller frees) is the value of (ns, key). QV_ENOENT if absent. Any thread. */
int qv_store_kv_get(qv_store *s, const char *ns, const char *key, char **value, struct qv_diag *d);
/* Remove (ns, key). QV_ENOENT if it did not exist. Any thread. */
int qv_store_kv_delete(qv_store *s, const char *ns, const char *key, struct qv_diag *d);
/* Every key of ns, ordered by key. Free with qv_store_kv_free(). Any thread. */
int qv_store_kv_list(qv_store *s, const char *ns, struct qv_store_kv **out, size_t *n,
                     struct qv_diag *d);
void qv_store_kv_free(struct qv_store_kv *a, size_t n);

/* ---- Requests answered (cluster mode: feedback joins across nodes) ---- */

/* Which version answered a request id, so that feedback sent to another node finds it.
 * PostgreSQL only (QV_ENOTSUP elsewhere: one node joins feedback in memory). */
struct qv_store_request {
    const char *id;    /* 1..127 bytes */
    const char *model; /* 1..127 bytes */
    int64_t version;
    int cls;        /* class of the answer, -1 when none */
    uint64_t ts_ms; /* when it was answered; 0 means now */
};

/* Insert n rows in one transaction (a known id is replaced). Any thread. */
int qv_store_request_add(qv_store *s, const struct qv_store_request *rows, size_t n,
                         struct qv_diag *d);
/* model_out (128 bytes), *version and *cls of request id. QV_ENOENT if unknown. */
int qv_store_request_get(qv_store *s, const char *id, char *model_out, int64_t *version, int *cls,
                         struct qv_diag *d);
/* Delete the rows answered before before_ms, and the feedback claims made before it.
 * *deleted (optional) gets how many requests. */
int qv_store_request_prune(qv_store *s, uint64_t before_ms, uint64_t *deleted, struct qv_diag *d);

/* ---- Feedback (cluster mode: once per request id in the whole cluster) ---- */

/* Claim the feedback of request id for the cluster and add reward (0..1) to the totals of
 * (model, version), in one transaction. QV_ECONFLICT when a feedback for id was claimed already,
 * on any node (nothing is added); QV_ENOTSUP for a store that is not shared (SQLite: the
 * node's own memory decides). Any thread. */
int qv_store_feedback_add(qv_store *s, const char *id, const char *model, int64_t version,
                          double reward, struct qv_diag *d);

struct qv_store_feedback_total {
    int64_t version;
    uint64_t count;    /* feedbacks accepted, cluster-wide */
    double reward_sum; /* their rewards */
};

/* The totals of every version of model, ordered by version. *out (NULL when *n is 0) is
 * released with free(). QV_ENOTSUP as qv_store_feedback_add. Any thread. */
int qv_store_feedback_totals(qv_store *s, const char *model, struct qv_store_feedback_total **out,
                             size_t *n, struct qv_diag *d);

#endif /* QV_STORE_H */
