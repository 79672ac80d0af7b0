/* The normalisation family on the GPU: BatchNorm's per-channel steps (its
 * sums and broadcasts are cuBLAS calls through the math table), Scale's and
 * Bias's broadcasts, and sums over outer and inner axes and over MVN's rows
 * with one block per result and a fixed tree, or one thread per short row
 * (no atomics: two runs give the same bits). Formulas as the CPU's
 * (cpu/norm.c), each operation rounded on its own as there. */
#include "cuda/block_sum.cuh"
#include "cuda/common.cuh"

/* ---- BatchNorm ---- */

/* The factor is read here, on the device: Caffe's GPU path reads it on the
 * host, which would stop the stream inside forward. */
static __global__ void k_bn_global_stats(int channels, const float *mean_sum, const float *var_sum, const float *factor,
                                  float *mean, float *var)
{
    CUDA_LOOP(c, channels)
    {
        const float f = factor[0] == 0.f ? 0.f : __fdiv_rn(1.f, factor[0]);
        mean[c] = __fmul_rn(f, mean_sum[c]);
        var[c] = __fmul_rn(f, var_sum[c]);
    }
}

static __global__ void k_bn_update_factor(float fraction, float *factor)
{
    if (blockIdx.x == 0 && threadIdx.x == 0)
        factor[0] = __fadd_rn(__fmul_rn(factor[0], fraction), 1.f);
}

static __global__ void k_bn_std(int channels, float eps, float *var)
{
    CUDA_LOOP(c, channels) var[c] = __fsqrt_rn(__fadd_rn(var[c], eps));
}

static void bn_global_stats(const struct backend *be, int channels, const float *mean_sum, const float *var_sum,
                            const float *factor, float *mean, float *var)
{
    CUDA_LAUNCH(be, k_bn_global_stats, channels, channels, mean_sum, var_sum, factor, mean, var);
}

static void bn_update_factor(const struct backend *be, float fraction, float *factor)
{
    k_bn_update_factor<<<1, 1, 0, CUDA_CTX(be)->stream>>>(fraction, factor);
    CUDA_LAUNCHED(be, "k_bn_update_factor");
}

static void bn_std(const struct backend *be, int channels, float eps, float *var)
{
    CUDA_LAUNCH(be, k_bn_std, channels, channels, eps, var);
}

/* ---- Bias and Scale ---- */

static __global__ void k_bias_fwd(size_t n, size_t dim, size_t inner, const float *x, const float *b, float *y)
{
    CUDA_LOOP(i, n) y[i] = __fadd_rn(x[i], b[(i / inner) % dim]);
}

static __global__ void k_scale_fwd(size_t n, size_t dim, size_t inner, const float *x, const float *s, float *y)
{
    CUDA_LOOP(i, n) y[i] = __fmul_rn(s[(i / inner) % dim], x[i]);
}

/* One block per j: the outer x inner values that use b[j] (dy, or dy x
 * when x is given), each thread's share in a fixed order, then a fixed tree. */
static __global__ void k_broadcast_sum(size_t outer, size_t dim, size_t inner, const float *dy, const float *x, float *out,
                                bool accumulate)
{
    __shared__ float shared[BLOCK_SUM_THREADS];
    const size_t per_j = outer * inner;
    for (size_t j = blockIdx.x; j < dim; j += gridDim.x) {
        float acc = 0.f;
        for (size_t m = threadIdx.x; m < per_j; m += BLOCK_SUM_THREADS) {
            size_t idx = ((m / inner) * dim + j) * inner + m % inner;
            acc = __fadd_rn(acc, x ? __fmul_rn(dy[idx], x[idx]) : dy[idx]);
        }
        float total = block_sum(acc, shared);
        if (threadIdx.x == 0)
            out[j] = accumulate ? __fadd_rn(out[j], total) : total;
    }
}

static void bias_forward(const struct backend *be, size_t outer, size_t dim, size_t inner, const float *x,
                         const float *b, float *y)
{
    size_t n = outer * dim * inner;
    CUDA_LAUNCH(be, k_bias_fwd, n, n, dim, inner, x, b, y);
}

static void scale_forward(const struct backend *be, size_t outer, size_t dim, size_t inner, const float *x,
                          const float *s, float *y)
{
    size_t n = outer * dim * inner;
    CUDA_LAUNCH(be, k_scale_fwd, n, n, dim, inner, x, s, y);
}

static void broadcast_sum(const struct backend *be, size_t outer, size_t dim, size_t inner, const float *dy,
                          const float *x, float *out, bool accumulate)
{
    if (dim == 0)
        return;
    k_broadcast_sum<<<block_sum_grid(dim), BLOCK_SUM_THREADS, 0, CUDA_CTX(be)->stream>>>(outer, dim, inner, dy, x,
                                                                                          out, accumulate);
    CUDA_LAUNCHED(be, "k_broadcast_sum");
}

static void bias_backward(const struct backend *be, size_t outer, size_t dim, size_t inner, const float *dy,
                          float *db, bool accumulate)
{
    broadcast_sum(be, outer, dim, inner, dy, NULL, db, accumulate);
}

static void scale_param_backward(const struct backend *be, size_t outer, size_t dim, size_t inner, const float *x,
                                 const float *dy, float *ds, bool accumulate)
{
    broadcast_sum(be, outer, dim, inner, dy, x, ds, accumulate);
}

/* ---- MVN: one thread per short row, one block per long one ---- */

/* Rows this short are summed by one thread each, in the CPU's order (so
 * the two agree bit for bit but for powf): a tree's order would change the
 * mean by an ulp, which dividing by the std of a nearly constant row
 * magnifies; and a block of threads would idle on them. */
#define MVN_SHORT_ROW 32

static __global__ void k_mvn_fwd_rows(size_t rows, size_t dim, bool normalize_variance, float inv_dim, float eps,
                                      const float *x, float *y, float *std)
{
    CUDA_LOOP(r, rows)
    {
        const float *xr = x + r * dim;
        float *yr = y + r * dim;
        float sum = 0.f;
        for (size_t i = 0; i < dim; i++)
            sum = __fadd_rn(sum, xr[i]);
        const float mean = __fmul_rn(inv_dim, sum);
        float sq = 0.f;
        for (size_t i = 0; i < dim; i++) {
            const float d = __fadd_rn(xr[i], -mean);
            yr[i] = d;
            sq = __fadd_rn(sq, __fmul_rn(d, d));
        }
        if (!normalize_variance)
            continue;
        const float s = __fadd_rn(powf(__fmul_rn(inv_dim, sq), 0.5f), eps);
        for (size_t i = 0; i < dim; i++)
            yr[i] = __fdiv_rn(yr[i], s);
        std[r] = s;
    }
}

static __global__ void k_mvn_bwd_rows(size_t rows, size_t dim, bool normalize_variance, float inv_dim, float k,
                                      const float *y, const float *dy, const float *std, float *dx)
{
    CUDA_LOOP(r, rows)
    {
        const float *yr = y + r * dim, *dyr = dy + r * dim;
        float *dxr = dx + r * dim;
        float s_ydy = 0.f, s_dy = 0.f;
        for (size_t i = 0; i < dim; i++) {
            if (normalize_variance)
                s_ydy = __fadd_rn(s_ydy, __fmul_rn(yr[i], dyr[i]));
            s_dy = __fadd_rn(s_dy, dyr[i]);
        }
        if (normalize_variance) {
            const float sd = std[r];
            for (size_t i = 0; i < dim; i++) {
                const float t = __fadd_rn(__fmul_rn(yr[i], s_ydy), s_dy);
                dxr[i] = __fdiv_rn(__fadd_rn(dyr[i], __fmul_rn(k, t)), sd);
            }
        } else {
            const float mean = __fmul_rn(inv_dim, s_dy);
            for (size_t i = 0; i < dim; i++)
                dxr[i] = __fadd_rn(dyr[i], -mean);
        }
    }
}

/* A row's sums are complete (block_sum synchronises) before any thread
 * writes the row, and each thread then rewrites only the elements it read:
 * y may be x. */
static __global__ void k_mvn_fwd(size_t rows, size_t dim, bool normalize_variance, float inv_dim, float eps, const float *x,
                          float *y, float *std)
{
    __shared__ float shared[BLOCK_SUM_THREADS];
    for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * dim;
        float *yr = y + r * dim;
        float acc = 0.f;
        for (size_t i = threadIdx.x; i < dim; i += BLOCK_SUM_THREADS)
            acc = __fadd_rn(acc, xr[i]);
        const float mean = __fmul_rn(inv_dim, block_sum(acc, shared));
        acc = 0.f;
        for (size_t i = threadIdx.x; i < dim; i += BLOCK_SUM_THREADS) {
            const float d = __fadd_rn(xr[i], -mean);
            yr[i] = d;
            acc = __fadd_rn(acc, __fmul_rn(d, d));
        }
        if (!normalize_variance)
            continue;
        /* eps is added to the std, after the square root (as Caffe). */
        const float s = __fadd_rn(powf(__fmul_rn(inv_dim, block_sum(acc, shared)), 0.5f), eps);
        for (size_t i = threadIdx.x; i < dim; i += BLOCK_SUM_THREADS)
            yr[i] = __fdiv_rn(yr[i], s);
        if (threadIdx.x == 0)
            std[r] = s;
    }
}

static __global__ void k_mvn_bwd(size_t rows, size_t dim, bool normalize_variance, float inv_dim, float k, const float *y,
                          const float *dy, const float *std, float *dx)
{
    __shared__ float shared[BLOCK_SUM_THREADS];
    for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *yr = y + r * dim, *dyr = dy + r * dim;
        float *dxr = dx + r * dim;
        float acc_dy = 0.f, acc_ydy = 0.f;
        for (size_t i = threadIdx.x; i < dim; i += BLOCK_SUM_THREADS) {
            acc_dy = __fadd_rn(acc_dy, dyr[i]);
            if (normalize_variance)
                acc_ydy = __fadd_rn(acc_ydy, __fmul_rn(yr[i], dyr[i]));
        }
        const float s_dy = block_sum(acc_dy, shared);
        if (normalize_variance) {
            const float s_ydy = block_sum(acc_ydy, shared);
            const float sd = std[r];
            for (size_t i = threadIdx.x; i < dim; i += BLOCK_SUM_THREADS) {
                const float t = __fadd_rn(__fmul_rn(yr[i], s_ydy), s_dy);
                dxr[i] = __fdiv_rn(__fadd_rn(dyr[i], __fmul_rn(k, t)), sd);
            }
        } else {
            const float mean = __fmul_rn(inv_dim, s_dy);
            for (size_t i = threadIdx.x; i < dim; i += BLOCK_SUM_THREADS)
                dxr[i] = __fadd_rn(dyr[i], -mean);
        }
    }
}

static void mvn_forward(const struct backend *be, size_t rows, size_t dim, bool normalize_variance, float eps,
                        const float *x, float *y, float *std)
{
    if (rows == 0 || dim == 0)
        return;
    const float inv_dim = (float)(1. / (double)dim);
    if (dim <= MVN_SHORT_ROW) {
        CUDA_LAUNCH(be, k_mvn_fwd_rows, rows, rows, dim, normalize_variance, inv_dim, eps, x, y, std);
        return;
    }
    k_mvn_fwd<<<block_sum_grid(rows), BLOCK_SUM_THREADS, 0, CUDA_CTX(be)->stream>>>(rows, dim, normalize_variance,
                                                                                     inv_dim, eps, x, y, std);
    CUDA_LAUNCHED(be, "k_mvn_fwd");
}

static void mvn_backward(const struct backend *be, size_t rows, size_t dim, bool normalize_variance, const float *y,
                         const float *dy, const float *std, float *dx)
{
    if (rows == 0 || dim == 0)
        return;
    const float inv_dim = (float)(1. / (double)dim), k = (float)(-1. / (double)dim);
    if (dim <= MVN_SHORT_ROW) {
        CUDA_LAUNCH(be, k_mvn_bwd_rows, rows, rows, dim, normalize_variance, inv_dim, k, y, dy, std, dx);
        return;
    }
    k_mvn_bwd<<<block_sum_grid(rows), BLOCK_SUM_THREADS, 0, CUDA_CTX(be)->stream>>>(rows, dim, normalize_variance,
                                                                                     inv_dim, k, y, dy, std, dx);
    CUDA_LAUNCHED(be, "k_mvn_bwd");
}

static struct norm_ops table;

extern "C" const struct norm_ops *cuda_norm_ops(void)
{
    table.bn_global_stats = bn_global_stats;
    table.bn_update_factor = bn_update_factor;
    table.bn_std = bn_std;
    table.bias_forward = bias_forward;
    table.bias_backward = bias_backward;
    table.scale_forward = scale_forward;
    table.scale_param_backward = scale_param_backward;
    table.mvn_forward = mvn_forward;
    table.mvn_backward = mvn_backward;
    return &table;
}
