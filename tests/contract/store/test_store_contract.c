/* SPDX-License-Identifier: MIT
 *
 * The store contract: one suite written against store/store.h only, run against every store
 * implementation in targets[]. Each test gets a fresh, empty database URL from its target. A new
 * implementation (PostgreSQL) adds a target whose fresh_url() hands out an empty database.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "store/store.h"

/* ---- Targets ---- */

struct target {
    const char *name;
    /* Write a URL of a new, empty database into url; *ctx is passed to cleanup(). */
    int (*fresh_url)(char *url, size_t n, void **ctx);
    void (*cleanup)(void *ctx);
};

struct sqlite_ctx {
    char dir[64];
    char path[96];
};

static int sqlite_fresh_url(char *url, size_t n, void **ctx)
{
    struct sqlite_ctx *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return -1;
    snprintf(c->dir, sizeof(c->dir), "/tmp/qv-store-contract-XXXXXX");
    if (mkdtemp(c->dir) == NULL) {
        free(c);
        return -1;
    }
    snprintf(c->path, sizeof(c->path), "%s/state.db", c->dir);
    snprintf(url, n, "sqlite:%s", c->path);
    *ctx = c;
    return 0;
}

static void sqlite_cleanup(void *ctx)
{
    struct sqlite_ctx *c = ctx;
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char p[128];

    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", c->path, suffixes[i]);
        unlink(p);
    }
    rmdir(c->dir);
    free(c);
}

/* PostgreSQL: one throwaway server for the whole run (tests/cluster/pg.sh), one schema per
 * test, chosen through the URL's search_path option. */
static char pg_dir[64];
static char pg_url[256];
static int pg_seq;

static int pg_admin(const char *sql)
{
    PGconn *c = PQconnectdb(pg_url);
    PGresult *r = NULL;
    int rc = -1;

    if (PQstatus(c) == CONNECTION_OK) {
        PQclear(PQexec(c, "SET client_min_messages = warning"));
        r = PQexec(c, sql);
        rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
        if (rc != 0)
            fprintf(stderr, "pg: %s: %s", sql, PQerrorMessage(c));
    } else {
        fprintf(stderr, "pg: connect: %s", PQerrorMessage(c));
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

static int pg_fresh_url(char *url, size_t n, void **ctx)
{
    char sql[96];
    int id = ++pg_seq;

    snprintf(sql, sizeof(sql), "CREATE SCHEMA contract_%d", id);
    if (pg_admin(sql) != 0)
        return -1;
    snprintf(url, n, "%s?options=-csearch_path%%3Dcontract_%d", pg_url, id);
    *ctx = (void *)(intptr_t)id;
    return 0;
}

static void pg_cleanup(void *ctx)
{
    char sql[96];

    snprintf(sql, sizeof(sql), "DROP SCHEMA contract_%d CASCADE", (int)(intptr_t)ctx);
    pg_admin(sql);
}

/* Start the server; a missing PostgreSQL fails the suite (never a silent skip). */
static int pg_start(void)
{
    const char *src = getenv("QV_SOURCE_DIR");
    char cmd[512];
    FILE *p;
    size_t len;

    snprintf(pg_dir, sizeof(pg_dir), "/tmp/qv-pg-contract-XXXXXX");
    if (src == NULL || mkdtemp(pg_dir) == NULL)
        return -1;
    snprintf(cmd, sizeof(cmd), "%s/tests/cluster/pg.sh start %s", src, pg_dir);
    p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    if (fgets(pg_url, sizeof(pg_url), p) == NULL)
        pg_url[0] = '\0';
    if (pclose(p) != 0 || pg_url[0] == '\0')
        return -1;
    len = strlen(pg_url);
    while (len > 0 && (pg_url[len - 1] == '\n' || pg_url[len - 1] == '\r'))
        pg_url[--len] = '\0';
    return 0;
}

static void pg_stop(void)
{
    const char *src = getenv("QV_SOURCE_DIR");
    char cmd[512];

    if (src == NULL || pg_dir[0] == '\0')
        return;
    snprintf(cmd, sizeof(cmd), "%s/tests/cluster/pg.sh stop %s", src, pg_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "pg.sh stop failed\n");
}

static const struct target targets[] = {
    {"sqlite", sqlite_fresh_url, sqlite_cleanup},
    {"postgres", pg_fresh_url, pg_cleanup},
};

static const struct target *cur_target;

/* Per-test state: a fresh database, opened. */
struct fx {
    char url[256];
    void *ctx;
    qv_store *s;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct qv_diag d = {{0}};

    if (f == NULL || cur_target->fresh_url(f->url, sizeof(f->url), &f->ctx) != 0) {
        free(f);
        return -1;
    }
    if (qv_store_open(f->url, &f->s, &d) != 0) {
        fprintf(stderr, "open %s: %s\n", f->url, d.msg);
        cur_target->cleanup(f->ctx);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    qv_store_close(f->s);
    cur_target->cleanup(f->ctx);
    free(f);
    return 0;
}

/* Close and reopen the same database: what a restart does. */
static void restart(struct fx *f)
{
    struct qv_diag d = {{0}};

    qv_store_close(f->s);
    f->s = NULL;
    assert_int_equal(qv_store_open(f->url, &f->s, &d), 0);
}

#define OK(call)                                                                                   \
    do {                                                                                           \
        struct qv_diag d_ = {{0}};                                                                 \
        int e_ = (call);                                                                           \
        if (e_ != 0)                                                                               \
            fail_msg("%s -> %s: %s", #call, qv_err_name(e_), d_.msg);                              \
    } while (0)
/* call must fail with err and say why. The call sees the diag as `&d_`. */
#define FAILS(err, call)                                                                           \
    do {                                                                                           \
        struct qv_diag d_ = {{0}};                                                                 \
        int e_ = (call);                                                                           \
        if (e_ != (err))                                                                           \
            fail_msg("%s -> %s, expected %s", #call, qv_err_name(e_), qv_err_name(err));           \
        assert_true(d_.msg[0] != '\0');                                                            \
    } while (0)

static struct qv_store_version ver(const char *model, int64_t v, const char *state,
                                   const char *reason, uint64_t ms)
{
    struct qv_store_version r = {0};

    r.model = (char *)model;
    r.version = v;
    snprintf(r.state, sizeof(r.state), "%s", state);
    r.reason = (char *)reason;
    r.updated_ms = ms;
    return r;
}

/* ---- Schema and restart ---- */

static void test_open_migrate_restart(void **state)
{
    struct fx *f = *state;
    struct qv_store_version v = ver("fraud", 2, QV_STORE_STATE_READY, "loaded", 1000);
    struct qv_store_version got = {0};
    struct qv_history_row h = {.version = 2, .ts_ms = 5000, .requests = 10, .weight = 1};
    struct qv_history_query q = {.model = "fraud", .version = QV_STORE_ANY_VERSION};
    struct qv_store_event ev = {.ts_ms = 7, .model = "fraud", .who = "cli", .what = "label.set"};
    struct qv_history_row *rows = NULL;
    struct qv_store_event *evs = NULL;
    int schema = 0, schema2 = 0;
    int64_t lv = 0;
    char *doc = NULL;
    size_t n = 0;

    OK(qv_store_schema_version(f->s, &schema, &d_));
    assert_true(schema >= 1);
    memset(v.sha256, 'a', 64);
    OK(qv_store_version_upsert(f->s, &v, &d_));
    OK(qv_store_route_put(f->s, "fraud", "{\"stable\":2}", &d_));
    OK(qv_store_label_set(f->s, "fraud", "stable", 2, &d_));
    OK(qv_store_event_add(f->s, &ev, NULL, &d_));
    OK(qv_store_history_add(f->s, "fraud", &h, 1, &d_));
    OK(qv_store_kv_put(f->s, "bandit", "fraud", "{\"a\":1}", &d_));

    restart(f);
    restart(f); /* migrations are idempotent */
    OK(qv_store_schema_version(f->s, &schema2, &d_));
    assert_int_equal(schema2, schema);

    OK(qv_store_version_get(f->s, "fraud", 2, &got, &d_));
    assert_string_equal(got.state, "READY");
    assert_string_equal(got.reason, "loaded");
    assert_int_equal(strlen(got.sha256), 64);
    qv_store_version_fini(&got);
    OK(qv_store_route_get(f->s, "fraud", &doc, &d_));
    assert_string_equal(doc, "{\"stable\":2}");
    free(doc);
    OK(qv_store_label_get(f->s, "fraud", "stable", &lv, &d_));
    assert_int_equal(lv, 2);
    OK(qv_store_event_list(f->s, NULL, &evs, &n, &d_));
    assert_int_equal(n, 1);
    assert_string_equal(evs[0].what, "label.set");
    qv_store_event_free(evs, n);
    OK(qv_store_history_query(f->s, &q, &rows, &n, &d_));
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].requests, 10);
    free(rows);
    OK(qv_store_kv_get(f->s, "bandit", "fraud", &doc, &d_));
    assert_string_equal(doc, "{\"a\":1}");
    free(doc);
}

/* ---- Versions ---- */

static void test_version_upsert(void **state)
{
    struct fx *f = *state;
    struct qv_store_version v = ver("fraud", 1, QV_STORE_STATE_LOADING, NULL, 1000);
    struct qv_store_version got = {0}, *all = NULL;
    size_t n = 99;

    FAILS(QV_ENOENT, qv_store_version_get(f->s, "fraud", 1, &got, &d_));
    OK(qv_store_version_list(f->s, NULL, &all, &n, &d_));
    assert_int_equal(n, 0);
    assert_null(all);

    OK(qv_store_version_upsert(f->s, &v, &d_));
    OK(qv_store_version_get(f->s, "fraud", 1, &got, &d_));
    assert_string_equal(got.model, "fraud");
    assert_int_equal(got.version, 1);
    assert_string_equal(got.state, "LOADING");
    assert_string_equal(got.reason, "");
    assert_string_equal(got.sha256, "");
    assert_int_equal(got.first_seen_ms, 1000);
    assert_int_equal(got.updated_ms, 1000);
    qv_store_version_fini(&got);

    /* A later upsert changes everything but first_seen_ms, whatever the caller passes. */
    v = ver("fraud", 1, QV_STORE_STATE_UNAVAILABLE, "bad magic", 2500);
    v.first_seen_ms = 42;
    memset(v.sha256, 'f', 64);
    OK(qv_store_version_upsert(f->s, &v, &d_));
    OK(qv_store_version_get(f->s, "fraud", 1, &got, &d_));
    assert_string_equal(got.state, "UNAVAILABLE");
    assert_string_equal(got.reason, "bad magic");
    assert_int_equal(got.first_seen_ms, 1000);
    assert_int_equal(got.updated_ms, 2500);
    assert_int_equal(strspn(got.sha256, "f"), 64);
    qv_store_version_fini(&got);

    /* updated_ms 0 means now. */
    v = ver("housing", 3, QV_STORE_STATE_READY, "", 0);
    OK(qv_store_version_upsert(f->s, &v, &d_));
    v = ver("fraud", 0, QV_STORE_STATE_DRAINING, "", 10);
    OK(qv_store_version_upsert(f->s, &v, &d_));
    v = ver("fraud", 12, QV_STORE_STATE_UNLOADED, "", 10);
    OK(qv_store_version_upsert(f->s, &v, &d_));

    OK(qv_store_version_list(f->s, "fraud", &all, &n, &d_));
    assert_int_equal(n, 3);
    assert_int_equal(all[0].version, 0);
    assert_int_equal(all[1].version, 1);
    assert_int_equal(all[2].version, 12);
    qv_store_version_free(all, n);

    OK(qv_store_version_list(f->s, NULL, &all, &n, &d_));
    assert_int_equal(n, 4);
    assert_string_equal(all[3].model, "housing");
    assert_true(all[3].updated_ms > 1600000000000ull); /* "now" in wall ms */
    assert_int_equal(all[3].first_seen_ms, all[3].updated_ms);
    qv_store_version_free(all, n);

    OK(qv_store_version_list(f->s, "nothing", &all, &n, &d_));
    assert_int_equal(n, 0);
}

static void test_version_rejects(void **state)
{
    struct fx *f = *state;
    struct qv_store_version v = ver("fraud", 1, "RUNNING", NULL, 1);
    struct qv_store_version *all = NULL;
    size_t n = 0;

    FAILS(QV_EINVAL, qv_store_version_upsert(f->s, &v, &d_));
    v = ver("", 1, QV_STORE_STATE_READY, NULL, 1);
    FAILS(QV_EINVAL, qv_store_version_upsert(f->s, &v, &d_));
    v = ver("fraud", -1, QV_STORE_STATE_READY, NULL, 1);
    FAILS(QV_EINVAL, qv_store_version_upsert(f->s, &v, &d_));
    v = ver("fraud", 1, QV_STORE_STATE_READY, NULL, 1);
    snprintf(v.sha256, sizeof(v.sha256), "ABCDEF");
    FAILS(QV_EINVAL, qv_store_version_upsert(f->s, &v, &d_));
    OK(qv_store_version_list(f->s, NULL, &all, &n, &d_));
    assert_int_equal(n, 0);
}

/* ---- Routes ---- */

static void test_routes(void **state)
{
    struct fx *f = *state;
    struct qv_store_route *all = NULL;
    char *doc = NULL;
    size_t n = 0;

    FAILS(QV_ENOENT, qv_store_route_get(f->s, "fraud", &doc, &d_));
    FAILS(QV_ENOENT, qv_store_route_rollback(f->s, "fraud", &doc, &d_));
    assert_null(doc);

    OK(qv_store_route_put(f->s, "fraud", "A", &d_));
    FAILS(QV_ENOENT, qv_store_route_get_previous(f->s, "fraud", &doc, &d_));
    FAILS(QV_ENOENT, qv_store_route_rollback(f->s, "fraud", NULL, &d_));
    OK(qv_store_route_put(f->s, "fraud", "B", &d_));
    OK(qv_store_route_put(f->s, "fraud", "B", &d_)); /* same document: previous survives */
    OK(qv_store_route_get(f->s, "fraud", &doc, &d_));
    assert_string_equal(doc, "B");
    free(doc);
    OK(qv_store_route_get_previous(f->s, "fraud", &doc, &d_));
    assert_string_equal(doc, "A");
    free(doc);

    /* The history is a stack: each rollback goes one change further back, and says which
     * revision is in force. A (1), B (2), C (3): rollback -> B (2), rollback -> A (1). */
    {
        int64_t rev = 0;
        size_t depth = 0;
        OK(qv_store_route_put(f->s, "fraud", "C", &d_));
        OK(qv_store_route_revision(f->s, "fraud", &rev, &depth, &d_));
        assert_int_equal(rev, 3);
        assert_int_equal(depth, 2);
        OK(qv_store_route_rollback_rev(f->s, "fraud", &doc, &rev, &d_));
        assert_string_equal(doc, "B");
        assert_int_equal(rev, 2);
        free(doc);
        OK(qv_store_route_get_previous(f->s, "fraud", &doc, &d_));
        assert_string_equal(doc, "A");
        free(doc);
        OK(qv_store_route_rollback_rev(f->s, "fraud", &doc, &rev, &d_));
        assert_string_equal(doc, "A");
        assert_int_equal(rev, 1);
        free(doc);
        FAILS(QV_ENOENT, qv_store_route_rollback(f->s, "fraud", NULL, &d_));
        OK(qv_store_route_get(f->s, "fraud", &doc, &d_));
        assert_string_equal(doc, "A");
        free(doc);
        /* A new change after rollbacks gets a new revision, never a reused one. */
        OK(qv_store_route_put(f->s, "fraud", "B", &d_));
        OK(qv_store_route_revision(f->s, "fraud", &rev, &depth, &d_));
        assert_int_equal(rev, 4);
        assert_int_equal(depth, 1);
    }

    OK(qv_store_route_put(f->s, "housing", "{}", &d_));
    restart(f);
    OK(qv_store_route_list(f->s, &all, &n, &d_));
    assert_int_equal(n, 2);
    assert_string_equal(all[0].model, "fraud");
    assert_string_equal(all[0].doc, "B");
    assert_string_equal(all[0].prev_doc, "A");
    assert_string_equal(all[1].model, "housing");
    assert_string_equal(all[1].doc, "{}");
    assert_null(all[1].prev_doc);
    assert_true(all[1].updated_ms > 0);
    qv_store_route_free(all, n);

    FAILS(QV_EINVAL, qv_store_route_put(f->s, "fraud", "", &d_));
    FAILS(QV_EINVAL, qv_store_route_put(f->s, NULL, "{}", &d_));
}

/* ---- Labels ---- */

/* The history keeps at most QV_STORE_ROUTE_HISTORY_MAX documents per model. */
static void test_route_history_bounded(void **state)
{
    struct fx *f = *state;
    char doc[32];
    int64_t rev = 0;
    size_t depth = 0;

    for (int i = 0; i < QV_STORE_ROUTE_HISTORY_MAX + 20; i++) {
        snprintf(doc, sizeof(doc), "D%d", i);
        OK(qv_store_route_put(f->s, "m", doc, &d_));
    }
    OK(qv_store_route_revision(f->s, "m", &rev, &depth, &d_));
    assert_int_equal(rev, QV_STORE_ROUTE_HISTORY_MAX + 20);
    assert_int_equal(depth, QV_STORE_ROUTE_HISTORY_MAX);
}

/* A database file deleted under the open store: every write fails with QV_ESTORE saying
 * so (before, they succeeded into a file nobody would open again), reads still work. */
static void test_deleted_file_refuses_writes(void **state)
{
    struct fx *f = *state;
    struct sqlite_ctx *c = f->ctx;
    struct qv_diag d = {{0}};
    char *doc = NULL, p[128];

    if (strcmp(cur_target->name, "sqlite") != 0)
        skip();
    OK(qv_store_route_put(f->s, "fraud", "A", &d_));
    snprintf(p, sizeof(p), "%s-wal", c->path);
    assert_int_equal(unlink(c->path), 0);
    unlink(p);
    assert_int_equal(qv_store_route_put(f->s, "fraud", "B", &d), QV_ESTORE);
    assert_non_null(strstr(d.msg, "deleted"));
    memset(&d, 0, sizeof(d));
    assert_int_equal(qv_store_label_set(f->s, "fraud", "stable", 1, &d), QV_ESTORE);
    memset(&d, 0, sizeof(d));
    assert_int_equal(qv_store_kv_put(f->s, "bandit", "fraud", "{}", &d), QV_ESTORE);
    OK(qv_store_route_get(f->s, "fraud", &doc, &d_));
    assert_string_equal(doc, "A");
    free(doc);
}

static void test_labels(void **state)
{
    struct fx *f = *state;
    struct qv_store_label *all = NULL;
    int64_t v = -7;
    size_t n = 0;

    FAILS(QV_ENOENT, qv_store_label_get(f->s, "fraud", "stable", &v, &d_));
    assert_int_equal(v, -7);
    OK(qv_store_label_set(f->s, "fraud", "stable", 1, &d_));
    OK(qv_store_label_set(f->s, "fraud", "canary", 2, &d_));
    OK(qv_store_label_set(f->s, "housing", "stable", 4, &d_));
    OK(qv_store_label_set(f->s, "fraud", "stable", 2, &d_)); /* move */
    OK(qv_store_label_get(f->s, "fraud", "stable", &v, &d_));
    assert_int_equal(v, 2);

    OK(qv_store_label_list(f->s, "fraud", &all, &n, &d_));
    assert_int_equal(n, 2);
    assert_string_equal(all[0].label, "canary");
    assert_int_equal(all[0].version, 2);
    assert_string_equal(all[1].label, "stable");
    qv_store_label_free(all, n);

    OK(qv_store_label_delete(f->s, "fraud", "canary", &d_));
    FAILS(QV_ENOENT, qv_store_label_delete(f->s, "fraud", "canary", &d_));
    restart(f);
    OK(qv_store_label_list(f->s, NULL, &all, &n, &d_));
    assert_int_equal(n, 2);
    assert_string_equal(all[0].model, "fraud");
    assert_string_equal(all[0].label, "stable");
    assert_string_equal(all[1].model, "housing");
    assert_int_equal(all[1].version, 4);
    qv_store_label_free(all, n);

    FAILS(QV_EINVAL, qv_store_label_set(f->s, "fraud", "", 1, &d_));
    FAILS(QV_EINVAL, qv_store_label_set(f->s, "fraud", "x", -3, &d_));
}

/* ---- Audit log ---- */

static void add_event(qv_store *s, uint64_t ts, const char *model, const char *what,
                      const char *old_value, const char *new_value, int64_t *id)
{
    struct qv_store_event ev = {0};

    ev.ts_ms = ts;
    ev.model = (char *)model;
    ev.who = "controller";
    ev.what = (char *)what;
    ev.old_value = (char *)old_value;
    ev.new_value = (char *)new_value;
    OK(qv_store_event_add(s, &ev, id, &d_));
}

static void test_events(void **state)
{
    struct fx *f = *state;
    struct qv_store_event_filter flt = {0};
    struct qv_store_event *evs = NULL;
    int64_t ids[6];
    size_t n = 0;

    /* Added out of time order on purpose: lists are by ts_ms, then id. */
    add_event(f->s, 300, "fraud", "route.put", "{\"a\":1}", "{\"a\":2}", &ids[0]);
    add_event(f->s, 100, "fraud", "version.state", "LOADING", "READY", &ids[1]);
    add_event(f->s, 200, "housing", "label.set", NULL, "3", &ids[2]);
    add_event(f->s, 300, "fraud", "rollout.rollback", NULL, NULL, &ids[3]);
    add_event(f->s, 400, NULL, "alert.fire", NULL, "{\"cpu\":0.99}", &ids[4]);
    add_event(f->s, 500, "fraud", "label.set", "1", "2", &ids[5]);
    for (int i = 1; i < 6; i++)
        assert_true(ids[i] > ids[i - 1]);

    OK(qv_store_event_list(f->s, NULL, &evs, &n, &d_));
    assert_int_equal(n, 6);
    assert_int_equal(evs[0].id, ids[1]);
    assert_int_equal(evs[1].id, ids[2]);
    assert_int_equal(evs[2].id, ids[0]);
    assert_int_equal(evs[3].id, ids[3]);
    assert_int_equal(evs[4].id, ids[4]);
    assert_int_equal(evs[5].id, ids[5]);
    assert_int_equal(evs[0].ts_ms, 100);
    assert_string_equal(evs[0].who, "controller");
    assert_string_equal(evs[0].what, "version.state");
    assert_string_equal(evs[0].old_value, "LOADING");
    assert_string_equal(evs[0].new_value, "READY");
    assert_null(evs[1].old_value);
    assert_null(evs[3].new_value);
    assert_string_equal(evs[4].model, "");
    qv_store_event_free(evs, n);

    flt.model = "fraud";
    OK(qv_store_event_list(f->s, &flt, &evs, &n, &d_));
    assert_int_equal(n, 4);
    assert_int_equal(evs[0].ts_ms, 100);
    assert_int_equal(evs[3].ts_ms, 500);
    qv_store_event_free(evs, n);

    flt.since_ms = 300;
    OK(qv_store_event_list(f->s, &flt, &evs, &n, &d_));
    assert_int_equal(n, 3);
    assert_string_equal(evs[0].what, "route.put");
    assert_string_equal(evs[1].what, "rollout.rollback");
    assert_string_equal(evs[2].what, "label.set");
    qv_store_event_free(evs, n);

    /* limit keeps the newest, still newest last */
    flt.since_ms = 0;
    flt.limit = 2;
    OK(qv_store_event_list(f->s, &flt, &evs, &n, &d_));
    assert_int_equal(n, 2);
    assert_string_equal(evs[0].what, "rollout.rollback");
    assert_string_equal(evs[1].what, "label.set");
    qv_store_event_free(evs, n);

    flt.model = NULL;
    flt.limit = 1;
    OK(qv_store_event_list(f->s, &flt, &evs, &n, &d_));
    assert_int_equal(n, 1);
    assert_int_equal(evs[0].id, ids[5]);
    qv_store_event_free(evs, n);

    flt.model = "nothing";
    OK(qv_store_event_list(f->s, &flt, &evs, &n, &d_));
    assert_int_equal(n, 0);
    assert_null(evs);

    /* ts 0 means now; who and what are required. */
    add_event(f->s, 0, "fraud", "route.put", NULL, NULL, NULL);
    flt.model = "fraud";
    flt.since_ms = 1600000000000ull;
    flt.limit = 0;
    OK(qv_store_event_list(f->s, &flt, &evs, &n, &d_));
    assert_int_equal(n, 1);
    qv_store_event_free(evs, n);
    {
        struct qv_store_event bad = {.model = "fraud", .who = "cli"};

        FAILS(QV_EINVAL, qv_store_event_add(f->s, &bad, NULL, &d_));
    }
}

/* ---- Metric history ---- */

static struct qv_history_row hrow(int64_t version, uint64_t ts, uint64_t requests)
{
    struct qv_history_row r = {0};

    r.version = version;
    r.ts_ms = ts;
    r.requests = requests;
    r.errors = requests / 10;
    r.p50_ms = 1.5;
    r.p95_ms = 4.25;
    r.p99_ms = 9.0;
    r.mean_ms = 2.0;
    r.cpu_ms_per_req = 0.75;
    r.memory_bytes = 123456789012ull;
    r.queue_depth = 3;
    r.weight = version == 1 ? 0.9 : 0.1;
    return r;
}

static void test_history(void **state)
{
    struct fx *f = *state;
    struct qv_history_row batch[10], *rows = NULL;
    struct qv_history_query q = {.model = "fraud", .version = QV_STORE_ANY_VERSION};
    uint64_t deleted = 0;
    size_t n = 0;

    for (int i = 0; i < 5; i++) {
        batch[2 * i] = hrow(1, 1000 + 1000 * (uint64_t)i, 100 + (uint64_t)i);
        batch[2 * i + 1] = hrow(2, 1000 + 1000 * (uint64_t)i, 10 + (uint64_t)i);
    }
    batch[9].p99_ms = NAN; /* no data */
    OK(qv_store_history_add(f->s, "fraud", batch, 10, &d_));
    OK(qv_store_history_add(f->s, "housing", batch, 2, &d_));

    OK(qv_store_history_query(f->s, &q, &rows, &n, &d_));
    assert_int_equal(n, 10);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(rows[i].ts_ms, batch[i].ts_ms);
        assert_int_equal(rows[i].version, batch[i].version);
        assert_int_equal(rows[i].requests, batch[i].requests);
    }
    assert_int_equal(rows[0].errors, 10);
    assert_true(rows[0].p50_ms == 1.5 && rows[0].p95_ms == 4.25 && rows[0].p99_ms == 9.0);
    assert_true(rows[0].mean_ms == 2.0 && rows[0].cpu_ms_per_req == 0.75);
    assert_int_equal(rows[0].memory_bytes, 123456789012ull);
    assert_int_equal(rows[0].queue_depth, 3);
    assert_true(rows[0].weight == 0.9 && rows[1].weight == 0.1);
    assert_true(isnan(rows[9].p99_ms));
    free(rows);

    q.version = 2;
    q.since_ms = 3000;
    OK(qv_store_history_query(f->s, &q, &rows, &n, &d_));
    assert_int_equal(n, 3);
    assert_int_equal(rows[0].ts_ms, 3000);
    assert_int_equal(rows[2].ts_ms, 5000);
    assert_int_equal(rows[0].version, 2);
    free(rows);

    q.version = QV_STORE_ANY_VERSION;
    q.since_ms = 0;
    q.limit = 3; /* the newest three, oldest first */
    OK(qv_store_history_query(f->s, &q, &rows, &n, &d_));
    assert_int_equal(n, 3);
    assert_int_equal(rows[0].ts_ms, 4000);
    assert_int_equal(rows[0].version, 2);
    assert_int_equal(rows[1].ts_ms, 5000);
    assert_int_equal(rows[1].version, 1);
    assert_int_equal(rows[2].version, 2);
    free(rows);

    /* Same (model, version, ts) replaces. */
    batch[0].requests = 777;
    OK(qv_store_history_add(f->s, "fraud", batch, 1, &d_));
    q.limit = 0;
    q.version = 1;
    OK(qv_store_history_query(f->s, &q, &rows, &n, &d_));
    assert_int_equal(n, 5);
    assert_int_equal(rows[0].requests, 777);
    free(rows);

    /* A bad row rejects the whole batch. */
    batch[0] = hrow(1, 9000, 1);
    batch[1] = hrow(-5, 9000, 1);
    FAILS(QV_EINVAL, qv_store_history_add(f->s, "fraud", batch, 2, &d_));
    q.since_ms = 9000;
    q.version = QV_STORE_ANY_VERSION;
    OK(qv_store_history_query(f->s, &q, &rows, &n, &d_));
    assert_int_equal(n, 0);

    /* Prune spans all models. */
    OK(qv_store_history_prune(f->s, 3000, &deleted, &d_));
    assert_int_equal(deleted, 4 + 2);
    q.since_ms = 0;
    OK(qv_store_history_query(f->s, &q, &rows, &n, &d_));
    assert_int_equal(n, 6);
    assert_int_equal(rows[0].ts_ms, 3000);
    free(rows);
    q.model = "housing";
    OK(qv_store_history_query(f->s, &q, &rows, &n, &d_));
    assert_int_equal(n, 0);
    OK(qv_store_history_prune(f->s, 3000, NULL, &d_));
    OK(qv_store_history_prune(f->s, 3000, &deleted, &d_));
    assert_int_equal(deleted, 0);

    /* Empty batch is a no-op. */
    OK(qv_store_history_add(f->s, "fraud", NULL, 0, &d_));
    q.model = "";
    FAILS(QV_EINVAL, qv_store_history_query(f->s, &q, &rows, &n, &d_));
}

/* ---- Key/value ---- */

static void test_kv(void **state)
{
    struct fx *f = *state;
    struct qv_store_kv *all = NULL;
    char *v = NULL;
    size_t n = 0;

    FAILS(QV_ENOENT, qv_store_kv_get(f->s, "bandit", "fraud", &v, &d_));
    assert_null(v);
    OK(qv_store_kv_put(f->s, "bandit", "fraud", "{\"arms\":[1,2]}", &d_));
    OK(qv_store_kv_put(f->s, "bandit", "alpha", "", &d_)); /* empty value is a value */
    OK(qv_store_kv_put(f->s, "rollout", "fraud", "{\"step\":3}", &d_));
    OK(qv_store_kv_put(f->s, "bandit", "fraud", "{\"arms\":[2]}", &d_)); /* replace */

    OK(qv_store_kv_get(f->s, "bandit", "fraud", &v, &d_));
    assert_string_equal(v, "{\"arms\":[2]}");
    free(v);
    OK(qv_store_kv_get(f->s, "bandit", "alpha", &v, &d_));
    assert_string_equal(v, "");
    free(v);

    OK(qv_store_kv_list(f->s, "bandit", &all, &n, &d_));
    assert_int_equal(n, 2);
    assert_string_equal(all[0].key, "alpha");
    assert_string_equal(all[1].key, "fraud");
    assert_string_equal(all[1].value, "{\"arms\":[2]}");
    assert_true(all[1].updated_ms > 0);
    qv_store_kv_free(all, n);

    OK(qv_store_kv_delete(f->s, "bandit", "fraud", &d_));
    FAILS(QV_ENOENT, qv_store_kv_delete(f->s, "bandit", "fraud", &d_));
    restart(f);
    OK(qv_store_kv_get(f->s, "rollout", "fraud", &v, &d_));
    assert_string_equal(v, "{\"step\":3}");
    free(v);
    OK(qv_store_kv_list(f->s, "feedback", &all, &n, &d_));
    assert_int_equal(n, 0);

    FAILS(QV_EINVAL, qv_store_kv_put(f->s, "", "k", "v", &d_));
    FAILS(QV_EINVAL, qv_store_kv_put(f->s, "ns", "k", NULL, &d_));
}

/* ---- Concurrency ---- */

#define N_THREADS 4
#define N_OPS 100

struct writer {
    qv_store *s; /* shared handle, or NULL to open an own one on url */
    const char *url;
    int id;
    int failures;
};

static void *write_lots(void *arg)
{
    struct writer *w = arg;
    qv_store *s = w->s;
    char key[32], model[32];

    snprintf(model, sizeof(model), "m%d", w->id);
    if (s == NULL) {
        struct qv_diag d = {{0}};

        if (qv_store_open(w->url, &s, &d) != 0) {
            fprintf(stderr, "writer %d: open: %s\n", w->id, d.msg);
            w->failures++;
            return NULL;
        }
    }
    for (int i = 0; i < N_OPS; i++) {
        struct qv_store_event ev = {
            .ts_ms = 1 + (uint64_t)i, .model = model, .who = "test", .what = "tick"};
        struct qv_history_row h = hrow(w->id, 1 + (uint64_t)i, (uint64_t)i);
        struct qv_diag d = {{0}};
        int err;

        snprintf(key, sizeof(key), "%d.%d", w->id, i);
        err = qv_store_event_add(s, &ev, NULL, &d);
        if (!err)
            err = qv_store_kv_put(s, "load", key, model, &d);
        if (!err)
            err = qv_store_history_add(s, "shared", &h, 1, &d);
        if (!err)
            err = qv_store_label_set(s, "shared", model, i, &d);
        if (err) {
            fprintf(stderr, "writer %d op %d: %s: %s\n", w->id, i, qv_err_name(err), d.msg);
            w->failures++;
        }
    }
    if (w->s == NULL)
        qv_store_close(s);
    return NULL;
}

static void check_counts(qv_store *s)
{
    struct qv_history_query q = {.model = "shared", .version = QV_STORE_ANY_VERSION};
    struct qv_store_event *evs = NULL;
    struct qv_history_row *rows = NULL;
    struct qv_store_label *labels = NULL;
    struct qv_store_kv *kv = NULL;
    size_t n = 0;

    OK(qv_store_event_list(s, NULL, &evs, &n, &d_));
    assert_int_equal(n, N_THREADS * N_OPS);
    qv_store_event_free(evs, n);
    OK(qv_store_kv_list(s, "load", &kv, &n, &d_));
    assert_int_equal(n, N_THREADS * N_OPS);
    qv_store_kv_free(kv, n);
    OK(qv_store_history_query(s, &q, &rows, &n, &d_));
    assert_int_equal(n, N_THREADS * N_OPS);
    free(rows);
    OK(qv_store_label_list(s, "shared", &labels, &n, &d_));
    assert_int_equal(n, N_THREADS);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(labels[i].version, N_OPS - 1);
    qv_store_label_free(labels, n);
}

static void run_writers(struct fx *f, bool shared)
{
    struct writer w[N_THREADS];
    pthread_t t[N_THREADS];

    for (int i = 0; i < N_THREADS; i++) {
        w[i] = (struct writer){.s = shared ? f->s : NULL, .url = f->url, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, write_lots, &w[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    check_counts(f->s);
}

static void test_concurrent_shared_handle(void **state)
{
    run_writers(*state, true);
}

static void test_concurrent_own_handles(void **state)
{
    run_writers(*state, false);
}

/* Requests answered (cluster mode): PostgreSQL keeps them, in batches, replacing a known id,
 * pruned by age; SQLite says it does not. */
static void test_requests(void **state)
{
    struct fx *f = *state;
    struct qv_store_request rows[3] = {
        {.id = "a\"b\\c{d},e", .model = "fraud", .version = 2, .cls = 1, .ts_ms = 1000},
        {.id = "plain", .model = "fraud", .version = 1, .cls = -1, .ts_ms = 5000},
        {.id = "plain", .model = "fraud", .version = 3, .cls = 0, .ts_ms = 6000},
    };
    char model[128];
    int64_t v = 0;
    int cls = 9;
    uint64_t deleted = 0;

    if (strcmp(cur_target->name, "sqlite") == 0) {
        FAILS(QV_ENOTSUP, qv_store_request_add(f->s, rows, 1, &d_));
        FAILS(QV_ENOTSUP, qv_store_request_get(f->s, "x", model, &v, &cls, &d_));
        return;
    }
    FAILS(QV_EINVAL, qv_store_request_add(f->s, &(struct qv_store_request){.id = "", .model = "m"},
                                          1, &d_));
    OK(qv_store_request_add(f->s, rows, 3, &d_));
    OK(qv_store_request_get(f->s, rows[0].id, model, &v, &cls, &d_));
    assert_string_equal(model, "fraud");
    assert_int_equal(v, 2);
    assert_int_equal(cls, 1);
    OK(qv_store_request_get(f->s, "plain", model, &v, &cls, &d_));
    assert_int_equal(v, 3); /* the newest row of an id wins */
    assert_int_equal(cls, 0);
    FAILS(QV_ENOENT, qv_store_request_get(f->s, "nobody", model, &v, &cls, &d_));
    OK(qv_store_request_prune(f->s, 2000, &deleted, &d_));
    assert_int_equal(deleted, 1);
    FAILS(QV_ENOENT, qv_store_request_get(f->s, rows[0].id, model, &v, &cls, &d_));
    OK(qv_store_request_get(f->s, "plain", model, &v, &cls, &d_));
}

/* Feedback once per cluster (PostgreSQL): the first claim of an id adds to the totals, a second
 * one (from any node) is refused and adds nothing; claims are pruned with the requests. SQLite
 * says it does not share feedback. */
static void test_feedback(void **state)
{
    struct fx *f = *state;
    struct qv_store_feedback_total *t = NULL;
    size_t n = 9;

    if (strcmp(cur_target->name, "sqlite") == 0) {
        FAILS(QV_ENOTSUP, qv_store_feedback_add(f->s, "r1", "fraud", 1, 1.0, &d_));
        FAILS(QV_ENOTSUP, qv_store_feedback_totals(f->s, "fraud", &t, &n, &d_));
        return;
    }
    FAILS(QV_EINVAL, qv_store_feedback_add(f->s, "", "fraud", 1, 1.0, &d_));
    FAILS(QV_EINVAL, qv_store_feedback_add(f->s, "r1", "fraud", 1, 1.5, &d_));
    FAILS(QV_EINVAL, qv_store_feedback_add(f->s, "r1", "fraud", -1, 1.0, &d_));
    OK(qv_store_feedback_totals(f->s, "fraud", &t, &n, &d_));
    assert_int_equal(n, 0);
    OK(qv_store_feedback_add(f->s, "r1", "fraud", 2, 1.0, &d_));
    OK(qv_store_feedback_add(f->s, "r2", "fraud", 2, 0.25, &d_));
    OK(qv_store_feedback_add(f->s, "r3", "fraud", 1, 0.0, &d_));
    FAILS(QV_ECONFLICT, qv_store_feedback_add(f->s, "r1", "fraud", 2, 1.0, &d_));
    FAILS(QV_ECONFLICT, qv_store_feedback_add(f->s, "r1", "fraud", 1, 0.0, &d_));
    OK(qv_store_feedback_totals(f->s, "fraud", &t, &n, &d_));
    assert_int_equal(n, 2);
    assert_int_equal(t[0].version, 1);
    assert_int_equal(t[0].count, 1);
    assert_true(t[0].reward_sum == 0.0);
    assert_int_equal(t[1].version, 2);
    assert_int_equal(t[1].count, 2);
    assert_true(t[1].reward_sum == 1.25);
    free(t);
    OK(qv_store_feedback_totals(f->s, "other", &t, &n, &d_));
    assert_int_equal(n, 0);
    /* Claims older than the cut are pruned with the requests: the id may be claimed again. */
    OK(qv_store_request_prune(f->s, qv_wall_ms() + 1000, NULL, &d_));
    OK(qv_store_feedback_add(f->s, "r1", "fraud", 2, 1.0, &d_));
    OK(qv_store_feedback_totals(f->s, "fraud", &t, &n, &d_));
    assert_int_equal(t[1].count, 3);
    free(t);
    /* A new request reusing the id, answered after the claim, can be scored again; an older
     * one cannot. */
    OK(qv_store_request_add(f->s, &(struct qv_store_request){.id = "r1", .model = "fraud",
                                                              .version = 2, .ts_ms = 1000},
                            1, &d_));
    FAILS(QV_ECONFLICT, qv_store_feedback_add(f->s, "r1", "fraud", 2, 1.0, &d_));
    OK(qv_store_request_add(f->s, &(struct qv_store_request){.id = "r1", .model = "fraud",
                                                              .version = 2,
                                                              .ts_ms = qv_wall_ms() + 1000},
                            1, &d_));
    OK(qv_store_feedback_add(f->s, "r1", "fraud", 2, 1.0, &d_));
    FAILS(QV_ECONFLICT, qv_store_feedback_add(f->s, "r1", "fraud", 2, 1.0, &d_));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_migrate_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_upsert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_history_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_file_refuses_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_shared_handle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_own_handles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feedback, setup, teardown),
    };
    int failed = 0;

    qv_log_set_level(QV_LOG_WARN);
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        cur_target = &targets[i];
        fprintf(stderr, "store contract: %s\n", cur_target->name);
        if (strcmp(cur_target->name, "postgres") == 0 && pg_start() != 0) {
            fprintf(stderr, "store contract: cannot start PostgreSQL (tests/cluster/pg.sh)\n");
            pg_stop();
            failed++;
            continue;
        }
        failed += cmocka_run_group_tests_name(cur_target->name, tests, NULL, NULL);
    }
    pg_stop();
    return failed;
}
