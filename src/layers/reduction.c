/* Reduction (SUM, ASUM, SUMSQ, MEAN over all axes from `axis` on, times
 * coeff; on any backend) and ArgMax (top-k indices or values, on the host
 * as in Caffe), as Caffe computes them. */
#include "layers/layer.h"
#include "layers/topk.h"

#include <stdlib.h>
#include <string.h>

/* ---- Reduction ------------------------------------------------------------- */

struct reduction_state {
    Caffe__ReductionParameter__ReductionOp op;
    int axis;
    size_t num, dim;
    float coeff; /* MEAN folds 1/dim in, as Caffe does */
};

static int reduction_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    (void)top;
    static const Caffe__ReductionParameter def = CAFFE__REDUCTION_PARAMETER__INIT;
    const Caffe__ReductionParameter *p = l->param->reduction_param ? l->param->reduction_param : &def;
    if (p->operation < CAFFE__REDUCTION_PARAMETER__REDUCTION_OP__SUM ||
        p->operation > CAFFE__REDUCTION_PARAMETER__REDUCTION_OP__MEAN)
        return err_set(CREMA_ERR_INVALID, "reduction_param.operation: unknown operation %d", (int)p->operation);
    struct reduction_state *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    s->op = p->operation;
    l->priv = s;
    return CREMA_OK;
}

static int reduction_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__ReductionParameter def = CAFFE__REDUCTION_PARAMETER__INIT;
    const Caffe__ReductionParameter *p = l->param->reduction_param ? l->param->reduction_param : &def;
    struct reduction_state *s = l->priv;
    int axis = tensor_canonical_axis(bottom[0], p->axis);
    if (axis < 0)
        return err_set(CREMA_ERR_INVALID, "reduction_param.axis %d is out of range for a %d-axis bottom", p->axis,
                       bottom[0]->num_axes);
    s->axis = axis;
    /* The top keeps the axes before `axis`: reducing from 0 gives a scalar. */
    int rc = tensor_reshape(top[0], axis, bottom[0]->shape);
    if (rc)
        return rc;
    s->num = tensor_count_range(bottom[0], 0, axis);
    s->dim = tensor_count_range(bottom[0], axis, bottom[0]->num_axes);
    s->coeff = p->coeff;
    if (s->op == CAFFE__REDUCTION_PARAMETER__REDUCTION_OP__MEAN)
        s->coeff /= (float)s->dim;
    return CREMA_OK;
}

static int reduction_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct reduction_state *s = l->priv;
    const float *x = LCDATA(bottom[0]);
    float *y = LDATA(top[0]);
    if (!x || !y)
        return CREMA_ERR_NOMEM;
    l->be->structure->reduce(l->be, (int)s->op, s->num, s->dim, x, s->coeff, y);
    return CREMA_OK;
}

static int reduction_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                              struct tensor **bottom)
{
    struct reduction_state *s = l->priv;
    if (!propagate_down[0])
        return CREMA_OK;
    const float *x = LCDATA(bottom[0]), *dy = LCDIFF(top[0]);
    float *dx = LDIFF(bottom[0]);
    if (!x || !dy || !dx)
        return CREMA_ERR_NOMEM;
    l->be->structure->reduce_backward(l->be, (int)s->op, s->num, s->dim, x, dy, s->coeff, dx);
    return CREMA_OK;
}

static bool reduction_runs_on(const struct backend *be)
{
    return be->structure != NULL;
}

static void reduction_destroy(struct layer *l)
{
    free(l->priv);
    l->priv = NULL;
}

const struct layer_kind reduction_layer = {
    .type = "Reduction",
    .min_bottoms = 1, .max_bottoms = 1, .min_tops = 1, .max_tops = 1,
    .setup = reduction_setup,
    .reshape = reduction_reshape,
    .forward = reduction_forward,
    .backward = reduction_backward,
    .forward_dev = reduction_forward,
    .backward_dev = reduction_backward,
    .runs_on = reduction_runs_on,
    .destroy = reduction_destroy,
};

/* ---- ArgMax ---------------------------------------------------------------- */

struct argmax_state {
    bool out_max_val, has_axis;
    int top_k, axis;
    float *val; /* scratch: one slice along the axis */
    int *idx;
    size_t cap;
};

static int argmax_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)top;
    static const Caffe__ArgMaxParameter def = CAFFE__ARG_MAX_PARAMETER__INIT;
    const Caffe__ArgMaxParameter *p = l->param->argmax_param ? l->param->argmax_param : &def;
    if (p->top_k < 1)
        return err_set(CREMA_ERR_INVALID, "argmax_param.top_k must be at least 1, not %u", p->top_k);
    struct argmax_state *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = s;
    s->out_max_val = p->out_max_val;
    s->has_axis = p->has_axis;
    s->top_k = p->top_k > 0x7fffffff ? 0x7fffffff : (int)p->top_k;
    if (s->has_axis) {
        s->axis = tensor_canonical_axis(bottom[0], p->axis);
        if (s->axis < 0)
            return err_set(CREMA_ERR_INVALID, "argmax_param.axis %d is out of range for a %d-axis bottom", p->axis,
                           bottom[0]->num_axes);
        if (s->top_k > bottom[0]->shape[s->axis])
            return err_set(CREMA_ERR_INVALID, "argmax_param.top_k %d is larger than axis %d (size %d)", s->top_k,
                           s->axis, bottom[0]->shape[s->axis]);
    } else if ((size_t)s->top_k > tensor_count_range(bottom[0], 1, bottom[0]->num_axes)) {
        return err_set(CREMA_ERR_INVALID, "argmax_param.top_k %d is larger than the %zu values of an item", s->top_k,
                       tensor_count_range(bottom[0], 1, bottom[0]->num_axes));
    }
    return CREMA_OK;
}

static int argmax_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct argmax_state *s = l->priv;
    int shape[TENSOR_MAX_AXES], n;
    size_t dim;
    if (s->has_axis) {
        n = bottom[0]->num_axes;
        memcpy(shape, bottom[0]->shape, sizeof shape);
        shape[s->axis] = s->top_k;
        dim = (size_t)bottom[0]->shape[s->axis];
    } else {
        /* N x (1 or 2) x top_k, with trailing 1s up to the bottom's axes. */
        n = bottom[0]->num_axes < 3 ? 3 : bottom[0]->num_axes;
        for (int i = 0; i < n; i++)
            shape[i] = 1;
        shape[0] = bottom[0]->num_axes ? bottom[0]->shape[0] : 1;
        shape[1] = s->out_max_val ? 2 : 1;
        shape[2] = s->top_k;
        dim = tensor_count_range(bottom[0], 1, bottom[0]->num_axes);
    }
    if (dim > s->cap) {
        free(s->val);
        free(s->idx);
        s->val = malloc(dim * sizeof(float));
        s->idx = malloc(dim * sizeof(int));
        if (!s->val || !s->idx)
            return err_set(CREMA_ERR_NOMEM, "cannot allocate the %zu-value ranking buffers", (size_t)dim);
        s->cap = dim;
    }
    return tensor_reshape(top[0], n, shape);
}

/* Caffe orders (value, index) pairs by std::greater: larger value first,
 * and among equal values the larger index first. */
static bool pair_before(float va, int ia, float vb, int ib)
{
    return va > vb || (va == vb && ia > ib);
}

/* Selection sort of the first k: k is small. */
void argmax_select_top_k(float *val, int *idx, size_t n, int k)
{
    for (int j = 0; j < k && (size_t)j < n; j++) {
        size_t best = (size_t)j;
        for (size_t i = (size_t)j + 1; i < n; i++)
            if (pair_before(val[i], idx[i], val[best], idx[best]))
                best = i;
        float tv = val[j];
        int ti = idx[j];
        val[j] = val[best];
        idx[j] = idx[best];
        val[best] = tv;
        idx[best] = ti;
    }
}

static int argmax_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct argmax_state *s = l->priv;
    const float *x = tensor_data(bottom[0]);
    float *y = tensor_data(top[0]);
    if (!x || !y)
        return CREMA_ERR_NOMEM;
    size_t dim, stride;
    if (s->has_axis) {
        dim = (size_t)bottom[0]->shape[s->axis];
        stride = tensor_count_range(bottom[0], s->axis + 1, bottom[0]->num_axes);
    } else {
        dim = tensor_count_range(bottom[0], 1, bottom[0]->num_axes);
        stride = 1;
    }
    if (dim == 0)
        return CREMA_OK;
    size_t num = bottom[0]->count / dim;
    size_t k = (size_t)s->top_k;
    for (size_t i = 0; i < num; i++) {
        size_t base = i / stride * dim * stride + i % stride;
        for (size_t j = 0; j < dim; j++) {
            s->val[j] = x[base + j * stride];
            s->idx[j] = (int)j;
        }
        argmax_select_top_k(s->val, s->idx, dim, s->top_k);
        size_t out = i / stride * k * stride + i % stride;
        for (size_t j = 0; j < k; j++) {
            if (s->has_axis)
                y[out + j * stride] = s->out_max_val ? s->val[j] : (float)s->idx[j];
            else if (s->out_max_val) {
                y[2 * i * k + j] = (float)s->idx[j];
                y[2 * i * k + k + j] = s->val[j];
            } else {
                y[i * k + j] = (float)s->idx[j];
            }
        }
    }
    return CREMA_OK;
}

static void argmax_destroy(struct layer *l)
{
    struct argmax_state *s = l->priv;
    if (s) {
        free(s->val);
        free(s->idx);
    }
    free(s);
    l->priv = NULL;
}

const struct layer_kind argmax_layer = {
    .type = "ArgMax",
    .min_bottoms = 1, .max_bottoms = 1, .min_tops = 1, .max_tops = 1,
    .setup = argmax_setup,
    .reshape = argmax_reshape,
    .forward = argmax_forward,
    .destroy = argmax_destroy,
};
