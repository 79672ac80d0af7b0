/* Pooling (MAX, AVE) over 4-D blobs, with Caffe's rounding, padding and
 * divisor rules, on any backend (be->vision's pool kernels). */
#include "layers/vision.h"

#include <math.h>
#include <stdlib.h>

#define POOL_MAX CAFFE__POOLING_PARAMETER__POOL_METHOD__MAX
#define POOL_AVE CAFFE__POOLING_PARAMETER__POOL_METHOD__AVE
#define POOL_STOCHASTIC CAFFE__POOLING_PARAMETER__POOL_METHOD__STOCHASTIC

_Static_assert((int)POOL_MAX == VISION_POOL_MAX && (int)POOL_AVE == VISION_POOL_AVE,
               "core/ops_vision.h's pool methods are Caffe's");
/* The argmax scratch is an int array in a float tensor's memory. */
_Static_assert(sizeof(int) == sizeof(float), "an int mask fits a float tensor");

static int pooled_extent(int in, int pad, int kernel, int stride, bool ceil_mode)
{
    float span = (float)(in + 2 * pad - kernel) / (float)stride;
    return (int)(ceil_mode ? ceilf(span) : floorf(span)) + 1;
}

int pool_geom_shape(struct pool_geom *g, bool ceil_mode)
{
    g->pooled_h = pooled_extent(g->height, g->pad_h, g->kernel_h, g->stride_h, ceil_mode);
    g->pooled_w = pooled_extent(g->width, g->pad_w, g->kernel_w, g->stride_w, ceil_mode);
    if (g->pad_h || g->pad_w) {
        /* The last window must start inside the image or its top/left padding. */
        if ((g->pooled_h - 1) * g->stride_h >= g->height + g->pad_h)
            g->pooled_h--;
        if ((g->pooled_w - 1) * g->stride_w >= g->width + g->pad_w)
            g->pooled_w--;
    }
    if (g->pooled_h <= 0 || g->pooled_w <= 0)
        return err_set(CREMA_ERR_SHAPE,
                       "pooling a %dx%d input with kernel %dx%d, pad %dx%d, stride %dx%d gives "
                       "an empty %dx%d output",
                       g->height, g->width, g->kernel_h, g->kernel_w, g->pad_h, g->pad_w,
                       g->stride_h, g->stride_w, g->pooled_h, g->pooled_w);
    return CREMA_OK;
}

struct pooling {
    struct pool_geom g;
    bool global, ceil_mode;
    struct tensor *mask; /* argmax (ints) when there is no mask top */
};

static int pooling_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__PoolingParameter def = CAFFE__POOLING_PARAMETER__INIT;
    const Caffe__PoolingParameter *pp = l->param->pooling_param ? l->param->pooling_param : &def;
    struct pooling *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = s;
    struct pool_geom *g = &s->g;
    g->method = pp->pool;
    if (pp->pool == POOL_STOCHASTIC)
        return err_set(CREMA_ERR_UNSUPPORTED,
                       "pooling_param.pool: STOCHASTIC pooling is GPU-only in Caffe (its CPU "
                       "Forward aborts with NOT_IMPLEMENTED); crema's CPU backend has none");
    if (pp->pool != POOL_MAX && pp->pool != POOL_AVE)
        return err_set(CREMA_ERR_INVALID, "pooling_param.pool: unknown method %d", (int)pp->pool);
    if (l->n_top > 1 && pp->pool != POOL_MAX)
        return err_set(CREMA_ERR_INVALID,
                       "only MAX pooling has a second (mask) top; this layer has %d tops", l->n_top);
    s->global = pp->has_global_pooling && pp->global_pooling;
    s->ceil_mode = pp->round_mode == CAFFE__POOLING_PARAMETER__ROUND_MODE__CEIL;
    if (s->global) {
        if (pp->has_kernel_size || pp->has_kernel_h || pp->has_kernel_w)
            return err_set(CREMA_ERR_INVALID,
                           "pooling_param: with global_pooling the kernel size cannot be given");
    } else {
        if (pp->has_kernel_size == (pp->has_kernel_h || pp->has_kernel_w))
            return err_set(CREMA_ERR_INVALID,
                           "pooling_param: give kernel_size or kernel_h and kernel_w, not both "
                           "and not neither");
        if (!pp->has_kernel_size && !(pp->has_kernel_h && pp->has_kernel_w))
            return err_set(CREMA_ERR_INVALID,
                           "pooling_param: a non-square kernel needs both kernel_h and kernel_w");
        g->kernel_h = (int)(pp->has_kernel_size ? pp->kernel_size : pp->kernel_h);
        g->kernel_w = (int)(pp->has_kernel_size ? pp->kernel_size : pp->kernel_w);
        if (g->kernel_h <= 0 || g->kernel_w <= 0)
            return err_set(CREMA_ERR_INVALID, "pooling_param: kernel size %dx%d must be nonzero",
                           g->kernel_h, g->kernel_w);
    }
    if (pp->has_pad && (pp->has_pad_h || pp->has_pad_w))
        return err_set(CREMA_ERR_INVALID, "pooling_param: give pad or pad_h and pad_w, not both");
    if (!pp->has_pad && pp->has_pad_h != pp->has_pad_w)
        return err_set(CREMA_ERR_INVALID, "pooling_param: pad_h and pad_w must be given together");
    if (pp->has_stride && (pp->has_stride_h || pp->has_stride_w))
        return err_set(CREMA_ERR_INVALID,
                       "pooling_param: give stride or stride_h and stride_w, not both");
    if (!pp->has_stride && pp->has_stride_h != pp->has_stride_w)
        return err_set(CREMA_ERR_INVALID,
                       "pooling_param: stride_h and stride_w must be given together");
    g->pad_h = (int)(pp->has_pad_h ? pp->pad_h : pp->pad);
    g->pad_w = (int)(pp->has_pad_w ? pp->pad_w : pp->pad);
    g->stride_h = (int)(pp->has_stride_h ? pp->stride_h : pp->stride);
    g->stride_w = (int)(pp->has_stride_w ? pp->stride_w : pp->stride);
    if (g->stride_h <= 0 || g->stride_w <= 0)
        return err_set(CREMA_ERR_INVALID, "pooling_param: stride %dx%d must be nonzero",
                       g->stride_h, g->stride_w);
    if (g->pad_h < 0 || g->pad_w < 0 || g->kernel_h < 0 || g->kernel_w < 0)
        return err_set(CREMA_ERR_INVALID, "pooling_param: sizes out of range");
    if (s->global && (g->pad_h || g->pad_w || g->stride_h != 1 || g->stride_w != 1))
        return err_set(CREMA_ERR_INVALID,
                       "pooling_param: with global_pooling only pad 0 and stride 1 are allowed");
    if (!s->global && (g->pad_h >= g->kernel_h || g->pad_w >= g->kernel_w))
        return err_set(CREMA_ERR_INVALID,
                       "pooling_param: pad %dx%d must be smaller than the kernel %dx%d",
                       g->pad_h, g->pad_w, g->kernel_h, g->kernel_w);
    return CREMA_OK;
}

static int pooling_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct pooling *s = l->priv;
    struct pool_geom *g = &s->g;
    if (bottom[0]->num_axes != 4)
        return err_set(CREMA_ERR_SHAPE,
                       "pooling needs a 4-axis input (num, channels, height, width), got %d axes",
                       bottom[0]->num_axes);
    g->height = bottom[0]->shape[2];
    g->width = bottom[0]->shape[3];
    if (s->global) {
        g->kernel_h = g->height;
        g->kernel_w = g->width;
    }
    int rc = pool_geom_shape(g, s->ceil_mode);
    if (rc)
        return rc;
    rc = tensor_reshape4(top[0], bottom[0]->shape[0], bottom[0]->shape[1], g->pooled_h, g->pooled_w);
    if (!rc && l->n_top > 1)
        rc = tensor_reshape_like(top[1], top[0]);
    if (rc)
        return rc;
    if (g->method == POOL_MAX && l->n_top == 1) {
        if (!s->mask && !(s->mask = tensor_new()))
            return err_set(CREMA_ERR_NOMEM, "out of memory for the pooling mask");
        if ((rc = tensor_reshape_like(s->mask, top[0])))
            return rc;
    }
    return CREMA_OK;
}

static int pooling_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct pooling *s = l->priv;
    int planes = bottom[0]->shape[0] * bottom[0]->shape[1];
    const float *x = LCDATA(bottom[0]);
    float *y = LDATA(top[0]);
    float *fmask = l->n_top > 1 ? LDATA(top[1]) : NULL;
    int *imask = s->mask && !fmask ? (int *)LDATA(s->mask) : NULL;
    if (!x || !y || (l->n_top > 1 && !fmask) || (s->mask && !fmask && !imask))
        return CREMA_ERR_NOMEM;
    l->be->vision->pool_forward(l->be, &s->g, planes, x, y, imask, fmask);
    return CREMA_OK;
}

static int pooling_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                            struct tensor **bottom)
{
    struct pooling *s = l->priv;
    if (!propagate_down[0])
        return CREMA_OK;
    int planes = bottom[0]->shape[0] * bottom[0]->shape[1];
    const float *dy = LCDIFF(top[0]);
    float *dx = LDIFF(bottom[0]);
    const float *fmask = l->n_top > 1 ? LCDATA(top[1]) : NULL;
    const int *imask = s->mask && !fmask ? (const int *)LCDATA(s->mask) : NULL;
    if (!dy || !dx || (l->n_top > 1 && !fmask) || (s->mask && !fmask && !imask))
        return CREMA_ERR_NOMEM;
    l->be->vision->pool_backward(l->be, &s->g, planes, dy, imask, fmask, dx);
    return CREMA_OK;
}

static void pooling_destroy(struct layer *l)
{
    struct pooling *s = l->priv;
    if (s)
        tensor_free(s->mask);
    free(s);
    l->priv = NULL;
}

const struct layer_kind pooling_layer = {
    .type = "Pooling",
    .min_bottoms = 1, .max_bottoms = 1,
    .min_tops = 1, .max_tops = 2,
    .setup = pooling_setup,
    .reshape = pooling_reshape,
    .forward = pooling_forward,
    .backward = pooling_backward,
    .forward_dev = pooling_forward,
    .backward_dev = pooling_backward,
    .runs_on = vision_runs_on,
    .destroy = pooling_destroy,
};
