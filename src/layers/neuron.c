/* Activation layers (Caffe's NeuronLayer family): one bottom, one top of the
 * same shape, element by element, each usable in place (top == bottom). */
#include "layers/layer.h"

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

/* ---- ReLU: max(x,0) + negative_slope min(x,0) ---- */

static int relu_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__ReLUParameter def = CAFFE__RE_LUPARAMETER__INIT;
    const Caffe__ReLUParameter *p = l->param->relu_param ? l->param->relu_param : &def;
    return neuron_alloc_one(l, false, false, p->negative_slope);
}

static int relu_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    const float slope = neuron_p(l)[0];
    NEURON_BUFFERS(x, y);
    /* Caffe's std::max/std::min: selects, not fmaxf/fminf calls, and a NaN
     * passes through as it does in Caffe. */
    for (size_t i = 0; i < count; i++) {
        float v = x[i];
        y[i] = (v < 0.f ? 0.f : v) + slope * (0.f < v ? 0.f : v);
    }
    return CREMA_OK;
}

static int relu_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float slope = neuron_p(l)[0];
    const float *x = neuron_x(l, bottom, top);
    NEURON_GRADS(dy, dx);
    for (size_t i = 0; i < count; i++)
        dx[i] = dy[i] * ((float)(x[i] > 0) + slope * (float)(x[i] <= 0));
    return CREMA_OK;
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
    for (size_t i = 0; i < count; i++) {
        size_t c = shared ? 0 : (i / dim) % channels;
        y[i] = fmaxf(x[i], 0.f) + slope[c] * fminf(x[i], 0.f);
    }
    return CREMA_OK;
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
    /* The slope gradient first: in place, dx below overwrites dy. */
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
        for (size_t i = 0; i < count; i++) {
            size_t c = shared ? 0 : (i / dim) % channels;
            dx[i] = dy[i] * ((float)(x[i] > 0) + slope[c] * (float)(x[i] <= 0));
        }
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

static int elu_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    const float alpha = neuron_p(l)[0];
    NEURON_BUFFERS(x, y);
    for (size_t i = 0; i < count; i++)
        y[i] = fmaxf(x[i], 0.f) + alpha * (expf(fminf(x[i], 0.f)) - 1.f);
    return CREMA_OK;
}

/* Uses y (alpha + y = alpha e^x) and the sign of x, which y keeps: in place works. */
static int elu_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float alpha = neuron_p(l)[0];
    const float *x = neuron_x(l, bottom, top), *y = tensor_data(top[0]);
    NEURON_GRADS(dy, dx);
    for (size_t i = 0; i < count; i++)
        dx[i] = dy[i] * ((float)(x[i] > 0) + (alpha + y[i]) * (float)(x[i] <= 0));
    return CREMA_OK;
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

static int sigmoid_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    NEURON_BUFFERS(x, y);
    for (size_t i = 0; i < count; i++)
        y[i] = sigmoid(x[i]);
    return CREMA_OK;
}

static int sigmoid_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *y = tensor_data(top[0]);
    NEURON_GRADS(dy, dx);
    for (size_t i = 0; i < count; i++)
        dx[i] = (float)(dy[i] * y[i] * (1. - y[i]));
    return CREMA_OK;
}

static int tanh_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    NEURON_BUFFERS(x, y);
    for (size_t i = 0; i < count; i++)
        y[i] = tanhf(x[i]);
    return CREMA_OK;
}

static int tanh_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *y = tensor_data(top[0]);
    NEURON_GRADS(dy, dx);
    for (size_t i = 0; i < count; i++)
        dx[i] = dy[i] * (1.f - y[i] * y[i]);
    return CREMA_OK;
}

/* ---- AbsVal ---- */

static int keep_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    return neuron_alloc(l, true, false);
}

static int absval_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    int rc = neuron_keep(l, bottom, top);
    if (rc)
        return rc;
    NEURON_BUFFERS(x, y);
    for (size_t i = 0; i < count; i++)
        y[i] = fabsf(x[i]);
    return CREMA_OK;
}

static int absval_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *x = neuron_x(l, bottom, top);
    NEURON_GRADS(dy, dx);
    for (size_t i = 0; i < count; i++)
        dx[i] = (float)((x[i] > 0) - (x[i] < 0)) * dy[i];
    return CREMA_OK;
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
    for (size_t i = 0; i < count; i++) {
        float t = neuron_affine(x[i], scale, shift);
        y[i] = power != 1.f ? powf(t, power) : t;
    }
    return CREMA_OK;
}

static int power_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *v = neuron_p(l);
    const float power = v[POW_POWER], scale = v[POW_SCALE], shift = v[POW_SHIFT];
    const float diff_scale = v[POW_DIFF_SCALE];
    const float *x = neuron_x(l, bottom, top), *y = tensor_data(top[0]);
    NEURON_GRADS(dy, dx);
    for (size_t i = 0; i < count; i++) {
        float g;
        if (diff_scale == 0.f || power == 1.f) {
            g = diff_scale;
        } else if (power == 2.f) {
            g = diff_scale * scale * x[i];
            if (shift != 0.f)
                g += diff_scale * shift;
        } else if (shift == 0.f) {
            g = y[i] / x[i] * power;
        } else {
            g = y[i] / neuron_affine(x[i], scale, shift);
            if (diff_scale != 1.f)
                g *= diff_scale;
        }
        /* As Caffe: a constant output passes no top gradient (it is zero). */
        dx[i] = diff_scale != 0.f ? dy[i] * g : g;
    }
    return CREMA_OK;
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

static int exp_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    const float *v = neuron_p(l);
    const float inner = v[EXP_INNER], outer = v[EXP_OUTER];
    NEURON_BUFFERS(x, y);
    for (size_t i = 0; i < count; i++) {
        float t = inner == 1.f ? expf(x[i]) : expf(inner * x[i]);
        y[i] = outer != 1.f ? outer * t : t;
    }
    return CREMA_OK;
}

static int exp_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float inner = neuron_p(l)[EXP_INNER];
    const float *y = tensor_data(top[0]);
    NEURON_GRADS(dy, dx);
    for (size_t i = 0; i < count; i++) {
        float g = y[i] * dy[i];
        dx[i] = inner != 1.f ? inner * g : g;
    }
    return CREMA_OK;
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

static int log_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    int rc = neuron_keep(l, bottom, top);
    if (rc)
        return rc;
    const float *v = neuron_p(l);
    NEURON_BUFFERS(x, y);
    for (size_t i = 0; i < count; i++) {
        float t = logf(neuron_affine(x[i], v[LOG_SCALE], v[LOG_SHIFT]));
        y[i] = v[LOG_BASE_SCALE] != 1.f ? v[LOG_BASE_SCALE] * t : t;
    }
    return CREMA_OK;
}

static int log_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *v = neuron_p(l);
    const float *x = neuron_x(l, bottom, top);
    NEURON_GRADS(dy, dx);
    for (size_t i = 0; i < count; i++) {
        float t = 1.f / neuron_affine(x[i], v[LOG_SCALE], v[LOG_SHIFT]);
        if (v[LOG_BACK_SCALE] != 1.f)
            t *= v[LOG_BACK_SCALE];
        dx[i] = dy[i] * t;
    }
    return CREMA_OK;
}

/* ---- BNLL: log(1 + e^x), computed without overflow ---- */

#define BNLL_THRESHOLD 50.f

static int bnll_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    int rc = neuron_keep(l, bottom, top);
    if (rc)
        return rc;
    NEURON_BUFFERS(x, y);
    for (size_t i = 0; i < count; i++)
        y[i] = x[i] > 0 ? (float)(x[i] + log(1. + expf(-x[i]))) : (float)log(1. + expf(x[i]));
    return CREMA_OK;
}

static int bnll_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *x = neuron_x(l, bottom, top);
    NEURON_GRADS(dy, dx);
    for (size_t i = 0; i < count; i++) {
        float e = expf(fminf(x[i], BNLL_THRESHOLD));
        dx[i] = (float)(dy[i] * e / (e + 1.));
    }
    return CREMA_OK;
}

/* ---- Threshold: 1 where x > threshold, else 0; no backward (as Caffe) ---- */

static int threshold_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__ThresholdParameter def = CAFFE__THRESHOLD_PARAMETER__INIT;
    const Caffe__ThresholdParameter *p = l->param->threshold_param ? l->param->threshold_param : &def;
    return neuron_alloc_one(l, false, false, p->threshold);
}

static int threshold_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    const float th = neuron_p(l)[0];
    NEURON_BUFFERS(x, y);
    for (size_t i = 0; i < count; i++)
        y[i] = x[i] > th ? 1.f : 0.f;
    return CREMA_OK;
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

static int clip_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    int rc = neuron_keep(l, bottom, top);
    if (rc)
        return rc;
    const float lo = neuron_p(l)[0], hi = neuron_p(l)[1];
    NEURON_BUFFERS(x, y);
    for (size_t i = 0; i < count; i++)
        y[i] = fmaxf(lo, fminf(x[i], hi));
    return CREMA_OK;
}

static int clip_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float lo = neuron_p(l)[0], hi = neuron_p(l)[1];
    const float *x = neuron_x(l, bottom, top);
    NEURON_GRADS(dy, dx);
    for (size_t i = 0; i < count; i++)
        dx[i] = dy[i] * (float)(x[i] >= lo && x[i] <= hi);
    return CREMA_OK;
}

/* ---- Swish: x sigmoid(beta x) ---- */

static int swish_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__SwishParameter def = CAFFE__SWISH_PARAMETER__INIT;
    const Caffe__SwishParameter *p = l->param->swish_param ? l->param->swish_param : &def;
    return neuron_alloc_one(l, false, true, p->beta);
}

static int swish_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct neuron *n = l->priv;
    const float beta = n->p[0];
    float *s = tensor_data(n->aux);
    NEURON_BUFFERS(x, y);
    if (!s)
        return CREMA_ERR_NOMEM;
    for (size_t i = 0; i < count; i++) {
        s[i] = sigmoid(x[i] * beta);
        y[i] = x[i] * s[i];
    }
    return CREMA_OK;
}

/* From y and sigmoid(beta x): d/dx = beta y + s (1 - beta y). */
static int swish_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    struct neuron *n = l->priv;
    const float beta = n->p[0];
    const float *s = tensor_data(n->aux), *y = tensor_data(top[0]);
    NEURON_GRADS(dy, dx);
    for (size_t i = 0; i < count; i++) {
        float by = beta * y[i];
        dx[i] = (float)(dy[i] * (by + s[i] * (1. - by)));
    }
    return CREMA_OK;
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
    const float *mask = tensor_data(n->aux);
    const float scale = n->p[1];
    for (size_t i = 0; i < count; i++)
        dx[i] = dy[i] * mask[i] * scale;
    return CREMA_OK;
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
