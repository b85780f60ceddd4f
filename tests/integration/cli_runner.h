/* SPDX-License-Identifier: MIT
 *
 * tests/integration/cli_runner.h -- runs the `quiver` binary as a user does,
 * for the CLI tests (include after harness.h):
 *
 *   quiver(s, "ARGS...", ...)           runs `quiver ARGS` (shell text, printf
 *                                       format), returns its exit status
 *   quiver_env(s, "K=V ...", "ARGS...") the same with environment assignments
 *   g_out, g_err                        what the last command printed
 *   expect_exit(got, want, what)        asserts an exit status, printing both
 *                                       outputs when it differs
 *   CLI_TEST(fn)                        a test whose teardown frees g_out/g_err
 *
 * QUIVER_URL and QUIVER_TOKEN from the test's own environment never reach the
 * command (only those given in env do).
 */
#ifndef QV_IT_CLI_RUNNER_H
#define QV_IT_CLI_RUNNER_H

#include "integration/harness.h"

/* The last command's stdout and stderr (freed by the next call and at teardown). */
static char *g_out, *g_err;

H_FN void cli_free(void)
{
    free(g_out);
    free(g_err);
    g_out = g_err = NULL;
}

H_FN int cli_teardown(void **state)
{
    cli_free();
    return h_teardown(state);
}

#define CLI_TEST(fn) cmocka_unit_test_setup_teardown(fn, h_setup, cli_teardown)

/* Runs `ENV quiver ARGS` (args is shell text); returns the exit status (128+n
 * when killed by signal n). g_out and g_err get what it printed. */
H_FN int quiver_env(const struct h_srv *s, const char *env, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
H_FN int quiver_env(const struct h_srv *s, const char *env, const char *fmt, ...)
{
    char args[2048], cmd[4096], out[400], err[400];
    va_list ap;
    int st;

    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(out, sizeof(out), "%s/cli.out", s->dir);
    snprintf(err, sizeof(err), "%s/cli.err", s->dir);
    snprintf(cmd, sizeof(cmd), "env -u QUIVER_URL -u QUIVER_TOKEN %s '%s' %s > '%s' 2> '%s'",
             env ? env : "", h_env("QUIVER_BIN"), args, out, err);
    fflush(NULL);
    /* A loaded machine may refuse a fork for a moment (EAGAIN): try again. */
    for (int tries = 0; (st = system(cmd)) == -1 && tries < 20; tries++)
        h_sleep_ms(100);
    if (st == -1)
        fail_msg("cannot run %s: %s", cmd, strerror(errno));
    cli_free();
    g_out = h_read_file(out, NULL);
    g_err = h_read_file(err, NULL);
    assert_non_null(g_out);
    assert_non_null(g_err);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

#define quiver(s, ...) quiver_env(s, NULL, __VA_ARGS__)

/* Asserts the exit status; prints what the command said when it differs. */
H_FN void expect_exit(int got, int want, const char *what)
{
    if (got != want)
        fail_msg("%s: exit %d, expected %d\nstdout: %s\nstderr: %s", what, got, want,
                 g_out ? g_out : "", g_err ? g_err : "");
}

/* A model "fraud" of the test backend with versions 1 (scale 1) and 2 (scale 2). */
H_FN void two_versions(struct h_srv *s)
{
    h_test_model(s, "fraud", "\"version_policy\": {\"all\": {}}");
    h_test_version(s, "fraud", 1, "{\"features\": 4, \"scale\": 1.0}");
    h_test_version(s, "fraud", 2, "{\"features\": 4, \"scale\": 2.0}");
}

#endif /* QV_IT_CLI_RUNNER_H */
