/* SPDX-License-Identifier: MIT
 *
 * The routing commands of the `quiver` CLI against a running server (the
 * binary run as a subprocess with --url): the canary walkthrough
 *
 *   quiver label set fraud stable 1
 *   quiver label set fraud canary 2
 *   quiver route set fraud --weights stable=90,canary=10
 *   quiver promote fraud canary
 *   quiver rollback fraud
 *   quiver events fraud
 *
 * with each exit code checked and the server's route (and the traffic it
 * routes) checked after each step; then the failures: a refused document
 * (exit 1, the server's message on stderr, route unchanged), bad usage
 * (exit 2), a server that is not there (exit 3), and tokens (--token and
 * QUIVER_TOKEN; 401/403 become exit 1).
 */
#include "integration/harness.h"
#include "integration/cli_runner.h"

static const char body4[] =
    "{\"inputs\": [{\"name\": \"input__0\", \"datatype\": \"FP32\", \"shape\": [1, 4], "
    "\"data\": [0.1, 0.2, 0.3, 0.4]}]}";

static json_t *route_now(const struct h_srv *s)
{
    struct h_resp r = h_get(s, "/v2/models/fraud/route");
    json_t *j;

    assert_int_equal(r.status, 200);
    j = json_incref(r.json);
    h_resp_free(&r);
    assert_non_null(j);
    return j;
}

static long num(json_t *route, const char *section, const char *key)
{
    json_t *v = json_object_get(json_object_get(route, section), key);

    return json_is_number(v) ? (long)json_number_value(v) : -1;
}

/* Sends n inferences without a version; counts[v] += answers from v. */
static void traffic(const struct h_srv *s, int n, int *counts)
{
    for (int i = 0; i < n; i++) {
        struct h_resp r = h_post(s, "/v2/models/fraud/infer", body4);
        const char *mv;
        assert_int_equal(r.status, 200);
        mv = h_jstr(r.json, "model_version");
        assert_non_null(mv);
        counts[atoi(mv) & 3]++;
        h_resp_free(&r);
    }
}

static void test_cli_canary_walkthrough(void **state)
{
    struct h_srv *s = *state;
    json_t *rt, *j;
    int counts[4] = {0};

    two_versions(s);
    h_start(s, NULL);
    h_wait_state(s, "fraud", 1, "READY");
    h_wait_state(s, "fraud", 2, "READY");

    /* route show: the default, as JSON on stdout. */
    expect_exit(quiver(s, "--url %s route show fraud", s->base), 0, "route show");
    j = json_loads(g_out, 0, NULL);
    assert_non_null(j);
    assert_string_equal(h_jstr(j, "policy"), "default");
    json_decref(j);

    /* Labels: stable 1, canary 2 (the routing stays the default). */
    expect_exit(quiver(s, "--url %s label set fraud stable 1", s->base), 0, "label set stable");
    expect_exit(quiver(s, "label set fraud canary 2 --url %s", s->base), 0, "label set canary");
    rt = route_now(s);
    assert_int_equal(num(rt, "labels", "stable"), 1);
    assert_int_equal(num(rt, "labels", "canary"), 2);
    json_decref(rt);

    /* 90/10 canary. Smooth weighted round-robin: 100 sequential requests are
     * 90/10 (tolerance +-3 requests). */
    expect_exit(quiver(s, "--url %s route set fraud --weights stable=90,canary=10", s->base), 0,
                "route set --weights");
    rt = route_now(s);
    assert_string_equal(h_jstr(rt, "policy"), "weighted");
    assert_int_equal(num(rt, "weights", "stable"), 90);
    assert_int_equal(num(rt, "weights", "canary"), 10);
    assert_int_equal(num(rt, "labels", "stable"), 1);
    assert_int_equal(num(rt, "labels", "canary"), 2);
    json_decref(rt);
    traffic(s, 100, counts);
    assert_true(abs(counts[1] - 90) <= 3 && abs(counts[2] - 10) <= 3);

    /* route show prints what the server has. */
    expect_exit(quiver(s, "--url %s route show fraud", s->base), 0, "route show");
    j = json_loads(g_out, 0, NULL);
    assert_non_null(j);
    assert_int_equal(num(j, "weights", "canary"), 10);
    json_decref(j);

    /* promote: stable := canary's version, all traffic to it. */
    expect_exit(quiver(s, "--url %s promote fraud canary", s->base), 0, "promote");
    rt = route_now(s);
    assert_int_equal(num(rt, "labels", "stable"), 2);
    assert_int_equal(num(rt, "weights", "canary"), -1);
    assert_int_equal(num(rt, "weights", "stable"), 100);
    json_decref(rt);
    memset(counts, 0, sizeof(counts));
    traffic(s, 30, counts);
    assert_int_equal(counts[2], 30);

    /* rollback: the route before the promotion. */
    expect_exit(quiver(s, "--url %s rollback fraud", s->base), 0, "rollback");
    rt = route_now(s);
    assert_string_equal(h_jstr(rt, "policy"), "weighted");
    assert_int_equal(num(rt, "labels", "stable"), 1);
    assert_int_equal(num(rt, "labels", "canary"), 2);
    assert_int_equal(num(rt, "weights", "stable"), 90);
    assert_int_equal(num(rt, "weights", "canary"), 10);
    json_decref(rt);
    memset(counts, 0, sizeof(counts));
    traffic(s, 100, counts);
    assert_true(abs(counts[1] - 90) <= 3 && abs(counts[2] - 10) <= 3);

    /* events: every step above, with old -> new. */
    expect_exit(quiver(s, "--url %s events fraud", s->base), 0, "events");
    assert_non_null(strstr(g_out, "label.set"));
    assert_non_null(strstr(g_out, "stable=1"));
    assert_non_null(strstr(g_out, "canary=2"));
    assert_non_null(strstr(g_out, "route.put"));
    assert_non_null(strstr(g_out, "route.rollback"));
    assert_non_null(strstr(g_out, " -> "));
    /* Without tokens, changes made through the CLI are audited as "cli". */
    assert_non_null(strstr(g_out, " cli "));
    /* All models' events too. */
    expect_exit(quiver(s, "--url %s events", s->base), 0, "events (all)");
    assert_non_null(strstr(g_out, "route.rollback"));

    /* label delete of a label no target uses; route clear. */
    expect_exit(quiver(s, "--url %s label set fraud spare 2", s->base), 0, "label set spare");
    expect_exit(quiver(s, "--url %s label delete fraud spare", s->base), 0, "label delete");
    rt = route_now(s);
    assert_int_equal(num(rt, "labels", "spare"), -1);
    json_decref(rt);
    expect_exit(quiver(s, "--url %s route clear fraud", s->base), 0, "route clear");
    rt = route_now(s);
    assert_string_equal(h_jstr(rt, "policy"), "default");
    json_decref(rt);

    /* route set --file and --policy/--target. */
    {
        char path[400];
        snprintf(path, sizeof(path), "%s/route.json", s->dir);
        h_write_file(path, "{\"policy\": \"pinned\", \"labels\": {\"stable\": 1}, "
                           "\"target\": \"stable\"}\n");
        expect_exit(quiver(s, "--url %s route set fraud --file '%s'", s->base, path), 0,
                    "route set --file");
        rt = route_now(s);
        assert_string_equal(h_jstr(rt, "policy"), "pinned");
        assert_string_equal(h_jstr(rt, "target"), "stable");
        json_decref(rt);
        expect_exit(quiver(s, "--url %s route set fraud --policy pinned --target 2", s->base), 0,
                    "route set --policy --target");
        rt = route_now(s);
        assert_string_equal(h_jstr(rt, "target"), "2");
        json_decref(rt);
        memset(counts, 0, sizeof(counts));
        traffic(s, 10, counts);
        assert_int_equal(counts[2], 10);
    }
    h_stop_ok(s);
}

static void test_cli_failures(void **state)
{
    struct h_srv *s = *state;
    json_t *before, *after;
    char *a, *b;

    two_versions(s);
    h_start(s, NULL);
    h_wait_state(s, "fraud", 1, "READY");
    h_wait_state(s, "fraud", 2, "READY");
    expect_exit(quiver(s, "--url %s label set fraud stable 1", s->base), 0, "label set");
    expect_exit(quiver(s, "--url %s label set fraud canary 2", s->base), 0, "label set");
    expect_exit(quiver(s, "--url %s route set fraud --weights stable=90,canary=10", s->base), 0,
                "route set");
    before = route_now(s);

    /* Refused by the server: exit 1, its message on stderr, nothing changed. */
    expect_exit(quiver(s, "--url %s route set fraud --weights stable=80,canary=10", s->base), 1,
                "weights not summing to 100");
    assert_non_null(strstr(g_err, "weights: sum is 90"));
    expect_exit(quiver(s, "--url %s route set fraud --weights stable=90,beta=10", s->base), 1,
                "unknown label");
    assert_non_null(strstr(g_err, "weights.beta"));
    expect_exit(quiver(s, "--url %s label set fraud canary 7", s->base), 1, "version not READY");
    assert_non_null(strstr(g_err, "not READY"));
    expect_exit(quiver(s, "--url %s route show nosuch", s->base), 1, "unknown model");
    assert_non_null(strstr(g_err, "nosuch"));
    expect_exit(quiver(s, "--url %s promote fraud nosuch", s->base), 1, "promote unknown label");
    assert_non_null(strstr(g_err, "nosuch"));
    expect_exit(quiver(s, "--url %s label delete fraud nosuch", s->base), 1, "delete unknown");
    after = route_now(s);
    a = json_dumps(before, JSON_SORT_KEYS);
    b = json_dumps(after, JSON_SORT_KEYS);
    assert_string_equal(a, b);
    free(a);
    free(b);
    json_decref(after);
    json_decref(before);

    /* Bad usage: exit 2, nothing sent. */
    expect_exit(quiver(s, "--url %s route set fraud --weights stable90", s->base), 2,
                "malformed --weights");
    expect_exit(quiver(s, "--url %s route set fraud", s->base), 2, "route set without a change");
    expect_exit(quiver(s, "--url %s route", s->base), 2, "route without a subcommand");
    expect_exit(quiver(s, "--url %s label set fraud", s->base), 2, "label set without a version");
    expect_exit(quiver(s, "--url %s frobnicate", s->base), 2, "unknown command");

    /* Nobody listening: exit 1 with curl's reason. */
    expect_exit(quiver(s, "--url http://127.0.0.1:1 route show fraud"), 3, "no server");
    assert_true(strlen(g_err) > 0);

    /* QUIVER_URL stands for --url. */
    {
        char env[200];
        snprintf(env, sizeof(env), "QUIVER_URL=%s", s->base);
        expect_exit(quiver_env(s, env, "route show fraud"), 0, "QUIVER_URL");
        assert_non_null(strstr(g_out, "weighted"));
    }
    /* Only the global options and no command: usage (exit 2), not a crash. */
    expect_exit(quiver(s, "--url %s", s->base), 2, "no command");
    expect_exit(quiver(s, "--token abc"), 2, "no command");
    h_stop_ok(s);
}

static void test_cli_tokens(void **state)
{
    struct h_srv *s = *state;
    char tokens[400], env[200];
    json_t *rt;

    two_versions(s);
    snprintf(tokens, sizeof(tokens), "%s/tokens", s->dir);
    h_write_file(tokens, "ops cli-admin-token admin\nviewer cli-read-token read\n");
    h_start(s, "--tokens", tokens, NULL);
    h_wait_state(s, "fraud", 1, "READY");
    h_wait_state(s, "fraud", 2, "READY");

    expect_exit(quiver(s, "--url %s route show fraud", s->base), 1, "no token");
    assert_non_null(strstr(g_err, "401"));
    expect_exit(quiver(s, "--url %s --token wrong route show fraud", s->base), 1, "wrong token");
    assert_non_null(strstr(g_err, "401"));
    expect_exit(quiver(s, "--url %s --token cli-read-token route show fraud", s->base), 0,
                "read token, route show");
    expect_exit(quiver(s, "--url %s --token cli-read-token label set fraud stable 1", s->base), 1,
                "read token, label set");
    assert_non_null(strstr(g_err, "403"));
    expect_exit(quiver(s, "--url %s --token cli-admin-token label set fraud stable 1", s->base), 0,
                "admin token, label set");
    snprintf(env, sizeof(env), "QUIVER_TOKEN=cli-admin-token");
    expect_exit(quiver_env(s, env, "--url %s label set fraud canary 2", s->base), 0,
                "QUIVER_TOKEN, label set");
    expect_exit(
        quiver_env(s, env, "--url %s route set fraud --weights stable=95,canary=5", s->base), 0,
        "QUIVER_TOKEN, route set");
    expect_exit(quiver(s, "--url %s --token cli-read-token route show fraud", s->base), 0,
                "read token, route show");
    rt = json_loads(g_out, 0, NULL);
    assert_non_null(rt);
    assert_int_equal(num(rt, "weights", "stable"), 95);
    assert_int_equal(num(rt, "weights", "canary"), 5);
    json_decref(rt);
    /* The audit log names the token. */
    expect_exit(quiver(s, "--url %s --token cli-read-token events fraud", s->base), 0,
                "read token, events");
    assert_non_null(strstr(g_out, "ops"));
    assert_null(strstr(g_out, "viewer"));
    assert_non_null(strstr(g_out, "route.put"));
    h_stop_ok(s);
}

/* The usual canary path: the canary first gets shadow copies, then a
 * share of the traffic, then is promoted; promote must succeed with the
 * shadow still naming the canary label (the promoted label goes away, so
 * nothing may refer to it afterwards). */
static void test_cli_promote_after_shadow_stage(void **state)
{
    struct h_srv *s = *state;
    char path[400];
    json_t *rt;
    int counts[4] = {0};

    two_versions(s);
    h_start(s, NULL);
    h_wait_state(s, "fraud", 1, "READY");
    h_wait_state(s, "fraud", 2, "READY");
    snprintf(path, sizeof(path), "%s/shadow.json", s->dir);
    h_write_file(path, "{\"policy\": \"pinned\", \"labels\": {\"stable\": 1, \"canary\": 2},"
                       " \"target\": \"stable\", \"shadow\": [{\"target\": \"canary\"}]}\n");
    expect_exit(quiver(s, "--url %s route set fraud --file '%s'", s->base, path), 0,
                "route set (shadow stage)");
    expect_exit(quiver(s, "--url %s route set fraud --weights stable=90,canary=10", s->base), 0,
                "route set (canary stage)");
    expect_exit(quiver(s, "--url %s promote fraud canary", s->base), 0, "promote");
    rt = route_now(s);
    assert_int_equal(num(rt, "labels", "stable"), 2);
    assert_int_equal(num(rt, "weights", "stable"), 100);
    json_decref(rt);
    traffic(s, 20, counts);
    assert_int_equal(counts[2], 20);
    h_stop_ok(s);
}

static const struct CMUnitTest tests[] = {
    CLI_TEST(test_cli_canary_walkthrough),
    CLI_TEST(test_cli_failures),
    CLI_TEST(test_cli_tokens),
    CLI_TEST(test_cli_promote_after_shadow_stage),
};

H_MAIN(tests)
