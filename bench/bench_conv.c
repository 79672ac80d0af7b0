/* The convolution layers of the benchmark nets alone, on each of the CPU's
 * convolution engines (cpu/conv.h): the AVX-512 and AVX2 micro-kernels and
 * OpenBLAS. bench/bench_cpu.py --layers times PyTorch's (oneDNN's) on the
 * same shapes beside it.
 *
 *   bench_conv [-threads T] [-reps R] [-only PREFIX] [engine...]
 *
 * prints one line per shape and engine:
 *   conv <shape> <engine> <threads> <forward ms> <backward data ms> <weight gradient ms> <GFLOP per pass>
 * each the median of R passes over the batch (CaffeNet's layers on 32
 * images, the others on their nets' batches). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "cpu/conv.h"
#include "cpu/threads.h"
#include "cpu/ukernel.h"
#include "util/err.h"

struct conv_case {
    const char *name;
    int num, groups, in_c, out_c, h, w, k, pad, stride;
};

static const struct conv_case cases[] = {
    { "lenet.conv1", 64, 1, 1, 20, 28, 28, 5, 0, 1 },
    { "lenet.conv2", 64, 1, 20, 50, 12, 12, 5, 0, 1 },
    { "cifar10_quick.conv1", 100, 1, 3, 32, 32, 32, 5, 2, 1 },
    { "cifar10_quick.conv2", 100, 1, 32, 32, 16, 16, 5, 2, 1 },
    { "cifar10_quick.conv3", 100, 1, 32, 64, 8, 8, 5, 2, 1 },
    { "caffenet.conv1", 32, 1, 3, 96, 227, 227, 11, 0, 4 },
    { "caffenet.conv2", 32, 2, 96, 256, 27, 27, 5, 2, 1 },
    { "caffenet.conv3", 32, 1, 256, 384, 13, 13, 3, 1, 1 },
    { "caffenet.conv4", 32, 2, 384, 384, 13, 13, 3, 1, 1 },
    { "caffenet.conv5", 32, 2, 384, 256, 13, 13, 3, 1, 1 },
};

static float *filled(size_t n, unsigned seed)
{
    float *v = malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; v && i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = (float)(seed >> 9) / 8388608.f - 0.5f;
    }
    return v;
}

static int run(const struct conv_case *c, const char *engine, int threads, int reps)
{
    struct conv_shape s = { .num_spatial_axes = 2, .num = c->num, .groups = c->groups, .in_channels = c->in_c,
                            .out_channels = c->out_c, .in_shape = { c->h, c->w }, .kernel = { c->k, c->k },
                            .pad = { c->pad, c->pad }, .stride = { c->stride, c->stride }, .dilation = { 1, 1 } };
    for (int a = 0; a < 2; a++)
        s.out_shape[a] = (s.in_shape[a] + 2 * c->pad - c->k) / c->stride + 1;
    size_t in = (size_t)c->num * c->in_c * c->h * c->w;
    size_t out = (size_t)c->num * c->out_c * s.out_shape[0] * s.out_shape[1];
    size_t wn = (size_t)c->out_c * (c->in_c / c->groups) * c->k * c->k;
    float *x = filled(in, 1), *y = filled(out, 2), *w = filled(wn, 3), *dw = filled(wn, 4), *dx = filled(in, 5);
    double *tf = calloc((size_t)reps, sizeof *tf), *td = calloc((size_t)reps, sizeof *td),
           *tw = calloc((size_t)reps, sizeof *tw);
    struct cpu_conv *p = NULL;
    int rc = !x || !y || !w || !dw || !dx || !tf || !td || !tw ? err_set(CREMA_ERR_NOMEM, "out of memory") : 0;
    if (!rc)
        rc = cpu_conv_create(&s, &p);
    if (!rc) {
        cpu_conv_forward(p, x, w, NULL, y); /* warm-up */
        for (int r = 0; r < reps; r++) {
            double t0 = bench_now();
            cpu_conv_forward(p, x, w, NULL, y);
            double t1 = bench_now();
            cpu_conv_backward_data(p, y, w, dx);
            double t2 = bench_now();
            cpu_conv_backward_filter(p, x, y, dw, NULL);
            double t3 = bench_now();
            tf[r] = (t1 - t0) * 1e3;
            td[r] = (t2 - t1) * 1e3;
            tw[r] = (t3 - t2) * 1e3;
        }
        double gflop = 2.0 * (double)out * (double)(wn / (size_t)c->out_c) * 1e-9;
        printf("conv %s %s %d %.4f %.4f %.4f %.4f\n", c->name, engine, threads, bench_median(tf, reps),
               bench_median(td, reps), bench_median(tw, reps), gflop);
        fflush(stdout);
    } else {
        printf("conv %s %s %d error %s\n", c->name, engine, threads, crema_errmsg());
    }
    cpu_conv_free(p);
    free(x);
    free(y);
    free(w);
    free(dw);
    free(dx);
    free(tf);
    free(td);
    free(tw);
    return rc;
}

int main(int argc, char **argv)
{
    int threads = 0, reps = 5, first = argc;
    const char *only = "";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "-reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "-only") == 0 && i + 1 < argc)
            only = argv[++i];
        else {
            first = i;
            break;
        }
    }
    if (reps < 1 || threads < 0 || threads > CPU_MAX_THREADS || cpu_set_num_threads(threads)) {
        fprintf(stderr, "usage: bench_conv [-threads T] [-reps R] [-only PREFIX] [avx512|avx2|blas ...]\n");
        return 2;
    }
    static const char *const all[] = { "avx512", "avx2", "blas" };
    int n_eng = first < argc ? argc - first : 3;
    int failed = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        if (strncmp(cases[c].name, only, strlen(only)) != 0)
            continue;
        for (int e = 0; e < n_eng; e++) {
            const char *engine = first < argc ? argv[first + e] : all[e];
            if (cpu_ukr_select(engine) != CREMA_OK)
                continue; /* not on this CPU */
            failed += run(&cases[c], engine, cpu_num_threads(), reps) != 0;
        }
    }
    cpu_ukr_select(NULL);
    return failed ? 1 : 0;
}
