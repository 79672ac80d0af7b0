/* Accuracy: the fraction of items whose label is among the top-k scores,
 * optionally per class in a second top (forward only, as in Caffe). */
#include "layers/layer.h"
#include "layers/topk.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct accuracy {
    int top_k;
    bool has_ignore;
    int ignore;
    int axis, outer, inner, classes;
    float *val, *nums;
    int *idx;
    size_t cap;
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
    s->has_ignore = p->has_ignore_label;
    s->ignore = p->ignore_label;
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
    s->axis = axis;
    s->outer = (int)tensor_count_range(bottom[0], 0, axis);
    s->inner = (int)tensor_count_range(bottom[0], axis + 1, bottom[0]->num_axes);
    s->classes = bottom[0]->shape[axis];
    if ((size_t)s->outer * (size_t)s->inner != bottom[1]->count)
        return err_set(CREMA_ERR_SHAPE,
                       "%zu labels for %d predictions: with label axis %d there must be one label per item and position",
                       bottom[1]->count, s->outer * s->inner, axis);
    size_t n = (size_t)s->classes;
    if (n > s->cap || !s->val) {
        free(s->val);
        free(s->nums);
        free(s->idx);
        s->val = malloc((n ? n : 1) * sizeof(float));
        s->nums = malloc((n ? n : 1) * sizeof(float));
        s->idx = malloc((n ? n : 1) * sizeof(int));
        if (!s->val || !s->nums || !s->idx)
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        s->cap = n;
    }
    int none[1] = { 0 };
    int rc = tensor_reshape(top[0], 0, none);
    if (!rc && l->n_top > 1)
        rc = tensor_reshape(top[1], 1, &s->classes);
    return rc;
}

static int accuracy_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct accuracy *s = l->priv;
    const float *x = tensor_data(bottom[0]), *label = tensor_data(bottom[1]);
    float *y = tensor_data(top[0]);
    float *per_class = l->n_top > 1 ? tensor_data(top[1]) : NULL;
    if (!x || !label || !y || (l->n_top > 1 && !per_class))
        return CREMA_ERR_NOMEM;
    if (per_class) {
        memset(per_class, 0, (size_t)s->classes * sizeof(float));
        memset(s->nums, 0, (size_t)s->classes * sizeof(float));
    }
    size_t dim = (size_t)s->classes * (size_t)s->inner;
    float hits = 0.f;
    int count = 0;
    for (int i = 0; i < s->outer; i++)
        for (int j = 0; j < s->inner; j++) {
            size_t at = (size_t)i * s->inner + j;
            float v = label[at];
            if (!(v > -2147483648.f && v < 2147483648.f))
                return err_set(CREMA_ERR_INVALID, "layer %s (Accuracy): label %zu is %g, not an integer label",
                               l->name, at, (double)v);
            int lab = (int)v;
            if (s->has_ignore && lab == s->ignore)
                continue;
            if (lab < 0 || lab >= s->classes)
                return err_set(CREMA_ERR_INVALID, "layer %s (Accuracy): label %zu is %d, outside [0, %d)", l->name,
                               at, lab, s->classes);
            if (per_class)
                s->nums[lab] += 1.f;
            for (int k = 0; k < s->classes; k++) {
                s->val[k] = x[i * dim + (size_t)k * s->inner + j];
                s->idx[k] = k;
            }
            argmax_select_top_k(s->val, s->idx, (size_t)s->classes, s->top_k);
            for (int k = 0; k < s->top_k; k++)
                if (s->idx[k] == lab) {
                    hits += 1.f;
                    if (per_class)
                        per_class[lab] += 1.f;
                    break;
                }
            count++;
        }
    /* Caffe divides by the count even when it is 0 (every label ignored). */
    y[0] = count ? hits / (float)count : NAN;
    if (per_class)
        for (int c = 0; c < s->classes; c++)
            per_class[c] = s->nums[c] == 0.f ? 0.f : per_class[c] / s->nums[c];
    return CREMA_OK;
}

static void accuracy_destroy(struct layer *l)
{
    struct accuracy *s = l->priv;
    if (s) {
        free(s->val);
        free(s->nums);
        free(s->idx);
    }
    free(s);
    l->priv = NULL;
}

const struct layer_kind accuracy_layer = {
    .type = "Accuracy",
    .min_bottoms = 2, .max_bottoms = 2, .min_tops = 1, .max_tops = 2,
    .setup = accuracy_setup,
    .reshape = accuracy_reshape,
    .forward = accuracy_forward,
    .destroy = accuracy_destroy,
};
