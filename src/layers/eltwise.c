/* Eltwise: element-wise product, weighted sum or maximum of equally shaped
 * bottoms (Caffe's EltwiseLayer, with its max mask and stable product grad),
 * on any backend. */
#include "layers/layer.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

struct eltwise {
    Caffe__EltwiseParameter__EltwiseOp op;
    bool stable_prod_grad;
    float *coeff;        /* one per bottom */
    struct tensor *mask; /* MAX: which bottom won, per element (as floats) */
};

static int eltwise_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    (void)top;
    static const Caffe__EltwiseParameter def = CAFFE__ELTWISE_PARAMETER__INIT;
    const Caffe__EltwiseParameter *p = l->param->eltwise_param ? l->param->eltwise_param : &def;
    if (p->n_coeff != 0 && p->n_coeff != (size_t)l->n_bottom)
        return err_set(CREMA_ERR_INVALID,
                       "eltwise_param.coeff: %zu coefficients for %d bottoms (give one per bottom, or none)",
                       p->n_coeff, l->n_bottom);
    if (p->operation == CAFFE__ELTWISE_PARAMETER__ELTWISE_OP__PROD && p->n_coeff)
        return err_set(CREMA_ERR_INVALID, "eltwise_param.coeff: coefficients are only allowed with operation SUM");
    if (p->operation != CAFFE__ELTWISE_PARAMETER__ELTWISE_OP__PROD &&
        p->operation != CAFFE__ELTWISE_PARAMETER__ELTWISE_OP__SUM &&
        p->operation != CAFFE__ELTWISE_PARAMETER__ELTWISE_OP__MAX)
        return err_set(CREMA_ERR_INVALID, "eltwise_param.operation: unknown operation %d", (int)p->operation);
    struct eltwise *e = calloc(1, sizeof *e);
    if (!e)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = e;
    e->op = p->operation;
    e->stable_prod_grad = p->stable_prod_grad;
    e->coeff = malloc((size_t)l->n_bottom * sizeof(float));
    if (!e->coeff)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    for (int i = 0; i < l->n_bottom; i++)
        e->coeff[i] = p->n_coeff ? p->coeff[i] : 1.f;
    return CREMA_OK;
}

static int eltwise_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct eltwise *e = l->priv;
    for (int i = 1; i < l->n_bottom; i++)
        if (!tensor_shape_equals(bottom[i], bottom[0])) {
            char a[256], b[256];
            return err_set(CREMA_ERR_SHAPE, "bottom %d has shape %s but bottom 0 has %s", i,
                           tensor_shape_string(bottom[i], a, sizeof a),
                           tensor_shape_string(bottom[0], b, sizeof b));
        }
    if (e->op == CAFFE__ELTWISE_PARAMETER__ELTWISE_OP__MAX) {
        if (!e->mask && !(e->mask = tensor_new()))
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        int rc = tensor_reshape_like(e->mask, bottom[0]);
        if (rc)
            return rc;
    }
    return tensor_reshape_like(top[0], bottom[0]);
}

static int eltwise_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct eltwise *e = l->priv;
    const struct backend *be = l->be;
    const struct structure_ops *ops = be->structure;
    size_t n = top[0]->count;
    float *y = LDATA(top[0]);
    const float *a = LCDATA(bottom[0]), *b = LCDATA(bottom[1]);
    if (!y || !a || !b)
        return CREMA_ERR_NOMEM;
    switch (e->op) {
    case CAFFE__ELTWISE_PARAMETER__ELTWISE_OP__PROD:
        be->math->mul(be, (int)n, a, b, y);
        for (int k = 2; k < l->n_bottom; k++) {
            const float *x = LCDATA(bottom[k]);
            if (!x)
                return CREMA_ERR_NOMEM;
            be->math->mul(be, (int)n, y, x, y);
        }
        break;
    case CAFFE__ELTWISE_PARAMETER__ELTWISE_OP__SUM:
        be->math->set(be, n, 0.f, y);
        for (int k = 0; k < l->n_bottom; k++) {
            const float *x = LCDATA(bottom[k]);
            if (!x)
                return CREMA_ERR_NOMEM;
            ops->scale_add(be, n, e->coeff[k], x, y);
        }
        break;
    default: { /* MAX: a tie between bottoms 0 and 1 goes to 1; later bottoms must be strictly larger */
        float *mask = LDATA(e->mask);
        if (!mask)
            return CREMA_ERR_NOMEM;
        ops->max_first(be, n, a, b, y, mask);
        for (int k = 2; k < l->n_bottom; k++) {
            const float *x = LCDATA(bottom[k]);
            if (!x)
                return CREMA_ERR_NOMEM;
            ops->max_next(be, n, x, k, y, mask);
        }
        break;
    }
    }
    return CREMA_OK;
}

static int eltwise_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                            struct tensor **bottom)
{
    struct eltwise *e = l->priv;
    const struct backend *be = l->be;
    size_t n = top[0]->count;
    const float *y = LCDATA(top[0]), *dy = LCDIFF(top[0]);
    if (!y || !dy)
        return CREMA_ERR_NOMEM;
    for (int k = 0; k < l->n_bottom; k++) {
        if (!propagate_down[k])
            continue;
        const float *x = LCDATA(bottom[k]);
        float *dx = LDIFF(bottom[k]);
        if (!x || !dx)
            return CREMA_ERR_NOMEM;
        switch (e->op) {
        case CAFFE__ELTWISE_PARAMETER__ELTWISE_OP__PROD:
            if (e->stable_prod_grad) {
                /* The product of the other bottoms, never a division. */
                bool first = true;
                for (int j = 0; j < l->n_bottom; j++) {
                    if (j == k)
                        continue;
                    const float *o = LCDATA(bottom[j]);
                    if (!o)
                        return CREMA_ERR_NOMEM;
                    if (first)
                        be->math->copy(be, n, o, dx);
                    else
                        be->math->mul(be, (int)n, o, dx, dx);
                    first = false;
                }
            } else {
                be->math->div(be, (int)n, y, x, dx);
            }
            be->math->mul(be, (int)n, dx, dy, dx);
            break;
        case CAFFE__ELTWISE_PARAMETER__ELTWISE_OP__SUM:
            if (e->coeff[k] == 1.f)
                be->math->copy(be, n, dy, dx);
            else
                be->structure->scale(be, n, e->coeff[k], dy, dx);
            break;
        default: {
            const float *mask = LCDATA(e->mask);
            if (!mask)
                return CREMA_ERR_NOMEM;
            be->structure->max_backward(be, n, dy, mask, k, dx);
            break;
        }
        }
    }
    return CREMA_OK;
}

static bool eltwise_runs_on(const struct backend *be)
{
    return be->structure != NULL;
}

static void eltwise_destroy(struct layer *l)
{
    struct eltwise *e = l->priv;
    if (e) {
        free(e->coeff);
        tensor_free(e->mask);
    }
    free(e);
    l->priv = NULL;
}

const struct layer_kind eltwise_layer = {
    .type = "Eltwise",
    .min_bottoms = 2, .max_bottoms = -1, .min_tops = 1, .max_tops = 1,
    .setup = eltwise_setup,
    .reshape = eltwise_reshape,
    .forward = eltwise_forward,
    .backward = eltwise_backward,
    .forward_dev = eltwise_forward,
    .backward_dev = eltwise_backward,
    .runs_on = eltwise_runs_on,
    .destroy = eltwise_destroy,
};
