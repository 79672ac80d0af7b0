/* Training speed: iterations per second of `make demo`'s LeNet on
 * Fashion-MNIST (LMDB Data layer, SGD with Caffe's lenet_solver settings),
 * one BLAS thread, no test passes, no snapshots; beside Caffe 1.0's 46.5
 * it/s measured on this machine type, and the machine's SGEMM rate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "proto/proto_io.h"
#include "solvers/solver.h"
#include "util/err.h"

#define CAFFE_IT_PER_S 46.5
/* The SGEMM rate (1 thread, GFLOP/s) of the machine Caffe was timed on
 * (../shared/bench/README.md): a busy machine is judged by its own. */
#define CAFFE_MACHINE_SGEMM 95.0

void openblas_set_num_threads(int n);

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 500;
    if (iters < 10)
        iters = 10;
    openblas_set_num_threads(1);
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
    /* Train only: no test nets, no snapshots, no display. */
    p->n_test_iter = 0;
    p->test_interval = 0;
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
    solver_free(s);
    proto_free(&p->base);
    if (rc) {
        fprintf(stderr, "bench_train: %s\n", crema_errmsg());
        return 1;
    }
    double ips = iters / t;
    double gflops = bench_sgemm_gflops(1024, 3);
    printf("train LeNet/Fashion-MNIST (batch 64, SGD, 1 BLAS thread): %.1f it/s over %d iterations "
           "(Caffe 1.0: %.1f it/s); ratio crema/caffe %.2f; sgemm %.1f GFLOP/s here vs %.0f there: "
           "ratio at equal sgemm %.2f\n",
           ips, iters, CAFFE_IT_PER_S, ips / CAFFE_IT_PER_S, gflops, CAFFE_MACHINE_SGEMM,
           (ips / CAFFE_IT_PER_S) / (gflops / CAFFE_MACHINE_SGEMM));
    return 0;
}
