/* What every benchmark needs: a monotonic clock and the machine's own
 * single-precision GEMM rate, the yardstick ratios are printed against. */
#ifndef CREMA_BENCH_UTIL_H
#define CREMA_BENCH_UTIL_H

double bench_now(void); /* seconds, monotonic */
/* GFLOP/s of cblas_sgemm on n x n x n (median of reps runs), on the BLAS
 * threads currently configured. */
double bench_sgemm_gflops(int n, int reps);

#endif
