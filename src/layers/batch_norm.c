/* BatchNorm, as Caffe's: normalises each channel by the batch statistics
 * (TRAIN) or by running statistics kept in three blobs (mean sum, variance
 * sum, and the factor they are divided by). No scale or shift of its own.
 * The arithmetic is Caffe's sequence of BLAS calls (gemv sums over ones
 * vectors, K=1 gemms to broadcast) through l->be->math, so that on the CPU
 * rounding matches Caffe bit for bit; the per-channel steps are l->be->norm's,
 * so on a device the statistics and the factor blob never visit the host. */
#include "layers/layer.h"

#include <stdint.h>
#include <stdlib.h>

struct batch_norm {
    bool use_global_stats;
    float moving_average_fraction, eps;
    int channels;
    struct tensor *mean, *variance; /* per channel; variance holds the std after forward */
    struct tensor *num_by_chans;    /* num * channels partial sums / broadcast rows */
    struct tensor *batch_ones;      /* num ones (layer_ones) */
    struct tensor *spatial_ones;    /* spatial ones (layer_ones) */
    struct tensor *x_norm;          /* y, kept for backward; its diff holds dy when in place */
    struct tensor *temp;            /* the std broadcast to the shape of x */
};

static void bn_destroy(struct layer *l)
{
    struct batch_norm *b = l->priv;
    if (!b)
        return;
    tensor_free(b->mean);
    tensor_free(b->variance);
    tensor_free(b->num_by_chans);
    tensor_free(b->batch_ones);
    tensor_free(b->spatial_ones);
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
    b->mean = tensor_new();
    b->variance = tensor_new();
    b->num_by_chans = tensor_new();
    b->x_norm = tensor_new();
    b->temp = tensor_new();
    if (!b->mean || !b->variance || !b->num_by_chans || !b->x_norm || !b->temp)
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

static int bn_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct batch_norm *b = l->priv;
    int channels = bottom[0]->num_axes == 1 ? 1 : bottom[0]->shape[1];
    if (bottom[0]->num_axes < 1 || channels != b->channels)
        return err_set(CREMA_ERR_SHAPE, "bottom has %d channels, the layer was set up for %d", channels,
                       b->channels);
    /* The BLAS calls take int sizes. */
    const size_t nc = (size_t)bottom[0]->shape[0] * (size_t)channels;
    if (bottom[0]->count > (size_t)INT32_MAX || nc > (size_t)INT32_MAX)
        return err_set(CREMA_ERR_SHAPE, "bottom has %zu values (%zu rows); BatchNorm takes at most %d",
                       bottom[0]->count, nc, INT32_MAX);
    int rc = CREMA_OK;
    if (top[0] != bottom[0])
        rc = tensor_reshape_like(top[0], bottom[0]);
    if (!rc)
        rc = tensor_reshape_like(b->x_norm, bottom[0]);
    if (!rc)
        rc = tensor_reshape_like(b->temp, bottom[0]);
    const int rows = (int)nc;
    if (!rc)
        rc = tensor_reshape(b->mean, 1, &channels);
    if (!rc)
        rc = tensor_reshape(b->variance, 1, &channels);
    if (!rc)
        rc = tensor_reshape(b->num_by_chans, 1, &rows);
    return rc;
}

/* The pointers Caffe's BLAS sequence works with, on l->be. */
struct bn_work {
    const struct backend *be;
    int num, channels, spatial;
    float *num_by_chans;
    const float *batch_ones, *spatial_ones;
};

static int bn_work(struct layer *l, struct tensor *bottom, struct bn_work *w)
{
    struct batch_norm *b = l->priv;
    w->be = l->be;
    w->num = bottom->shape[0];
    w->channels = b->channels;
    w->spatial = (int)(bottom->count / ((size_t)w->num * (size_t)w->channels));
    w->num_by_chans = LDATA(b->num_by_chans);
    w->batch_ones = layer_ones(l, &b->batch_ones, (size_t)w->num);
    w->spatial_ones = layer_ones(l, &b->spatial_ones, (size_t)w->spatial);
    return w->num_by_chans && w->batch_ones && w->spatial_ones ? CREMA_OK : CREMA_ERR_NOMEM;
}

/* out[c] = alpha * sum over n and spatial of v: a gemv over each (n, c) row,
 * then a transposed gemv over the batch (Caffe's order). */
static void bn_channel_sums(const struct bn_work *w, const float *v, float alpha, float *out)
{
    const struct math_ops *m = w->be->math;
    m->gemv(w->be, false, w->channels * w->num, w->spatial, alpha, v, w->spatial_ones, 0.f, w->num_by_chans);
    m->gemv(w->be, true, w->num, w->channels, 1.f, w->num_by_chans, w->batch_ones, 0.f, out);
}

/* out = alpha * broadcast(per_channel) + beta * out, with two K=1 gemms. */
static void bn_broadcast(const struct bn_work *w, const float *per_channel, float alpha, float beta, float *out)
{
    const struct math_ops *m = w->be->math;
    m->gemm(w->be, false, false, w->num, w->channels, 1, 1.f, w->batch_ones, per_channel, 0.f, w->num_by_chans);
    m->gemm(w->be, false, false, w->channels * w->num, w->spatial, 1, alpha, w->num_by_chans, w->spatial_ones, beta,
            out);
}

static int bn_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct batch_norm *b = l->priv;
    const struct backend *be = l->be;
    const struct math_ops *m = be->math;
    const size_t count = bottom[0]->count;
    if (count == 0)
        return CREMA_OK;
    struct bn_work w;
    int rc = bn_work(l, bottom[0], &w);
    if (rc)
        return rc;
    const int channels = b->channels;
    const float *x = LCDATA(bottom[0]);
    float *y = LDATA(top[0]);
    float *xn = LDATA(b->x_norm), *temp = LDATA(b->temp);
    float *mean = LDATA(b->mean), *var = LDATA(b->variance);
    if (!x || !y || !xn || !temp || !mean || !var)
        return CREMA_ERR_NOMEM;
    m->copy(be, count, x, y);
    /* Caffe computes 1. / (num * spatial_dim) in double, then passes a float. */
    const float inv_m = (float)(1. / (double)(w.num * w.spatial));
    if (b->use_global_stats) {
        const float *m0 = LCDATA(l->blobs[0]), *v0 = LCDATA(l->blobs[1]), *f0 = LCDATA(l->blobs[2]);
        if (!m0 || !v0 || !f0)
            return CREMA_ERR_NOMEM;
        be->norm->bn_global_stats(be, channels, m0, v0, f0, mean, var);
    } else {
        bn_channel_sums(&w, x, inv_m, mean);
    }
    bn_broadcast(&w, mean, -1.f, 1.f, y);
    if (!b->use_global_stats) {
        float *m0 = LDATA(l->blobs[0]), *v0 = LDATA(l->blobs[1]), *f0 = LDATA(l->blobs[2]);
        if (!m0 || !v0 || !f0)
            return CREMA_ERR_NOMEM;
        m->sqr(be, (int)count, y, temp);
        bn_channel_sums(&w, temp, inv_m, var);
        /* Running statistics, with the unbiased (m / (m - 1)) variance. */
        be->norm->bn_update_factor(be, b->moving_average_fraction, f0);
        m->axpby(be, channels, 1.f, mean, b->moving_average_fraction, m0);
        const int mm = (int)(count / (size_t)channels);
        const float correction = mm > 1 ? (float)mm / (float)(mm - 1) : 1.f;
        m->axpby(be, channels, correction, var, b->moving_average_fraction, v0);
    }
    be->norm->bn_std(be, channels, b->eps, var);
    bn_broadcast(&w, var, 1.f, 0.f, temp);
    m->div(be, (int)count, y, temp, y);
    m->copy(be, count, y, xn);
    return CREMA_OK;
}

static int bn_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    struct batch_norm *b = l->priv;
    const struct backend *be = l->be;
    const struct math_ops *m = be->math;
    const size_t count = bottom[0]->count;
    if (!pd[0] || count == 0)
        return CREMA_OK;
    const int n = (int)count;
    const float *dy = LCDIFF(top[0]);
    float *dx = LDIFF(bottom[0]);
    const float *temp = LCDATA(b->temp), *y = LCDATA(b->x_norm);
    if (!dy || !dx || !temp || !y)
        return CREMA_ERR_NOMEM;
    if (dx == dy) {
        /* In place dx overwrites dy, which is needed twice below. */
        float *keep = LDIFF(b->x_norm);
        if (!keep)
            return CREMA_ERR_NOMEM;
        m->copy(be, count, dy, keep);
        dy = keep;
    }
    if (b->use_global_stats) {
        m->div(be, n, dy, temp, dx);
        return CREMA_OK;
    }
    struct bn_work w;
    int rc = bn_work(l, bottom[0], &w);
    float *mean = LDATA(b->mean);
    if (rc || !mean)
        return CREMA_ERR_NOMEM;
    /* dx = (dy - mean(dy) - mean(dy y) y) / std, the means per channel. */
    m->mul(be, n, y, dy, dx);
    bn_channel_sums(&w, dx, 1.f, mean);
    bn_broadcast(&w, mean, 1.f, 0.f, dx);
    m->mul(be, n, y, dx, dx);
    bn_channel_sums(&w, dy, 1.f, mean);
    bn_broadcast(&w, mean, 1.f, 1.f, dx);
    m->axpby(be, n, 1.f, dy, (float)(-1. / (double)(w.num * w.spatial)), dx);
    m->div(be, n, dx, temp, dx);
    return CREMA_OK;
}

static bool bn_runs_on(const struct backend *be)
{
    return be->norm != NULL;
}

const struct layer_kind batch_norm_layer = {
    .type = "BatchNorm",
    .fixed_params = true,
    .min_bottoms = 1, .max_bottoms = 1, .min_tops = 1, .max_tops = 1,
    .setup = bn_setup, .reshape = bn_reshape,
    .forward = bn_forward, .backward = bn_backward,
    .forward_dev = bn_forward, .backward_dev = bn_backward,
    .runs_on = bn_runs_on, .destroy = bn_destroy,
};
