/* The neuron family on the CPU: element-wise loops over ranges of elements
 * on crema's threads (cpu/threads.h). Every element is computed by one
 * formula and written once, so the thread count changes nothing. */
#include "cpu/backend_cpu.h"
#include "cpu/threads.h"

#include <math.h>

/* The arrays and numbers of one element-wise pass. */
struct ew {
    const float *x, *y, *dy, *aux;
    float *out, *out2;
    float p[4];
    const float *slope; /* PReLU: per channel, or one */
    size_t dim, channels;
    uint32_t threshold; /* Dropout */
    uint64_t seed;
};

/* Elements per range: `cost` is an element's work in simple steps. */
static void ew_run(size_t count, size_t cost, cpu_range_fn fn, struct ew *a)
{
    /* The ranges cannot fail: nothing to report. */
    (void)cpu_parallel_for(count, cpu_grain(cost), fn, a);
}

/* The cost of an element that calls expf, tanh, powf or logf. */
#define EW_LIBM 16

#define EW_LOOP(name, ...)                                                    \
    static int name(void *ctx, size_t begin, size_t end)                      \
    {                                                                         \
        const struct ew *a = ctx;                                             \
        const float *x = a->x, *y = a->y, *dy = a->dy, *aux = a->aux;         \
        float *out = a->out, *out2 = a->out2;                                 \
        const float p0 = a->p[0], p1 = a->p[1], p2 = a->p[2], p3 = a->p[3];   \
        (void)x, (void)y, (void)dy, (void)aux, (void)out, (void)out2;         \
        (void)p0, (void)p1, (void)p2, (void)p3;                               \
        for (size_t i = begin; i < end; i++) {                                \
            __VA_ARGS__;                                                      \
        }                                                                     \
        return 0;                                                             \
    }

/* shift + scale x, skipping the identity steps as Caffe does (the rounding
 * stays the same). */
static float affine(float x, float scale, float shift)
{
    if (scale != 1.f)
        x *= scale;
    if (shift != 0.f)
        x += shift;
    return x;
}

static float sigmoid(float x)
{
    return (float)(0.5 * tanh(0.5 * (double)x) + 0.5);
}

/* ---- ReLU ---- */

/* Caffe's std::max/std::min: selects, not fmaxf/fminf calls, and a NaN
 * passes through as it does in Caffe. */
EW_LOOP(relu_fwd_range, float v = x[i]; out[i] = (v < 0.f ? 0.f : v) + p0 * (0.f < v ? 0.f : v))
EW_LOOP(relu_bwd_range, out[i] = dy[i] * ((float)(x[i] > 0) + p0 * (float)(x[i] <= 0)))

static void relu_forward(const struct backend *be, size_t n, float slope, const float *x, float *y)
{
    struct ew a = { .x = x, .out = y, .p = { slope } };
    ew_run(n, 1, relu_fwd_range, &a);
}

static void relu_backward(const struct backend *be, size_t n, float slope, const float *x, const float *y,
                          const float *dy, float *dx)
{
    struct ew a = { .x = x, .dy = dy, .out = dx, .p = { slope } };
    ew_run(n, 1, relu_bwd_range, &a);
}

/* ---- PReLU ---- */

EW_LOOP(prelu_fwd_range, size_t c = (i / a->dim) % a->channels;
        out[i] = fmaxf(x[i], 0.f) + a->slope[c] * fminf(x[i], 0.f))
EW_LOOP(prelu_bwd_range, size_t c = (i / a->dim) % a->channels;
        out[i] = dy[i] * ((float)(x[i] > 0) + a->slope[c] * (float)(x[i] <= 0)))

static void prelu_forward(const struct backend *be, size_t n, size_t channels, size_t dim, const float *slope,
                          const float *x, float *y)
{
    struct ew a = { .x = x, .out = y, .slope = slope, .dim = dim, .channels = channels };
    ew_run(n, 2, prelu_fwd_range, &a);
}

static void prelu_backward(const struct backend *be, size_t n, size_t channels, size_t dim, const float *slope,
                           const float *x, const float *dy, float *dx)
{
    struct ew a = { .x = x, .dy = dy, .out = dx, .slope = slope, .dim = dim, .channels = channels };
    ew_run(n, 2, prelu_bwd_range, &a);
}

/* The sums stay on one thread, in Caffe's order (element by element). */
static void prelu_slope_backward(const struct backend *be, size_t n, size_t channels, size_t dim, const float *x,
                                 const float *dy, float *ds)
{
    for (size_t i = 0; i < n; i++) {
        size_t c = (i / dim) % channels;
        ds[c] += dy[i] * x[i] * (float)(x[i] <= 0);
    }
}

/* ---- ELU ---- */

EW_LOOP(elu_fwd_range, out[i] = fmaxf(x[i], 0.f) + p0 * (expf(fminf(x[i], 0.f)) - 1.f))
/* alpha + y = alpha e^x below 0, and y keeps the sign of x: in place works. */
EW_LOOP(elu_bwd_range, out[i] = dy[i] * ((float)(x[i] > 0) + (p0 + y[i]) * (float)(x[i] <= 0)))

static void elu_forward(const struct backend *be, size_t n, float alpha, const float *x, float *y)
{
    struct ew a = { .x = x, .out = y, .p = { alpha } };
    ew_run(n, EW_LIBM, elu_fwd_range, &a);
}

static void elu_backward(const struct backend *be, size_t n, float alpha, const float *x, const float *y,
                         const float *dy, float *dx)
{
    struct ew a = { .x = x, .y = y, .dy = dy, .out = dx, .p = { alpha } };
    ew_run(n, 1, elu_bwd_range, &a);
}

/* ---- Sigmoid and TanH ---- */

EW_LOOP(sigmoid_fwd_range, out[i] = sigmoid(x[i]))
EW_LOOP(sigmoid_bwd_range, out[i] = (float)(dy[i] * y[i] * (1. - y[i])))

static void sigmoid_forward(const struct backend *be, size_t n, const float *x, float *y)
{
    struct ew a = { .x = x, .out = y };
    ew_run(n, EW_LIBM, sigmoid_fwd_range, &a);
}

static void sigmoid_backward(const struct backend *be, size_t n, const float *y, const float *dy, float *dx)
{
    struct ew a = { .y = y, .dy = dy, .out = dx };
    ew_run(n, 1, sigmoid_bwd_range, &a);
}

EW_LOOP(tanh_fwd_range, out[i] = tanhf(x[i]))
EW_LOOP(tanh_bwd_range, out[i] = dy[i] * (1.f - y[i] * y[i]))

static void tanh_forward(const struct backend *be, size_t n, const float *x, float *y)
{
    struct ew a = { .x = x, .out = y };
    ew_run(n, EW_LIBM, tanh_fwd_range, &a);
}

static void tanh_backward(const struct backend *be, size_t n, const float *y, const float *dy, float *dx)
{
    struct ew a = { .y = y, .dy = dy, .out = dx };
    ew_run(n, 1, tanh_bwd_range, &a);
}

/* ---- AbsVal ---- */

EW_LOOP(absval_fwd_range, out[i] = fabsf(x[i]))
EW_LOOP(absval_bwd_range, out[i] = (float)((x[i] > 0) - (x[i] < 0)) * dy[i])

static void absval_forward(const struct backend *be, size_t n, const float *x, float *y)
{
    struct ew a = { .x = x, .out = y };
    ew_run(n, 1, absval_fwd_range, &a);
}

static void absval_backward(const struct backend *be, size_t n, const float *x, const float *dy, float *dx)
{
    struct ew a = { .x = x, .dy = dy, .out = dx };
    ew_run(n, 1, absval_bwd_range, &a);
}

/* ---- Power: p0 power, p1 scale, p2 shift, p3 power * scale ---- */

EW_LOOP(power_fwd_range, float t = affine(x[i], p1, p2); out[i] = p0 != 1.f ? powf(t, p0) : t)
EW_LOOP(power_bwd_range, float g;
        if (p3 == 0.f || p0 == 1.f) {
            g = p3;
        } else if (p0 == 2.f) {
            g = p3 * p1 * x[i];
            if (p2 != 0.f)
                g += p3 * p2;
        } else if (p2 == 0.f) {
            g = y[i] / x[i] * p0;
        } else {
            g = y[i] / affine(x[i], p1, p2);
            if (p3 != 1.f)
                g *= p3;
        }
        /* As Caffe: a constant output passes no top gradient (it is zero). */
        out[i] = p3 != 0.f ? dy[i] * g : g)

static void power_forward(const struct backend *be, size_t n, float power, float scale, float shift,
                          const float *x, float *y)
{
    struct ew a = { .x = x, .out = y, .p = { power, scale, shift } };
    ew_run(n, power != 1.f ? EW_LIBM : 1, power_fwd_range, &a);
}

static void power_backward(const struct backend *be, size_t n, float power, float scale, float shift,
                           const float *x, const float *y, const float *dy, float *dx)
{
    struct ew a = { .x = x, .y = y, .dy = dy, .out = dx, .p = { power, scale, shift, power * scale } };
    ew_run(n, 2, power_bwd_range, &a);
}

/* ---- Exp: p0 inner scale, p1 outer scale ---- */

EW_LOOP(exp_fwd_range, float t = p0 == 1.f ? expf(x[i]) : expf(p0 * x[i]); out[i] = p1 != 1.f ? p1 * t : t)
EW_LOOP(exp_bwd_range, float g = y[i] * dy[i]; out[i] = p0 != 1.f ? p0 * g : g)

static void exp_forward(const struct backend *be, size_t n, float inner, float outer, const float *x, float *y)
{
    struct ew a = { .x = x, .out = y, .p = { inner, outer } };
    ew_run(n, EW_LIBM, exp_fwd_range, &a);
}

static void exp_backward(const struct backend *be, size_t n, float inner, const float *y, const float *dy,
                         float *dx)
{
    struct ew a = { .y = y, .dy = dy, .out = dx, .p = { inner } };
    ew_run(n, 1, exp_bwd_range, &a);
}

/* ---- Log: p0 base scale, p1 scale, p2 shift, p3 backward scale ---- */

EW_LOOP(log_fwd_range, float t = logf(affine(x[i], p1, p2)); out[i] = p0 != 1.f ? p0 * t : t)
EW_LOOP(log_bwd_range, float t = 1.f / affine(x[i], p1, p2);
        if (p3 != 1.f)
            t *= p3;
        out[i] = dy[i] * t)

static void log_forward(const struct backend *be, size_t n, float base_scale, float scale, float shift,
                        const float *x, float *y)
{
    struct ew a = { .x = x, .out = y, .p = { base_scale, scale, shift } };
    ew_run(n, EW_LIBM, log_fwd_range, &a);
}

static void log_backward(const struct backend *be, size_t n, float scale, float shift, float back_scale,
                         const float *x, const float *dy, float *dx)
{
    struct ew a = { .x = x, .dy = dy, .out = dx, .p = { 0.f, scale, shift, back_scale } };
    ew_run(n, 2, log_bwd_range, &a);
}

/* ---- BNLL: log(1 + e^x), computed without overflow ---- */

#define BNLL_THRESHOLD 50.f

EW_LOOP(bnll_fwd_range, out[i] = x[i] > 0 ? (float)(x[i] + log(1. + expf(-x[i]))) : (float)log(1. + expf(x[i])))
EW_LOOP(bnll_bwd_range, float e = expf(fminf(x[i], BNLL_THRESHOLD)); out[i] = (float)(dy[i] * e / (e + 1.)))

static void bnll_forward(const struct backend *be, size_t n, const float *x, float *y)
{
    struct ew a = { .x = x, .out = y };
    ew_run(n, EW_LIBM, bnll_fwd_range, &a);
}

static void bnll_backward(const struct backend *be, size_t n, const float *x, const float *dy, float *dx)
{
    struct ew a = { .x = x, .dy = dy, .out = dx };
    ew_run(n, EW_LIBM, bnll_bwd_range, &a);
}

/* ---- Threshold and Clip ---- */

EW_LOOP(threshold_fwd_range, out[i] = x[i] > p0 ? 1.f : 0.f)

static void threshold_forward(const struct backend *be, size_t n, float threshold, const float *x, float *y)
{
    struct ew a = { .x = x, .out = y, .p = { threshold } };
    ew_run(n, 1, threshold_fwd_range, &a);
}

EW_LOOP(clip_fwd_range, out[i] = fmaxf(p0, fminf(x[i], p1)))
EW_LOOP(clip_bwd_range, out[i] = dy[i] * (float)(x[i] >= p0 && x[i] <= p1))

static void clip_forward(const struct backend *be, size_t n, float min, float max, const float *x, float *y)
{
    struct ew a = { .x = x, .out = y, .p = { min, max } };
    ew_run(n, 1, clip_fwd_range, &a);
}

static void clip_backward(const struct backend *be, size_t n, float min, float max, const float *x,
                          const float *dy, float *dx)
{
    struct ew a = { .x = x, .dy = dy, .out = dx, .p = { min, max } };
    ew_run(n, 1, clip_bwd_range, &a);
}

/* ---- Swish ---- */

EW_LOOP(swish_fwd_range, out2[i] = sigmoid(x[i] * p0); out[i] = x[i] * out2[i])
/* From y and sigmoid(beta x): d/dx = beta y + s (1 - beta y). */
EW_LOOP(swish_bwd_range, float by = p0 * y[i]; out[i] = (float)(dy[i] * (by + aux[i] * (1. - by))))

static void swish_forward(const struct backend *be, size_t n, float beta, const float *x, float *y, float *sig)
{
    struct ew a = { .x = x, .out = y, .out2 = sig, .p = { beta } };
    ew_run(n, EW_LIBM, swish_fwd_range, &a);
}

static void swish_backward(const struct backend *be, size_t n, float beta, const float *y, const float *sig,
                           const float *dy, float *dx)
{
    struct ew a = { .y = y, .dy = dy, .aux = sig, .out = dx, .p = { beta } };
    ew_run(n, 1, swish_bwd_range, &a);
}

/* ---- Dropout ---- */

EW_LOOP(dropout_apply_range, out[i] = x[i] * aux[i] * p0)

static void dropout_apply(const struct backend *be, size_t n, float scale, const float *mask, const float *x,
                          float *y)
{
    struct ew a = { .x = x, .aux = mask, .out = y, .p = { scale } };
    ew_run(n, 1, dropout_apply_range, &a);
}

EW_LOOP(dropout_fwd_range, out2[i] = neuron_dropout_bits(a->seed, i) > a->threshold ? 1.f : 0.f;
        out[i] = x[i] * out2[i] * p0)

static void dropout_forward(const struct backend *be, size_t n, uint32_t threshold, float scale, uint64_t seed,
                            const float *x, float *mask, float *y)
{
    struct ew a = { .x = x, .out = y, .out2 = mask, .p = { scale }, .threshold = threshold, .seed = seed };
    ew_run(n, 8, dropout_fwd_range, &a);
}

const struct neuron_ops cpu_neuron_ops = {
    .relu_forward = relu_forward, .relu_backward = relu_backward,
    .prelu_forward = prelu_forward, .prelu_backward = prelu_backward,
    .prelu_slope_backward = prelu_slope_backward,
    .elu_forward = elu_forward, .elu_backward = elu_backward,
    .sigmoid_forward = sigmoid_forward, .sigmoid_backward = sigmoid_backward,
    .tanh_forward = tanh_forward, .tanh_backward = tanh_backward,
    .absval_forward = absval_forward, .absval_backward = absval_backward,
    .power_forward = power_forward, .power_backward = power_backward,
    .exp_forward = exp_forward, .exp_backward = exp_backward,
    .log_forward = log_forward, .log_backward = log_backward,
    .bnll_forward = bnll_forward, .bnll_backward = bnll_backward,
    .threshold_forward = threshold_forward,
    .clip_forward = clip_forward, .clip_backward = clip_backward,
    .swish_forward = swish_forward, .swish_backward = swish_backward,
    .dropout_apply = dropout_apply, .dropout_forward = dropout_forward,
};
