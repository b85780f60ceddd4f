/* SPDX-License-Identifier: MIT
 *
 * SQLite failing under route changes and history writes, through the store
 * API (store/store.h): a database locked by another connection (busy), a
 * full disk (RLIMIT_FSIZE: every write past the limit fails with EFBIG, as
 * on a full file system), and a read-only database. Each failed write
 * returns QV_ESTORE with the database's message; everything acknowledged
 * before is still there, in this handle and after a reopen, the database
 * passes PRAGMA integrity_check, and writes succeed again once the fault is
 * gone.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "fuzz/fuzz_server.h"
#include "store/store.h"

static char g_dir[256], g_db[300], g_url[320];

static void fresh_store(qv_store **s)
{
    struct qv_diag d = {{0}};
    const char *tmp = getenv("TMPDIR");

    snprintf(g_dir, sizeof(g_dir), "%s/quiver-fault-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(g_dir));
    snprintf(g_db, sizeof(g_db), "%s/state.db", g_dir);
    snprintf(g_url, sizeof(g_url), "sqlite:%s", g_db);
    if (qv_store_open(g_url, s, &d) != QV_OK)
        fail_msg("open: %s", d.msg);
}

static void remove_store(qv_store *s)
{
    qv_store_close(s);
    chmod(g_dir, 0700);
    chmod(g_db, 0600);
    fz_rmtree(g_dir);
}

static char *route_doc(int i)
{
    char *doc = malloc(9000);

    assert_non_null(doc);
    snprintf(doc, 9000, "{\"policy\": \"default\", \"n\": %d, \"pad\": \"%08d%.*d\"}", i, i, 8000,
             0);
    return doc;
}

static void expect_route(qv_store *s, const char *want)
{
    struct qv_diag d = {{0}};
    char *doc = NULL;

    if (qv_store_route_get(s, "m", &doc, &d) != QV_OK)
        fail_msg("route get: %s", d.msg);
    assert_string_equal(doc, want);
    free(doc);
}

static size_t history_rows(qv_store *s)
{
    struct qv_history_query q = {"m", QV_STORE_ANY_VERSION, 0, 0};
    struct qv_history_row *rows = NULL;
    struct qv_diag d = {{0}};
    size_t n = 0;

    if (qv_store_history_query(s, &q, &rows, &n, &d) != QV_OK)
        fail_msg("history query: %s", d.msg);
    free(rows);
    return n;
}

static int history_write(qv_store *s, uint64_t ts0, size_t n, struct qv_diag *d)
{
    struct qv_history_row rows[64];

    assert_true(n <= 64);
    memset(rows, 0, sizeof(rows));
    for (size_t i = 0; i < n; i++) {
        rows[i].version = 1;
        rows[i].ts_ms = ts0 + i;
        rows[i].requests = 100 + i;
        rows[i].p99_ms = 1.5;
    }
    return qv_store_history_add(s, "m", rows, n, d);
}

static void integrity_ok(void)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;

    assert_int_equal(sqlite3_open_v2(g_db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* Another connection holds the write lock past the store's busy timeout. */
static void test_busy(void **state)
{
    struct qv_diag d = {{0}};
    qv_store *s;
    sqlite3 *other = NULL;
    char *doc1 = route_doc(1), *doc2 = route_doc(2);

    (void)state;
    fresh_store(&s);
    assert_int_equal(qv_store_route_put(s, "m", doc1, &d), QV_OK);
    assert_int_equal(history_write(s, 1000, 10, &d), QV_OK);
    assert_int_equal(sqlite3_open(g_db, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

    assert_int_equal(qv_store_route_put(s, "m", doc2, &d), QV_ESTORE);
    assert_non_null(strstr(d.msg, "locked"));
    d.msg[0] = '\0';
    assert_int_equal(history_write(s, 2000, 10, &d), QV_ESTORE);
    assert_true(d.msg[0] != '\0');
    /* Readers are not blocked (WAL); the failed writes left nothing. */
    expect_route(s, doc1);
    assert_int_equal(history_rows(s), 10);

    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    assert_int_equal(qv_store_route_put(s, "m", doc2, &d), QV_OK);
    assert_int_equal(history_write(s, 2000, 10, &d), QV_OK);
    expect_route(s, doc2);
    assert_int_equal(history_rows(s), 20);
    integrity_ok();
    remove_store(s);
    free(doc1);
    free(doc2);
}

static off_t file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? st.st_size : 0;
}

/* Writes fail with EFBIG past RLIMIT_FSIZE, as they do with ENOSPC on a
 * full disk: SQLite answers SQLITE_FULL or an I/O error. */
static void test_full_disk(void **state)
{
    struct qv_diag d = {{0}};
    struct rlimit old, lim;
    qv_store *s;
    char wal[320], *acked = NULL;
    size_t acked_rows = 0;
    int route_fail = 0, hist_fail = 0;
    off_t biggest;

    (void)state;
    signal(SIGXFSZ, SIG_IGN);
    fresh_store(&s);
    acked = route_doc(0);
    assert_int_equal(qv_store_route_put(s, "m", acked, &d), QV_OK);
    snprintf(wal, sizeof(wal), "%s-wal", g_db);
    biggest = file_size(g_db) > file_size(wal) ? file_size(g_db) : file_size(wal);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)biggest + 96 * 1024;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);

    for (int i = 1; i <= 400 && (route_fail == 0 || hist_fail == 0); i++) {
        char *doc = route_doc(i);
        d.msg[0] = '\0';
        if (route_fail == 0) {
            int err = qv_store_route_put(s, "m", doc, &d);
            if (err == QV_OK) {
                free(acked);
                acked = doc;
                doc = NULL;
            } else {
                assert_int_equal(err, QV_ESTORE);
                assert_true(d.msg[0] != '\0');
                route_fail = i;
            }
        }
        free(doc);
        d.msg[0] = '\0';
        if (hist_fail == 0) {
            int err = history_write(s, 10000 + (uint64_t)i * 64, 64, &d);
            if (err == QV_OK) {
                acked_rows += 64;
            } else {
                assert_int_equal(err, QV_ESTORE);
                assert_true(d.msg[0] != '\0');
                hist_fail = i;
            }
        }
    }
    assert_true(route_fail > 0 && hist_fail > 0);
    printf("[ fault ] full disk: route write %d and history write %d failed, as expected\n",
           route_fail, hist_fail);
    /* Still full: what was acknowledged reads back. */
    expect_route(s, acked);
    assert_int_equal(history_rows(s), acked_rows);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    /* Space again: writes succeed, and everything survives a reopen. */
    assert_int_equal(history_write(s, 1, 1, &d), QV_OK);
    acked_rows++;
    qv_store_close(s);
    if (qv_store_open(g_url, &s, &d) != QV_OK)
        fail_msg("reopen: %s", d.msg);
    expect_route(s, acked);
    assert_int_equal(history_rows(s), acked_rows);
    integrity_ok();
    remove_store(s);
    free(acked);
    signal(SIGXFSZ, SIG_DFL);
}

/* The database and its directory become read-only (permissions; root
 * ignores them, so this case needs an unprivileged user). */
static void test_read_only(void **state)
{
    struct qv_diag d = {{0}};
    qv_store *s;
    char *doc1 = route_doc(1), *doc2 = route_doc(2);
    int err;

    (void)state;
    if (geteuid() == 0) {
        printf("[ fault ] read-only: skipped as root (permissions do not bind root)\n");
        free(doc1);
        free(doc2);
        skip();
    }
    fresh_store(&s);
    assert_int_equal(qv_store_route_put(s, "m", doc1, &d), QV_OK);
    qv_store_close(s);
    assert_int_equal(chmod(g_db, 0444), 0);
    assert_int_equal(chmod(g_dir, 0555), 0);
    err = qv_store_open(g_url, &s, &d);
    if (err != QV_OK) {
        /* Refused at open, naming the database. */
        assert_int_equal(err, QV_ESTORE);
        assert_non_null(strstr(d.msg, "state.db"));
        s = NULL;
    } else {
        expect_route(s, doc1);
        assert_int_equal(qv_store_route_put(s, "m", doc2, &d), QV_ESTORE);
        assert_true(d.msg[0] != '\0');
        expect_route(s, doc1);
        qv_store_close(s);
    }
    chmod(g_dir, 0700);
    chmod(g_db, 0600);
    if (qv_store_open(g_url, &s, &d) != QV_OK)
        fail_msg("reopen: %s", d.msg);
    expect_route(s, doc1);
    assert_int_equal(qv_store_route_put(s, "m", doc2, &d), QV_OK);
    expect_route(s, doc2);
    integrity_ok();
    remove_store(s);
    free(doc1);
    free(doc2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_busy),
        cmocka_unit_test(test_full_disk),
        cmocka_unit_test(test_read_only),
    };

    qv_log_set_level(QV_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
