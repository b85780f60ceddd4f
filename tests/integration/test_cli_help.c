/* SPDX-License-Identifier: MIT
 *
 * The `quiver` command as a user meets it:
 *  - every subcommand's help, as `quiver CMD --help` and `quiver help CMD`,
 *    printed offline (the URL given points at a closed port: a command that
 *    tried to reach it would exit 3), and the man page made from it;
 *  - bad usage (a malformed number, an unknown flag or command, a missing
 *    value) exits 2 naming what is wrong, without sending anything;
 *  - against a live server: --url and QUIVER_URL with a trailing slash,
 *    events --limit and --since, reals printed with the fewest digits;
 *  - exit 3 when the server cannot be reached, 1 when it refuses.
 */
#include "integration/harness.h"
#include "integration/cli_runner.h"

#define NOWHERE "http://127.0.0.1:1"

static void expect_in(const char *text, const char *needle, const char *what)
{
    if (strstr(text, needle) == NULL)
        fail_msg("%s: \"%s\" not found in:\n%s", what, needle, text);
}

static int count_lines(const char *s)
{
    int n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static const char *const commands[] = {"serve",    "models", "route",   "label",   "promote",
                                       "rollback", "events", "rollout", "version", "help"};
static const char *const client_commands[] = {"models",   "route",  "label",  "promote",
                                              "rollback", "events", "rollout"};

static void test_help_offline(void **state)
{
    struct h_srv *s = *state;
    char usage[64], *first;

    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        snprintf(usage, sizeof(usage), "usage: quiver %s", commands[i]);
        expect_exit(quiver(s, "--url %s %s --help", NOWHERE, commands[i]), 0, commands[i]);
        expect_in(g_out, usage, commands[i]);
        assert_string_equal(g_err, "");
        first = strdup(g_out);
        /* The same text from `quiver help CMD`, and with -h. */
        expect_exit(quiver(s, "help %s", commands[i]), 0, "help CMD");
        assert_string_equal(g_out, first);
        expect_exit(quiver(s, "%s -h", commands[i]), 0, "CMD -h");
        assert_string_equal(g_out, first);
        free(first);
    }
    for (size_t i = 0; i < sizeof(client_commands) / sizeof(client_commands[0]); i++) {
        expect_exit(quiver(s, "help %s", client_commands[i]), 0, client_commands[i]);
        expect_in(g_out, "QUIVER_URL", client_commands[i]);
        expect_in(g_out, "QUIVER_TOKEN", client_commands[i]);
        expect_in(g_out, "Exit status", client_commands[i]);
        expect_in(g_out, "3  the server could not be reached", client_commands[i]);
    }
    /* --help after the arguments: still help, nothing sent. */
    expect_exit(quiver(s, "--url %s promote fraud --help", NOWHERE), 0, "promote MODEL --help");
    expect_in(g_out, "usage: quiver promote", "promote MODEL --help");
    expect_exit(quiver(s, "--url %s rollback fraud --help", NOWHERE), 0, "rollback MODEL --help");
    expect_in(g_out, "usage: quiver rollback", "rollback MODEL --help");
    expect_exit(quiver(s, "--url %s rollout start fraud --canary 2 -h", NOWHERE), 0,
                "rollout start -h");
    expect_in(g_out, "--step-seconds", "rollout help");
    expect_exit(quiver(s, "--url %s events --limit 3 --help", NOWHERE), 0, "events --help");
    expect_in(g_out, "--since", "events help");
    /* route --help is the whole help, not one usage line. */
    expect_exit(quiver(s, "route --help"), 0, "route --help");
    assert_true(count_lines(g_out) > 15);
    expect_in(g_out, "--weights", "route help");
    /* serve --help offers the PostgreSQL store (cluster mode) and the node name. */
    expect_exit(quiver(s, "serve --help"), 0, "serve --help");
    expect_in(g_out, "postgres://", "serve help");
    expect_in(g_out, "--node-name", "serve help");
    expect_in(g_out, "--access-log", "serve help");
    expect_in(g_out, "--log-format", "serve help");
    /* The overview names every command. */
    expect_exit(quiver(s, "--help"), 0, "--help");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        expect_in(g_out, commands[i], "overview");
    expect_in(g_out, "QUIVER_URL", "overview");
    /* The man page is made of the same texts. */
    expect_exit(quiver(s, "help --man"), 0, "help --man");
    assert_true(strncmp(g_out, ".TH QUIVER 1", 12) == 0);
    expect_in(g_out, ".SS quiver rollout", "man");
    expect_in(g_out, "\\-\\-step\\-seconds", "man");
    expect_in(g_out, ".SH EXIT STATUS", "man");
    expect_exit(quiver(s, "help nosuch"), 2, "help unknown");
    expect_in(g_err, "nosuch", "help unknown");
    expect_exit(quiver(s, "nosuch --help"), 2, "unknown --help");
    expect_in(g_err, "nosuch", "unknown --help");
}

static void test_bad_usage_exits_2(void **state)
{
    struct h_srv *s = *state;
    static const struct {
        const char *args, *needle;
    } cases[] = {
        {"rollout start fraud --canary 2 --step-seconds abc", "--step-seconds"},
        {"rollout start fraud --canary 2 --step-seconds -5", "--step-seconds"},
        {"rollout start fraud --canary 2 --min-requests 1.5", "--min-requests"},
        {"rollout start fraud --canary two", "--canary"},
        {"rollout start fraud --canary 2 --steps 5,abc,100", "--steps"},
        {"rollout start fraud --canary 2 --steps 5,250", "--steps"},
        {"rollout start fraud", "--canary"},
        {"rollout status fraud --canary 2", "--canary"},
        {"rollout begin fraud", "rollout"},
        {"events --limit 0", "--limit"},
        {"events --limit abc", "--limit"},
        {"events --limit", "--limit"},
        {"events --since yesterday", "--since"},
        {"events --since 2026-13-01T00:00:00Z", "--since"},
        {"route show fraud --bogus x", "--bogus"},
        {"route set fraud --weights stable=x", "--weights"},
        {"route set fraud", "--file"},
        {"route show", "MODEL"},
        {"route show ../x", "MODEL"},
        {"label set fraud canary two", "VERSION"},
        {"label set fraud canary", "label"},
        {"promote", "MODEL"},
        {"rollback", "MODEL"},
        {"rollback fraud extra", "MODEL"},
        {"nosuchcmd", "nosuchcmd"},
        {"models --url", "--url"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        expect_exit(quiver(s, "--url %s %s", NOWHERE, cases[i].args), 2, cases[i].args);
        expect_in(g_err, cases[i].needle, cases[i].args);
        assert_string_equal(g_out, "");
    }
    /* The same from QUIVER_URL: nothing is sent either. */
    expect_exit(quiver_env(s, "QUIVER_URL=" NOWHERE,
                           "rollout start fraud --canary 2 "
                           "--step-seconds abc"),
                2, "QUIVER_URL, bad flag");
}

static void test_cannot_connect_exits_3(void **state)
{
    struct h_srv *s = *state;

    expect_exit(quiver(s, "--url %s models", NOWHERE), 3, "models, nothing there");
    expect_in(g_err, "127.0.0.1:1", "names the URL");
    expect_exit(quiver(s, "--url %s/ route show fraud", NOWHERE), 3, "route show");
    expect_exit(quiver_env(s, "QUIVER_URL=" NOWHERE, "events"), 3, "events via QUIVER_URL");
    expect_exit(quiver(s, "--url %s promote fraud", NOWHERE), 3, "promote");
}

static void test_live_server(void **state)
{
    struct h_srv *s = *state;
    char env[128], *all, *last3, iso[32];
    json_t *j;
    int n_all;

    two_versions(s);
    h_start(s, NULL);
    h_wait_state(s, "fraud", 1, "READY");
    h_wait_state(s, "fraud", 2, "READY");

    /* A trailing slash in --url or QUIVER_URL. */
    expect_exit(quiver(s, "--url %s/ route show fraud", s->base), 0, "--url with /");
    j = json_loads(g_out, 0, NULL);
    assert_non_null(j);
    json_decref(j);
    snprintf(env, sizeof(env), "QUIVER_URL=%s//", s->base);
    expect_exit(quiver_env(s, env, "models"), 0, "QUIVER_URL with //");
    expect_in(g_out, "fraud", "models");

    /* A refusal is exit 1 with the server's message. */
    expect_exit(quiver(s, "--url %s route show nosuch", s->base), 1, "unknown model");
    expect_in(g_err, "nosuch", "refusal message");

    /* Five changes, then events --limit 3: the newest three. */
    expect_exit(quiver(s, "--url %s label set fraud stable 1", s->base), 0, "label 1");
    expect_exit(quiver(s, "--url %s label set fraud canary 2", s->base), 0, "label 2");
    expect_exit(quiver(s, "--url %s label set fraud beta 2", s->base), 0, "label 3");
    expect_exit(quiver(s, "--url %s label delete fraud beta", s->base), 0, "label 4");
    expect_exit(quiver(s, "--url=%s label set fraud beta 1", s->base), 0, "label 5");
    expect_exit(quiver(s, "--url %s events fraud", s->base), 0, "events");
    all = strdup(g_out);
    n_all = count_lines(all);
    assert_true(n_all >= 5);
    expect_exit(quiver(s, "--url %s events fraud --limit 3", s->base), 0, "events --limit 3");
    assert_int_equal(count_lines(g_out), 3);
    last3 = all;
    for (int skip = n_all - 3; skip > 0; skip--)
        last3 = strchr(last3, '\n') + 1;
    assert_string_equal(g_out, last3);
    expect_in(g_out, "beta", "the newest events");
    expect_exit(quiver(s, "--url %s events --limit=1", s->base), 0, "events --limit=1 (all)");
    assert_int_equal(count_lines(g_out), 1);

    /* --since: a time to come gives nothing, an hour ago gives everything. */
    {
        time_t t = time(NULL) + 86400;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    expect_exit(quiver(s, "--url %s events fraud --since %s", s->base, iso), 0, "since future");
    assert_string_equal(g_out, "");
    expect_exit(quiver(s, "--url %s events fraud --since 1h", s->base), 0, "since 1h");
    assert_string_equal(g_out, all);
    expect_exit(quiver(s, "--url %s events fraud --since 0 --limit 2", s->base), 0, "since 0");
    assert_int_equal(count_lines(g_out), 2);
    free(all);

    /* Reals with the fewest digits that read back: 0.05, not 0.050000000000000003. */
    expect_exit(quiver(s,
                       "--url %s rollout start fraud --canary 2 --steps 50,100 "
                       "--step-seconds 3600 --min-requests 1000000",
                       s->base),
                0, "rollout start");
    expect_exit(quiver(s, "--url %s rollout status fraud", s->base), 0, "rollout status");
    expect_in(g_out, "\"alpha\": 0.05", "alpha");
    expect_in(g_out, "\"step_seconds\": 3600.0", "step_seconds");
    assert_null(strstr(g_out, "00000000"));
    j = json_loads(g_out, 0, NULL);
    assert_non_null(j);
    assert_true(json_real_value(json_object_get(
                    json_object_get(json_object_get(j, "plan"), "guards"), "alpha")) == 0.05);
    json_decref(j);
    expect_exit(quiver(s, "--url %s rollout abort fraud", s->base), 0, "rollout abort");
    h_stop_ok(s);
}

static const struct CMUnitTest tests[] = {
    CLI_TEST(test_help_offline),
    CLI_TEST(test_bad_usage_exits_2),
    CLI_TEST(test_cannot_connect_exits_3),
    CLI_TEST(test_live_server),
};

H_MAIN(tests)
