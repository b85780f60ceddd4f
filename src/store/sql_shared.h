/* SPDX-License-Identifier: MIT
 *
 * store/sql_shared.h -- the SQL text SQLite and PostgreSQL agree on, for sqlite.c and postgres.c
 * only. The dialects differ in their parameters (?1 against $1): each includer defines
 * QV_SQL_P(n) before including this file, "?" #n for SQLite, "$" #n for PostgreSQL. Statements
 * whose text differs (ordering collations, RETURNING, batch inserts, locks) stay in their file.
 */
#ifndef QV_STORE_SQL_SHARED_H
#define QV_STORE_SQL_SHARED_H

#ifndef QV_SQL_P
#error "define QV_SQL_P(n) (the dialect's n-th parameter) before including sql_shared.h"
#endif

#define QV_SQL_VERSION_COLS "model, version, sha256, state, reason, first_seen_ms, updated_ms"

#define QV_SQL_HISTORY_COLS                                                                        \
    "version, ts_ms, requests, errors, p50_ms, p95_ms, p99_ms, mean_ms, cpu_ms_per_req, "          \
    "memory_bytes, queue_depth, weight"

/* versions: $1 model, $2 version, $3 sha256, $4 state, $5 reason, $6 updated_ms (also the
 * first_seen_ms of a new row). */
#define QV_SQL_VERSION_UPSERT                                                                      \
    "INSERT INTO versions (" QV_SQL_VERSION_COLS ") VALUES (" QV_SQL_P(1) ", " QV_SQL_P(           \
        2) ", " QV_SQL_P(3) ", " QV_SQL_P(4) ", " QV_SQL_P(5) ", " QV_SQL_P(6) ", " QV_SQL_P(6) ") " \
    "ON CONFLICT (model, version) DO UPDATE SET sha256 = excluded.sha256, "                       \
    "state = excluded.state, reason = excluded.reason, "                                          \
    "updated_ms = excluded.updated_ms"
#define QV_SQL_VERSION_GET                                                                         \
    "SELECT " QV_SQL_VERSION_COLS " FROM versions WHERE model = " QV_SQL_P(1) " AND version = "    \
        QV_SQL_P(2)

/* routes: $1 model */
#define QV_SQL_ROUTE_DOC "SELECT doc FROM routes WHERE model = " QV_SQL_P(1)
#define QV_SQL_ROUTE_PREV_DOC "SELECT prev_doc FROM routes WHERE model = " QV_SQL_P(1)
/* $1 model, $2 doc, $3 updated_ms */
#define QV_SQL_ROUTE_INSERT                                                                        \
    "INSERT INTO routes (model, doc, prev_doc, updated_ms, revision, last_revision) VALUES ("     \
        QV_SQL_P(1) ", " QV_SQL_P(2) ", NULL, " QV_SQL_P(3) ", 1, 1)"
/* The document in force goes on the history stack: $1 model, $2 replaced_ms. */
#define QV_SQL_ROUTE_HISTORY_PUSH                                                                  \
    "INSERT INTO route_history (model, seq, revision, doc, replaced_ms) "                         \
    "SELECT r.model, COALESCE((SELECT MAX(seq) FROM route_history h WHERE h.model = "             \
    "r.model), 0) + 1, r.revision, r.doc, " QV_SQL_P(2) " FROM routes r WHERE r.model = "         \
        QV_SQL_P(1)
/* $1 model, $2 doc, $3 updated_ms */
#define QV_SQL_ROUTE_REPLACE                                                                       \
    "UPDATE routes SET prev_doc = doc, doc = " QV_SQL_P(2) ", updated_ms = " QV_SQL_P(3) ", "      \
    "revision = last_revision + 1, last_revision = last_revision + 1 "                            \
    "WHERE model = " QV_SQL_P(1)
/* The newest replaced document: $1 model */
#define QV_SQL_ROUTE_HISTORY_TOP                                                                   \
    "SELECT seq, revision, doc FROM route_history WHERE model = " QV_SQL_P(1) " "                 \
    "ORDER BY seq DESC LIMIT 1"
/* $1 model, $2 seq */
#define QV_SQL_ROUTE_HISTORY_POP                                                                   \
    "DELETE FROM route_history WHERE model = " QV_SQL_P(1) " AND seq = " QV_SQL_P(2)
/* $1 model */
#define QV_SQL_ROUTE_REVISION                                                                      \
    "SELECT revision, (SELECT COUNT(*) FROM route_history h WHERE h.model = r.model) "            \
    "FROM routes r WHERE r.model = " QV_SQL_P(1)

/* labels: $1 model, $2 label, $3 version, $4 updated_ms */
#define QV_SQL_LABEL_UPSERT                                                                        \
    "INSERT INTO labels (model, label, version, updated_ms) VALUES (" QV_SQL_P(1) ", " QV_SQL_P(  \
        2) ", " QV_SQL_P(3) ", " QV_SQL_P(4) ") "                                                  \
    "ON CONFLICT (model, label) DO UPDATE SET version = excluded.version, "                       \
    "updated_ms = excluded.updated_ms"
#define QV_SQL_LABEL_GET                                                                           \
    "SELECT version FROM labels WHERE model = " QV_SQL_P(1) " AND label = " QV_SQL_P(2)
#define QV_SQL_LABEL_DELETE                                                                        \
    "DELETE FROM labels WHERE model = " QV_SQL_P(1) " AND label = " QV_SQL_P(2)

/* kv: $1 ns, $2 key, $3 value, $4 updated_ms */
#define QV_SQL_KV_UPSERT                                                                           \
    "INSERT INTO kv (ns, key, value, updated_ms) VALUES (" QV_SQL_P(1) ", " QV_SQL_P(            \
        2) ", " QV_SQL_P(3) ", " QV_SQL_P(4) ") "                                                  \
    "ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, "                                \
    "updated_ms = excluded.updated_ms"
#define QV_SQL_KV_GET "SELECT value FROM kv WHERE ns = " QV_SQL_P(1) " AND key = " QV_SQL_P(2)
#define QV_SQL_KV_DELETE "DELETE FROM kv WHERE ns = " QV_SQL_P(1) " AND key = " QV_SQL_P(2)

#endif /* QV_STORE_SQL_SHARED_H */
