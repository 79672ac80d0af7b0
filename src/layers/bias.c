/* Bias: adds a learned blob (or a second bottom) broadcast over some axes of
 * the first bottom; and the broadcasting helpers Scale shares (bias.h). */
#include "layers/bias.h"
#include "layers/layer.h"

#include <stdlib.h>

int bias_blob_shape(const struct tensor *x, int axis, int num_axes, const char *what, int *n_axes,
                    int shape[TENSOR_MAX_AXES])
{
    int a = tensor_canonical_axis(x, axis);
    if (a < 0)
        return err_set(CREMA_ERR_SHAPE, "axis %d is out of range for a bottom with %d axes", axis, x->num_axes);
    if (num_axes < -1)
        return err_set(CREMA_ERR_INVALID, "num_axes must be non-negative, or -1 to extend to the end of bottom[0]; got %d",
                       num_axes);
    if (num_axes >= 0 && x->num_axes < a + num_axes)
        return err_set(CREMA_ERR_SHAPE,
                       "%s blob's shape extends past bottom[0]'s shape when applied starting with bottom[0] axis %d "
                       "(%d axes from %d, bottom has %d)",
                       what, a, num_axes, a, x->num_axes);
    int n = num_axes == -1 ? x->num_axes - a : num_axes;
    for (int i = 0; i < n; i++)
        shape[i] = x->shape[a + i];
    *n_axes = n;
    return CREMA_OK;
}

int bias_dims_of(const struct tensor *x, const struct tensor *b, int axis, const char *what,
                 struct bias_dims *d)
{
    int a = 0;
    if (b->num_axes > 0) {
        a = tensor_canonical_axis(x, axis);
        if (a < 0)
            return err_set(CREMA_ERR_SHAPE, "axis %d is out of range for a bottom with %d axes", axis, x->num_axes);
    }
    if (x->num_axes < a + b->num_axes)
        return err_set(CREMA_ERR_SHAPE,
                       "%s blob's shape extends past bottom[0]'s shape when applied starting with bottom[0] axis %d",
                       what, a);
    for (int i = 0; i < b->num_axes; i++)
        if (x->shape[a + i] != b->shape[i]) {
            char xs[256], bs[256];
            return err_set(CREMA_ERR_SHAPE,
                           "dimension mismatch between bottom[0]->shape(%d) = %d and %s->shape(%d) = %d "
                           "(bottom[0] %s, %s %s)",
                           a + i, x->shape[a + i], what, i, b->shape[i], tensor_shape_string(x, xs, sizeof xs),
                           what, tensor_shape_string(b, bs, sizeof bs));
        }
    d->outer = tensor_count_range(x, 0, a);
    d->dim = b->count;
    d->inner = tensor_count_range(x, a + b->num_axes, x->num_axes);
    return CREMA_OK;
}

struct bias {
    int axis;
    struct bias_dims dims;
};

static void bias_destroy(struct layer *l)
{
    free(l->priv);
    l->priv = NULL;
}

static int bias_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__BiasParameter def = CAFFE__BIAS_PARAMETER__INIT;
    const Caffe__BiasParameter *p = l->param->bias_param ? l->param->bias_param : &def;
    struct bias *b = calloc(1, sizeof *b);
    if (!b)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = b;
    b->axis = p->axis;
    if (l->n_bottom > 1 || l->n_blobs > 0)
        return CREMA_OK;
    int n_axes, shape[TENSOR_MAX_AXES];
    int rc = bias_blob_shape(bottom[0], p->axis, p->num_axes, "bias", &n_axes, shape);
    if (!rc)
        rc = layer_alloc_blobs(l, 1);
    if (!rc)
        rc = tensor_reshape(l->blobs[0], n_axes, shape);
    if (rc)
        return rc;
    static const Caffe__FillerParameter zero = CAFFE__FILLER_PARAMETER__INIT;
    return filler_fill(p->filler ? p->filler : &zero, l->blobs[0], l->rng);
}

static int bias_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct bias *b = l->priv;
    if (l->n_bottom == 1 && l->n_blobs < 1)
        return err_set(CREMA_ERR_INVALID, "needs a bias blob or a second bottom");
    const struct tensor *bias = l->n_bottom > 1 ? bottom[1] : l->blobs[0];
    int rc = bias_dims_of(bottom[0], bias, b->axis, "bias", &b->dims);
    if (!rc && top[0] != bottom[0])
        rc = tensor_reshape_like(top[0], bottom[0]);
    return rc;
}

static int bias_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct bias *b = l->priv;
    const struct backend *be = l->be;
    const float *bias = LCDATA(l->n_bottom > 1 ? bottom[1] : l->blobs[0]);
    const float *x = LCDATA(bottom[0]);
    float *y = LDATA(top[0]);
    if (!bias || !x || !y)
        return CREMA_ERR_NOMEM;
    be->norm->bias_forward(be, b->dims.outer, b->dims.dim, b->dims.inner, x, bias, y);
    return CREMA_OK;
}

static int bias_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    struct bias *b = l->priv;
    const struct backend *be = l->be;
    const float *dy = LCDIFF(top[0]);
    if (!dy)
        return CREMA_ERR_NOMEM;
    if (pd[0]) {
        float *dx = LDIFF(bottom[0]);
        if (!dx)
            return CREMA_ERR_NOMEM;
        be->math->copy(be, bottom[0]->count, dy, dx);
    }
    const bool learned = l->n_bottom == 1;
    if ((learned && l->param_propagate_down[0]) || (!learned && pd[1])) {
        float *db = LDIFF(learned ? l->blobs[0] : bottom[1]);
        if (!db)
            return CREMA_ERR_NOMEM;
        /* A parameter's gradient accumulates; a bottom's is written. */
        be->norm->bias_backward(be, b->dims.outer, b->dims.dim, b->dims.inner, dy, db, learned);
    }
    return CREMA_OK;
}

static bool bias_runs_on(const struct backend *be)
{
    return be->norm != NULL;
}

const struct layer_kind bias_layer = {
    .type = "Bias",
    .min_bottoms = 1, .max_bottoms = 2, .min_tops = 1, .max_tops = 1,
    .setup = bias_setup, .reshape = bias_reshape,
    .forward = bias_forward, .backward = bias_backward,
    .forward_dev = bias_forward, .backward_dev = bias_backward,
    .runs_on = bias_runs_on, .destroy = bias_destroy,
};
