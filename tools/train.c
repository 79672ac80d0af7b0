/* crema train: Caffe's `caffe train` (solver, -weights or -snapshot,
 * SIGINT/SIGHUP effects), plus -iterations to override max_iter, and
 * data-parallel training over ranks (-clusterSize, mpirun, srun, by hand). */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "api/internal.h"

static struct flag train_flags[] = {
    { "solver", FLAG_STRING, "", "the solver definition (text SolverParameter)", NULL, false },
    { "weights", FLAG_STRING, "", "comma-separated .caffemodel(.h5) files to start from (not with -snapshot)", NULL,
      false },
    { "snapshot", FLAG_STRING, "", "a .solverstate(.h5) to resume from", NULL, false },
    { "iterations", FLAG_INT, "-1", "train to this iteration instead of the solver's max_iter (-1: max_iter)", NULL,
      false },
    { "gpu", FLAG_STRING, "", "GPU ids to train on (0, or all); overrides solver_mode (default: the solver's)", NULL,
      false },
    { "precision", FLAG_STRING, "fp32", "GPU arithmetic: fp32 (Caffe's) or tf32 (TF32 tensor cores)", NULL, false },
    { "sigint_effect", FLAG_STRING, "stop", "what SIGINT does: stop, snapshot or none", NULL, false },
    { "sighup_effect", FLAG_STRING, "snapshot", "what SIGHUP does: stop, snapshot or none", NULL, false },
    { "level", FLAG_INT, "0", "the train net state's level", NULL, false },
    { "stage", FLAG_STRING, "", "comma-separated stages of the train net state", NULL, false },
    { "clusterSize", FLAG_INT, "0",
      "ranks of a data-parallel job; without -rank all start here (0: from mpirun/srun/CREMA_SIZE, else 1)", NULL,
      false },
    { "rank", FLAG_INT, "-1", "this process's rank, when ranks are started by hand (default: environment)", NULL,
      false },
    { "rendezvous", FLAG_STRING, "", "tcp://host:port of rank 0, or file:///shared/dir (default: CREMA_MASTER)",
      NULL, false },
    { "secret", FLAG_STRING, "", "rendezvous secret shared by the ranks (default: CREMA_SECRET)", NULL, false },
    { "iface", FLAG_STRING, "", "network interface the ranks talk over (default: the route to rank 0)", NULL,
      false },
    { "connection", FLAG_STRING, "ethernet", "transport between ranks: ethernet (TCP) or infiniband (ibverbs)",
      NULL, false },
    { "dist_timeout", FLAG_INT, "30", "seconds before a silent or lost rank fails the job", NULL, false },
    { "help", FLAG_BOOL, "false", "print this list", NULL, false },
};
#define N_TRAIN_FLAGS ((int)(sizeof train_flags / sizeof train_flags[0]))

/* The handler only sets a flag; the loop polls it once per iteration. */
static volatile sig_atomic_t got_sigint, got_sighup;

static void on_signal(int sig)
{
    if (sig == SIGINT)
        got_sigint = 1;
    else if (sig == SIGHUP)
        got_sighup = 1;
}

struct effects {
    enum solver_action sigint, sighup;
};

static int parse_effect(const char *flag, const char *v, enum solver_action *out)
{
    if (strcmp(v, "stop") == 0)
        *out = SOLVER_ACTION_STOP;
    else if (strcmp(v, "snapshot") == 0)
        *out = SOLVER_ACTION_SNAPSHOT;
    else if (strcmp(v, "none") == 0)
        *out = SOLVER_ACTION_NONE;
    else {
        fprintf(stderr, "crema train: -%s wants stop, snapshot or none, got \"%s\"\n", flag, v);
        return 1;
    }
    return 0;
}

/* Caffe's SignalHandler::CheckForSignals: SIGINT first, each seen once. */
static enum solver_action check_signals(void *ctx)
{
    const struct effects *e = ctx;
    if (got_sigint) {
        got_sigint = 0;
        return e->sigint;
    }
    if (got_sighup) {
        got_sighup = 0;
        return e->sighup;
    }
    return SOLVER_ACTION_NONE;
}

static int install(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    return sigaction(sig, &sa, NULL);
}

/* -level L and -stage a,b go into train_state, as caffe.cpp does. */
static int set_train_state(Caffe__SolverParameter *p, long long level, const char *stages)
{
    if (!p->train_state) {
        p->train_state = malloc(sizeof *p->train_state);
        if (!p->train_state)
            return 1;
        caffe__net_state__init(p->train_state);
    }
    Caffe__NetState *ns = p->train_state;
    ns->has_level = true;
    ns->level = (int32_t)level;
    char *copy = strdup(stages);
    if (!copy)
        return 1;
    char *save = NULL;
    int rc = 0;
    for (char *t = strtok_r(copy, ",", &save); t && !rc; t = strtok_r(NULL, ",", &save)) {
        char **grown = realloc(ns->stage, (ns->n_stage + 1) * sizeof *grown);
        if (grown)
            ns->stage = grown;
        if (!grown || !(ns->stage[ns->n_stage] = strdup(t)))
            rc = 1;
        else
            ns->n_stage++;
    }
    free(copy);
    return rc;
}

int cmd_train(int argc, char **argv)
{
    const char *pos[1];
    int n_pos = 0;
    if (cli_parse_flags("train", argc, argv, 2, train_flags, N_TRAIN_FLAGS, pos, 0, &n_pos))
        return 1;
    if (cli_bool(train_flags, N_TRAIN_FLAGS, "help")) {
        cli_print_flags("train", "-solver S [-weights W | -snapshot S] [flags]", train_flags, N_TRAIN_FLAGS);
        return 0;
    }
    const char *solver_file = cli_str(train_flags, N_TRAIN_FLAGS, "solver");
    const char *weights = cli_str(train_flags, N_TRAIN_FLAGS, "weights");
    const char *snapshot = cli_str(train_flags, N_TRAIN_FLAGS, "snapshot");
    if (!*solver_file) {
        fprintf(stderr, "crema train: need a solver definition to train (-solver)\n");
        return 1;
    }
    if (*weights && *snapshot) {
        fprintf(stderr, "crema train: give a snapshot to resume training or weights to finetune but not both\n");
        return 1;
    }
    struct cli_dist_opts dopt = {
        .cluster_size = cli_int(train_flags, N_TRAIN_FLAGS, "clusterSize"),
        .rank = cli_int(train_flags, N_TRAIN_FLAGS, "rank"),
        .timeout_s = cli_int(train_flags, N_TRAIN_FLAGS, "dist_timeout"),
        .rendezvous = cli_str(train_flags, N_TRAIN_FLAGS, "rendezvous"),
        .secret = cli_str(train_flags, N_TRAIN_FLAGS, "secret"),
        .iface = cli_str(train_flags, N_TRAIN_FLAGS, "iface"),
        .connection = cli_str(train_flags, N_TRAIN_FLAGS, "connection"),
    };
    /* -gpu 0,1 (or all): one rank per GPU, as Caffe trains one solver per
     * GPU; rank r takes the r-th GPU of the list. */
    const char *gpu_flag = cli_str(train_flags, N_TRAIN_FLAGS, "gpu");
    int gpu_ids[64], n_gpu_ids = 0;
    if (device_parse_gpus(gpu_flag, gpu_ids, 64, &n_gpu_ids)) {
        fprintf(stderr, "crema train: %s\n", crema_errmsg());
        return 1;
    }
    if (n_gpu_ids > 1 && dopt.cluster_size == 0)
        dopt.cluster_size = n_gpu_ids;
    struct dist_config dcfg;
    int mode = cli_dist_setup("train", &dopt, &dcfg);
    if (mode < 0)
        return 1;
    if (mode == CLI_DIST_LAUNCH) {
        if (cli_check_file("train", "solver", solver_file))
            return 1;
        /* no GPU at all, or one that does not exist: say so before starting ranks */
        int have = n_gpu_ids ? device_gpu_count() : 0;
        for (int i = 0; i < n_gpu_ids; i++)
            if (gpu_ids[i] >= have) {
                const struct backend *probe = NULL;
                char id[16];
                snprintf(id, sizeof id, "gpu:%d", gpu_ids[i]);
                device_open(id, &probe);
                fprintf(stderr, "crema train: -gpu %s: %s\n", gpu_flag, crema_errmsg());
                return 1;
            }
        return cli_dist_launch("train", argc, argv, &dcfg);
    }
    /* ranks other than 0 log nothing but errors */
    FILE *log = mode == CLI_DIST_RANK && dcfg.rank != 0 ? NULL : stderr;
    const char *who = "";
    char who_buf[32];
    if (mode == CLI_DIST_RANK) {
        snprintf(who_buf, sizeof who_buf, "rank %d: ", dcfg.rank);
        who = who_buf;
    }
    struct effects eff;
    if (parse_effect("sigint_effect", cli_str(train_flags, N_TRAIN_FLAGS, "sigint_effect"), &eff.sigint) ||
        parse_effect("sighup_effect", cli_str(train_flags, N_TRAIN_FLAGS, "sighup_effect"), &eff.sighup))
        return 1;

    Caffe__SolverParameter *param = NULL;
    int rc = solver_read_param(solver_file, &param);
    if (rc) {
        fprintf(stderr, "crema train: %s%s\n", who, crema_errmsg());
        return 1;
    }
    /* Caffe's rule: -gpu wins; else solver_mode GPU asks for device_id and
     * falls back to the CPU with a warning where there is no GPU. */
    const struct backend *be = NULL;
    int n_gpus = 0;
    char my_gpu[16] = "";
    if (n_gpu_ids > 0)
        snprintf(my_gpu, sizeof my_gpu, "%d", gpu_ids[(mode == CLI_DIST_RANK ? dcfg.rank : 0) % n_gpu_ids]);
    rc = device_choose(my_gpu, param->has_solver_mode && param->solver_mode == CAFFE__SOLVER_PARAMETER__SOLVER_MODE__GPU,
                       param->device_id, log, &be, &n_gpus);
    if (rc) {
        fprintf(stderr, "crema train: %s%s\n", who, crema_errmsg());
        proto_free(&param->base);
        return 1;
    }
    if (!rc)
        rc = device_set_precision(be, cli_str(train_flags, N_TRAIN_FLAGS, "precision"));
    if (rc) {
        fprintf(stderr, "crema train: %s%s\n", who, crema_errmsg());
        proto_free(&param->base);
        return 1;
    }
    if (log && n_gpus)
        fprintf(log, "Using GPUs %s\n", n_gpu_ids ? gpu_flag : my_gpu[0] ? my_gpu : "0");
    long long iterations = cli_int(train_flags, N_TRAIN_FLAGS, "iterations");
    if (iterations < -1 || iterations > INT32_MAX) {
        proto_free(&param->base);
        fprintf(stderr, "crema train: -iterations must be 0..%d (or -1: the solver's max_iter), got %lld\n",
                INT32_MAX, iterations);
        return 1;
    }
    if (iterations >= 0) {
        param->has_max_iter = true;
        param->max_iter = (int32_t)iterations;
    }
    if (set_train_state(param, cli_int(train_flags, N_TRAIN_FLAGS, "level"),
                        cli_str(train_flags, N_TRAIN_FLAGS, "stage"))) {
        proto_free(&param->base);
        fprintf(stderr, "crema train: out of memory\n");
        return 1;
    }
    if (*weights) {
        /* -weights replaces the solver's own `weights`, as caffe.cpp does. */
        for (size_t i = 0; i < param->n_weights; i++)
            free(param->weights[i]);
        free(param->weights);
        param->weights = malloc(sizeof *param->weights);
        param->n_weights = param->weights ? 1 : 0;
        if (param->weights)
            param->weights[0] = strdup(weights);
        if (!param->weights || !param->weights[0]) {
            proto_free(&param->base);
            fprintf(stderr, "crema train: out of memory\n");
            return 1;
        }
    }
    char *text = NULL;
    size_t len = 0;
    if (log && proto_print_text(&param->base, &text, &len) == 0)
        fprintf(log, "Initializing solver from parameters: \n%s", text);
    free(text);

    /* Connect first: a rank that cannot build its solver then leaves the
     * job at once and the others name it, instead of waiting to time out. */
    struct dist_comm *comm = NULL;
    if (mode == CLI_DIST_RANK && cli_dist_connect("train", &dcfg, &comm)) {
        proto_free(&param->base);
        return 1;
    }
    struct solver *s = NULL;
    rc = solver_create(param, log, &s);
    proto_free(&param->base);
    if (!rc && !be->host_memory)
        rc = solver_set_backend(s, be);
    if (!rc && comm)
        rc = solver_set_dist(s, comm);
    if (rc) {
        fprintf(stderr, "crema train: %s%s\n", who, crema_errmsg());
        solver_free(s);
        dist_comm_free(comm);
        return 1;
    }
    got_sigint = got_sighup = 0;
    if (install(SIGINT) || install(SIGHUP)) {
        solver_free(s);
        dist_comm_free(comm);
        fprintf(stderr, "crema train: cannot install the signal handlers\n");
        return 1;
    }
    s->action = check_signals;
    s->action_ctx = &eff;
    if (log)
        fprintf(log, "Starting Optimization\n");
    if (*snapshot && log)
        fprintf(log, "Resuming from %s\n", snapshot);
    rc = solver_solve(s, *snapshot ? snapshot : NULL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    if (rc)
        fprintf(stderr, "crema train: %s%s\n", who, crema_errmsg());
    solver_free(s);
    dist_comm_free(comm);
    if (rc)
        return 1;
    /* Caffe logs this twice (its solver, then caffe.cpp), told apart by
     * glog's file:line prefixes. Without them, two lines in the output of a
     * multi-rank job read as two ranks finishing: there rank 0's solver line
     * is the only one. */
    if (log && mode != CLI_DIST_RANK)
        fprintf(log, "Optimization Done.\n");
    return 0;
}
