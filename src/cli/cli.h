/* SPDX-License-Identifier: MIT
 *
 * cli/cli.h -- the quiver command: `quiver serve` runs the server; the other
 * subcommands talk to a running server over its HTTP API.
 *
 * Exit status of every subcommand: 0 success, 1 the server refused (an error
 * answer), 2 bad usage (nothing was sent), 3 the server could not be reached.
 */
#ifndef QV_CLI_H
#define QV_CLI_H

#include <stdio.h>

enum {
    QV_EXIT_OK = 0,
    QV_EXIT_REFUSED = 1,
    QV_EXIT_USAGE = 2,
    QV_EXIT_CONNECT = 3,
};

int qv_cli_main(int argc, char **argv);

/* cli.c: the help of every subcommand, shared by --help, `quiver help CMD`
 * and the man page. Writes the full help of cmd (NULL: the overview) to f;
 * returns -1 (nothing written) when cmd is not a subcommand. */
int qv_cli_help(const char *cmd, FILE *f);
/* True when argv[1..argc-1] holds --help or -h before a "--". */
int qv_cli_wants_help(int argc, char **argv);

/* serve.c */
const char *qv_cli_serve_usage(void);
int qv_cli_serve(int argc, char **argv);
/* client.c: route, label, promote, rollback, events, rollout, models. */
int qv_cli_client(int argc, char **argv);
/* model_check.c: `quiver model check PATH`. */
int qv_cli_model(int argc, char **argv);

#endif /* QV_CLI_H */
