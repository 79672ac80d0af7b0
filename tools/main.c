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
    { "forward", cmd_forward, "one forward pass: inputs from .npy files, chosen blobs written as .npy" },
    { "time", cmd_time, "per-layer forward/backward timing of a net (as caffe time)" },
    { "test", cmd_test, "score a trained net: per-batch outputs and their means (as caffe test)" },
    { "features", cmd_features, "per-sample blobs of a trained net over its test source (json, csv, npy)" },
    { "device_query", cmd_device_query, "the device crema computes on (as caffe device_query)" },
    { "export-onnx", cmd_export_onnx, "a net's TEST phase with its weights as an ONNX model" },
    { "plot", cmd_plot, "loss and accuracy curves of a training log or TensorBoard file, as a PNG" },
};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

static void usage(FILE *f)
{
    fprintf(f, "usage: crema <command> [flags]\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-16s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "  %-16s %s\n", "version", "print the version");
    fprintf(f, "  %-16s %s\n", "help", "crema help COMMAND lists a command's flags");
    fprintf(f, "\nCaffeOnSpark's command line also works (crema help cos lists its flags):\n"
               "  crema -train|-test|-features b1,b2 -conf SOLVER -model PATH [-output PATH] ...\n");
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
        if (argc > 3) {
            fprintf(stderr, "crema help: takes one command name, got %d\n", argc - 2);
            return 1;
        }
        if (argc > 2) {
            if (strcmp(argv[2], "cos") == 0 || strcmp(argv[2], "caffeonspark") == 0) {
                cos_print_help();
                return 0;
            }
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
    /* CaffeOnSpark's style: the mode is a flag (-train, -test, -features). */
    if (cmd[0] == '-')
        return cmd_cos(argc, argv);
    fprintf(stderr, "crema: unknown command \"%s\" (crema help lists the commands)\n", cmd);
    return 1;
}
