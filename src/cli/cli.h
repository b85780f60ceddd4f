/* SPDX-License-Identifier: MIT
 *
 * cli/cli.h -- the quiver command: `quiver serve` runs the server; the other
 * subcommands talk to a running server over its HTTP API.
 */
#ifndef QV_CLI_H
#define QV_CLI_H

int qv_cli_main(int argc, char **argv);

/* serve.c */
int qv_cli_serve(int argc, char **argv);
/* client.c: route, label, promote, rollback, events, rollout, models. */
int qv_cli_client(int argc, char **argv);
/* model_check.c: `quiver model check PATH`. */
int qv_cli_model(int argc, char **argv);

#endif /* QV_CLI_H */
