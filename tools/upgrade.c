/* crema upgrade-net / upgrade-solver: placeholders until the upgrade module lands. */
#include <stdio.h>

#include "cli.h"

int cmd_upgrade_net(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "crema upgrade-net: not built yet\n");
    return 1;
}

int cmd_upgrade_solver(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "crema upgrade-solver: not built yet\n");
    return 1;
}
