/* SPDX-License-Identifier: MIT
 *
 * The PostgreSQL store: the only file that includes <libpq-fe.h>.
 *
 * One connection per handle; calls on one handle are serialized by its mutex. Every parameter
 * travels as text through PQexecParams (never spliced into SQL). Multi-statement writes run in a
 * transaction that rolls back on any failure. Writes that other nodes must apply (routes,
 * labels, kv) announce themselves with pg_notify on the QV_STORE_PG_CHANNEL channel inside the
 * same transaction, so the notification is delivered exactly when the change is committed.
 *
 * A lost connection is noticed by the failing call (QV_ESTOREDOWN, which HTTP answers 503:
 * "PostgreSQL is unreachable"), and the next calls reconnect with a backoff (100 ms doubling to 5 s), each failing at once
 * while the backoff runs: a caller never waits more than one connect attempt.
 *
 * Migrations run under a session advisory lock, so nodes starting at the same time migrate one
 * after the other and each step is applied once.
 */
#define QV_LOG_MODULE "store"

#include "store_impl.h"
#include "postgres.h"

#define QV_SQL_P(n) "$" #n
#include "sql_shared.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIGRATE_LOCK_KEY "7170656e"     /* advisory lock key of the migration runner */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

struct pg_store {
    struct qv_store base; /* first: a qv_store * is a struct pg_store * */
    qv_mutex mu;          /* serializes every use of conn */
    PGconn *conn;         /* NULL while disconnected */
    uint64_t next_try_ms; /* no reconnect attempt before this wall time */
    unsigned backoff_ms;
    bool down_logged;
    char *url;       /* the connection URL, for reconnects; never printed */
    char label[160]; /* user@host:port/db, for messages (no password) */
};

static struct pg_store *pg(qv_store *s)
{
    return (struct pg_store *)s;
}

/* ---- Connection ---- */

/* user@host:port/db from the URL, without any password. */
static void make_label(const char *url, char *out, size_t n)
{
    PQconninfoOption *opts = PQconninfoParse(url, NULL);
    const char *host = "", *port = "", *db = "", *user = "";

    if (opts != NULL) {
        for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
            if (o->val == NULL)
                continue;
            if (strcmp(o->keyword, "host") == 0)
                host = o->val;
            else if (strcmp(o->keyword, "port") == 0)
                port = o->val;
            else if (strcmp(o->keyword, "dbname") == 0)
                db = o->val;
            else if (strcmp(o->keyword, "user") == 0)
                user = o->val;
        }
    }
    snprintf(out, n, "%s%s%s%s%s/%s", user, user[0] ? "@" : "", host[0] ? host : "localhost",
             port[0] ? ":" : "", port, db);
    PQconninfoFree(opts);
}

/* A fresh connection to url; NULL with the reason in d. */
PGconn *qv__pg_connect(const char *url, const char *label, struct qv_diag *d)
{
    /* connect_timeout first: a URL that names its own wins (later keywords override). */
    const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *const vals[] = {"5", "quiver", url, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);

    if (c == NULL) {
        qv_fail(d, QV_ENOMEM, "postgres store '%s': out of memory", label);
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[256];
        size_t len;

        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c));
        len = strlen(msg);
        while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
            msg[--len] = '\0';
        qv_fail(d, QV_ESTOREDOWN, "postgres store '%s': PostgreSQL is unreachable: %s", label,
                msg);
        PQfinish(c);
        return NULL;
    }
    /* Quiet notices (CREATE TABLE IF NOT EXISTS on an existing table). */
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    return c;
}

/* Make sure st->conn is usable, reconnecting when the backoff allows. */
static int ensure_conn(struct pg_store *st, struct qv_diag *d)
{
    uint64_t now;

    if (st->conn != NULL && PQstatus(st->conn) == CONNECTION_OK)
        return 0;
    if (st->conn != NULL) {
        PQfinish(st->conn);
        st->conn = NULL;
    }
    now = qv_wall_ms();
    if (now < st->next_try_ms)
        return qv_fail(d, QV_ESTOREDOWN,
                       "postgres store '%s': PostgreSQL is unreachable, nothing can be saved; "
                       "reconnecting (next attempt in %" PRIu64 " ms)",
                       st->label, st->next_try_ms - now);
    st->conn = qv__pg_connect(st->url, st->label, d);
    if (st->conn == NULL) {
        st->backoff_ms = st->backoff_ms == 0 ? BACKOFF_MIN_MS : st->backoff_ms * 2;
        if (st->backoff_ms > BACKOFF_MAX_MS)
            st->backoff_ms = BACKOFF_MAX_MS;
        st->next_try_ms = now + st->backoff_ms;
        if (!st->down_logged) {
            st->down_logged = true;
            qv_log(QV_LOG_ERROR, "store=%s msg=\"PostgreSQL is unreachable; reconnecting\"",
                   st->label);
        }
        return QV_ESTOREDOWN;
    }
    if (st->down_logged)
        qv_log(QV_LOG_INFO, "store=%s msg=\"PostgreSQL reconnected\"", st->label);
    st->down_logged = false;
    st->backoff_ms = 0;
    st->next_try_ms = 0;
    return 0;
}

/* The failure of the last command on st->conn as a qv error. */
static int db_fail(struct pg_store *st, PGresult *res, const char *what, struct qv_diag *d)
{
    char msg[320];
    size_t len;
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    snprintf(msg, sizeof(msg), "%s",
             res != NULL && PQresultErrorMessage(res)[0] ? PQresultErrorMessage(res)
                                                        : PQerrorMessage(st->conn));
    len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
        msg[--len] = '\0';
    if (PQstatus(st->conn) != CONNECTION_OK) {
        PQfinish(st->conn);
        st->conn = NULL;
        return qv_fail(d, QV_ESTOREDOWN,
                       "postgres store '%s': %s: PostgreSQL is unreachable, the change was not "
                       "saved: %s",
                       st->label, what, msg);
    }
    if (state != NULL && strcmp(state, "53200") == 0)
        return qv_fail(d, QV_ENOMEM, "postgres store '%s': %s: %s", st->label, what, msg);
    return qv_fail(d, QV_ESTORE, "postgres store '%s': %s: %s", st->label, what, msg);
}

/* Run sql with n text parameters (NULL entries are SQL NULL). *out gets the result when it has
 * the wanted status (caller clears it); otherwise a qv error. */
static int run(struct pg_store *st, const char *sql, int n, const char *const *vals,
               const char *what, PGresult **out, struct qv_diag *d)
{
    PGresult *res;
    ExecStatusType s;

    res = PQexecParams(st->conn, sql, n, NULL, vals, NULL, NULL, 0);
    s = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        int err = db_fail(st, res, what, d);

        PQclear(res);
        return err;
    }
    if (out != NULL)
        *out = res;
    else
        PQclear(res);
    return 0;
}

/* Run sql without parameters; it may hold several statements (migrations). */
static int exec0(struct pg_store *st, const char *sql, const char *what, struct qv_diag *d)
{
    PGresult *res = PQexec(st->conn, sql);
    ExecStatusType s = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    int err = 0;

    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        err = db_fail(st, res, what, d);
    PQclear(res);
    return err;
}

static int begin(struct pg_store *st, struct qv_diag *d)
{
    return exec0(st, "BEGIN", "begin transaction", d);
}

static int finish(struct pg_store *st, int err, struct qv_diag *d)
{
    if (err == 0) {
        err = exec0(st, "COMMIT", "commit", d);
        if (err == 0)
            return 0;
    }
    if (st->conn != NULL && PQtransactionStatus(st->conn) != PQTRANS_IDLE)
        PQclear(PQexec(st->conn, "ROLLBACK"));
    return err;
}

/* Announce a committed change to every listening node (inside the writing transaction). */
static int notify(struct pg_store *st, const char *kind, const char *key, struct qv_diag *d)
{
    char payload[256];
    const char *vals[2];

    snprintf(payload, sizeof(payload), "%s %s", kind, key);
    vals[0] = QV_STORE_PG_CHANNEL;
    vals[1] = payload;
    return run(st, "SELECT pg_notify($1, $2)", 2, vals, "notify", NULL, d);
}

/* Lock the connection and make sure it works. */
static int enter(struct pg_store *st, struct qv_diag *d)
{
    int err;

    qv_mutex_lock(&st->mu);
    err = ensure_conn(st, d);
    if (err)
        qv_mutex_unlock(&st->mu);
    return err;
}

static void leave(struct pg_store *st)
{
    qv_mutex_unlock(&st->mu);
}

/* ---- Values ---- */

static const char *i64s(char *buf, size_t n, int64_t v)
{
    snprintf(buf, n, "%" PRId64, v);
    return buf;
}

static const char *reals(char *buf, size_t n, double v)
{
    if (isnan(v))
        return NULL;
    snprintf(buf, n, "%.17g", v);
    return buf;
}

static int64_t get_i64(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static uint64_t get_u64(PGresult *r, int row, int col)
{
    int64_t v = get_i64(r, row, col);

    return v < 0 ? 0 : (uint64_t)v;
}

static double get_real(PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return NAN;
    return strtod(PQgetvalue(r, row, col), NULL);
}

/* A malloc'ed copy of a column: NULL for SQL NULL when null_ok, else "". */
static int get_dup(PGresult *r, int row, int col, bool null_ok, char **out)
{
    const char *v;
    size_t len;
    char *p;

    if (PQgetisnull(r, row, col) && null_ok) {
        *out = NULL;
        return 0;
    }
    v = PQgetvalue(r, row, col);
    len = (size_t)PQgetlength(r, row, col);
    p = malloc(len + 1);
    if (p == NULL)
        return QV_ENOMEM;
    memcpy(p, v, len);
    p[len] = '\0';
    *out = p;
    return 0;
}

/* Turn every row of r into an array element with read(). */
static int collect(struct pg_store *st, PGresult *r, size_t elem,
                   int (*read)(PGresult *r, int row, void *out), void (*release)(void *a, size_t n),
                   void **out, size_t *n, struct qv_diag *d)
{
    int rows = PQntuples(r);
    void *a = NULL;
    int err = 0;

    if (rows > 0) {
        a = calloc((size_t)rows, elem);
        if (a == NULL)
            return qv_fail(d, QV_ENOMEM, "postgres store '%s': out of memory reading %d rows",
                           st->label, rows);
        for (int i = 0; i < rows && !err; i++)
            err = read(r, i, (char *)a + (size_t)i * elem);
        if (err) {
            release(a, (size_t)rows);
            return qv_fail(d, QV_ENOMEM, "postgres store '%s': out of memory reading %d rows",
                           st->label, rows);
        }
    }
    *out = a;
    *n = (size_t)rows;
    return 0;
}

/* ---- The shapes every call takes ---- */

/* A query whose rows become an array: *out (NULL when *n is 0) gets one element of elem bytes
 * per row, filled by read(), released with release() when one fails. */
static int query_rows(struct pg_store *st, const char *sql, int nvals, const char *const *vals,
                      const char *what, size_t elem, int (*read)(PGresult *r, int row, void *out),
                      void (*release)(void *a, size_t n), void **out, size_t *n, struct qv_diag *d)
{
    PGresult *r = NULL;
    void *rows = NULL;
    int err = enter(st, d);

    if (err)
        return err;
    err = run(st, sql, nvals, vals, what, &r, d);
    if (!err)
        err = collect(st, r, elem, read, release, &rows, n, d);
    if (!err)
        *out = rows;
    PQclear(r);
    leave(st);
    return err;
}

/* One statement that other nodes must apply, in a transaction with its notification (kind
 * key). With gone (not NULL), a statement that changes no row fails with QV_ENOENT "store: gone"
 * and announces nothing. */
static int write_notify(struct pg_store *st, const char *sql, int nvals, const char *const *vals,
                        const char *what, const char *kind, const char *key, const char *gone,
                        struct qv_diag *d)
{
    PGresult *r = NULL;
    int err = enter(st, d);

    if (err)
        return err;
    err = begin(st, d);
    if (!err)
        err = run(st, sql, nvals, vals, what, &r, d);
    if (!err && gone != NULL && strcmp(PQcmdTuples(r), "0") == 0)
        err = qv_fail(d, QV_ENOENT, "store: %s", gone);
    if (!err)
        err = notify(st, kind, key, d);
    PQclear(r);
    err = finish(st, err, d);
    leave(st);
    return err;
}

/* ---- Open, migrate, close ---- */

static int schema_version_locked(struct pg_store *st, int *out, struct qv_diag *d)
{
    PGresult *r = NULL;
    int err;

    err = run(st, "SELECT COALESCE(MAX(version), 0) FROM schema_version", 0, NULL,
              "read schema version", &r, d);
    if (err)
        return err;
    *out = (int)get_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

static int apply_migration(struct pg_store *st, const struct qv_store_migration *m,
                           struct qv_diag *d)
{
    char what[128], ver[24], ms[24];
    const char *vals[3];
    int have = 0, err;

    err = begin(st, d);
    if (err)
        return err;
    err = schema_version_locked(st, &have, d);
    if (err || have >= m->version)
        return finish(st, err, d);
    snprintf(what, sizeof(what), "migration %d (%s)", m->version, m->name);
    err = exec0(st, m->sql, what, d);
    if (!err) {
        vals[0] = i64s(ver, sizeof(ver), m->version);
        vals[1] = m->name;
        vals[2] = i64s(ms, sizeof(ms), (int64_t)qv_wall_ms());
        err = run(st, "INSERT INTO schema_version (version, name, applied_ms) VALUES ($1, $2, $3)",
                  3, vals, what, NULL, d);
    }
    err = finish(st, err, d);
    if (err == 0)
        qv_log(QV_LOG_INFO, "store=%s migration=%d name=\"%s\" msg=\"schema migrated\"", st->label,
               m->version, m->name);
    return err;
}

static int migrate(struct pg_store *st, const struct qv_store_migration *m, struct qv_diag *d)
{
    int have = 0, latest = 0, err;

    for (size_t i = 0; m[i].version != 0; i++) {
        assert(m[i].version == (int)i + 1);
        latest = m[i].version;
    }
    err = exec0(st, "SELECT pg_advisory_lock(x'" MIGRATE_LOCK_KEY "'::bigint)", "migration lock",
                d);
    if (err)
        return err;
    err = exec0(st,
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "  version INTEGER PRIMARY KEY,"
                "  name TEXT NOT NULL,"
                "  applied_ms BIGINT NOT NULL)",
                "create schema_version", d);
    if (!err)
        err = schema_version_locked(st, &have, d);
    if (!err && have > latest)
        err = qv_fail(d, QV_ESTORE,
                      "postgres store '%s': database schema version %d is newer than this build "
                      "knows (%d); use a newer quiver",
                      st->label, have, latest);
    for (size_t i = 0; !err && m[i].version != 0; i++)
        if (m[i].version > have)
            err = apply_migration(st, &m[i], d);
    if (st->conn != NULL)
        PQclear(PQexec(st->conn, "SELECT pg_advisory_unlock(x'" MIGRATE_LOCK_KEY "'::bigint)"));
    return err;
}

static void pq_close(qv_store *s)
{
    struct pg_store *st = pg(s);

    if (st->conn != NULL)
        PQfinish(st->conn);
    qv_mutex_fini(&st->mu);
    free(st->url);
    free(st);
}

static int pq_open(const char *url, const struct qv_store_migration *m, qv_store **out,
                   struct qv_diag *d)
{
    struct pg_store *st = qv_xcalloc(1, sizeof(*st));
    int err;

    st->base.ops = &qv_store_postgres;
    st->url = qv_xstrdup(url);
    qv_mutex_init(&st->mu);
    make_label(url, st->label, sizeof(st->label));
    {
        char *why = NULL;
        PQconninfoOption *opts = PQconninfoParse(url, &why);

        PQconninfoFree(opts);
        if (opts == NULL) {
            err = qv_fail(d, QV_EINVAL,
                          "store URL for PostgreSQL is malformed (expected postgres://USER@HOST:"
                          "PORT/DB?param=value): %s",
                          why != NULL ? why : "out of memory");
            PQfreemem(why);
            goto out;
        }
    }
    st->conn = qv__pg_connect(url, st->label, d);
    if (st->conn == NULL) {
        err = QV_ESTORE; /* at open, an unreachable database is a failure to open */
        goto out;
    }
    err = migrate(st, m, d);
out:
    if (err) {
        pq_close(&st->base);
        return err;
    }
    *out = &st->base;
    return 0;
}

static int pq_schema_version(qv_store *s, int *out, struct qv_diag *d)
{
    struct pg_store *st = pg(s);
    int err = enter(st, d);

    if (err)
        return err;
    err = schema_version_locked(st, out, d);
    leave(st);
    return err;
}

/* ---- Model versions ---- */

#define VERSION_COLS QV_SQL_VERSION_COLS

static int read_version(PGresult *r, int i, void *row)
{
    struct qv_store_version *v = row;
    int err;

    err = get_dup(r, i, 0, false, &v->model);
    if (!err)
        err = get_dup(r, i, 4, false, &v->reason);
    if (err)
        return err;
    v->version = get_i64(r, i, 1);
    snprintf(v->sha256, sizeof(v->sha256), "%s", PQgetvalue(r, i, 2));
    snprintf(v->state, sizeof(v->state), "%s", PQgetvalue(r, i, 3));
    v->first_seen_ms = get_u64(r, i, 5);
    v->updated_ms = get_u64(r, i, 6);
    return 0;
}

static void release_versions(void *a, size_t n)
{
    qv_store_version_free(a, n);
}

static int pq_version_upsert(qv_store *s, const struct qv_store_version *v, struct qv_diag *d)
{
    char ver[24], ms[24];
    const char *vals[6] = {v->model,  i64s(ver, sizeof(ver), v->version),
                           v->sha256, v->state,
                           v->reason, i64s(ms, sizeof(ms), (int64_t)v->updated_ms)};

    return write_notify(pg(s), QV_SQL_VERSION_UPSERT, 6, vals, "version upsert", "version",
                        v->model, NULL, d);
}

static int pq_version_get(qv_store *s, const char *model, int64_t version,
                          struct qv_store_version *out, struct qv_diag *d)
{
    struct pg_store *st = pg(s);
    struct qv_store_version v = {0};
    char ver[24];
    const char *vals[2] = {model, i64s(ver, sizeof(ver), version)};
    PGresult *r = NULL;
    int err = enter(st, d);

    if (err)
        return err;
    err = run(st, QV_SQL_VERSION_GET, 2, vals, "version get", &r, d);
    if (!err && PQntuples(r) == 0)
        err = qv_fail(d, QV_ENOENT, "store: model '%s' version %" PRId64 " is not recorded", model,
                      version);
    if (!err && read_version(r, 0, &v) != 0) {
        qv_store_version_fini(&v);
        err = qv_fail(d, QV_ENOMEM, "store: out of memory reading model '%s'", model);
    }
    if (!err)
        *out = v;
    PQclear(r);
    leave(st);
    return err;
}

static int pq_version_list(qv_store *s, const char *model, struct qv_store_version **out, size_t *n,
                           struct qv_diag *d)
{
    void *rows = NULL;
    int err = query_rows(pg(s),
                         model != NULL ? "SELECT " VERSION_COLS " FROM versions WHERE model = $1 "
                                         "ORDER BY model COLLATE \"C\", version"
                                       : "SELECT " VERSION_COLS
                                         " FROM versions ORDER BY model COLLATE \"C\", version",
                         model != NULL ? 1 : 0, (const char *[]){model}, "version list",
                         sizeof(**out), read_version, release_versions, &rows, n, d);

    if (!err)
        *out = rows;
    return err;
}

/* ---- Routes ---- */

/* Serializes writers of one model's route across every node until the transaction ends. */
static int lock_route(struct pg_store *st, const char *model, struct qv_diag *d)
{
    const char *vals[1] = {model};

    return run(st, "SELECT pg_advisory_xact_lock(hashtext('route:' || $1))", 1, vals,
               "route lock", NULL, d);
}

static int pq_route_put(qv_store *s, const char *model, const char *doc, uint64_t now_ms,
                        struct qv_diag *d)
{
    struct pg_store *st = pg(s);
    char ms[24], lim[24];
    const char *vals[3] = {model, doc, i64s(ms, sizeof(ms), (int64_t)now_ms)};
    PGresult *r = NULL;
    int err = enter(st, d);

    if (err)
        return err;
    err = begin(st, d);
    if (!err)
        err = lock_route(st, model, d);
    if (!err)
        err = run(st, QV_SQL_ROUTE_DOC, 1, vals, "route put", &r, d);
    if (err)
        goto out;
    if (PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), doc) == 0)
        goto out; /* the document in force again: nothing changes */
    if (PQntuples(r) == 0) {
        err = run(st, QV_SQL_ROUTE_INSERT, 3, vals, "route put", NULL, d);
    } else {
        err = run(st, QV_SQL_ROUTE_HISTORY_PUSH, 2, (const char *[]){model, vals[2]},
                  "route history push", NULL, d);
        if (!err)
            err = run(st, QV_SQL_ROUTE_REPLACE, 3, vals, "route put", NULL, d);
        if (!err)
            err = run(st,
                      "DELETE FROM route_history WHERE model = $1 AND seq <= "
                      "(SELECT MAX(seq) FROM route_history WHERE model = $1) - $2::int",
                      2,
                      (const char *[]){model,
                                       i64s(lim, sizeof(lim), QV_STORE_ROUTE_HISTORY_MAX)},
                      "route history trim", NULL, d);
    }
    if (!err)
        err = notify(st, "route", model, d);
out:
    PQclear(r);
    err = finish(st, err, d);
    leave(st);
    return err;
}

static int get_text(struct pg_store *st, const char *sql, int n, const char *const *vals,
                    char **out, const char *what, struct qv_diag *d)
{
    PGresult *r = NULL;
    char *v = NULL;
    int err;

    err = run(st, sql, n, vals, what, &r, d);
    if (err)
        return err;
    if (PQntuples(r) == 0 || PQgetisnull(r, 0, 0))
        err = qv_fail(d, QV_ENOENT, "store: %s", what);
    else if (get_dup(r, 0, 0, false, &v) != 0)
        err = qv_fail(d, QV_ENOMEM, "store: out of memory reading %s", what);
    else
        *out = v;
    PQclear(r);
    return err;
}

static int pq_route_get(qv_store *s, const char *model, int previous, char **doc,
                        struct qv_diag *d)
{
    struct pg_store *st = pg(s);
    const char *vals[1] = {model};
    char what[160];
    int err;

    snprintf(what, sizeof(what),
             previous ? "model '%s' has no previous route" : "model '%s' has no route", model);
    err = enter(st, d);
    if (err)
        return err;
    err = get_text(st,
                   previous ? QV_SQL_ROUTE_PREV_DOC : QV_SQL_ROUTE_DOC, 1, vals, doc, what, d);
    leave(st);
    return err;
}

static int pq_route_rollback(qv_store *s, const char *model, uint64_t now_ms, char **doc,
                             int64_t *revision, struct qv_diag *d)
{
    struct pg_store *st = pg(s);
    char ms[24], seqs[24], revs[24], what[160];
    PGresult *r = NULL;
    char *top = NULL;
    int64_t seq = 0, rev = 0;
    int err;

    snprintf(what, sizeof(what), "model '%s' has no previous route to roll back to", model);
    err = enter(st, d);
    if (err)
        return err;
    err = begin(st, d);
    if (!err)
        err = lock_route(st, model, d);
    if (!err)
        err = run(st, QV_SQL_ROUTE_HISTORY_TOP, 1, (const char *[]){model}, "route rollback", &r,
                  d);
    if (err)
        goto out;
    if (PQntuples(r) == 0) {
        err = qv_fail(d, QV_ENOENT, "store: %s", what);
        goto out;
    }
    seq = get_i64(r, 0, 0);
    rev = get_i64(r, 0, 1);
    if (get_dup(r, 0, 2, false, &top) != 0) {
        err = qv_fail(d, QV_ENOMEM, "store: out of memory reading %s", what);
        goto out;
    }
    err = run(st, QV_SQL_ROUTE_HISTORY_POP, 2,
              (const char *[]){model, i64s(seqs, sizeof(seqs), seq)}, "route rollback", NULL, d);
    if (!err)
        err = run(st,
                  "UPDATE routes SET doc = $2, revision = $3, updated_ms = $4, prev_doc = "
                  "(SELECT doc FROM route_history WHERE model = $1 ORDER BY seq DESC LIMIT 1) "
                  "WHERE model = $1",
                  4,
                  (const char *[]){model, top, i64s(revs, sizeof(revs), rev),
                                   i64s(ms, sizeof(ms), (int64_t)now_ms)},
                  "route rollback", NULL, d);
    if (!err)
        err = notify(st, "route", model, d);
out:
    PQclear(r);
    err = finish(st, err, d);
    leave(st);
    if (err == 0) {
        *revision = rev;
        if (doc != NULL) {
            *doc = top;
            top = NULL;
        }
    }
    free(top);
    return err;
}

static int pq_route_revision(qv_store *s, const char *model, int64_t *revision, size_t *depth,
                             struct qv_diag *d)
{
    struct pg_store *st = pg(s);
    PGresult *r = NULL;
    int err = enter(st, d);

    if (err)
        return err;
    err = run(st, QV_SQL_ROUTE_REVISION, 1, (const char *[]){model}, "route revision", &r, d);
    if (!err && PQntuples(r) == 0)
        err = qv_fail(d, QV_ENOENT, "store: model '%s' has no route", model);
    if (!err) {
        *revision = get_i64(r, 0, 0);
        *depth = (size_t)get_u64(r, 0, 1);
    }
    PQclear(r);
    leave(st);
    return err;
}

static int read_route(PGresult *r, int i, void *row)
{
    struct qv_store_route *rt = row;
    int err;

    err = get_dup(r, i, 0, false, &rt->model);
    if (!err)
        err = get_dup(r, i, 1, false, &rt->doc);
    if (!err)
        err = get_dup(r, i, 2, true, &rt->prev_doc);
    rt->updated_ms = get_u64(r, i, 3);
    return err;
}

static void release_routes(void *a, size_t n)
{
    qv_store_route_free(a, n);
}

static int pq_route_list(qv_store *s, struct qv_store_route **out, size_t *n, struct qv_diag *d)
{
    void *rows = NULL;
    int err =
        query_rows(pg(s),
                   "SELECT model, doc, prev_doc, updated_ms FROM routes ORDER BY model "
                   "COLLATE \"C\"",
                   0, NULL, "route list", sizeof(**out), read_route, release_routes, &rows, n, d);

    if (!err)
        *out = rows;
    return err;
}

/* ---- Labels ---- */

static int read_label(PGresult *r, int i, void *row)
{
    struct qv_store_label *l = row;
    int err;

    err = get_dup(r, i, 0, false, &l->model);
    if (!err)
        err = get_dup(r, i, 1, false, &l->label);
    l->version = get_i64(r, i, 2);
    l->updated_ms = get_u64(r, i, 3);
    return err;
}

static void release_labels(void *a, size_t n)
{
    qv_store_label_free(a, n);
}

static int pq_label_set(qv_store *s, const char *model, const char *label, int64_t version,
                        uint64_t now_ms, struct qv_diag *d)
{
    char ver[24], ms[24];
    const char *vals[4] = {model, label, i64s(ver, sizeof(ver), version),
                           i64s(ms, sizeof(ms), (int64_t)now_ms)};

    return write_notify(pg(s), QV_SQL_LABEL_UPSERT, 4, vals, "label set", "label", model, NULL, d);
}

static int pq_label_get(qv_store *s, const char *model, const char *label, int64_t *version,
                        struct qv_diag *d)
{
    struct pg_store *st = pg(s);
    PGresult *r = NULL;
    int err = enter(st, d);

    if (err)
        return err;
    err = run(st, QV_SQL_LABEL_GET, 2,
              (const char *[]){model, label}, "label get", &r, d);
    if (!err && PQntuples(r) == 0)
        err = qv_fail(d, QV_ENOENT, "store: model '%s' has no label '%s'", model, label);
    if (!err)
        *version = get_i64(r, 0, 0);
    PQclear(r);
    leave(st);
    return err;
}

static int pq_label_delete(qv_store *s, const char *model, const char *label, struct qv_diag *d)
{
    char gone[256];

    snprintf(gone, sizeof(gone), "model '%s' has no label '%s'", model, label);
    return write_notify(pg(s), QV_SQL_LABEL_DELETE, 2, (const char *[]){model, label},
                        "label delete", "label", model, gone, d);
}

static int pq_label_list(qv_store *s, const char *model, struct qv_store_label **out, size_t *n,
                         struct qv_diag *d)
{
    void *rows = NULL;
    int err = query_rows(pg(s),
                         model != NULL
                             ? "SELECT model, label, version, updated_ms FROM labels "
                               "WHERE model = $1 ORDER BY model COLLATE \"C\", label COLLATE \"C\""
                             : "SELECT model, label, version, updated_ms FROM labels "
                               "ORDER BY model COLLATE \"C\", label COLLATE \"C\"",
                         model != NULL ? 1 : 0, (const char *[]){model}, "label list",
                         sizeof(**out), read_label, release_labels, &rows, n, d);

    if (!err)
        *out = rows;
    return err;
}

/* ---- Audit log ---- */

static int read_event(PGresult *r, int i, void *row)
{
    struct qv_store_event *e = row;
    int err;

    e->id = get_i64(r, i, 0);
    e->ts_ms = get_u64(r, i, 1);
    err = get_dup(r, i, 2, false, &e->model);
    if (!err)
        err = get_dup(r, i, 3, false, &e->who);
    if (!err)
        err = get_dup(r, i, 4, false, &e->what);
    if (!err)
        err = get_dup(r, i, 5, true, &e->old_value);
    if (!err)
        err = get_dup(r, i, 6, true, &e->new_value);
    return err;
}

static void release_events(void *a, size_t n)
{
    qv_store_event_free(a, n);
}

static int pq_event_add(qv_store *s, const struct qv_store_event *ev, int64_t *id,
                        struct qv_diag *d)
{
    struct pg_store *st = pg(s);
    char ms[24];
    const char *vals[6] = {i64s(ms, sizeof(ms), (int64_t)ev->ts_ms), ev->model, ev->who, ev->what,
                           ev->old_value, ev->new_value};
    PGresult *r = NULL;
    int err = enter(st, d);

    if (err)
        return err;
    err = run(st,
              "INSERT INTO events (ts_ms, model, who, what, old_value, new_value) "
              "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
              6, vals, "event add", &r, d);
    if (!err && id != NULL)
        *id = get_i64(r, 0, 0);
    PQclear(r);
    leave(st);
    return err;
}

#define EVENT_SELECT(where)                                                                        \
    "SELECT id, ts_ms, model, who, what, old_value, new_value FROM ("                              \
    "SELECT * FROM events WHERE " where " ORDER BY ts_ms DESC, id DESC LIMIT $3"                   \
    ") e ORDER BY ts_ms, id"

static int pq_event_list(qv_store *s, const struct qv_store_event_filter *f,
                         struct qv_store_event **out, size_t *n, struct qv_diag *d)
{
    struct pg_store *st = pg(s);
    char since[24], lim[24];
    const char *vals[3] = {f->model, i64s(since, sizeof(since), (int64_t)f->since_ms),
                           f->limit == 0 ? NULL : i64s(lim, sizeof(lim), (int64_t)f->limit)};
    PGresult *r = NULL;
    void *rows = NULL;
    int err = enter(st, d);

    if (err)
        return err;
    err = run(st,
              f->model != NULL ? EVENT_SELECT("model = $1 AND ts_ms >= $2::bigint")
                               : EVENT_SELECT("($1::text IS NULL) AND ts_ms >= $2::bigint"),
              3, vals, "event list", &r, d);
    if (!err)
        err = collect(st, r, sizeof(**out), read_event, release_events, &rows, n, d);
    if (!err)
        *out = rows;
    PQclear(r);
    leave(st);
    return err;
}

/* ---- Metric history ---- */

#define HISTORY_COLS QV_SQL_HISTORY_COLS

static int read_history(PGresult *r, int i, void *row)
{
    struct qv_history_row *h = row;

    h->version = get_i64(r, i, 0);
    h->ts_ms = get_u64(r, i, 1);
    h->requests = get_u64(r, i, 2);
    h->errors = get_u64(r, i, 3);
    h->p50_ms = get_real(r, i, 4);
    h->p95_ms = get_real(r, i, 5);
    h->p99_ms = get_real(r, i, 6);
    h->mean_ms = get_real(r, i, 7);
    h->cpu_ms_per_req = get_real(r, i, 8);
    h->memory_bytes = get_u64(r, i, 9);
    h->queue_depth = get_u64(r, i, 10);
    h->weight = get_real(r, i, 11);
    return 0;
}

static void release_history(void *a, size_t n)
{
    (void)n;
    free(a);
}

static int pq_history_add(qv_store *s, const char *model, const struct qv_history_row *rows,
                          size_t n, uint64_t now_ms, struct qv_diag *d)
{
    struct pg_store *st = pg(s);
    int err = enter(st, d);

    if (err)
        return err;
    err = begin(st, d);
    for (size_t i = 0; err == 0 && i < n; i++) {
        const struct qv_history_row *h = &rows[i];
        char b[12][32];
        const char *vals[13] = {
            model,
            i64s(b[0], sizeof(b[0]), h->version),
            i64s(b[1], sizeof(b[1]), (int64_t)(h->ts_ms != 0 ? h->ts_ms : now_ms)),
            i64s(b[2], sizeof(b[2]), (int64_t)h->requests),
            i64s(b[3], sizeof(b[3]), (int64_t)h->errors),
            reals(b[4], sizeof(b[4]), h->p50_ms),
            reals(b[5], sizeof(b[5]), h->p95_ms),
            reals(b[6], sizeof(b[6]), h->p99_ms),
            reals(b[7], sizeof(b[7]), h->mean_ms),
            reals(b[8], sizeof(b[8]), h->cpu_ms_per_req),
            i64s(b[9], sizeof(b[9]), (int64_t)h->memory_bytes),
            i64s(b[10], sizeof(b[10]), (int64_t)h->queue_depth),
            reals(b[11], sizeof(b[11]), h->weight),
        };

        err = run(st,
                  "INSERT INTO history (model, " HISTORY_COLS ") "
                  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) "
                  "ON CONFLICT (model, ts_ms, version) DO UPDATE SET requests = "
                  "excluded.requests, errors = excluded.errors, p50_ms = excluded.p50_ms, "
                  "p95_ms = excluded.p95_ms, p99_ms = excluded.p99_ms, mean_ms = "
                  "excluded.mean_ms, cpu_ms_per_req = excluded.cpu_ms_per_req, memory_bytes = "
                  "excluded.memory_bytes, queue_depth = excluded.queue_depth, weight = "
                  "excluded.weight",
                  13, vals, "history add", NULL, d);
    }
    err = finish(st, err, d);
    leave(st);
    return err;
}

#define HISTORY_SELECT(where)                                                                      \
    "SELECT " HISTORY_COLS " FROM ("                                                               \
    "SELECT * FROM history WHERE model = $1 AND ts_ms >= $2::bigint" where                         \
    " ORDER BY ts_ms DESC, version DESC LIMIT $3"                                                  \
    ") h ORDER BY ts_ms, version"

static int pq_history_query(qv_store *s, const struct qv_history_query *q,
                            struct qv_history_row **out, size_t *n, struct qv_diag *d)
{
    struct pg_store *st = pg(s);
    bool one = q->version != QV_STORE_ANY_VERSION;
    char since[24], lim[24], ver[24];
    const char *vals[4] = {q->model, i64s(since, sizeof(since), (int64_t)q->since_ms),
                           q->limit == 0 ? NULL : i64s(lim, sizeof(lim), (int64_t)q->limit),
                           i64s(ver, sizeof(ver), q->version)};
    PGresult *r = NULL;
    void *rows = NULL;
    int err = enter(st, d);

    if (err)
        return err;
    err = run(st, one ? HISTORY_SELECT(" AND version = $4") : HISTORY_SELECT(""), one ? 4 : 3, vals,
              "history query", &r, d);
    if (!err)
        err = collect(st, r, sizeof(**out), read_history, release_history, &rows, n, d);
    if (!err)
        *out = rows;
    PQclear(r);
    leave(st);
    return err;
}

static int pq_history_prune(qv_store *s, uint64_t before_ms, uint64_t *deleted, struct qv_diag *d)
{
    struct pg_store *st = pg(s);
    char ms[24];
    PGresult *r = NULL;
    int err = enter(st, d);

    if (err)
        return err;
    err = run(st, "DELETE FROM history WHERE ts_ms < $1", 1,
              (const char *[]){i64s(ms, sizeof(ms), (int64_t)before_ms)}, "history prune", &r, d);
    if (!err && deleted != NULL)
        *deleted = strtoull(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    leave(st);
    return err;
}

/* ---- Key/value ---- */

static int read_kv(PGresult *r, int i, void *row)
{
    struct qv_store_kv *kv = row;
    int err;

    err = get_dup(r, i, 0, false, &kv->key);
    if (!err)
        err = get_dup(r, i, 1, false, &kv->value);
    kv->updated_ms = get_u64(r, i, 2);
    return err;
}

static void release_kv(void *a, size_t n)
{
    qv_store_kv_free(a, n);
}

static int pq_kv_put(qv_store *s, const char *ns, const char *key, const char *value,
                     uint64_t now_ms, struct qv_diag *d)
{
    char ms[24];
    const char *vals[4] = {ns, key, value, i64s(ms, sizeof(ms), (int64_t)now_ms)};

    return write_notify(pg(s), QV_SQL_KV_UPSERT, 4, vals, "kv put", "kv", ns, NULL, d);
}

static int pq_kv_get(qv_store *s, const char *ns, const char *key, char **value,
                     struct qv_diag *d)
{
    struct pg_store *st = pg(s);
    char what[160];
    int err;

    snprintf(what, sizeof(what), "no key '%s' in namespace '%s'", key, ns);
    err = enter(st, d);
    if (err)
        return err;
    err = get_text(st, QV_SQL_KV_GET, 2,
                   (const char *[]){ns, key}, value, what, d);
    leave(st);
    return err;
}

static int pq_kv_delete(qv_store *s, const char *ns, const char *key, struct qv_diag *d)
{
    char gone[256];

    snprintf(gone, sizeof(gone), "no key '%s' in namespace '%s'", key, ns);
    return write_notify(pg(s), QV_SQL_KV_DELETE, 2, (const char *[]){ns, key}, "kv delete", "kv",
                        ns, gone, d);
}

static int pq_kv_list(qv_store *s, const char *ns, struct qv_store_kv **out, size_t *n,
                      struct qv_diag *d)
{
    void *rows = NULL;
    int err = query_rows(pg(s),
                         "SELECT key, value, updated_ms FROM kv WHERE ns = $1 ORDER BY key COLLATE "
                         "\"C\"",
                         1, (const char *[]){ns}, "kv list", sizeof(**out), read_kv, release_kv,
                         &rows, n, d);

    if (!err)
        *out = rows;
    return err;
}

/* ---- Requests answered ---- */

/* Append v to a PostgreSQL array literal as a quoted element. */
static int arr_str(struct qv_buf *b, const char *v, bool first)
{
    int err = qv_buf_append(b, first ? "\"" : ",\"", first ? 1 : 2);

    for (const char *p = v; !err && *p; p++) {
        if (*p == '"' || *p == '\\')
            err = qv_buf_append(b, "\\", 1);
        if (!err)
            err = qv_buf_append(b, p, 1);
    }
    return err ? err : qv_buf_append(b, "\"", 1);
}

/* One statement per batch: the rows travel as five arrays. */
static int pq_request_add(qv_store *s, const struct qv_store_request *rows, size_t n,
                          struct qv_diag *d)
{
    struct pg_store *st = pg(s);
    struct qv_buf a[5] = {QV_BUF_INIT(0), QV_BUF_INIT(0), QV_BUF_INIT(0), QV_BUF_INIT(0),
                          QV_BUF_INIT(0)};
    const char *vals[5];
    int err = 0;

    for (int k = 0; k < 5 && !err; k++)
        err = qv_buf_append(&a[k], "{", 1);
    for (size_t i = 0; i < n && !err; i++) {
        err = arr_str(&a[0], rows[i].id, i == 0);
        if (!err)
            err = arr_str(&a[1], rows[i].model, i == 0);
        if (!err)
            err = qv_buf_printf(&a[2], "%s%" PRId64, i ? "," : "", rows[i].version);
        if (!err)
            err = qv_buf_printf(&a[3], "%s%d", i ? "," : "", rows[i].cls);
        if (!err)
            err = qv_buf_printf(&a[4], "%s%" PRIu64, i ? "," : "", rows[i].ts_ms);
    }
    for (int k = 0; k < 5 && !err; k++)
        err = qv_buf_append(&a[k], "}", 2); /* with the NUL */
    if (err) {
        for (int k = 0; k < 5; k++)
            qv_buf_free(&a[k]);
        return qv_fail(d, QV_ENOMEM, "store: out of memory for %zu requests", n);
    }
    for (int k = 0; k < 5; k++)
        vals[k] = a[k].data;
    err = enter(st, d);
    if (!err)
        err = begin(st, d);
    if (!err) {
        /* A batch may name one id twice (a retried request): the newest row wins. */
        err = run(st,
                  "INSERT INTO requests (id, model, version, cls, ts_ms) "
                  "SELECT DISTINCT ON (id) id, model, version, cls, ts_ms FROM unnest("
                  "$1::text[], $2::text[], $3::bigint[], $4::int[], $5::bigint[]) "
                  "AS t(id, model, version, cls, ts_ms) ORDER BY id, ts_ms DESC "
                  "ON CONFLICT (id) DO UPDATE SET model = excluded.model, version = "
                  "excluded.version, cls = excluded.cls, ts_ms = excluded.ts_ms",
                  5, vals, "request add", NULL, d);
        /* A new request that reuses an id can be scored again: claims made before it go. */
        if (!err)
            err = run(st,
                      "DELETE FROM feedback_claims c USING unnest($1::text[], $2::bigint[]) "
                      "AS t(id, ts_ms) WHERE c.id = t.id AND c.ts_ms < t.ts_ms",
                      2, (const char *[]){vals[0], vals[4]}, "request add", NULL, d);
        err = finish(st, err, d);
        leave(st);
    }
    for (int k = 0; k < 5; k++)
        qv_buf_free(&a[k]);
    return err;
}

static int pq_request_get(qv_store *s, const char *id, char *model_out, int64_t *version, int *cls,
                          struct qv_diag *d)
{
    struct pg_store *st = pg(s);
    PGresult *r = NULL;
    int err = enter(st, d);

    if (err)
        return err;
    err = run(st, "SELECT model, version, cls FROM requests WHERE id = $1", 1,
              (const char *[]){id}, "request get", &r, d);
    if (!err && PQntuples(r) == 0)
        err = qv_fail(d, QV_ENOENT, "store: request '%s' is not recorded", id);
    if (!err) {
        if (model_out != NULL)
            snprintf(model_out, 128, "%s", PQgetvalue(r, 0, 0));
        if (version != NULL)
            *version = get_i64(r, 0, 1);
        if (cls != NULL)
            *cls = (int)get_i64(r, 0, 2);
    }
    PQclear(r);
    leave(st);
    return err;
}

static int pq_request_prune(qv_store *s, uint64_t before_ms, uint64_t *deleted, struct qv_diag *d)
{
    struct pg_store *st = pg(s);
    char ms[24];
    PGresult *r = NULL;
    int err = enter(st, d);

    if (err)
        return err;
    i64s(ms, sizeof(ms), (int64_t)before_ms);
    err = run(st, "DELETE FROM requests WHERE ts_ms < $1", 1, (const char *[]){ms}, "request prune",
              &r, d);
    if (!err && deleted != NULL)
        *deleted = strtoull(PQcmdTuples(r), NULL, 10);
    if (!err)
        err = run(st, "DELETE FROM feedback_claims WHERE ts_ms < $1", 1, (const char *[]){ms},
                  "feedback claims prune", NULL, d);
    PQclear(r);
    leave(st);
    return err;
}

/* ---- Feedback ---- */

static int pq_feedback_add(qv_store *s, const char *id, const char *model, int64_t version,
                           double reward, uint64_t now_ms, struct qv_diag *d)
{
    struct pg_store *st = pg(s);
    char ver[24], rw[40], ms[24];
    PGresult *r = NULL;
    int err = enter(st, d);

    if (err)
        return err;
    err = begin(st, d);
    if (!err)
        err = run(st,
                  "INSERT INTO feedback_claims (id, ts_ms) VALUES ($1, $2) "
                  "ON CONFLICT (id) DO NOTHING",
                  2, (const char *[]){id, i64s(ms, sizeof(ms), (int64_t)now_ms)}, "feedback claim",
                  &r, d);
    if (!err && strcmp(PQcmdTuples(r), "0") == 0)
        err = qv_fail(d, QV_ECONFLICT,
                      "feedback for request \"%s\" was already recorded (the first is kept)", id);
    if (!err)
        err = run(
            st,
            "INSERT INTO feedback_totals (model, version, count, reward_sum) "
            "VALUES ($1, $2, 1, $3) ON CONFLICT (model, version) DO UPDATE SET "
            "count = feedback_totals.count + 1, "
            "reward_sum = feedback_totals.reward_sum + excluded.reward_sum",
            3,
            (const char *[]){model, i64s(ver, sizeof(ver), version), reals(rw, sizeof(rw), reward)},
            "feedback totals", NULL, d);
    PQclear(r);
    err = finish(st, err, d);
    leave(st);
    return err;
}

static int read_feedback_total(PGresult *r, int i, void *row)
{
    struct qv_store_feedback_total *t = row;

    t->version = get_i64(r, i, 0);
    t->count = get_u64(r, i, 1);
    t->reward_sum = get_real(r, i, 2);
    return 0;
}

static void release_plain(void *a, size_t n)
{
    (void)n;
    free(a);
}

static int pq_feedback_totals(qv_store *s, const char *model, struct qv_store_feedback_total **out,
                              size_t *n, struct qv_diag *d)
{
    void *rows = NULL;
    int err = query_rows(pg(s),
                         "SELECT version, count, reward_sum FROM feedback_totals WHERE model = $1 "
                         "ORDER BY version",
                         1, (const char *[]){model}, "feedback totals", sizeof(**out),
                         read_feedback_total, release_plain, &rows, n, d);

    if (!err)
        *out = rows;
    return err;
}

const struct qv_store_ops qv_store_postgres = {
    .kind = "postgres",
    .migrations = qv__store_pg_migrations,
    .open = pq_open,
    .close = pq_close,
    .schema_version = pq_schema_version,
    .version_upsert = pq_version_upsert,
    .version_get = pq_version_get,
    .version_list = pq_version_list,
    .route_put = pq_route_put,
    .route_get = pq_route_get,
    .route_rollback = pq_route_rollback,
    .route_revision = pq_route_revision,
    .route_list = pq_route_list,
    .label_set = pq_label_set,
    .label_get = pq_label_get,
    .label_delete = pq_label_delete,
    .label_list = pq_label_list,
    .event_add = pq_event_add,
    .event_list = pq_event_list,
    .history_add = pq_history_add,
    .history_query = pq_history_query,
    .history_prune = pq_history_prune,
    .kv_put = pq_kv_put,
    .kv_get = pq_kv_get,
    .kv_delete = pq_kv_delete,
    .kv_list = pq_kv_list,
    .request_add = pq_request_add,
    .request_get = pq_request_get,
    .request_prune = pq_request_prune,
    .feedback_add = pq_feedback_add,
    .feedback_totals = pq_feedback_totals,
};
