/* SPDX-License-Identifier: MIT
 *
 * The SQLite store: the only file that includes <sqlite3.h>.
 *
 * One connection per handle, in WAL mode with a busy timeout, so other handles and processes
 * (the CLI reading while the server writes) share the file. Calls on one handle are serialized
 * by its mutex, which also keeps sqlite3_errmsg() tied to the call that failed. This is a
 * control-plane lock: results are copied out of SQLite while it is held, because SQLite's row
 * pointers die when the statement advances. Every write that is more than one statement runs in
 * a BEGIN IMMEDIATE transaction and rolls back on any failure.
 */
#define QV_LOG_MODULE "store"

#include "store_impl.h"

#define QV_SQL_P(n) "?" #n
#include "sql_shared.h"

#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUSY_TIMEOUT_MS 5000

struct sq_store {
    struct qv_store base; /* first: a qv_store * is a struct sq_store * */
    qv_mutex mu;          /* serializes every use of db */
    sqlite3 *db;
    int fd;           /* the database file opened once more, to notice it being deleted; -1 */
    bool gone_logged; /* the deletion was logged (once) */
    char path[];      /* for messages */
};

static struct sq_store *sq(qv_store *s)
{
    return (struct sq_store *)s;
}

/* ---- Errors and statements (callers hold st->mu) ---- */

/* The current SQLite error as a qv error, with the database's message in the diag. */
static int db_fail(struct sq_store *st, struct qv_diag *d, const char *what)
{
    int code = sqlite3_errcode(st->db);

    return qv_fail(d, code == SQLITE_NOMEM ? QV_ENOMEM : QV_ESTORE, "sqlite store '%s': %s: %s",
                   st->path, what, sqlite3_errmsg(st->db));
}

static int prepare(struct sq_store *st, const char *sql, sqlite3_stmt **stmt, struct qv_diag *d)
{
    if (sqlite3_prepare_v2(st->db, sql, -1, stmt, NULL) != SQLITE_OK)
        return db_fail(st, d, "prepare");
    return 0;
}

static int exec(struct sq_store *st, const char *sql, const char *what, struct qv_diag *d)
{
    if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(st, d, what);
    return 0;
}

/* Run a statement that returns no rows. */
static int step_done(struct sq_store *st, sqlite3_stmt *stmt, const char *what, struct qv_diag *d)
{
    if (sqlite3_step(stmt) != SQLITE_DONE)
        return db_fail(st, d, what);
    return 0;
}

/* Before a write: is the database file still linked? A file deleted (or replaced) under a
 * running server takes every later write with it, silently: refuse them instead. Only this
 * process's extra descriptor is used; SQLite's own are untouched. */
static int file_ok(struct sq_store *st, struct qv_diag *d)
{
    struct stat sb;

    if (st->fd < 0)
        return 0;
    if (fstat(st->fd, &sb) == 0 && sb.st_nlink > 0)
        return 0;
    if (!st->gone_logged) {
        st->gone_logged = true;
        qv_log(QV_LOG_ERROR,
               "path=%s msg=\"database file deleted or replaced while open; changes are refused "
               "until the server is restarted\"",
               st->path);
    }
    return qv_fail(d, QV_ESTORE,
                   "sqlite store '%s': the database file was deleted or replaced while the server "
                   "runs; the change was not saved",
                   st->path);
}

static int begin(struct sq_store *st, struct qv_diag *d)
{
    return exec(st, "BEGIN IMMEDIATE", "begin transaction", d);
}

/* Commit when err is 0, roll back otherwise. Returns the first error. */
static int finish(struct sq_store *st, int err, struct qv_diag *d)
{
    if (err == 0) {
        err = exec(st, "COMMIT", "commit", d);
        if (err == 0)
            return 0;
    }
    if (!sqlite3_get_autocommit(st->db))
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return err;
}

static void bind_text(sqlite3_stmt *stmt, int i, const char *v)
{
    if (v == NULL)
        sqlite3_bind_null(stmt, i);
    else
        sqlite3_bind_text(stmt, i, v, -1, SQLITE_TRANSIENT);
}

/* NaN means "no data" and is stored as NULL; SQLite would do so anyway, but say it. */
static void bind_real(sqlite3_stmt *stmt, int i, double v)
{
    if (isnan(v))
        sqlite3_bind_null(stmt, i);
    else
        sqlite3_bind_double(stmt, i, v);
}

static double col_real(sqlite3_stmt *stmt, int i)
{
    if (sqlite3_column_type(stmt, i) == SQLITE_NULL)
        return NAN;
    return sqlite3_column_double(stmt, i);
}

static uint64_t col_u64(sqlite3_stmt *stmt, int i)
{
    sqlite3_int64 v = sqlite3_column_int64(stmt, i);

    return v < 0 ? 0 : (uint64_t)v;
}

/* *out is a malloc'ed copy of column i; NULL when the column is NULL and null_ok, "" when it
 * is NULL and not null_ok. QV_ENOMEM if the copy fails. */
static int col_dup(sqlite3_stmt *stmt, int i, bool null_ok, char **out)
{
    const unsigned char *v = sqlite3_column_text(stmt, i);
    size_t len = (size_t)sqlite3_column_bytes(stmt, i);
    char *p;

    if (v == NULL && sqlite3_column_type(stmt, i) != SQLITE_NULL)
        return QV_ENOMEM;
    if (v == NULL && null_ok) {
        *out = NULL;
        return 0;
    }
    p = malloc(len + 1);
    if (p == NULL)
        return QV_ENOMEM;
    if (len > 0)
        memcpy(p, v, len);
    p[len] = '\0';
    *out = p;
    return 0;
}

/* Make room for one more element in a result array. */
static int grow(void **a, size_t *cap, size_t n, size_t elem)
{
    size_t ncap;
    void *p;

    if (n < *cap)
        return 0;
    ncap = *cap == 0 ? 16 : *cap * 2;
    if (ncap > SIZE_MAX / elem)
        return QV_ENOMEM;
    p = realloc(*a, ncap * elem);
    if (p == NULL)
        return QV_ENOMEM;
    *a = p;
    *cap = ncap;
    return 0;
}

/* Step through stmt, calling read() to fill each element of a growing array. On success *out
 * and *n hold the rows (*out NULL when there are none); on error the partial rows are released
 * with release() and *out, *n are untouched. */
static int collect(struct sq_store *st, sqlite3_stmt *stmt, size_t elem,
                   int (*read)(sqlite3_stmt *stmt, void *row), void (*release)(void *a, size_t n),
                   void **out, size_t *n, struct qv_diag *d)
{
    void *a = NULL;
    size_t len = 0, cap = 0;
    int rc, err = 0;

    for (;;) {
        rc = sqlite3_step(stmt);
        if (rc != SQLITE_ROW)
            break;
        err = grow(&a, &cap, len, elem);
        if (err)
            break;
        memset((char *)a + len * elem, 0, elem);
        len++; /* counted before read() so a half-read row is released too */
        err = read(stmt, (char *)a + (len - 1) * elem);
        if (err)
            break;
    }
    if (err == 0 && rc != SQLITE_DONE)
        err = db_fail(st, d, "read rows");
    if (err == QV_ENOMEM)
        err = qv_fail(d, QV_ENOMEM, "sqlite store '%s': out of memory reading %zu rows", st->path,
                      len);
    if (err) {
        release(a, len);
        return err;
    }
    if (len == 0) {
        free(a);
        a = NULL;
    }
    *out = a;
    *n = len;
    return 0;
}

/* ---- Open, migrate, close ---- */

static int schema_version_locked(struct sq_store *st, int *out, struct qv_diag *d)
{
    sqlite3_stmt *stmt = NULL;
    int err;

    err = prepare(st, "SELECT COALESCE(MAX(version), 0) FROM schema_version", &stmt, d);
    if (err)
        goto out;
    if (sqlite3_step(stmt) != SQLITE_ROW) {
        err = db_fail(st, d, "read schema version");
        goto out;
    }
    *out = sqlite3_column_int(stmt, 0);
out:
    sqlite3_finalize(stmt);
    return err;
}

/* Apply one migration unless the database has it; the check and the change share one
 * transaction, so two processes opening a new database at once apply it once. */
static int apply_migration(struct sq_store *st, const struct qv_store_migration *m,
                           struct qv_diag *d)
{
    sqlite3_stmt *stmt = NULL;
    char what[128];
    int have = 0, err;

    err = begin(st, d);
    if (err)
        return err;
    err = schema_version_locked(st, &have, d);
    if (err || have >= m->version)
        goto out;
    snprintf(what, sizeof(what), "migration %d (%s)", m->version, m->name);
    err = exec(st, m->sql, what, d);
    if (err)
        goto out;
    err = prepare(st, "INSERT INTO schema_version (version, name, applied_ms) VALUES (?1, ?2, ?3)",
                  &stmt, d);
    if (err)
        goto out;
    sqlite3_bind_int(stmt, 1, m->version);
    bind_text(stmt, 2, m->name);
    sqlite3_bind_int64(stmt, 3, (sqlite3_int64)qv_wall_ms());
    err = step_done(st, stmt, what, d);
    if (err == 0)
        qv_log(QV_LOG_INFO, "path=%s migration=%d name=\"%s\" msg=\"schema migrated\"", st->path,
               m->version, m->name);
out:
    sqlite3_finalize(stmt);
    return finish(st, err, d);
}

static int migrate(struct sq_store *st, const struct qv_store_migration *m, struct qv_diag *d)
{
    int have = 0, latest = 0, err;

    err = exec(st,
               "CREATE TABLE IF NOT EXISTS schema_version ("
               "  version INTEGER PRIMARY KEY,"
               "  name TEXT NOT NULL,"
               "  applied_ms INTEGER NOT NULL)",
               "create schema_version", d);
    if (err)
        return err;
    for (size_t i = 0; m[i].version != 0; i++) {
        assert(m[i].version == (int)i + 1); /* numbered 1, 2, 3, ... without gaps */
        latest = m[i].version;
    }
    err = schema_version_locked(st, &have, d);
    if (err)
        return err;
    if (have > latest)
        return qv_fail(d, QV_ESTORE,
                       "sqlite store '%s': database schema version %d is newer than this build "
                       "knows (%d); use a newer quiver",
                       st->path, have, latest);
    for (size_t i = 0; m[i].version != 0; i++) {
        if (m[i].version <= have)
            continue;
        err = apply_migration(st, &m[i], d);
        if (err)
            return err;
    }
    return 0;
}

static void sq_close(qv_store *s)
{
    struct sq_store *st = sq(s);

    if (sqlite3_close(st->db) != SQLITE_OK)
        qv_log(QV_LOG_ERROR, "path=%s err=\"%s\" msg=\"close failed\"", st->path,
               sqlite3_errmsg(st->db));
    /* After sqlite3_close: closing a descriptor drops the process's POSIX locks on the file. */
    if (st->fd >= 0)
        close(st->fd);
    qv_mutex_fini(&st->mu);
    free(st);
}

static int sq_open(const char *path, const struct qv_store_migration *m, qv_store **out,
                   struct qv_diag *d)
{
    size_t len = strlen(path);
    struct sq_store *st;
    sqlite3_stmt *stmt = NULL;
    const char *mode;
    int err = 0;

    st = qv_xcalloc(1, sizeof(*st) + len + 1);
    memcpy(st->path, path, len + 1);
    st->base.ops = &qv_store_sqlite;
    st->fd = -1;
    qv_mutex_init(&st->mu);

    /* No SQLITE_OPEN_URI: the path is a path, never a "file:" URI with options. */
    if (sqlite3_open_v2(path, &st->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        if (st->db == NULL) {
            err = qv_fail(d, QV_ENOMEM, "sqlite store '%s': out of memory", path);
            goto out;
        }
        err = db_fail(st, d, "cannot open");
        goto out;
    }
    sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);

    /* The first statement touches the file: an unwritable path or a file that is not a
     * database fails here. */
    err = prepare(st, "PRAGMA journal_mode=WAL", &stmt, d);
    if (err)
        goto out;
    if (sqlite3_step(stmt) != SQLITE_ROW) {
        err = db_fail(st, d, "cannot open");
        goto out;
    }
    mode = (const char *)sqlite3_column_text(stmt, 0);
    if (mode == NULL || (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0))
        qv_log(QV_LOG_WARN, "path=%s journal_mode=%s msg=\"WAL not available\"", path,
               mode != NULL ? mode : "?");
    sqlite3_finalize(stmt);
    stmt = NULL;
    err = exec(st, "PRAGMA synchronous=NORMAL", "set synchronous", d);
    if (err)
        goto out;
    err = migrate(st, m, d);
    if (err)
        goto out;
    if (strcmp(path, ":memory:") != 0)
        st->fd = open(path, O_RDONLY | O_CLOEXEC);

    *out = &st->base;
    st = NULL;
out:
    sqlite3_finalize(stmt);
    if (st != NULL)
        sq_close(&st->base);
    return err;
}

static int sq_schema_version(qv_store *s, int *out, struct qv_diag *d)
{
    struct sq_store *st = sq(s);
    int err;

    qv_mutex_lock(&st->mu);
    err = schema_version_locked(st, out, d);
    qv_mutex_unlock(&st->mu);
    return err;
}

/* ---- Model versions ---- */

#define VERSION_COLS QV_SQL_VERSION_COLS

static int read_version(sqlite3_stmt *stmt, void *row)
{
    struct qv_store_version *v = row;
    const unsigned char *t;
    int err;

    err = col_dup(stmt, 0, false, &v->model);
    if (!err)
        err = col_dup(stmt, 4, false, &v->reason);
    if (err)
        return err;
    v->version = sqlite3_column_int64(stmt, 1);
    t = sqlite3_column_text(stmt, 2);
    snprintf(v->sha256, sizeof(v->sha256), "%s", t != NULL ? (const char *)t : "");
    t = sqlite3_column_text(stmt, 3);
    snprintf(v->state, sizeof(v->state), "%s", t != NULL ? (const char *)t : "");
    v->first_seen_ms = col_u64(stmt, 5);
    v->updated_ms = col_u64(stmt, 6);
    return 0;
}

static void release_versions(void *a, size_t n)
{
    qv_store_version_free(a, n);
}

static int sq_version_upsert(qv_store *s, const struct qv_store_version *v, struct qv_diag *d)
{
    struct sq_store *st = sq(s);
    sqlite3_stmt *stmt = NULL;
    int err;

    qv_mutex_lock(&st->mu);
    if ((err = file_ok(st, d)) != 0) {
        qv_mutex_unlock(&st->mu);
        return err;
    }
    err = prepare(st,
                  QV_SQL_VERSION_UPSERT, &stmt, d);
    if (err)
        goto out;
    bind_text(stmt, 1, v->model);
    sqlite3_bind_int64(stmt, 2, v->version);
    bind_text(stmt, 3, v->sha256);
    bind_text(stmt, 4, v->state);
    bind_text(stmt, 5, v->reason);
    sqlite3_bind_int64(stmt, 6, (sqlite3_int64)v->updated_ms);
    err = step_done(st, stmt, "version upsert", d);
out:
    sqlite3_finalize(stmt);
    qv_mutex_unlock(&st->mu);
    return err;
}

static int sq_version_get(qv_store *s, const char *model, int64_t version,
                          struct qv_store_version *out, struct qv_diag *d)
{
    struct sq_store *st = sq(s);
    struct qv_store_version v = {0};
    sqlite3_stmt *stmt = NULL;
    int rc, err;

    qv_mutex_lock(&st->mu);
    err = prepare(st, QV_SQL_VERSION_GET, &stmt, d);
    if (err)
        goto out;
    bind_text(stmt, 1, model);
    sqlite3_bind_int64(stmt, 2, version);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) {
        err = qv_fail(d, QV_ENOENT, "store: model '%s' version %" PRId64 " is not recorded", model,
                      version);
        goto out;
    }
    if (rc != SQLITE_ROW) {
        err = db_fail(st, d, "version get");
        goto out;
    }
    err = read_version(stmt, &v);
    if (err) {
        qv_store_version_fini(&v);
        err = qv_fail(d, err, "store: out of memory reading model '%s'", model);
        goto out;
    }
    *out = v;
out:
    sqlite3_finalize(stmt);
    qv_mutex_unlock(&st->mu);
    return err;
}

static int sq_version_list(qv_store *s, const char *model, struct qv_store_version **out, size_t *n,
                           struct qv_diag *d)
{
    struct sq_store *st = sq(s);
    sqlite3_stmt *stmt = NULL;
    void *rows = NULL;
    int err;

    qv_mutex_lock(&st->mu);
    err = prepare(st,
                  model != NULL ? "SELECT " VERSION_COLS " FROM versions WHERE model = ?1 "
                                  "ORDER BY model, version"
                                : "SELECT " VERSION_COLS " FROM versions ORDER BY model, version",
                  &stmt, d);
    if (err)
        goto out;
    if (model != NULL)
        bind_text(stmt, 1, model);
    err = collect(st, stmt, sizeof(**out), read_version, release_versions, &rows, n, d);
    if (err == 0)
        *out = rows;
out:
    sqlite3_finalize(stmt);
    qv_mutex_unlock(&st->mu);
    return err;
}

/* ---- Routes ---- */

static int read_route(sqlite3_stmt *stmt, void *row)
{
    struct qv_store_route *r = row;
    int err;

    err = col_dup(stmt, 0, false, &r->model);
    if (!err)
        err = col_dup(stmt, 1, false, &r->doc);
    if (!err)
        err = col_dup(stmt, 2, true, &r->prev_doc);
    r->updated_ms = col_u64(stmt, 3);
    return err;
}

static void release_routes(void *a, size_t n)
{
    qv_store_route_free(a, n);
}

static int sq_route_put(qv_store *s, const char *model, const char *doc, uint64_t now_ms,
                        struct qv_diag *d)
{
    struct sq_store *st = sq(s);
    sqlite3_stmt *stmt = NULL;
    int err, rc;
    bool exists = false, same = false;

    qv_mutex_lock(&st->mu);
    err = file_ok(st, d);
    if (err)
        goto out_unlock;
    err = begin(st, d);
    if (err)
        goto out_unlock;
    err = prepare(st, QV_SQL_ROUTE_DOC, &stmt, d);
    if (err)
        goto out;
    bind_text(stmt, 1, model);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        const char *cur = (const char *)sqlite3_column_text(stmt, 0);
        exists = true;
        same = cur != NULL && strcmp(cur, doc) == 0;
    } else if (rc != SQLITE_DONE) {
        err = db_fail(st, d, "route put");
        goto out;
    }
    sqlite3_finalize(stmt);
    stmt = NULL;
    /* Putting the document in force again changes nothing: the history stays. */
    if (same)
        goto out;
    if (!exists) {
        err = prepare(st, QV_SQL_ROUTE_INSERT, &stmt, d);
        if (err)
            goto out;
        bind_text(stmt, 1, model);
        bind_text(stmt, 2, doc);
        sqlite3_bind_int64(stmt, 3, (sqlite3_int64)now_ms);
        err = step_done(st, stmt, "route put", d);
        goto out;
    }
    err = prepare(st, QV_SQL_ROUTE_HISTORY_PUSH, &stmt, d);
    if (err)
        goto out;
    bind_text(stmt, 1, model);
    sqlite3_bind_int64(stmt, 2, (sqlite3_int64)now_ms);
    err = step_done(st, stmt, "route history push", d);
    if (err)
        goto out;
    sqlite3_finalize(stmt);
    stmt = NULL;
    err = prepare(st, QV_SQL_ROUTE_REPLACE, &stmt, d);
    if (err)
        goto out;
    bind_text(stmt, 1, model);
    bind_text(stmt, 2, doc);
    sqlite3_bind_int64(stmt, 3, (sqlite3_int64)now_ms);
    err = step_done(st, stmt, "route put", d);
    if (err)
        goto out;
    sqlite3_finalize(stmt);
    stmt = NULL;
    err = prepare(st,
                  "DELETE FROM route_history WHERE model = ?1 AND seq <= "
                  "(SELECT MAX(seq) FROM route_history WHERE model = ?1) - ?2",
                  &stmt, d);
    if (err)
        goto out;
    bind_text(stmt, 1, model);
    sqlite3_bind_int(stmt, 2, QV_STORE_ROUTE_HISTORY_MAX);
    err = step_done(st, stmt, "route history trim", d);
out:
    sqlite3_finalize(stmt);
    err = finish(st, err, d);
out_unlock:
    qv_mutex_unlock(&st->mu);
    return err;
}

/* Read one text column of one row; QV_ENOENT (with the caller's words) when no row or NULL. */
static int get_text_locked(struct sq_store *st, sqlite3_stmt *stmt, char **out, const char *what,
                           struct qv_diag *d)
{
    char *v = NULL;
    int rc, err;

    rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE || (rc == SQLITE_ROW && sqlite3_column_type(stmt, 0) == SQLITE_NULL))
        return qv_fail(d, QV_ENOENT, "store: %s", what);
    if (rc != SQLITE_ROW)
        return db_fail(st, d, "read");
    err = col_dup(stmt, 0, false, &v);
    if (err)
        return qv_fail(d, err, "store: out of memory reading %s", what);
    *out = v;
    return 0;
}

static int sq_route_get(qv_store *s, const char *model, int previous, char **doc, struct qv_diag *d)
{
    struct sq_store *st = sq(s);
    sqlite3_stmt *stmt = NULL;
    char what[160];
    int err;

    snprintf(what, sizeof(what),
             previous ? "model '%s' has no previous route" : "model '%s' has no route", model);
    qv_mutex_lock(&st->mu);
    err = prepare(st,
                  previous ? QV_SQL_ROUTE_PREV_DOC : QV_SQL_ROUTE_DOC,
                  &stmt, d);
    if (err)
        goto out;
    bind_text(stmt, 1, model);
    err = get_text_locked(st, stmt, doc, what, d);
out:
    sqlite3_finalize(stmt);
    qv_mutex_unlock(&st->mu);
    return err;
}

static int sq_route_rollback(qv_store *s, const char *model, uint64_t now_ms, char **doc,
                             int64_t *revision, struct qv_diag *d)
{
    struct sq_store *st = sq(s);
    sqlite3_stmt *stmt = NULL;
    char *top = NULL;
    int64_t seq = 0, rev = 0;
    char what[160];
    int err, rc;

    snprintf(what, sizeof(what), "model '%s' has no previous route to roll back to", model);
    qv_mutex_lock(&st->mu);
    err = file_ok(st, d);
    if (err)
        goto out_unlock;
    err = begin(st, d);
    if (err)
        goto out_unlock;
    err = prepare(st,
                  QV_SQL_ROUTE_HISTORY_TOP,
                  &stmt, d);
    if (err)
        goto out;
    bind_text(stmt, 1, model);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) {
        err = qv_fail(d, QV_ENOENT, "store: %s", what);
        goto out;
    }
    if (rc != SQLITE_ROW) {
        err = db_fail(st, d, "route rollback");
        goto out;
    }
    seq = sqlite3_column_int64(stmt, 0);
    rev = sqlite3_column_int64(stmt, 1);
    err = col_dup(stmt, 2, false, &top);
    if (err) {
        err = qv_fail(d, err, "store: out of memory reading %s", what);
        goto out;
    }
    sqlite3_finalize(stmt);
    stmt = NULL;
    err = prepare(st, QV_SQL_ROUTE_HISTORY_POP, &stmt, d);
    if (err)
        goto out;
    bind_text(stmt, 1, model);
    sqlite3_bind_int64(stmt, 2, seq);
    err = step_done(st, stmt, "route rollback", d);
    if (err)
        goto out;
    sqlite3_finalize(stmt);
    stmt = NULL;
    err = prepare(st,
                  "UPDATE routes SET doc = ?2, revision = ?3, updated_ms = ?4, prev_doc = "
                  "(SELECT doc FROM route_history WHERE model = ?1 ORDER BY seq DESC LIMIT 1) "
                  "WHERE model = ?1",
                  &stmt, d);
    if (err)
        goto out;
    bind_text(stmt, 1, model);
    bind_text(stmt, 2, top);
    sqlite3_bind_int64(stmt, 3, rev);
    sqlite3_bind_int64(stmt, 4, (sqlite3_int64)now_ms);
    err = step_done(st, stmt, "route rollback", d);
out:
    sqlite3_finalize(stmt);
    err = finish(st, err, d);
out_unlock:
    qv_mutex_unlock(&st->mu);
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

static int sq_route_revision(qv_store *s, const char *model, int64_t *revision, size_t *depth,
                             struct qv_diag *d)
{
    struct sq_store *st = sq(s);
    sqlite3_stmt *stmt = NULL;
    int err, rc;

    qv_mutex_lock(&st->mu);
    err = prepare(st,
                  QV_SQL_ROUTE_REVISION,
                  &stmt, d);
    if (err)
        goto out;
    bind_text(stmt, 1, model);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) {
        err = qv_fail(d, QV_ENOENT, "store: model '%s' has no route", model);
        goto out;
    }
    if (rc != SQLITE_ROW) {
        err = db_fail(st, d, "route revision");
        goto out;
    }
    *revision = sqlite3_column_int64(stmt, 0);
    *depth = (size_t)sqlite3_column_int64(stmt, 1);
out:
    sqlite3_finalize(stmt);
    qv_mutex_unlock(&st->mu);
    return err;
}

static int sq_route_list(qv_store *s, struct qv_store_route **out, size_t *n, struct qv_diag *d)
{
    struct sq_store *st = sq(s);
    sqlite3_stmt *stmt = NULL;
    void *rows = NULL;
    int err;

    qv_mutex_lock(&st->mu);
    err =
        prepare(st, "SELECT model, doc, prev_doc, updated_ms FROM routes ORDER BY model", &stmt, d);
    if (!err)
        err = collect(st, stmt, sizeof(**out), read_route, release_routes, &rows, n, d);
    if (err == 0)
        *out = rows;
    sqlite3_finalize(stmt);
    qv_mutex_unlock(&st->mu);
    return err;
}

/* ---- Labels ---- */

static int read_label(sqlite3_stmt *stmt, void *row)
{
    struct qv_store_label *l = row;
    int err;

    err = col_dup(stmt, 0, false, &l->model);
    if (!err)
        err = col_dup(stmt, 1, false, &l->label);
    l->version = sqlite3_column_int64(stmt, 2);
    l->updated_ms = col_u64(stmt, 3);
    return err;
}

static void release_labels(void *a, size_t n)
{
    qv_store_label_free(a, n);
}

static int sq_label_set(qv_store *s, const char *model, const char *label, int64_t version,
                        uint64_t now_ms, struct qv_diag *d)
{
    struct sq_store *st = sq(s);
    sqlite3_stmt *stmt = NULL;
    int err;

    qv_mutex_lock(&st->mu);
    if ((err = file_ok(st, d)) != 0) {
        qv_mutex_unlock(&st->mu);
        return err;
    }
    err = prepare(st,
                  QV_SQL_LABEL_UPSERT,
                  &stmt, d);
    if (err)
        goto out;
    bind_text(stmt, 1, model);
    bind_text(stmt, 2, label);
    sqlite3_bind_int64(stmt, 3, version);
    sqlite3_bind_int64(stmt, 4, (sqlite3_int64)now_ms);
    err = step_done(st, stmt, "label set", d);
out:
    sqlite3_finalize(stmt);
    qv_mutex_unlock(&st->mu);
    return err;
}

static int sq_label_get(qv_store *s, const char *model, const char *label, int64_t *version,
                        struct qv_diag *d)
{
    struct sq_store *st = sq(s);
    sqlite3_stmt *stmt = NULL;
    int rc, err;

    qv_mutex_lock(&st->mu);
    err = prepare(st, QV_SQL_LABEL_GET, &stmt, d);
    if (err)
        goto out;
    bind_text(stmt, 1, model);
    bind_text(stmt, 2, label);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        *version = sqlite3_column_int64(stmt, 0);
    else if (rc == SQLITE_DONE)
        err = qv_fail(d, QV_ENOENT, "store: model '%s' has no label '%s'", model, label);
    else
        err = db_fail(st, d, "label get");
out:
    sqlite3_finalize(stmt);
    qv_mutex_unlock(&st->mu);
    return err;
}

static int sq_label_delete(qv_store *s, const char *model, const char *label, struct qv_diag *d)
{
    struct sq_store *st = sq(s);
    sqlite3_stmt *stmt = NULL;
    int err;

    qv_mutex_lock(&st->mu);
    if ((err = file_ok(st, d)) != 0) {
        qv_mutex_unlock(&st->mu);
        return err;
    }
    err = prepare(st, QV_SQL_LABEL_DELETE, &stmt, d);
    if (err)
        goto out;
    bind_text(stmt, 1, model);
    bind_text(stmt, 2, label);
    err = step_done(st, stmt, "label delete", d);
    if (err == 0 && sqlite3_changes(st->db) == 0)
        err = qv_fail(d, QV_ENOENT, "store: model '%s' has no label '%s'", model, label);
out:
    sqlite3_finalize(stmt);
    qv_mutex_unlock(&st->mu);
    return err;
}

static int sq_label_list(qv_store *s, const char *model, struct qv_store_label **out, size_t *n,
                         struct qv_diag *d)
{
    struct sq_store *st = sq(s);
    sqlite3_stmt *stmt = NULL;
    void *rows = NULL;
    int err;

    qv_mutex_lock(&st->mu);
    err = prepare(st,
                  model != NULL ? "SELECT model, label, version, updated_ms FROM labels "
                                  "WHERE model = ?1 ORDER BY model, label"
                                : "SELECT model, label, version, updated_ms FROM labels "
                                  "ORDER BY model, label",
                  &stmt, d);
    if (err)
        goto out;
    if (model != NULL)
        bind_text(stmt, 1, model);
    err = collect(st, stmt, sizeof(**out), read_label, release_labels, &rows, n, d);
    if (err == 0)
        *out = rows;
out:
    sqlite3_finalize(stmt);
    qv_mutex_unlock(&st->mu);
    return err;
}

/* ---- Audit log ---- */

static int read_event(sqlite3_stmt *stmt, void *row)
{
    struct qv_store_event *e = row;
    int err;

    e->id = sqlite3_column_int64(stmt, 0);
    e->ts_ms = col_u64(stmt, 1);
    err = col_dup(stmt, 2, false, &e->model);
    if (!err)
        err = col_dup(stmt, 3, false, &e->who);
    if (!err)
        err = col_dup(stmt, 4, false, &e->what);
    if (!err)
        err = col_dup(stmt, 5, true, &e->old_value);
    if (!err)
        err = col_dup(stmt, 6, true, &e->new_value);
    return err;
}

static void release_events(void *a, size_t n)
{
    qv_store_event_free(a, n);
}

static int sq_event_add(qv_store *s, const struct qv_store_event *ev, int64_t *id,
                        struct qv_diag *d)
{
    struct sq_store *st = sq(s);
    sqlite3_stmt *stmt = NULL;
    int err;

    qv_mutex_lock(&st->mu);
    if ((err = file_ok(st, d)) != 0) {
        qv_mutex_unlock(&st->mu);
        return err;
    }
    err = prepare(st,
                  "INSERT INTO events (ts_ms, model, who, what, old_value, new_value) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                  &stmt, d);
    if (err)
        goto out;
    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)ev->ts_ms);
    bind_text(stmt, 2, ev->model);
    bind_text(stmt, 3, ev->who);
    bind_text(stmt, 4, ev->what);
    bind_text(stmt, 5, ev->old_value);
    bind_text(stmt, 6, ev->new_value);
    err = step_done(st, stmt, "event add", d);
    if (err == 0 && id != NULL)
        *id = sqlite3_last_insert_rowid(st->db); /* this connection's, under st->mu */
out:
    sqlite3_finalize(stmt);
    qv_mutex_unlock(&st->mu);
    return err;
}

/* The newest `limit` matches, turned back into oldest-first order. LIMIT -1 is no limit. */
#define EVENT_SELECT(where)                                                                        \
    "SELECT id, ts_ms, model, who, what, old_value, new_value FROM ("                              \
    "SELECT * FROM events WHERE " where " ORDER BY ts_ms DESC, id DESC LIMIT ?3"                   \
    ") ORDER BY ts_ms, id"

static int sq_event_list(qv_store *s, const struct qv_store_event_filter *f,
                         struct qv_store_event **out, size_t *n, struct qv_diag *d)
{
    struct sq_store *st = sq(s);
    sqlite3_stmt *stmt = NULL;
    void *rows = NULL;
    int err;

    qv_mutex_lock(&st->mu);
    err = prepare(st,
                  f->model != NULL ? EVENT_SELECT("model = ?1 AND ts_ms >= ?2")
                                   : EVENT_SELECT("ts_ms >= ?2"),
                  &stmt, d);
    if (err)
        goto out;
    if (f->model != NULL)
        bind_text(stmt, 1, f->model);
    sqlite3_bind_int64(stmt, 2, (sqlite3_int64)f->since_ms);
    sqlite3_bind_int64(stmt, 3, f->limit == 0 ? -1 : (sqlite3_int64)f->limit);
    err = collect(st, stmt, sizeof(**out), read_event, release_events, &rows, n, d);
    if (err == 0)
        *out = rows;
out:
    sqlite3_finalize(stmt);
    qv_mutex_unlock(&st->mu);
    return err;
}

/* ---- Metric history ---- */

#define HISTORY_COLS QV_SQL_HISTORY_COLS

static int read_history(sqlite3_stmt *stmt, void *row)
{
    struct qv_history_row *r = row;

    r->version = sqlite3_column_int64(stmt, 0);
    r->ts_ms = col_u64(stmt, 1);
    r->requests = col_u64(stmt, 2);
    r->errors = col_u64(stmt, 3);
    r->p50_ms = col_real(stmt, 4);
    r->p95_ms = col_real(stmt, 5);
    r->p99_ms = col_real(stmt, 6);
    r->mean_ms = col_real(stmt, 7);
    r->cpu_ms_per_req = col_real(stmt, 8);
    r->memory_bytes = col_u64(stmt, 9);
    r->queue_depth = col_u64(stmt, 10);
    r->weight = col_real(stmt, 11);
    return 0;
}

static void release_history(void *a, size_t n)
{
    (void)n;
    free(a);
}

static int sq_history_add(qv_store *s, const char *model, const struct qv_history_row *rows,
                          size_t n, uint64_t now_ms, struct qv_diag *d)
{
    struct sq_store *st = sq(s);
    sqlite3_stmt *stmt = NULL;
    int err;

    qv_mutex_lock(&st->mu);
    if ((err = file_ok(st, d)) != 0) {
        qv_mutex_unlock(&st->mu);
        return err;
    }
    err = begin(st, d);
    if (err)
        goto out_unlock;
    err = prepare(st,
                  "INSERT OR REPLACE INTO history (model, " HISTORY_COLS ") "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                  &stmt, d);
    for (size_t i = 0; err == 0 && i < n; i++) {
        const struct qv_history_row *r = &rows[i];

        sqlite3_reset(stmt);
        bind_text(stmt, 1, model);
        sqlite3_bind_int64(stmt, 2, r->version);
        sqlite3_bind_int64(stmt, 3, (sqlite3_int64)(r->ts_ms != 0 ? r->ts_ms : now_ms));
        sqlite3_bind_int64(stmt, 4, (sqlite3_int64)r->requests);
        sqlite3_bind_int64(stmt, 5, (sqlite3_int64)r->errors);
        bind_real(stmt, 6, r->p50_ms);
        bind_real(stmt, 7, r->p95_ms);
        bind_real(stmt, 8, r->p99_ms);
        bind_real(stmt, 9, r->mean_ms);
        bind_real(stmt, 10, r->cpu_ms_per_req);
        sqlite3_bind_int64(stmt, 11, (sqlite3_int64)r->memory_bytes);
        sqlite3_bind_int64(stmt, 12, (sqlite3_int64)r->queue_depth);
        bind_real(stmt, 13, r->weight);
        err = step_done(st, stmt, "history add", d);
    }
    sqlite3_finalize(stmt);
    err = finish(st, err, d);
out_unlock:
    qv_mutex_unlock(&st->mu);
    return err;
}

#define HISTORY_SELECT(where)                                                                      \
    "SELECT " HISTORY_COLS " FROM ("                                                               \
    "SELECT * FROM history WHERE model = ?1 AND ts_ms >= ?2" where                                 \
    " ORDER BY ts_ms DESC, version DESC LIMIT ?3"                                                  \
    ") ORDER BY ts_ms, version"

static int sq_history_query(qv_store *s, const struct qv_history_query *q,
                            struct qv_history_row **out, size_t *n, struct qv_diag *d)
{
    struct sq_store *st = sq(s);
    bool one = q->version != QV_STORE_ANY_VERSION;
    sqlite3_stmt *stmt = NULL;
    void *rows = NULL;
    int err;

    qv_mutex_lock(&st->mu);
    err = prepare(st, one ? HISTORY_SELECT(" AND version = ?4") : HISTORY_SELECT(""), &stmt, d);
    if (err)
        goto out;
    bind_text(stmt, 1, q->model);
    sqlite3_bind_int64(stmt, 2, (sqlite3_int64)q->since_ms);
    sqlite3_bind_int64(stmt, 3, q->limit == 0 ? -1 : (sqlite3_int64)q->limit);
    if (one)
        sqlite3_bind_int64(stmt, 4, q->version);
    err = collect(st, stmt, sizeof(**out), read_history, release_history, &rows, n, d);
    if (err == 0)
        *out = rows;
out:
    sqlite3_finalize(stmt);
    qv_mutex_unlock(&st->mu);
    return err;
}

static int sq_history_prune(qv_store *s, uint64_t before_ms, uint64_t *deleted, struct qv_diag *d)
{
    struct sq_store *st = sq(s);
    sqlite3_stmt *stmt = NULL;
    int err;

    qv_mutex_lock(&st->mu);
    if ((err = file_ok(st, d)) != 0) {
        qv_mutex_unlock(&st->mu);
        return err;
    }
    err = prepare(st, "DELETE FROM history WHERE ts_ms < ?1", &stmt, d);
    if (err)
        goto out;
    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)before_ms);
    err = step_done(st, stmt, "history prune", d);
    if (err == 0 && deleted != NULL)
        *deleted = (uint64_t)sqlite3_changes64(st->db);
out:
    sqlite3_finalize(stmt);
    qv_mutex_unlock(&st->mu);
    return err;
}

/* ---- Key/value ---- */

static int read_kv(sqlite3_stmt *stmt, void *row)
{
    struct qv_store_kv *kv = row;
    int err;

    err = col_dup(stmt, 0, false, &kv->key);
    if (!err)
        err = col_dup(stmt, 1, false, &kv->value);
    kv->updated_ms = col_u64(stmt, 2);
    return err;
}

static void release_kv(void *a, size_t n)
{
    qv_store_kv_free(a, n);
}

static int sq_kv_put(qv_store *s, const char *ns, const char *key, const char *value,
                     uint64_t now_ms, struct qv_diag *d)
{
    struct sq_store *st = sq(s);
    sqlite3_stmt *stmt = NULL;
    int err;

    qv_mutex_lock(&st->mu);
    if ((err = file_ok(st, d)) != 0) {
        qv_mutex_unlock(&st->mu);
        return err;
    }
    err = prepare(st,
                  QV_SQL_KV_UPSERT,
                  &stmt, d);
    if (err)
        goto out;
    bind_text(stmt, 1, ns);
    bind_text(stmt, 2, key);
    bind_text(stmt, 3, value);
    sqlite3_bind_int64(stmt, 4, (sqlite3_int64)now_ms);
    err = step_done(st, stmt, "kv put", d);
out:
    sqlite3_finalize(stmt);
    qv_mutex_unlock(&st->mu);
    return err;
}

static int sq_kv_get(qv_store *s, const char *ns, const char *key, char **value, struct qv_diag *d)
{
    struct sq_store *st = sq(s);
    sqlite3_stmt *stmt = NULL;
    char what[160];
    int err;

    snprintf(what, sizeof(what), "no key '%s' in namespace '%s'", key, ns);
    qv_mutex_lock(&st->mu);
    err = prepare(st, QV_SQL_KV_GET, &stmt, d);
    if (err)
        goto out;
    bind_text(stmt, 1, ns);
    bind_text(stmt, 2, key);
    err = get_text_locked(st, stmt, value, what, d);
out:
    sqlite3_finalize(stmt);
    qv_mutex_unlock(&st->mu);
    return err;
}

static int sq_kv_delete(qv_store *s, const char *ns, const char *key, struct qv_diag *d)
{
    struct sq_store *st = sq(s);
    sqlite3_stmt *stmt = NULL;
    int err;

    qv_mutex_lock(&st->mu);
    if ((err = file_ok(st, d)) != 0) {
        qv_mutex_unlock(&st->mu);
        return err;
    }
    err = prepare(st, QV_SQL_KV_DELETE, &stmt, d);
    if (err)
        goto out;
    bind_text(stmt, 1, ns);
    bind_text(stmt, 2, key);
    err = step_done(st, stmt, "kv delete", d);
    if (err == 0 && sqlite3_changes(st->db) == 0)
        err = qv_fail(d, QV_ENOENT, "store: no key '%s' in namespace '%s'", key, ns);
out:
    sqlite3_finalize(stmt);
    qv_mutex_unlock(&st->mu);
    return err;
}

static int sq_kv_list(qv_store *s, const char *ns, struct qv_store_kv **out, size_t *n,
                      struct qv_diag *d)
{
    struct sq_store *st = sq(s);
    sqlite3_stmt *stmt = NULL;
    void *rows = NULL;
    int err;

    qv_mutex_lock(&st->mu);
    err = prepare(st, "SELECT key, value, updated_ms FROM kv WHERE ns = ?1 ORDER BY key", &stmt, d);
    if (err)
        goto out;
    bind_text(stmt, 1, ns);
    err = collect(st, stmt, sizeof(**out), read_kv, release_kv, &rows, n, d);
    if (err == 0)
        *out = rows;
out:
    sqlite3_finalize(stmt);
    qv_mutex_unlock(&st->mu);
    return err;
}

const struct qv_store_ops qv_store_sqlite = {
    .kind = "sqlite",
    .migrations = qv__store_sqlite_migrations,
    .open = sq_open,
    .close = sq_close,
    .schema_version = sq_schema_version,
    .version_upsert = sq_version_upsert,
    .version_get = sq_version_get,
    .version_list = sq_version_list,
    .route_put = sq_route_put,
    .route_get = sq_route_get,
    .route_rollback = sq_route_rollback,
    .route_revision = sq_route_revision,
    .route_list = sq_route_list,
    .label_set = sq_label_set,
    .label_get = sq_label_get,
    .label_delete = sq_label_delete,
    .label_list = sq_label_list,
    .event_add = sq_event_add,
    .event_list = sq_event_list,
    .history_add = sq_history_add,
    .history_query = sq_history_query,
    .history_prune = sq_history_prune,
    .kv_put = sq_kv_put,
    .kv_get = sq_kv_get,
    .kv_delete = sq_kv_delete,
    .kv_list = sq_kv_list,
};
