/* The CaffeOnSpark command line in the crema binary:
 *   crema -train|-test|-features b1,b2 -conf SOLVER -model PATH ...
 * Every option of CaffeOnSpark's Config is recognised: those that mean
 * something on one machine work, Spark-only ones are accepted with a note,
 * the conversion tools' options are refused with the reason. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "api/internal.h"

static struct flag cos_flags[] = {
    { "conf", FLAG_STRING, "", "solver configuration (prototxt; its net is the net for every mode)", NULL, false },
    { "train", FLAG_BOOL, "false", "training mode", NULL, false },
    { "test", FLAG_BOOL, "false", "test mode: mean of every output over the test source, to -output", NULL, false },
    { "features", FLAG_STRING, "", "feature mode: comma-separated blobs to extract per sample", NULL, false },
    { "label", FLAG_STRING, "", "label blob added to every feature record", NULL, false },
    { "outputFormat", FLAG_STRING, "json", "feature output: json (JSON lines), csv or npy", NULL, false },
    { "model", FLAG_STRING, "", "train: where the final model goes (its directory gets the snapshots); "
                                "test/features: the model to load", NULL, false },
    { "output", FLAG_STRING, "output", "where test results or features go (path or file: URI)", NULL, false },
    { "devices", FLAG_INT, "1", "GPUs per executor: with solver_mode GPU, one rank per GPU", NULL, false },
    { "persistent", FLAG_BOOL, "false", "persist the training RDD (Spark only)", NULL, false },
    { "snapshot", FLAG_STRING, "", "solver state to resume training from (needs -weights, as CaffeOnSpark)", NULL,
      false },
    { "weights", FLAG_STRING, "", "model to start training from (finetune), or the model of -snapshot", NULL, false },
    { "connection", FLAG_STRING, "ethernet",
      "ethernet (TCP) or infiniband (ibverbs) between ranks; CaffeOnSpark defaulted to infiniband (RDMA)", NULL,
      false },
    { "resize", FLAG_BOOL, "false", "resize input images of Spark image sources (crema.spark)", NULL, false },
    { "clusterSize", FLAG_INT, "1",
      "number of training ranks: all start here, or come from mpirun/srun (batch sizes are per rank)", NULL, false },
    { "lmdb_partitions", FLAG_INT, "0", "partitions of the LMDB RDD (Spark only; default: cluster size)", NULL,
      false },
    { "imageRoot", FLAG_STRING, "", "conversion tools only (not the trainer)", NULL, false },
    { "labelFile", FLAG_STRING, "", "conversion tools only (not the trainer)", NULL, false },
    { "captionFile", FLAG_STRING, "", "conversion tools only (not the trainer)", NULL, false },
    { "captionLength", FLAG_INT, "20", "conversion tools only (not the trainer)", NULL, false },
    { "vocabSize", FLAG_INT, "-1", "conversion tools only (not the trainer)", NULL, false },
    { "imageCaptionDFDir", FLAG_STRING, "", "conversion tools only (not the trainer)", NULL, false },
    { "vocabDir", FLAG_STRING, "", "conversion tools only (not the trainer)", NULL, false },
    { "embeddingDFDir", FLAG_STRING, "", "conversion tools only (not the trainer)", NULL, false },
    { "tensorboard", FLAG_STRING, "", "crema: write TensorBoard scalars of training to this directory", NULL,
      false },
    { "help", FLAG_BOOL, "false", "print this list", NULL, false },
};
#define N_COS ((int)(sizeof cos_flags / sizeof cos_flags[0]))

static const char *const cos_usage =
    "-train|-test|-features b1,b2 -conf SOLVER -model PATH [flags]\n\n"
    "CaffeOnSpark's command line on one machine. Paths take file: URIs.";

void cos_print_help(void)
{
    cli_print_flags("cos", cos_usage, cos_flags, N_COS);
}

static bool flag_set(const char *name)
{
    for (int i = 0; i < N_COS; i++)
        if (strcmp(cos_flags[i].name, name) == 0)
            return cos_flags[i].set;
    return false;
}

/* The solver's net as a file the scoring tools can open. */
static const char *net_file(const Caffe__SolverParameter *p)
{
    if (p->net && *p->net)
        return p->net;
    if (p->n_test_net > 0)
        return p->test_net[0];
    return NULL;
}

/* CaffeOnSpark named snapshots <dir of -model>/<snapshot_prefix>_iter_N. */
static int set_snapshot_prefix(Caffe__SolverParameter *p, const char *model)
{
    const char *slash = strrchr(model, '/');
    size_t dir_len = slash ? (size_t)(slash - model) + 1 : 0;
    const char *prefix = p->snapshot_prefix ? p->snapshot_prefix : "";
    const char *base = strrchr(prefix, '/');
    base = base ? base + 1 : prefix;
    char *np = malloc(dir_len + strlen(base) + 1);
    if (!np)
        return 1;
    memcpy(np, model, dir_len);
    strcpy(np + dir_len, base);
    free(p->snapshot_prefix);
    p->snapshot_prefix = np;
    return 0;
}

static int train(const char *conf, const char *model, const char *weights, const char *snapshot, int devices,
                 const char *tensorboard, struct dist_comm *comm)
{
    /* with ranks, rank 0 logs and writes the model; the others only train */
    bool lead = !comm || dist_rank(comm) == 0;
    Caffe__SolverParameter *param = NULL;
    if (solver_read_param(io_strip_file_uri(conf), &param)) {
        fprintf(stderr, "crema cos: -conf %s: %s\n", conf, crema_errmsg());
        return 1;
    }
    /* CaffeOnSpark: solver_mode GPU trains each executor's ranks on its
     * GPUs (-devices per executor); rank r takes GPU r % devices. Without a
     * GPU, one warning and the CPU. */
    const struct backend *be = NULL;
    int n_gpus = 0;
    char gpu[16] = "";
    bool wants_gpu = param->solver_mode == CAFFE__SOLVER_PARAMETER__SOLVER_MODE__GPU;
    if (wants_gpu && devices > 0 && device_gpu_count() > 0)
        snprintf(gpu, sizeof gpu, "%d", (comm ? dist_rank(comm) : 0) % devices);
    int rc = device_choose(gpu, wants_gpu, param->device_id, lead ? stderr : NULL, &be, &n_gpus);
    if (rc) {
        fprintf(stderr, "crema cos: %s\n", crema_errmsg());
        proto_free(&param->base);
        return 1;
    }
    rc = set_snapshot_prefix(param, model);
    param->has_snapshot_after_train = true;
    param->snapshot_after_train = false; /* the final model goes to -model */
    if (!rc && *weights && !*snapshot) {
        for (size_t i = 0; i < param->n_weights; i++)
            free(param->weights[i]);
        free(param->weights);
        param->weights = malloc(sizeof *param->weights);
        param->n_weights = param->weights ? 1 : 0;
        if (!param->weights || !(param->weights[0] = strdup(io_strip_file_uri(weights))))
            rc = 1;
    }
    if (rc) {
        proto_free(&param->base);
        fprintf(stderr, "crema cos: out of memory\n");
        return 1;
    }
    struct solver *s = NULL;
    rc = solver_create(param, lead ? stderr : NULL, &s);
    proto_free(&param->base);
    if (!rc && !be->host_memory)
        rc = solver_set_backend(s, be);
    if (!rc && comm)
        rc = solver_set_dist(s, comm);
    if (rc) {
        fprintf(stderr, "crema cos: %s\n", crema_errmsg());
        solver_free(s);
        return 1;
    }
    struct progress *pr = NULL;
    if (lead && cli_progress_attach("cos", s, tensorboard, &pr)) {
        solver_free(s);
        return 1;
    }
    rc = solver_solve(s, *snapshot ? io_strip_file_uri(snapshot) : NULL);
    int prc = pr ? cli_progress_finish(pr) : 0;
    if (rc || prc) {
        fprintf(stderr, "crema cos: %s%s\n", comm ? (lead ? "rank 0: " : "rank > 0: ") : "", crema_errmsg());
        solver_free(s);
        return 1;
    }
    if (!lead) {
        solver_free(s);
        return 0;
    }
    Caffe__NetParameter *np = NULL;
    const char *out = io_strip_file_uri(model);
    rc = net_to_proto(s->net, false, &np);
    if (!rc)
        rc = proto_write_binary(out, &np->base);
    if (np)
        caffe__net_parameter__free_unpacked(np, NULL);
    solver_free(s);
    if (rc) {
        fprintf(stderr, "crema cos: -model %s: %s\n", model, crema_errmsg());
        return 1;
    }
    fprintf(stderr, "Model saved to %s\n", model);
    return 0;
}

int cmd_cos(int argc, char **argv)
{
    const char *pos[1];
    int n_pos;
    for (int i = 0; i < N_COS; i++)
        cos_flags[i].set = false, cos_flags[i].value = NULL;
    if (cli_parse_flags("cos", argc, argv, 1, cos_flags, N_COS, pos, 0, &n_pos))
        return 1;
    const int n = N_COS;
    struct flag *fl = cos_flags;
    if (cli_bool(fl, n, "help")) {
        cos_print_help();
        return 0;
    }
    static const char *const tool_only[] = { "imageRoot", "labelFile", "captionFile", "captionLength", "vocabSize",
                                             "imageCaptionDFDir", "vocabDir", "embeddingDFDir" };
    for (size_t i = 0; i < sizeof tool_only / sizeof tool_only[0]; i++)
        if (flag_set(tool_only[i])) {
            fprintf(stderr,
                    "crema cos: -%s belongs to CaffeOnSpark's data conversion tools, not to training; use crema "
                    "convert-imageset / convert-mnist\n",
                    tool_only[i]);
            return 1;
        }
    bool do_train = cli_bool(fl, n, "train"), do_test = cli_bool(fl, n, "test");
    const char *features = cli_str(fl, n, "features");
    bool do_features = flag_set("features");
    const char *conf = cli_str(fl, n, "conf"), *model = cli_str(fl, n, "model");
    const char *weights = cli_str(fl, n, "weights"), *snapshot = cli_str(fl, n, "snapshot");
    const char *output = cli_str(fl, n, "output"), *format = cli_str(fl, n, "outputFormat");
    if (!do_train && !do_test && !do_features) {
        fprintf(stderr, "crema cos: give -train, -test or -features (crema help cos lists the flags)\n");
        return 1;
    }
    if (do_features && !*features) {
        fprintf(stderr, "crema cos: -features wants blob names separated by commas\n");
        return 1;
    }
    if (!*model) {
        fprintf(stderr, "crema cos: -model is required (train: where the model goes; test/features: the model)\n");
        return 1;
    }
    if (cli_check_file("cos", "conf", conf))
        return 1;
    if (*snapshot && !*weights) {
        fprintf(stderr, "crema cos: -snapshot needs -weights: to resume training, give the model file too\n");
        return 1;
    }
    if (*snapshot && cli_check_file("cos", "snapshot", snapshot))
        return 1;
    if (*weights && cli_check_file("cos", "weights", weights))
        return 1;
    if (strcmp(format, "parquet") == 0) {
        fprintf(stderr, "crema cos: -outputFormat parquet needs Spark's writer; use json, csv or npy (or "
                        "crema.spark)\n");
        return 1;
    }
    if ((do_features || do_test) && cli_check_output("cos", output, do_features ? format : "json"))
        return 1;
    if (!do_train && cli_check_file("cos", "model", model))
        return 1;
    if (do_train && strncmp(model, "file:", 5) != 0 && strstr(model, "://")) {
        fprintf(stderr, "crema cos: -model %s: only local paths and file: URIs are supported\n", model);
        return 1;
    }
    long long cluster = cli_int(fl, n, "clusterSize");
    if (cluster < 1) {
        fprintf(stderr, "crema cos: -clusterSize must be at least 1, got %lld\n", cluster);
        return 1;
    }
    long long devices = cli_int(fl, n, "devices");
    if (devices < 1 || devices > 64) {
        fprintf(stderr, "crema cos: -devices must be 1..64, got %lld\n", devices);
        return 1;
    }
    /* On GPUs each executor runs one rank per device, as CaffeOnSpark's
     * executors run one solver per GPU: clusterSize x devices ranks. */
    if (do_train && devices > 1 && device_gpu_count() > 0) {
        Caffe__SolverParameter *sp = NULL;
        if (solver_read_param(io_strip_file_uri(conf), &sp) == 0 &&
            sp->solver_mode == CAFFE__SOLVER_PARAMETER__SOLVER_MODE__GPU)
            cluster *= devices;
        if (sp)
            proto_free(&sp->base);
    }
    struct dist_config dcfg;
    struct dist_comm *comm = NULL;
    if (do_train) {
        struct cli_dist_opts dopt = { .cluster_size = cluster, .rank = -1, .timeout_s = 30, .rendezvous = "",
                                      .secret = "", .iface = "", .connection = cli_str(fl, n, "connection") };
        int mode = cli_dist_setup("cos", &dopt, &dcfg);
        if (mode < 0)
            return 1;
        if (mode == CLI_DIST_LAUNCH)
            return cli_dist_launch("cos", argc, argv, &dcfg);
        if (mode == CLI_DIST_RANK && cli_dist_connect("cos", &dcfg, &comm))
            return 1;
    } else if (cluster > 1) {
        fprintf(stderr, "crema cos: note: -clusterSize applies to training; testing and features run here\n");
    }
    if (flag_set("persistent"))
        fprintf(stderr, "crema cos: note: -persistent has no meaning without Spark (no RDD to persist)\n");
    if (flag_set("connection") && !comm)
        fprintf(stderr, "crema cos: note: -connection matters only between ranks (-clusterSize > 1)\n");
    if (flag_set("resize"))
        fprintf(stderr, "crema cos: note: -resize applies to Spark image sources (crema.spark), not to LMDBs\n");
    if (flag_set("lmdb_partitions"))
        fprintf(stderr, "crema cos: note: -lmdb_partitions has no meaning without Spark (no RDD partitions)\n");
    if (do_test && do_features) {
        fprintf(stderr, "crema cos: note: both -test and -features: doing features only, as CaffeOnSpark\n");
        do_test = false;
    }

    Caffe__SolverParameter *param = NULL;
    if (solver_read_param(io_strip_file_uri(conf), &param)) {
        fprintf(stderr, "crema cos: -conf %s: %s\n", conf, crema_errmsg());
        dist_comm_free(comm);
        return 1;
    }
    const char *nf = net_file(param);
    char *net = nf ? strdup(nf) : NULL;
    proto_free(&param->base);
    if (!net) {
        fprintf(stderr, "crema cos: -conf %s: the solver names no net file (net:)\n", conf);
        dist_comm_free(comm);
        return 1;
    }
    int rc = 0;
    if (do_train)
        rc = train(conf, model, weights, snapshot, (int)devices, cli_str(fl, n, "tensorboard"), comm);
    /* after distributed training, rank 0 alone tests or extracts */
    bool lead = !comm || dist_rank(comm) == 0;
    dist_comm_free(comm);
    if (!rc && lead && (do_test || do_features)) {
        struct extract_job job = { 0 };
        job.model = net;
        job.weights = model;
        job.blobs = features;
        job.label = cli_str(fl, n, "label");
        job.output = output;
        job.format = format;
        job.iterations = -1;
        job.stages = "";
        job.test_mode = do_test;
        rc = cli_extract("cos", &job);
    }
    free(net);
    return rc;
}
