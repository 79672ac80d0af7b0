/* One training iteration (forward, backward, SGD momentum update) of
 * Caffe's benchmark nets on a GPU: `bench_gpu [-gpu N] [-precision P]
 * [-iters K] [nets...]` prints one line per net,
 *   crema <net> <precision> <median ms/iter> <min> <max> <peak MiB>
 * the median and spread over 5 timed loops of K iterations each, after a
 * warm-up. bench/bench_gpu.py runs it beside PyTorch on the same nets and
 * prints the ratios; bench_gpu alone is enough to time crema. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "net/device.h"
#include "proto/proto_io.h"
#include "solvers/solver.h"
#include "util/err.h"

#define LOOPS 5

struct bench_net {
    const char *name, *file;
    int iters; /* per timed loop */
};

static const struct bench_net nets[] = {
    { "lenet", "lenet.prototxt", 200 },
    { "cifar10_quick", "cifar10_quick.prototxt", 200 },
    { "caffenet", "caffenet.prototxt", 10 },
    { "resnet50", "resnet50.prototxt", 10 },
    /* LeNet fed by a Data layer (an LMDB, prefetched on the host): against
     * "lenet" (constant data) it shows what the data costs the GPU. Its
     * train net is $CREMA_BENCH_LENET_LMDB; run only when named. */
    { "lenet_lmdb", NULL, 200 },
};
#define N_NETS ((int)(sizeof nets / sizeof nets[0]))

/* bench/<file> in this tree, else $CREMA_SHARED/bench/<file>. */
static void net_path(const char *file, char *out, size_t n)
{
    snprintf(out, n, "bench/nets/%s", file);
    FILE *f = fopen(out, "r");
    if (f) {
        fclose(f);
        return;
    }
    const char *shared = getenv("CREMA_SHARED");
    snprintf(out, n, "%s/bench/%s", shared && *shared ? shared : "../shared", file);
}

static int run_net(const struct bench_net *bn, const struct backend *be, const char *precision, int iters)
{
    char path[4096];
    if (bn->file) {
        net_path(bn->file, path, sizeof path);
    } else {
        const char *f = getenv("CREMA_BENCH_LENET_LMDB");
        if (!f || !*f) {
            printf("crema %s %s error set CREMA_BENCH_LENET_LMDB to a LeNet train net over an LMDB\n", bn->name,
                   precision);
            return CREMA_ERR_INVALID;
        }
        snprintf(path, sizeof path, "%s", f);
    }
    Caffe__SolverParameter sp;
    bench_sgd_solver(&sp, path);
    struct solver *s = NULL;
    int rc = solver_create(&sp, NULL, &s);
    if (!rc)
        rc = solver_set_backend(s, be);
    if (!rc && strcmp(precision, "tf32") == 0)
        rc = be->set_tf32 ? be->set_tf32(be, true) : err_set(CREMA_ERR_UNSUPPORTED, "%s has no TF32", be->name);
    else if (!rc && strcmp(precision, "fp32") != 0)
        rc = err_set(CREMA_ERR_UNSUPPORTED, "precision %s", precision);
    /* warm-up: every buffer allocated, every algorithm chosen */
    if (!rc)
        rc = solver_step(s, 3);
    if (!rc)
        rc = be->sync(be);
    double t[LOOPS];
    for (int l = 0; l < LOOPS && !rc; l++) {
        double t0 = bench_now();
        rc = solver_step(s, iters);
        if (!rc)
            rc = be->sync(be);
        t[l] = (bench_now() - t0) * 1e3 / iters;
    }
    size_t in_use = 0, peak = 0;
    if (!rc && be->memory)
        be->memory(be, &in_use, &peak);
    if (be->set_tf32)
        be->set_tf32(be, false);
    solver_free(s);
    if (rc) {
        printf("crema %s %s error %s\n", bn->name, precision, crema_errmsg());
        return rc;
    }
    bench_median(t, LOOPS);
    printf("crema %s %s %.4f %.4f %.4f %.1f\n", bn->name, precision, t[LOOPS / 2], t[0], t[LOOPS - 1],
           (double)peak / (1 << 20));
    fflush(stdout);
    return CREMA_OK;
}

int main(int argc, char **argv)
{
    const char *gpu = "0", *precision = "fp32";
    int iters = 0, first_net = argc;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-gpu") == 0 && i + 1 < argc)
            gpu = argv[++i];
        else if (strcmp(argv[i], "-precision") == 0 && i + 1 < argc)
            precision = argv[++i];
        else if (strcmp(argv[i], "-iters") == 0 && i + 1 < argc)
            iters = atoi(argv[++i]);
        else {
            first_net = i;
            break;
        }
    }
    const struct backend *be = NULL;
    char spec[64];
    snprintf(spec, sizeof spec, "gpu:%s", gpu);
    if (device_open(spec, &be)) {
        fprintf(stderr, "bench_gpu: %s\n", crema_errmsg());
        return 77;
    }
    int failed = 0;
    for (int n = 0; n < N_NETS; n++) {
        bool want = first_net >= argc && nets[n].file;
        for (int a = first_net; a < argc; a++)
            want |= strcmp(argv[a], nets[n].name) == 0;
        if (want && run_net(&nets[n], be, precision, iters > 0 ? iters : nets[n].iters))
            failed++;
    }
    return failed ? 1 : 0;
}
