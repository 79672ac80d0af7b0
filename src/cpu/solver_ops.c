/* The solvers' per-element arithmetic on the host, in Caffe's order of
 * operations (each step rounded to float as Caffe's separate BLAS calls
 * round it), over ranges of elements on crema's threads (every element is
 * independent, so any split gives the same bits). */
#include "cpu/backend_cpu.h"
#include "cpu/threads.h"

#include <math.h>

enum solver_op {
    OP_SCALE, OP_REGULARIZE, OP_SGD, OP_NESTEROV, OP_ADAGRAD, OP_RMSPROP, OP_ADADELTA, OP_ADAM, OP_APPLY, OP_SGD_STEP
};

/* One update over n elements; the fields an operation does not use stay 0. */
struct solver_job {
    enum solver_op op;
    bool l1;
    float *g, *h, *h2;
    const float *w;
    float *wout; /* OP_SGD_STEP's weights */
    float a, b, c, d;
};

static int solver_range(void *ctx, size_t k0, size_t k1)
{
    const struct solver_job *j = ctx;
    float *restrict g = j->g, *restrict h = j->h, *restrict h2 = j->h2;
    const float *restrict w = j->w;
    switch (j->op) {
    case OP_SCALE:
        for (size_t k = k0; k < k1; k++)
            g[k] *= j->a;
        break;
    case OP_REGULARIZE:
        if (j->l1) {
            for (size_t k = k0; k < k1; k++) {
                float s = (float)((w[k] > 0) - (w[k] < 0));
                g[k] += j->a * s;
            }
        } else {
            for (size_t k = k0; k < k1; k++)
                g[k] += j->a * w[k];
        }
        break;
    case OP_SGD: { /* a: momentum, b: local rate */
        for (size_t k = k0; k < k1; k++) {
            h[k] = j->b * g[k] + j->a * h[k];
            g[k] = h[k];
        }
        break;
    }
    case OP_NESTEROV:
        for (size_t k = k0; k < k1; k++) {
            float prev = h[k];
            h[k] = j->b * g[k] + j->a * h[k];
            g[k] = (1.f + j->a) * h[k] + -j->a * prev;
        }
        break;
    case OP_ADAGRAD: /* a: delta, b: local rate */
        for (size_t k = k0; k < k1; k++) {
            float u = powf(g[k], 2.f);
            h[k] = u + h[k];
            u = powf(h[k], 0.5f) + j->a;
            u = g[k] / u;
            g[k] = j->b * u;
        }
        break;
    case OP_RMSPROP: /* a: rms_decay, b: delta, c: local rate */
        for (size_t k = k0; k < k1; k++) {
            float u = powf(g[k], 2.f);
            h[k] = (1.f - j->a) * u + j->a * h[k];
            u = powf(h[k], 0.5f) + j->b;
            u = g[k] / u;
            g[k] = j->c * u;
        }
        break;
    case OP_ADADELTA: /* a: momentum, b: delta, c: local rate */
        for (size_t k = k0; k < k1; k++) {
            float u = powf(g[k], 2.f);
            h[k] = (1.f - j->a) * u + j->a * h[k];
            float t = j->b;
            u = t + h2[k];
            t = t + h[k];
            u = u / t;
            u = powf(u, 0.5f);
            g[k] = g[k] * u;
            u = powf(g[k], 2.f);
            h2[k] = (1.f - j->a) * u + j->a * h2[k];
            g[k] = j->c * g[k];
        }
        break;
    case OP_ADAM: /* a: beta1, b: beta2, c: delta, d: scale; h: m, h2: v */
        for (size_t k = k0; k < k1; k++) {
            h[k] = (1.f - j->a) * g[k] + j->a * h[k];
            float t = g[k] * g[k];
            h2[k] = (1.f - j->b) * t + j->b * h2[k];
            t = powf(h2[k], 0.5f) + j->c;
            t = h[k] / t;
            g[k] = j->d * t;
        }
        break;
    case OP_APPLY:
        for (size_t k = k0; k < k1; k++)
            h[k] -= w[k]; /* h: the weights, w: the update */
        break;
    case OP_SGD_STEP: { /* a: momentum, b: local rate, c: scale, d: decay */
        /* one loop per kind of decay, each free of branches so that it
         * vectorizes; the scale is always applied (times 1 is exact) */
        float *restrict wo = j->wout;
        const float a = j->a, b = j->b, c = j->c, d = j->d;
        if (d == 0.f) {
            for (size_t k = k0; k < k1; k++) {
                float hk = b * (g[k] * c) + a * h[k];
                h[k] = hk;
                g[k] = hk;
                wo[k] -= hk;
            }
        } else if (!j->l1) {
            for (size_t k = k0; k < k1; k++) {
                float hk = b * (g[k] * c + d * wo[k]) + a * h[k];
                h[k] = hk;
                g[k] = hk;
                wo[k] -= hk;
            }
        } else {
            for (size_t k = k0; k < k1; k++) {
                float hk = b * (g[k] * c + d * (float)((wo[k] > 0) - (wo[k] < 0))) + a * h[k];
                h[k] = hk;
                g[k] = hk;
                wo[k] -= hk;
            }
        }
        break;
    }
    }
    return 0;
}

/* cost: simple steps per element (a powf counts as several) */
static void run(struct solver_job j, size_t n, size_t cost)
{
    cpu_parallel_for(n, cpu_grain(cost), solver_range, &j);
}

static void cpu_solver_scale(const struct backend *be, size_t n, float scale, float *g)
{
    run((struct solver_job){ .op = OP_SCALE, .g = g, .a = scale }, n, 1);
}

static void cpu_regularize(const struct backend *be, size_t n, bool l1, float decay, const float *w, float *g)
{
    run((struct solver_job){ .op = OP_REGULARIZE, .l1 = l1, .g = g, .w = w, .a = decay }, n, 2);
}

static void cpu_sgd(const struct backend *be, size_t n, float *g, float *h, float momentum, float local_rate)
{
    run((struct solver_job){ .op = OP_SGD, .g = g, .h = h, .a = momentum, .b = local_rate }, n, 2);
}

static void cpu_nesterov(const struct backend *be, size_t n, float *g, float *h, float momentum,
                         float local_rate)
{
    run((struct solver_job){ .op = OP_NESTEROV, .g = g, .h = h, .a = momentum, .b = local_rate }, n, 3);
}

static void cpu_adagrad(const struct backend *be, size_t n, float *g, float *h, float delta, float local_rate)
{
    run((struct solver_job){ .op = OP_ADAGRAD, .g = g, .h = h, .a = delta, .b = local_rate }, n, 40);
}

static void cpu_rmsprop(const struct backend *be, size_t n, float *g, float *h, float rms_decay, float delta,
                        float local_rate)
{
    run((struct solver_job){ .op = OP_RMSPROP, .g = g, .h = h, .a = rms_decay, .b = delta, .c = local_rate }, n,
        40);
}

static void cpu_adadelta(const struct backend *be, size_t n, float *g, float *h, float *h2, float momentum,
                         float delta, float local_rate)
{
    run((struct solver_job){ .op = OP_ADADELTA, .g = g, .h = h, .h2 = h2, .a = momentum, .b = delta,
                             .c = local_rate },
        n, 60);
}

static void cpu_adam(const struct backend *be, size_t n, float *g, float *m, float *v, float beta1, float beta2,
                     float delta, float scale)
{
    run((struct solver_job){ .op = OP_ADAM, .g = g, .h = m, .h2 = v, .a = beta1, .b = beta2, .c = delta,
                             .d = scale },
        n, 30);
}

static void cpu_apply(const struct backend *be, size_t n, const float *g, float *w)
{
    run((struct solver_job){ .op = OP_APPLY, .h = w, .w = g }, n, 1);
}

static void cpu_sgd_step(const struct backend *be, size_t n, float *w, float *g, float *h, float scale, bool l1,
                         float decay, float momentum, float local_rate)
{
    run((struct solver_job){ .op = OP_SGD_STEP, .l1 = l1, .g = g, .h = h, .wout = w, .a = momentum,
                             .b = local_rate, .c = scale, .d = decay },
        n, 4);
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
    .sgd_step = cpu_sgd_step,
};
