/* Im2col: the column matrix convolution would multiply, as a layer
 * (kernel, stride, pad and dilation from convolution_param), on any
 * backend (be->math's im2col/col2im). */
#include "layers/vision.h"

#include <stdlib.h>

struct im2col_state {
    struct conv_geom g;
    int channel_axis, num_spatial_axes, channels;
    bool force_nd;
    int num, bottom_dim, top_dim;
    int im_shape[TENSOR_MAX_AXES + 1], col_shape[TENSOR_MAX_AXES + 1];
};

static int im2col_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__ConvolutionParameter def = CAFFE__CONVOLUTION_PARAMETER__INIT;
    const Caffe__ConvolutionParameter *cp =
        l->param->convolution_param ? l->param->convolution_param : &def;
    struct im2col_state *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = s;
    s->force_nd = cp->force_nd_im2col;
    s->channel_axis = tensor_canonical_axis(bottom[0], cp->axis);
    if (s->channel_axis < 0)
        return err_set(CREMA_ERR_INVALID, "convolution_param.axis %d is out of range for a %d-axis input",
                       cp->axis, bottom[0]->num_axes);
    s->num_spatial_axes = bottom[0]->num_axes - s->channel_axis - 1;
    return conv_geom_parse(cp, s->num_spatial_axes, &s->g);
}

static int im2col_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct im2col_state *s = l->priv;
    const struct tensor *b = bottom[0];
    int ca = s->channel_axis, ns = s->num_spatial_axes;
    if (b->num_axes != ca + 1 + ns)
        return err_set(CREMA_ERR_SHAPE, "the input's number of axes changed from %d to %d",
                       ca + 1 + ns, b->num_axes);
    s->channels = b->shape[ca];
    int shape[TENSOR_MAX_AXES];
    for (int i = 0; i < ca; i++)
        shape[i] = b->shape[i];
    long kprod = 1;
    for (int i = 0; i < ns; i++)
        kprod *= s->g.kernel[i];
    if ((long)s->channels * kprod > (1L << 30))
        return err_set(CREMA_ERR_SHAPE, "im2col output too large");
    shape[ca] = (int)(s->channels * kprod);
    for (int i = 0; i < ns; i++) {
        int in = b->shape[ca + 1 + i], out = conv_geom_out(&s->g, i, in);
        if (out <= 0)
            return err_set(CREMA_ERR_SHAPE,
                           "spatial axis %d: input extent %d with kernel %d, pad %d, stride %d, "
                           "dilation %d gives no output",
                           i, in, s->g.kernel[i], s->g.pad[i], s->g.stride[i], s->g.dilation[i]);
        shape[ca + 1 + i] = out;
    }
    int rc = tensor_reshape(top[0], b->num_axes, shape);
    if (rc)
        return rc;
    s->num = (int)tensor_count_range(b, 0, ca);
    s->bottom_dim = (int)tensor_count_range(b, ca, b->num_axes);
    s->top_dim = (int)tensor_count_range(top[0], ca, b->num_axes);
    for (int i = 0; i <= ns; i++) {
        s->im_shape[i] = b->shape[ca + i];
        s->col_shape[i] = top[0]->shape[ca + i];
    }
    return CREMA_OK;
}

/* One image: the 2-D kernel unless the geometry asks for the N-D one. */
static void im2col_one(const struct layer *l, const float *x, float *y)
{
    const struct im2col_state *s = l->priv;
    const struct conv_geom *g = &s->g;
    const struct backend *be = l->be;
    if (!s->force_nd && s->num_spatial_axes == 2)
        be->math->im2col(be, x, s->channels, s->im_shape[1], s->im_shape[2], g->kernel[0], g->kernel[1],
                         g->pad[0], g->pad[1], g->stride[0], g->stride[1], g->dilation[0], g->dilation[1], y);
    else
        be->math->im2col_nd(be, x, s->num_spatial_axes, s->im_shape, s->col_shape, g->kernel, g->pad,
                            g->stride, g->dilation, y);
}

static void col2im_one(const struct layer *l, const float *dy, float *dx)
{
    const struct im2col_state *s = l->priv;
    const struct conv_geom *g = &s->g;
    const struct backend *be = l->be;
    if (!s->force_nd && s->num_spatial_axes == 2)
        be->math->col2im(be, dy, s->channels, s->im_shape[1], s->im_shape[2], g->kernel[0], g->kernel[1],
                         g->pad[0], g->pad[1], g->stride[0], g->stride[1], g->dilation[0], g->dilation[1], dx);
    else
        be->math->col2im_nd(be, dy, s->num_spatial_axes, s->im_shape, s->col_shape, g->kernel, g->pad,
                            g->stride, g->dilation, dx);
}

static int im2col_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct im2col_state *s = l->priv;
    const float *x = LCDATA(bottom[0]);
    float *y = LDATA(top[0]);
    if (!x || !y)
        return CREMA_ERR_NOMEM;
    for (int n = 0; n < s->num; n++)
        im2col_one(l, x + (size_t)n * s->bottom_dim, y + (size_t)n * s->top_dim);
    return CREMA_OK;
}

static int im2col_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                           struct tensor **bottom)
{
    struct im2col_state *s = l->priv;
    if (!propagate_down[0])
        return CREMA_OK;
    const float *dy = LCDIFF(top[0]);
    float *dx = LDIFF(bottom[0]);
    if (!dy || !dx)
        return CREMA_ERR_NOMEM;
    for (int n = 0; n < s->num; n++)
        col2im_one(l, dy + (size_t)n * s->top_dim, dx + (size_t)n * s->bottom_dim);
    return CREMA_OK;
}

static void im2col_destroy(struct layer *l)
{
    free(l->priv);
    l->priv = NULL;
}

const struct layer_kind im2col_layer = {
    .type = "Im2col",
    .min_bottoms = 1, .max_bottoms = 1,
    .min_tops = 1, .max_tops = 1,
    .setup = im2col_setup,
    .reshape = im2col_reshape,
    .forward = im2col_forward,
    .backward = im2col_backward,
    .forward_dev = im2col_forward,
    .backward_dev = im2col_backward,
    .destroy = im2col_destroy,
};
