/* BatchNorm, as Caffe's: normalises each channel by the batch statistics
 * (TRAIN) or by running statistics kept in three blobs (mean sum, variance
 * sum, and the factor they are divided by). No scale or shift of its own. */
#include "layers/layer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct batch_norm {
    bool use_global_stats;
    float moving_average_fraction, eps;
    int channels;
    float *mean, *variance; /* per channel; variance holds the std after forward */
    struct tensor *x_norm;  /* y, kept for backward; its diff holds dy in place */
    struct tensor *inv_std; /* the std broadcast to the shape of x */
    size_t cap;             /* floats in mean and variance */
};

static void bn_destroy(struct layer *l)
{
    struct batch_norm *b = l->priv;
    if (!b)
        return;
    free(b->mean);
    free(b->variance);
    tensor_free(b->x_norm);
    tensor_free(b->inv_std);
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
    b->x_norm = tensor_new();
    b->inv_std = tensor_new();
    if (!b->x_norm || !b->inv_std)
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
    /* The statistics are not learned: Caffe fixes their lr_mult at 0, so
     * backward never produces a gradient for them. */
    for (int i = 0; i < l->n_blobs; i++)
        l->param_propagate_down[i] = false;
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
        rc = tensor_reshape_like(b->inv_std, bottom[0]);
    if (!rc && b->cap < (size_t)b->channels) {
        free(b->mean);
        free(b->variance);
        b->mean = calloc((size_t)b->channels, sizeof(float));
        b->variance = calloc((size_t)b->channels, sizeof(float));
        if (!b->mean || !b->variance)
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        b->cap = (size_t)b->channels;
    }
    return rc;
}

/* Per-channel sums of v over the batch and the spatial positions: first each
 * (n, c) row times alpha, then the rows of a channel added up (Caffe's two gemvs). */
static void bn_channel_sums(const float *v, int num, int channels, size_t spatial, float alpha, float *out)
{
    for (int c = 0; c < channels; c++)
        out[c] = 0.f;
    for (int n = 0; n < num; n++)
        for (int c = 0; c < channels; c++) {
            const float *row = v + ((size_t)n * (size_t)channels + (size_t)c) * spatial;
            float s = 0.f;
            for (size_t i = 0; i < spatial; i++)
                s += row[i];
            out[c] += alpha * s;
        }
}

static int bn_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct batch_norm *b = l->priv;
    const int num = bottom[0]->shape[0], channels = b->channels;
    const size_t count = bottom[0]->count;
    const size_t spatial = num && channels ? count / ((size_t)num * (size_t)channels) : 0;
    float *x = tensor_data(bottom[0]), *y = tensor_data(top[0]);
    float *xn = tensor_data(b->x_norm), *sd = tensor_data(b->inv_std);
    if (!x || !y || !xn || !sd)
        return CREMA_ERR_NOMEM;
    float *m0 = tensor_data(l->blobs[0]), *v0 = tensor_data(l->blobs[1]), *f0 = tensor_data(l->blobs[2]);
    if (count == 0)
        return CREMA_OK;
    if (y != x)
        memcpy(y, x, count * sizeof(float));
    const float inv_m = (float)(1. / ((double)num * (double)spatial));
    if (b->use_global_stats) {
        const float factor = f0[0] == 0.f ? 0.f : 1.f / f0[0];
        for (int c = 0; c < channels; c++) {
            b->mean[c] = factor * m0[c];
            b->variance[c] = factor * v0[c];
        }
    } else {
        bn_channel_sums(y, num, channels, spatial, inv_m, b->mean);
    }
    for (size_t i = 0; i < count; i++)
        y[i] -= b->mean[(i / spatial) % (size_t)channels];
    if (!b->use_global_stats) {
        for (size_t i = 0; i < count; i++)
            sd[i] = y[i] * y[i];
        bn_channel_sums(sd, num, channels, spatial, inv_m, b->variance);
        /* Running statistics, with the unbiased (m / (m - 1)) variance. */
        f0[0] = f0[0] * b->moving_average_fraction + 1.f;
        size_t m = count / (size_t)channels;
        const float correction = m > 1 ? (float)m / (float)(m - 1) : 1.f;
        for (int c = 0; c < channels; c++) {
            m0[c] = b->mean[c] + b->moving_average_fraction * m0[c];
            v0[c] = correction * b->variance[c] + b->moving_average_fraction * v0[c];
        }
    }
    for (int c = 0; c < channels; c++)
        b->variance[c] = powf(b->variance[c] + b->eps, 0.5f);
    for (size_t i = 0; i < count; i++) {
        sd[i] = b->variance[(i / spatial) % (size_t)channels];
        y[i] /= sd[i];
    }
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
    const float *sd = tensor_data(b->inv_std), *y = tensor_data(b->x_norm);
    if (!dy || !dx || !sd || !y)
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
            dx[i] = dy[i] / sd[i];
        return CREMA_OK;
    }
    const int num = bottom[0]->shape[0], channels = b->channels;
    const size_t spatial = count / ((size_t)num * (size_t)channels);
    /* dx = (dy - mean(dy) - y mean(dy y)) / std, the means per channel. */
    for (size_t i = 0; i < count; i++)
        dx[i] = y[i] * dy[i];
    bn_channel_sums(dx, num, channels, spatial, 1.f, b->mean);
    for (size_t i = 0; i < count; i++)
        dx[i] = b->mean[(i / spatial) % (size_t)channels] * y[i];
    bn_channel_sums(dy, num, channels, spatial, 1.f, b->mean);
    const float inv_m = (float)(-1. / ((double)num * (double)spatial));
    for (size_t i = 0; i < count; i++) {
        dx[i] += b->mean[(i / spatial) % (size_t)channels];
        dx[i] = (dy[i] + inv_m * dx[i]) / sd[i];
    }
    return CREMA_OK;
}

const struct layer_kind batch_norm_layer = {
    .type = "BatchNorm",
    .min_bottoms = 1, .max_bottoms = 1, .min_tops = 1, .max_tops = 1,
    .setup = bn_setup, .reshape = bn_reshape,
    .forward = bn_forward, .backward = bn_backward, .destroy = bn_destroy,
};
