/* SPDX-License-Identifier: MIT
 * cli/cli.h -- the quiver command and its subcommands. */
#ifndef QV_CLI_H
#define QV_CLI_H
int qv_cli_main(int argc, char **argv);
#endif
