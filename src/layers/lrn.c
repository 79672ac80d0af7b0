/* LRN, local response normalisation: ACROSS_CHANNELS as Caffe computes it
 * (running window sums), WITHIN_CHANNEL as Caffe's chain of internal layers
 * (square, AVE pool, power, product) fused, with the same roundings; on any
 * backend (be->vision's LRN kernels). */
#include "layers/vision.h"

#include <stdlib.h>

struct lrn {
    struct lrn_geom g;
    bool within;
    /* ACROSS: k + alpha/size * window sum; WITHIN: the pool output */
    struct tensor *scale;
    struct tensor *power;       /* WITHIN: (1 + alpha * pool)^-beta */
    struct tensor *work, *work2; /* WITHIN: scratch */
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
    s->g.size = (int)lp->local_size;
    s->g.alpha = lp->alpha;
    s->g.beta = lp->beta;
    s->g.k = lp->k;
    if (lp->norm_region != CAFFE__LRNPARAMETER__NORM_REGION__ACROSS_CHANNELS &&
        lp->norm_region != CAFFE__LRNPARAMETER__NORM_REGION__WITHIN_CHANNEL)
        return err_set(CREMA_ERR_INVALID, "lrn_param.norm_region: unknown region %d",
                       (int)lp->norm_region);
    s->within = lp->norm_region == CAFFE__LRNPARAMETER__NORM_REGION__WITHIN_CHANNEL;
    if (!(s->scale = tensor_new()) || !(s->power = tensor_new()) || !(s->work = tensor_new()) ||
        !(s->work2 = tensor_new()))
        return err_set(CREMA_ERR_NOMEM, "out of memory");
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
    s->g.num = b->shape[0];
    s->g.channels = b->shape[1];
    s->g.height = b->shape[2];
    s->g.width = b->shape[3];
    if (b->count > (size_t)1 << 31)
        return err_set(CREMA_ERR_SHAPE, "LRN input too large (%zu values)", b->count);
    int rc = tensor_reshape_like(top[0], b);
    if (rc || (rc = tensor_reshape_like(s->scale, b)))
        return rc;
    if (s->within) {
        /* Caffe's internal AVE pooling: size x size, pad (size-1)/2,
         * stride 1, CEIL, which must keep height x width. */
        int pre = (s->g.size - 1) / 2;
        struct pool_geom g = { .method = VISION_POOL_AVE, .kernel_h = s->g.size, .kernel_w = s->g.size,
                               .pad_h = pre, .pad_w = pre, .stride_h = 1, .stride_w = 1,
                               .height = s->g.height, .width = s->g.width };
        if ((rc = pool_geom_shape(&g, true)))
            return rc;
        if ((rc = tensor_reshape_like(s->power, b)) || (rc = tensor_reshape_like(s->work, b)) ||
            (rc = tensor_reshape_like(s->work2, b)))
            return rc;
    }
    return CREMA_OK;
}

static int lrn_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct lrn *s = l->priv;
    const struct backend *be = l->be;
    const float *x = LCDATA(bottom[0]);
    float *scale = LDATA(s->scale);
    if (!s->within) {
        float *y = LDATA(top[0]);
        if (!x || !y || !scale)
            return CREMA_ERR_NOMEM;
        return be->vision->lrn_across_forward(be, &s->g, x, scale, y);
    }
    float *power = LDATA(s->power), *work = LDATA(s->work), *y = LDATA(top[0]);
    if (!x || !y || !scale || !power || !work)
        return CREMA_ERR_NOMEM;
    be->vision->lrn_within_forward(be, &s->g, x, work, scale, power, y);
    return CREMA_OK;
}

static int lrn_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                        struct tensor **bottom)
{
    struct lrn *s = l->priv;
    const struct backend *be = l->be;
    if (!propagate_down[0])
        return CREMA_OK;
    const float *x = LCDATA(bottom[0]), *dy = LCDIFF(top[0]), *scale = LCDATA(s->scale);
    if (!s->within) {
        const float *y = LCDATA(top[0]);
        float *dx = LDIFF(bottom[0]);
        if (!x || !dy || !scale || !y || !dx)
            return CREMA_ERR_NOMEM;
        return be->vision->lrn_across_backward(be, &s->g, x, y, scale, dy, dx);
    }
    const float *power = LCDATA(s->power);
    float *work = LDATA(s->work), *work2 = LDATA(s->work2), *dx = LDIFF(bottom[0]);
    if (!x || !dy || !scale || !power || !work || !work2 || !dx)
        return CREMA_ERR_NOMEM;
    be->vision->lrn_within_backward(be, &s->g, x, dy, scale, power, work, work2, dx);
    return CREMA_OK;
}

static void lrn_destroy(struct layer *l)
{
    struct lrn *s = l->priv;
    if (s) {
        tensor_free(s->scale);
        tensor_free(s->power);
        tensor_free(s->work);
        tensor_free(s->work2);
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
    .forward_dev = lrn_forward,
    .backward_dev = lrn_backward,
    .runs_on = vision_runs_on,
    .destroy = lrn_destroy,
};
