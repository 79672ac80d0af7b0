/* Training speed: iterations per second of `make demo`'s LeNet on
 * Fashion-MNIST (LMDB Data layer, SGD with Caffe's lenet_solver settings),
 * no test passes, no snapshots; beside Caffe 1.0's 46.5 it/s measured on
 * this machine type, and the machine's SGEMM rate.
 *
 *   bench_train [-threads T] [-test] [iterations]
 *
 * -threads: crema's threads (default 1, Caffe's figure being one BLAS
 * thread). -test: after training, the accuracy on the 10,000 test images
 * (the demo's test net), as `make demo` reports it. */
#include <cblas.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "cpu/threads.h"
#include "proto/proto_io.h"
#include "solvers/solver.h"
#include "util/err.h"

#define CAFFE_IT_PER_S 46.5
/* The SGEMM rate (1 thread, GFLOP/s) of the machine Caffe was timed on
 * (../shared/bench/README.md): a busy machine is judged by its own. */
#define CAFFE_MACHINE_SGEMM 95.0

static float accuracy = -1;

static int note_accuracy(struct solver *s, int net_id, int n, const char *const *names, const float *values,
                         void *ctx)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], "accuracy") == 0)
            accuracy = values[i];
    return 0;
}

int main(int argc, char **argv)
{
    int iters = 500, threads = 1;
    bool test = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "-test") == 0)
            test = true;
        else
            iters = atoi(argv[i]);
    }
    if (iters < 10)
        iters = 10;
    if (threads < 1 || threads > CPU_MAX_THREADS || cpu_set_num_threads(threads)) {
        fprintf(stderr, "bench_train: -threads 1..%d\n", CPU_MAX_THREADS);
        return 2;
    }
    const char *solver_file = "demo/lenet_solver.prototxt";
    if (access("build/demo/fashion_train_lmdb", F_OK) != 0) {
        fprintf(stderr, "bench_train: build/demo/fashion_train_lmdb is missing; run `make demo` (or its "
                        "convert-mnist steps) first, from the repository root\n");
        return 1;
    }
    Caffe__SolverParameter *p = NULL;
    if (solver_read_param(solver_file, &p)) {
        fprintf(stderr, "bench_train: %s\n", crema_errmsg());
        return 1;
    }
    /* The demo's net has Caffe's batch 64 split over two ranks (32 each):
     * measure one process at Caffe's 64, as Caffe's figure was. */
    Caffe__NetParameter *net = NULL;
    if (proto_read_text("demo/lenet_train_test.prototxt", &caffe__net_parameter__descriptor,
                        (ProtobufCMessage **)&net)) {
        fprintf(stderr, "bench_train: %s\n", crema_errmsg());
        proto_free(&p->base);
        return 1;
    }
    int batched = 0;
    for (size_t i = 0; i < net->n_layer; i++)
        if (net->layer[i]->data_param && net->layer[i]->n_include == 1 &&
            net->layer[i]->include[0]->phase == CAFFE__PHASE__TRAIN) {
            net->layer[i]->data_param->batch_size = 64;
            batched++;
        }
    if (batched != 1) {
        fprintf(stderr, "bench_train: expected one TRAIN Data layer in demo/lenet_train_test.prototxt, found %d\n",
                batched);
        proto_free(&net->base);
        proto_free(&p->base);
        return 1;
    }
    free(p->net);
    p->net = NULL;
    p->net_param = net; /* freed with p */
    /* Train only: no test passes during training, no snapshots, no display;
     * with -test one pass over the 10,000 test images (batches of 50) at
     * the end. */
    if (test && p->n_test_iter == 1) {
        p->test_iter[0] = 200;
    } else if (test) {
        fprintf(stderr, "bench_train: %s should have one test_iter\n", solver_file);
        proto_free(&p->base);
        return 1;
    } else {
        p->n_test_iter = 0;
    }
    p->test_interval = 1 << 30; /* never during training */
    p->has_test_initialization = 1;
    p->test_initialization = false;
    p->snapshot = 0;
    p->snapshot_after_train = false;
    p->display = 0;
    p->max_iter = iters + 20;
    struct solver *s = NULL;
    int rc = solver_create(p, NULL, &s);
    if (!rc)
        rc = solver_step(s, 20); /* warm up: buffers, prefetch, caches */
    double t0 = bench_now();
    if (!rc)
        rc = solver_step(s, iters);
    double t = bench_now() - t0;
    if (!rc && test) {
        s->after_test = note_accuracy;
        rc = solver_test_all(s);
    }
    solver_free(s);
    proto_free(&p->base);
    if (rc) {
        fprintf(stderr, "bench_train: %s\n", crema_errmsg());
        return 1;
    }
    double ips = iters / t;
    openblas_set_num_threads(1); /* the yardstick of Caffe's figure: one thread */
    double gflops = bench_sgemm_gflops(1024, 3);
    printf("train LeNet/Fashion-MNIST (batch 64, SGD, %d crema thread%s): %.1f it/s over %d iterations "
           "(Caffe 1.0, 1 thread: %.1f it/s); ratio crema/caffe %.2f; 1-thread sgemm %.1f GFLOP/s here vs %.0f "
           "there: ratio at equal sgemm %.2f\n",
           threads, threads > 1 ? "s" : "", ips, iters, CAFFE_IT_PER_S, ips / CAFFE_IT_PER_S, gflops,
           CAFFE_MACHINE_SGEMM, (ips / CAFFE_IT_PER_S) / (gflops / CAFFE_MACHINE_SGEMM));
    if (test)
        printf("test accuracy after %d iterations: %.4f\n", iters + 20, accuracy);
    return 0;
}
