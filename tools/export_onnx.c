/* crema export-onnx: a net's TEST phase with its weights as an ONNX model
 * (src/api/onnx_export.c does the mapping). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "api/internal.h"

static struct flag export_flags[] = {
    { "model", FLAG_STRING, "", "the net (prototxt, any Caffe version; file: URIs accepted)", NULL, false },
    { "weights", FLAG_STRING, "", "trained weights: comma-separated .caffemodel(.h5) files (default: the "
      "prototxt's fillers)", NULL, false },
    { "output", FLAG_STRING, "", "the ONNX file to write", NULL, false },
    { "opset", FLAG_INT, "17", "the ONNX opset (13 to 21)", NULL, false },
    { "input_shape", FLAG_LIST, "", "[NAME=]D0,D1,...: the shape of input NAME (of the only input without "
      "NAME); repeat for several", NULL, false },
    { "fixed_batch", FLAG_BOOL, "false", "write axis 0 of the inputs as the number it has, not the symbolic "
      "batch N", NULL, false },
    { "allow_unmatched_weights", FLAG_BOOL, "false",
      "load -weights even when no layer of the net gets weights from them (an empty or unrelated file)", NULL,
      false },
    { "level", FLAG_INT, "0", "the net state's level", NULL, false },
    { "stage", FLAG_STRING, "", "comma-separated stages of the net state", NULL, false },
    { "help", FLAG_BOOL, "false", "print this list", NULL, false },
};
#define N_EXPORT_FLAGS ((int)(sizeof export_flags / sizeof export_flags[0]))
#define MAX_SHAPES 64

/* "[NAME=]D0,D1,..." onto the net's input NAME (or its only input). */
static int apply_shape(struct net *net, const char *spec)
{
    const char *eq = strchr(spec, '='), *dims = eq ? eq + 1 : spec;
    char name[512];
    if (eq) {
        size_t len = (size_t)(eq - spec);
        if (len == 0 || len >= sizeof name) {
            fprintf(stderr, "crema export-onnx: -input_shape wants [NAME=]D0,D1,..., got \"%s\"\n", spec);
            return 1;
        }
        memcpy(name, spec, len);
        name[len] = 0;
    } else if (net->n_inputs == 1) {
        snprintf(name, sizeof name, "%s", net->blob_names[net->input_ids[0]]);
    } else {
        fprintf(stderr, "crema export-onnx: -input_shape %s: the net has %d inputs; name one (NAME=D0,D1,...)\n",
                spec, net->n_inputs);
        return 1;
    }
    int b = net_blob_index(net, name), is_input = 0;
    for (int i = 0; b >= 0 && i < net->n_inputs; i++)
        is_input |= net->input_ids[i] == b;
    if (!is_input) {
        fprintf(stderr, "crema export-onnx: -input_shape %s: the net has no input %s\n", spec, name);
        return 1;
    }
    int shape[TENSOR_MAX_AXES], n = 0;
    const char *p = dims;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v <= 0 || v > (1L << 30) || (*end && *end != ',') || n == TENSOR_MAX_AXES) {
            fprintf(stderr, "crema export-onnx: -input_shape %s: dimensions must be positive integers separated "
                    "by commas (at most %d)\n", spec, TENSOR_MAX_AXES);
            return 1;
        }
        shape[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (n == 0) {
        fprintf(stderr, "crema export-onnx: -input_shape %s: no dimensions\n", spec);
        return 1;
    }
    if (tensor_reshape(net->blobs[b], n, shape) || net_reshape(net)) {
        fprintf(stderr, "crema export-onnx: -input_shape %s: %s\n", spec, crema_errmsg());
        return 1;
    }
    return 0;
}

static int check_output(const char *output)
{
    if (!*output) {
        fprintf(stderr, "crema export-onnx: -output is required (the .onnx file to write)\n");
        return 1;
    }
    if (strncmp(output, "file:", 5) != 0 && strstr(output, "://")) {
        fprintf(stderr, "crema export-onnx: -output %s: only local paths and file: URIs are supported\n", output);
        return 1;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", io_strip_file_uri(output));
    char *slash = strrchr(dir, '/');
    struct stat st;
    if (slash && slash != dir) {
        *slash = 0;
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "crema export-onnx: -output %s: no directory %s\n", output, dir);
            return 1;
        }
    }
    return 0;
}

int cmd_export_onnx(int argc, char **argv)
{
    struct flag *fl = export_flags;
    int start = cli_parse_command_flags(
        "export-onnx",
        "-model NET [-weights W] -output NET.onnx [flags]\n\nWrites the TEST phase of NET, with its weights, as "
        "an ONNX model.\nA layer with no ONNX equivalent is refused, naming it and why (see the README).",
        argc, argv, fl, N_EXPORT_FLAGS);
    if (start >= 0)
        return start;
    const char *model = cli_str(fl, N_EXPORT_FLAGS, "model"), *weights = cli_str(fl, N_EXPORT_FLAGS, "weights");
    const char *output = cli_str(fl, N_EXPORT_FLAGS, "output");
    long long opset = cli_int(fl, N_EXPORT_FLAGS, "opset");
    if (opset < ONNX_OPSET_MIN || opset > ONNX_OPSET_MAX) {
        fprintf(stderr, "crema export-onnx: -opset %lld: crema writes opsets %d to %d\n", opset, ONNX_OPSET_MIN,
                ONNX_OPSET_MAX);
        return 1;
    }
    if (cli_check_file("export-onnx", "model", model) || check_output(output))
        return 1;
    const char *shapes[MAX_SHAPES];
    int n_shapes = cli_list("export-onnx", argc, argv, 2, fl, N_EXPORT_FLAGS, "input_shape", shapes, MAX_SHAPES);
    if (n_shapes < 0)
        return 1;
    struct net *net = NULL;
    if (cli_load_net("export-onnx", model, weights, CAFFE__PHASE__TEST, (int)cli_int(fl, N_EXPORT_FLAGS, "level"),
                     cli_str(fl, N_EXPORT_FLAGS, "stage"), cli_bool(fl, N_EXPORT_FLAGS, "allow_unmatched_weights"),
                     &net))
        return 1;
    int rc = 0;
    for (int i = 0; i < n_shapes && !rc; i++)
        rc = apply_shape(net, shapes[i]);
    if (!rc) {
        struct onnx_export_options opt = { .opset = (int)opset,
                                           .fixed_batch = cli_bool(fl, N_EXPORT_FLAGS, "fixed_batch"),
                                           .log = stderr };
        if (onnx_export_net(net, io_strip_file_uri(output), &opt)) {
            fprintf(stderr, "crema export-onnx: %s\n", crema_errmsg());
            rc = 1;
        } else {
            fprintf(stderr, "crema export-onnx: wrote %s (ONNX opset %lld, %s batch)\n", output, opset,
                    opt.fixed_batch ? "fixed" : "open");
        }
    }
    net_free(net);
    return rc;
}
