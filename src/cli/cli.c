/* SPDX-License-Identifier: MIT
 * Placeholder until the serve command lands. */
#include "cli.h"
#include <stdio.h>
int qv_cli_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "quiver: not yet\n");
    return 1;
}
