/* BatchNorm, as Caffe's: normalises each channel by the batch statistics
 * (TRAIN) or by running statistics kept in three blobs (mean sum, variance
 * sum, and the factor they are divided by). No scale or shift of its own.
 * The arithmetic is Caffe's sequence of BLAS calls (gemv sums over ones
 * vectors, K=1 gemms to broadcast) so that rounding matches it bit for bit. */
#include "cpu/math.h"
#include "layers/layer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct batch_norm {
    bool use_global_stats;
    float moving_average_fraction, eps;
    int channels;
    float *mean, *variance; /* per channel; variance holds the std after forward */
    float *num_by_chans;    /* num * channels partial sums / broadcast rows */
    float *batch_ones;      /* num ones */
    float *spatial_ones;    /* spatial ones */
    size_t num_cap, spatial_cap;
    struct tensor *x_norm;  /* y, kept for backward; its diff holds dy when in place */
    struct tensor *temp;    /* the std broadcast to the shape of x */
};

static void bn_destroy(struct layer *l)
{
    struct batch_norm *b = l->priv;
    if (!b)
        return;
    free(b->mean);
    free(b->variance);
    free(b->num_by_chans);
    free(b->batch_ones);
    free(b->spatial_ones);
    tensor_free(b->x_norm);
    tensor_free(b->temp);
    free(b);
    l->priv = NULL;
}

static int bn_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__BatchNormParameter def = CAFFE__BATCH_NORM_PARAMETER__INIT;
    const Caffe__BatchNormParameter *p = l->param->batch_norm_param ? l->param->batch_norm_param : &def;
    struct batch_norm *b = calloc(1, sizeof *b);
    if (!b)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = b;
    b->moving_average_fraction = p->moving_average_fraction;
    b->use_global_stats = p->has_use_global_stats ? p->use_global_stats : l->phase == CAFFE__PHASE__TEST;
    b->eps = p->eps;
    if (bottom[0]->num_axes < 1)
        return err_set(CREMA_ERR_SHAPE, "bottom must have at least 1 axis");
    b->channels = bottom[0]->num_axes == 1 ? 1 : bottom[0]->shape[1];
    b->mean = calloc((size_t)b->channels, sizeof(float));
    b->variance = calloc((size_t)b->channels, sizeof(float));
    b->x_norm = tensor_new();
    b->temp = tensor_new();
    if (!b->mean || !b->variance || !b->x_norm || !b->temp)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    int rc;
    if (l->n_blobs == 0) {
        if ((rc = layer_alloc_blobs(l, 3)))
            return rc;
        int one = 1;
        if ((rc = tensor_reshape(l->blobs[0], 1, &b->channels)) || (rc = tensor_reshape(l->blobs[1], 1, &b->channels)) ||
            (rc = tensor_reshape(l->blobs[2], 1, &one)))
            return rc;
        for (int i = 0; i < 3; i++)
            tensor_zero_data(l->blobs[i]);
    } else {
        if (l->n_blobs != 3)
            return err_set(CREMA_ERR_SHAPE, "BatchNorm has 3 blobs (mean, variance, factor), got %d", l->n_blobs);
        const size_t want[3] = { (size_t)b->channels, (size_t)b->channels, 1 };
        for (int i = 0; i < 3; i++)
            if (l->blobs[i]->count != want[i])
                return err_set(CREMA_ERR_SHAPE, "blob %d has %zu values, expected %zu for %d channels", i,
                               l->blobs[i]->count, want[i], b->channels);
    }
    /* The statistics are not learned: without a ParamSpec the net gives them
     * lr_mult 0 (fixed_params below); a given one must say 0 too. */
    for (size_t i = 0; i < l->param->n_param; i++)
        if (l->param->param[i]->lr_mult != 0.f)
            return err_set(CREMA_ERR_INVALID,
                           "param %zu: lr_mult %g: cannot configure batch normalization statistics as layer "
                           "parameters (BatchNorm's blobs need lr_mult 0)",
                           i, (double)l->param->param[i]->lr_mult);
    for (int i = 0; i < l->n_blobs; i++)
        l->param_propagate_down[i] = false;
    return CREMA_OK;
}

/* Caffe's caffe_powx as it behaves in the reference build: the power taken
 * in double and rounded once (powf differs in the last bit now and then). */
static float bn_pow(float x, double e)
{
    return (float)pow((double)x, e);
}

/* Grows *buf to n floats, all set to one. */
static int bn_ones(float **buf, size_t *cap, size_t n)
{
    if (n == 0)
        n = 1;
    if (*cap < n) {
        free(*buf);
        *buf = malloc(n * sizeof(float));
        if (!*buf) {
            *cap = 0;
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        }
        *cap = n;
    }
    for (size_t i = 0; i < n; i++)
        (*buf)[i] = 1.f;
    return CREMA_OK;
}

static int bn_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct batch_norm *b = l->priv;
    int channels = bottom[0]->num_axes == 1 ? 1 : bottom[0]->shape[1];
    if (bottom[0]->num_axes < 1 || channels != b->channels)
        return err_set(CREMA_ERR_SHAPE, "bottom has %d channels, the layer was set up for %d", channels,
                       b->channels);
    int rc = CREMA_OK;
    if (top[0] != bottom[0])
        rc = tensor_reshape_like(top[0], bottom[0]);
    if (!rc)
        rc = tensor_reshape_like(b->x_norm, bottom[0]);
    if (!rc)
        rc = tensor_reshape_like(b->temp, bottom[0]);
    if (rc)
        return rc;
    const size_t num = (size_t)bottom[0]->shape[0];
    const size_t spatial = num ? bottom[0]->count / (num * (size_t)channels) : 0;
    size_t old_num_cap = b->num_cap;
    if ((rc = bn_ones(&b->batch_ones, &b->num_cap, num)))
        return rc;
    if (b->num_cap != old_num_cap || !b->num_by_chans) {
        free(b->num_by_chans);
        b->num_by_chans = malloc(b->num_cap * (size_t)channels * sizeof(float));
        if (!b->num_by_chans)
            return err_set(CREMA_ERR_NOMEM, "out of memory");
    }
    return bn_ones(&b->spatial_ones, &b->spatial_cap, spatial);
}

/* out[c] = alpha * sum over n and spatial of v: a gemv over each (n, c) row,
 * then a transposed gemv over the batch (Caffe's order). */
static void bn_channel_sums(struct batch_norm *b, const float *v, int num, int spatial, float alpha,
                            float *out)
{
    cpu_gemv(false, b->channels * num, spatial, alpha, v, b->spatial_ones, 0.f, b->num_by_chans);
    cpu_gemv(true, num, b->channels, 1.f, b->num_by_chans, b->batch_ones, 0.f, out);
}

/* out = alpha * broadcast(per_channel) + beta * out, with two K=1 gemms. */
static void bn_broadcast(struct batch_norm *b, const float *per_channel, int num, int spatial, float alpha,
                         float beta, float *out)
{
    cpu_gemm(false, false, num, b->channels, 1, 1.f, b->batch_ones, per_channel, 0.f, b->num_by_chans);
    cpu_gemm(false, false, b->channels * num, spatial, 1, alpha, b->num_by_chans, b->spatial_ones, beta, out);
}

static int bn_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct batch_norm *b = l->priv;
    const int num = bottom[0]->shape[0], channels = b->channels;
    const size_t count = bottom[0]->count;
    if (count == 0)
        return CREMA_OK;
    const int spatial = (int)(count / ((size_t)num * (size_t)channels));
    float *x = tensor_data(bottom[0]), *y = tensor_data(top[0]);
    float *xn = tensor_data(b->x_norm), *temp = tensor_data(b->temp);
    float *m0 = tensor_data(l->blobs[0]), *v0 = tensor_data(l->blobs[1]), *f0 = tensor_data(l->blobs[2]);
    if (!x || !y || !xn || !temp || !m0 || !v0 || !f0)
        return CREMA_ERR_NOMEM;
    if (y != x)
        memcpy(y, x, count * sizeof(float));
    /* Caffe computes 1. / (num * spatial_dim) in double, then passes a float. */
    const float inv_m = (float)(1. / (double)(num * spatial));
    if (b->use_global_stats) {
        const float factor = f0[0] == 0.f ? 0.f : 1.f / f0[0];
        for (int c = 0; c < channels; c++) {
            b->mean[c] = factor * m0[c];
            b->variance[c] = factor * v0[c];
        }
    } else {
        bn_channel_sums(b, x, num, spatial, inv_m, b->mean);
    }
    bn_broadcast(b, b->mean, num, spatial, -1.f, 1.f, y);
    if (!b->use_global_stats) {
        for (size_t i = 0; i < count; i++)
            temp[i] = bn_pow(y[i], 2.);
        bn_channel_sums(b, temp, num, spatial, inv_m, b->variance);
        /* Running statistics, with the unbiased (m / (m - 1)) variance. */
        f0[0] *= b->moving_average_fraction;
        f0[0] += 1.f;
        cpu_axpby(channels, 1.f, b->mean, b->moving_average_fraction, m0);
        const int m = (int)(count / (size_t)channels);
        const float correction = m > 1 ? (float)m / (float)(m - 1) : 1.f;
        cpu_axpby(channels, correction, b->variance, b->moving_average_fraction, v0);
    }
    for (int c = 0; c < channels; c++)
        b->variance[c] += b->eps;
    for (int c = 0; c < channels; c++)
        b->variance[c] = bn_pow(b->variance[c], 0.5);
    bn_broadcast(b, b->variance, num, spatial, 1.f, 0.f, temp);
    for (size_t i = 0; i < count; i++)
        y[i] = y[i] / temp[i];
    memcpy(xn, y, count * sizeof(float));
    return CREMA_OK;
}

static int bn_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    struct batch_norm *b = l->priv;
    const size_t count = bottom[0]->count;
    if (!pd[0] || count == 0)
        return CREMA_OK;
    const float *dy = tensor_diff(top[0]);
    float *dx = tensor_diff(bottom[0]);
    const float *temp = tensor_data(b->temp), *y = tensor_data(b->x_norm);
    if (!dy || !dx || !temp || !y)
        return CREMA_ERR_NOMEM;
    if (dx == dy) {
        /* In place dx overwrites dy, which is needed twice below. */
        float *keep = tensor_diff(b->x_norm);
        if (!keep)
            return CREMA_ERR_NOMEM;
        memcpy(keep, dy, count * sizeof(float));
        dy = keep;
    }
    if (b->use_global_stats) {
        for (size_t i = 0; i < count; i++)
            dx[i] = dy[i] / temp[i];
        return CREMA_OK;
    }
    const int num = bottom[0]->shape[0];
    const int spatial = (int)(count / ((size_t)num * (size_t)b->channels));
    /* dx = (dy - mean(dy) - mean(dy y) y) / std, the means per channel. */
    for (size_t i = 0; i < count; i++)
        dx[i] = y[i] * dy[i];
    bn_channel_sums(b, dx, num, spatial, 1.f, b->mean);
    bn_broadcast(b, b->mean, num, spatial, 1.f, 0.f, dx);
    for (size_t i = 0; i < count; i++)
        dx[i] = y[i] * dx[i];
    bn_channel_sums(b, dy, num, spatial, 1.f, b->mean);
    bn_broadcast(b, b->mean, num, spatial, 1.f, 1.f, dx);
    cpu_axpby((int)count, 1.f, dy, (float)(-1. / (double)(num * spatial)), dx);
    for (size_t i = 0; i < count; i++)
        dx[i] = dx[i] / temp[i];
    return CREMA_OK;
}

const struct layer_kind batch_norm_layer = {
    .type = "BatchNorm",
    .fixed_params = true,
    .min_bottoms = 1, .max_bottoms = 1, .min_tops = 1, .max_tops = 1,
    .setup = bn_setup, .reshape = bn_reshape,
    .forward = bn_forward, .backward = bn_backward, .destroy = bn_destroy,
};
