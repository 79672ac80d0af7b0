/* Accuracy: the fraction of items whose label is among the top-k scores,
 * optionally per class in a second top (forward only, as in Caffe). The
 * counting is the loss family's (core/ops_loss.h), so it stays where the
 * scores are. */
#include "layers/loss.h"

#include <stdlib.h>

struct accuracy {
    int top_k;
    struct loss_labels g;
    struct tensor *hit; /* one float per position: the kernel's scratch */
};

static int accuracy_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    (void)top;
    static const Caffe__AccuracyParameter def = CAFFE__ACCURACY_PARAMETER__INIT;
    const Caffe__AccuracyParameter *p = l->param->accuracy_param ? l->param->accuracy_param : &def;
    if (p->top_k < 1 || p->top_k > 0x7fffffff)
        return err_set(CREMA_ERR_INVALID, "accuracy_param.top_k must be at least 1, not %u", p->top_k);
    struct accuracy *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = s;
    s->top_k = (int)p->top_k;
    s->g.has_ignore = p->has_ignore_label;
    s->g.ignore = p->ignore_label;
    if (!(s->hit = tensor_new()))
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    return CREMA_OK;
}

static int accuracy_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__AccuracyParameter def = CAFFE__ACCURACY_PARAMETER__INIT;
    const Caffe__AccuracyParameter *p = l->param->accuracy_param ? l->param->accuracy_param : &def;
    struct accuracy *s = l->priv;
    if (bottom[1]->count == 0 || (size_t)s->top_k > bottom[0]->count / bottom[1]->count)
        return err_set(CREMA_ERR_INVALID, "accuracy_param.top_k %d is more than the number of classes (%zu)",
                       s->top_k, bottom[1]->count ? bottom[0]->count / bottom[1]->count : 0);
    int axis = tensor_canonical_axis(bottom[0], p->axis);
    if (axis < 0)
        return err_set(CREMA_ERR_INVALID, "accuracy_param.axis %d is out of range for a %d-axis bottom", p->axis,
                       bottom[0]->num_axes);
    s->g.outer = (int)tensor_count_range(bottom[0], 0, axis);
    s->g.inner = (int)tensor_count_range(bottom[0], axis + 1, bottom[0]->num_axes);
    s->g.channels = bottom[0]->shape[axis];
    if ((size_t)s->g.outer * (size_t)s->g.inner != bottom[1]->count)
        return err_set(CREMA_ERR_SHAPE,
                       "%zu labels for %d predictions: with label axis %d there must be one label per item and position",
                       bottom[1]->count, s->g.outer * s->g.inner, axis);
    int positions = s->g.outer * s->g.inner;
    int rc = tensor_reshape(s->hit, 1, &positions);
    int none[1] = { 0 };
    if (!rc)
        rc = tensor_reshape(top[0], 0, none);
    if (!rc && l->n_top > 1)
        rc = tensor_reshape(top[1], 1, &s->g.channels);
    return rc;
}

static int accuracy_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct accuracy *s = l->priv;
    int rc = loss_check_labels(l, bottom[1], bottom[1]->count, s->g.channels, s->g.has_ignore, s->g.ignore);
    if (rc)
        return rc;
    const float *x = LCDATA(bottom[0]), *label = LCDATA(bottom[1]);
    float *hit = LDATA(s->hit), *y = LDATA(top[0]);
    float *per_class = l->n_top > 1 ? LDATA(top[1]) : NULL;
    if (!x || !label || !hit || !y || (l->n_top > 1 && !per_class))
        return CREMA_ERR_NOMEM;
    l->be->loss->accuracy_forward(l->be, x, label, &s->g, s->top_k, hit, y, per_class);
    return CREMA_OK;
}

static void accuracy_destroy(struct layer *l)
{
    struct accuracy *s = l->priv;
    if (s)
        tensor_free(s->hit);
    free(s);
    l->priv = NULL;
}

static bool accuracy_runs_on(const struct backend *be)
{
    return be->loss != NULL;
}

const struct layer_kind accuracy_layer = {
    .type = "Accuracy",
    .min_bottoms = 2, .max_bottoms = 2, .min_tops = 1, .max_tops = 2,
    .setup = accuracy_setup,
    .reshape = accuracy_reshape,
    .forward = accuracy_forward,
    .forward_dev = accuracy_forward,
    .runs_on = accuracy_runs_on,
    .destroy = accuracy_destroy,
};
