/* SPDX-License-Identifier: MIT
 *
 * store/postgres.h -- what the PostgreSQL store shares with the cluster code (src/store only):
 * the notification channel its writes announce themselves on, and a connection helper.
 */
#ifndef QV_STORE_POSTGRES_H
#define QV_STORE_POSTGRES_H

#include "../util/util.h"

/* Every committed write of a route, label, version or kv key sends pg_notify on this channel
 * with the payload "<kind> <key>" (kind: route, label, version, kv; key: model or namespace). */
#define QV_STORE_PG_CHANNEL "quiver_state"

typedef struct pg_conn PGconn;

/* A new connection to url (a postgres:// or postgresql:// URI; libpq's PG* environment
 * applies) with a 5 s connect timeout unless the URL sets one. label names it in messages.
 * NULL with QV_ESTORE or QV_ENOMEM in d. */
PGconn *qv__pg_connect(const char *url, const char *label, struct qv_diag *d);

#endif /* QV_STORE_POSTGRES_H */
