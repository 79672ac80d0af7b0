/* Convolution and Deconvolution (Caffe's BaseConvolutionLayer), any number
 * of spatial axes: the backend's own convolution where it has one for the
 * shape (be->vision's conv plan), else im2col then one row-major sgemm per
 * group and image through be->math (the CPU's path). */
#include "layers/vision.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One of kernel/stride/pad: the _h/_w pair, one value for every axis, or
 * one value per axis; `dflt` when none is given (-1: required). */
static int geom_field(const char *field, int n, size_t n_rep, const uint32_t *rep, int has_h,
                      uint32_t h, int has_w, uint32_t w, int dflt, int *out)
{
    if (has_h || has_w) {
        if (n != 2)
            return err_set(CREMA_ERR_INVALID,
                           "convolution_param: %s_h and %s_w can only be used for 2-D "
                           "convolution, this one has %d spatial axes",
                           field, field, n);
        if (n_rep)
            return err_set(CREMA_ERR_INVALID,
                           "convolution_param: give %s or %s_h and %s_w, not both", field,
                           field, field);
        /* As Caffe: a missing one reads 0 (fine for pad, rejected below for
         * kernel and stride). */
        out[0] = (int)h;
        out[1] = (int)w;
    } else {
        if (n_rep != 0 && n_rep != 1 && (int)n_rep != n)
            return err_set(CREMA_ERR_INVALID,
                           "convolution_param: %s must be given once or once per spatial axis "
                           "(%d), got %zu values",
                           field, n, n_rep);
        if (n_rep == 0 && dflt < 0 && n > 0)
            return err_set(CREMA_ERR_INVALID,
                           "convolution_param: kernel_size (or kernel_h and kernel_w) is required");
        for (int i = 0; i < n; i++)
            out[i] = n_rep == 0 ? dflt : (int)rep[n_rep == 1 ? 0 : i];
    }
    for (int i = 0; i < n; i++)
        if (out[i] < 0 || out[i] > (1 << 24))
            return err_set(CREMA_ERR_INVALID, "convolution_param: %s %d is out of range", field,
                           out[i]);
    return CREMA_OK;
}

int conv_geom_parse(const Caffe__ConvolutionParameter *cp, int n, struct conv_geom *g)
{
    if (n < 0 || n > TENSOR_MAX_AXES)
        return err_set(CREMA_ERR_SHAPE, "convolution: %d spatial axes", n);
    g->num_spatial_axes = n;
    int rc = geom_field("kernel", n, cp->n_kernel_size, cp->kernel_size, cp->has_kernel_h,
                        cp->kernel_h, cp->has_kernel_w, cp->kernel_w, -1, g->kernel);
    if (!rc)
        rc = geom_field("stride", n, cp->n_stride, cp->stride, cp->has_stride_h, cp->stride_h,
                        cp->has_stride_w, cp->stride_w, 1, g->stride);
    if (!rc)
        rc = geom_field("pad", n, cp->n_pad, cp->pad, cp->has_pad_h, cp->pad_h, cp->has_pad_w,
                        cp->pad_w, 0, g->pad);
    if (!rc)
        rc = geom_field("dilation", n, cp->n_dilation, cp->dilation, 0, 0, 0, 0, 1, g->dilation);
    if (rc)
        return rc;
    for (int i = 0; i < n; i++) {
        if (g->kernel[i] == 0)
            return err_set(CREMA_ERR_INVALID, "convolution_param: kernel dimensions must be nonzero");
        if (g->stride[i] == 0)
            return err_set(CREMA_ERR_INVALID, "convolution_param: stride must be nonzero");
        if (g->dilation[i] == 0)
            return err_set(CREMA_ERR_INVALID, "convolution_param: dilation must be nonzero");
    }
    return CREMA_OK;
}

int conv_geom_out(const struct conv_geom *g, int i, int in)
{
    long extent = (long)g->dilation[i] * (g->kernel[i] - 1) + 1;
    long span = (long)in + 2L * g->pad[i] - extent;
    if (span < 0)
        return 0;
    return (int)(span / g->stride[i] + 1);
}

struct conv {
    bool deconv, bias_term, is_1x1, force_nd;
    struct conv_geom g;
    int channel_axis, num_spatial_axes;
    int channels, num_output, group;
    int conv_in_channels, conv_out_channels;
    int kernel_dim, weight_offset, col_offset, output_offset;
    int conv_out_spatial_dim, out_spatial_dim;
    int num, bottom_dim, top_dim;
    int input_shape[TENSOR_MAX_AXES + 1]; /* channels of the im2col side, then spatial */
    int col_shape[TENSOR_MAX_AXES + 1];
    struct tensor *col;  /* one image's im2col buffer */
    struct tensor *ones; /* bias multiplier: out_spatial_dim ones */
    /* The backend's own convolution for plan_shape on plan_be (NULL when
     * it has none for that shape); plan_made says plan_shape was asked. */
    void *plan;
    const struct backend *plan_be;
    struct conv_shape plan_shape;
    bool plan_made;
};

static const char *shape_str(const int *s, int n, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < n && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%d", i ? " " : "", s[i]);
    return buf;
}

static int conv_setup_common(struct layer *l, struct tensor **bottom, bool deconv)
{
    static const Caffe__ConvolutionParameter def = CAFFE__CONVOLUTION_PARAMETER__INIT;
    const Caffe__ConvolutionParameter *cp =
        l->param->convolution_param ? l->param->convolution_param : &def;
    struct conv *c = calloc(1, sizeof *c);
    if (!c)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = c;
    c->deconv = deconv;
    c->force_nd = cp->force_nd_im2col;
    c->channel_axis = tensor_canonical_axis(bottom[0], cp->axis);
    if (c->channel_axis < 0)
        return err_set(CREMA_ERR_INVALID, "convolution_param.axis %d is out of range for a %d-axis input",
                       cp->axis, bottom[0]->num_axes);
    c->num_spatial_axes = bottom[0]->num_axes - c->channel_axis - 1;
    int rc = conv_geom_parse(cp, c->num_spatial_axes, &c->g);
    if (rc)
        return rc;
    c->is_1x1 = true;
    for (int i = 0; i < c->num_spatial_axes; i++)
        c->is_1x1 &= c->g.kernel[i] == 1 && c->g.stride[i] == 1 && c->g.pad[i] == 0;
    c->channels = bottom[0]->shape[c->channel_axis];
    c->num_output = (int)cp->num_output;
    if (!cp->has_num_output || c->num_output <= 0)
        return err_set(CREMA_ERR_INVALID, "convolution_param.num_output must be given and positive");
    c->group = (int)cp->group;
    if (c->group <= 0)
        return err_set(CREMA_ERR_INVALID, "convolution_param.group must be positive");
    if (c->channels % c->group)
        return err_set(CREMA_ERR_INVALID, "the input's %d channels are not a multiple of group %d",
                       c->channels, c->group);
    if (c->num_output % c->group)
        return err_set(CREMA_ERR_INVALID,
                       "convolution_param.num_output %d is not a multiple of group %d",
                       c->num_output, c->group);
    c->conv_out_channels = deconv ? c->channels : c->num_output;
    c->conv_in_channels = deconv ? c->num_output : c->channels;
    c->bias_term = cp->bias_term;

    int wshape[TENSOR_MAX_AXES + 2];
    wshape[0] = c->conv_out_channels;
    wshape[1] = c->conv_in_channels / c->group;
    for (int i = 0; i < c->num_spatial_axes; i++)
        wshape[2 + i] = c->g.kernel[i];
    int wn = 2 + c->num_spatial_axes;
    int nb = c->bias_term ? 2 : 1;
    if (l->n_blobs > 0) {
        if (l->n_blobs != nb)
            return err_set(CREMA_ERR_SHAPE, "expected %d parameter blobs (weights%s), got %d", nb,
                           c->bias_term ? " and bias" : "", l->n_blobs);
        struct tensor *w = l->blobs[0];
        bool same = w->num_axes == wn;
        for (int i = 0; same && i < wn; i++)
            same = w->shape[i] == wshape[i];
        char e[160], got[160];
        if (!same)
            return err_set(CREMA_ERR_SHAPE, "weight blob has shape [%s], expected [%s]",
                           shape_str(w->shape, w->num_axes, got, sizeof got),
                           shape_str(wshape, wn, e, sizeof e));
        if (c->bias_term) {
            struct tensor *b = l->blobs[1];
            if (b->num_axes != 1 || b->shape[0] != c->num_output)
                return err_set(CREMA_ERR_SHAPE, "bias blob has shape [%s], expected [%d]",
                               shape_str(b->shape, b->num_axes, got, sizeof got), c->num_output);
        }
    } else {
        static const Caffe__FillerParameter fdef = CAFFE__FILLER_PARAMETER__INIT;
        if ((rc = layer_alloc_blobs(l, nb)) || (rc = tensor_reshape(l->blobs[0], wn, wshape)) ||
            (rc = filler_fill(cp->weight_filler ? cp->weight_filler : &fdef, l->blobs[0], l->rng)))
            return rc;
        if (c->bias_term) {
            int bshape[1] = { c->num_output };
            if ((rc = tensor_reshape(l->blobs[1], 1, bshape)) ||
                (rc = filler_fill(cp->bias_filler ? cp->bias_filler : &fdef, l->blobs[1], l->rng)))
                return rc;
        }
    }
    c->kernel_dim = (int)tensor_count_range(l->blobs[0], 1, wn);
    c->weight_offset = c->conv_out_channels * c->kernel_dim / c->group;
    return CREMA_OK;
}

static int conv_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    return conv_setup_common(l, bottom, false);
}

static int deconv_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    return conv_setup_common(l, bottom, true);
}

static void plan_drop(struct conv *c)
{
    if (c->plan)
        c->plan_be->vision->conv_plan_free(c->plan_be, c->plan);
    c->plan = NULL;
    c->plan_be = NULL;
    c->plan_made = false;
}

/* The backend's own convolution for the current shape: asked for once per
 * shape and backend (reshape runs before every forward; then this only
 * compares). Without one, c->plan stays NULL and im2col + gemm runs. */
static int conv_plan(struct layer *l)
{
    struct conv *c = l->priv;
    const struct backend *be = l->be;
    if (!be->vision || !be->vision->conv_plan_create || c->num_spatial_axes > VISION_CONV_MAX_AXES) {
        plan_drop(c);
        return CREMA_OK;
    }
    struct conv_shape s;
    memset(&s, 0, sizeof s); /* compared with memcmp */
    s.num_spatial_axes = c->num_spatial_axes;
    s.num = c->num;
    s.groups = c->group;
    s.in_channels = c->conv_in_channels;
    s.out_channels = c->conv_out_channels;
    for (int i = 0; i < c->num_spatial_axes; i++) {
        s.in_shape[i] = c->input_shape[1 + i];
        s.out_shape[i] = c->col_shape[1 + i];
        s.kernel[i] = c->g.kernel[i];
        s.pad[i] = c->g.pad[i];
        s.stride[i] = c->g.stride[i];
        s.dilation[i] = c->g.dilation[i];
    }
    if (c->plan_made && c->plan_be == be && memcmp(&s, &c->plan_shape, sizeof s) == 0)
        return CREMA_OK;
    plan_drop(c);
    int rc = be->vision->conv_plan_create(be, &s, &c->plan);
    if (rc) {
        c->plan = NULL;
        return rc;
    }
    c->plan_be = be;
    c->plan_shape = s;
    c->plan_made = true;
    return CREMA_OK;
}

static int conv_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct conv *c = l->priv;
    const struct tensor *b0 = bottom[0];
    int first_spatial = c->channel_axis + 1;
    if (b0->num_axes != first_spatial + c->num_spatial_axes)
        return err_set(CREMA_ERR_SHAPE, "the input's number of axes changed from %d to %d",
                       first_spatial + c->num_spatial_axes, b0->num_axes);
    if (b0->shape[c->channel_axis] != c->channels)
        return err_set(CREMA_ERR_SHAPE,
                       "the input has %d channels, the convolution was set up for %d",
                       b0->shape[c->channel_axis], c->channels);
    for (int i = 1; i < l->n_bottom; i++)
        if (!tensor_shape_equals(bottom[i], b0))
            return err_set(CREMA_ERR_SHAPE, "all inputs must have the same shape (input %d differs)", i);
    c->num = (int)tensor_count_range(b0, 0, c->channel_axis);
    int tshape[TENSOR_MAX_AXES];
    for (int i = 0; i < c->channel_axis; i++)
        tshape[i] = b0->shape[i];
    tshape[c->channel_axis] = c->num_output;
    for (int i = 0; i < c->num_spatial_axes; i++) {
        int in = b0->shape[first_spatial + i];
        long out;
        if (c->deconv)
            out = (long)c->g.stride[i] * (in - 1) +
                  ((long)c->g.dilation[i] * (c->g.kernel[i] - 1) + 1) - 2L * c->g.pad[i];
        else
            out = conv_geom_out(&c->g, i, in);
        if (out <= 0 || out > (1L << 30))
            return err_set(CREMA_ERR_SHAPE,
                           "spatial axis %d: input extent %d with kernel %d, pad %d, stride %d, "
                           "dilation %d gives output extent %ld",
                           i, in, c->g.kernel[i], c->g.pad[i], c->g.stride[i], c->g.dilation[i],
                           out);
        tshape[first_spatial + i] = (int)out;
    }
    int rc;
    for (int t = 0; t < l->n_top; t++)
        if ((rc = tensor_reshape(top[t], b0->num_axes, tshape)))
            return rc;
    /* The im2col side is the input for convolution and the output for
     * deconvolution. */
    const struct tensor *im = c->deconv ? top[0] : b0;
    const struct tensor *out = c->deconv ? b0 : top[0];
    c->conv_out_spatial_dim = (int)tensor_count_range(out, first_spatial, out->num_axes);
    /* Before any int product of its factors: a huge pad gives a column
     * matrix past INT_MAX from tensors within it. */
    size_t col_count = (size_t)c->kernel_dim * c->group * (size_t)c->conv_out_spatial_dim;
    if (!c->is_1x1 && col_count > INT_MAX)
        return err_set(CREMA_ERR_SHAPE, "the im2col buffer would hold %zu values (more than INT_MAX)", col_count);
    c->col_offset = c->kernel_dim * c->conv_out_spatial_dim;
    c->output_offset = c->conv_out_channels * c->conv_out_spatial_dim / c->group;
    for (int i = 0; i <= c->num_spatial_axes; i++)
        c->input_shape[i] = im->shape[c->channel_axis + i];
    c->col_shape[0] = c->kernel_dim * c->group;
    for (int i = 0; i < c->num_spatial_axes; i++)
        c->col_shape[1 + i] = out->shape[first_spatial + i];
    c->bottom_dim = (int)tensor_count_range(b0, c->channel_axis, b0->num_axes);
    c->top_dim = (int)tensor_count_range(top[0], c->channel_axis, top[0]->num_axes);
    c->out_spatial_dim = (int)tensor_count_range(top[0], first_spatial, top[0]->num_axes);
    if (!c->is_1x1) {
        int cshape[1] = { (int)col_count };
        if (!c->col && !(c->col = tensor_new()))
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        if ((rc = tensor_reshape(c->col, 1, cshape)))
            return rc;
    }
    return conv_plan(l);
}

/* ---- im2col + gemm through be->math, one image at a time (Caffe's
 * forward_cpu_gemm, backward_cpu_gemm, weight_cpu_gemm) ---- */

static void conv_im2col(const struct layer *l, const float *im, float *col)
{
    const struct conv *c = l->priv;
    const struct conv_geom *g = &c->g;
    const struct backend *be = l->be;
    if (!c->force_nd && c->num_spatial_axes == 2)
        be->math->im2col(be, im, c->conv_in_channels, c->input_shape[1], c->input_shape[2], g->kernel[0],
                         g->kernel[1], g->pad[0], g->pad[1], g->stride[0], g->stride[1], g->dilation[0],
                         g->dilation[1], col);
    else
        be->math->im2col_nd(be, im, c->num_spatial_axes, c->input_shape, c->col_shape, g->kernel, g->pad,
                            g->stride, g->dilation, col);
}

static void conv_col2im(const struct layer *l, const float *col, float *im)
{
    const struct conv *c = l->priv;
    const struct conv_geom *g = &c->g;
    const struct backend *be = l->be;
    if (!c->force_nd && c->num_spatial_axes == 2)
        be->math->col2im(be, col, c->conv_in_channels, c->input_shape[1], c->input_shape[2], g->kernel[0],
                         g->kernel[1], g->pad[0], g->pad[1], g->stride[0], g->stride[1], g->dilation[0],
                         g->dilation[1], im);
    else
        be->math->col2im_nd(be, col, c->num_spatial_axes, c->input_shape, c->col_shape, g->kernel, g->pad,
                            g->stride, g->dilation, im);
}

/* output = W * im2col(input), per group. */
static void gemm_forward(const struct layer *l, const float *input, const float *w, float *output, float *colbuf,
                         bool skip_im2col)
{
    const struct conv *c = l->priv;
    const struct backend *be = l->be;
    const float *col = input;
    if (!c->is_1x1) {
        if (!skip_im2col)
            conv_im2col(l, input, colbuf);
        col = colbuf;
    }
    int G = c->group;
    for (int g = 0; g < G; g++)
        be->math->gemm(be, false, false, c->conv_out_channels / G, c->conv_out_spatial_dim, c->kernel_dim, 1.f,
                       w + (size_t)c->weight_offset * g, col + (size_t)c->col_offset * g, 0.f,
                       output + (size_t)c->output_offset * g);
}

/* input = col2im(W^T * output). */
static void gemm_backward(const struct layer *l, const float *output, const float *w, float *input, float *colbuf)
{
    const struct conv *c = l->priv;
    const struct backend *be = l->be;
    float *col = c->is_1x1 ? input : colbuf;
    int G = c->group;
    for (int g = 0; g < G; g++)
        be->math->gemm(be, true, false, c->kernel_dim, c->conv_out_spatial_dim, c->conv_out_channels / G, 1.f,
                       w + (size_t)c->weight_offset * g, output + (size_t)c->output_offset * g, 0.f,
                       col + (size_t)c->col_offset * g);
    if (!c->is_1x1)
        conv_col2im(l, col, input);
}

/* dW += output * im2col(input)^T. */
static void gemm_weight(const struct layer *l, const float *input, const float *output, float *dw, float *colbuf)
{
    const struct conv *c = l->priv;
    const struct backend *be = l->be;
    const float *col = input;
    if (!c->is_1x1) {
        conv_im2col(l, input, colbuf);
        col = colbuf;
    }
    int G = c->group;
    for (int g = 0; g < G; g++)
        be->math->gemm(be, false, true, c->conv_out_channels / G, c->kernel_dim, c->conv_out_spatial_dim, 1.f,
                       output + (size_t)c->output_offset * g, col + (size_t)c->col_offset * g, 1.f,
                       dw + (size_t)c->weight_offset * g);
}

/* ---- the layer ---- */

static int conv_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct conv *c = l->priv;
    const struct backend *be = l->be;
    int rc = conv_plan(l);
    if (rc)
        return rc;
    const float *w = LCDATA(l->blobs[0]);
    const float *bias = c->bias_term ? LCDATA(l->blobs[1]) : NULL;
    const float *ones = c->bias_term ? layer_ones(l, &c->ones, (size_t)c->out_spatial_dim) : NULL;
    float *colbuf = c->plan || c->is_1x1 ? NULL : LDATA(c->col);
    if (!w || (c->bias_term && (!bias || !ones)) || (!c->plan && !c->is_1x1 && !colbuf))
        return CREMA_ERR_NOMEM;
    for (int i = 0; i < l->n_bottom; i++) {
        const float *in = LCDATA(bottom[i]);
        float *out = LDATA(top[i]);
        if (!in || !out)
            return CREMA_ERR_NOMEM;
        if (c->plan && c->deconv) {
            be->vision->conv_backward_data(be, c->plan, in, w, out);
        } else if (c->plan) {
            /* the bias too, image by image */
            be->vision->conv_forward(be, c->plan, in, w, bias, out);
            continue;
        } else {
            for (int n = 0; n < c->num; n++) {
                const float *x = in + (size_t)n * c->bottom_dim;
                float *o = out + (size_t)n * c->top_dim;
                if (c->deconv)
                    gemm_backward(l, x, w, o, colbuf);
                else
                    gemm_forward(l, x, w, o, colbuf, false);
            }
        }
        /* After all images rather than after each, as Caffe adds it: each
         * value still gets its bias once its convolution is done. */
        if (bias)
            be->vision->bias_forward(be, c->num, c->num_output, c->out_spatial_dim, bias, ones, out);
    }
    return CREMA_OK;
}

static int conv_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                         struct tensor **bottom)
{
    struct conv *c = l->priv;
    const struct backend *be = l->be;
    int rc = conv_plan(l);
    if (rc)
        return rc;
    const float *w = LCDATA(l->blobs[0]);
    bool dw_on = l->param_propagate_down[0];
    bool db_on = c->bias_term && l->param_propagate_down[1];
    float *dw = dw_on ? LDIFF(l->blobs[0]) : NULL;
    float *db = db_on ? LDIFF(l->blobs[1]) : NULL;
    const float *ones = db_on ? layer_ones(l, &c->ones, (size_t)c->out_spatial_dim) : NULL;
    float *colbuf = c->plan || c->is_1x1 ? NULL : LDATA(c->col);
    if (!w || (dw_on && !dw) || (db_on && (!db || !ones)) || (!c->plan && !c->is_1x1 && !colbuf))
        return CREMA_ERR_NOMEM;
    for (int i = 0; i < l->n_bottom; i++) {
        const float *top_diff = LCDIFF(top[i]);
        if (!top_diff)
            return CREMA_ERR_NOMEM;
        /* the bias's gradient with the weights' where the plan takes both */
        bool fused = c->plan && !c->deconv && dw;
        if (db && !fused)
            be->vision->bias_backward(be, c->num, c->num_output, c->out_spatial_dim, top_diff, ones, db);
        if (!dw_on && !propagate_down[i])
            continue;
        const float *in = LCDATA(bottom[i]);
        float *in_diff = propagate_down[i] ? LDIFF(bottom[i]) : NULL;
        if (!in || (propagate_down[i] && !in_diff))
            return CREMA_ERR_NOMEM;
        if (c->plan) {
            /* Deconvolution is the convolution with its sides swapped: its
             * top is the image side, its bottom the column side. */
            if (c->deconv) {
                if (dw)
                    be->vision->conv_backward_filter(be, c->plan, top_diff, in, dw, NULL);
                if (in_diff)
                    be->vision->conv_forward(be, c->plan, top_diff, w, NULL, in_diff);
            } else {
                if (dw)
                    be->vision->conv_backward_filter(be, c->plan, in, top_diff, dw, db);
                if (in_diff)
                    be->vision->conv_backward_data(be, c->plan, top_diff, w, in_diff);
            }
            continue;
        }
        for (int n = 0; n < c->num; n++) {
            const float *td = top_diff + (size_t)n * c->top_dim;
            const float *x = in + (size_t)n * c->bottom_dim;
            if (c->deconv) {
                if (dw)
                    gemm_weight(l, td, x, dw, colbuf);
                /* The weight gradient left im2col(top diff) in the buffer. */
                if (in_diff)
                    gemm_forward(l, td, w, in_diff + (size_t)n * c->bottom_dim, colbuf, dw_on);
            } else {
                if (dw)
                    gemm_weight(l, x, td, dw, colbuf);
                if (in_diff)
                    gemm_backward(l, td, w, in_diff + (size_t)n * c->bottom_dim, colbuf);
            }
        }
    }
    return CREMA_OK;
}

static void conv_destroy(struct layer *l)
{
    struct conv *c = l->priv;
    if (c) {
        plan_drop(c);
        tensor_free(c->col);
        tensor_free(c->ones);
    }
    free(c);
    l->priv = NULL;
}

const struct layer_kind convolution_layer = {
    .type = "Convolution",
    .min_bottoms = 1, .max_bottoms = -1,
    .min_tops = 1, .max_tops = -1,
    .equal_num_bottom_top = true,
    .setup = conv_setup,
    .reshape = conv_reshape,
    .forward = conv_forward,
    .backward = conv_backward,
    .forward_dev = conv_forward,
    .backward_dev = conv_backward,
    .runs_on = vision_runs_on,
    .destroy = conv_destroy,
};

const struct layer_kind deconvolution_layer = {
    .type = "Deconvolution",
    .min_bottoms = 1, .max_bottoms = -1,
    .min_tops = 1, .max_tops = -1,
    .equal_num_bottom_top = true,
    .setup = deconv_setup,
    .reshape = conv_reshape,
    .forward = conv_forward,
    .backward = conv_backward,
    .forward_dev = conv_forward,
    .backward_dev = conv_backward,
    .runs_on = vision_runs_on,
    .destroy = conv_destroy,
};
