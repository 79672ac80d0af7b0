/* The structure family on the GPU (core/ops_structure.h): block copies as
 * 2-D memcpys, the rest as element-wise kernels with the CPU loops' exact
 * arithmetic (products and sums rounded separately, as the C loops are). */
#include "cuda/common.cuh"
#include "core/ops_structure.h"

#define STREAM(be) (CUDA_CTX(be)->stream)

__global__ void k_copy_blocks(size_t total, const float *src, size_t src_step, float *dst, size_t dst_step,
                              size_t len)
{
    CUDA_LOOP(t, total)
    {
        size_t i = t / len, j = t % len;
        dst[i * dst_step + j] = src[i * src_step + j];
    }
}

static void s_copy_blocks(const struct backend *be, const float *src, size_t src_step, float *dst, size_t dst_step,
                          size_t n, size_t len)
{
    if (n == 0 || len == 0)
        return;
    if (n == 1) {
        cuda_check(be, cudaMemcpyAsync(dst, src, len * sizeof(float), cudaMemcpyDeviceToDevice, STREAM(be)),
                   "cudaMemcpyAsync");
    } else if (src_step >= len && dst_step >= len) {
        cuda_check(be,
                   cudaMemcpy2DAsync(dst, dst_step * sizeof(float), src, src_step * sizeof(float),
                                     len * sizeof(float), n, cudaMemcpyDeviceToDevice, STREAM(be)),
                   "cudaMemcpy2DAsync");
    } else {
        size_t total = n * len;
        CUDA_LAUNCH(be, k_copy_blocks, total, total, src, src_step, dst, dst_step, len);
    }
}

__global__ void k_add_blocks(size_t total, const float *src, size_t src_step, float *dst, size_t dst_step,
                             size_t len)
{
    CUDA_LOOP(t, total)
    {
        size_t i = t / len, j = t % len;
        dst[i * dst_step + j] += src[i * src_step + j];
    }
}

static void s_add_blocks(const struct backend *be, const float *src, size_t src_step, float *dst, size_t dst_step,
                         size_t n, size_t len)
{
    size_t total = n * len;
    CUDA_LAUNCH(be, k_add_blocks, total, total, src, src_step, dst, dst_step, len);
}

__global__ void k_scale_add(size_t n, float c, const float *x, float *y)
{
    CUDA_LOOP(i, n) y[i] = __fadd_rn(y[i], __fmul_rn(c, x[i]));
}

static void s_scale_add(const struct backend *be, size_t n, float coeff, const float *x, float *y)
{
    CUDA_LAUNCH(be, k_scale_add, n, n, coeff, x, y);
}

__global__ void k_scale(size_t n, float c, const float *x, float *y)
{
    CUDA_LOOP(i, n) y[i] = c * x[i];
}

static void s_scale(const struct backend *be, size_t n, float coeff, const float *x, float *y)
{
    CUDA_LAUNCH(be, k_scale, n, n, coeff, x, y);
}

__global__ void k_max_first(size_t n, const float *a, const float *b, float *y, float *mask)
{
    CUDA_LOOP(i, n)
    {
        float av = a[i], bv = b[i];
        bool first = av > bv;
        y[i] = first ? av : bv;
        mask[i] = first ? 0.f : 1.f;
    }
}

static void s_max_first(const struct backend *be, size_t n, const float *a, const float *b, float *y, float *mask)
{
    CUDA_LAUNCH(be, k_max_first, n, n, a, b, y, mask);
}

__global__ void k_max_next(size_t n, const float *x, float k, float *y, float *mask)
{
    CUDA_LOOP(i, n)
    {
        float v = x[i];
        if (v > y[i]) {
            y[i] = v;
            mask[i] = k;
        }
    }
}

static void s_max_next(const struct backend *be, size_t n, const float *x, int k, float *y, float *mask)
{
    CUDA_LAUNCH(be, k_max_next, n, n, x, (float)k, y, mask);
}

__global__ void k_max_backward(size_t n, const float *dy, const float *mask, float k, float *dx)
{
    CUDA_LOOP(i, n) dx[i] = mask[i] == k ? dy[i] : 0.f;
}

static void s_max_backward(const struct backend *be, size_t n, const float *dy, const float *mask, int k, float *dx)
{
    CUDA_LAUNCH(be, k_max_backward, n, n, dy, mask, (float)k, dx);
}

enum { OP_ASUM = 2, OP_SUMSQ = 3 };

/* One block per row, summing in a fixed tree order (deterministic). */
__global__ void k_reduce(int op, size_t num, size_t dim, const float *x, float coeff, float *y)
{
    __shared__ float part[CUDA_THREADS];
    for (size_t row = blockIdx.x; row < num; row += gridDim.x) {
        const float *r = x + row * dim;
        float acc = 0.f;
        for (size_t j = threadIdx.x; j < dim; j += blockDim.x) {
            float v = r[j];
            acc += op == OP_ASUM ? fabsf(v) : op == OP_SUMSQ ? v * v : v;
        }
        part[threadIdx.x] = acc;
        __syncthreads();
        for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
            if (threadIdx.x < s)
                part[threadIdx.x] += part[threadIdx.x + s];
            __syncthreads();
        }
        if (threadIdx.x == 0)
            y[row] = coeff != 1.f ? part[0] * coeff : part[0];
        __syncthreads();
    }
}

static void s_reduce(const struct backend *be, int op, size_t num, size_t dim, const float *x, float coeff, float *y)
{
    if (num == 0)
        return;
    unsigned blocks = num > 65535 ? 65535 : (unsigned)num;
    k_reduce<<<blocks, CUDA_THREADS, 0, STREAM(be)>>>(op, num, dim, x, coeff, y);
    CUDA_LAUNCHED(be, "k_reduce");
}

__global__ void k_reduce_backward(int op, size_t total, size_t dim, const float *x, const float *dy, float coeff,
                                  float *dx)
{
    CUDA_LOOP(t, total)
    {
        float g = dy[t / dim] * coeff;
        float v = x[t];
        dx[t] = op == OP_ASUM ? (float)((v > 0) - (v < 0)) * g : op == OP_SUMSQ ? (2 * g) * v : g;
    }
}

static void s_reduce_backward(const struct backend *be, int op, size_t num, size_t dim, const float *x,
                              const float *dy, float coeff, float *dx)
{
    size_t total = num * dim;
    CUDA_LAUNCH(be, k_reduce_backward, total, op, total, dim, x, dy, coeff, dx);
}

static struct structure_ops table;

extern "C" const struct structure_ops *cuda_structure_ops(void)
{
    table.copy_blocks = s_copy_blocks;
    table.add_blocks = s_add_blocks;
    table.scale_add = s_scale_add;
    table.scale = s_scale;
    table.max_first = s_max_first;
    table.max_next = s_max_next;
    table.max_backward = s_max_backward;
    table.reduce = s_reduce;
    table.reduce_backward = s_reduce_backward;
    return &table;
}
