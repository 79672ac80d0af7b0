/* InnerProduct: top = bottom * W^T + b over the axes from `axis` on, as
 * Caffe's, with W stored N x K (or K x N with transpose). */
#include "layers/dense.h"
#include "layers/layer.h"

#include <stdlib.h>

struct inner_product {
    int M, N, K, axis;
    bool bias_term, transpose;
    struct tensor *ones; /* bias multiplier, M ones */
};

static int ip_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__InnerProductParameter def = CAFFE__INNER_PRODUCT_PARAMETER__INIT;
    const Caffe__InnerProductParameter *ip =
        l->param->inner_product_param ? l->param->inner_product_param : &def;
    struct inner_product *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = s;
    if (!ip->has_num_output || ip->num_output == 0 || ip->num_output > (1u << 30))
        return err_set(CREMA_ERR_INVALID, "inner_product_param.num_output must be given and positive");
    s->N = (int)ip->num_output;
    s->bias_term = ip->bias_term;
    s->transpose = ip->transpose;
    s->axis = tensor_canonical_axis(bottom[0], ip->axis);
    if (s->axis < 0)
        return err_set(CREMA_ERR_INVALID, "inner_product_param.axis %d is out of range for a %d-axis input",
                       ip->axis, bottom[0]->num_axes);
    size_t K = tensor_count_range(bottom[0], s->axis, bottom[0]->num_axes);
    if (K > (1u << 30))
        return err_set(CREMA_ERR_SHAPE, "inner product input too large (%zu per item)", K);
    s->K = (int)K;
    int wshape[2] = { s->transpose ? s->K : s->N, s->transpose ? s->N : s->K };
    return dense_setup_blobs(l, s->bias_term, wshape, s->N, ip->weight_filler, ip->bias_filler);
}

static int ip_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct inner_product *s = l->priv;
    const struct tensor *b = bottom[0];
    if (s->axis >= b->num_axes)
        return err_set(CREMA_ERR_SHAPE, "the input lost axes (now %d)", b->num_axes);
    size_t K = tensor_count_range(b, s->axis, b->num_axes);
    if (K != (size_t)s->K)
        return err_set(CREMA_ERR_SHAPE,
                       "input size incompatible with inner product parameters: %zu values per "
                       "item from axis %d, the weights expect %d",
                       K, s->axis, s->K);
    size_t M = tensor_count_range(b, 0, s->axis);
    if (M > (1u << 30))
        return err_set(CREMA_ERR_SHAPE, "inner product batch too large");
    s->M = (int)M;
    int shape[TENSOR_MAX_AXES];
    for (int i = 0; i < s->axis; i++)
        shape[i] = b->shape[i];
    shape[s->axis] = s->N;
    return tensor_reshape(top[0], s->axis + 1, shape);
}

/* One path for every backend: two GEMMs and the bias term on l->be. */
static int ip_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct inner_product *s = l->priv;
    const struct backend *be = l->be;
    const float *x = LCDATA(bottom[0]), *w = LCDATA(l->blobs[0]);
    const float *bias = s->bias_term ? LCDATA(l->blobs[1]) : NULL;
    float *y = LDATA(top[0]);
    if (!x || !w || !y || (s->bias_term && !bias))
        return CREMA_ERR_NOMEM;
    be->math->gemm(be, false, !s->transpose, s->M, s->N, s->K, 1.f, x, w, 0.f, y);
    if (s->bias_term)
        return dense_bias_forward(l, &s->ones, s->M, s->N, bias, y);
    return CREMA_OK;
}

static int ip_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                       struct tensor **bottom)
{
    struct inner_product *s = l->priv;
    const struct backend *be = l->be;
    const float *dy = LCDIFF(top[0]);
    if (!dy)
        return CREMA_ERR_NOMEM;
    if (l->param_propagate_down[0]) {
        const float *x = LCDATA(bottom[0]);
        float *dw = LDIFF(l->blobs[0]);
        if (!x || !dw)
            return CREMA_ERR_NOMEM;
        if (s->transpose)
            be->math->gemm(be, true, false, s->K, s->N, s->M, 1.f, x, dy, 1.f, dw);
        else
            be->math->gemm(be, true, false, s->N, s->K, s->M, 1.f, dy, x, 1.f, dw);
    }
    if (s->bias_term && l->param_propagate_down[1]) {
        float *db = LDIFF(l->blobs[1]);
        int rc = db ? dense_bias_backward(l, &s->ones, s->M, s->N, dy, db) : CREMA_ERR_NOMEM;
        if (rc)
            return rc;
    }
    if (propagate_down[0]) {
        const float *w = LCDATA(l->blobs[0]);
        float *dx = LDIFF(bottom[0]);
        if (!w || !dx)
            return CREMA_ERR_NOMEM;
        be->math->gemm(be, false, s->transpose, s->M, s->K, s->N, 1.f, dy, w, 0.f, dx);
    }
    return CREMA_OK;
}

static void ip_destroy(struct layer *l)
{
    struct inner_product *s = l->priv;
    if (s)
        tensor_free(s->ones);
    free(s);
    l->priv = NULL;
}

const struct layer_kind inner_product_layer = {
    .type = "InnerProduct",
    .min_bottoms = 1, .max_bottoms = 1,
    .min_tops = 1, .max_tops = 1,
    .setup = ip_setup,
    .reshape = ip_reshape,
    .forward = ip_forward,
    .backward = ip_backward,
    .forward_dev = ip_forward,
    .backward_dev = ip_backward,
    .destroy = ip_destroy,
};
