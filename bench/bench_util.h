/* What every benchmark needs: a monotonic clock and the machine's own
 * single-precision GEMM rate, the yardstick ratios are printed against. */
#ifndef CREMA_BENCH_UTIL_H
#define CREMA_BENCH_UTIL_H

double bench_now(void); /* seconds, monotonic */
/* GFLOP/s of cblas_sgemm on n x n x n (median of reps runs), on the BLAS
 * threads currently configured. */
double bench_sgemm_gflops(int n, int reps);
/* The median of v[0..n) (n > 0); sorts v, so v[0] and v[n - 1] are then the
 * least and the greatest. */
double bench_median(double *v, int n);

struct Caffe__SolverParameter;
/* The solver every training benchmark runs on the net at net_path: SGD,
 * a fixed small rate, momentum 0.9, weight decay 0.0005, seed 1, no end. */
void bench_sgd_solver(struct Caffe__SolverParameter *sp, const char *net_path);

struct net;
/* The convolution and inner-product work of one iteration, in FLOPs (2 per
 * multiply-add): forward, and backward (the weight gradient, plus the
 * bottom gradient where one is needed). Everything else counts as zero. */
void bench_net_flops(const struct net *net, double *fwd, double *bwd);

#endif
