/* The Caffe -> ONNX mapping: each layer of a built net becomes ONNX nodes
 * that compute what Caffe computes (pooling's rounding and divisors, LRN's
 * scaling, BatchNorm's stored statistics, ArgMax's tie order, ...). */
#include "api/onnx_export.h"

#include "api/onnx_graph.h"
#include "layers/vision.h"
#include "net/net.h"
#include "util/err.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* What axis 0 of a value is, when the batch is left open. */
enum { DIM_FIXED = 0, DIM_BATCH = 1, DIM_DATA = 2 /* chosen by the data (Filter) */ };

/* ONNX TensorProto data types the exporter casts to. */
#define ONNX_INT64 7
#define ONNX_BOOL 9
#define ONNX_FLOAT 1

struct param_cache {
    const float *data;
    int ndims;
    int64_t dims[TENSOR_MAX_AXES];
    const char *name;
};

struct ex {
    struct og *g;
    struct net *net;
    int opset;
    bool dynamic;
    FILE *log;
    /* per net blob */
    const char **cur; /* the ONNX value that holds the blob now (NULL before its first writer) */
    int *last_writer; /* the last layer with the blob as a top */
    signed char *dim0; /* DIM_* of the blob's axis 0, -1 until known */
    bool *plain_made; /* the blob's own name was given to a value */
    bool *is_input;
    bool *skip; /* per layer: folded into the layer before it */
    /* tops named by the layer being exported, given to cur when it is done:
     * its own bottoms read the values from before it, whatever the order
     * in which a call's arguments are evaluated */
    int *pend_blob;
    const char **pend_name;
    int n_pend;
    struct param_cache *params;
    int n_params;
    /* the layer being exported */
    int li;
    struct net_layer *nl;
    struct layer *l;
    const Caffe__LayerParameter *lp;
    int n_nodes; /* nodes made for it so far */
};

/* ---- failures ------------------------------------------------------------ */

static int refuse(struct ex *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(struct ex *e, const char *fmt, ...)
{
    char why[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return og_fail(e->g, CREMA_ERR_UNSUPPORTED, "layer %s (%s): %s", e->lp->name, e->lp->type, why);
}

/* A layer that mixes axis 0 of a batch-sized value into something else
 * cannot be exported with the batch left open. */
static int need_fixed_batch(struct ex *e, const char *what)
{
    return refuse(e,
                  "%s, so the exported model cannot leave the batch size open; export it with a fixed batch "
                  "(crema export-onnx -fixed_batch, or Net.export_onnx(path, fixed_batch=True))",
                  what);
}

/* ---- names and nodes ----------------------------------------------------- */

static struct tensor *bt(const struct ex *e, int j)
{
    return e->nl->bottom[j];
}

static struct tensor *tt(const struct ex *e, int j)
{
    return e->nl->top[j];
}

static const char *in(struct ex *e, int j)
{
    const char *v = e->cur[e->nl->bottom_id[j]];
    if (!v)
        og_fail(e->g, CREMA_ERR_INVALID, "layer %s: bottom %s has no value (no layer before it makes it)",
                e->lp->name, e->net->blob_names[e->nl->bottom_id[j]]);
    return v;
}

static int in_dim0(const struct ex *e, int j)
{
    int d = e->dim0[e->nl->bottom_id[j]];
    return d < 0 ? DIM_FIXED : d;
}

static bool batched(const struct ex *e, int j)
{
    return e->dynamic && in_dim0(e, j) != DIM_FIXED;
}

/* The name of top j of layer li: the blob's own name when this is the last
 * layer that writes it, else a new one (in-place layers write a blob many
 * times; ONNX values are written once). */
static const char *out_of(struct ex *e, int li, int j)
{
    const struct net_layer *nl = &e->net->layers[li];
    int b = nl->top_id[j];
    const char *plain = e->net->blob_names[b];
    const char *name;
    if (e->last_writer[b] == li && !e->is_input[b] && !e->plain_made[b]) {
        name = plain;
        e->plain_made[b] = true;
    } else {
        name = og_unique(e->g, "%s/%s", plain, nl->layer->name);
    }
    e->pend_blob[e->n_pend] = b;
    e->pend_name[e->n_pend++] = name;
    return name;
}

static const char *out(struct ex *e, int j)
{
    return out_of(e, e->li, j);
}

static void set_dim0(struct ex *e, int j, int d)
{
    e->dim0[e->nl->top_id[j]] = (signed char)d;
}

/* A name for a value inside the layer's expansion. */
static const char *tmp(struct ex *e, const char *what)
{
    return og_unique(e->g, "%s/%s", e->lp->name, what);
}

static Onnx__NodeProto *node(struct ex *e, const char *op, int n_in, const char *const *ins, int n_out,
                             const char *const *outs)
{
    for (int i = 0; i < n_in; i++)
        if (!ins[i])
            return NULL; /* a failure is recorded already */
    for (int i = 0; i < n_out; i++)
        if (!outs[i])
            return NULL;
    const char *name = e->n_nodes++ ? og_str(e->g, "%s/%s_%d", e->lp->name, op, e->n_nodes) : e->lp->name;
    return og_node(e->g, op, name, n_in, ins, n_out, outs);
}

/* One-input, one-output node writing value `y`. */
static Onnx__NodeProto *op1(struct ex *e, const char *op, const char *x, const char *y)
{
    const char *ins[] = { x }, *outs[] = { y };
    return node(e, op, 1, ins, 1, outs);
}

static Onnx__NodeProto *op2(struct ex *e, const char *op, const char *a, const char *b, const char *y)
{
    const char *ins[] = { a, b }, *outs[] = { y };
    return node(e, op, 2, ins, 1, outs);
}

static void ints_attr(struct ex *e, Onnx__NodeProto *n, const char *name, int count, const int *v)
{
    int64_t w[2 * TENSOR_MAX_AXES];
    for (int i = 0; i < count; i++)
        w[i] = v[i];
    og_attr_ints(e->g, n, name, count, w);
}

static const char *ints_const(struct ex *e, const char *what, int count, const int64_t *v)
{
    return og_const_ints(e->g, og_str(e->g, "%s/%s", e->lp->name, what), count, v);
}

static const char *float_const(struct ex *e, const char *what, float v)
{
    return og_const_float(e->g, og_str(e->g, "%s/%s", e->lp->name, what), v);
}

static Onnx__NodeProto *cast(struct ex *e, const char *x, int to, const char *y)
{
    Onnx__NodeProto *n = op1(e, "Cast", x, y);
    og_attr_int(e->g, n, "to", to);
    return n;
}

/* Reduce* with its axes as an attribute (before opset 18; ReduceSum since
 * 13) or as an input. */
static Onnx__NodeProto *reduce(struct ex *e, const char *op, const char *x, int n_axes, const int64_t *axes,
                               bool keepdims, const char *y)
{
    Onnx__NodeProto *n;
    if (e->opset >= 18 || strcmp(op, "ReduceSum") == 0) {
        n = op2(e, op, x, ints_const(e, "axes", n_axes, axes), y);
    } else {
        n = op1(e, op, x, y);
        og_attr_ints(e->g, n, "axes", n_axes, axes);
    }
    og_attr_int(e->g, n, "keepdims", keepdims);
    return n;
}

/* Reshape to the static shape of `like`, with axis 0 copied from the input
 * (0) when it is the open batch. */
static Onnx__NodeProto *reshape_like(struct ex *e, const char *x, const struct tensor *like, bool copy0,
                                     const char *y)
{
    int64_t dims[TENSOR_MAX_AXES];
    for (int i = 0; i < like->num_axes; i++) {
        dims[i] = like->shape[i];
        /* ONNX's 0 means "copy"; a real 0 needs allowzero, which would take
         * the copy away from axis 0. */
        if (dims[i] == 0) {
            refuse(e, "has an empty (0-sized) axis in its output");
            return NULL;
        }
    }
    if (copy0 && like->num_axes > 0)
        dims[0] = 0;
    return op2(e, "Reshape", x, ints_const(e, "shape", like->num_axes, dims), y);
}

/* ---- weights --------------------------------------------------------------- */

static int tensor_dims(const struct tensor *t, int64_t *dims)
{
    for (int i = 0; i < t->num_axes; i++)
        dims[i] = t->shape[i];
    return t->num_axes;
}

/* Blob k of the layer as an initializer of the given shape (its own when
 * dims is NULL); a blob shared with a layer exported before is named once. */
static const char *weight_of(struct ex *e, struct layer *l, int k, const char *what, int ndims,
                             const int64_t *dims)
{
    struct tensor *t = l->blobs[k];
    int64_t own[TENSOR_MAX_AXES];
    if (!dims) {
        ndims = tensor_dims(t, own);
        dims = own;
    }
    const float *data = tensor_cdata(t);
    if (!data) {
        og_fail(e->g, CREMA_ERR_NOMEM, "layer %s: cannot read blob %d: %s", l->name, k, err_msg());
        return NULL;
    }
    for (int i = 0; i < e->n_params; i++) {
        const struct param_cache *c = &e->params[i];
        if (c->data == data && c->ndims == ndims && memcmp(c->dims, dims, (size_t)ndims * sizeof *dims) == 0)
            return c->name;
    }
    const char *name = og_unique(e->g, "%s/%s", l->name, what);
    name = name ? og_init_float(e->g, name, ndims, dims, data, false) : NULL;
    if (name && e->n_params < e->net->n_params) {
        struct param_cache *c = &e->params[e->n_params++];
        c->data = data;
        c->ndims = ndims;
        memcpy(c->dims, dims, (size_t)ndims * sizeof *dims);
        c->name = name;
    }
    return name;
}

static const char *weight(struct ex *e, int k, const char *what, int ndims, const int64_t *dims)
{
    return weight_of(e, e->l, k, what, ndims, dims);
}

/* A new initializer of `count` floats from `vals` (copied). */
static const char *values(struct ex *e, const char *what, int ndims, const int64_t *dims, const float *vals)
{
    const char *name = tmp(e, what);
    return name ? og_init_float(e->g, name, ndims, dims, vals, true) : NULL;
}

/* ---- inputs and pass-through layers ------------------------------------- */

static int x_input(struct ex *e)
{
    for (int j = 0; j < e->nl->n_top; j++) {
        int b = e->nl->top_id[j];
        const struct tensor *t = tt(e, j);
        int64_t dims[TENSOR_MAX_AXES];
        const char *params[TENSOR_MAX_AXES] = { NULL };
        int nd = tensor_dims(t, dims);
        if (e->dynamic && nd > 0) {
            dims[0] = -1;
            params[0] = "N";
        }
        const char *name = e->net->blob_names[b];
        e->cur[b] = name;
        e->plain_made[b] = true;
        set_dim0(e, j, e->dynamic && nd > 0 ? DIM_BATCH : DIM_FIXED);
        og_input(e->g, name, nd, dims, params);
    }
    return og_status(e->g);
}

/* Split, Dropout (TEST: the identity): the tops are the bottom's value. */
static int x_alias(struct ex *e)
{
    const char *v = in(e, 0);
    for (int j = 0; j < e->nl->n_top; j++) {
        e->cur[e->nl->top_id[j]] = v;
        set_dim0(e, j, in_dim0(e, 0));
    }
    return og_status(e->g);
}

static int x_silence(struct ex *e)
{
    (void)e;
    return CREMA_OK;
}

static int x_parameter(struct ex *e)
{
    int64_t dims[TENSOR_MAX_AXES];
    int nd = tensor_dims(e->l->blobs[0], dims);
    const char *name = out(e, 0);
    const float *data = tensor_cdata(e->l->blobs[0]);
    if (name && data)
        og_init_float(e->g, name, nd, dims, data, false);
    set_dim0(e, 0, DIM_FIXED);
    return og_status(e->g);
}

static int x_dummy_data(struct ex *e)
{
    const Caffe__DummyDataParameter *p = e->lp->dummy_data_param;
    size_t nf = p ? p->n_data_filler : 0;
    for (int j = 0; j < e->nl->n_top; j++) {
        const Caffe__FillerParameter *f = nf == 0 ? NULL : p->data_filler[nf == 1 ? 0 : (size_t)j];
        if (f && f->type && strcmp(f->type, "constant") != 0)
            return refuse(e, "top %d is refilled by the \"%s\" filler on every forward; ONNX has constants and "
                          "its own random operators, not Caffe's fillers", j, f->type);
        const struct tensor *t = tt(e, j);
        float *v = og_floats(e->g, t->count);
        for (size_t i = 0; v && i < t->count; i++)
            v[i] = f ? f->value : 0.f;
        int64_t dims[TENSOR_MAX_AXES];
        int nd = tensor_dims(t, dims);
        const char *name = out(e, j);
        if (name && v)
            og_init_float(e->g, name, nd, dims, v, false);
        set_dim0(e, j, DIM_FIXED);
    }
    return og_status(e->g);
}

/* ---- vision ---------------------------------------------------------------- */

static int x_conv_like(struct ex *e, const char *op)
{
    static const Caffe__ConvolutionParameter def = CAFFE__CONVOLUTION_PARAMETER__INIT;
    const Caffe__ConvolutionParameter *cp = e->lp->convolution_param ? e->lp->convolution_param : &def;
    const struct tensor *x = bt(e, 0);
    int axis = tensor_canonical_axis(x, cp->axis);
    if (axis != 1)
        return refuse(e, "its channels are axis %d; ONNX's %s takes them at axis 1", axis, op);
    int nsp = x->num_axes - 2;
    struct conv_geom g;
    if (conv_geom_parse(cp, nsp, &g))
        return og_fail(e->g, CREMA_ERR_INVALID, "layer %s: %s", e->lp->name, err_msg());
    const char *ins[3] = { in(e, 0), weight(e, 0, "weight", 0, NULL), NULL };
    int n_in = 2;
    if (cp->bias_term && e->l->n_blobs > 1) {
        int64_t nb = (int64_t)e->l->blobs[1]->count;
        ins[n_in++] = weight(e, 1, "bias", 1, &nb);
    }
    const char *outs[] = { out(e, 0) };
    Onnx__NodeProto *n = node(e, op, n_in, ins, 1, outs);
    int pads[2 * TENSOR_MAX_AXES];
    for (int i = 0; i < nsp; i++)
        pads[i] = pads[nsp + i] = g.pad[i];
    ints_attr(e, n, "kernel_shape", nsp, g.kernel);
    ints_attr(e, n, "strides", nsp, g.stride);
    ints_attr(e, n, "pads", 2 * nsp, pads);
    ints_attr(e, n, "dilations", nsp, g.dilation);
    og_attr_int(e->g, n, "group", cp->group ? cp->group : 1);
    return og_status(e->g);
}

static int x_convolution(struct ex *e)
{
    return x_conv_like(e, "Conv");
}

/* Caffe's Deconvolution is ConvTranspose with the same weight layout
 * (in, out / group, kernel...) and output size stride * (in - 1) +
 * dilated kernel - 2 * pad. */
static int x_deconvolution(struct ex *e)
{
    return x_conv_like(e, "ConvTranspose");
}

/* Caffe's Im2col is a grouped convolution by one-hot kernels: output
 * channel c * K + k copies kernel offset k of channel c. */
static int x_im2col(struct ex *e)
{
    static const Caffe__ConvolutionParameter def = CAFFE__CONVOLUTION_PARAMETER__INIT;
    const Caffe__ConvolutionParameter *cp = e->lp->convolution_param ? e->lp->convolution_param : &def;
    const struct tensor *x = bt(e, 0);
    if (tensor_canonical_axis(x, cp->axis) != 1)
        return refuse(e, "its channels are not axis 1");
    int nsp = x->num_axes - 2;
    struct conv_geom g;
    if (conv_geom_parse(cp, nsp, &g))
        return og_fail(e->g, CREMA_ERR_INVALID, "layer %s: %s", e->lp->name, err_msg());
    int64_t C = x->shape[1], K = 1;
    int64_t dims[2 + TENSOR_MAX_AXES];
    for (int i = 0; i < nsp; i++) {
        K *= g.kernel[i];
        dims[2 + i] = g.kernel[i];
    }
    dims[0] = C * K;
    dims[1] = 1;
    float *w = og_floats(e->g, (size_t)(C * K * K));
    for (int64_t c = 0; w && c < C; c++)
        for (int64_t k = 0; k < K; k++)
            w[(c * K + k) * K + k] = 1.f;
    const char *wn = tmp(e, "onehot");
    if (wn && w)
        og_init_float(e->g, wn, 2 + nsp, dims, w, false);
    const char *ins[] = { in(e, 0), wn }, *outs[] = { out(e, 0) };
    Onnx__NodeProto *n = node(e, "Conv", 2, ins, 1, outs);
    int pads[2 * TENSOR_MAX_AXES];
    for (int i = 0; i < nsp; i++)
        pads[i] = pads[nsp + i] = g.pad[i];
    ints_attr(e, n, "kernel_shape", nsp, g.kernel);
    ints_attr(e, n, "strides", nsp, g.stride);
    ints_attr(e, n, "pads", 2 * nsp, pads);
    ints_attr(e, n, "dilations", nsp, g.dilation);
    og_attr_int(e->g, n, "group", C);
    return og_status(e->g);
}

/* One 2-D pooling with Caffe's output size (oh x ow, from the net) and
 * divisors. ONNX's ceil_mode changed meaning across opsets, so the extra
 * end padding that Caffe's rounding implies is written out, with ceil_mode
 * 0. Caffe's AVE divides by the window clipped to the padded image (pad
 * counted, the rounding's overhang not): no pad -> count_include_pad 0;
 * windows that never pass the pad -> count_include_pad 1; otherwise the
 * pad is made explicit (zeros) and count_include_pad 0 leaves out only the
 * overhang. mask, when not NULL, gets Caffe's MAX index h * W + w. */
static void emit_pool(struct ex *e, const char *x, bool max, const int k[2], const int s[2], const int p[2],
                      const int in_hw[2], const int out_hw[2], const char *y, const char *mask)
{
    int raw[2], end[2];
    for (int i = 0; i < 2; i++) {
        raw[i] = (out_hw[i] - 1) * s[i] + k[i] - in_hw[i] - p[i];
        end[i] = raw[i] > 0 ? raw[i] : 0;
    }
    Onnx__NodeProto *n;
    if (max) {
        const char *idx = mask ? tmp(e, "argmax") : NULL;
        const char *ins[] = { x }, *outs[] = { y, idx };
        n = node(e, "MaxPool", 1, ins, mask ? 2 : 1, outs);
        int pads[4] = { p[0], p[1], end[0], end[1] };
        ints_attr(e, n, "pads", 4, pads);
        if (mask) {
            const char *plane = tmp(e, "plane");
            int64_t hw = (int64_t)in_hw[0] * in_hw[1];
            op2(e, "Mod", idx, ints_const(e, "plane_size", 1, &hw), plane);
            cast(e, plane, ONNX_FLOAT, mask);
        }
    } else {
        bool no_pad = p[0] == 0 && p[1] == 0;
        bool within_pad = p[0] > 0 && p[1] > 0 && raw[0] <= p[0] && raw[1] <= p[1];
        int pads[4] = { p[0], p[1], end[0], end[1] };
        const char *src = x;
        int cip = within_pad ? 1 : 0;
        if (!no_pad && !within_pad) {
            int64_t zp[8] = { 0, 0, p[0], p[1], 0, 0, p[0], p[1] };
            src = tmp(e, "padded");
            op2(e, "Pad", x, ints_const(e, "pads", 8, zp), src);
            for (int i = 0; i < 2; i++) {
                pads[i] = 0;
                pads[2 + i] = raw[i] - p[i] > 0 ? raw[i] - p[i] : 0;
            }
        }
        n = op1(e, "AveragePool", src, y);
        ints_attr(e, n, "pads", 4, pads);
        og_attr_int(e->g, n, "count_include_pad", cip);
    }
    ints_attr(e, n, "kernel_shape", 2, k);
    ints_attr(e, n, "strides", 2, s);
}

static int x_pooling(struct ex *e)
{
    static const Caffe__PoolingParameter def = CAFFE__POOLING_PARAMETER__INIT;
    const Caffe__PoolingParameter *pp = e->lp->pooling_param ? e->lp->pooling_param : &def;
    const struct tensor *x = bt(e, 0), *y = tt(e, 0);
    bool max = pp->pool == CAFFE__POOLING_PARAMETER__POOL_METHOD__MAX;
    if (!max && pp->pool != CAFFE__POOLING_PARAMETER__POOL_METHOD__AVE)
        return refuse(e, "STOCHASTIC pooling has no ONNX operator");
    if (x->num_axes != 4)
        return refuse(e, "pools a %d-axis blob; Caffe's pooling is 2-D", x->num_axes);
    int in_hw[2] = { x->shape[2], x->shape[3] }, out_hw[2] = { y->shape[2], y->shape[3] };
    bool global = pp->has_global_pooling && pp->global_pooling;
    if (global && e->nl->n_top == 1) {
        op1(e, max ? "GlobalMaxPool" : "GlobalAveragePool", in(e, 0), out(e, 0));
        return og_status(e->g);
    }
    int k[2], s[2], p[2];
    if (global) {
        k[0] = in_hw[0];
        k[1] = in_hw[1];
    } else {
        k[0] = (int)(pp->has_kernel_size ? pp->kernel_size : pp->kernel_h);
        k[1] = (int)(pp->has_kernel_size ? pp->kernel_size : pp->kernel_w);
    }
    p[0] = (int)(pp->has_pad_h ? pp->pad_h : pp->pad);
    p[1] = (int)(pp->has_pad_w ? pp->pad_w : pp->pad);
    s[0] = (int)(pp->has_stride_h ? pp->stride_h : pp->stride);
    s[1] = (int)(pp->has_stride_w ? pp->stride_w : pp->stride);
    const char *x_name = in(e, 0);
    const char *y_name = out(e, 0);
    const char *mask = e->nl->n_top > 1 ? out(e, 1) : NULL;
    emit_pool(e, x_name, max, k, s, p, in_hw, out_hw, y_name, mask);
    return og_status(e->g);
}

/* SPP: level i pools into 2^i x 2^i bins with Caffe's kernel, pad and
 * CEIL rounding; the levels are flattened and concatenated. */
static int x_spp(struct ex *e)
{
    static const Caffe__SPPParameter def = CAFFE__SPPPARAMETER__INIT;
    const Caffe__SPPParameter *sp = e->lp->spp_param ? e->lp->spp_param : &def;
    bool max = sp->pool == CAFFE__SPPPARAMETER__POOL_METHOD__MAX;
    if (!max && sp->pool != CAFFE__SPPPARAMETER__POOL_METHOD__AVE)
        return refuse(e, "STOCHASTIC pooling has no ONNX operator");
    const struct tensor *x = bt(e, 0);
    int levels = (int)sp->pyramid_height;
    const char *x_name = in(e, 0);
    const char *parts[32];
    bool direct = levels == 1 && tt(e, 0)->num_axes == 4;
    const char *y_name = out(e, 0);
    for (int i = 0; i < levels && i < 32; i++) {
        struct pool_geom g = { 0 };
        int bins = 1 << i;
        g.height = x->shape[2];
        g.width = x->shape[3];
        g.kernel_h = (int)ceil(g.height / (double)bins);
        g.kernel_w = (int)ceil(g.width / (double)bins);
        g.pad_h = (g.kernel_h * bins - g.height + 1) / 2;
        g.pad_w = (g.kernel_w * bins - g.width + 1) / 2;
        g.stride_h = g.kernel_h;
        g.stride_w = g.kernel_w;
        if (pool_geom_shape(&g, true))
            return og_fail(e->g, CREMA_ERR_INVALID, "layer %s: %s", e->lp->name, err_msg());
        int k[2] = { g.kernel_h, g.kernel_w }, s[2] = { g.stride_h, g.stride_w }, p[2] = { g.pad_h, g.pad_w };
        int ihw[2] = { g.height, g.width }, ohw[2] = { g.pooled_h, g.pooled_w };
        const char *pooled = direct ? y_name : tmp(e, "level");
        emit_pool(e, x_name, max, k, s, p, ihw, ohw, pooled, NULL);
        if (direct)
            break;
        parts[i] = levels == 1 ? y_name : tmp(e, "flat");
        Onnx__NodeProto *f = op1(e, "Flatten", pooled, parts[i]);
        og_attr_int(e->g, f, "axis", 1);
    }
    if (levels > 1) {
        Onnx__NodeProto *c = node(e, "Concat", levels, parts, 1, &y_name);
        og_attr_int(e->g, c, "axis", 1);
    }
    return og_status(e->g);
}

/* ACROSS_CHANNELS is ONNX's LRN (bias k + alpha / size * window sum);
 * WITHIN_CHANNEL is Caffe's chain: x * (1 + alpha * avg(x^2))^-beta with
 * the average over size x size windows, padding counted. */
static int x_lrn(struct ex *e)
{
    static const Caffe__LRNParameter def = CAFFE__LRNPARAMETER__INIT;
    const Caffe__LRNParameter *p = e->lp->lrn_param ? e->lp->lrn_param : &def;
    const char *x = in(e, 0);
    if (p->norm_region == CAFFE__LRNPARAMETER__NORM_REGION__ACROSS_CHANNELS) {
        Onnx__NodeProto *n = op1(e, "LRN", x, out(e, 0));
        og_attr_int(e->g, n, "size", p->local_size);
        og_attr_float(e->g, n, "alpha", p->alpha);
        og_attr_float(e->g, n, "beta", p->beta);
        og_attr_float(e->g, n, "bias", p->k);
        return og_status(e->g);
    }
    if (bt(e, 0)->num_axes != 4)
        return refuse(e, "WITHIN_CHANNEL on a %d-axis blob", bt(e, 0)->num_axes);
    const char *sq = tmp(e, "square"), *avg = tmp(e, "avg"), *sc = tmp(e, "scaled"), *sh = tmp(e, "shifted"),
               *pw = tmp(e, "power");
    op2(e, "Mul", x, x, sq);
    int size = (int)p->local_size, pad = (size - 1) / 2;
    Onnx__NodeProto *n = op1(e, "AveragePool", sq, avg);
    int k[2] = { size, size }, s[2] = { 1, 1 }, pads[4] = { pad, pad, pad, pad };
    ints_attr(e, n, "kernel_shape", 2, k);
    ints_attr(e, n, "strides", 2, s);
    ints_attr(e, n, "pads", 4, pads);
    og_attr_int(e->g, n, "count_include_pad", 1);
    op2(e, "Mul", avg, float_const(e, "alpha", p->alpha), sc);
    op2(e, "Add", sc, float_const(e, "one", 1.f), sh);
    op2(e, "Pow", sh, float_const(e, "minus_beta", -p->beta), pw);
    op2(e, "Mul", x, pw, out(e, 0));
    return og_status(e->g);
}

static int x_crop(struct ex *e)
{
    static const Caffe__CropParameter def = CAFFE__CROP_PARAMETER__INIT;
    const Caffe__CropParameter *p = e->lp->crop_param ? e->lp->crop_param : &def;
    const struct tensor *x = bt(e, 0), *ref = bt(e, 1);
    int axis = tensor_canonical_axis(x, p->axis);
    if (axis == 0 && batched(e, 0))
        return need_fixed_batch(e, "it crops axis 0, the batch");
    int n = x->num_axes - axis;
    int64_t starts[TENSOR_MAX_AXES], ends[TENSOR_MAX_AXES], axes[TENSOR_MAX_AXES];
    for (int i = 0; i < n; i++) {
        int64_t off = p->n_offset == 0 ? 0 : p->offset[p->n_offset == 1 ? 0 : (size_t)i];
        starts[i] = off;
        ends[i] = off + ref->shape[axis + i];
        axes[i] = axis + i;
    }
    const char *ins[] = { in(e, 0), ints_const(e, "starts", n, starts), ints_const(e, "ends", n, ends),
                          ints_const(e, "axes", n, axes) };
    const char *outs[] = { out(e, 0) };
    node(e, "Slice", 4, ins, 1, outs);
    return og_status(e->g);
}

/* ---- dense ----------------------------------------------------------------- */

static int x_inner_product(struct ex *e)
{
    static const Caffe__InnerProductParameter def = CAFFE__INNER_PRODUCT_PARAMETER__INIT;
    const Caffe__InnerProductParameter *p = e->lp->inner_product_param ? e->lp->inner_product_param : &def;
    const struct tensor *x = bt(e, 0);
    int axis = tensor_canonical_axis(x, p->axis);
    if (axis == 0 && batched(e, 0))
        return need_fixed_batch(e, "its axis is 0: it flattens the batch into one input vector");
    int64_t N = p->num_output, K = 1;
    for (int i = axis; i < x->num_axes; i++)
        K *= x->shape[i];
    const char *xn = in(e, 0);
    const char *bias = NULL;
    if (p->bias_term && e->l->n_blobs > 1)
        bias = weight(e, 1, "bias", 1, &N);
    if (axis == 1) {
        const char *a = xn;
        if (x->num_axes != 2) {
            a = tmp(e, "flat");
            Onnx__NodeProto *f = op1(e, "Flatten", xn, a);
            og_attr_int(e->g, f, "axis", 1);
        }
        int64_t wd[2] = { p->transpose ? K : N, p->transpose ? N : K };
        const char *ins[] = { a, weight(e, 0, "weight", 2, wd), bias };
        const char *outs[] = { out(e, 0) };
        Onnx__NodeProto *n = node(e, "Gemm", bias ? 3 : 2, ins, 1, outs);
        og_attr_int(e->g, n, "transB", p->transpose ? 0 : 1);
        return og_status(e->g);
    }
    /* Leading axes kept: (..., K) x (K, N) by MatMul. */
    int64_t shape[TENSOR_MAX_AXES];
    for (int i = 0; i < axis; i++)
        shape[i] = i == 0 && batched(e, 0) ? 0 : x->shape[i];
    shape[axis] = K;
    const char *a = tmp(e, "rows");
    op2(e, "Reshape", xn, ints_const(e, "shape", axis + 1, shape), a);
    const char *w;
    int64_t kn[2] = { K, N };
    if (p->transpose) {
        w = weight(e, 0, "weight", 2, kn);
    } else {
        const float *src = tensor_cdata(e->l->blobs[0]);
        float *wt = og_floats(e->g, (size_t)(K * N));
        for (int64_t r = 0; src && wt && r < N; r++)
            for (int64_t c = 0; c < K; c++)
                wt[c * N + r] = src[r * K + c];
        w = values(e, "weight_t", 2, kn, wt);
    }
    const char *y = bias ? tmp(e, "product") : out(e, 0);
    op2(e, "MatMul", a, w, y);
    if (bias)
        op2(e, "Add", y, bias, out(e, 0));
    return og_status(e->g);
}

static int x_embed(struct ex *e)
{
    static const Caffe__EmbedParameter def = CAFFE__EMBED_PARAMETER__INIT;
    const Caffe__EmbedParameter *p = e->lp->embed_param ? e->lp->embed_param : &def;
    const char *idx = tmp(e, "index");
    cast(e, in(e, 0), ONNX_INT64, idx);
    bool bias = p->bias_term && e->l->n_blobs > 1;
    const char *g = bias ? tmp(e, "rows") : out(e, 0);
    Onnx__NodeProto *n = op2(e, "Gather", weight(e, 0, "weight", 0, NULL), idx, g);
    og_attr_int(e->g, n, "axis", 0);
    if (bias) {
        int64_t nb = (int64_t)e->l->blobs[1]->count;
        op2(e, "Add", g, weight(e, 1, "bias", 1, &nb), out(e, 0));
    }
    return og_status(e->g);
}

/* ---- neurons --------------------------------------------------------------- */

static int x_relu(struct ex *e)
{
    float slope = e->lp->relu_param ? e->lp->relu_param->negative_slope : 0.f;
    if (slope == 0.f) {
        op1(e, "Relu", in(e, 0), out(e, 0));
    } else {
        Onnx__NodeProto *n = op1(e, "LeakyRelu", in(e, 0), out(e, 0));
        og_attr_float(e->g, n, "alpha", slope);
    }
    return og_status(e->g);
}

static int x_prelu(struct ex *e)
{
    const struct tensor *x = bt(e, 0);
    const struct tensor *slope = e->l->blobs[0];
    /* Slopes are per channel (axis 1): shape (C, 1, ...) broadcasts. */
    int64_t dims[TENSOR_MAX_AXES];
    int nd = 1;
    dims[0] = (int64_t)slope->count;
    if (slope->count > 1)
        for (int i = 2; i < x->num_axes; i++)
            dims[nd++] = 1;
    op2(e, "PRelu", in(e, 0), weight(e, 0, "slope", nd, dims), out(e, 0));
    return og_status(e->g);
}

static int x_elu(struct ex *e)
{
    Onnx__NodeProto *n = op1(e, "Elu", in(e, 0), out(e, 0));
    og_attr_float(e->g, n, "alpha", e->lp->elu_param ? e->lp->elu_param->alpha : 1.f);
    return og_status(e->g);
}

static int x_unary(struct ex *e, const char *op)
{
    op1(e, op, in(e, 0), out(e, 0));
    return og_status(e->g);
}

static int x_sigmoid(struct ex *e)
{
    return x_unary(e, "Sigmoid");
}

static int x_tanh(struct ex *e)
{
    return x_unary(e, "Tanh");
}

static int x_absval(struct ex *e)
{
    return x_unary(e, "Abs");
}

/* BNLL: log(1 + exp(x)), computed stably as Caffe does. */
static int x_bnll(struct ex *e)
{
    return x_unary(e, "Softplus");
}

/* t = scale * x + shift, each step only when it changes something; the
 * value name of the result (x itself when both are trivial). */
static const char *affine(struct ex *e, const char *x, float scale, float shift)
{
    if (scale != 1.f) {
        const char *y = tmp(e, "scaled");
        op2(e, "Mul", x, float_const(e, "scale", scale), y);
        x = y;
    }
    if (shift != 0.f) {
        const char *y = tmp(e, "shifted");
        op2(e, "Add", x, float_const(e, "shift", shift), y);
        x = y;
    }
    return x;
}

/* Power: (shift + scale * x)^power. */
static int x_power(struct ex *e)
{
    static const Caffe__PowerParameter def = CAFFE__POWER_PARAMETER__INIT;
    const Caffe__PowerParameter *p = e->lp->power_param ? e->lp->power_param : &def;
    const char *x = in(e, 0);
    if (p->power == 1.f) {
        if (p->scale == 1.f && p->shift == 0.f) {
            op1(e, "Identity", x, out(e, 0));
        } else if (p->shift == 0.f) {
            op2(e, "Mul", x, float_const(e, "scale", p->scale), out(e, 0));
        } else {
            const char *t = affine(e, x, p->scale, 0.f);
            op2(e, "Add", t, float_const(e, "shift", p->shift), out(e, 0));
        }
        return og_status(e->g);
    }
    const char *t = affine(e, x, p->scale, p->shift);
    op2(e, "Pow", t, float_const(e, "power", p->power), out(e, 0));
    return og_status(e->g);
}

/* Exp: base^(shift + scale * x) as Caffe computes it,
 * exp(ln(base) * scale * x) * base^shift. */
static int x_exp(struct ex *e)
{
    static const Caffe__ExpParameter def = CAFFE__EXP_PARAMETER__INIT;
    const Caffe__ExpParameter *p = e->lp->exp_param ? e->lp->exp_param : &def;
    float log_base = p->base == -1.f ? 1.f : logf(p->base);
    float inner = log_base * p->scale;
    float outer = p->shift == 0.f ? 1.f : (p->base != -1.f ? powf(p->base, p->shift) : expf(p->shift));
    const char *t = affine(e, in(e, 0), inner, 0.f);
    if (outer == 1.f) {
        op1(e, "Exp", t, out(e, 0));
    } else {
        const char *ex = tmp(e, "exp");
        op1(e, "Exp", t, ex);
        op2(e, "Mul", ex, float_const(e, "outer_scale", outer), out(e, 0));
    }
    return og_status(e->g);
}

/* Log: log_base(shift + scale * x) = ln(...) / ln(base). */
static int x_log(struct ex *e)
{
    static const Caffe__LogParameter def = CAFFE__LOG_PARAMETER__INIT;
    const Caffe__LogParameter *p = e->lp->log_param ? e->lp->log_param : &def;
    float base_scale = p->base == -1.f ? 1.f : 1.f / logf(p->base);
    const char *t = affine(e, in(e, 0), p->scale, p->shift);
    if (base_scale == 1.f) {
        op1(e, "Log", t, out(e, 0));
    } else {
        const char *ln = tmp(e, "ln");
        op1(e, "Log", t, ln);
        op2(e, "Mul", ln, float_const(e, "base_scale", base_scale), out(e, 0));
    }
    return og_status(e->g);
}

static int x_threshold(struct ex *e)
{
    float t = e->lp->threshold_param ? e->lp->threshold_param->threshold : 0.f;
    const char *gt = tmp(e, "above");
    op2(e, "Greater", in(e, 0), float_const(e, "threshold", t), gt);
    cast(e, gt, ONNX_FLOAT, out(e, 0));
    return og_status(e->g);
}

static int x_clip(struct ex *e)
{
    const Caffe__ClipParameter *p = e->lp->clip_param;
    if (!p)
        return refuse(e, "has no clip_param");
    const char *ins[] = { in(e, 0), float_const(e, "min", p->min), float_const(e, "max", p->max) };
    const char *outs[] = { out(e, 0) };
    node(e, "Clip", 3, ins, 1, outs);
    return og_status(e->g);
}

/* Swish: x * sigmoid(beta * x). */
static int x_swish(struct ex *e)
{
    float beta = e->lp->swish_param ? e->lp->swish_param->beta : 1.f;
    const char *x = in(e, 0), *s = tmp(e, "sigmoid");
    op1(e, "Sigmoid", affine(e, x, beta, 0.f), s);
    op2(e, "Mul", x, s, out(e, 0));
    return og_status(e->g);
}

/* ---- normalisation ------------------------------------------------------- */

/* Whether layer li + 1 is a Scale over channels that reads only what
 * BatchNorm li writes, so that the two become one BatchNormalization. */
static bool scale_follows(const struct ex *e, int li)
{
    if (li + 1 >= e->net->n_layers)
        return false;
    const struct net_layer *bn = &e->net->layers[li], *sc = &e->net->layers[li + 1];
    const Caffe__LayerParameter *sp = sc->layer->param;
    if (strcmp(sc->layer->kind->type, "Scale") != 0 || sc->n_bottom != 1 || sc->bottom_id[0] != bn->top_id[0])
        return false;
    static const Caffe__ScaleParameter def = CAFFE__SCALE_PARAMETER__INIT;
    const Caffe__ScaleParameter *p = sp->scale_param ? sp->scale_param : &def;
    return tensor_canonical_axis(bn->top[0], p->axis) == 1 && p->num_axes == 1 && sc->layer->n_blobs >= 1 &&
           (int)sc->layer->blobs[0]->count == bn->top[0]->shape[1];
}

/* BatchNorm: with stored statistics (TEST), ONNX's BatchNormalization with
 * mean and variance divided by Caffe's scale factor; the Scale layer that
 * follows (Caffe's BatchNorm + Scale pair) gives its scale and bias. With
 * the batch's own statistics, the same formula from ReduceMean. */
static int x_batch_norm(struct ex *e)
{
    static const Caffe__BatchNormParameter def = CAFFE__BATCH_NORM_PARAMETER__INIT;
    const Caffe__BatchNormParameter *p = e->lp->batch_norm_param ? e->lp->batch_norm_param : &def;
    const struct tensor *x = bt(e, 0);
    if (x->num_axes < 2)
        return refuse(e, "normalizes a %d-axis blob; channels are axis 1", x->num_axes);
    bool global = p->has_use_global_stats ? p->use_global_stats : e->net->phase == CAFFE__PHASE__TEST;
    const char *xn = in(e, 0);
    if (!global) {
        int64_t axes[TENSOR_MAX_AXES];
        int na = 0;
        axes[na++] = 0;
        for (int i = 2; i < x->num_axes; i++)
            axes[na++] = i;
        const char *mean = tmp(e, "mean"), *d = tmp(e, "centered"), *d2 = tmp(e, "squared"), *var = tmp(e, "var"),
                   *ve = tmp(e, "var_eps"), *sd = tmp(e, "std");
        reduce(e, "ReduceMean", xn, na, axes, true, mean);
        op2(e, "Sub", xn, mean, d);
        op2(e, "Mul", d, d, d2);
        reduce(e, "ReduceMean", d2, na, axes, true, var);
        op2(e, "Add", var, float_const(e, "eps", p->eps), ve);
        op1(e, "Sqrt", ve, sd);
        op2(e, "Div", d, sd, out(e, 0));
        return og_status(e->g);
    }
    int64_t C = x->shape[1];
    const float *m = tensor_cdata(e->l->blobs[0]), *v = tensor_cdata(e->l->blobs[1]),
                *f = tensor_cdata(e->l->blobs[2]);
    float *mean = og_floats(e->g, (size_t)C), *var = og_floats(e->g, (size_t)C);
    if (!m || !v || !f || !mean || !var)
        return og_fail(e->g, CREMA_ERR_NOMEM, "layer %s: out of memory", e->lp->name);
    float sf = f[0] == 0.f ? 0.f : 1.f / f[0];
    for (int64_t c = 0; c < C; c++) {
        mean[c] = m[c] * sf;
        var[c] = v[c] * sf;
    }
    bool fused = scale_follows(e, e->li);
    int out_layer = e->li;
    const char *gamma, *beta;
    if (fused) {
        struct layer *sc = e->net->layers[e->li + 1].layer;
        const Caffe__ScaleParameter *sp = sc->param->scale_param;
        gamma = weight_of(e, sc, 0, "scale", 1, &C);
        if (sp && sp->bias_term && sc->n_blobs > 1) {
            beta = weight_of(e, sc, 1, "bias", 1, &C);
        } else {
            float *z = og_floats(e->g, (size_t)C);
            beta = values(e, "bias", 1, &C, z);
        }
        e->skip[e->li + 1] = true;
        out_layer = e->li + 1;
        if (e->log)
            fprintf(e->log, "onnx: Scale layer %s folded into BatchNorm layer %s (one BatchNormalization)\n",
                    sc->name, e->lp->name);
    } else {
        float *one = og_floats(e->g, (size_t)C), *z = og_floats(e->g, (size_t)C);
        for (int64_t c = 0; one && c < C; c++)
            one[c] = 1.f;
        gamma = values(e, "scale", 1, &C, one);
        beta = values(e, "bias", 1, &C, z);
    }
    const char *ins[] = { xn, gamma, beta, values(e, "mean", 1, &C, mean), values(e, "var", 1, &C, var) };
    const char *outs[] = { out_of(e, out_layer, 0) };
    Onnx__NodeProto *n = node(e, "BatchNormalization", 5, ins, 1, outs);
    og_attr_float(e->g, n, "epsilon", p->eps);
    if (fused)
        e->dim0[e->net->layers[out_layer].top_id[0]] = (signed char)in_dim0(e, 0);
    return og_status(e->g);
}

/* The value `v` of a factor with shape `fs` that applies from `axis` on of
 * an x of nd axes, given trailing unit axes so that numpy broadcasting
 * lines it up: a parameter blob gets them in its initializer shape, a
 * bottom through Unsqueeze. */
static const char *line_up(struct ex *e, const char *v, bool is_param, int k, const char *what, int nd, int axis,
                           const struct tensor *fs)
{
    int trail = nd - axis - fs->num_axes;
    if (is_param) {
        int64_t dims[TENSOR_MAX_AXES];
        int n = tensor_dims(fs, dims);
        for (int i = 0; i < trail; i++)
            dims[n++] = 1;
        return weight(e, k, what, n, dims);
    }
    if (trail <= 0)
        return v;
    int64_t axes[TENSOR_MAX_AXES];
    for (int i = 0; i < trail; i++)
        axes[i] = fs->num_axes + i;
    const char *u = tmp(e, what);
    op2(e, "Unsqueeze", v, ints_const(e, "axes", trail, axes), u);
    return u;
}

/* Scale (x * s [+ b]) and Bias (x + b): the factor from a second bottom or
 * a parameter blob, covering axes axis .. axis + its axes. */
static int x_scale_or_bias(struct ex *e, bool scale)
{
    static const Caffe__ScaleParameter sdef = CAFFE__SCALE_PARAMETER__INIT;
    static const Caffe__BiasParameter bdef = CAFFE__BIAS_PARAMETER__INIT;
    const Caffe__ScaleParameter *sp = e->lp->scale_param ? e->lp->scale_param : &sdef;
    const Caffe__BiasParameter *bp = e->lp->bias_param ? e->lp->bias_param : &bdef;
    const struct tensor *x = bt(e, 0);
    int axis = tensor_canonical_axis(x, scale ? sp->axis : bp->axis);
    bool two = e->nl->n_bottom > 1;
    const struct tensor *fs = two ? bt(e, 1) : e->l->blobs[0];
    if (!two && axis == 0 && fs->num_axes > 0 && batched(e, 0))
        return need_fixed_batch(e, "its parameter blob spans axis 0, the batch");
    const char *xn = in(e, 0);
    const char *f = line_up(e, two ? in(e, 1) : NULL, !two, 0, scale ? "scale" : "bias", x->num_axes, axis, fs);
    bool add_bias = scale && sp->bias_term;
    const char *y = add_bias ? tmp(e, "scaled") : out(e, 0);
    op2(e, scale ? "Mul" : "Add", xn, f, y);
    if (add_bias) {
        int k = two ? 0 : 1;
        if (k >= e->l->n_blobs)
            return refuse(e, "bias_term is set but the layer has no bias blob");
        const char *b = line_up(e, NULL, true, k, "bias", x->num_axes, axis, e->l->blobs[k]);
        op2(e, "Add", y, b, out(e, 0));
    }
    return og_status(e->g);
}

static int x_scale(struct ex *e)
{
    return x_scale_or_bias(e, true);
}

static int x_bias(struct ex *e)
{
    return x_scale_or_bias(e, false);
}

/* MVN: (x - mean) / (sqrt(E[(x - mean)^2]) + eps) over each channel's
 * values (each sample's, across_channels). */
static int x_mvn(struct ex *e)
{
    static const Caffe__MVNParameter def = CAFFE__MVNPARAMETER__INIT;
    const Caffe__MVNParameter *p = e->lp->mvn_param ? e->lp->mvn_param : &def;
    const struct tensor *x = bt(e, 0);
    int64_t axes[TENSOR_MAX_AXES];
    int na = 0;
    for (int i = p->across_channels ? 1 : 2; i < x->num_axes; i++)
        axes[na++] = i;
    const char *xn = in(e, 0);
    if (na == 0) {
        /* Each value is its own mean: Caffe's output is x - x (and / eps). */
        const char *d = p->normalize_variance ? tmp(e, "centered") : out(e, 0);
        op2(e, "Sub", xn, xn, d);
        if (p->normalize_variance)
            op2(e, "Div", d, float_const(e, "eps", p->eps), out(e, 0));
        return og_status(e->g);
    }
    const char *mean = tmp(e, "mean");
    reduce(e, "ReduceMean", xn, na, axes, true, mean);
    if (!p->normalize_variance) {
        op2(e, "Sub", xn, mean, out(e, 0));
        return og_status(e->g);
    }
    const char *d = tmp(e, "centered"), *d2 = tmp(e, "squared"), *var = tmp(e, "var"), *sd = tmp(e, "std"),
               *den = tmp(e, "denominator");
    op2(e, "Sub", xn, mean, d);
    op2(e, "Mul", d, d, d2);
    reduce(e, "ReduceMean", d2, na, axes, true, var);
    op1(e, "Sqrt", var, sd);
    op2(e, "Add", sd, float_const(e, "eps", p->eps), den);
    op2(e, "Div", d, den, out(e, 0));
    return og_status(e->g);
}

/* ---- structure ------------------------------------------------------------- */

static int x_eltwise(struct ex *e)
{
    static const Caffe__EltwiseParameter def = CAFFE__ELTWISE_PARAMETER__INIT;
    const Caffe__EltwiseParameter *p = e->lp->eltwise_param ? e->lp->eltwise_param : &def;
    int n = e->nl->n_bottom;
    const char *ins[64];
    if (n > 64)
        return refuse(e, "has %d bottoms; the exporter takes at most 64", n);
    for (int j = 0; j < n; j++)
        ins[j] = in(e, j);
    if (p->operation == CAFFE__ELTWISE_PARAMETER__ELTWISE_OP__MAX) {
        const char *outs[] = { out(e, 0) };
        node(e, "Max", n, ins, 1, outs);
        return og_status(e->g);
    }
    bool prod = p->operation == CAFFE__ELTWISE_PARAMETER__ELTWISE_OP__PROD;
    if (!prod && p->n_coeff && (int)p->n_coeff != n)
        return refuse(e, "has %zu coefficients for %d bottoms", p->n_coeff, n);
    /* Caffe accumulates bottom by bottom: ((c0 b0 + c1 b1) + c2 b2) ... */
    const char *acc = NULL;
    for (int j = 0; j < n; j++) {
        const char *term = ins[j];
        float c = prod || !p->n_coeff ? 1.f : p->coeff[j];
        if (c != 1.f) {
            const char *t = tmp(e, "term");
            op2(e, "Mul", term, float_const(e, "coeff", c), t);
            term = t;
        }
        if (!acc) {
            acc = term;
            continue;
        }
        const char *y = j == n - 1 ? out(e, 0) : tmp(e, prod ? "product" : "sum");
        op2(e, prod ? "Mul" : "Add", acc, term, y);
        acc = y;
    }
    if (n == 1)
        op1(e, "Identity", acc, out(e, 0));
    return og_status(e->g);
}

static int x_concat(struct ex *e)
{
    static const Caffe__ConcatParameter def = CAFFE__CONCAT_PARAMETER__INIT;
    const Caffe__ConcatParameter *p = e->lp->concat_param ? e->lp->concat_param : &def;
    int axis = tensor_canonical_axis(bt(e, 0), p->has_concat_dim ? (int)p->concat_dim : p->axis);
    int n = e->nl->n_bottom;
    if (n == 1)
        return x_alias(e);
    if (axis == 0 && batched(e, 0))
        return need_fixed_batch(e, "it concatenates along axis 0, the batch");
    const char *ins[256];
    if (n > 256)
        return refuse(e, "has %d bottoms; the exporter takes at most 256", n);
    for (int j = 0; j < n; j++)
        ins[j] = in(e, j);
    const char *outs[] = { out(e, 0) };
    Onnx__NodeProto *c = node(e, "Concat", n, ins, 1, outs);
    og_attr_int(e->g, c, "axis", axis);
    return og_status(e->g);
}

static int x_slice(struct ex *e)
{
    static const Caffe__SliceParameter def = CAFFE__SLICE_PARAMETER__INIT;
    const Caffe__SliceParameter *p = e->lp->slice_param ? e->lp->slice_param : &def;
    int axis = tensor_canonical_axis(bt(e, 0), p->has_slice_dim ? (int)p->slice_dim : p->axis);
    int n = e->nl->n_top;
    if (n == 1)
        return x_alias(e);
    if (axis == 0 && batched(e, 0))
        return need_fixed_batch(e, "it slices along axis 0, the batch");
    if (n > 256)
        return refuse(e, "has %d tops; the exporter takes at most 256", n);
    int64_t sizes[256];
    const char *outs[256];
    const char *x = in(e, 0);
    for (int j = 0; j < n; j++)
        sizes[j] = tt(e, j)->shape[axis];
    for (int j = 0; j < n; j++)
        outs[j] = out(e, j);
    const char *ins[] = { x, ints_const(e, "split", n, sizes) };
    Onnx__NodeProto *s = node(e, "Split", 2, ins, n, outs);
    og_attr_int(e->g, s, "axis", axis);
    return og_status(e->g);
}

static int x_flatten(struct ex *e)
{
    static const Caffe__FlattenParameter def = CAFFE__FLATTEN_PARAMETER__INIT;
    const Caffe__FlattenParameter *p = e->lp->flatten_param ? e->lp->flatten_param : &def;
    const struct tensor *x = bt(e, 0);
    int axis = tensor_canonical_axis(x, p->axis), end = tensor_canonical_axis(x, p->end_axis);
    if (axis == 0 && end > 0 && batched(e, 0))
        return need_fixed_batch(e, "it flattens axis 0, the batch, into the other axes");
    if (axis == 1 && end == x->num_axes - 1) {
        Onnx__NodeProto *f = op1(e, "Flatten", in(e, 0), out(e, 0));
        og_attr_int(e->g, f, "axis", 1);
    } else {
        reshape_like(e, in(e, 0), tt(e, 0), batched(e, 0), out(e, 0));
    }
    return og_status(e->g);
}

/* Reshape: the top's shape, axis 0 copied when the batch is open. Caffe's
 * reshape keeps axis 0 when it starts past it, copies it (dim 0), or infers
 * it (-1) from a fixed per-sample size; anything else moves the batch. */
static int x_reshape(struct ex *e)
{
    static const Caffe__ReshapeParameter def = CAFFE__RESHAPE_PARAMETER__INIT;
    const Caffe__ReshapeParameter *p = e->lp->reshape_param ? e->lp->reshape_param : &def;
    const struct tensor *x = bt(e, 0), *y = tt(e, 0);
    if (batched(e, 0)) {
        int start = p->axis >= 0 ? p->axis : x->num_axes + p->axis + 1;
        bool keeps = start > 0;
        if (!keeps && p->shape && p->shape->n_dim > 0) {
            int64_t d0 = p->shape->dim[0];
            size_t per_x = 1, per_y = 1;
            for (int i = 1; i < x->num_axes; i++)
                per_x *= (size_t)x->shape[i];
            for (int i = 1; i < y->num_axes; i++)
                per_y *= (size_t)y->shape[i];
            keeps = d0 == 0 || (d0 == -1 && per_x == per_y);
        }
        if (!keeps)
            return need_fixed_batch(e, "its new shape moves axis 0, the batch");
    }
    reshape_like(e, in(e, 0), y, batched(e, 0), out(e, 0));
    return og_status(e->g);
}

static int x_tile(struct ex *e)
{
    static const Caffe__TileParameter def = CAFFE__TILE_PARAMETER__INIT;
    const Caffe__TileParameter *p = e->lp->tile_param ? e->lp->tile_param : &def;
    const struct tensor *x = bt(e, 0);
    int axis = tensor_canonical_axis(x, p->axis);
    int64_t reps[TENSOR_MAX_AXES];
    for (int i = 0; i < x->num_axes; i++)
        reps[i] = i == axis ? p->tiles : 1;
    op2(e, "Tile", in(e, 0), ints_const(e, "repeats", x->num_axes, reps), out(e, 0));
    return og_status(e->g);
}

static int x_reduction(struct ex *e)
{
    static const Caffe__ReductionParameter def = CAFFE__REDUCTION_PARAMETER__INIT;
    const Caffe__ReductionParameter *p = e->lp->reduction_param ? e->lp->reduction_param : &def;
    const struct tensor *x = bt(e, 0);
    int axis = tensor_canonical_axis(x, p->axis);
    const char *op;
    switch (p->operation) {
    case CAFFE__REDUCTION_PARAMETER__REDUCTION_OP__SUM:
        op = "ReduceSum";
        break;
    case CAFFE__REDUCTION_PARAMETER__REDUCTION_OP__ASUM:
        op = "ReduceL1";
        break;
    case CAFFE__REDUCTION_PARAMETER__REDUCTION_OP__SUMSQ:
        op = "ReduceSumSquare";
        break;
    case CAFFE__REDUCTION_PARAMETER__REDUCTION_OP__MEAN:
        op = "ReduceMean";
        break;
    default:
        return refuse(e, "unknown reduction operation %d", (int)p->operation);
    }
    int64_t axes[TENSOR_MAX_AXES];
    int na = 0;
    for (int i = axis; i < x->num_axes; i++)
        axes[na++] = i;
    const char *xn = in(e, 0);
    bool scaled = p->coeff != 1.f;
    const char *r = scaled ? tmp(e, "reduced") : out(e, 0);
    if (na == 0)
        op1(e, "Identity", xn, r);
    else
        reduce(e, op, xn, na, axes, false, r);
    if (scaled)
        op2(e, "Mul", r, float_const(e, "coeff", p->coeff), out(e, 0));
    if (axis == 0)
        set_dim0(e, 0, DIM_FIXED);
    return og_status(e->g);
}

/* ArgMax: Caffe orders by value, then by the larger index; ONNX's TopK
 * prefers the smaller index. TopK over the reversed axis gives Caffe's
 * order; index = D - 1 - reversed index. Without an axis, each sample is
 * flattened and the top is (N, 1 or 2, top_k, 1...): indices, then values
 * with out_max_val. */
static int x_argmax(struct ex *e)
{
    static const Caffe__ArgMaxParameter def = CAFFE__ARG_MAX_PARAMETER__INIT;
    const Caffe__ArgMaxParameter *p = e->lp->argmax_param ? e->lp->argmax_param : &def;
    const struct tensor *x = bt(e, 0), *y = tt(e, 0);
    const char *src = in(e, 0);
    int axis;
    int64_t D;
    if (p->has_axis) {
        axis = tensor_canonical_axis(x, p->axis);
        D = x->shape[axis];
    } else {
        axis = 1;
        D = 1;
        for (int i = 1; i < x->num_axes; i++)
            D *= x->shape[i];
        if (x->num_axes != 2) {
            const char *f = tmp(e, "flat");
            Onnx__NodeProto *n = op1(e, "Flatten", src, f);
            og_attr_int(e->g, n, "axis", 1);
            src = f;
        }
    }
    int64_t st = -1, en = INT64_MIN, ax = axis, step = -1;
    const char *rev = tmp(e, "reversed");
    const char *sins[] = { src, ints_const(e, "starts", 1, &st), ints_const(e, "ends", 1, &en),
                           ints_const(e, "axes", 1, &ax), ints_const(e, "steps", 1, &step) };
    node(e, "Slice", 5, sins, 1, &rev);
    int64_t k = p->top_k;
    const char *vals = tmp(e, "values"), *ridx = tmp(e, "reversed_index");
    const char *tins[] = { rev, ints_const(e, "k", 1, &k) }, *touts[] = { vals, ridx };
    Onnx__NodeProto *t = node(e, "TopK", 2, tins, 2, touts);
    og_attr_int(e->g, t, "axis", axis);
    bool values_only = p->has_axis && p->out_max_val;
    const char *idxf = NULL;
    if (!values_only) {
        int64_t last = D - 1;
        const char *idx = tmp(e, "index");
        op2(e, "Sub", ints_const(e, "last", 1, &last), ridx, idx);
        idxf = p->has_axis ? out(e, 0) : tmp(e, "index_float");
        cast(e, idx, ONNX_FLOAT, idxf);
    }
    if (p->has_axis) {
        if (values_only)
            op1(e, "Identity", vals, out(e, 0));
        return og_status(e->g);
    }
    int64_t one = 1;
    const char *axes1 = ints_const(e, "axis1", 1, &one);
    const char *rows = tmp(e, "rows");
    if (p->out_max_val) {
        const char *ui = tmp(e, "index_row"), *uv = tmp(e, "value_row");
        op2(e, "Unsqueeze", idxf, axes1, ui);
        op2(e, "Unsqueeze", vals, axes1, uv);
        const char *cins[] = { ui, uv };
        Onnx__NodeProto *c = node(e, "Concat", 2, cins, 1, &rows);
        og_attr_int(e->g, c, "axis", 1);
    } else {
        op2(e, "Unsqueeze", idxf, axes1, rows);
    }
    if (y->num_axes == 3)
        op1(e, "Identity", rows, out(e, 0));
    else
        reshape_like(e, rows, y, batched(e, 0), out(e, 0));
    return og_status(e->g);
}

static int x_softmax(struct ex *e)
{
    static const Caffe__SoftmaxParameter def = CAFFE__SOFTMAX_PARAMETER__INIT;
    const Caffe__SoftmaxParameter *p = e->lp->softmax_param ? e->lp->softmax_param : &def;
    Onnx__NodeProto *n = op1(e, "Softmax", in(e, 0), out(e, 0));
    og_attr_int(e->g, n, "axis", tensor_canonical_axis(bt(e, 0), p->axis));
    return og_status(e->g);
}

/* Filter: the items (axis 0) whose selector is not zero, by Compress. */
static int x_filter(struct ex *e)
{
    int sel = e->nl->n_bottom - 1;
    int64_t flat = -1;
    const char *s1 = tmp(e, "selector"), *cond = tmp(e, "keep");
    op2(e, "Reshape", in(e, sel), ints_const(e, "flat", 1, &flat), s1);
    cast(e, s1, ONNX_BOOL, cond);
    for (int j = 0; j < e->nl->n_top; j++) {
        const char *x = in(e, j);
        Onnx__NodeProto *n = op2(e, "Compress", x, cond, out(e, j));
        og_attr_int(e->g, n, "axis", 0);
        set_dim0(e, j, DIM_DATA);
    }
    return og_status(e->g);
}

static int x_batch_reindex(struct ex *e)
{
    const char *idx = tmp(e, "index");
    cast(e, in(e, 1), ONNX_INT64, idx);
    Onnx__NodeProto *n = op2(e, "Gather", in(e, 0), idx, out(e, 0));
    og_attr_int(e->g, n, "axis", 0);
    set_dim0(e, 0, in_dim0(e, 1));
    return og_status(e->g);
}

/* ---- recurrent ------------------------------------------------------------- */

/* LSTMUnit: gates i, f, o, g of x (1, N, 4D); c = f * cont * c_prev + i * g
 * with f * c_prev cut to 0 where cont is 0, h = o * tanh(c). */
static int x_lstm_unit(struct ex *e)
{
    const char *cp = in(e, 0), *x = in(e, 1), *cont = in(e, 2);
    int64_t D = bt(e, 0)->shape[2];
    int64_t sizes[4] = { D, D, D, D }, two = 2;
    const char *gi = tmp(e, "i_in"), *gf = tmp(e, "f_in"), *go = tmp(e, "o_in"), *gg = tmp(e, "g_in");
    const char *souts[] = { gi, gf, go, gg };
    const char *sins[] = { x, ints_const(e, "split", 4, sizes) };
    Onnx__NodeProto *s = node(e, "Split", 2, sins, 4, souts);
    og_attr_int(e->g, s, "axis", 2);
    const char *i = tmp(e, "i"), *f = tmp(e, "f"), *o = tmp(e, "o"), *g = tmp(e, "g");
    op1(e, "Sigmoid", gi, i);
    op1(e, "Sigmoid", gf, f);
    op1(e, "Sigmoid", go, o);
    op1(e, "Tanh", gg, g);
    const char *c3 = tmp(e, "cont"), *fc = tmp(e, "f_cont"), *keep = tmp(e, "f_c_prev"), *zero = tmp(e, "cut"),
               *kept = tmp(e, "carried"), *ig = tmp(e, "i_g"), *tc = tmp(e, "tanh_c");
    op2(e, "Unsqueeze", cont, ints_const(e, "axes", 1, &two), c3);
    op2(e, "Mul", f, c3, fc);
    op2(e, "Mul", fc, cp, keep);
    op2(e, "Equal", c3, float_const(e, "zero", 0.f), zero);
    const char *wins[] = { zero, float_const(e, "zero_value", 0.f), keep };
    node(e, "Where", 3, wins, 1, &kept);
    op2(e, "Mul", i, g, ig);
    const char *c = out(e, 0);
    op2(e, "Add", kept, ig, c);
    op1(e, "Tanh", c, tc);
    op2(e, "Mul", o, tc, out(e, 1));
    return og_status(e->g);
}

/* ---- the table ------------------------------------------------------------- */

struct mapping {
    const char *type;
    int (*emit)(struct ex *e);
    const char *why; /* refused: the reason */
};

#define READS_DATA                                                                                                \
    "reads its input itself (database, files or memory); an ONNX model is given its inputs by the caller: "     \
    "export the deploy net, whose inputs are Input layers (or input: fields)"
#define LOSS                                                                                                      \
    "is a training objective against labels, not part of a model that is served; deploy nets end before the " \
    "loss (as Caffe's deploy convention: Softmax in place of SoftmaxWithLoss)"

static const struct mapping mappings[] = {
    { "Input", x_input, NULL },
    { "Split", x_alias, NULL },
    { "Dropout", x_alias, NULL },
    { "Silence", x_silence, NULL },
    { "Parameter", x_parameter, NULL },
    { "DummyData", x_dummy_data, NULL },
    { "Convolution", x_convolution, NULL },
    { "Deconvolution", x_deconvolution, NULL },
    { "Im2col", x_im2col, NULL },
    { "Pooling", x_pooling, NULL },
    { "SPP", x_spp, NULL },
    { "LRN", x_lrn, NULL },
    { "Crop", x_crop, NULL },
    { "InnerProduct", x_inner_product, NULL },
    { "Embed", x_embed, NULL },
    { "ReLU", x_relu, NULL },
    { "PReLU", x_prelu, NULL },
    { "ELU", x_elu, NULL },
    { "Sigmoid", x_sigmoid, NULL },
    { "TanH", x_tanh, NULL },
    { "AbsVal", x_absval, NULL },
    { "Power", x_power, NULL },
    { "Exp", x_exp, NULL },
    { "Log", x_log, NULL },
    { "BNLL", x_bnll, NULL },
    { "Threshold", x_threshold, NULL },
    { "Clip", x_clip, NULL },
    { "Swish", x_swish, NULL },
    { "BatchNorm", x_batch_norm, NULL },
    { "Scale", x_scale, NULL },
    { "Bias", x_bias, NULL },
    { "MVN", x_mvn, NULL },
    { "Eltwise", x_eltwise, NULL },
    { "Concat", x_concat, NULL },
    { "Slice", x_slice, NULL },
    { "Flatten", x_flatten, NULL },
    { "Reshape", x_reshape, NULL },
    { "Tile", x_tile, NULL },
    { "Reduction", x_reduction, NULL },
    { "ArgMax", x_argmax, NULL },
    { "Softmax", x_softmax, NULL },
    { "Filter", x_filter, NULL },
    { "BatchReindex", x_batch_reindex, NULL },
    { "LSTMUnit", x_lstm_unit, NULL },
    { "Data", NULL, READS_DATA },
    { "ImageData", NULL, READS_DATA },
    { "HDF5Data", NULL, READS_DATA },
    { "WindowData", NULL, READS_DATA },
    { "MemoryData", NULL, READS_DATA },
    { "CoSData", NULL, READS_DATA },
    { "HDF5Output", NULL, "writes HDF5 files as it runs; an ONNX model has no side effects" },
    { "RNN", NULL,
      "Caffe's recurrent layers reset their state wherever the sequence-continuation input (cont) is 0, "
      "inside a sequence; ONNX's RNN and LSTM operators have no such input" },
    { "LSTM", NULL,
      "Caffe's recurrent layers reset their state wherever the sequence-continuation input (cont) is 0, "
      "inside a sequence; ONNX's RNN and LSTM operators have no such input" },
    { "SoftmaxWithLoss", NULL, LOSS },
    { "EuclideanLoss", NULL, LOSS },
    { "SigmoidCrossEntropyLoss", NULL, LOSS },
    { "HingeLoss", NULL, LOSS },
    { "ContrastiveLoss", NULL, LOSS },
    { "InfogainLoss", NULL, LOSS },
    { "MultinomialLogisticLoss", NULL, LOSS },
    { "Accuracy", NULL,
      "scores predictions against labels, an evaluation rather than part of a model that is served; export "
      "the deploy net and compare its output with the labels" },
};

static const struct mapping *mapping_of(const char *type)
{
    for (size_t i = 0; i < sizeof mappings / sizeof mappings[0]; i++)
        if (strcmp(mappings[i].type, type) == 0)
            return &mappings[i];
    return NULL;
}

/* ---- the model ------------------------------------------------------------- */

static int64_t ir_version_of(int opset)
{
    /* The IR version that came with each opset (ONNX 1.8: IR 7, opset 13;
     * 1.10: 8, 15; 1.14: 9, 19; 1.16: 10, 21): the oldest one a reader
     * must know. */
    if (opset <= 14)
        return 7;
    if (opset <= 18)
        return 8;
    if (opset <= 20)
        return 9;
    return 10;
}

static int export_layers(struct ex *e)
{
    struct net *net = e->net;
    for (int li = 0; li < net->n_layers && !og_status(e->g); li++) {
        if (e->skip[li])
            continue;
        e->li = li;
        e->nl = &net->layers[li];
        e->l = e->nl->layer;
        e->lp = e->l->param;
        e->n_nodes = 0;
        e->n_pend = 0;
        const struct mapping *m = mapping_of(e->l->kind->type);
        if (!m)
            return refuse(e, "the ONNX exporter has no mapping for this layer type");
        if (!m->emit)
            return refuse(e, "%s", m->why);
        if (m->emit(e))
            return og_status(e->g);
        for (int k = 0; k < e->n_pend; k++)
            e->cur[e->pend_blob[k]] = e->pend_name[k];
        /* Tops keep axis 0's kind from the first bottom unless the layer
         * said otherwise. */
        for (int j = 0; j < e->nl->n_top; j++) {
            int b = e->nl->top_id[j];
            if (e->dim0[b] < 0)
                e->dim0[b] = (signed char)(e->nl->n_bottom ? in_dim0(e, 0) : DIM_FIXED);
        }
    }
    return og_status(e->g);
}

static int export_outputs(struct ex *e)
{
    struct net *net = e->net;
    if (net->n_outputs == 0)
        return og_fail(e->g, CREMA_ERR_UNSUPPORTED,
                       "net %s has no outputs (layers such as Silence consume every blob); an ONNX model "
                       "needs at least one", net->name ? net->name : "");
    for (int i = 0; i < net->n_outputs && !og_status(e->g); i++) {
        int b = net->output_ids[i];
        const char *plain = net->blob_names[b], *v = e->cur[b];
        if (!v)
            return og_fail(e->g, CREMA_ERR_INVALID, "output %s has no value", plain);
        if (strcmp(v, plain) != 0 && !e->plain_made[b]) {
            e->plain_made[b] = true;
            const char *ins[] = { v }, *outs[] = { plain };
            og_node(e->g, "Identity", og_str(e->g, "%s/output", plain), 1, ins, 1, outs);
            v = plain;
        }
        const struct tensor *t = net->blobs[b];
        int64_t dims[TENSOR_MAX_AXES];
        const char *params[TENSOR_MAX_AXES] = { NULL };
        int nd = tensor_dims(t, dims);
        int d0 = e->dim0[b] < 0 ? DIM_FIXED : e->dim0[b];
        if (nd > 0 && d0 == DIM_DATA) {
            dims[0] = -1;
        } else if (nd > 0 && e->dynamic && d0 == DIM_BATCH) {
            dims[0] = -1;
            params[0] = "N";
        }
        og_output(e->g, v, nd, dims, params);
    }
    return og_status(e->g);
}

int onnx_export_net(struct net *net, const char *path, const struct onnx_export_options *opt)
{
    static const struct onnx_export_options defaults = { 0 };
    if (!net || !path)
        return err_set(CREMA_ERR_INVALID, "onnx_export_net: NULL argument");
    if (!opt)
        opt = &defaults;
    int opset = opt->opset ? opt->opset : ONNX_OPSET_DEFAULT;
    if (opset < ONNX_OPSET_MIN || opset > ONNX_OPSET_MAX)
        return err_set(CREMA_ERR_INVALID, "ONNX opset %d: crema writes opsets %d to %d", opset, ONNX_OPSET_MIN,
                       ONNX_OPSET_MAX);
    struct ex e = { 0 };
    e.net = net;
    e.opset = opset;
    e.dynamic = !opt->fixed_batch;
    e.log = opt->log;
    e.g = og_new();
    size_t nb = (size_t)net->n_blobs + 1, nl = (size_t)net->n_layers + 1;
    e.cur = calloc(nb, sizeof *e.cur);
    e.last_writer = calloc(nb, sizeof *e.last_writer);
    e.dim0 = malloc(nb);
    e.plain_made = calloc(nb, sizeof *e.plain_made);
    e.is_input = calloc(nb, sizeof *e.is_input);
    e.skip = calloc(nl, sizeof *e.skip);
    e.params = calloc((size_t)net->n_params + 1, sizeof *e.params);
    size_t max_top = 1;
    for (int li = 0; li < net->n_layers; li++)
        max_top = (size_t)net->layers[li].n_top > max_top ? (size_t)net->layers[li].n_top : max_top;
    /* a layer's tops, and those of the Scale folded into it */
    e.pend_blob = calloc(2 * max_top, sizeof *e.pend_blob);
    e.pend_name = calloc(2 * max_top, sizeof *e.pend_name);
    int rc;
    if (!e.g || !e.cur || !e.last_writer || !e.dim0 || !e.plain_made || !e.is_input || !e.skip || !e.params ||
        !e.pend_blob || !e.pend_name) {
        rc = err_set(CREMA_ERR_NOMEM, "out of memory exporting net %s", net->name);
        goto done;
    }
    memset(e.dim0, -1, nb);
    for (int b = 0; b < net->n_blobs; b++) {
        e.last_writer[b] = -1;
        /* Blob names are the values' names; claimed first so that no made-up
         * name takes one. */
        og_claim(e.g, net->blob_names[b]);
    }
    for (int li = 0; li < net->n_layers; li++)
        for (int j = 0; j < net->layers[li].n_top; j++)
            e.last_writer[net->layers[li].top_id[j]] = li;
    for (int i = 0; i < net->n_inputs; i++)
        e.is_input[net->input_ids[i]] = true;
    rc = export_layers(&e);
    if (!rc)
        rc = export_outputs(&e);
    if (!rc) {
        char *doc = og_str(e.g, "Caffe net %s exported by crema %s (TEST phase%s)", net->name ? net->name : "",
                           crema_version(), e.dynamic ? ", batch size N" : ", fixed batch size");
        rc = og_write(e.g, path, net->name && *net->name ? net->name : "crema", doc, ir_version_of(opset), opset);
    }
    if (rc)
        err_prefix(rc, "ONNX export of net %s to %s", net->name ? net->name : "", path);
done:
    og_free(e.g);
    free(e.cur);
    free(e.last_writer);
    free(e.dim0);
    free(e.plain_made);
    free(e.is_input);
    free(e.skip);
    free(e.params);
    free(e.pend_blob);
    free(e.pend_name);
    return rc;
}
