/* Forward+backward time of Caffe's benchmark nets (../shared/bench), the
 * achieved GFLOP/s against this machine's own sgemm rate, and the ratio to
 * Caffe 1.0's published 1-thread `caffe time` figures.
 *
 * FLOPs counted: Convolution and InnerProduct multiply-adds (MACs) only,
 * MACs = top count x (weight count / num_output), i.e. one MAC per weight
 * tap per output value. Forward does 2 x MACs flops; backward does 2 x MACs
 * for the weight gradient plus 2 x MACs for the bottom gradient when the
 * bottom needs one (not for the first convolution, whose input is data).
 * Everything else (pooling, ReLU, LRN, softmax, im2col) counts as zero, so
 * the GFLOP/s is a lower bound of the work done.
 *
 * On a machine other jobs share, wall times stretch with the load. The
 * process's CPU time does much less (it stops while we are descheduled), so
 * with one BLAS thread the run also reports CPU times and an sgemm rate
 * measured by CPU time, and the ratio to Caffe scaled by that.
 *
 * Threads: CREMA_NUM_THREADS sets crema's pool, which runs everything
 * (OpenBLAS runs inside it on one thread); the sgemm yardstick runs on
 * OpenBLAS's own threads, as many. With two threads the Caffe column is
 * Caffe's 2-BLAS-thread figure, Caffe having no threads beyond BLAS's. */
#include <cblas.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "cpu/threads.h"
#include "net/net.h"
#include "proto/proto_io.h"

struct bench_case {
    const char *file, *label;
    int iterations;        /* timed, after one warm-up */
    double caffe_ms;       /* Caffe 1.0, 1 BLAS thread, fwd+bwd (shared/bench/README.md) */
    double caffe_ms2;      /* the same, 2 BLAS threads */
};

static const struct bench_case cases[] = {
    { "lenet.prototxt", "LeNet (64)", 20, 21.4, 21.2 },
    { "cifar10_quick.prototxt", "CIFAR10-quick (100)", 10, 162.0, 206.0 },
    { "caffenet.prototxt", "CaffeNet (256)", 3, 14750.0, 9810.0 },
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))
/* The same machine's sgemm (2048^3, 1 thread) when Caffe was timed: scaling
 * our time by (our sgemm / this) compares on a shared or different machine. */
#define CAFFE_MACHINE_SGEMM_GFLOPS 95.0
#define CAFFE_MACHINE_SGEMM2_GFLOPS 191.0 /* 2 threads */

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* sgemm GFLOP/s by process CPU time, best of reps (n^3, n = 2048). */
static double sgemm_cpu_gflops(int n, int reps)
{
    size_t sz = (size_t)n * n;
    float *a = calloc(sz, sizeof *a), *b = calloc(sz, sizeof *b), *c = calloc(sz, sizeof *c);
    double best = 0;
    for (int r = 0; a && b && c && r <= reps; r++) {
        double t0 = cpu_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a, n, b, n, 0.f, c, n);
        double rate = 2.0 * n * (double)n * n / (cpu_now() - t0) * 1e-9;
        if (r > 0 && rate > best) /* the first run warms up */
            best = rate;
    }
    free(a);
    free(b);
    free(c);
    return best;
}

static int load_net(const char *path, struct net **out)
{
    Caffe__NetParameter *p = NULL;
    int rc = proto_read_text(path, &caffe__net_parameter__descriptor, (ProtobufCMessage **)&p);
    if (rc)
        return rc;
    static const Caffe__NetState def = CAFFE__NET_STATE__INIT;
    Caffe__NetState st = p->state ? *p->state : def;
    st.has_phase = 1;
    st.phase = CAFFE__PHASE__TRAIN;
    rc = net_build(p, &st, 1, out);
    proto_free(&p->base);
    return rc;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : getenv("CREMA_SHARED") ? NULL : "../shared/bench";
    char dirbuf[4096];
    if (!dir) {
        snprintf(dirbuf, sizeof dirbuf, "%s/bench", getenv("CREMA_SHARED"));
        dir = dirbuf;
    }
    /* BENCH_NETS=lenet,cifar10_quick limits the run (CaffeNet takes minutes). */
    const char *only = getenv("BENCH_NETS");

    int blas_threads = cpu_num_threads();
    openblas_set_num_threads(blas_threads);
    double sgemm = bench_sgemm_gflops(2048, 5), sgemm_cpu = sgemm_cpu_gflops(2048, 5);
    openblas_set_num_threads(1);
    printf("bench_net: nets from %s; sgemm 2048^3 on this machine: %.1f GFLOP/s (wall), %.1f (CPU time)\n",
           dir, sgemm, sgemm_cpu);
    printf("threads: crema %d (CREMA_NUM_THREADS; OpenBLAS runs on one thread inside crema's pool, the sgemm "
           "yardstick on %d of its own)\n",
           blas_threads, blas_threads);
    printf("Caffe 1.0 figures: `caffe time`, %d BLAS thread%s, 2-vCPU AMD EPYC (shared/bench/README.md)\n\n",
           blas_threads >= 2 ? 2 : 1, blas_threads >= 2 ? "s" : "");
    printf("%-20s %9s %9s %10s %8s %8s %8s %10s %11s %9s %9s %8s %10s\n", "net (batch)", "fwd ms", "bwd ms",
           "fwd+bwd ms", "GFLOP", "GFLOP/s", "of sgemm", "caffe ms", "crema/caffe", "scaled", "cpu ms",
           "cpu/sgemm", "cpu scaled");
    int status = 0;
    for (int c = 0; c < N_CASES; c++) {
        const struct bench_case *bc = &cases[c];
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, bc->file);
        if (only) {
            char stem[64];
            snprintf(stem, sizeof stem, "%.*s", (int)(strchr(bc->file, '.') - bc->file), bc->file);
            if (!strstr(only, stem))
                continue;
        }
        struct net *net = NULL;
        if (load_net(path, &net)) {
            fprintf(stderr, "bench_net: %s: %s\n", path, crema_errmsg());
            status = 1;
            continue;
        }
        double ffl, bfl;
        bench_net_flops(net, &ffl, &bfl);
        int n = bc->iterations;
        double *tf = malloc((size_t)n * sizeof *tf), *tb = malloc((size_t)n * sizeof *tb),
               *tt = malloc((size_t)n * sizeof *tt), *tc = malloc((size_t)n * sizeof *tc);
        int rc = !tf || !tb || !tt || !tc;
        float loss;
        /* warm-up: allocates every buffer */
        if (!rc)
            rc = net_forward(net, &loss) || net_backward(net);
        for (int i = 0; i < n && !rc; i++) {
            double c0 = cpu_now(), t0 = bench_now();
            rc = net_forward(net, &loss);
            double t1 = bench_now();
            rc = rc || net_backward(net);
            double t2 = bench_now();
            tc[i] = (cpu_now() - c0) * 1e3;
            tf[i] = (t1 - t0) * 1e3;
            tb[i] = (t2 - t1) * 1e3;
            tt[i] = (t2 - t0) * 1e3;
        }
        if (rc) {
            fprintf(stderr, "bench_net: %s: %s\n", path, crema_errmsg());
            status = 1;
        } else {
            double mf = bench_median(tf, n), mb = bench_median(tb, n);
            double mt = bench_median(tt, n), mc = bench_median(tc, n);
            double gflop = (ffl + bfl) * 1e-9, rate = gflop / (mt * 1e-3), crate = gflop / (mc * 1e-3);
            double caffe = blas_threads >= 2 ? bc->caffe_ms2 : bc->caffe_ms;
            double caffe_sgemm = blas_threads >= 2 ? CAFFE_MACHINE_SGEMM2_GFLOPS : CAFFE_MACHINE_SGEMM_GFLOPS;
            printf("%-20s %9.2f %9.2f %10.2f %8.3f %8.1f %7.0f%% %10.1f %11.2f %9.2f %9.2f %7.0f%% %10.2f\n",
                   bc->label, mf, mb, mt, gflop, rate, 100 * rate / sgemm, caffe, mt / caffe,
                   mt * (sgemm / caffe_sgemm) / caffe, mc, 100 * crate / sgemm_cpu,
                   mc * (sgemm_cpu / caffe_sgemm) / caffe);
        }
        fflush(stdout);
        free(tf);
        free(tb);
        free(tt);
        free(tc);
        net_free(net);
    }
    printf("\nmedian of timed iterations after one warm-up; GFLOP counts conv/IP multiply-adds x2 (forward)\n"
           "and x2 per gradient computed (backward: weights, and bottom where needed). scaled: crema/caffe\n"
           "with our time scaled by (sgemm here / %.0f GFLOP/s, Caffe's machine's sgemm on as many BLAS\n"
           "threads), for busy or different machines. Caffe 1.0 ran at 41%% (LeNet), 45%% (CIFAR10-quick),\n"
           "75%% (CaffeNet) of its 1-thread sgemm. cpu ms: process CPU time per iteration (all threads;\n"
           "equals wall time on one quiet thread); cpu/sgemm and cpu scaled use the sgemm rate measured by\n"
           "CPU time: the load-independent figures with OPENBLAS_NUM_THREADS=1 CREMA_NUM_THREADS=1.\n",
           blas_threads >= 2 ? CAFFE_MACHINE_SGEMM2_GFLOPS : CAFFE_MACHINE_SGEMM_GFLOPS);
    return status;
}
