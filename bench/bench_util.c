/* Clock and the sgemm yardstick. */
#include "bench_util.h"

#include "net/net.h"
#include "proto/proto_io.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void bench_sgd_solver(Caffe__SolverParameter *sp, const char *net_path)
{
    *sp = (Caffe__SolverParameter)CAFFE__SOLVER_PARAMETER__INIT;
    sp->net = (char *)net_path;
    sp->base_lr = 0.0001f; /* constant data: any small rate; the work is the same */
    sp->lr_policy = (char *)"fixed";
    sp->has_momentum = 1;
    sp->momentum = 0.9f;
    sp->has_weight_decay = 1;
    sp->weight_decay = 0.0005f;
    sp->has_max_iter = 1;
    sp->max_iter = 1 << 30;
    sp->has_random_seed = 1;
    sp->random_seed = 1;
}

double bench_sgemm_gflops(int n, int reps)
{
    size_t sz = (size_t)n * (size_t)n;
    float *a = malloc(sz * sizeof(float)), *b = malloc(sz * sizeof(float)), *c = malloc(sz * sizeof(float));
    double *t = malloc((size_t)reps * sizeof(double));
    if (!a || !b || !c || !t)
        return 0;
    for (size_t i = 0; i < sz; i++) {
        a[i] = (float)(i % 7) * 0.1f;
        b[i] = (float)(i % 5) * 0.2f;
        c[i] = 0;
    }
    /* one warm-up */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a, n, b, n, 0.f, c, n);
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a, n, b, n, 0.f, c, n);
        t[r] = bench_now() - t0;
    }
    double secs = bench_median(t, reps);
    free(a);
    free(b);
    free(c);
    free(t);
    return 2.0 * n * (double)n * n / secs * 1e-9;
}

void bench_net_flops(const struct net *net, double *fwd, double *bwd)
{
    *fwd = *bwd = 0;
    for (int i = 0; i < net->n_layers; i++) {
        const struct net_layer *nl = &net->layers[i];
        const Caffe__LayerParameter *p = nl->layer->param;
        uint32_t num_output;
        if (strcmp(p->type, "Convolution") == 0 && p->convolution_param)
            num_output = p->convolution_param->num_output;
        else if (strcmp(p->type, "InnerProduct") == 0 && p->inner_product_param)
            num_output = p->inner_product_param->num_output;
        else
            continue;
        if (!num_output || nl->layer->n_blobs < 1)
            continue;
        double macs = 0;
        for (int t = 0; t < nl->n_top; t++)
            macs += (double)nl->top[t]->count * (double)nl->layer->blobs[0]->count / num_output;
        *fwd += 2 * macs;
        if (nl->need_backward) {
            *bwd += 2 * macs;
            if (nl->bottom_need_backward[0])
                *bwd += 2 * macs;
        }
    }
}

