/* The solvers' per-element arithmetic as kernels, one launch per parameter
 * and step, in Caffe's order of operations per element. */
#include "cuda/common.cuh"

__global__ void k_scale(size_t n, float s, float *g)
{
    CUDA_LOOP(k, n) g[k] *= s;
}

__global__ void k_regularize(size_t n, bool l1, float decay, const float *w, float *g)
{
    CUDA_LOOP(k, n)
    {
        float v = l1 ? (float)((w[k] > 0) - (w[k] < 0)) : w[k];
        g[k] += decay * v;
    }
}

__global__ void k_sgd(size_t n, float *g, float *h, float momentum, float lr)
{
    CUDA_LOOP(k, n)
    {
        float v = __fadd_rn(__fmul_rn(lr, g[k]), __fmul_rn(momentum, h[k]));
        h[k] = v;
        g[k] = v;
    }
}

__global__ void k_nesterov(size_t n, float *g, float *h, float momentum, float lr)
{
    CUDA_LOOP(k, n)
    {
        float prev = h[k];
        float v = __fadd_rn(__fmul_rn(lr, g[k]), __fmul_rn(momentum, prev));
        h[k] = v;
        g[k] = __fadd_rn(__fmul_rn(1.f + momentum, v), __fmul_rn(-momentum, prev));
    }
}

__global__ void k_adagrad(size_t n, float *g, float *h, float delta, float lr)
{
    CUDA_LOOP(k, n)
    {
        float gi = g[k];
        float hi = __fadd_rn(__fmul_rn(gi, gi), h[k]);
        h[k] = hi;
        g[k] = __fmul_rn(lr, __fdiv_rn(gi, __fadd_rn(sqrtf(hi), delta)));
    }
}

__global__ void k_rmsprop(size_t n, float *g, float *h, float decay, float delta, float lr)
{
    CUDA_LOOP(k, n)
    {
        float gi = g[k];
        float hi = __fadd_rn(__fmul_rn(1.f - decay, __fmul_rn(gi, gi)), __fmul_rn(decay, h[k]));
        h[k] = hi;
        g[k] = __fmul_rn(lr, __fdiv_rn(gi, __fadd_rn(sqrtf(hi), delta)));
    }
}

__global__ void k_adadelta(size_t n, float *g, float *h, float *h2, float momentum, float delta, float lr)
{
    CUDA_LOOP(k, n)
    {
        float gi = g[k];
        float hi = __fadd_rn(__fmul_rn(1.f - momentum, __fmul_rn(gi, gi)), __fmul_rn(momentum, h[k]));
        h[k] = hi;
        float u = sqrtf(__fdiv_rn(__fadd_rn(delta, h2[k]), __fadd_rn(delta, hi)));
        gi = __fmul_rn(gi, u);
        h2[k] = __fadd_rn(__fmul_rn(1.f - momentum, __fmul_rn(gi, gi)), __fmul_rn(momentum, h2[k]));
        g[k] = __fmul_rn(lr, gi);
    }
}

__global__ void k_adam(size_t n, float *g, float *m, float *v, float b1, float b2, float eps, float scale)
{
    CUDA_LOOP(k, n)
    {
        float gi = g[k];
        float mi = __fadd_rn(__fmul_rn(1.f - b1, gi), __fmul_rn(b1, m[k]));
        float vi = __fadd_rn(__fmul_rn(1.f - b2, __fmul_rn(gi, gi)), __fmul_rn(b2, v[k]));
        m[k] = mi;
        v[k] = vi;
        g[k] = __fmul_rn(scale, __fdiv_rn(mi, __fadd_rn(sqrtf(vi), eps)));
    }
}

__global__ void k_apply(size_t n, const float *g, float *w)
{
    CUDA_LOOP(k, n) w[k] -= g[k];
}

static void s_scale(const struct backend *be, size_t n, float s, float *g)
{
    CUDA_LAUNCH(be, k_scale, n, n, s, g);
}

static void s_regularize(const struct backend *be, size_t n, bool l1, float decay, const float *w, float *g)
{
    CUDA_LAUNCH(be, k_regularize, n, n, l1, decay, w, g);
}

static void s_sgd(const struct backend *be, size_t n, float *g, float *h, float momentum, float lr)
{
    CUDA_LAUNCH(be, k_sgd, n, n, g, h, momentum, lr);
}

static void s_nesterov(const struct backend *be, size_t n, float *g, float *h, float momentum, float lr)
{
    CUDA_LAUNCH(be, k_nesterov, n, n, g, h, momentum, lr);
}

static void s_adagrad(const struct backend *be, size_t n, float *g, float *h, float delta, float lr)
{
    CUDA_LAUNCH(be, k_adagrad, n, n, g, h, delta, lr);
}

static void s_rmsprop(const struct backend *be, size_t n, float *g, float *h, float decay, float delta, float lr)
{
    CUDA_LAUNCH(be, k_rmsprop, n, n, g, h, decay, delta, lr);
}

static void s_adadelta(const struct backend *be, size_t n, float *g, float *h, float *h2, float momentum,
                       float delta, float lr)
{
    CUDA_LAUNCH(be, k_adadelta, n, n, g, h, h2, momentum, delta, lr);
}

static void s_adam(const struct backend *be, size_t n, float *g, float *m, float *v, float b1, float b2, float eps,
                   float scale)
{
    CUDA_LAUNCH(be, k_adam, n, n, g, m, v, b1, b2, eps, scale);
}

static void s_apply(const struct backend *be, size_t n, const float *g, float *w)
{
    CUDA_LAUNCH(be, k_apply, n, n, g, w);
}

static struct solver_ops table;

extern "C" const struct solver_ops *cuda_solver_ops(void)
{
    table.scale = s_scale;
    table.regularize = s_regularize;
    table.sgd = s_sgd;
    table.nesterov = s_nesterov;
    table.adagrad = s_adagrad;
    table.rmsprop = s_rmsprop;
    table.adadelta = s_adadelta;
    table.adam = s_adam;
    table.apply = s_apply;
    return &table;
}
