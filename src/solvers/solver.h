/* Caffe's Solver: builds the train and test nets from a SolverParameter,
 * runs the training loop (Step/Solve), tests, snapshots and restores, with
 * Caffe's log lines. The update arithmetic is solver_update's. */
#ifndef CREMA_SOLVERS_SOLVER_H
#define CREMA_SOLVERS_SOLVER_H

#include <stdbool.h>
#include <stdio.h>

#include "caffe.pb-c.h"
#include "net/net.h"
#include "solvers/solver_update.h"

struct dist_comm;
struct solver_dist;

/* What a request from outside (a signal) asks the loop to do. */
enum solver_action { SOLVER_ACTION_NONE = 0, SOLVER_ACTION_STOP, SOLVER_ACTION_SNAPSHOT };

struct solver {
    Caffe__SolverParameter *param; /* owned copy */
    struct net *net;               /* the train net */
    int n_test_nets;
    struct net **test_nets;
    struct solver_update update; /* holds iter, current_step and history */
    float *lr_mult, *decay_mult;
    struct tensor **params;

    float *losses; /* the last average_loss losses, for the smoothed loss */
    int n_losses;
    float smoothed_loss;
    bool requested_early_exit;

    FILE *log; /* Caffe's INFO lines; NULL: none */
    /* Polled once per iteration (and per test batch); NULL: never. */
    enum solver_action (*action)(void *ctx);
    void *action_ctx;
    /* Called after each iteration's update (and snapshot); for tests and
     * progress. A non-zero return stops the loop with that status. */
    int (*after_iter)(struct solver *s, void *ctx);
    void *after_iter_ctx;
    /* Called after each test of test net `net_id` with every output's mean
     * (Caffe's "Test net output #i" values; names[i] is its blob), for
     * progress displays and event files. A non-zero return stops the loop. */
    int (*after_test)(struct solver *s, int net_id, int n, const char *const *names, const float *values,
                      void *ctx);
    void *after_test_ctx;
    float rate; /* the learning rate of the last update */
    /* Set by solver_set_dist: this solver is one rank of a data-parallel
     * job. NULL: one process. */
    struct solver_dist *dist;
};

/* Reads a solver prototxt as Caffe's ReadSolverParamsFromTextFileOrDie:
 * text, solver_type upgrade, and snapshot_prefix defaulting to the file name
 * without extension (or prefix/stem when the prefix is a directory). */
int solver_read_param(const char *path, Caffe__SolverParameter **out);

/* Builds the solver (copies param): train net, test nets, then loads every
 * `weights` entry (each a comma-separated list of files, as Caffe's
 * LoadNetWeights). random_seed < 0 seeds from the clock. log may be NULL. */
int solver_create(const Caffe__SolverParameter *param, FILE *log, struct solver **out);
void solver_free(struct solver *s);

/* Makes the train and test nets and the update compute on `be` (the CPU
 * backend unless called); layers without a path for it are named on the
 * solver's log. */
int solver_set_backend(struct solver *s, const struct backend *be);

/* Makes the solver one rank of a synchronous data-parallel job over comm
 * (not owned; it must outlive the solver), CaffeOnSpark's semantics: checks
 * that every rank has the same solver and nets (dist_check_same), makes
 * every Data layer of the train and test nets read its rank's shard, and
 * gives every rank rank 0's weights, history and iteration. From then on
 * each iteration's gradients (the batch size is per rank) are summed across
 * ranks in buckets while backward runs and divided by the number of ranks,
 * so every rank applies the same update; tests average every output over
 * the ranks' shards; signals are agreed on by all ranks; only rank 0 writes
 * snapshots; solver_solve restores a -snapshot on rank 0 and broadcasts it. */
int solver_set_dist(struct solver *s, struct dist_comm *comm);

/* Caffe's Solver::Step: iters iterations (tests, updates, snapshots). */
int solver_step(struct solver *s, int iters);
/* Caffe's Solver::Solve: restore (resume_file may be NULL), step to
 * max_iter, snapshot after train, the final loss and test lines. */
int solver_solve(struct solver *s, const char *resume_file);

/* Tests every test net (Caffe's TestAll). */
int solver_test_all(struct solver *s);

/* Writes <prefix>_iter_N.caffemodel + .solverstate (or the .h5 pair), each
 * atomically; the state also carries the data layers' positions. */
int solver_snapshot(struct solver *s);
/* Restores iteration, lr step, history, weights (learned_net) and, for
 * crema's states, the data positions. Binary, or HDF5 when the name ends in
 * ".h5". */
int solver_restore(struct solver *s, const char *state_file);

/* The file names a snapshot at the current iteration writes (malloc'd). */
char *solver_snapshot_name(const struct solver *s, const char *extension);

#endif
