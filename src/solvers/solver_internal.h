/* What the three parts of the solver share (solver.c: nets, the Step loop
 * and tests; solver_snapshot.c: snapshots and restore; solver_dist.c: the
 * data-parallel part). Private to src/solvers. */
#ifndef CREMA_SOLVERS_SOLVER_INTERNAL_H
#define CREMA_SOLVERS_SOLVER_INTERNAL_H

#include "dist/dist.h"
#include "solvers/solver.h"
#include "util/err.h"

#include <stdio.h>

#define LOG(s, ...)                                 \
    do {                                            \
        if ((s)->log) {                             \
            fprintf((s)->log, __VA_ARGS__);         \
            fflush((s)->log);                       \
        }                                           \
    } while (0)

/* Gradients travel in buckets of about this many bytes: big enough that a
 * call's latency is small next to its transfer, small enough that the first
 * buckets go out while backward still runs. */
#define GRAD_BUCKET_BYTES (4u << 20)

struct grad_bucket {
    int first, n_members; /* a range of solver_dist.order */
    int ready_layer;      /* its diffs are final once backward has done this layer */
    size_t count;
    float *buf;
    struct dist_request *req;
    struct tensor *dev; /* the bucket in device memory (sums on the device) */
};

struct solver_dist {
    struct dist_comm *comm;
    int rank, size;
    int *order; /* learnable indices, in the order backward finishes them */
    int n_buckets, next_bucket;
    struct grad_bucket *buckets;
    bool reducing; /* this backward pass is the one whose gradients are summed */
    /* Sums in device memory (the update's backend's comm table, NCCL);
     * NULL: on the host, through comm. */
    const struct backend *dev_be;
    void *dev_comm;
    bool dev_started;
};

/* strdup that reports failure through err_set. */
char *dup_str(const char *s);

/* The data layers' reading positions (solver_snapshot.c). */
void free_positions(Caffe__CremaDataPosition **pos, size_t n);
int collect_positions(struct solver *s, Caffe__CremaDataPosition ***out, size_t *n_out);
int apply_positions(struct solver *s, Caffe__CremaDataPosition **pos, size_t n);

/* The data-parallel part (solver_dist.c). */
int dist_agree_action(struct solver *s, enum solver_action *action);
int dist_finish_gradients(struct solver *s, int status);
int dist_sync_state(struct solver *s, bool positions);
void solver_dist_free(struct solver_dist *d);

#endif
