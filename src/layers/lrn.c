/* LRN, local response normalisation: ACROSS_CHANNELS as Caffe computes it
 * (running window sums), WITHIN_CHANNEL as Caffe's chain of internal layers
 * (square, AVE pool, power, product) fused, with the same roundings. */
#include "cpu/math.h"
#include "cpu/threads.h"
#include "layers/vision.h"

#include <math.h>
#ifdef __SSE2__
#include <immintrin.h>
#endif
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
    float *work;   /* scratch (WITHIN): squares */
    float *work2;  /* scratch (WITHIN): pool diff */
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
    }
    return CREMA_OK;
}

/* scale^-beta for n values. beta 0.75 (AlexNet, CaffeNet, GoogLeNet) is
 * 1 / sqrt(s * sqrt(s)): three correctly rounded operations instead of a
 * powf call, within 2 ulp of it. */
static void neg_pow(size_t n, float beta, const float *restrict s, float *restrict p)
{
    size_t i = 0;
    if (beta == 0.75f) {
#ifdef __SSE2__
        const __m128 one = _mm_set1_ps(1.f);
        for (; i + 4 <= n; i += 4) {
            __m128 v = _mm_loadu_ps(s + i);
            _mm_storeu_ps(p + i, _mm_div_ps(one, _mm_sqrt_ps(_mm_mul_ps(v, _mm_sqrt_ps(v)))));
        }
#endif
        for (; i < n; i++)
            p[i] = 1.f / sqrtf(s[i] * sqrtf(s[i]));
        return;
    }
    for (; i < n; i++)
        p[i] = powf(s[i], -beta);
}

/* Caffe's running window over channels: the first channel's scale is k
 * plus alpha/size times the squares of the channels it covers; each next
 * one adds the square entering the window, then subtracts the one leaving
 * it. Channels beyond the edges are zero padding, which adds nothing, so
 * they are skipped instead of stored. */
/* The arrays of one ACROSS pass, which runs over ranges of images. */
struct across_job {
    struct lrn *s;
    const float *x, *y, *dy;
    float *out;
};

/* Scale^-beta times x, a block at a time from a stack buffer. */
#define ACROSS_BLOCK 256

static int across_forward_images(void *ctx, size_t n0, size_t n1)
{
    const struct across_job *j = ctx;
    struct lrn *s = j->s;
    const int C = s->channels, plane = s->height * s->width, pre = s->pre_pad;
    const size_t item = (size_t)C * plane;
    const float a = s->alpha / (float)s->size, k = s->k;
    float p[ACROSS_BLOCK];
    for (size_t n = n0; n < n1; n++) {
        const float *xn = j->x + n * item;
        float *sn = s->scale + n * item;
        for (int i = 0; i < plane; i++)
            sn[i] = k;
        for (int c = 0; c <= pre && c < C; c++) {
            const float *xc = xn + (size_t)c * plane;
            for (int i = 0; i < plane; i++)
                sn[i] += a * (xc[i] * xc[i]);
        }
        for (int c = 1; c < C; c++) {
            float *restrict cur = sn + (size_t)c * plane;
            const float *prev = cur - plane;
            if (c + pre < C) {
                const float *h = xn + (size_t)(c + pre) * plane;
                for (int i = 0; i < plane; i++)
                    cur[i] = prev[i] + a * (h[i] * h[i]);
            } else {
                memcpy(cur, prev, (size_t)plane * sizeof *cur);
            }
            if (c - 1 - pre >= 0) {
                const float *t = xn + (size_t)(c - 1 - pre) * plane;
                for (int i = 0; i < plane; i++)
                    cur[i] -= a * (t[i] * t[i]);
            }
        }
        /* After the whole item's scale, so that top may share bottom. */
        float *yn = j->out + n * item;
        for (size_t b = 0; b < item; b += ACROSS_BLOCK) {
            size_t m = item - b < ACROSS_BLOCK ? item - b : ACROSS_BLOCK;
            neg_pow(m, s->beta, sn + b, p);
            for (size_t i = 0; i < m; i++)
                yn[b + i] = p[i] * xn[b + i];
        }
    }
    return CREMA_OK;
}

static int across_forward(struct lrn *s, const float *x, float *y)
{
    struct across_job j = { .s = s, .x = x, .out = y };
    size_t work = 8 * (size_t)s->channels * (size_t)s->height * (size_t)s->width;
    return cpu_parallel_for((size_t)s->num, cpu_grain(work), across_forward_images, &j);
}

/* dx = dy * scale^-beta - (2 alpha beta / size) * x * (window sum over
 * channels of dy * y / scale), the window sliding as in the forward. Each
 * range of images has its own scratch: one image's ratios, a plane's
 * window sum and scale^-beta. */
static int across_backward_images(void *ctx, size_t n0, size_t n1)
{
    const struct across_job *j = ctx;
    struct lrn *s = j->s;
    const int C = s->channels, plane = s->height * s->width, pre = s->pre_pad;
    const size_t item = (size_t)C * plane;
    float *ratio = malloc((item + 2 * (size_t)plane) * sizeof *ratio);
    if (!ratio)
        return err_set(CREMA_ERR_NOMEM, "LRN backward: out of memory (%zu floats)",
                       item + 2 * (size_t)plane);
    float *accum = ratio + item, *p = accum + plane;
    const float cache_ratio = (float)(2. * s->alpha * s->beta / s->size);
    for (size_t n = n0; n < n1; n++) {
        const size_t off = n * item;
        const float *sn = s->scale + off, *dyn = j->dy + off, *yn = j->y + off, *xn = j->x + off;
        float *dxn = j->out + off;
        for (size_t i = 0; i < item; i++)
            ratio[i] = dyn[i] * yn[i] / sn[i];
        memset(accum, 0, (size_t)plane * sizeof *accum);
        for (int c = 0; c < pre && c < C; c++)
            for (int i = 0; i < plane; i++)
                accum[i] += ratio[(size_t)c * plane + i];
        for (int c = 0; c < C; c++) {
            const size_t co = (size_t)c * plane;
            if (c + pre < C)
                for (int i = 0; i < plane; i++)
                    accum[i] += ratio[co + (size_t)pre * plane + i];
            neg_pow((size_t)plane, s->beta, sn + co, p);
            for (int i = 0; i < plane; i++)
                dxn[co + i] = dyn[co + i] * p[i] - cache_ratio * (xn[co + i] * accum[i]);
            if (c - pre >= 0)
                for (int i = 0; i < plane; i++)
                    accum[i] -= ratio[co - (size_t)pre * plane + i];
        }
    }
    free(ratio);
    return CREMA_OK;
}

static int across_backward(struct lrn *s, const float *x, const float *y, const float *dy,
                           float *dx)
{
    struct across_job j = { .s = s, .x = x, .y = y, .dy = dy, .out = dx };
    size_t work = 8 * (size_t)s->channels * (size_t)s->height * (size_t)s->width;
    return cpu_parallel_for((size_t)s->num, cpu_grain(work), across_backward_images, &j);
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
        return across_forward(s, tensor_data(bottom[0]), tensor_data(top[0]));
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
        return across_backward(s, tensor_data(bottom[0]), tensor_data(top[0]),
                               tensor_diff(top[0]), tensor_diff(bottom[0]));
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
