/* crema's side of the CPU peer benchmark (bench/bench_cpu.py runs it beside
 * PyTorch): training iterations (forward, backward, SGD momentum update) of
 * Caffe's benchmark nets on crema's CPU backend, and the sgemm yardstick.
 *
 *   bench_cpu [-threads T] [-loops L] [-iters K] [-warmup W] [-fwdbwd] [-sgemm] [nets...]
 *
 * -threads: crema's pool (CREMA_NUM_THREADS; OpenBLAS runs inside it on one
 * thread). -sgemm: first OpenBLAS's own 2048^3 sgemm on T threads, the
 * bound's yardstick. -fwdbwd: also time forward+backward alone (bench_net's
 * measure). Prints one line per item:
 *   sgemm <threads> <GFLOP/s>
 *   crema <net> <threads> <median ms/iter> <min> <max> <GFLOP/iter> <peak RSS MiB> <RSS before the net MiB>
 *       <Caffe's layout MiB> <page faults/iter> <fwd+bwd median ms, or -1>
 * Times are per iteration over L timed loops of K iterations after W
 * warm-up iterations. Peak RSS is the process's (run one net per process to
 * read it as that net's). Caffe's layout is what Caffe 1.0 keeps resident
 * for the same training net: every blob's data and diff, each parameter's
 * data, diff and momentum, each convolution's column buffer (one image),
 * LRN's scale, max pooling's index mask, Dropout's mask. Page faults per
 * timed iteration show allocation in the steady state (fresh pages): 0 when
 * every buffer is reused. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench_util.h"
#include "cpu/threads.h"
#include "proto/proto_io.h"
#include "solvers/solver.h"
#include "util/err.h"

struct bench_case {
    const char *name, *file;
    int iters, loops, warmup; /* defaults */
};

static const struct bench_case cases[] = {
    { "lenet", "lenet.prototxt", 50, 5, 5 },
    { "cifar10_quick", "cifar10_quick.prototxt", 10, 5, 2 },
    { "caffenet", "caffenet.prototxt", 1, 3, 1 },
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

static long page_faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt + ru.ru_majflt;
}

/* VmHWM, the high-water mark of this process's own memory: ru_maxrss
 * would also carry the parent's across fork and exec (a Python parent that
 * has imported torch, say). */
static double peak_rss_mib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kib = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %lf", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib / 1024.0;
}

static double rss_mib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return (double)rss * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

/* Bytes Caffe 1.0 holds for this training net (see the head comment). */
static double caffe_layout_mib(const struct net *net)
{
    double floats = 0;
    for (int i = 0; i < net->n_blobs; i++)
        floats += 2.0 * (double)net->blobs[i]->count;
    for (int i = 0; i < net->n_learnable; i++)
        floats += 3.0 * (double)net->learnable[i].tensor->count;
    for (int i = 0; i < net->n_layers; i++) {
        const struct net_layer *nl = &net->layers[i];
        const Caffe__LayerParameter *p = nl->layer->param;
        if (strcmp(p->type, "Convolution") == 0 && nl->layer->n_blobs > 0 && nl->n_top > 0 &&
            nl->top[0]->num_axes == 4) {
            /* Caffe's col_buffer_: kernel_dim * group rows of the output's pixels */
            uint32_t group = p->convolution_param && p->convolution_param->group ? p->convolution_param->group : 1;
            floats += (double)tensor_count_range(nl->layer->blobs[0], 1, 4) * group *
                      (double)tensor_count_range(nl->top[0], 2, 4);
        }
        else if (strcmp(p->type, "LRN") == 0 && nl->n_bottom > 0)
            floats += (double)nl->bottom[0]->count;
        else if (strcmp(p->type, "Pooling") == 0 && nl->n_top > 0 &&
                 (!p->pooling_param || p->pooling_param->pool == CAFFE__POOLING_PARAMETER__POOL_METHOD__MAX))
            floats += (double)nl->top[0]->count;
        else if (strcmp(p->type, "Dropout") == 0 && nl->n_bottom > 0)
            floats += (double)nl->bottom[0]->count;
    }
    return floats * 4.0 / (1024.0 * 1024.0);
}

static int run_case(const struct bench_case *bc, const char *dir, int threads, int iters, int loops, int warmup,
                    bool fwdbwd)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, bc->file);
    Caffe__SolverParameter sp;
    bench_sgd_solver(&sp, path);
    double rss0 = rss_mib();
    struct solver *s = NULL;
    int rc = solver_create(&sp, NULL, &s);
    if (!rc)
        rc = solver_step(s, warmup); /* every buffer allocated */
    double ffl = 0, bfl = 0, layout = 0;
    if (!rc) {
        bench_net_flops(s->net, &ffl, &bfl);
        layout = caffe_layout_mib(s->net);
    }
    double *t = calloc((size_t)loops, sizeof *t), *tfb = calloc((size_t)loops, sizeof *tfb);
    if (!t || !tfb)
        rc = rc ? rc : err_set(CREMA_ERR_NOMEM, "out of memory");
    long faults = 0;
    for (int l = 0; l < loops && !rc; l++) {
        long f0 = page_faults();
        double t0 = bench_now();
        rc = solver_step(s, iters);
        t[l] = (bench_now() - t0) * 1e3 / iters;
        faults += page_faults() - f0;
    }
    /* Forward and backward alone (bench_net's measure), without the update. */
    for (int l = 0; l < loops && !rc && fwdbwd; l++) {
        double t0 = bench_now();
        float loss;
        for (int i = 0; i < iters && !rc; i++)
            rc = net_forward(s->net, &loss) || net_backward(s->net);
        tfb[l] = (bench_now() - t0) * 1e3 / iters;
    }
    solver_free(s);
    if (rc) {
        printf("crema %s %d error %s\n", bc->name, threads, crema_errmsg());
        free(t);
        free(tfb);
        return rc;
    }
    double mt = bench_median(t, loops);
    printf("crema %s %d %.4f %.4f %.4f %.4f %.1f %.1f %.1f %.2f %.4f\n", bc->name, threads, mt, t[0], t[loops - 1],
           (ffl + bfl) * 1e-9, peak_rss_mib(), rss0, layout, (double)faults / ((double)loops * iters),
           fwdbwd ? bench_median(tfb, loops) : -1.0);
    fflush(stdout);
    free(t);
    free(tfb);
    return CREMA_OK;
}

int main(int argc, char **argv)
{
    int threads = 0, iters = 0, loops = 0, warmup = -1, first = argc;
    bool sgemm = false, fwdbwd = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "-iters") == 0 && i + 1 < argc)
            iters = atoi(argv[++i]);
        else if (strcmp(argv[i], "-loops") == 0 && i + 1 < argc)
            loops = atoi(argv[++i]);
        else if (strcmp(argv[i], "-warmup") == 0 && i + 1 < argc)
            warmup = atoi(argv[++i]);
        else if (strcmp(argv[i], "-sgemm") == 0)
            sgemm = true;
        else if (strcmp(argv[i], "-fwdbwd") == 0)
            fwdbwd = true;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: bench_cpu [-threads T] [-loops L] [-iters K] [-warmup W] [-fwdbwd] [-sgemm] [lenet|cifar10_quick|caffenet ...]\n");
            return 2;
        } else {
            first = i;
            break;
        }
    }
    if (threads < 0 || threads > CPU_MAX_THREADS || iters < 0 || loops < 0) {
        fprintf(stderr, "bench_cpu: -threads 1..%d, -iters and -loops positive\n", CPU_MAX_THREADS);
        return 2;
    }
    if (cpu_set_num_threads(threads)) {
        fprintf(stderr, "bench_cpu: %s\n", crema_errmsg());
        return 2;
    }
    threads = cpu_num_threads();
    if (sgemm) {
        openblas_set_num_threads(threads);
        printf("sgemm %d %.2f\n", threads, bench_sgemm_gflops(2048, 7));
        openblas_set_num_threads(1);
        fflush(stdout);
    }
    const char *shared = getenv("CREMA_SHARED");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/bench", shared && *shared ? shared : "../shared");
    int failed = 0;
    for (int c = 0; c < N_CASES; c++) {
        bool want = first >= argc && !sgemm;
        for (int a = first; a < argc; a++)
            want |= strcmp(argv[a], cases[c].name) == 0;
        if (want && run_case(&cases[c], dir, threads, iters ? iters : cases[c].iters,
                             loops ? loops : cases[c].loops, warmup >= 0 ? warmup : cases[c].warmup, fwdbwd))
            failed++;
    }
    return failed ? 1 : 0;
}
