/* Softmax: normalised exponentials along one axis, with Caffe's subtraction
 * of the maximum and its order of operations (so results match bit for bit);
 * the arithmetic is the loss family's (core/ops_loss.h). */
#include "layers/layer.h"

#include <stdlib.h>

struct softmax {
    int axis, outer, channels, inner;
};

static int softmax_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    (void)top;
    l->priv = calloc(1, sizeof(struct softmax));
    return l->priv ? CREMA_OK : err_set(CREMA_ERR_NOMEM, "out of memory");
}

static int softmax_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__SoftmaxParameter def = CAFFE__SOFTMAX_PARAMETER__INIT;
    const Caffe__SoftmaxParameter *p = l->param->softmax_param ? l->param->softmax_param : &def;
    struct softmax *s = l->priv;
    int axis = tensor_canonical_axis(bottom[0], p->axis);
    if (axis < 0)
        return err_set(CREMA_ERR_INVALID, "softmax_param.axis %d is out of range for a %d-axis bottom",
                       p->axis, bottom[0]->num_axes);
    s->axis = axis;
    s->outer = (int)tensor_count_range(bottom[0], 0, axis);
    s->channels = bottom[0]->shape[axis];
    s->inner = (int)tensor_count_range(bottom[0], axis + 1, bottom[0]->num_axes);
    return tensor_reshape_like(top[0], bottom[0]);
}

static int softmax_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct softmax *s = l->priv;
    const float *in = LCDATA(bottom[0]);
    float *out = LDATA(top[0]);
    if (!in || !out)
        return CREMA_ERR_NOMEM;
    l->be->loss->softmax_forward(l->be, in, out, s->outer, s->channels, s->inner);
    return CREMA_OK;
}

static int softmax_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                            struct tensor **bottom)
{
    struct softmax *s = l->priv;
    if (!propagate_down[0])
        return CREMA_OK;
    const float *y = LCDATA(top[0]), *dy = LCDIFF(top[0]);
    float *dx = LDIFF(bottom[0]);
    if (!y || !dy || !dx)
        return CREMA_ERR_NOMEM;
    l->be->loss->softmax_backward(l->be, y, dy, dx, s->outer, s->channels, s->inner);
    return CREMA_OK;
}

static void softmax_destroy(struct layer *l)
{
    free(l->priv);
    l->priv = NULL;
}

static bool softmax_runs_on(const struct backend *be)
{
    return be->loss != NULL;
}

const struct layer_kind softmax_layer = {
    .type = "Softmax",
    .min_bottoms = 1, .max_bottoms = 1, .min_tops = 1, .max_tops = 1,
    .setup = softmax_setup,
    .reshape = softmax_reshape,
    .forward = softmax_forward,
    .backward = softmax_backward,
    .forward_dev = softmax_forward,
    .backward_dev = softmax_backward,
    .runs_on = softmax_runs_on,
    .destroy = softmax_destroy,
};
