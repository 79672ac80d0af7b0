/* The crema command line: one function per subcommand, and Caffe-style flag
 * parsing (-x v, --x v, --x=v) shared by all of them. */
#ifndef CREMA_TOOLS_CLI_H
#define CREMA_TOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "crema.h"

/* FLAG_LIST: a string flag that may be repeated; cli_str gives the last
 * value, cli_list every one. */
enum flag_type { FLAG_STRING, FLAG_INT, FLAG_DOUBLE, FLAG_BOOL, FLAG_LIST };

struct flag {
    const char *name;
    enum flag_type type;
    const char *def; /* default, as text ("" for none) */
    const char *help;
    /* filled by cli_parse_flags */
    const char *value;
    bool set;
};

/* Parses argv[start..] into flags; positional arguments are returned in
 * pos (at most max_pos). Unknown flags and bad values print one line and
 * return non-zero. */
int cli_parse_flags(const char *cmd, int argc, char **argv, int start, struct flag *flags, int n_flags,
                    const char **pos, int max_pos, int *n_pos);
const char *cli_str(const struct flag *flags, int n, const char *name);
long long cli_int(const struct flag *flags, int n, const char *name);
double cli_double(const struct flag *flags, int n, const char *name);
bool cli_bool(const struct flag *flags, int n, const char *name);
/* The values of every occurrence of FLAG_LIST flag `name`, in order (at most
 * max_out); call after cli_parse_flags succeeded with the same arguments.
 * Returns the count, or -1 when the arguments do not parse. */
int cli_list(const char *cmd, int argc, char **argv, int start, struct flag *flags, int n_flags,
             const char *name, const char **out, int max_out);
void cli_print_flags(const char *cmd, const char *usage, const struct flag *flags, int n);
/* A command's start: cli_parse_flags from argv[2], then -help (the flag list
 * under usage). Returns 1 when the arguments are bad (the message printed),
 * 0 when help was printed, -1 when the command goes on. */
int cli_parse_command(const char *cmd, const char *usage, int argc, char **argv, struct flag *flags, int n_flags,
                      const char **pos, int max_pos, int *n_pos);
/* cli_parse_command for a command that takes no positional arguments. */
int cli_parse_command_flags(const char *cmd, const char *usage, int argc, char **argv, struct flag *flags,
                            int n_flags);

/* Subcommands: each returns the process exit code. */
int cmd_upgrade_net(int argc, char **argv);
int cmd_upgrade_solver(int argc, char **argv);
/* data tools (data_tools.c) */
int cmd_convert_mnist(int argc, char **argv);
int cmd_convert_imageset(int argc, char **argv);
int cmd_compute_mean(int argc, char **argv);
int cmd_db_info(int argc, char **argv);
/* training (train.c) */
int cmd_train(int argc, char **argv);
/* net tools (forward.c, time.c); cli_open_net opens -model with -weights
 * ("" for none) in -phase (TRAIN or TEST), printing why it could not. */
int cli_open_net(const char *cmd, const char *model, const char *weights, const char *phase, bool allow_unmatched,
                 crema_net **out);
int cmd_forward(int argc, char **argv);
int cmd_time(int argc, char **argv);

/* ---- scoring and features (netload.c, test_cmd.c, features.c) ---- */
struct net;
/* One line naming the flag when path is empty, not a local path or file:
 * URI, or missing; returns non-zero then. */
int cli_check_file(const char *cmd, const char *flag, const char *path);
/* TRAIN or TEST into a Caffe__Phase value. */
int cli_parse_phase(const char *cmd, const char *v, int *phase);
/* Builds the net of `model` for phase/level/stages (comma-separated) and
 * loads `weights` (comma-separated; NULL or "" for none; a file that gives
 * no layer weights fails unless allow_unmatched); prints one line and
 * returns non-zero on failure. */
int cli_load_net(const char *cmd, const char *model, const char *weights, int phase, int level,
                 const char *stages, bool allow_unmatched, struct net **out);

/* Caffe's test loop: per-output means over `iterations` forwards (each
 * batch's values printed to out as "Batch i, name = v" unless out is NULL). */
struct cli_scores {
    float loss;
    size_t n;
    float *mean;
    int *blob; /* the net blob of each score */
};
int cli_score_net(struct net *net, long long iterations, FILE *out, struct cli_scores *sc);
void cli_print_scores(struct net *net, const struct cli_scores *sc, FILE *out);
void cli_scores_free(struct cli_scores *sc);

/* A features or CaffeOnSpark-test run over the net's whole test source. */
struct extract_job {
    const char *model, *weights;
    const char *blobs;  /* comma-separated (features mode) */
    const char *label;  /* "" or a blob added to the records */
    const char *output; /* path or file: URI; "" for standard output */
    const char *format; /* json, csv, npy */
    long long iterations; /* batches; -1: every sample once */
    int level;
    const char *stages;
    bool test_mode; /* CaffeOnSpark -test: "name: mean,..." lines of every output */
    bool allow_unmatched; /* weights that give no layer anything are not an error */
};
int cli_check_output(const char *cmd, const char *output, const char *format);
int cli_extract(const char *cmd, const struct extract_job *job);

int cmd_test(int argc, char **argv);
/* ONNX export (export_onnx.c) */
int cmd_export_onnx(int argc, char **argv);
int cmd_features(int argc, char **argv);
int cmd_device_query(int argc, char **argv);

/* -gpu ID for the scoring tools: moves the net there (nothing when gpu is
 * empty); prints the error and returns 1 when it cannot. */
int cli_net_to_gpu(const char *cmd, const char *gpu, struct net *net);
int cmd_plot(int argc, char **argv);
/* The CaffeOnSpark command line: crema -train|-test|-features ... (cos.c). */
int cmd_cos(int argc, char **argv);
void cos_print_help(void);

/* Training progress (progress.c): a live line on a terminal, Caffe's log
 * lines elsewhere, and TensorBoard scalars when tensorboard is a directory.
 * Takes over the solver's after_iter/after_test hooks (and its log on a
 * terminal). finish closes the event file; returns its status. */
struct solver;
struct progress;
int cli_progress_attach(const char *cmd, struct solver *s, const char *tensorboard, struct progress **out);
int cli_progress_finish(struct progress *p);

/* Distributed training (dist_launch.c). The flags a training command takes;
 * unset ones come from the environment (mpirun, srun, CREMA_*). */
struct dist_config;
struct dist_comm;
struct cli_dist_opts {
    long long cluster_size; /* 0: from the environment, else 1 */
    long long rank;         /* -1: from the environment, or start every rank here */
    long long timeout_s;
    const char *rendezvous, *secret, *iface, *connection;
};
enum { CLI_DIST_NONE = 0, CLI_DIST_LAUNCH = 1, CLI_DIST_RANK = 2 };
/* Fills cfg; returns CLI_DIST_NONE (one process), CLI_DIST_LAUNCH (start
 * cfg->size ranks here with cli_dist_launch), CLI_DIST_RANK (this process is
 * cfg->rank), or -1 after printing why the flags are wrong. */
int cli_dist_setup(const char *cmd, const struct cli_dist_opts *o, struct dist_config *cfg);
/* Runs argv again as ranks 0..size-1 (CREMA_RANK/SIZE/MASTER/SECRET in their
 * environment), waits for all; when one fails, the others are given the
 * timeout to report it, then killed. Returns the exit code, naming the rank
 * that failed first. */
int cli_dist_launch(const char *cmd, int argc, char **argv, const struct dist_config *cfg);
/* dist_comm_create, printing the error with the rank. */
int cli_dist_connect(const char *cmd, const struct dist_config *cfg, struct dist_comm **out);

#endif
