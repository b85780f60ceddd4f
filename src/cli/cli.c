/* SPDX-License-Identifier: MIT
 *
 * The quiver command's entry: subcommand dispatch, help and version. */
#include "cli.h"

#include "../util/util.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: quiver <command> [options]\n"
    "\n"
    "Serving:\n"
    "  serve --repo DIR [--port N] [--host ADDR] [--data DIR] [options]\n"
    "                         serve every model version in DIR (see quiver serve --help)\n"
    "\n"
    "Talking to a running server (--url URL, default http://127.0.0.1:8000; --token T):\n"
    "  models                 list models and versions with their states\n"
    "  route show MODEL       print the route document\n"
    "  route set MODEL (--file F | --weights L=W,... | --policy P [--target T])\n"
    "  route clear MODEL\n"
    "  label set MODEL LABEL VERSION\n"
    "  label delete MODEL LABEL\n"
    "  promote MODEL [LABEL]  stable := LABEL (default canary), its weight to 0\n"
    "  rollback MODEL         restore the previous route from the audit log\n"
    "  events [MODEL]         the audit log\n"
    "  rollout start MODEL --canary V [--steps 5,25,50,100] [--step-seconds N]\n"
    "          [--min-requests N]\n"
    "  rollout status MODEL | rollout abort MODEL\n"
    "\n"
    "  model check PATH       load and probe a model artifact (exit 0 when it serves)\n"
    "  version                print the version\n"
    "  help                   print this help\n";

int qv_cli_main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("quiver %s\n", QV_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "serve") == 0)
        return qv_cli_serve(argc - 1, argv + 1);
    if (strcmp(argv[1], "model") == 0)
        return qv_cli_model(argc - 1, argv + 1);
    return qv_cli_client(argc - 1, argv + 1);
}
