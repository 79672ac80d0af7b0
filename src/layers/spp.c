/* SPP, spatial pyramid pooling: level i pools into 2^i x 2^i bins and the
 * flattened levels are concatenated, with Caffe's kernel/pad choice per level. */
#include "cpu/math.h"
#include "layers/vision.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct spp {
    int height_levels; /* pyramid_height */
    int method;
    int num, channels;
    struct pool_geom *levels;
    int **masks;      /* MAX argmax per level */
    float *buf;       /* one level's pooled values or diffs */
    float *level_diff; /* one level's bottom diff before summing */
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
    s->method = sp->pool == CAFFE__SPPPARAMETER__POOL_METHOD__MAX
                    ? CAFFE__POOLING_PARAMETER__POOL_METHOD__MAX
                    : CAFFE__POOLING_PARAMETER__POOL_METHOD__AVE;
    if (!sp->has_pyramid_height || sp->pyramid_height == 0 || sp->pyramid_height > 24)
        return err_set(CREMA_ERR_INVALID, "spp_param.pyramid_height must be given, 1 to 24 (got %u)",
                       sp->pyramid_height);
    s->height_levels = (int)sp->pyramid_height;
    s->levels = calloc((size_t)s->height_levels, sizeof *s->levels);
    s->masks = calloc((size_t)s->height_levels, sizeof *s->masks);
    if (!s->levels || !s->masks)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    return CREMA_OK;
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
    s->num = b->shape[0];
    s->channels = b->shape[1];
    size_t planes = (size_t)s->num * s->channels, total = 0, biggest = 0;
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
        int rc = pool_geom_shape(g, true);
        if (rc)
            return rc;
        size_t n = planes * (size_t)g->pooled_h * g->pooled_w;
        total += n;
        biggest = n > biggest ? n : biggest;
        if (s->method == CAFFE__POOLING_PARAMETER__POOL_METHOD__MAX) {
            int *m = realloc(s->masks[i], (n ? n : 1) * sizeof *m);
            if (!m)
                return err_set(CREMA_ERR_NOMEM, "out of memory");
            s->masks[i] = m;
        }
    }
    float *p = realloc(s->buf, (biggest ? biggest : 1) * sizeof *p);
    if (!p)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    s->buf = p;
    size_t in = b->count ? b->count : 1;
    if (!(p = realloc(s->level_diff, in * sizeof *p)))
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    s->level_diff = p;
    if (s->height_levels == 1) /* Caffe: the pooling layer's own N x C x 1 x 1 top */
        return tensor_reshape4(top[0], s->num, s->channels, s->levels[0].pooled_h,
                               s->levels[0].pooled_w);
    int shape[2] = { s->num, (int)(s->num ? total / (size_t)s->num : 0) };
    return tensor_reshape(top[0], 2, shape);
}

/* Level i's block inside one item of the concatenated top. */
static size_t level_offset(const struct spp *s, int level)
{
    size_t off = 0;
    for (int i = 0; i < level; i++)
        off += (size_t)s->channels * s->levels[i].pooled_h * s->levels[i].pooled_w;
    return off;
}

static int spp_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct spp *s = l->priv;
    const float *x = tensor_data(bottom[0]);
    float *y = tensor_data(top[0]);
    size_t row = top[0]->count / (size_t)(s->num ? s->num : 1);
    for (int i = 0; i < s->height_levels; i++) {
        const struct pool_geom *g = &s->levels[i];
        pool_forward(g, s->num * s->channels, x, s->buf, s->masks[i], NULL);
        size_t per = (size_t)s->channels * g->pooled_h * g->pooled_w, off = level_offset(s, i);
        for (int n = 0; n < s->num; n++)
            memcpy(y + n * row + off, s->buf + n * per, per * sizeof *y);
    }
    return CREMA_OK;
}

static int spp_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                        struct tensor **bottom)
{
    struct spp *s = l->priv;
    if (!propagate_down[0])
        return CREMA_OK;
    const float *dy = tensor_diff(top[0]);
    float *dx = tensor_diff(bottom[0]);
    size_t row = top[0]->count / (size_t)(s->num ? s->num : 1), count = bottom[0]->count;
    /* Each level's gradient is made whole first, then the levels are summed
     * in order, as Caffe's internal Split layer does. */
    for (int i = 0; i < s->height_levels; i++) {
        const struct pool_geom *g = &s->levels[i];
        size_t per = (size_t)s->channels * g->pooled_h * g->pooled_w, off = level_offset(s, i);
        for (int n = 0; n < s->num; n++)
            memcpy(s->buf + n * per, dy + n * row + off, per * sizeof *dy);
        float *target = i == 0 ? dx : s->level_diff;
        pool_backward(g, s->num * s->channels, s->buf, s->masks[i], NULL, target);
        if (i > 0)
            for (size_t k = 0; k < count; k++)
                dx[k] += s->level_diff[k];
    }
    return CREMA_OK;
}

static void spp_destroy(struct layer *l)
{
    struct spp *s = l->priv;
    if (s) {
        for (int i = 0; s->masks && i < s->height_levels; i++)
            free(s->masks[i]);
        free(s->masks);
        free(s->levels);
        free(s->buf);
        free(s->level_diff);
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
    .destroy = spp_destroy,
};
