/* crema upgrade-net / upgrade-solver: Caffe's upgrade_net_proto_text,
 * upgrade_net_proto_binary and upgrade_solver_proto_text in one place.
 * Exit status as Caffe's tools: 0 done, 1 upgraded with problems (or
 * failed), 2 the input could not be read. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "crema.h"
#include "api/internal.h"

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Caffe's binary net files are weights and means; everything else is text. */
static bool binary_by_name(const char *path)
{
    return ends_with(path, ".caffemodel") || ends_with(path, ".binaryproto");
}

/* "auto" picks by the file's name; returns -1 for a value we do not know. */
static int pick_binary(const char *cmd, const char *flag, const char *value, const char *path)
{
    if (strcmp(value, "auto") == 0)
        return binary_by_name(path);
    if (strcmp(value, "binary") == 0)
        return 1;
    if (strcmp(value, "text") == 0)
        return 0;
    fprintf(stderr, "crema %s: -%s wants auto, text or binary, got \"%s\"\n", cmd, flag, value);
    return -1;
}

static struct flag upgrade_flags[] = {
    { "in_format", FLAG_STRING, "auto", "format of IN: text, binary, or auto (binary for .caffemodel and .binaryproto)",
      NULL, false },
    { "out_format", FLAG_STRING, "auto", "format of OUT: text, binary, or auto (from OUT's name, as for IN)", NULL,
      false },
    { "help", FLAG_BOOL, "false", "print this list", NULL, false },
};
#define N_UPGRADE_FLAGS ((int)(sizeof upgrade_flags / sizeof upgrade_flags[0]))

/* The steps both commands share: flags, reading IN, writing OUT. */
struct job {
    const char *cmd;
    const char *in, *out;
    int in_binary, out_binary;
};

static int parse_job(struct job *j, const char *cmd, const char *what, int argc, char **argv)
{
    const char *pos[2];
    int n_pos = 0;
    for (int i = 0; i < N_UPGRADE_FLAGS; i++)
        upgrade_flags[i].set = false, upgrade_flags[i].value = NULL;
    if (cli_parse_flags(cmd, argc, argv, 2, upgrade_flags, N_UPGRADE_FLAGS, pos, 2, &n_pos))
        return 1;
    char usage[256];
    snprintf(usage, sizeof usage, "IN OUT [flags]\n\nReads %s IN, upgrades it as Caffe does on load, writes OUT.",
             what);
    if (cli_bool(upgrade_flags, N_UPGRADE_FLAGS, "help")) {
        cli_print_flags(cmd, usage, upgrade_flags, N_UPGRADE_FLAGS);
        return -1;
    }
    if (n_pos != 2) {
        fprintf(stderr, "crema %s: expected IN and OUT (crema help %s lists the flags)\n", cmd, cmd);
        return 1;
    }
    j->cmd = cmd;
    j->in = pos[0];
    j->out = pos[1];
    j->in_binary = pick_binary(cmd, "in_format", cli_str(upgrade_flags, N_UPGRADE_FLAGS, "in_format"), j->in);
    j->out_binary = pick_binary(cmd, "out_format", cli_str(upgrade_flags, N_UPGRADE_FLAGS, "out_format"), j->out);
    if (j->in_binary < 0 || j->out_binary < 0)
        return 1;
    return 0;
}

static int read_in(const struct job *j, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **msg)
{
    if (ends_with(j->in, ".h5")) {
        fprintf(stderr, "crema %s: %s: HDF5 weights hold no layer definitions to upgrade\n", j->cmd, j->in);
        return 2;
    }
    int rc = j->in_binary ? proto_read_binary(j->in, desc, msg) : proto_read_text(j->in, desc, msg);
    if (rc) {
        fprintf(stderr, "crema %s: cannot read %s as a %s %s: %s\n", j->cmd, j->in, j->in_binary ? "binary" : "text",
                desc->short_name, crema_errmsg());
        return 2;
    }
    return 0;
}

static int write_out(const struct job *j, const ProtobufCMessage *msg)
{
    int rc = j->out_binary ? proto_write_binary(j->out, msg) : proto_write_text(j->out, msg);
    if (rc) {
        fprintf(stderr, "crema %s: cannot write %s: %s\n", j->cmd, j->out, crema_errmsg());
        return 1;
    }
    fprintf(stderr, "crema %s: wrote %s (%s)\n", j->cmd, j->out, j->out_binary ? "binary" : "text");
    return 0;
}

int cmd_upgrade_net(int argc, char **argv)
{
    struct job j;
    int rc = parse_job(&j, "upgrade-net", "a net (NetParameter: prototxt or .caffemodel)", argc, argv);
    if (rc)
        return rc < 0 ? 0 : rc;
    ProtobufCMessage *msg = NULL;
    rc = read_in(&j, &caffe__net_parameter__descriptor, &msg);
    if (rc)
        return rc;
    Caffe__NetParameter *net = (Caffe__NetParameter *)msg;
    struct upgrade_notes notes = { 0 };
    bool problems = false;
    if (upgrade_net_needed(net)) {
        if (upgrade_net_noted(net, j.in, NULL, &notes)) {
            fprintf(stderr, "crema upgrade-net: %s\n", crema_errmsg());
            proto_free(msg);
            return 1;
        }
        if (notes.count) {
            fprintf(stderr, "%screma upgrade-net: %d problem(s) upgrading %s (see above); wrote the rest\n", notes.text,
                    notes.count, j.in);
            problems = true;
        }
    } else {
        fprintf(stderr, "crema upgrade-net: %s is already in the current format\n", j.in);
    }
    rc = write_out(&j, msg);
    proto_free(msg);
    return rc ? rc : problems;
}

int cmd_upgrade_solver(int argc, char **argv)
{
    struct job j;
    int rc = parse_job(&j, "upgrade-solver", "a solver (SolverParameter prototxt)", argc, argv);
    if (rc)
        return rc < 0 ? 0 : rc;
    ProtobufCMessage *msg = NULL;
    rc = read_in(&j, &caffe__solver_parameter__descriptor, &msg);
    if (rc)
        return rc;
    Caffe__SolverParameter *s = (Caffe__SolverParameter *)msg;
    if (upgrade_solver_needed(s)) {
        if (upgrade_solver(s, j.in, NULL)) {
            fprintf(stderr, "crema upgrade-solver: %s\n", crema_errmsg());
            proto_free(msg);
            return 1;
        }
    } else {
        fprintf(stderr, "crema upgrade-solver: %s is already in the current format\n", j.in);
    }
    rc = write_out(&j, msg);
    proto_free(msg);
    return rc;
}
