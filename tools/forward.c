/* crema forward: one forward pass of a net with inputs read from .npy files,
 * the requested blobs written back as .npy; and the net opening that the
 * net tools (forward, time) share. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "crema.h"
#include "api/internal.h"

int cli_open_net(const char *cmd, const char *model, const char *weights, const char *phase,
                 bool allow_unmatched, crema_net **out)
{
    crema_phase ph;
    if (strcmp(phase, "TRAIN") == 0) {
        ph = CREMA_TRAIN;
    } else if (strcmp(phase, "TEST") == 0) {
        ph = CREMA_TEST;
    } else {
        fprintf(stderr, "crema %s: -phase wants TRAIN or TEST, got \"%s\"\n", cmd, phase);
        return 1;
    }
    if (!*model) {
        fprintf(stderr, "crema %s: -model is required (crema help %s lists the flags)\n", cmd, cmd);
        return 1;
    }
    if (crema_net_open(model, NULL, ph, out)) {
        fprintf(stderr, "crema %s: %s\n", cmd, crema_errmsg());
        return 1;
    }
    if (*weights && crema_net_load_weights_flags(*out, weights, allow_unmatched ? CREMA_WEIGHTS_ALLOW_UNMATCHED : 0)) {
        fprintf(stderr, "crema %s: %s\n", cmd, crema_errmsg());
        crema_net_free(*out);
        *out = NULL;
        return 1;
    }
    return 0;
}

static struct flag forward_flags[] = {
    { "model", FLAG_STRING, "", "the net (prototxt)", NULL, false },
    { "weights", FLAG_STRING, "", "trained weights (.caffemodel or .caffemodel.h5)", NULL, false },
    { "allow_unmatched_weights", FLAG_BOOL, "false",
      "load -weights even when no layer of the net gets weights from them (an empty or unrelated file)", NULL,
      false },
    { "input", FLAG_LIST, "", "NAME=FILE.npy: set blob NAME from FILE (repeat for several)", NULL, false },
    { "blobs", FLAG_STRING, "", "comma-separated blobs to write (default: the net's outputs)", NULL, false },
    { "output", FLAG_STRING, "", "folder for the <blob>.npy files (created if missing)", NULL, false },
    { "phase", FLAG_STRING, "TEST", "TRAIN or TEST", NULL, false },
    { "help", FLAG_BOOL, "false", "print this list", NULL, false },
};
#define N_FORWARD_FLAGS ((int)(sizeof forward_flags / sizeof forward_flags[0]))
#define MAX_INPUTS 256
#define MAX_BLOBS 1024

/* NAME=FILE.npy into the net; the net reshapes when the shape differs. */
static int set_input(crema_net *net, const char *spec)
{
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || !eq[1]) {
        fprintf(stderr, "crema forward: -input wants NAME=FILE.npy, got \"%s\"\n", spec);
        return 1;
    }
    char name[512];
    size_t len = (size_t)(eq - spec);
    if (len >= sizeof name) {
        fprintf(stderr, "crema forward: -input: blob name too long in \"%s\"\n", spec);
        return 1;
    }
    memcpy(name, spec, len);
    name[len] = 0;
    crema_blob b;
    if (crema_net_blob(net, name, &b)) {
        fprintf(stderr, "crema forward: -input %s: %s\n", spec, crema_errmsg());
        return 1;
    }
    struct npy_array a;
    if (npy_read(eq + 1, &a)) {
        fprintf(stderr, "crema forward: -input %s: %s\n", name, crema_errmsg());
        return 1;
    }
    int rc = 0;
    if (a.num_axes > CREMA_MAX_AXES) {
        fprintf(stderr, "crema forward: -input %s: %s has %d axes, at most %d are supported\n", name, eq + 1,
                a.num_axes, CREMA_MAX_AXES);
        rc = 1;
    } else if (crema_net_set_input(net, name, a.num_axes, a.shape, a.data)) {
        fprintf(stderr, "crema forward: -input %s: shape of %s does not fit the net: %s\n", name, eq + 1,
                crema_errmsg());
        rc = 1;
    }
    npy_free(&a);
    return rc;
}

/* Splits the comma-separated list in place; every name must be a blob. */
static int pick_blobs(crema_net *net, char *list, const char **names, int *n)
{
    *n = 0;
    if (!*list) {
        for (int i = 0; i < crema_net_num_outputs(net) && *n < MAX_BLOBS; i++)
            names[(*n)++] = crema_net_output_name(net, i);
        return 0;
    }
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        crema_blob b;
        if (crema_net_blob(net, tok, &b)) {
            fprintf(stderr, "crema forward: -blobs: %s\n", crema_errmsg());
            return 1;
        }
        if (*n == MAX_BLOBS) {
            fprintf(stderr, "crema forward: -blobs: more than %d blobs\n", MAX_BLOBS);
            return 1;
        }
        names[(*n)++] = tok;
    }
    return 0;
}

/* DIR/<blob>.npy; a '/' inside a blob name (Caffe allows it) becomes '_'. */
static int write_blob(crema_net *net, const char *dir, const char *name)
{
    crema_blob b;
    if (crema_net_blob(net, name, &b)) {
        fprintf(stderr, "crema forward: %s\n", crema_errmsg());
        return 1;
    }
    size_t n = strlen(dir) + strlen(name) + 8;
    char *path = malloc(n);
    if (!path) {
        fprintf(stderr, "crema forward: out of memory\n");
        return 1;
    }
    int o = snprintf(path, n, "%s/", dir);
    for (const char *p = name; *p; p++)
        path[o++] = *p == '/' ? '_' : *p;
    strcpy(path + o, ".npy");
    int rc = 0;
    if (npy_write(path, b.num_axes, b.shape, b.data)) {
        fprintf(stderr, "crema forward: %s\n", crema_errmsg());
        rc = 1;
    } else {
        printf("%s:", name);
        for (int i = 0; i < b.num_axes; i++)
            printf(" %d", b.shape[i]);
        printf(" -> %s\n", path);
    }
    free(path);
    return rc;
}

int cmd_forward(int argc, char **argv)
{
    struct flag *fl = forward_flags;
    int start = cli_parse_command_flags(
        "forward",
        "-model NET [-weights W] -input NAME=FILE.npy ... -output DIR [flags]\n\n"
        "Runs the net forward once and writes each requested blob to DIR/<blob>.npy.",
        argc, argv, fl, N_FORWARD_FLAGS);
    if (start >= 0)
        return start;
    const char *dir = cli_str(fl, N_FORWARD_FLAGS, "output");
    if (!*dir) {
        fprintf(stderr, "crema forward: -output DIR is required\n");
        return 1;
    }
    const char *inputs[MAX_INPUTS];
    int n_inputs = cli_list("forward", argc, argv, 2, fl, N_FORWARD_FLAGS, "input", inputs, MAX_INPUTS);
    if (n_inputs < 0)
        return 1;
    crema_net *net = NULL;
    if (cli_open_net("forward", cli_str(fl, N_FORWARD_FLAGS, "model"), cli_str(fl, N_FORWARD_FLAGS, "weights"),
                     cli_str(fl, N_FORWARD_FLAGS, "phase"), cli_bool(fl, N_FORWARD_FLAGS, "allow_unmatched_weights"),
                     &net))
        return 1;
    int rc = 0;
    for (int i = 0; i < n_inputs && !rc; i++)
        rc = set_input(net, inputs[i]);
    char *list = strdup(cli_str(fl, N_FORWARD_FLAGS, "blobs"));
    const char **names = malloc(MAX_BLOBS * sizeof *names);
    int n_names = 0;
    if (!list || !names) {
        fprintf(stderr, "crema forward: out of memory\n");
        rc = 1;
    }
    if (!rc)
        rc = pick_blobs(net, list, names, &n_names);
    if (!rc && mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "crema forward: cannot create -output %s: %s\n", dir, strerror(errno));
        rc = 1;
    }
    float loss = 0;
    if (!rc && crema_net_forward(net, &loss)) {
        fprintf(stderr, "crema forward: %s\n", crema_errmsg());
        rc = 1;
    }
    for (int i = 0; i < n_names && !rc; i++)
        rc = write_blob(net, dir, names[i]);
    if (!rc)
        printf("loss: %g\n", loss);
    free(names);
    free(list);
    crema_net_free(net);
    return rc;
}
