/* SPDX-License-Identifier: MIT
 *
 * Durability under kill -9: route changes and feedback are written at a high rate by two
 * client threads while the server is killed with SIGKILL at a random moment, 20 times over.
 * After each kill the database passes PRAGMA integrity_check, the server restarts on the same
 * --data, and every change acknowledged with 200 before the kill is there:
 *  - the route in force carries a counter (a label whose value grows with every PUT): it is at
 *    least the last acknowledged value (a PUT in flight at the kill may or may not have landed,
 *    so at most the last one sent);
 *  - the feedback count of the version is at least the number of feedbacks acknowledged in
 *    all rounds so far (and at most the number sent).
 */
#include "harness.h"

#include <sqlite3.h>

#define ROUNDS 20

struct writer {
    struct h_srv *s;
    atomic_bool stop;
    long acked; /* route: last acknowledged counter; feedback: acknowledged count */
    long sent;  /* route: last counter sent; feedback: count sent */
    long base;  /* first counter (route) of this round */
    int round;
};

static void *route_writer(void *p)
{
    struct writer *w = p;

    for (long i = w->base; !atomic_load(&w->stop); i++) {
        char doc[200];
        struct h_resp r;
        snprintf(doc, sizeof(doc),
                 "{\"policy\": \"pinned\", \"target\": 1, \"labels\": {\"n\": %ld}}", i);
        long status;
        w->sent = i;
        r = h_req(w->s, "PUT", "/v2/models/m/route", doc);
        status = r.status;
        h_resp_free(&r);
        if (status == 200)
            w->acked = i;
        if (status == 0)
            break; /* the server is gone */
    }
    return NULL;
}

static void *feedback_writer(void *p)
{
    struct writer *w = p;

    for (int j = 0; !atomic_load(&w->stop); j++) {
        char body[300], fb[120], id[48];
        struct h_resp r;
        long status;
        snprintf(id, sizeof(id), "r%d-%d", w->round, j);
        snprintf(body, sizeof(body),
                 "{\"id\": \"%s\", \"inputs\": [{\"name\": \"input__0\", \"datatype\": \"FP32\", "
                 "\"shape\": [1, 4], \"data\": [0.1, 0.2, 0.3, 0.4]}]}",
                 id);
        r = h_req(w->s, "POST", "/v2/models/m/infer", body);
        status = r.status;
        h_resp_free(&r);
        if (status != 200)
            break;
        snprintf(fb, sizeof(fb), "{\"id\": \"%s\", \"reward\": 1}", id);
        w->sent++;
        r = h_req(w->s, "POST", "/v2/models/m/feedback", fb);
        status = r.status;
        h_resp_free(&r);
        if (status == 200)
            w->acked++;
        if (status == 0)
            break;
    }
    return NULL;
}

static void integrity_ok(const struct h_srv *s)
{
    char path[400];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    const char *res;

    snprintf(path, sizeof(path), "%s/state.db", s->data);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    res = (const char *)sqlite3_column_text(st, 0);
    if (res == NULL || strcmp(res, "ok") != 0)
        fail_msg("integrity_check: %s", res ? res : "(null)");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static long route_counter(struct h_srv *s)
{
    struct h_resp r = h_get(s, "/v2/models/m/route");
    long n;

    assert_int_equal(r.status, 200);
    n = (long)json_integer_value(json_object_get(json_object_get(r.json, "labels"), "n"));
    h_resp_free(&r);
    return n;
}

static long feedback_count(struct h_srv *s)
{
    struct h_resp r = h_get(s, "/v2/models/m/versions/1/quiver-stats");
    long n;

    assert_int_equal(r.status, 200);
    n = (long)json_integer_value(json_object_get(
        json_object_get(json_array_get(json_object_get(r.json, "versions"), 0), "online_accuracy"),
        "feedback"));
    h_resp_free(&r);
    return n;
}

static void test_kill9_keeps_acknowledged(void **state)
{
    struct h_srv *s = *state;
    long next = 2, fb_acked = 0, fb_sent = 0;
    unsigned seed = (unsigned)time(NULL);

    print_message("seed %u\n", seed);
    srand(seed);
    h_test_model(s, "m", "\"version_policy\": {\"all\": {}}");
    h_test_version(s, "m", 1, "{\"features\": 4}");
    h_test_version(s, "m", 2, "{\"features\": 4}");
    h_start(s, NULL);
    h_wait_state(s, "m", 1, "READY");
    {
        struct h_resp r = h_req(s, "PUT", "/v2/models/m/route",
                                "{\"policy\": \"pinned\", \"target\": 1, \"labels\": {\"n\": 1}}");
        assert_int_equal(r.status, 200);
        h_resp_free(&r);
    }
    for (int round = 0; round < ROUNDS; round++) {
        struct writer rw, fw;
        pthread_t rt, ft;
        int status;
        long n, fb;

        memset(&rw, 0, sizeof(rw));
        memset(&fw, 0, sizeof(fw));
        rw.s = fw.s = s;
        rw.base = next;
        rw.acked = next - 1;
        rw.round = fw.round = round;
        atomic_init(&rw.stop, false);
        atomic_init(&fw.stop, false);
        assert_int_equal(pthread_create(&rt, NULL, route_writer, &rw), 0);
        assert_int_equal(pthread_create(&ft, NULL, feedback_writer, &fw), 0);
        h_sleep_ms(200 + rand() % 800);
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &status, 0);
        s->pid = 0;
        atomic_store(&rw.stop, true);
        atomic_store(&fw.stop, true);
        pthread_join(rt, NULL);
        pthread_join(ft, NULL);
        fb_acked += fw.acked;
        fb_sent += fw.sent;

        integrity_ok(s);
        h_start(s, NULL);
        h_wait_state(s, "m", 1, "READY");
        n = route_counter(s);
        fb = feedback_count(s);
        if (round % 5 == 0 || n < rw.acked || fb < fb_acked)
            print_message("round %d: route acked %ld sent %ld found %ld; feedback acked %ld "
                          "sent %ld found %ld\n",
                          round, rw.acked, rw.sent, n, fb_acked, fb_sent, fb);
        assert_true(n >= rw.acked);
        assert_true(n <= (rw.sent > rw.acked ? rw.sent : rw.acked));
        assert_true(fb >= fb_acked);
        assert_true(fb <= fb_sent);
        /* What is in force now is the truth the next round builds on. */
        fb_acked = fb_sent = fb;
        next = (n > rw.sent ? n : rw.sent) + 1;
    }
    h_stop_ok(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_kill9_keeps_acknowledged),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
