/* SPDX-License-Identifier: MIT
 *
 * Cluster mode: three `quiver serve` nodes on one throwaway PostgreSQL (tests/cluster/pg.sh,
 * started by this test; a missing PostgreSQL fails it). Each test gets a fresh database.
 * Every wait polls with a generous deadline; nothing asserts on timing.
 */
#include "integration/harness.h"

#include <libpq-fe.h>

#define N_NODES 3

static const char body4[] =
    "{\"inputs\": [{\"name\": \"input__0\", \"datatype\": \"FP32\", \"shape\": [1, 4], "
    "\"data\": [0.1, 0.2, 0.3, 0.4]}]}";

static char pg_dir[64];
static char pg_base[256]; /* postgres://nobody@127.0.0.1:PORT/ */
static int db_seq;

struct cl {
    struct h_srv n[N_NODES];
    char url[300];
};

static int pg_admin(const char *sql)
{
    char url[300];
    PGconn *c;
    PGresult *r;
    int rc;

    snprintf(url, sizeof(url), "%spostgres", pg_base);
    c = PQconnectdb(url);
    r = PQexec(c, sql);
    rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc != 0)
        fprintf(stderr, "pg: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return rc;
}

static int pg_sh(const char *cmd)
{
    return h_run("%s/tests/cluster/pg.sh %s %s >/dev/null", h_env("QV_SOURCE_DIR"), cmd, pg_dir);
}

static int group_setup(void **state)
{
    char cmd[512], url[256] = "";
    FILE *p;
    char *slash;

    (void)state;
    snprintf(pg_dir, sizeof(pg_dir), "/tmp/qv-pg-cluster-XXXXXX");
    if (mkdtemp(pg_dir) == NULL)
        return -1;
    snprintf(cmd, sizeof(cmd), "%s/tests/cluster/pg.sh start %s", h_env("QV_SOURCE_DIR"), pg_dir);
    p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    if (fgets(url, sizeof(url), p) == NULL)
        url[0] = '\0';
    if (pclose(p) != 0 || strncmp(url, "postgres://", 11) != 0) {
        fprintf(stderr, "cluster: cannot start PostgreSQL with tests/cluster/pg.sh\n");
        return -1;
    }
    slash = strrchr(url, '/');
    slash[1] = '\0';
    snprintf(pg_base, sizeof(pg_base), "%s", url);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    pg_sh("stop");
    return 0;
}

static int cl_setup(void **state)
{
    struct cl *c = calloc(1, sizeof(*c));
    char sql[64];

    if (c == NULL)
        return -1;
    snprintf(sql, sizeof(sql), "CREATE DATABASE cluster_%d", ++db_seq);
    if (pg_admin(sql) != 0)
        return -1;
    snprintf(c->url, sizeof(c->url), "%scluster_%d", pg_base, db_seq);
    for (int i = 0; i < N_NODES; i++) {
        h_init(&c->n[i]);
        h_test_model(&c->n[i], "m", "\"version_policy\": {\"all\": {}}");
        h_test_version(&c->n[i], "m", 1, "{\"features\": 4, \"scale\": 1.0}");
        h_test_version(&c->n[i], "m", 2, "{\"features\": 4, \"scale\": 2.0}");
    }
    *state = c;
    return 0;
}

static int cl_teardown(void **state)
{
    struct cl *c = *state;

    pg_sh("thaw"); /* a test that failed while PostgreSQL was frozen */

    for (int i = 0; i < N_NODES; i++)
        h_fini(&c->n[i]);
    free(c);
    h_live_free_all();
    return 0;
}

static void start_node(struct cl *c, int i)
{
    char name[16];

    snprintf(name, sizeof(name), "n%d", i + 1);
    h_start(&c->n[i], "--store", c->url, "--node-name", name, NULL);
}

static void start_all(struct cl *c)
{
    for (int i = 0; i < N_NODES; i++)
        start_node(c, i);
}

/* The body of GET path on node s, or NULL when not 200. Caller frees. */
static char *get_body(struct h_srv *s, const char *path)
{
    struct h_resp r = h_get(s, path);
    char *b = r.status == 200 ? strdup(r.body) : NULL;

    h_resp_free(&r);
    return b;
}

/* Polls node s until GET path answers 200 with a body containing needle. */
static void wait_body(struct h_srv *s, const char *path, const char *needle)
{
    uint64_t deadline = h_now_ms() + H_DEADLINE_MS;

    for (;;) {
        char *b = get_body(s, path);
        bool ok = b != NULL && strstr(b, needle) != NULL;

        if (ok) {
            free(b);
            return;
        }
        if (h_now_ms() > deadline)
            fail_msg("%s on port %d never showed %s (last: %s)", path, s->port, needle,
                     b ? b : "(error)");
        free(b);
        h_sleep_ms(20);
    }
}

static long version_of(struct h_srv *s)
{
    struct h_resp r = h_post(s, "/v2/models/m/infer", body4);
    long v = 0;

    if (r.status == 200)
        v = atol(h_jstr(r.json, "model_version"));
    else
        fprintf(stderr, "infer on port %d: %ld %s\n", s->port, r.status, r.body);
    h_resp_free(&r);
    return v;
}

/* A route PUT on node 1 is served by nodes 2 and 3; a label set on node 2 is seen on node 3;
 * a 90/10 split holds over requests sent round-robin to all nodes. */
static void test_route_label_split(void **state)
{
    struct cl *c = *state;
    struct h_resp r;
    long n2 = 0, total = 0;

    start_all(c);
    wait_body(&c->n[1], "/v2", "\"node\":\"n2\"");
    r = h_req(&c->n[0], "PUT", "/v2/models/m/route",
              "{\"policy\": \"weighted\", \"weights\": {\"1\": 90, \"2\": 10}}");
    if (r.status != 200)
        fail_msg("PUT route: %ld %s", r.status, r.body);
    h_resp_free(&r);
    for (int i = 1; i < N_NODES; i++)
        wait_body(&c->n[i], "/v2/models/m/route", "\"weighted\"");

    r = h_req(&c->n[1], "PUT", "/v2/models/m/labels/stable", "{\"version\": 1}");
    if (r.status != 200)
        fail_msg("PUT label: %ld %s", r.status, r.body);
    h_resp_free(&r);
    wait_body(&c->n[2], "/v2/models/m/route", "\"stable\"");
    wait_body(&c->n[0], "/v2/models/m/route", "\"stable\"");

    for (int k = 0; k < 3000; k++) {
        long v = version_of(&c->n[k % N_NODES]);

        assert_true(v == 1 || v == 2);
        n2 += v == 2;
        total++;
    }
    /* 10% of 3000 is 300; +-3 points is 210..390. */
    if (n2 < 210 || n2 > 390)
        fail_msg("version 2 answered %ld of %ld requests, expected 10%% +-3 points", n2, total);
    /* The audit events name the node that took each call; /metrics names the node. */
    wait_body(&c->n[2], "/v2/models/m/events", "anonymous@n1");
    wait_body(&c->n[2], "/v2/models/m/events", "anonymous@n2");
    wait_body(&c->n[1], "/metrics", "quiver_node_info{node=\"n2\"} 1");
    for (int i = 0; i < N_NODES; i++)
        h_stop_ok(&c->n[i]);
}

/* PostgreSQL stopped mid-run: every node keeps serving, a route change is refused with 503
 * naming PostgreSQL, and once PostgreSQL is back the change succeeds and reaches the others. */
static void test_postgres_down_and_back(void **state)
{
    struct cl *c = *state;
    const char *doc = "{\"policy\": \"weighted\", \"weights\": {\"1\": 50, \"2\": 50}}";
    uint64_t deadline;
    struct h_resp r;

    start_all(c);
    assert_int_equal(pg_sh("halt"), 0);
    for (int k = 0; k < 30; k++)
        assert_true(version_of(&c->n[k % N_NODES]) > 0);
    r = h_req(&c->n[0], "PUT", "/v2/models/m/route", doc);
    h_expect_error(&r, 503, "PostgreSQL");
    h_resp_free(&r);
    r = h_req(&c->n[1], "PUT", "/v2/models/m/labels/stable", "{\"version\": 1}");
    h_expect_error(&r, 503, "PostgreSQL");
    h_resp_free(&r);
    /* The refused change was not applied anywhere. */
    r = h_get(&c->n[0], "/v2/models/m/route");
    assert_null(strstr(r.body, "\"weighted\""));
    h_resp_free(&r);
    for (int k = 0; k < 30; k++)
        assert_true(version_of(&c->n[k % N_NODES]) > 0);

    assert_int_equal(pg_sh("resume"), 0);
    deadline = h_now_ms() + H_DEADLINE_MS;
    for (;;) {
        r = h_req(&c->n[0], "PUT", "/v2/models/m/route", doc);
        if (r.status == 200)
            break;
        if (r.status != 503 || h_now_ms() > deadline)
            fail_msg("PUT route after PostgreSQL came back: %ld %s", r.status, r.body);
        h_resp_free(&r);
        h_sleep_ms(100);
    }
    h_resp_free(&r);
    for (int i = 1; i < N_NODES; i++)
        wait_body(&c->n[i], "/v2/models/m/route", "\"weighted\"");
    for (int i = 0; i < N_NODES; i++)
        h_stop_ok(&c->n[i]);
}

/* The rollout's step (-1 when not answered) and whether its state is want. */
static long rollout_step(struct h_srv *s, const char *want, bool *is)
{
    struct h_resp r = h_get(s, "/v2/models/m/rollout");
    long step = -1;

    *is = false;
    if (r.status == 200 && r.json != NULL) {
        step = (long)json_integer_value(json_object_get(r.json, "step"));
        *is = strcmp(h_jstr(r.json, "state"), want) == 0;
    }
    h_resp_free(&r);
    return step;
}

static bool log_has(const struct h_srv *s, const char *needle)
{
    char *text = h_read_file(s->log, NULL);
    bool found = text != NULL && strstr(text, needle) != NULL;

    free(text);
    return found;
}

#define LEAD_MSG "took the controller lock"

/* Which node runs the controller (waits until exactly one does). */
static int wait_leader(struct cl *c, int skip)
{
    uint64_t deadline = h_now_ms() + H_DEADLINE_MS;

    for (;;) {
        int found = -1, count = 0;

        for (int i = 0; i < N_NODES; i++)
            if (i != skip && log_has(&c->n[i], LEAD_MSG)) {
                found = i;
                count++;
            }
        assert_true(count <= 1);
        if (found >= 0)
            return found;
        if (h_now_ms() > deadline)
            fail_msg("no node took the controller lock");
        h_sleep_ms(50);
    }
}

/* The rollout controller runs on one node only; after kill -9 of that node another takes the
 * lock and finishes the rollout from the step it stood at. */
static void test_controller_failover(void **state)
{
    struct cl *c = *state;
    uint64_t deadline;
    struct h_resp r;
    int lead, other;

    start_all(c);
    lead = wait_leader(c, -1);
    other = (lead + 1) % N_NODES;
    /* Started on another node than the controller: the controller takes it from the store. */
    r = h_post(&c->n[other], "/v2/models/m/rollout",
               "{\"canary\": 2, \"steps\": [10, 50, 100], \"step_seconds\": 1, "
               "\"min_requests\": 20, \"guards\": {\"max_error_rate_delta\": 0.5, "
               "\"max_p99_ratio\": 1000}}");
    if (r.status != 201)
        fail_msg("POST rollout: %ld %s", r.status, r.body);
    h_resp_free(&r);
    /* Traffic to the controller until the rollout is past its first step. */
    deadline = h_now_ms() + H_DEADLINE_MS;
    for (;;) {
        bool running;

        for (int k = 0; k < 20; k++)
            version_of(&c->n[lead]);
        if (rollout_step(&c->n[lead], "running", &running) >= 1 && running)
            break;
        if (h_now_ms() > deadline)
            fail_msg("rollout did not advance on the controller");
    }
    kill(c->n[lead].pid, SIGKILL);
    waitpid(c->n[lead].pid, NULL, 0);
    c->n[lead].pid = 0;

    lead = wait_leader(c, lead);
    /* The new controller resumes the rollout where it stood and finishes it. */
    deadline = h_now_ms() + H_DEADLINE_MS;
    for (;;) {
        bool promoted;

        for (int k = 0; k < 20; k++)
            version_of(&c->n[lead]);
        rollout_step(&c->n[lead], "promoted", &promoted);
        if (promoted)
            break;
        if (h_now_ms() > deadline)
            fail_msg("rollout not finished by the new controller");
    }
    /* The controller's decisions name the node that made them, in the shared audit log. */
    {
        char who[32];

        snprintf(who, sizeof(who), "controller@n%d", lead + 1);
        wait_body(&c->n[lead], "/v2/models/m/events", who);
    }
    /* Every surviving node serves the promoted version. */
    for (int i = 0; i < N_NODES; i++) {
        if (c->n[i].pid == 0)
            continue;
        wait_body(&c->n[i], "/v2/models/m/rollout", "\"promoted\"");
        h_stop_ok(&c->n[i]);
    }
}

/* A node whose artifact for a version differs from the one the cluster recorded marks that
 * version UNAVAILABLE on itself, with both hashes in the reason; the others serve it. */
static void test_artifact_differs(void **state)
{
    struct cl *c = *state;
    char st[32], reason[512];

    start_node(c, 0);
    h_test_version(&c->n[1], "m", 2, "{\"features\": 4, \"scale\": 7.0}");
    start_node(c, 1);
    h_wait_state(&c->n[1], "m", 2, "UNAVAILABLE");
    h_state_of(&c->n[1], "m", 2, st, sizeof(st), reason, sizeof(reason));
    if (strstr(reason, "artifact differs from the cluster: sha256 ") == NULL)
        fail_msg("reason: %s", reason);
    h_state_of(&c->n[1], "m", 1, st, sizeof(st), reason, sizeof(reason));
    assert_string_equal(st, "READY");
    h_state_of(&c->n[0], "m", 2, st, sizeof(st), reason, sizeof(reason));
    assert_string_equal(st, "READY");
    /* Node 1's record of the version is unchanged: a third node with the same files serves it. */
    start_node(c, 2);
    h_wait_state(&c->n[2], "m", 2, "READY");
    for (int i = 0; i < N_NODES; i++)
        h_stop_ok(&c->n[i]);
}

/* A rollout's decisions use the sum of every node's traffic: with all requests sent to the
 * nodes that do not run the controller, the controller still sees the canary's requests and
 * the rollout is promoted (on its own counters it would wait forever for min_requests). */
static void test_rollout_sums_nodes(void **state)
{
    struct cl *c = *state;
    uint64_t deadline;
    struct h_resp r;
    int lead;
    bool promoted = false;

    start_all(c);
    lead = wait_leader(c, -1);
    r = h_post(&c->n[(lead + 1) % N_NODES], "/v2/models/m/rollout",
               "{\"canary\": 2, \"steps\": [50, 100], \"step_seconds\": 1, "
               "\"min_requests\": 30, \"guards\": {\"max_error_rate_delta\": 0.5, "
               "\"max_p99_ratio\": 1000}}");
    if (r.status != 201)
        fail_msg("POST rollout: %ld %s", r.status, r.body);
    h_resp_free(&r);
    deadline = h_now_ms() + H_DEADLINE_MS;
    while (!promoted) {
        for (int k = 0; k < 20; k++)
            for (int i = 0; i < N_NODES; i++)
                if (i != lead)
                    version_of(&c->n[i]);
        rollout_step(&c->n[lead], "promoted", &promoted);
        if (!promoted && h_now_ms() > deadline)
            fail_msg("the controller never saw the other nodes' canary traffic");
    }
    /* The controller itself answered none of them. */
    r = h_get(&c->n[lead], "/v2/models/m/versions/2/stats");
    if (r.status == 200 && r.json != NULL) {
        json_t *t = json_object_get(r.json, "requests");
        if (json_is_integer(t))
            assert_int_equal(json_integer_value(t), 0);
    }
    h_resp_free(&r);
    for (int i = 0; i < N_NODES; i++)
        h_stop_ok(&c->n[i]);
}

/* Feedback sent to another node than the one that answered is joined with the version that
 * answered (the answering node shares its requests through the store); an unknown id is
 * still 404. */
static void test_feedback_other_node(void **state)
{
    struct cl *c = *state;
    const char *body = "{\"id\": \"req-42\", \"inputs\": [{\"name\": \"input__0\", "
                       "\"datatype\": \"FP32\", \"shape\": [1, 4], "
                       "\"data\": [0.1, 0.2, 0.3, 0.4]}]}";
    uint64_t deadline;
    struct h_resp r;
    char answered[16];

    start_node(c, 0);
    start_node(c, 1);
    r = h_req(&c->n[0], "PUT", "/v2/models/m/route", "{\"policy\": \"pinned\", \"target\": 1}");
    if (r.status != 200)
        fail_msg("PUT route: %ld %s", r.status, r.body);
    h_resp_free(&r);
    r = h_post(&c->n[0], "/v2/models/m/infer", body);
    assert_int_equal(r.status, 200);
    snprintf(answered, sizeof(answered), "%s", h_jstr(r.json, "model_version"));
    h_resp_free(&r);
    assert_string_equal(answered, "1");

    deadline = h_now_ms() + H_DEADLINE_MS;
    for (;;) {
        r = h_post(&c->n[1], "/v2/models/m/feedback", "{\"id\": \"req-42\", \"reward\": 1}");
        if (r.status == 200)
            break;
        if (r.status != 404 || h_now_ms() > deadline)
            fail_msg("feedback on node 2: %ld %s", r.status, r.body);
        h_resp_free(&r);
        h_sleep_ms(100);
    }
    assert_string_equal(h_jstr(r.json, "model_version"), answered);
    h_resp_free(&r);
    r = h_post(&c->n[1], "/v2/models/m/feedback", "{\"id\": \"req-nobody\", \"reward\": 1}");
    h_expect_error(&r, 404, "req-nobody");
    h_resp_free(&r);
    for (int i = 0; i < 2; i++)
        h_stop_ok(&c->n[i]);
}

struct put_arg {
    struct h_srv *s;
    const char *doc;
    long status;
};

static void *put_route_thread(void *arg)
{
    struct put_arg *a = arg;
    struct h_resp r = h_req(a->s, "PUT", "/v2/models/m/route", a->doc);

    a->status = r.status;
    h_resp_free(&r);
    return NULL;
}

/* Two nodes change the same route at once: both are accepted, every node ends with the same
 * whole document (one of the two, never a mix), and both changes are in the shared events. */
static void test_concurrent_writes(void **state)
{
    struct cl *c = *state;
    struct put_arg a[2] = {
        {&c->n[0], "{\"policy\": \"weighted\", \"weights\": {\"1\": 70, \"2\": 30}}", 0},
        {&c->n[1], "{\"policy\": \"pinned\", \"target\": 2}", 0},
    };
    pthread_t t[2];
    char *final = NULL;
    uint64_t deadline;

    start_all(c);
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_create(&t[i], NULL, put_route_thread, &a[i]), 0);
        for (int i = 0; i < 2; i++) {
            pthread_join(t[i], NULL);
            assert_int_equal(a[i].status, 200);
        }
        /* Every node converges on the same whole document. */
        deadline = h_now_ms() + H_DEADLINE_MS;
        for (;;) {
            char *d0 = get_body(&c->n[0], "/v2/models/m/route");
            bool same = d0 != NULL;

            for (int i = 1; same && i < N_NODES; i++) {
                char *di = get_body(&c->n[i], "/v2/models/m/route");
                same = di != NULL && strcmp(di, d0) == 0;
                free(di);
            }
            if (same) {
                free(final);
                final = d0;
                break;
            }
            free(d0);
            if (h_now_ms() > deadline)
                fail_msg("nodes never agreed on the route");
            h_sleep_ms(20);
        }
        assert_true((strstr(final, "\"weighted\"") != NULL && strstr(final, "70") != NULL) ||
                    (strstr(final, "\"pinned\"") != NULL && strstr(final, "70") == NULL));
    }
    free(final);
    {
        struct h_resp r = h_get(&c->n[2], "/v2/models/m/events");
        const char *p = r.body;
        int puts = 0;

        while ((p = strstr(p, "route.put")) != NULL) {
            puts++;
            p++;
        }
        h_resp_free(&r);
        assert_true(puts >= 5); /* at least one change per round, each audited */
    }
    for (int i = 0; i < N_NODES; i++)
        h_stop_ok(&c->n[i]);
}

/* POST an inference with request id on node s; the version that answered (0 on failure). */
static long infer_id(struct h_srv *s, const char *id)
{
    char body[256];
    struct h_resp r;
    long v = 0;

    snprintf(body, sizeof(body),
             "{\"id\": \"%s\", \"inputs\": [{\"name\": \"input__0\", \"datatype\": \"FP32\", "
             "\"shape\": [1, 4], \"data\": [0.1, 0.2, 0.3, 0.4]}]}",
             id);
    r = h_post(s, "/v2/models/m/infer", body);
    if (r.status == 200)
        v = atol(h_jstr(r.json, "model_version"));
    else
        fprintf(stderr, "infer %s on port %d: %ld %s\n", id, s->port, r.status, r.body);
    h_resp_free(&r);
    return v;
}

static long feedback(struct h_srv *s, const char *id, double reward)
{
    char body[160];
    struct h_resp r;
    long status;

    snprintf(body, sizeof(body), "{\"id\": \"%s\", \"reward\": %g}", id, reward);
    r = h_post(s, "/v2/models/m/feedback", body);
    status = r.status;
    if (status != 200 && status != 404 && status != 409 && status != 503)
        fprintf(stderr, "feedback %s on port %d: %ld %s\n", id, s->port, r.status, r.body);
    h_resp_free(&r);
    return status;
}

static void put_route(struct h_srv *s, const char *doc)
{
    struct h_resp r = h_req(s, "PUT", "/v2/models/m/route", doc);

    if (r.status != 200)
        fail_msg("PUT route: %ld %s", r.status, r.body);
    h_resp_free(&r);
}

/* Feedback counts once for the whole cluster: the same request id's feedback sent to a second
 * node is refused with 409, whichever node took the first (the answering one or another). */
static void test_feedback_once_per_cluster(void **state)
{
    struct cl *c = *state;
    uint64_t deadline;
    long st;

    start_all(c);
    put_route(&c->n[0], "{\"policy\": \"pinned\", \"target\": 1}");
    for (int i = 1; i < N_NODES; i++)
        wait_body(&c->n[i], "/v2/models/m/route", "\"pinned\"");

    /* First to the node that answered (at once, before the request is shared), then to the
     * others once they know the id: refused there too. */
    assert_int_equal(infer_id(&c->n[0], "once-a"), 1);
    assert_int_equal(feedback(&c->n[0], "once-a", 1), 200);
    for (int i = 1; i < N_NODES; i++) {
        deadline = h_now_ms() + H_DEADLINE_MS;
        while ((st = feedback(&c->n[i], "once-a", 0)) == 404 && h_now_ms() < deadline)
            h_sleep_ms(100);
        assert_int_equal(st, 409);
    }

    /* First to another node (joined through the store), then to the answering node and the
     * third one. */
    assert_int_equal(infer_id(&c->n[0], "once-b"), 1);
    deadline = h_now_ms() + H_DEADLINE_MS;
    while ((st = feedback(&c->n[1], "once-b", 1)) == 404 && h_now_ms() < deadline)
        h_sleep_ms(100);
    assert_int_equal(st, 200);
    assert_int_equal(feedback(&c->n[0], "once-b", 1), 409);
    assert_int_equal(feedback(&c->n[2], "once-b", 1), 409);
    assert_int_equal(feedback(&c->n[1], "once-b", 1), 409);

    /* A feedback refused because PostgreSQL was down was not recorded: sent again once it is
     * back, it is accepted. */
    assert_int_equal(infer_id(&c->n[0], "once-c"), 1);
    assert_int_equal(pg_sh("halt"), 0);
    assert_int_equal(feedback(&c->n[0], "once-c", 1), 503);
    assert_int_equal(pg_sh("resume"), 0);
    deadline = h_now_ms() + H_DEADLINE_MS;
    while ((st = feedback(&c->n[0], "once-c", 1)) == 503 && h_now_ms() < deadline)
        h_sleep_ms(100);
    assert_int_equal(st, 200);
    assert_int_equal(feedback(&c->n[0], "once-c", 1), 409);
    for (int i = 0; i < N_NODES; i++)
        h_stop_ok(&c->n[i]);
}

/* The bandit's arms are the cluster's: feedback sent to one node only (not the controller)
 * moves the arms every node draws from, the controller's and a third node's included. */
static void test_bandit_shared(void **state)
{
    struct cl *c = *state;
    int lead, fed, other;
    uint64_t deadline;

    start_all(c);
    lead = wait_leader(c, -1);
    fed = (lead + 1) % N_NODES;
    other = (lead + 2) % N_NODES;
    put_route(&c->n[fed], "{\"policy\": \"bandit\", \"weights\": {\"1\": 50, \"2\": 50}, "
                          "\"bandit\": {\"algorithm\": \"thompson\", \"seed\": 7}}");
    for (int i = 0; i < N_NODES; i++)
        wait_body(&c->n[i], "/v2/models/m/route", "\"bandit\"");
    /* Version 2 earns every reward, version 1 none: fed on one node only. */
    for (int k = 0; k < 60; k++) {
        char id[32];
        long v;

        snprintf(id, sizeof(id), "bandit-%d", k);
        v = infer_id(&c->n[fed], id);
        assert_true(v == 1 || v == 2);
        assert_int_equal(feedback(&c->n[fed], id, v == 2 ? 1.0 : 0.0), 200);
    }
    /* Every node, including those that received no feedback, now picks version 2. */
    for (int i = 0; i < N_NODES; i++) {
        int node = i == 0 ? other : i == 1 ? lead : fed;

        deadline = h_now_ms() + H_DEADLINE_MS;
        for (;;) {
            int twos = 0;

            for (int k = 0; k < 50; k++)
                twos += version_of(&c->n[node]) == 2;
            if (twos >= 45)
                break;
            if (h_now_ms() > deadline)
                fail_msg("node n%d picks version 2 for %d of 50 requests: its arms never took "
                         "the cluster's feedback", node + 1, twos);
            h_sleep_ms(200);
        }
    }
    for (int i = 0; i < N_NODES; i++)
        h_stop_ok(&c->n[i]);
}

/* Alerts are evaluated and fired by the controller node only, once for the cluster, and their
 * state shows on every node. The rule holds from the start on every node (fewer than a million
 * requests), so each node evaluating it on its own would fire it. */
static void test_alerts_shared(void **state)
{
    struct cl *c = *state;
    int lead;

    for (int i = 0; i < N_NODES; i++)
        h_test_model(&c->n[i], "m",
                     "\"version_policy\": {\"all\": {}}, \"alerts\": [{\"name\": \"seen\", "
                     "\"metric\": \"requests\", \"op\": \"<\", \"threshold\": 1000000, "
                     "\"window_s\": 600, \"version\": 1}]");
    start_all(c);
    lead = wait_leader(c, -1);
    put_route(&c->n[0], "{\"policy\": \"pinned\", \"target\": 1}");
    for (int i = 0; i < N_NODES; i++)
        wait_body(&c->n[i], "/v2/models/m/route", "\"pinned\"");
    /* Traffic on every node: each would fire on its own windows. */
    for (int k = 0; k < 30; k++)
        assert_int_equal(version_of(&c->n[k % N_NODES]), 1);
    for (int i = 0; i < N_NODES; i++)
        wait_body(&c->n[i], "/v2/models/m/alerts", "\"state\":\"firing\"");
    /* A few more ticks: still one firing for the cluster, by the controller. */
    h_sleep_ms(3000);
    {
        char who[32];
        struct h_resp r = h_get(&c->n[(lead + 1) % N_NODES], "/v2/models/m/events");
        const char *p = r.body;
        int fires = 0;

        snprintf(who, sizeof(who), "controller@n%d", lead + 1);
        assert_int_equal(r.status, 200);
        while ((p = strstr(p, "\"alert.fire\"")) != NULL) {
            fires++;
            p++;
        }
        if (fires != 1 || strstr(r.body, who) == NULL)
            fail_msg("expected one alert.fire by %s, got %d: %s", who, fires, r.body);
        h_resp_free(&r);
    }
    /* The whole cluster restarted: the controller resumes the stored states, and the alert
     * still firing is not fired again. */
    for (int i = 0; i < N_NODES; i++)
        h_stop_ok(&c->n[i]);
    start_all(c);
    for (int k = 0; k < 30; k++)
        assert_int_equal(version_of(&c->n[k % N_NODES]), 1);
    for (int i = 0; i < N_NODES; i++)
        wait_body(&c->n[i], "/v2/models/m/alerts", "\"state\":\"firing\"");
    h_sleep_ms(3000);
    {
        struct h_resp r = h_get(&c->n[0], "/v2/models/m/events");
        const char *p = r.body;
        int fires = 0;

        while ((p = strstr(p, "\"alert.fire\"")) != NULL) {
            fires++;
            p++;
        }
        if (fires != 1)
            fail_msg("after a restart: expected still one alert.fire, got %d: %s", fires, r.body);
        h_resp_free(&r);
    }
    for (int i = 0; i < N_NODES; i++)
        h_stop_ok(&c->n[i]);
}

/* A request never waits for PostgreSQL: with the server frozen (connections open, nothing
 * answers; any store call would hang), every node keeps answering inference requests, with
 * request ids (remembered for feedback and shared in batches) and without. */
static void test_inference_never_waits(void **state)
{
    struct cl *c = *state;

    start_node(c, 0);
    start_node(c, 1);
    put_route(&c->n[0], "{\"policy\": \"weighted\", \"weights\": {\"1\": 50, \"2\": 50}}");
    wait_body(&c->n[1], "/v2/models/m/route", "\"weighted\"");
    assert_int_equal(pg_sh("freeze"), 0);
    for (int k = 0; k < 400; k++) {
        char id[32];

        snprintf(id, sizeof(id), "frozen-%d", k);
        assert_true(k % 2 ? version_of(&c->n[k % 2]) > 0 : infer_id(&c->n[(k / 2) % 2], id) > 0);
    }
    /* Long enough for the nodes' batch writes and ticks to be stuck in PostgreSQL meanwhile. */
    h_sleep_ms(1500);
    for (int k = 0; k < 100; k++)
        assert_true(version_of(&c->n[k % 2]) > 0);
    assert_int_equal(pg_sh("thaw"), 0);
    for (int i = 0; i < 2; i++)
        h_stop_ok(&c->n[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_route_label_split, cl_setup, cl_teardown),
        cmocka_unit_test_setup_teardown(test_postgres_down_and_back, cl_setup, cl_teardown),
        cmocka_unit_test_setup_teardown(test_controller_failover, cl_setup, cl_teardown),
        cmocka_unit_test_setup_teardown(test_artifact_differs, cl_setup, cl_teardown),
        cmocka_unit_test_setup_teardown(test_rollout_sums_nodes, cl_setup, cl_teardown),
        cmocka_unit_test_setup_teardown(test_feedback_other_node, cl_setup, cl_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writes, cl_setup, cl_teardown),
        cmocka_unit_test_setup_teardown(test_feedback_once_per_cluster, cl_setup, cl_teardown),
        cmocka_unit_test_setup_teardown(test_bandit_shared, cl_setup, cl_teardown),
        cmocka_unit_test_setup_teardown(test_alerts_shared, cl_setup, cl_teardown),
        cmocka_unit_test_setup_teardown(test_inference_never_waits, cl_setup, cl_teardown),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    curl_global_cleanup();
    return rc;
}
