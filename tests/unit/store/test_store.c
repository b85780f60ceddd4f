/* SPDX-License-Identifier: MIT
 *
 * Unit tests of src/store/ beyond the shared contract (tests/contract/store/): URL parsing,
 * SQLite open failures, WAL mode, and the migration runner (order, idempotence, a failing
 * migration rolling back, a database newer than the build).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/store.h"
#include "store/store_impl.h"

struct tmp {
    char dir[64];
};

static int setup(void **state)
{
    struct tmp *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return -1;
    snprintf(t->dir, sizeof(t->dir), "/tmp/qv-store-unit-XXXXXX");
    if (mkdtemp(t->dir) == NULL) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

/* The tests create only flat files (and one subdirectory "sub") in t->dir. */
static int teardown(void **state)
{
    struct tmp *t = *state;
    static const char *const names[] = {"state.db",         "state.db-wal",    "state.db-shm",
                                        "plain-file",       "garbage.db",      "sub/state.db",
                                        "sub/state.db-wal", "sub/state.db-shm"};
    char p[160];

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", t->dir, names[i]);
        unlink(p);
    }
    snprintf(p, sizeof(p), "%s/sub", t->dir);
    rmdir(p);
    rmdir(t->dir);
    free(t);
    return 0;
}

static void path_in(const struct tmp *t, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", t->dir, name);
}

static void url_in(const struct tmp *t, const char *name, char *out, size_t n)
{
    snprintf(out, n, "sqlite:%s/%s", t->dir, name);
}

static bool exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

/* ---- URLs ---- */

static void test_url_unknown_scheme(void **state)
{
    struct qv_diag d = {{0}};
    qv_store *s = NULL;

    (void)state;
    assert_int_equal(qv_store_open("mysql:/x", &s, &d), QV_EINVAL);
    assert_null(s);
    assert_non_null(strstr(d.msg, "'mysql'"));
}

static void test_url_malformed(void **state)
{
    static const char *const bad[] = {
        "",        "state.db", "/var/lib/quiver/state.db", ":memory:", "1sqlite:/x",
        "sqlite:", "sqlite://"};
    qv_store *s = NULL;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct qv_diag d = {{0}};

        assert_int_equal(qv_store_open(bad[i], &s, &d), QV_EINVAL);
        assert_true(d.msg[0] != '\0');
    }
    {
        struct qv_diag d = {{0}};

        assert_int_equal(qv_store_open(NULL, &s, &d), QV_EINVAL);
    }
    assert_null(s);
}

/* A PostgreSQL URL is served by the PostgreSQL store: an unreachable server is QV_ESTORE with
 * libpq's reason and without the password. */
static void test_url_postgres(void **state)
{
    struct qv_diag d = {{0}};
    qv_store *s = NULL;

    (void)state;
    assert_int_equal(qv_store_open("postgres://quiver:s3cret@127.0.0.1:1/quiver", &s, &d),
                     QV_ESTORE);
    assert_null(s);
    assert_non_null(strstr(d.msg, "unreachable"));
    assert_non_null(strstr(d.msg, "127.0.0.1:1/quiver"));
    assert_null(strstr(d.msg, "s3cret")); /* a URL may hold a password: never echo it */
    memset(&d, 0, sizeof(d));
    assert_int_equal(qv_store_open("postgresql://127.0.0.1:1/db?connect_timeout=2", &s, &d),
                     QV_ESTORE);
    memset(&d, 0, sizeof(d));
    assert_int_equal(qv_store_open("postgres:db", &s, &d), QV_EINVAL);
    memset(&d, 0, sizeof(d));
    assert_int_equal(qv_store_open("postgresql://h/db?nosuchparam=1", &s, &d), QV_EINVAL);
    assert_non_null(strstr(d.msg, "nosuchparam"));
    memset(&d, 0, sizeof(d));
    assert_int_equal(qv_store_open("mysql://root:hunter2@h/db", &s, &d), QV_EINVAL);
    assert_null(strstr(d.msg, "hunter2"));
}

static void test_url_forms(void **state)
{
    struct tmp *t = *state;
    struct qv_diag d = {{0}};
    qv_store *s = NULL;
    char url[160], path[128];

    /* sqlite:///abs/path */
    path_in(t, "state.db", path, sizeof(path));
    snprintf(url, sizeof(url), "sqlite://%s", path);
    assert_int_equal(qv_store_open(url, &s, &d), 0);
    assert_string_equal(qv_store_kind(s), "sqlite");
    qv_store_close(s);
    assert_true(exists(path));

    /* scheme is case-insensitive */
    snprintf(url, sizeof(url), "SQLite:%s", path);
    assert_int_equal(qv_store_open(url, &s, &d), 0);
    qv_store_close(s);

    /* in memory: a working store that lives as long as the handle */
    assert_int_equal(qv_store_open("sqlite::memory:", &s, &d), 0);
    assert_int_equal(qv_store_kv_put(s, "ns", "k", "v", &d), 0);
    qv_store_close(s);
    assert_int_equal(qv_store_open("sqlite::memory:", &s, &d), 0);
    {
        char *v = NULL;

        assert_int_equal(qv_store_kv_get(s, "ns", "k", &v, &d), QV_ENOENT);
    }
    qv_store_close(s);
    qv_store_close(NULL);
}

/* ---- Open failures ---- */

static void test_unwritable_path(void **state)
{
    struct tmp *t = *state;
    struct qv_diag d = {{0}};
    qv_store *s = NULL;
    char path[128], url[160];
    int fd;

    /* A path below a regular file cannot be created, even by root. */
    path_in(t, "plain-file", path, sizeof(path));
    fd = open(path, O_CREAT | O_WRONLY, 0644);
    assert_true(fd >= 0);
    close(fd);
    snprintf(url, sizeof(url), "sqlite:%s/state.db", path);
    assert_int_equal(qv_store_open(url, &s, &d), QV_ESTORE);
    assert_null(s);
    assert_non_null(strstr(d.msg, path));
    assert_non_null(strstr(d.msg, "unable to open"));

    /* A missing directory is not created. */
    memset(&d, 0, sizeof(d));
    url_in(t, "sub/state.db", url, sizeof(url));
    assert_int_equal(qv_store_open(url, &s, &d), QV_ESTORE);
    assert_non_null(strstr(d.msg, "sub/state.db"));
}

static void test_not_a_database(void **state)
{
    struct tmp *t = *state;
    static const char junk[] = "this is certainly not an SQLite database file, just some text "
                               "that is long enough to fill a header of one hundred bytes.....";
    struct qv_diag d = {{0}};
    qv_store *s = NULL;
    char path[128], url[160];
    FILE *fp;

    path_in(t, "garbage.db", path, sizeof(path));
    fp = fopen(path, "wb");
    assert_non_null(fp);
    fwrite(junk, 1, sizeof(junk), fp);
    fclose(fp);
    url_in(t, "garbage.db", url, sizeof(url));
    assert_int_equal(qv_store_open(url, &s, &d), QV_ESTORE);
    assert_null(s);
    assert_non_null(strstr(d.msg, "not a database"));
}

static void test_wal_mode(void **state)
{
    struct tmp *t = *state;
    struct qv_diag d = {{0}};
    qv_store *s = NULL;
    char path[128], url[160];

    url_in(t, "state.db", url, sizeof(url));
    path_in(t, "state.db-wal", path, sizeof(path));
    assert_int_equal(qv_store_open(url, &s, &d), 0);
    assert_int_equal(qv_store_kv_put(s, "ns", "k", "v", &d), 0);
    assert_true(exists(path)); /* the write went to the write-ahead log */
    qv_store_close(s);
}

/* ---- Migrations ---- */

static const struct qv_store_migration two[] = {
    {1, "one", "CREATE TABLE t1 (x INTEGER);"},
    {2, "two", "CREATE TABLE t2 (x INTEGER); INSERT INTO t1 VALUES (1);"},
    {0, NULL, NULL},
};

/* The first statement succeeds, the second fails: neither may stay. */
static const struct qv_store_migration three_bad[] = {
    {1, "one", "CREATE TABLE t1 (x INTEGER);"},
    {2, "two", "CREATE TABLE t2 (x INTEGER); INSERT INTO t1 VALUES (1);"},
    {3, "three", "CREATE TABLE t3 (x INTEGER); INSERT INTO no_such_table VALUES (1);"},
    {0, NULL, NULL},
};

/* Succeeds only if t3 does not exist, i.e. if the bad migration 3 was rolled back. */
static const struct qv_store_migration three_good[] = {
    {1, "one", "CREATE TABLE t1 (x INTEGER);"},
    {2, "two", "CREATE TABLE t2 (x INTEGER); INSERT INTO t1 VALUES (1);"},
    {3, "three", "CREATE TABLE t3 (x INTEGER);"},
    {0, NULL, NULL},
};

static int version_of(qv_store *s)
{
    struct qv_diag d = {{0}};
    int v = -1;

    assert_int_equal(qv_store_schema_version(s, &v, &d), 0);
    return v;
}

static void test_migrations_in_order_and_idempotent(void **state)
{
    struct tmp *t = *state;
    struct qv_diag d = {{0}};
    qv_store *s = NULL;
    char url[160];

    url_in(t, "state.db", url, sizeof(url));
    assert_int_equal(qv__store_open_with(url, two, &s, &d), 0);
    assert_int_equal(version_of(s), 2);
    qv_store_close(s);
    /* Reopening applies nothing again: migration 1 would fail on the existing t1. */
    assert_int_equal(qv__store_open_with(url, two, &s, &d), 0);
    assert_int_equal(version_of(s), 2);
    qv_store_close(s);
}

static void test_failed_migration_rolls_back(void **state)
{
    struct tmp *t = *state;
    struct qv_diag d = {{0}};
    qv_store *s = NULL;
    char url[160];

    url_in(t, "state.db", url, sizeof(url));
    assert_int_equal(qv__store_open_with(url, two, &s, &d), 0);
    qv_store_close(s);
    s = NULL;

    assert_int_equal(qv__store_open_with(url, three_bad, &s, &d), QV_ESTORE);
    assert_null(s);
    assert_non_null(strstr(d.msg, "migration 3 (three)"));
    assert_non_null(strstr(d.msg, "no_such_table"));

    memset(&d, 0, sizeof(d));
    assert_int_equal(qv__store_open_with(url, two, &s, &d), 0);
    assert_int_equal(version_of(s), 2);
    qv_store_close(s);
    assert_int_equal(qv__store_open_with(url, three_good, &s, &d), 0);
    assert_int_equal(version_of(s), 3);
    qv_store_close(s);
}

static void test_failed_first_migration_leaves_empty_db(void **state)
{
    static const struct qv_store_migration bad_first[] = {
        {1, "one", "CREATE TABLE t1 (x INTEGER); SELECT * FROM missing;"},
        {0, NULL, NULL},
    };
    struct tmp *t = *state;
    struct qv_diag d = {{0}};
    qv_store *s = NULL;
    char url[160];

    url_in(t, "state.db", url, sizeof(url));
    assert_int_equal(qv__store_open_with(url, bad_first, &s, &d), QV_ESTORE);
    memset(&d, 0, sizeof(d));
    assert_int_equal(qv__store_open_with(url, two, &s, &d), 0); /* t1 is not there */
    assert_int_equal(version_of(s), 2);
    qv_store_close(s);
}

static void test_newer_schema_refused(void **state)
{
    struct tmp *t = *state;
    struct qv_diag d = {{0}};
    qv_store *s = NULL;
    char url[160];

    url_in(t, "state.db", url, sizeof(url));
    assert_int_equal(qv__store_open_with(url, three_good, &s, &d), 0);
    qv_store_close(s);
    s = NULL;
    assert_int_equal(qv__store_open_with(url, two, &s, &d), QV_ESTORE);
    assert_null(s);
    assert_non_null(strstr(d.msg, "newer"));
}

static void test_real_schema(void **state)
{
    struct tmp *t = *state;
    struct qv_diag d = {{0}};
    qv_store *s = NULL;
    char url[160];
    int n = 0;

    for (const struct qv_store_migration *m = qv__store_sqlite_migrations; m->version != 0; m++) {
        n++;
        assert_int_equal(m->version, n); /* numbered 1, 2, 3, ... */
        assert_non_null(m->name);
        assert_non_null(m->sql);
    }
    url_in(t, "state.db", url, sizeof(url));
    assert_int_equal(qv_store_open(url, &s, &d), 0);
    assert_int_equal(version_of(s), n);
    qv_store_close(s);
    assert_int_equal(qv_store_open(url, &s, &d), 0);
    assert_int_equal(version_of(s), n);
    qv_store_close(s);
}

/* A database made before the route history (schema 1) with a current and a previous
 * route: migration 2 keeps both, so a rollback still reaches the previous one. */
static void test_route_history_migration(void **state)
{
    struct tmp *t = *state;
    struct qv_store_migration only_first[2];
    struct qv_diag d = {{0}};
    qv_store *s = NULL;
    sqlite3 *db = NULL;
    char url[160], path[160], *doc = NULL;
    int64_t rev = -1;

    only_first[0] = qv__store_sqlite_migrations[0];
    memset(&only_first[1], 0, sizeof(only_first[1]));
    url_in(t, "state.db", url, sizeof(url));
    path_in(t, "state.db", path, sizeof(path));
    assert_int_equal(qv__store_open_with(url, only_first, &s, &d), 0);
    qv_store_close(s);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO routes (model, doc, prev_doc, updated_ms) "
                                  "VALUES ('m', 'NEW', 'OLD', 1)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(qv_store_open(url, &s, &d), 0);
    assert_int_equal(qv_store_route_get(s, "m", &doc, &d), 0);
    assert_string_equal(doc, "NEW");
    free(doc);
    assert_int_equal(qv_store_route_rollback_rev(s, "m", &doc, &rev, &d), 0);
    assert_string_equal(doc, "OLD");
    assert_int_equal(rev, 0);
    free(doc);
    assert_int_equal(qv_store_route_rollback(s, "m", NULL, &d), QV_ENOENT);
    qv_store_close(s);
}

/* A database error reaches the caller as QV_ESTORE with SQLite's words. */
static void test_error_names_cause(void **state)
{
    struct tmp *t = *state;
    struct qv_diag d = {{0}};
    qv_store *s = NULL;
    char url[160];

    url_in(t, "state.db", url, sizeof(url));
    assert_int_equal(qv__store_open_with(url, two, &s, &d), 0); /* no store tables */
    assert_int_equal(qv_store_kv_put(s, "ns", "k", "v", &d), QV_ESTORE);
    assert_non_null(strstr(d.msg, "no such table: kv"));
    assert_non_null(strstr(d.msg, "state.db"));
    qv_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_unknown_scheme),
        cmocka_unit_test(test_url_malformed),
        cmocka_unit_test(test_url_postgres),
        cmocka_unit_test_setup_teardown(test_url_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwritable_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrations_in_order_and_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_migration_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_first_migration_leaves_empty_db, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_real_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_history_migration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_names_cause, setup, teardown),
    };

    qv_log_set_level(QV_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
