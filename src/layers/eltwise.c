/* Eltwise: element-wise product, weighted sum or maximum of equally shaped
 * bottoms (Caffe's EltwiseLayer, with its max mask and stable product grad). */
#include "layers/layer.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

struct eltwise {
    Caffe__EltwiseParameter__EltwiseOp op;
    bool stable_prod_grad;
    float *coeff;   /* one per bottom */
    int *mask;      /* MAX: which bottom won, per element */
    size_t mask_cap;
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
    if (e->op == CAFFE__ELTWISE_PARAMETER__ELTWISE_OP__MAX && bottom[0]->count > e->mask_cap) {
        free(e->mask);
        e->mask = malloc(bottom[0]->count * sizeof(int));
        if (!e->mask)
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        e->mask_cap = bottom[0]->count;
    }
    return tensor_reshape_like(top[0], bottom[0]);
}

static int eltwise_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct eltwise *e = l->priv;
    size_t n = top[0]->count;
    float *y = tensor_data(top[0]);
    if (!y)
        return CREMA_ERR_NOMEM;
    const float *a = tensor_data(bottom[0]), *b = tensor_data(bottom[1]);
    if (!a || !b)
        return CREMA_ERR_NOMEM;
    switch (e->op) {
    case CAFFE__ELTWISE_PARAMETER__ELTWISE_OP__PROD:
        for (size_t i = 0; i < n; i++)
            y[i] = a[i] * b[i];
        for (int k = 2; k < l->n_bottom; k++) {
            const float *x = tensor_data(bottom[k]);
            if (!x)
                return CREMA_ERR_NOMEM;
            for (size_t i = 0; i < n; i++)
                y[i] *= x[i];
        }
        break;
    case CAFFE__ELTWISE_PARAMETER__ELTWISE_OP__SUM:
        memset(y, 0, n * sizeof(float));
        for (int k = 0; k < l->n_bottom; k++) {
            const float *x = tensor_data(bottom[k]);
            if (!x)
                return CREMA_ERR_NOMEM;
            for (size_t i = 0; i < n; i++)
                y[i] += e->coeff[k] * x[i];
        }
        break;
    default: /* MAX: a tie between bottoms 0 and 1 goes to 1; later bottoms must be strictly larger */
        for (size_t i = 0; i < n; i++) {
            if (a[i] > b[i]) {
                y[i] = a[i];
                e->mask[i] = 0;
            } else {
                y[i] = b[i];
                e->mask[i] = 1;
            }
        }
        for (int k = 2; k < l->n_bottom; k++) {
            const float *x = tensor_data(bottom[k]);
            if (!x)
                return CREMA_ERR_NOMEM;
            for (size_t i = 0; i < n; i++)
                if (x[i] > y[i]) {
                    y[i] = x[i];
                    e->mask[i] = k;
                }
        }
        break;
    }
    return CREMA_OK;
}

static int eltwise_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                            struct tensor **bottom)
{
    struct eltwise *e = l->priv;
    size_t n = top[0]->count;
    const float *y = tensor_data(top[0]), *dy = tensor_diff(top[0]);
    if (!y || !dy)
        return CREMA_ERR_NOMEM;
    for (int k = 0; k < l->n_bottom; k++) {
        if (!propagate_down[k])
            continue;
        const float *x = tensor_data(bottom[k]);
        float *dx = tensor_diff(bottom[k]);
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
                    const float *o = tensor_data(bottom[j]);
                    if (!o)
                        return CREMA_ERR_NOMEM;
                    if (first)
                        memcpy(dx, o, n * sizeof(float));
                    else
                        for (size_t i = 0; i < n; i++)
                            dx[i] = o[i] * dx[i];
                    first = false;
                }
            } else {
                for (size_t i = 0; i < n; i++)
                    dx[i] = y[i] / x[i];
            }
            for (size_t i = 0; i < n; i++)
                dx[i] *= dy[i];
            break;
        case CAFFE__ELTWISE_PARAMETER__ELTWISE_OP__SUM:
            if (e->coeff[k] == 1.f)
                memcpy(dx, dy, n * sizeof(float));
            else
                for (size_t i = 0; i < n; i++)
                    dx[i] = e->coeff[k] * dy[i];
            break;
        default:
            for (size_t i = 0; i < n; i++)
                dx[i] = e->mask[i] == k ? dy[i] : 0.f;
            break;
        }
    }
    return CREMA_OK;
}

static void eltwise_destroy(struct layer *l)
{
    struct eltwise *e = l->priv;
    if (e) {
        free(e->coeff);
        free(e->mask);
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
    .destroy = eltwise_destroy,
};
