/* SPDX-License-Identifier: MIT
 *
 * store/store_impl.h -- for store implementers only (sqlite.c, later postgres.c) and the store's
 * own tests. store.c parses the URL, checks every argument and fills defaulted timestamps, so an
 * implementation receives only valid requests: non-empty names, known states, timestamps and
 * counters that fit in a signed 64-bit column. Each implementation serializes calls on one handle
 * itself and fills the diag with its database's message on failure.
 */
#ifndef QV_STORE_IMPL_H
#define QV_STORE_IMPL_H

#include "store.h"

/* The base of every implementation's handle; implementations embed it first. */
struct qv_store {
    const struct qv_store_ops *ops;
};

/* One schema step. An array of them ends with an entry whose version is 0. Versions start at 1
 * and increase by one; sql may hold several statements. Applied in order at open, each in its
 * own transaction together with its schema_version row. */
struct qv_store_migration {
    int version;
    const char *name;
    const char *sql;
};

extern const struct qv_store_migration qv__store_sqlite_migrations[];
extern const struct qv_store_migration qv__store_pg_migrations[];

struct qv_store_ops {
    const char *kind;                            /* "sqlite" */
    const struct qv_store_migration *migrations; /* this dialect's schema */

    /* target is what follows the scheme (a path for sqlite). Applies the migrations in m that
     * the database lacks. */
    int (*open)(const char *target, const struct qv_store_migration *m, qv_store **out,
                struct qv_diag *d);
    void (*close)(qv_store *s);
    int (*schema_version)(qv_store *s, int *out, struct qv_diag *d);

    /* v->updated_ms is set. */
    int (*version_upsert)(qv_store *s, const struct qv_store_version *v, struct qv_diag *d);
    int (*version_get)(qv_store *s, const char *model, int64_t version,
                       struct qv_store_version *out, struct qv_diag *d);
    int (*version_list)(qv_store *s, const char *model, struct qv_store_version **out, size_t *n,
                        struct qv_diag *d);

    int (*route_put)(qv_store *s, const char *model, const char *doc, uint64_t now_ms,
                     struct qv_diag *d);
    /* previous: 0 for the current document, 1 for the one it replaced. */
    int (*route_get)(qv_store *s, const char *model, int previous, char **doc, struct qv_diag *d);
    /* Pops the newest replaced document; *revision (not NULL) gets its revision. */
    int (*route_rollback)(qv_store *s, const char *model, uint64_t now_ms, char **doc,
                          int64_t *revision, struct qv_diag *d);
    int (*route_revision)(qv_store *s, const char *model, int64_t *revision, size_t *depth,
                          struct qv_diag *d);
    int (*route_list)(qv_store *s, struct qv_store_route **out, size_t *n, struct qv_diag *d);

    int (*label_set)(qv_store *s, const char *model, const char *label, int64_t version,
                     uint64_t now_ms, struct qv_diag *d);
    int (*label_get)(qv_store *s, const char *model, const char *label, int64_t *version,
                     struct qv_diag *d);
    int (*label_delete)(qv_store *s, const char *model, const char *label, struct qv_diag *d);
    int (*label_list)(qv_store *s, const char *model, struct qv_store_label **out, size_t *n,
                      struct qv_diag *d);

    /* ev->ts_ms is set, ev->model is not NULL. */
    int (*event_add)(qv_store *s, const struct qv_store_event *ev, int64_t *id, struct qv_diag *d);
    /* f is not NULL. */
    int (*event_list)(qv_store *s, const struct qv_store_event_filter *f,
                      struct qv_store_event **out, size_t *n, struct qv_diag *d);

    /* Rows with ts_ms 0 are stored with now_ms. n > 0. */
    int (*history_add)(qv_store *s, const char *model, const struct qv_history_row *rows, size_t n,
                       uint64_t now_ms, struct qv_diag *d);
    int (*history_query)(qv_store *s, const struct qv_history_query *q, struct qv_history_row **out,
                         size_t *n, struct qv_diag *d);
    int (*history_prune)(qv_store *s, uint64_t before_ms, uint64_t *deleted, struct qv_diag *d);

    int (*kv_put)(qv_store *s, const char *ns, const char *key, const char *value, uint64_t now_ms,
                  struct qv_diag *d);
    int (*kv_get)(qv_store *s, const char *ns, const char *key, char **value, struct qv_diag *d);
    int (*kv_delete)(qv_store *s, const char *ns, const char *key, struct qv_diag *d);
    int (*kv_list)(qv_store *s, const char *ns, struct qv_store_kv **out, size_t *n,
                   struct qv_diag *d);

    /* Optional (NULL: QV_ENOTSUP). Rows are checked, ts_ms set. */
    int (*request_add)(qv_store *s, const struct qv_store_request *rows, size_t n,
                       struct qv_diag *d);
    int (*request_get)(qv_store *s, const char *id, char *model_out, int64_t *version, int *cls,
                       struct qv_diag *d);
    int (*request_prune)(qv_store *s, uint64_t before_ms, uint64_t *deleted, struct qv_diag *d);

    /* Optional (NULL: QV_ENOTSUP). Arguments are checked, reward in 0..1. */
    int (*feedback_add)(qv_store *s, const char *id, const char *model, int64_t version,
                        double reward, uint64_t now_ms, struct qv_diag *d);
    int (*feedback_totals)(qv_store *s, const char *model, struct qv_store_feedback_total **out,
                           size_t *n, struct qv_diag *d);
};

extern const struct qv_store_ops qv_store_sqlite;
extern const struct qv_store_ops qv_store_postgres; /* target: the whole postgres:// URL */

/* qv_store_open() with an explicit migration list instead of the implementation's own; for the
 * store's tests (a failing migration, a schema newer than the build). Any thread. */
int qv__store_open_with(const char *url, const struct qv_store_migration *m, qv_store **out,
                        struct qv_diag *d);

#endif /* QV_STORE_IMPL_H */
