/* LRN, local response normalisation: ACROSS_CHANNELS as Caffe computes it
 * (running window sums), WITHIN_CHANNEL as Caffe's chain of internal layers
 * (square, AVE pool, power, product) fused, with the same roundings. */
#include "cpu/math.h"
#include "layers/vision.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct lrn {
    int size, pre_pad;
    float alpha, beta, k;
    bool within;
    int num, channels, height, width;
    size_t count;
    float *scale;  /* ACROSS: k + alpha/size * window sum; WITHIN: pool output */
    float *power;  /* WITHIN: (1 + alpha * pool)^-beta */
    float *work;   /* scratch: padded planes (ACROSS), squares (WITHIN) */
    float *work2;  /* scratch: accumulated ratios (ACROSS), pool diff (WITHIN) */
    struct pool_geom pool;
};

static int lrn_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__LRNParameter def = CAFFE__LRNPARAMETER__INIT;
    const Caffe__LRNParameter *lp = l->param->lrn_param ? l->param->lrn_param : &def;
    struct lrn *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = s;
    if (lp->local_size % 2 != 1 || lp->local_size > (1u << 20))
        return err_set(CREMA_ERR_INVALID, "lrn_param.local_size %u: LRN only supports odd sizes",
                       lp->local_size);
    s->size = (int)lp->local_size;
    s->pre_pad = (s->size - 1) / 2;
    s->alpha = lp->alpha;
    s->beta = lp->beta;
    s->k = lp->k;
    if (lp->norm_region != CAFFE__LRNPARAMETER__NORM_REGION__ACROSS_CHANNELS &&
        lp->norm_region != CAFFE__LRNPARAMETER__NORM_REGION__WITHIN_CHANNEL)
        return err_set(CREMA_ERR_INVALID, "lrn_param.norm_region: unknown region %d",
                       (int)lp->norm_region);
    s->within = lp->norm_region == CAFFE__LRNPARAMETER__NORM_REGION__WITHIN_CHANNEL;
    return CREMA_OK;
}

static int realloc_floats(float **p, size_t n)
{
    float *q = realloc(*p, (n ? n : 1) * sizeof *q);
    if (!q)
        return err_set(CREMA_ERR_NOMEM, "out of memory (%zu floats)", n);
    *p = q;
    return CREMA_OK;
}

static int lrn_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct lrn *s = l->priv;
    const struct tensor *b = bottom[0];
    if (b->num_axes != 4)
        return err_set(CREMA_ERR_SHAPE,
                       "LRN needs a 4-axis input (num, channels, height, width), got %d axes",
                       b->num_axes);
    s->num = b->shape[0];
    s->channels = b->shape[1];
    s->height = b->shape[2];
    s->width = b->shape[3];
    s->count = b->count;
    int rc = tensor_reshape_like(top[0], b);
    size_t plane = (size_t)s->height * s->width;
    if (rc || (rc = realloc_floats(&s->scale, s->count)))
        return rc;
    if (s->within) {
        struct pool_geom *g = &s->pool;
        g->method = CAFFE__POOLING_PARAMETER__POOL_METHOD__AVE;
        g->kernel_h = g->kernel_w = s->size;
        g->pad_h = g->pad_w = s->pre_pad;
        g->stride_h = g->stride_w = 1;
        g->height = s->height;
        g->width = s->width;
        if ((rc = pool_geom_shape(g, true)))
            return rc;
        if ((rc = realloc_floats(&s->power, s->count)) || (rc = realloc_floats(&s->work, s->count)) ||
            (rc = realloc_floats(&s->work2, s->count)))
            return rc;
    } else {
        size_t padded = ((size_t)s->channels + (size_t)s->size - 1) * plane;
        if ((rc = realloc_floats(&s->work, padded)) || (rc = realloc_floats(&s->work2, 2 * plane)))
            return rc;
    }
    return CREMA_OK;
}

static void across_forward(struct lrn *s, const float *x, float *y)
{
    int C = s->channels, plane = s->height * s->width;
    size_t item = (size_t)C * plane;
    float *scale = s->scale, *padded = s->work;
    float alpha_over_size = s->alpha / (float)s->size;
    cpu_set((int)s->count, s->k, scale);
    memset(padded, 0, ((size_t)C + s->size - 1) * plane * sizeof *padded);
    for (int n = 0; n < s->num; n++) {
        const float *xn = x + n * item;
        float *sq = padded + (size_t)s->pre_pad * plane;
        for (size_t i = 0; i < item; i++)
            sq[i] = xn[i] * xn[i];
        float *sn = scale + n * item;
        for (int c = 0; c < s->size; c++)
            cpu_axpy(plane, alpha_over_size, padded + (size_t)c * plane, sn);
        for (int c = 1; c < C; c++) {
            float *cur = sn + (size_t)c * plane;
            memcpy(cur, cur - plane, (size_t)plane * sizeof *cur);
            cpu_axpy(plane, alpha_over_size, padded + (size_t)(c + s->size - 1) * plane, cur);
            cpu_axpy(plane, -alpha_over_size, padded + (size_t)(c - 1) * plane, cur);
        }
    }
    for (size_t i = 0; i < s->count; i++)
        y[i] = powf(scale[i], -s->beta) * x[i];
}

static void across_backward(struct lrn *s, const float *x, const float *y, const float *dy,
                            float *dx)
{
    int C = s->channels, plane = s->height * s->width;
    size_t item = (size_t)C * plane;
    const float *scale = s->scale;
    float *ratio = s->work, *accum = s->work2, *accum_x = s->work2 + plane;
    float cache_ratio = (float)(2. * s->alpha * s->beta / s->size);
    memset(ratio, 0, ((size_t)C + s->size - 1) * plane * sizeof *ratio);
    for (size_t i = 0; i < s->count; i++)
        dx[i] = dy[i] * powf(scale[i], -s->beta);
    int inverse_pre_pad = s->size - (s->size + 1) / 2;
    for (int n = 0; n < s->num; n++) {
        size_t off = n * item;
        float *r = ratio + (size_t)inverse_pre_pad * plane;
        for (size_t i = 0; i < item; i++)
            r[i] = dy[off + i] * y[off + i] / scale[off + i];
        memset(accum, 0, (size_t)plane * sizeof *accum);
        for (int c = 0; c < s->size - 1; c++)
            cpu_axpy(plane, 1.f, ratio + (size_t)c * plane, accum);
        for (int c = 0; c < C; c++) {
            size_t co = off + (size_t)c * plane;
            cpu_axpy(plane, 1.f, ratio + (size_t)(c + s->size - 1) * plane, accum);
            for (int i = 0; i < plane; i++)
                accum_x[i] = x[co + i] * accum[i];
            cpu_axpy(plane, -cache_ratio, accum_x, dx + co);
            cpu_axpy(plane, -1.f, ratio + (size_t)c * plane, accum);
        }
    }
}

/* Caffe's PowerLayer forward for (shift + scale * x)^power, step by step. */
static void power_forward(size_t n, float power, float scale, float shift, const float *x, float *y)
{
    if (power * scale == 0.f) {
        float v = power == 0.f ? 1.f : powf(shift, power);
        for (size_t i = 0; i < n; i++)
            y[i] = v;
        return;
    }
    if (y != x)
        memcpy(y, x, n * sizeof *y);
    if (scale != 1.f)
        cpu_scal((int)n, scale, y);
    if (shift != 0.f)
        for (size_t i = 0; i < n; i++)
            y[i] += shift;
    if (power != 1.f)
        for (size_t i = 0; i < n; i++)
            y[i] = powf(y[i], power);
}

static void within_forward(struct lrn *s, const float *x, float *y)
{
    size_t n = s->count;
    float *sq = s->work;
    for (size_t i = 0; i < n; i++)
        sq[i] = powf(x[i], 2.f);
    pool_forward(&s->pool, s->num * s->channels, sq, s->scale, NULL, NULL);
    power_forward(n, -s->beta, s->alpha, 1.f, s->scale, s->power);
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * s->power[i];
}

static void within_backward(struct lrn *s, const float *x, const float *dy, float *dx)
{
    size_t n = s->count;
    float *d_power = s->work, *d_pool = s->work2;
    /* Product: the power output's diff is x * dy. */
    for (size_t i = 0; i < n; i++)
        d_power[i] = x[i] * dy[i];
    /* Power (shift 1) on the pool output, following Caffe's branches. */
    float power = -s->beta, scale = s->alpha, shift = 1.f;
    float diff_scale = power * scale;
    if (diff_scale == 0.f || power == 1.f) {
        for (size_t i = 0; i < n; i++)
            d_pool[i] = diff_scale;
    } else if (power == 2.f) {
        float a = diff_scale * scale, b = diff_scale * shift;
        for (size_t i = 0; i < n; i++)
            d_pool[i] = 0.f;
        cpu_axpy((int)n, a, s->scale, d_pool);
        for (size_t i = 0; i < n; i++)
            d_pool[i] += b;
    } else {
        memcpy(d_pool, s->scale, n * sizeof *d_pool);
        if (scale != 1.f)
            cpu_scal((int)n, scale, d_pool);
        for (size_t i = 0; i < n; i++)
            d_pool[i] = s->power[i] / (d_pool[i] + shift);
        if (diff_scale != 1.f)
            cpu_scal((int)n, diff_scale, d_pool);
    }
    if (diff_scale != 0.f)
        for (size_t i = 0; i < n; i++)
            d_pool[i] = d_power[i] * d_pool[i];
    /* AVE pooling back to the squares (d_power is free again). */
    float *d_sq = d_power;
    pool_backward(&s->pool, s->num * s->channels, d_pool, NULL, NULL, d_sq);
    /* Square, then the split: dx = power * dy + 2 x * d_sq. */
    for (size_t i = 0; i < n; i++)
        dx[i] = s->power[i] * dy[i] + d_sq[i] * (2.f * x[i]);
}

static int lrn_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct lrn *s = l->priv;
    if (s->within)
        within_forward(s, tensor_data(bottom[0]), tensor_data(top[0]));
    else
        across_forward(s, tensor_data(bottom[0]), tensor_data(top[0]));
    return CREMA_OK;
}

static int lrn_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                        struct tensor **bottom)
{
    struct lrn *s = l->priv;
    if (!propagate_down[0])
        return CREMA_OK;
    if (s->within)
        within_backward(s, tensor_data(bottom[0]), tensor_diff(top[0]), tensor_diff(bottom[0]));
    else
        across_backward(s, tensor_data(bottom[0]), tensor_data(top[0]), tensor_diff(top[0]),
                        tensor_diff(bottom[0]));
    return CREMA_OK;
}

static void lrn_destroy(struct layer *l)
{
    struct lrn *s = l->priv;
    if (s) {
        free(s->scale);
        free(s->power);
        free(s->work);
        free(s->work2);
    }
    free(s);
    l->priv = NULL;
}

const struct layer_kind lrn_layer = {
    .type = "LRN",
    .min_bottoms = 1, .max_bottoms = 1,
    .min_tops = 1, .max_tops = 1,
    .setup = lrn_setup,
    .reshape = lrn_reshape,
    .forward = lrn_forward,
    .backward = lrn_backward,
    .destroy = lrn_destroy,
};
