/* Activation layers (Caffe's NeuronLayer family): one bottom, one top of the
 * same shape, element by element, each usable in place (top == bottom).
 * Written once for every backend: the arithmetic is l->be->neuron's. */
#include "layers/layer.h"

#include <math.h>
#include <stdlib.h>

struct neuron {
    float p[4];           /* the kind's numbers, read once at setup */
    uint32_t threshold;   /* Dropout: a device keeps bits above it */
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

static bool neuron_runs_on(const struct backend *be)
{
    return be->neuron != NULL;
}

/* Called at the start of forward: keeps x when the forward will overwrite it. */
static int neuron_keep(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct neuron *n = l->priv;
    if (!n->keep_bottom || !neuron_in_place(bottom[0], top[0]))
        return CREMA_OK;
    const float *x = LCDATA(bottom[0]);
    float *s = LDATA(n->saved);
    if (!x || !s)
        return CREMA_ERR_NOMEM;
    l->be->math->copy(l->be, bottom[0]->count, x, s);
    return CREMA_OK;
}

/* The layer's input as backward needs it: the kept copy when in place. As in
 * Caffe, kinds that do not keep one read whatever the bottom holds. */
static const float *neuron_x(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct neuron *n = l->priv;
    if (n->keep_bottom && neuron_in_place(bottom[0], top[0]))
        return LCDATA(n->saved);
    return LCDATA(bottom[0]);
}

/* x and y of a forward, on l->be; be, nops and count for the call. */
#define NEURON_BUFFERS(xp, yp)                                                \
    const struct backend *be = l->be;                                         \
    const struct neuron_ops *nops = be->neuron;                               \
    const float *xp = LCDATA(bottom[0]);                                      \
    float *yp = LDATA(top[0]);                                                \
    if (!xp || !yp)                                                           \
        return CREMA_ERR_NOMEM;                                               \
    const size_t count = bottom[0]->count

/* dy and dx of a backward (after any other pointer: in place, dx is dy). */
#define NEURON_GRADS(dyp, dxp)                                                \
    const struct backend *be = l->be;                                         \
    const struct neuron_ops *nops = be->neuron;                               \
    const float *dyp = LCDIFF(top[0]);                                        \
    float *dxp = LDIFF(bottom[0]);                                            \
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
    NEURON_BUFFERS(x, y);
    nops->relu_forward(be, count, neuron_p(l)[0], x, y);
    return CREMA_OK;
}

static int relu_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *x = neuron_x(l, bottom, top), *y = LCDATA(top[0]);
    if (!x || !y)
        return CREMA_ERR_NOMEM;
    NEURON_GRADS(dy, dx);
    nops->relu_backward(be, count, neuron_p(l)[0], x, y, dy, dx);
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

/* Element i's slope is slope[(i / dim) % channels]; one shared slope is one channel. */
static void prelu_dims(struct layer *l, struct tensor *bottom, size_t *channels, size_t *dim)
{
    *channels = neuron_p(l)[0] != 0.f ? 1 : (size_t)bottom->shape[1];
    *dim = tensor_count_range(bottom, 2, bottom->num_axes);
}

static int prelu_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    int rc = neuron_keep(l, bottom, top);
    if (rc)
        return rc;
    const float *slope = LCDATA(l->blobs[0]);
    if (!slope)
        return CREMA_ERR_NOMEM;
    NEURON_BUFFERS(x, y);
    size_t channels, dim;
    prelu_dims(l, bottom[0], &channels, &dim);
    nops->prelu_forward(be, count, channels, dim, slope, x, y);
    return CREMA_OK;
}

static int prelu_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    const struct backend *be = l->be;
    const float *x = neuron_x(l, bottom, top);
    const float *slope = LCDATA(l->blobs[0]);
    const float *dy = LCDIFF(top[0]);
    if (!x || !slope || !dy)
        return CREMA_ERR_NOMEM;
    const size_t count = bottom[0]->count;
    size_t channels, dim;
    prelu_dims(l, bottom[0], &channels, &dim);
    /* The slope gradient first: in place, dx below overwrites dy. */
    if (l->param_propagate_down[0]) {
        float *ds = LDIFF(l->blobs[0]);
        if (!ds)
            return CREMA_ERR_NOMEM;
        be->neuron->prelu_slope_backward(be, count, channels, dim, x, dy, ds);
    }
    if (pd[0]) {
        float *dx = LDIFF(bottom[0]);
        if (!dx)
            return CREMA_ERR_NOMEM;
        be->neuron->prelu_backward(be, count, channels, dim, slope, x, dy, dx);
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
    NEURON_BUFFERS(x, y);
    nops->elu_forward(be, count, neuron_p(l)[0], x, y);
    return CREMA_OK;
}

/* Uses y (alpha + y = alpha e^x) and the sign of x, which y keeps: in place works. */
static int elu_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *x = neuron_x(l, bottom, top), *y = LCDATA(top[0]);
    if (!x || !y)
        return CREMA_ERR_NOMEM;
    NEURON_GRADS(dy, dx);
    nops->elu_backward(be, count, neuron_p(l)[0], x, y, dy, dx);
    return CREMA_OK;
}

/* ---- Sigmoid and TanH: backward from y alone ---- */

static int plain_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    return neuron_alloc(l, false, false);
}

static int sigmoid_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    NEURON_BUFFERS(x, y);
    nops->sigmoid_forward(be, count, x, y);
    return CREMA_OK;
}

static int sigmoid_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *y = LCDATA(top[0]);
    if (!y)
        return CREMA_ERR_NOMEM;
    NEURON_GRADS(dy, dx);
    nops->sigmoid_backward(be, count, y, dy, dx);
    return CREMA_OK;
}

static int tanh_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    NEURON_BUFFERS(x, y);
    nops->tanh_forward(be, count, x, y);
    return CREMA_OK;
}

static int tanh_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *y = LCDATA(top[0]);
    if (!y)
        return CREMA_ERR_NOMEM;
    NEURON_GRADS(dy, dx);
    nops->tanh_backward(be, count, y, dy, dx);
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
    nops->absval_forward(be, count, x, y);
    return CREMA_OK;
}

static int absval_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *x = neuron_x(l, bottom, top);
    if (!x)
        return CREMA_ERR_NOMEM;
    NEURON_GRADS(dy, dx);
    nops->absval_backward(be, count, x, dy, dx);
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
        be->math->set(be, count, power == 0.f ? 1.f : powf(shift, power), y);
        return CREMA_OK;
    }
    nops->power_forward(be, count, power, scale, shift, x, y);
    return CREMA_OK;
}

static int power_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *v = neuron_p(l);
    const float *x = neuron_x(l, bottom, top), *y = LCDATA(top[0]);
    if (!x || !y)
        return CREMA_ERR_NOMEM;
    NEURON_GRADS(dy, dx);
    nops->power_backward(be, count, v[POW_POWER], v[POW_SCALE], v[POW_SHIFT], x, y, dy, dx);
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
    NEURON_BUFFERS(x, y);
    nops->exp_forward(be, count, v[EXP_INNER], v[EXP_OUTER], x, y);
    return CREMA_OK;
}

static int exp_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *y = LCDATA(top[0]);
    if (!y)
        return CREMA_ERR_NOMEM;
    NEURON_GRADS(dy, dx);
    nops->exp_backward(be, count, neuron_p(l)[EXP_INNER], y, dy, dx);
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
    nops->log_forward(be, count, v[LOG_BASE_SCALE], v[LOG_SCALE], v[LOG_SHIFT], x, y);
    return CREMA_OK;
}

static int log_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *v = neuron_p(l);
    const float *x = neuron_x(l, bottom, top);
    if (!x)
        return CREMA_ERR_NOMEM;
    NEURON_GRADS(dy, dx);
    nops->log_backward(be, count, v[LOG_SCALE], v[LOG_SHIFT], v[LOG_BACK_SCALE], x, dy, dx);
    return CREMA_OK;
}

/* ---- BNLL: log(1 + e^x), computed without overflow ---- */

static int bnll_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    int rc = neuron_keep(l, bottom, top);
    if (rc)
        return rc;
    NEURON_BUFFERS(x, y);
    nops->bnll_forward(be, count, x, y);
    return CREMA_OK;
}

static int bnll_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *x = neuron_x(l, bottom, top);
    if (!x)
        return CREMA_ERR_NOMEM;
    NEURON_GRADS(dy, dx);
    nops->bnll_backward(be, count, x, dy, dx);
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
    NEURON_BUFFERS(x, y);
    nops->threshold_forward(be, count, neuron_p(l)[0], x, y);
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
    NEURON_BUFFERS(x, y);
    nops->clip_forward(be, count, neuron_p(l)[0], neuron_p(l)[1], x, y);
    return CREMA_OK;
}

static int clip_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    const float *x = neuron_x(l, bottom, top);
    if (!x)
        return CREMA_ERR_NOMEM;
    NEURON_GRADS(dy, dx);
    nops->clip_backward(be, count, neuron_p(l)[0], neuron_p(l)[1], x, dy, dx);
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
    float *s = LDATA(n->aux);
    if (!s)
        return CREMA_ERR_NOMEM;
    NEURON_BUFFERS(x, y);
    nops->swish_forward(be, count, n->p[0], x, y, s);
    return CREMA_OK;
}

static int swish_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    struct neuron *n = l->priv;
    const float *s = LCDATA(n->aux), *y = LCDATA(top[0]);
    if (!s || !y)
        return CREMA_ERR_NOMEM;
    NEURON_GRADS(dy, dx);
    nops->swish_backward(be, count, n->p[0], y, s, dy, dx);
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
    struct neuron *n = l->priv;
    n->p[0] = ratio;
    n->p[1] = (float)(1. / (1. - ratio));
    /* Caffe's uint_thres_, UINT_MAX * ratio in float, where UINT_MAX rounds
     * to 2^32; below 2^32 for ratio < 1. */
    n->threshold = (uint32_t)(4294967296.f * ratio);
    return CREMA_OK;
}

/* The mask: on the host, crema's generator draw by draw (the stream CPU runs
 * have always had); on a device, drawn there from one seed the generator
 * gives per forward (Philox, counter-based), so no mask crosses from the
 * host. A device's masks therefore differ from the CPU's for the same seed,
 * as Caffe's GPU masks differ from its CPU masks; each repeats by seed. */
static int dropout_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct neuron *n = l->priv;
    NEURON_BUFFERS(x, y);
    if (l->phase != CAFFE__PHASE__TRAIN) {
        be->math->copy(be, count, x, y);
        return CREMA_OK;
    }
    float *mask = LDATA(n->aux);
    if (!mask)
        return CREMA_ERR_NOMEM;
    const float scale = n->p[1];
    if (be->host_memory) {
        const float keep = 1.f - n->p[0];
        for (size_t i = 0; i < count; i++)
            mask[i] = (float)rng_bernoulli(l->rng, keep);
        nops->dropout_apply(be, count, scale, mask, x, y);
    } else {
        nops->dropout_forward(be, count, n->threshold, scale, rng_next(l->rng), x, mask, y);
    }
    return CREMA_OK;
}

static int dropout_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    struct neuron *n = l->priv;
    const float *mask = l->phase == CAFFE__PHASE__TRAIN ? LCDATA(n->aux) : NULL;
    if (l->phase == CAFFE__PHASE__TRAIN && !mask)
        return CREMA_ERR_NOMEM;
    NEURON_GRADS(dy, dx);
    if (l->phase != CAFFE__PHASE__TRAIN)
        be->math->copy(be, count, dy, dx);
    else
        nops->dropout_apply(be, count, n->p[1], mask, dy, dx);
    return CREMA_OK;
}

#define NEURON_KIND(sym, name, setup_fn, reshape_fn, fwd, bwd)                \
    const struct layer_kind sym = {                                           \
        .type = name,                                                         \
        .min_bottoms = 1, .max_bottoms = 1, .min_tops = 1, .max_tops = 1,     \
        .setup = setup_fn, .reshape = reshape_fn,                             \
        .forward = fwd, .backward = bwd,                                      \
        .forward_dev = fwd, .backward_dev = bwd,                              \
        .runs_on = neuron_runs_on, .destroy = neuron_destroy,                 \
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
