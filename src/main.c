/* SPDX-License-Identifier: MIT
 * The quiver command. */
#include "cli/cli.h"

int main(int argc, char **argv)
{
    return qv_cli_main(argc, argv);
}
