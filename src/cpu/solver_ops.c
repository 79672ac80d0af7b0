/* The solvers' per-element arithmetic on the host, in Caffe's order of
 * operations (each step rounded to float as Caffe's separate BLAS calls
 * round it). */
#include "cpu/backend_cpu.h"

#include <math.h>

static void cpu_solver_scale(const struct backend *be, size_t n, float scale, float *g)
{
    for (size_t k = 0; k < n; k++)
        g[k] *= scale;
}

static void cpu_regularize(const struct backend *be, size_t n, bool l1, float decay, const float *w, float *g)
{
    if (l1) {
        for (size_t k = 0; k < n; k++) {
            float s = (float)((w[k] > 0) - (w[k] < 0));
            g[k] += decay * s;
        }
    } else {
        for (size_t k = 0; k < n; k++)
            g[k] += decay * w[k];
    }
}

static void cpu_sgd(const struct backend *be, size_t n, float *g, float *h, float momentum, float local_rate)
{
    for (size_t k = 0; k < n; k++) {
        h[k] = local_rate * g[k] + momentum * h[k];
        g[k] = h[k];
    }
}

static void cpu_nesterov(const struct backend *be, size_t n, float *g, float *h, float momentum,
                         float local_rate)
{
    for (size_t k = 0; k < n; k++) {
        float prev = h[k];
        h[k] = local_rate * g[k] + momentum * h[k];
        g[k] = (1.f + momentum) * h[k] + -momentum * prev;
    }
}

static void cpu_adagrad(const struct backend *be, size_t n, float *g, float *h, float delta, float local_rate)
{
    for (size_t k = 0; k < n; k++) {
        float u = powf(g[k], 2.f);
        h[k] = u + h[k];
        u = powf(h[k], 0.5f) + delta;
        u = g[k] / u;
        g[k] = local_rate * u;
    }
}

static void cpu_rmsprop(const struct backend *be, size_t n, float *g, float *h, float rms_decay, float delta,
                        float local_rate)
{
    for (size_t k = 0; k < n; k++) {
        float u = powf(g[k], 2.f);
        h[k] = (1.f - rms_decay) * u + rms_decay * h[k];
        u = powf(h[k], 0.5f) + delta;
        u = g[k] / u;
        g[k] = local_rate * u;
    }
}

static void cpu_adadelta(const struct backend *be, size_t n, float *g, float *h, float *h2, float momentum,
                         float delta, float local_rate)
{
    for (size_t k = 0; k < n; k++) {
        float u = powf(g[k], 2.f);
        h[k] = (1.f - momentum) * u + momentum * h[k];
        float t = delta;
        u = t + h2[k];
        t = t + h[k];
        u = u / t;
        u = powf(u, 0.5f);
        g[k] = g[k] * u;
        u = powf(g[k], 2.f);
        h2[k] = (1.f - momentum) * u + momentum * h2[k];
        g[k] = local_rate * g[k];
    }
}

static void cpu_adam(const struct backend *be, size_t n, float *g, float *m, float *v, float beta1, float beta2,
                     float delta, float scale)
{
    for (size_t k = 0; k < n; k++) {
        m[k] = (1.f - beta1) * g[k] + beta1 * m[k];
        float t = g[k] * g[k];
        v[k] = (1.f - beta2) * t + beta2 * v[k];
        t = powf(v[k], 0.5f) + delta;
        t = m[k] / t;
        g[k] = scale * t;
    }
}

static void cpu_apply(const struct backend *be, size_t n, const float *g, float *w)
{
    for (size_t k = 0; k < n; k++)
        w[k] -= g[k];
}

const struct solver_ops cpu_solver_ops = {
    .scale = cpu_solver_scale,
    .regularize = cpu_regularize,
    .sgd = cpu_sgd,
    .nesterov = cpu_nesterov,
    .adagrad = cpu_adagrad,
    .rmsprop = cpu_rmsprop,
    .adadelta = cpu_adadelta,
    .adam = cpu_adam,
    .apply = cpu_apply,
};
