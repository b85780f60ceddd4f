/* SPDX-License-Identifier: MIT
 *
 * The quiver command's own bad input: unknown or malformed flags, a missing
 * --repo, a repository that is not a directory, a port in use. Each exits
 * non-zero with a message that names the flag, and never starts serving.
 */
#include "harness.h"

/* Runs `quiver ARGS` and returns its exit code; its stderr is in *err. */
static int quiver_rc(const struct h_srv *s, const char *args, char **err)
{
    char cmd[2048], errf[400];
    int rc;

    snprintf(errf, sizeof(errf), "%s/stderr", s->dir);
    snprintf(cmd, sizeof(cmd), "timeout 20 %s %s >/dev/null 2>%s", h_env("QUIVER_BIN"), args,
             errf);
    rc = system(cmd);
    *err = h_read_file(errf, NULL);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void expect_refused(const struct h_srv *s, const char *args, int want_rc,
                           const char *needle)
{
    char *err = NULL;
    int rc = quiver_rc(s, args, &err);

    if (rc != want_rc || err == NULL || strstr(err, needle) == NULL)
        fail_msg("quiver %s: exit %d (want %d), stderr \"%s\" (want it to name \"%s\")", args, rc,
                 want_rc, err ? err : "", needle);
    free(err);
}

static void test_bad_flags(void **state)
{
    struct h_srv *s = *state;
    char args[1200];

    h_copy_examples(s);
    expect_refused(s, "serve --port abc --repo x", 2, "--port");
    expect_refused(s, "serve --port 70000 --repo x", 2, "--port");
    expect_refused(s, "serve --workers 0 --repo x", 2, "--workers");
    expect_refused(s, "serve --memory-budget lots --repo x", 2, "--memory-budget");
    expect_refused(s, "serve --model-control sometimes --repo x", 2, "--model-control");
    expect_refused(s, "serve --log-level loud --repo x", 2, "--log-level");
    expect_refused(s, "serve --colour blue --repo x", 2, "--colour");
    expect_refused(s, "serve", 2, "--repo");
    expect_refused(s, "serve --repo x extra", 2, "extra");
    expect_refused(s, "serve --tokens-protect-inference --repo x", 2, "--tokens");
    expect_refused(s, "frobnicate", 2, "frobnicate");
    /* The HTTP limits and the drain deadline. */
    expect_refused(s, "serve --drain-timeout-ms soon --repo x", 2, "--drain-timeout-ms");
    expect_refused(s, "serve --drain-timeout-ms -1 --repo x", 2, "--drain-timeout-ms");
    expect_refused(s, "serve --body-budget-bytes 10 --repo x", 2, "--body-budget-bytes");
    expect_refused(s, "serve --max-body-bytes 2M --body-budget-bytes 1M --repo x", 2,
                   "--body-budget-bytes");
    expect_refused(s, "serve --decode-budget-bytes x --repo x", 2, "--decode-budget-bytes");
    expect_refused(s, "serve --max-connections 0 --repo x", 2, "--max-connections");
    expect_refused(s, "serve --max-connections-per-ip 0 --repo x", 2,
                   "--max-connections-per-ip");
    expect_refused(s, "serve --header-timeout-ms 5 --repo x", 2, "--header-timeout-ms");
    expect_refused(s, "serve --idle-timeout-s 0 --repo x", 2, "--idle-timeout-s");
    expect_refused(s, "serve --body-timeout-ms 1 --repo x", 2, "--body-timeout-ms");
    snprintf(args, sizeof(args), "serve --repo %s/missing --data %s/d --port 0", s->dir, s->dir);
    expect_refused(s, args, 1, "--repo");
    snprintf(args, sizeof(args), "serve --repo %s --data %s/d --port 0 --store mysql:/x", s->repo,
             s->dir);
    expect_refused(s, args, 1, "mysql");
}

static void test_port_in_use(void **state)
{
    struct h_srv *s = *state;
    char args[1200];

    h_copy_examples(s);
    h_start(s, NULL);
    snprintf(args, sizeof(args), "serve --repo %s --data %s/d2 --port %d", s->repo, s->dir,
             s->port);
    expect_refused(s, args, 1, "cannot listen");
    h_stop_ok(s);
}

static void test_help_and_version(void **state)
{
    struct h_srv *s = *state;
    char *err = NULL;

    assert_int_equal(quiver_rc(s, "--help", &err), 0);
    free(err);
    assert_int_equal(quiver_rc(s, "version", &err), 0);
    free(err);
    assert_int_equal(quiver_rc(s, "serve --help", &err), 0);
    free(err);
}

static const struct CMUnitTest tests[] = {
    H_TEST(test_bad_flags),
    H_TEST(test_port_in_use),
    H_TEST(test_help_and_version),
};

H_MAIN(tests)
