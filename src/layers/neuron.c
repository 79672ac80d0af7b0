/* Activation layers (Caffe's NeuronLayer family): one bottom, one top of the
 * same shape, element by element, each usable in place (top == bottom). */
#include "layers/layer.h"

#include "cpu/threads.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct neuron {
    float p[4];           /* the kind's numbers, read once at setup */
    bool keep_bottom;     /* backward needs x, which an in-place forward overwrites */
    struct tensor *saved; /* x, kept by forward when in place */
    struct tensor *aux;   /* Swish: sigmoid(beta x); Dropout: the 0/1 mask */
};

static bool neuron_in_place(struct tensor *bottom, struct tensor *top)
{
    return bottom == top || (bottom->data_buf && bottom->data_buf == top->data_buf);
}

static int neuron_alloc(struct layer *l, bool keep_bottom, bool aux)
{
    struct neuron *n = calloc(1, sizeof *n);
    if (!n)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = n;
    n->keep_bottom = keep_bottom;
    n->saved = tensor_new();
    if (aux)
        n->aux = tensor_new();
    if (!n->saved || (aux && !n->aux))
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    return CREMA_OK;
}

/* The kind's numbers (struct neuron's p). */
static float *neuron_p(const struct layer *l)
{
    return ((struct neuron *)l->priv)->p;
}

/* Setup for the kinds with a single number. */
static int neuron_alloc_one(struct layer *l, bool keep_bottom, bool aux, float p0)
{
    int rc = neuron_alloc(l, keep_bottom, aux);
    if (!rc)
        neuron_p(l)[0] = p0;
    return rc;
}

/* shift + scale x, skipping the identity steps as Caffe does (the rounding
 * stays the same). */
static float neuron_affine(float x, float scale, float shift)
{
    if (scale != 1.f)
        x *= scale;
    if (shift != 0.f)
        x += shift;
    return x;
}

/* Exp and Log: the natural log of `base` (-1 meaning e), refused where it is
 * not a finite number. */
static int neuron_log_base(float base, const char *field, float *log_base)
{
    if (base != -1.f && !(base > 0.f))
        return err_set(CREMA_ERR_INVALID, "field %s: must be strictly positive (or -1 for e), got %g", field,
                       base);
    *log_base = base == -1.f ? 1.f : logf(base);
    if (isnan(*log_base) || isinf(*log_base))
        return err_set(CREMA_ERR_INVALID, "field %s: log(%g) is %g", field, base, *log_base);
    return CREMA_OK;
}

static void neuron_destroy(struct layer *l)
{
    struct neuron *n = l->priv;
    if (!n)
        return;
    tensor_free(n->saved);
    tensor_free(n->aux);
    free(n);
    l->priv = NULL;
}

static int neuron_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct neuron *n = l->priv;
    int rc = CREMA_OK;
    if (top[0] != bottom[0])
        rc = tensor_reshape_like(top[0], bottom[0]);
    if (!rc && n->keep_bottom && neuron_in_place(bottom[0], top[0]))
        rc = tensor_reshape_like(n->saved, bottom[0]);
    if (!rc && n->aux)
        rc = tensor_reshape_like(n->aux, bottom[0]);
    return rc;
}

/* Called at the start of forward: keeps x when the forward will overwrite it. */
static int neuron_keep(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct neuron *n = l->priv;
    if (!n->keep_bottom || !neuron_in_place(bottom[0], top[0]))
        return CREMA_OK;
    float *x = tensor_data(bottom[0]), *s = tensor_data(n->saved);
    if (!x || !s)
        return CREMA_ERR_NOMEM;
    memcpy(s, x, bottom[0]->count * sizeof(float));
    return CREMA_OK;
}

/* The layer's input as backward needs it: the kept copy when in place. As in
 * Caffe, kinds that do not keep one read whatever the bottom holds. */
static const float *neuron_x(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct neuron *n = l->priv;
    if (n->keep_bottom && neuron_in_place(bottom[0], top[0]))
        return tensor_data(n->saved);
    return tensor_data(bottom[0]);
}

#define NEURON_BUFFERS(xp, yp)                                                \
    float *xp = tensor_data(bottom[0]), *yp = tensor_data(top[0]);            \
    if (!xp || !yp)                                                           \
        return CREMA_ERR_NOMEM;                                               \
    const size_t count = bottom[0]->count

#define NEURON_GRADS(dyp, dxp)                                                \
    const float *dyp = tensor_diff(top[0]);                                   \
    float *dxp = tensor_diff(bottom[0]);                                      \
    if (!dyp || !dxp)                                                         \
        return CREMA_ERR_NOMEM;                                               \
    const size_t count = bottom[0]->count

/* The arrays and numbers of one element-wise pass. Its loop body runs over
 * ranges of elements on crema's threads: every element is computed as
 * before and written once, so the thread count changes nothing. */
struct ew {
    const float *x, *y, *dy, *aux;
    float *out, *out2;
    float p[4];
    const float *slope; /* PReLU: per channel, or one */
    size_t dim, channels;
};

/* Elements per range: `cost` is an element's work in simple steps. */
static int ew_run(size_t count, size_t cost, cpu_range_fn fn, struct ew *a)
{
    return cpu_parallel_for(count, cpu_grain(cost), fn, a);
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

/* ---- ReLU: max(x,0) + negative_slope min(x,0) ---- */

static int relu_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__ReLUParameter def = CAFFE__RE_LUPARAMETER__INIT;
    const Caffe__ReLUParameter *p = l->param->relu_param ? l->param->relu_param : &def;
    return neuron_alloc_one(l, false, false, p->negative_slope);
}

/* Caffe's std::max/std::min: selects, not fmaxf/fminf calls, and a NaN
 * passes through as it does in Caffe. */
EW_LOOP(relu_fwd_range, float v = x[i]; out[i] = (v < 0.f ? 0.f : v) + p0 * (0.f < v ? 0.f : v))
EW_LOOP(relu_bwd_range, out[i] = dy[i] * ((float)(x[i] > 0) + p0 * (float)(x[i] <= 0)))

static int relu_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    NEURON_BUFFERS(x, y);
    struct ew a = { .x = x, .out = y, .p = { neuron_p(l)[0] } };
    return ew_run(count, 1, relu_fwd_range, &a);
}

static int relu_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *x = neuron_x(l, bottom, top);
    NEURON_GRADS(dy, dx);
    struct ew a = { .x = x, .dy = dy, .out = dx, .p = { neuron_p(l)[0] } };
    return ew_run(count, 1, relu_bwd_range, &a);
}

/* ---- PReLU: a learned slope per channel (or one shared) ---- */

static int prelu_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__PReLUParameter def = CAFFE__PRE_LUPARAMETER__INIT;
    const Caffe__PReLUParameter *p = l->param->prelu_param ? l->param->prelu_param : &def;
    if (bottom[0]->num_axes < 2)
        return err_set(CREMA_ERR_SHAPE, "bottom must have at least 2 axes, has %d", bottom[0]->num_axes);
    int rc = neuron_alloc(l, true, false);
    if (rc)
        return rc;
    bool shared = p->channel_shared;
    neuron_p(l)[0] = shared ? 1.f : 0.f;
    int channels = bottom[0]->shape[1];
    if (l->n_blobs == 0) {
        if ((rc = layer_alloc_blobs(l, 1)))
            return rc;
        rc = shared ? tensor_reshape(l->blobs[0], 0, NULL) : tensor_reshape(l->blobs[0], 1, &channels);
        if (rc)
            return rc;
        Caffe__FillerParameter quarter = CAFFE__FILLER_PARAMETER__INIT;
        quarter.type = "constant";
        quarter.has_value = 1;
        quarter.value = 0.25f;
        return filler_fill(p->filler ? p->filler : &quarter, l->blobs[0], l->rng);
    }
    size_t want = shared ? 1 : (size_t)channels;
    if (l->n_blobs != 1 || l->blobs[0]->count != want)
        return err_set(CREMA_ERR_SHAPE,
                       "negative slope blob has %zu values, but channel_shared %s needs %zu",
                       l->n_blobs ? l->blobs[0]->count : 0, shared ? "true" : "false", want);
    return CREMA_OK;
}

static int prelu_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    if (bottom[0]->num_axes < 2)
        return err_set(CREMA_ERR_SHAPE, "bottom must have at least 2 axes, has %d", bottom[0]->num_axes);
    return neuron_reshape(l, bottom, top);
}

EW_LOOP(prelu_fwd_range, size_t c = p0 != 0.f ? 0 : (i / a->dim) % a->channels;
        out[i] = fmaxf(x[i], 0.f) + a->slope[c] * fminf(x[i], 0.f))
EW_LOOP(prelu_bwd_range, size_t c = p0 != 0.f ? 0 : (i / a->dim) % a->channels;
        out[i] = dy[i] * ((float)(x[i] > 0) + a->slope[c] * (float)(x[i] <= 0)))

static int prelu_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    int rc = neuron_keep(l, bottom, top);
    if (rc)
        return rc;
    const bool shared = neuron_p(l)[0] != 0.f;
    const float *slope = tensor_data(l->blobs[0]);
    NEURON_BUFFERS(x, y);
    const size_t dim = tensor_count_range(bottom[0], 2, bottom[0]->num_axes);
    const size_t channels = (size_t)bottom[0]->shape[1];
    struct ew a = { .x = x, .out = y, .p = { shared ? 1.f : 0.f }, .slope = slope, .dim = dim,
                    .channels = channels };
    return ew_run(count, 2, prelu_fwd_range, &a);
}

static int prelu_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    const bool shared = neuron_p(l)[0] != 0.f;
    const float *x = neuron_x(l, bottom, top);
    const float *slope = tensor_data(l->blobs[0]);
    const float *dy = tensor_diff(top[0]);
    if (!x || !slope || !dy)
        return CREMA_ERR_NOMEM;
    const size_t count = bottom[0]->count;
    const size_t dim = tensor_count_range(bottom[0], 2, bottom[0]->num_axes);
    const size_t channels = (size_t)bottom[0]->shape[1];
    /* The slope gradient first: in place, dx below overwrites dy. Its sums
     * stay on one thread, in Caffe's order. */
    if (l->param_propagate_down[0]) {
        float *ds = tensor_diff(l->blobs[0]);
        if (!ds)
            return CREMA_ERR_NOMEM;
        for (size_t i = 0; i < count; i++) {
            size_t c = shared ? 0 : (i / dim) % channels;
            ds[c] += dy[i] * x[i] * (float)(x[i] <= 0);
        }
    }
    if (pd[0]) {
        float *dx = tensor_diff(bottom[0]);
        if (!dx)
            return CREMA_ERR_NOMEM;
        struct ew a = { .x = x, .dy = dy, .out = dx, .p = { shared ? 1.f : 0.f }, .slope = slope,
                        .dim = dim, .channels = channels };
        return ew_run(count, 2, prelu_bwd_range, &a);
    }
    return CREMA_OK;
}

/* ---- ELU: x for x > 0, alpha (e^x - 1) otherwise ---- */

static int elu_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__ELUParameter def = CAFFE__ELUPARAMETER__INIT;
    const Caffe__ELUParameter *p = l->param->elu_param ? l->param->elu_param : &def;
    return neuron_alloc_one(l, false, false, p->alpha);
}

EW_LOOP(elu_fwd_range, out[i] = fmaxf(x[i], 0.f) + p0 * (expf(fminf(x[i], 0.f)) - 1.f))
EW_LOOP(elu_bwd_range, out[i] = dy[i] * ((float)(x[i] > 0) + (p0 + y[i]) * (float)(x[i] <= 0)))

static int elu_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    NEURON_BUFFERS(x, y);
    struct ew a = { .x = x, .out = y, .p = { neuron_p(l)[0] } };
    return ew_run(count, EW_LIBM, elu_fwd_range, &a);
}

/* Uses y (alpha + y = alpha e^x) and the sign of x, which y keeps: in place works. */
static int elu_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *x = neuron_x(l, bottom, top), *y = tensor_data(top[0]);
    NEURON_GRADS(dy, dx);
    struct ew a = { .x = x, .y = y, .dy = dy, .out = dx, .p = { neuron_p(l)[0] } };
    return ew_run(count, 1, elu_bwd_range, &a);
}

/* ---- Sigmoid and TanH: backward from y alone ---- */

static int plain_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    return neuron_alloc(l, false, false);
}

static float sigmoid(float x)
{
    return (float)(0.5 * tanh(0.5 * (double)x) + 0.5);
}

EW_LOOP(sigmoid_fwd_range, out[i] = sigmoid(x[i]))
EW_LOOP(sigmoid_bwd_range, out[i] = (float)(dy[i] * y[i] * (1. - y[i])))

static int sigmoid_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    NEURON_BUFFERS(x, y);
    struct ew a = { .x = x, .out = y };
    return ew_run(count, EW_LIBM, sigmoid_fwd_range, &a);
}

static int sigmoid_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *y = tensor_data(top[0]);
    NEURON_GRADS(dy, dx);
    struct ew a = { .y = y, .dy = dy, .out = dx };
    return ew_run(count, 1, sigmoid_bwd_range, &a);
}

EW_LOOP(tanh_fwd_range, out[i] = tanhf(x[i]))
EW_LOOP(tanh_bwd_range, out[i] = dy[i] * (1.f - y[i] * y[i]))

static int tanh_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    NEURON_BUFFERS(x, y);
    struct ew a = { .x = x, .out = y };
    return ew_run(count, EW_LIBM, tanh_fwd_range, &a);
}

static int tanh_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *y = tensor_data(top[0]);
    NEURON_GRADS(dy, dx);
    struct ew a = { .y = y, .dy = dy, .out = dx };
    return ew_run(count, 1, tanh_bwd_range, &a);
}

/* ---- AbsVal ---- */

static int keep_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    return neuron_alloc(l, true, false);
}

EW_LOOP(absval_fwd_range, out[i] = fabsf(x[i]))
EW_LOOP(absval_bwd_range, out[i] = (float)((x[i] > 0) - (x[i] < 0)) * dy[i])

static int absval_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    int rc = neuron_keep(l, bottom, top);
    if (rc)
        return rc;
    NEURON_BUFFERS(x, y);
    struct ew a = { .x = x, .out = y };
    return ew_run(count, 1, absval_fwd_range, &a);
}

static int absval_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *x = neuron_x(l, bottom, top);
    NEURON_GRADS(dy, dx);
    struct ew a = { .x = x, .dy = dy, .out = dx };
    return ew_run(count, 1, absval_bwd_range, &a);
}

/* ---- Power: (shift + scale x)^power ---- */

enum { POW_POWER, POW_SCALE, POW_SHIFT, POW_DIFF_SCALE };

static int power_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__PowerParameter def = CAFFE__POWER_PARAMETER__INIT;
    const Caffe__PowerParameter *p = l->param->power_param ? l->param->power_param : &def;
    int rc = neuron_alloc(l, true, false);
    if (rc)
        return rc;
    float *v = neuron_p(l);
    v[POW_POWER] = p->power;
    v[POW_SCALE] = p->scale;
    v[POW_SHIFT] = p->shift;
    v[POW_DIFF_SCALE] = p->power * p->scale;
    return CREMA_OK;
}

EW_LOOP(power_fwd_range, float t = neuron_affine(x[i], p1, p2); out[i] = p0 != 1.f ? powf(t, p0) : t)
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
            g = y[i] / neuron_affine(x[i], p1, p2);
            if (p3 != 1.f)
                g *= p3;
        }
        /* As Caffe: a constant output passes no top gradient (it is zero). */
        out[i] = p3 != 0.f ? dy[i] * g : g)

static int power_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    int rc = neuron_keep(l, bottom, top);
    if (rc)
        return rc;
    const float *v = neuron_p(l);
    const float power = v[POW_POWER], scale = v[POW_SCALE], shift = v[POW_SHIFT];
    NEURON_BUFFERS(x, y);
    if (v[POW_DIFF_SCALE] == 0.f) {
        /* The output does not depend on x. */
        float value = power == 0.f ? 1.f : powf(shift, power);
        for (size_t i = 0; i < count; i++)
            y[i] = value;
        return CREMA_OK;
    }
    struct ew a = { .x = x, .out = y, .p = { power, scale, shift } };
    return ew_run(count, power != 1.f ? EW_LIBM : 1, power_fwd_range, &a);
}

static int power_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *v = neuron_p(l);
    const float *x = neuron_x(l, bottom, top), *y = tensor_data(top[0]);
    NEURON_GRADS(dy, dx);
    struct ew a = { .x = x, .y = y, .dy = dy, .out = dx,
                    .p = { v[POW_POWER], v[POW_SCALE], v[POW_SHIFT], v[POW_DIFF_SCALE] } };
    return ew_run(count, 2, power_bwd_range, &a);
}

/* ---- Exp: base^(shift + scale x) ---- */

enum { EXP_INNER, EXP_OUTER };

static int exp_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__ExpParameter def = CAFFE__EXP_PARAMETER__INIT;
    const Caffe__ExpParameter *p = l->param->exp_param ? l->param->exp_param : &def;
    const float base = p->base;
    float log_base;
    int rc = neuron_log_base(base, "exp_param.base", &log_base);
    if (rc)
        return rc;
    if ((rc = neuron_alloc(l, false, false)))
        return rc;
    float *v = neuron_p(l);
    v[EXP_INNER] = log_base * p->scale;
    v[EXP_OUTER] = p->shift == 0.f ? 1.f : (base != -1.f ? powf(base, p->shift) : expf(p->shift));
    return CREMA_OK;
}

EW_LOOP(exp_fwd_range, float t = p0 == 1.f ? expf(x[i]) : expf(p0 * x[i]);
        out[i] = p1 != 1.f ? p1 * t : t)
EW_LOOP(exp_bwd_range, float g = y[i] * dy[i]; out[i] = p0 != 1.f ? p0 * g : g)

static int exp_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    const float *v = neuron_p(l);
    NEURON_BUFFERS(x, y);
    struct ew a = { .x = x, .out = y, .p = { v[EXP_INNER], v[EXP_OUTER] } };
    return ew_run(count, EW_LIBM, exp_fwd_range, &a);
}

static int exp_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *y = tensor_data(top[0]);
    NEURON_GRADS(dy, dx);
    struct ew a = { .y = y, .dy = dy, .out = dx, .p = { neuron_p(l)[EXP_INNER] } };
    return ew_run(count, 1, exp_bwd_range, &a);
}

/* ---- Log: log_base(shift + scale x) ---- */

enum { LOG_BASE_SCALE, LOG_SCALE, LOG_SHIFT, LOG_BACK_SCALE };

static int log_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__LogParameter def = CAFFE__LOG_PARAMETER__INIT;
    const Caffe__LogParameter *p = l->param->log_param ? l->param->log_param : &def;
    const float base = p->base;
    float log_base;
    int rc = neuron_log_base(base, "log_param.base", &log_base);
    if (rc)
        return rc;
    const float base_scale = 1.f / log_base;
    if (isnan(base_scale) || isinf(base_scale))
        return err_set(CREMA_ERR_INVALID, "field log_param.base: 1/log(%g) is %g", base, base_scale);
    rc = neuron_alloc(l, true, false);
    if (rc)
        return rc;
    float *v = neuron_p(l);
    v[LOG_BASE_SCALE] = base_scale;
    v[LOG_SCALE] = p->scale;
    v[LOG_SHIFT] = p->shift;
    v[LOG_BACK_SCALE] = p->scale / log_base;
    return CREMA_OK;
}

EW_LOOP(log_fwd_range, float t = logf(neuron_affine(x[i], p1, p2)); out[i] = p0 != 1.f ? p0 * t : t)
EW_LOOP(log_bwd_range, float t = 1.f / neuron_affine(x[i], p1, p2);
        if (p3 != 1.f)
            t *= p3;
        out[i] = dy[i] * t)

static int log_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    int rc = neuron_keep(l, bottom, top);
    if (rc)
        return rc;
    const float *v = neuron_p(l);
    NEURON_BUFFERS(x, y);
    struct ew a = { .x = x, .out = y, .p = { v[LOG_BASE_SCALE], v[LOG_SCALE], v[LOG_SHIFT] } };
    return ew_run(count, EW_LIBM, log_fwd_range, &a);
}

static int log_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *v = neuron_p(l);
    const float *x = neuron_x(l, bottom, top);
    NEURON_GRADS(dy, dx);
    struct ew a = { .x = x, .dy = dy, .out = dx,
                    .p = { 0.f, v[LOG_SCALE], v[LOG_SHIFT], v[LOG_BACK_SCALE] } };
    return ew_run(count, 2, log_bwd_range, &a);
}

/* ---- BNLL: log(1 + e^x), computed without overflow ---- */

#define BNLL_THRESHOLD 50.f

EW_LOOP(bnll_fwd_range, out[i] = x[i] > 0 ? (float)(x[i] + log(1. + expf(-x[i])))
                                        : (float)log(1. + expf(x[i])))
EW_LOOP(bnll_bwd_range, float e = expf(fminf(x[i], BNLL_THRESHOLD));
        out[i] = (float)(dy[i] * e / (e + 1.)))

static int bnll_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    int rc = neuron_keep(l, bottom, top);
    if (rc)
        return rc;
    NEURON_BUFFERS(x, y);
    struct ew a = { .x = x, .out = y };
    return ew_run(count, EW_LIBM, bnll_fwd_range, &a);
}

static int bnll_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *x = neuron_x(l, bottom, top);
    NEURON_GRADS(dy, dx);
    struct ew a = { .x = x, .dy = dy, .out = dx };
    return ew_run(count, EW_LIBM, bnll_bwd_range, &a);
}

/* ---- Threshold: 1 where x > threshold, else 0; no backward (as Caffe) ---- */

static int threshold_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__ThresholdParameter def = CAFFE__THRESHOLD_PARAMETER__INIT;
    const Caffe__ThresholdParameter *p = l->param->threshold_param ? l->param->threshold_param : &def;
    return neuron_alloc_one(l, false, false, p->threshold);
}

EW_LOOP(threshold_fwd_range, out[i] = x[i] > p0 ? 1.f : 0.f)

static int threshold_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    NEURON_BUFFERS(x, y);
    struct ew a = { .x = x, .out = y, .p = { neuron_p(l)[0] } };
    return ew_run(count, 1, threshold_fwd_range, &a);
}

/* ---- Clip: x limited to [min, max] ---- */

static int clip_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    /* min and max are required fields: a ClipParameter cannot be left out. */
    const Caffe__ClipParameter *p = l->param->clip_param;
    if (!p)
        return err_set(CREMA_ERR_INVALID, "field clip_param: missing (min and max are required)");
    if (isnan(p->min) || isnan(p->max))
        return err_set(CREMA_ERR_INVALID, "field clip_param: min %g and max %g must be numbers", p->min, p->max);
    int rc = neuron_alloc(l, true, false);
    if (rc)
        return rc;
    /* Like Caffe, min > max is not refused: every output is then min. */
    neuron_p(l)[0] = p->min;
    neuron_p(l)[1] = p->max;
    return CREMA_OK;
}

EW_LOOP(clip_fwd_range, out[i] = fmaxf(p0, fminf(x[i], p1)))
EW_LOOP(clip_bwd_range, out[i] = dy[i] * (float)(x[i] >= p0 && x[i] <= p1))

static int clip_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    int rc = neuron_keep(l, bottom, top);
    if (rc)
        return rc;
    NEURON_BUFFERS(x, y);
    struct ew a = { .x = x, .out = y, .p = { neuron_p(l)[0], neuron_p(l)[1] } };
    return ew_run(count, 1, clip_fwd_range, &a);
}

static int clip_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *x = neuron_x(l, bottom, top);
    NEURON_GRADS(dy, dx);
    struct ew a = { .x = x, .dy = dy, .out = dx, .p = { neuron_p(l)[0], neuron_p(l)[1] } };
    return ew_run(count, 1, clip_bwd_range, &a);
}

/* ---- Swish: x sigmoid(beta x) ---- */

static int swish_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__SwishParameter def = CAFFE__SWISH_PARAMETER__INIT;
    const Caffe__SwishParameter *p = l->param->swish_param ? l->param->swish_param : &def;
    return neuron_alloc_one(l, false, true, p->beta);
}

EW_LOOP(swish_fwd_range, out2[i] = sigmoid(x[i] * p0); out[i] = x[i] * out2[i])
/* From y and sigmoid(beta x): d/dx = beta y + s (1 - beta y). */
EW_LOOP(swish_bwd_range, float by = p0 * y[i]; out[i] = (float)(dy[i] * (by + aux[i] * (1. - by))))

static int swish_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct neuron *n = l->priv;
    const float beta = n->p[0];
    float *s = tensor_data(n->aux);
    NEURON_BUFFERS(x, y);
    if (!s)
        return CREMA_ERR_NOMEM;
    struct ew a = { .x = x, .out = y, .out2 = s, .p = { beta } };
    return ew_run(count, EW_LIBM, swish_fwd_range, &a);
}

static int swish_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    struct neuron *n = l->priv;
    const float beta = n->p[0];
    const float *s = tensor_data(n->aux), *y = tensor_data(top[0]);
    NEURON_GRADS(dy, dx);
    struct ew a = { .y = y, .dy = dy, .aux = s, .out = dx, .p = { beta } };
    return ew_run(count, 1, swish_bwd_range, &a);
}

/* ---- Dropout: TRAIN keeps each value with probability 1 - ratio and scales
 * the kept ones by 1 / (1 - ratio); TEST passes x through. ---- */

static int dropout_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__DropoutParameter def = CAFFE__DROPOUT_PARAMETER__INIT;
    const Caffe__DropoutParameter *p = l->param->dropout_param ? l->param->dropout_param : &def;
    const float ratio = p->dropout_ratio;
    if (!(ratio >= 0.f && ratio < 1.f))
        return err_set(CREMA_ERR_INVALID, "field dropout_param.dropout_ratio: must be in [0, 1), got %g", ratio);
    if (l->phase == CAFFE__PHASE__TRAIN && !l->rng)
        return err_set(CREMA_ERR_INVALID, "Dropout in TRAIN needs a random number generator");
    int rc = neuron_alloc(l, false, true);
    if (rc)
        return rc;
    float *v = neuron_p(l);
    v[0] = ratio;
    v[1] = (float)(1. / (1. - ratio));
    return CREMA_OK;
}

static int dropout_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct neuron *n = l->priv;
    NEURON_BUFFERS(x, y);
    if (l->phase != CAFFE__PHASE__TRAIN) {
        if (x != y)
            memcpy(y, x, count * sizeof(float));
        return CREMA_OK;
    }
    float *mask = tensor_data(n->aux);
    if (!mask)
        return CREMA_ERR_NOMEM;
    const float keep = 1.f - n->p[0], scale = n->p[1];
    for (size_t i = 0; i < count; i++) {
        mask[i] = (float)rng_bernoulli(l->rng, keep);
        y[i] = x[i] * mask[i] * scale;
    }
    return CREMA_OK;
}

EW_LOOP(dropout_bwd_range, out[i] = dy[i] * aux[i] * p0)

static int dropout_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    struct neuron *n = l->priv;
    NEURON_GRADS(dy, dx);
    if (l->phase != CAFFE__PHASE__TRAIN) {
        if (dx != dy)
            memcpy(dx, dy, count * sizeof(float));
        return CREMA_OK;
    }
    struct ew a = { .dy = dy, .aux = tensor_data(n->aux), .out = dx, .p = { n->p[1] } };
    return ew_run(count, 1, dropout_bwd_range, &a);
}

#define NEURON_KIND(sym, name, setup_fn, reshape_fn, fwd, bwd)                \
    const struct layer_kind sym = {                                           \
        .type = name,                                                         \
        .min_bottoms = 1, .max_bottoms = 1, .min_tops = 1, .max_tops = 1,     \
        .setup = setup_fn, .reshape = reshape_fn,                             \
        .forward = fwd, .backward = bwd, .destroy = neuron_destroy,           \
    }

NEURON_KIND(relu_layer, "ReLU", relu_setup, neuron_reshape, relu_forward, relu_backward);
NEURON_KIND(prelu_layer, "PReLU", prelu_setup, prelu_reshape, prelu_forward, prelu_backward);
NEURON_KIND(elu_layer, "ELU", elu_setup, neuron_reshape, elu_forward, elu_backward);
NEURON_KIND(sigmoid_layer, "Sigmoid", plain_setup, neuron_reshape, sigmoid_forward, sigmoid_backward);
NEURON_KIND(tanh_layer, "TanH", plain_setup, neuron_reshape, tanh_forward, tanh_backward);
NEURON_KIND(absval_layer, "AbsVal", keep_setup, neuron_reshape, absval_forward, absval_backward);
NEURON_KIND(power_layer, "Power", power_setup, neuron_reshape, power_forward, power_backward);
NEURON_KIND(exp_layer, "Exp", exp_setup, neuron_reshape, exp_forward, exp_backward);
NEURON_KIND(log_layer, "Log", log_setup, neuron_reshape, log_forward, log_backward);
NEURON_KIND(bnll_layer, "BNLL", keep_setup, neuron_reshape, bnll_forward, bnll_backward);
NEURON_KIND(threshold_layer, "Threshold", threshold_setup, neuron_reshape, threshold_forward, NULL);
NEURON_KIND(clip_layer, "Clip", clip_setup, neuron_reshape, clip_forward, clip_backward);
NEURON_KIND(swish_layer, "Swish", swish_setup, neuron_reshape, swish_forward, swish_backward);
NEURON_KIND(dropout_layer, "Dropout", dropout_setup, neuron_reshape, dropout_forward, dropout_backward);
