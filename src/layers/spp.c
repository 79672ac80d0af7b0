/* SPP, spatial pyramid pooling: level i pools into 2^i x 2^i bins and the
 * flattened levels are concatenated, with Caffe's kernel/pad choice per
 * level; on any backend (be->vision's pooling and window copies). */
#include "layers/vision.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct spp {
    int height_levels; /* pyramid_height */
    int method;
    int num, channels;
    struct pool_geom *levels;
    struct tensor **masks;      /* MAX argmax per level (ints) */
    struct tensor *buf;         /* one level's pooled values or diffs */
    struct tensor *level_diff;  /* one level's bottom diff before summing */
};

static int spp_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__SPPParameter def = CAFFE__SPPPARAMETER__INIT;
    const Caffe__SPPParameter *sp = l->param->spp_param ? l->param->spp_param : &def;
    struct spp *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = s;
    if (sp->pool == CAFFE__SPPPARAMETER__POOL_METHOD__STOCHASTIC)
        return err_set(CREMA_ERR_UNSUPPORTED,
                       "spp_param.pool: STOCHASTIC pooling is GPU-only in Caffe (its CPU "
                       "Forward aborts with NOT_IMPLEMENTED); crema's CPU backend has none");
    if (sp->pool != CAFFE__SPPPARAMETER__POOL_METHOD__MAX &&
        sp->pool != CAFFE__SPPPARAMETER__POOL_METHOD__AVE)
        return err_set(CREMA_ERR_INVALID, "spp_param.pool: unknown method %d", (int)sp->pool);
    s->method = sp->pool == CAFFE__SPPPARAMETER__POOL_METHOD__MAX ? VISION_POOL_MAX : VISION_POOL_AVE;
    if (!sp->has_pyramid_height || sp->pyramid_height == 0 || sp->pyramid_height > 24)
        return err_set(CREMA_ERR_INVALID, "spp_param.pyramid_height must be given, 1 to 24 (got %u)",
                       sp->pyramid_height);
    s->height_levels = (int)sp->pyramid_height;
    s->levels = calloc((size_t)s->height_levels, sizeof *s->levels);
    s->masks = calloc((size_t)s->height_levels, sizeof *s->masks);
    if (!s->levels || !s->masks || !(s->buf = tensor_new()) || !(s->level_diff = tensor_new()))
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    for (int i = 0; s->method == VISION_POOL_MAX && i < s->height_levels; i++)
        if (!(s->masks[i] = tensor_new()))
            return err_set(CREMA_ERR_NOMEM, "out of memory");
    return CREMA_OK;
}

static int reshape1(struct tensor *t, size_t n)
{
    if (n > (size_t)1 << 31)
        return err_set(CREMA_ERR_SHAPE, "SPP buffer too large (%zu values)", n);
    int shape[1] = { (int)n };
    return tensor_reshape(t, 1, shape);
}

static int spp_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct spp *s = l->priv;
    const struct tensor *b = bottom[0];
    if (b->num_axes != 4)
        return err_set(CREMA_ERR_SHAPE,
                       "SPP needs a 4-axis input (num, channels, height, width), got %d axes",
                       b->num_axes);
    int H = b->shape[2], W = b->shape[3];
    if (H <= 0 || W <= 0)
        return err_set(CREMA_ERR_SHAPE, "SPP input dimensions cannot be zero (%dx%d)", H, W);
    if (b->count > (size_t)1 << 31)
        return err_set(CREMA_ERR_SHAPE, "SPP input too large (%zu values)", b->count);
    s->num = b->shape[0];
    s->channels = b->shape[1];
    size_t planes = (size_t)s->num * s->channels, total = 0, biggest = 0;
    int rc;
    for (int i = 0; i < s->height_levels; i++) {
        struct pool_geom *g = &s->levels[i];
        int bins = 1 << i;
        memset(g, 0, sizeof *g);
        g->method = s->method;
        g->height = H;
        g->width = W;
        g->kernel_h = (int)ceil(H / (double)bins);
        g->kernel_w = (int)ceil(W / (double)bins);
        g->pad_h = (g->kernel_h * bins - H + 1) / 2;
        g->pad_w = (g->kernel_w * bins - W + 1) / 2;
        g->stride_h = g->kernel_h;
        g->stride_w = g->kernel_w;
        if (g->pad_h >= g->kernel_h || g->pad_w >= g->kernel_w)
            return err_set(CREMA_ERR_SHAPE,
                           "SPP level %d on a %dx%d input needs pad %dx%d with kernel %dx%d "
                           "(pad must be smaller than the kernel; use fewer pyramid levels)",
                           i, H, W, g->pad_h, g->pad_w, g->kernel_h, g->kernel_w);
        if ((rc = pool_geom_shape(g, true)))
            return rc;
        size_t n = planes * (size_t)g->pooled_h * g->pooled_w;
        total += n;
        biggest = n > biggest ? n : biggest;
        if (s->method == VISION_POOL_MAX && (rc = reshape1(s->masks[i], n)))
            return rc;
    }
    if ((rc = reshape1(s->buf, biggest)) || (rc = reshape1(s->level_diff, b->count)))
        return rc;
    if (s->height_levels == 1) /* Caffe: the pooling layer's own N x C x 1 x 1 top */
        return tensor_reshape4(top[0], s->num, s->channels, s->levels[0].pooled_h,
                               s->levels[0].pooled_w);
    int shape[2] = { s->num, (int)(s->num ? total / (size_t)s->num : 0) };
    return tensor_reshape(top[0], 2, shape);
}

/* Level i's block inside one item of the concatenated top. */
static int level_offset(const struct spp *s, int level)
{
    size_t off = 0;
    for (int i = 0; i < level; i++)
        off += (size_t)s->channels * s->levels[i].pooled_h * s->levels[i].pooled_w;
    return (int)off;
}

/* The top seen as num x row, and level i's num x per block of it at
 * column `off`: the window the level's pooled values fill. */
static void level_window(const struct spp *s, const struct tensor *top, int i, int big[2], int small[2],
                         int offsets[2])
{
    const struct pool_geom *g = &s->levels[i];
    big[0] = small[0] = s->num;
    big[1] = (int)(top->count / (size_t)(s->num ? s->num : 1));
    small[1] = s->channels * g->pooled_h * g->pooled_w;
    offsets[0] = 0;
    offsets[1] = level_offset(s, i);
}

static int spp_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct spp *s = l->priv;
    const struct backend *be = l->be;
    const float *x = LCDATA(bottom[0]);
    float *y = LDATA(top[0]), *buf = LDATA(s->buf);
    if (!x || !y || !buf)
        return CREMA_ERR_NOMEM;
    for (int i = 0; i < s->height_levels; i++) {
        int *mask = s->masks[i] ? (int *)LDATA(s->masks[i]) : NULL;
        if (s->masks[i] && !mask)
            return CREMA_ERR_NOMEM;
        be->vision->pool_forward(be, &s->levels[i], s->num * s->channels, x, buf, mask, NULL);
        int big[2], small[2], off[2];
        level_window(s, top[0], i, big, small, off);
        be->vision->crop_scatter(be, 2, big, small, off, buf, y);
    }
    return CREMA_OK;
}

static int spp_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                        struct tensor **bottom)
{
    struct spp *s = l->priv;
    const struct backend *be = l->be;
    if (!propagate_down[0])
        return CREMA_OK;
    const float *dy = LCDIFF(top[0]);
    float *dx = LDIFF(bottom[0]), *buf = LDATA(s->buf), *level_diff = LDATA(s->level_diff);
    if (!dy || !dx || !buf || !level_diff)
        return CREMA_ERR_NOMEM;
    int count = (int)bottom[0]->count;
    /* Each level's gradient is made whole first, then the levels are summed
     * in order, as Caffe's internal Split layer does. */
    for (int i = 0; i < s->height_levels; i++) {
        const int *mask = s->masks[i] ? (const int *)LCDATA(s->masks[i]) : NULL;
        if (s->masks[i] && !mask)
            return CREMA_ERR_NOMEM;
        int big[2], small[2], off[2];
        level_window(s, top[0], i, big, small, off);
        be->vision->crop_gather(be, 2, big, small, off, dy, buf);
        float *target = i == 0 ? dx : level_diff;
        be->vision->pool_backward(be, &s->levels[i], s->num * s->channels, buf, mask, NULL, target);
        if (i > 0)
            be->math->add(be, count, dx, level_diff, dx);
    }
    return CREMA_OK;
}

static void spp_destroy(struct layer *l)
{
    struct spp *s = l->priv;
    if (s) {
        for (int i = 0; s->masks && i < s->height_levels; i++)
            tensor_free(s->masks[i]);
        free(s->masks);
        free(s->levels);
        tensor_free(s->buf);
        tensor_free(s->level_diff);
    }
    free(s);
    l->priv = NULL;
}

const struct layer_kind spp_layer = {
    .type = "SPP",
    .min_bottoms = 1, .max_bottoms = 1,
    .min_tops = 1, .max_tops = 1,
    .setup = spp_setup,
    .reshape = spp_reshape,
    .forward = spp_forward,
    .backward = spp_backward,
    .forward_dev = spp_forward,
    .backward_dev = spp_backward,
    .runs_on = vision_runs_on,
    .destroy = spp_destroy,
};
