/* Opening a net for the scoring tools (test, features, the CaffeOnSpark
 * modes): a prototxt (upgraded as Caffe does on load) for a phase, level
 * and stages, with trained weights; file: URIs accepted everywhere. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "api/internal.h"

int cli_check_file(const char *cmd, const char *flag, const char *path)
{
    if (!path || !*path) {
        fprintf(stderr, "crema %s: -%s is required (crema help %s lists the flags)\n", cmd, flag, cmd);
        return 1;
    }
    if (strncmp(path, "file:", 5) != 0 && strstr(path, "://")) {
        fprintf(stderr, "crema %s: -%s %s: only local paths and file: URIs are supported\n", cmd, flag, path);
        return 1;
    }
    struct stat st;
    if (stat(io_strip_file_uri(path), &st) != 0) {
        fprintf(stderr, "crema %s: -%s %s: no such file\n", cmd, flag, path);
        return 1;
    }
    return 0;
}

int cli_parse_phase(const char *cmd, const char *v, int *phase)
{
    if (strcmp(v, "TRAIN") == 0 || strcmp(v, "train") == 0)
        *phase = CAFFE__PHASE__TRAIN;
    else if (strcmp(v, "TEST") == 0 || strcmp(v, "test") == 0)
        *phase = CAFFE__PHASE__TEST;
    else {
        fprintf(stderr, "crema %s: -phase wants TRAIN or TEST, got \"%s\"\n", cmd, v);
        return 1;
    }
    return 0;
}

/* Adds the comma-separated stages to st (st->stage is malloc'd). */
static int add_stages(Caffe__NetState *st, const char *stages)
{
    if (!stages || !*stages)
        return 0;
    size_t n = 1;
    for (const char *c = stages; *c; c++)
        n += *c == ',';
    char **arr = calloc(n, sizeof *arr);
    char *copy = strdup(stages);
    if (!arr || !copy) {
        free(arr);
        free(copy);
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    }
    st->n_stage = 0;
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        arr[st->n_stage++] = t; /* point into copy: arr[0] == copy when n_stage > 0 */
    if (st->n_stage == 0)
        free(copy);
    st->stage = arr;
    return 0;
}

int cli_load_net(const char *cmd, const char *model, const char *weights, int phase, int level,
                 const char *stages, bool allow_unmatched, struct net **out)
{
    *out = NULL;
    if (cli_check_file(cmd, "model", model))
        return 1;
    Caffe__NetParameter *p = NULL;
    int rc = upgrade_read_net(model, false, &p);
    static const Caffe__NetState def = CAFFE__NET_STATE__INIT;
    Caffe__NetState st = def;
    if (!rc) {
        st.has_phase = true;
        st.phase = (Caffe__Phase)phase;
        st.has_level = true;
        st.level = level;
        rc = add_stages(&st, stages);
    }
    if (!rc)
        rc = net_build(p, &st, 1701, out);
    if (st.n_stage)
        free(st.stage[0]);
    free(st.stage);
    if (p)
        proto_free(&p->base);
    if (rc) {
        fprintf(stderr, "crema %s: %s: %s\n", cmd, model, crema_errmsg());
        return 1;
    }
    if (weights && *weights) {
        /* Caffe's tools take a comma-separated list of weight files. */
        char *copy = strdup(weights), *save = NULL;
        if (!copy)
            rc = err_set(CREMA_ERR_NOMEM, "out of memory");
        bool missing = false;
        for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t && !rc && !missing; t = strtok_r(NULL, ",", &save))
            if (!(missing = cli_check_file(cmd, "weights", t)))
                rc = net_load_weights_opt(*out, io_strip_file_uri(t), allow_unmatched);
        free(copy);
        if (rc || missing) {
            if (rc)
                fprintf(stderr, "crema %s: %s\n", cmd, crema_errmsg());
            net_free(*out);
            *out = NULL;
            return 1;
        }
    }
    return 0;
}

int cli_net_to_gpu(const char *cmd, const char *gpu, struct net *net)
{
    if (!gpu || !*gpu)
        return 0;
    const struct backend *be = NULL;
    int n = 0;
    int rc = device_choose(gpu, false, 0, NULL, &be, &n);
    if (!rc && n > 1)
        rc = err_set(CREMA_ERR_UNSUPPORTED, "-gpu %s: crema %s runs on one GPU", gpu, cmd);
    if (!rc)
        rc = net_set_backend(net, be, stderr);
    if (rc) {
        fprintf(stderr, "crema %s: %s\n", cmd, crema_errmsg());
        return 1;
    }
    fprintf(stderr, "Use GPU with device ID %d\n", be->device_id);
    return 0;
}
