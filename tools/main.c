/* crema: the command line. Dispatches to the subcommands in tools/. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "crema.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    { "upgrade-net", cmd_upgrade_net, "upgrade a V0/V1 net (text or binary) to the current format" },
    { "upgrade-solver", cmd_upgrade_solver, "upgrade a solver prototxt (solver_type enum to type string)" },
    { "convert-mnist", cmd_convert_mnist, "MNIST IDX files to an LMDB/LevelDB of Datum (as convert_mnist_data)" },
    { "convert-imageset", cmd_convert_imageset, "an image list to an LMDB/LevelDB of Datum (as convert_imageset)" },
    { "compute-mean", cmd_compute_mean, "the mean image of a Datum DB as a .binaryproto (as compute_image_mean)" },
    { "db-info", cmd_db_info, "record count and first record of a Datum DB" },
    { "train", cmd_train, "train a net with a solver (as caffe train)" },
};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

static void usage(FILE *f)
{
    fprintf(f, "usage: crema <command> [flags]\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-16s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "  %-16s %s\n", "version", "print the version");
    fprintf(f, "  %-16s %s\n", "help", "crema help COMMAND lists a command's flags");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("crema %s\n", crema_version());
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-help") == 0) {
        if (argc > 2) {
            for (int i = 0; i < N_COMMANDS; i++)
                if (strcmp(commands[i].name, argv[2]) == 0) {
                    char *hargv[] = { argv[0], argv[2], (char *)"--help", NULL };
                    return commands[i].run(3, hargv);
                }
            fprintf(stderr, "crema: no command \"%s\"\n", argv[2]);
            return 1;
        }
        usage(stdout);
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, cmd) == 0)
            return commands[i].run(argc, argv);
    fprintf(stderr, "crema: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 1;
}
