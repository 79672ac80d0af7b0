/* Loss layers: SoftmaxWithLoss, EuclideanLoss, SigmoidCrossEntropyLoss,
 * HingeLoss, ContrastiveLoss, InfogainLoss, MultinomialLogisticLoss.
 * Each writes a scalar top; backward scales by that top's diff (the loss
 * weight the net put there), exactly where Caffe does. */
#include "layers/layer.h"
#include "layers/softmax.h"
#include "core/blob_proto.h"
#include "proto/proto_io.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Caffe's kLOG_THRESHOLD: probabilities are clamped here before the log. */
#define LOG_THRESHOLD 1e-20f

/* LossLayer::Reshape: same first dimension, scalar top. */
static int loss_reshape_common(struct tensor **bottom, struct tensor **top)
{
    if (bottom[0]->num_axes < 1 || bottom[1]->num_axes < 1)
        return err_set(CREMA_ERR_SHAPE, "the data and label bottoms need at least one axis (have %d and %d)",
                       bottom[0]->num_axes, bottom[1]->num_axes);
    if (bottom[0]->shape[0] != bottom[1]->shape[0])
        return err_set(CREMA_ERR_SHAPE, "the data and label should have the same first dimension (%d vs %d)",
                       bottom[0]->shape[0], bottom[1]->shape[0]);
    int none[1] = { 0 };
    return tensor_reshape(top[0], 0, none);
}

/* A float label as Caffe's static_cast<int> reads it, refusing values no int holds. */
static int loss_label(const struct layer *l, float v, size_t at, int *out)
{
    if (!(v > -2147483648.f && v < 2147483648.f))
        return err_set(CREMA_ERR_INVALID, "layer %s (%s): label %zu is %g, not an integer label", l->name,
                       l->kind->type, at, (double)v);
    *out = (int)v;
    return CREMA_OK;
}

static int loss_label_in_range(const struct layer *l, float v, size_t at, int n_labels, int *out)
{
    int rc = loss_label(l, v, at, out);
    if (!rc && (*out < 0 || *out >= n_labels))
        rc = err_set(CREMA_ERR_INVALID, "layer %s (%s): label %zu is %d, outside [0, %d)", l->name, l->kind->type,
                     at, *out, n_labels);
    return rc;
}

static float loss_normalizer(Caffe__LossParameter__NormalizationMode mode, int outer, int inner, int valid)
{
    float n;
    switch (mode) {
    case CAFFE__LOSS_PARAMETER__NORMALIZATION_MODE__FULL:
        n = (float)(outer * inner);
        break;
    case CAFFE__LOSS_PARAMETER__NORMALIZATION_MODE__VALID:
        n = valid == -1 ? (float)(outer * inner) : (float)valid;
        break;
    case CAFFE__LOSS_PARAMETER__NORMALIZATION_MODE__BATCH_SIZE:
        n = (float)outer;
        break;
    default: /* NONE */
        n = 1.f;
        break;
    }
    /* A batch with every label ignored must not divide by zero. */
    return n < 1.f ? 1.f : n;
}

static int loss_check_normalization(Caffe__LossParameter__NormalizationMode mode)
{
    if (mode < CAFFE__LOSS_PARAMETER__NORMALIZATION_MODE__FULL || mode > CAFFE__LOSS_PARAMETER__NORMALIZATION_MODE__NONE)
        return err_set(CREMA_ERR_INVALID, "loss_param.normalization: unknown mode %d", (int)mode);
    return CREMA_OK;
}

static const Caffe__LossParameter *loss_param(const struct layer *l)
{
    static const Caffe__LossParameter def = CAFFE__LOSS_PARAMETER__INIT;
    return l->param->loss_param ? l->param->loss_param : &def;
}

/* Losses take no gradient into their label bottom (Caffe's LossLayer). */
static bool loss_not_label(const struct layer *l, int bottom_index)
{
    (void)l;
    return bottom_index != 1;
}

static int loss_no_label_grad(const struct layer *l, const bool *propagate_down)
{
    if (propagate_down[1])
        return err_set(CREMA_ERR_INVALID, "layer %s (%s) cannot back-propagate to its label input", l->name,
                       l->kind->type);
    return CREMA_OK;
}

static float *grow(float **buf, size_t *cap, size_t n)
{
    if (n > *cap || !*buf) {
        free(*buf);
        *buf = malloc((n ? n : 1) * sizeof(float));
        if (!*buf) {
            *cap = 0;
            err_set(CREMA_ERR_NOMEM, "out of memory");
            return NULL;
        }
        *cap = n;
    }
    return *buf;
}

static void loss_free_priv(struct layer *l)
{
    free(l->priv);
    l->priv = NULL;
}

/* ---- the softmax shared by SoftmaxWithLoss and InfogainLoss ---------------- */

struct softmax_part {
    float *prob;
    size_t prob_cap;
    int axis, outer, channels, inner;
    bool has_ignore;
    int ignore;
    Caffe__LossParameter__NormalizationMode norm;
};

/* Allocates the layer's state (whose first member is a softmax_part) and reads
 * the ignore label from loss_param. */
static struct softmax_part *softmax_part_new(struct layer *l, size_t size, const Caffe__LossParameter *p)
{
    struct softmax_part *s = calloc(1, size);
    if (!s) {
        err_set(CREMA_ERR_NOMEM, "out of memory");
        return NULL;
    }
    l->priv = s;
    s->has_ignore = p->has_ignore_label;
    s->ignore = p->ignore_label;
    return s;
}

/* LossLayer::Reshape plus the softmax geometry along axis_param, one label
 * per item and position, and the optional probability top. */
static int softmax_part_reshape(const struct layer *l, struct softmax_part *s, struct tensor **bottom,
                                struct tensor **top, int axis_param, const char *field)
{
    int rc = loss_reshape_common(bottom, top);
    if (rc)
        return rc;
    const struct tensor *x = bottom[0];
    int axis = tensor_canonical_axis(x, axis_param);
    if (axis < 0)
        return err_set(CREMA_ERR_INVALID, "%s %d is out of range for a %d-axis bottom", field, axis_param,
                       x->num_axes);
    s->axis = axis;
    s->outer = (int)tensor_count_range(x, 0, axis);
    s->channels = x->shape[axis];
    s->inner = (int)tensor_count_range(x, axis + 1, x->num_axes);
    if (!grow(&s->prob, &s->prob_cap, x->count))
        return CREMA_ERR_NOMEM;
    if ((size_t)s->outer * (size_t)s->inner != bottom[1]->count) {
        char a[256];
        return err_set(CREMA_ERR_SHAPE,
                       "%zu labels for predictions %s: with softmax axis %d there must be one label per item and position (%d)",
                       bottom[1]->count, tensor_shape_string(x, a, sizeof a), s->axis, s->outer * s->inner);
    }
    if (l->n_top >= 2)
        rc = tensor_reshape_like(top[1], x);
    return rc;
}

/* The label at `at`, or -1 where it is the ignore label. Caffe casts to int
 * before comparing with the ignore label, and range-checks only the rest. */
static int softmax_part_label(const struct layer *l, const struct softmax_part *s, float v, size_t at, int *lab)
{
    int rc = loss_label(l, v, at, lab);
    if (rc)
        return rc;
    if (s->has_ignore && *lab == s->ignore) {
        *lab = -1;
        return CREMA_OK;
    }
    return loss_label_in_range(l, v, at, s->channels, lab);
}

/* The loss top, normalized over the `count` labels used, and the optional
 * probability top. */
static int softmax_part_output(const struct layer *l, const struct softmax_part *s, float loss, int count,
                               struct tensor **top)
{
    float *y = tensor_data(top[0]);
    if (!y)
        return CREMA_ERR_NOMEM;
    y[0] = loss / loss_normalizer(s->norm, s->outer, s->inner, count);
    if (l->n_top == 2) {
        float *p = tensor_data(top[1]);
        if (!p)
            return CREMA_ERR_NOMEM;
        memcpy(p, s->prob, top[1]->count * sizeof(float));
    }
    return CREMA_OK;
}

/* Backward's last step: the loss weight over the normalizer. */
static void softmax_part_scale(const struct softmax_part *s, float dy, int count, float *dx, size_t n)
{
    float w = dy / loss_normalizer(s->norm, s->outer, s->inner, count);
    for (size_t i = 0; i < n; i++)
        dx[i] *= w;
}

static void softmax_part_free(struct softmax_part *s)
{
    free(s->prob);
}

/* ---- SoftmaxWithLoss ------------------------------------------------------- */

struct softmax_loss {
    struct softmax_part sm;
};

static int softmax_loss_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    (void)top;
    if (l->n_top == 2 && l->loss_weight[1] != 0.f)
        return err_set(CREMA_ERR_INVALID,
                       "the probability top (top 1) cannot carry a loss weight (Caffe cannot set this layer up with two weighted tops either)");
    const Caffe__LossParameter *p = loss_param(l);
    struct softmax_part *s = softmax_part_new(l, sizeof(struct softmax_loss), p);
    if (!s)
        return CREMA_ERR_NOMEM;
    /* The deprecated bool counts only when no normalization is given. */
    if (!p->has_normalization && p->has_normalize)
        s->norm = p->normalize ? CAFFE__LOSS_PARAMETER__NORMALIZATION_MODE__VALID
                               : CAFFE__LOSS_PARAMETER__NORMALIZATION_MODE__BATCH_SIZE;
    else
        s->norm = p->normalization;
    return loss_check_normalization(s->norm);
}

static int softmax_loss_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__SoftmaxParameter def = CAFFE__SOFTMAX_PARAMETER__INIT;
    const Caffe__SoftmaxParameter *sp = l->param->softmax_param ? l->param->softmax_param : &def;
    struct softmax_loss *s = l->priv;
    return softmax_part_reshape(l, &s->sm, bottom, top, sp->axis, "softmax_param.axis");
}

static int softmax_loss_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct softmax_loss *s = l->priv;
    const float *x = tensor_data(bottom[0]), *label = tensor_data(bottom[1]);
    if (!x || !label)
        return CREMA_ERR_NOMEM;
    struct softmax_part *m = &s->sm;
    softmax_forward_cpu(x, m->prob, m->outer, m->channels, m->inner);
    size_t dim = (size_t)m->channels * (size_t)m->inner;
    int count = 0;
    float loss = 0.f;
    for (int i = 0; i < m->outer; i++)
        for (int j = 0; j < m->inner; j++) {
            size_t at = (size_t)i * m->inner + j;
            int lab;
            int rc = softmax_part_label(l, m, label[at], at, &lab);
            if (rc)
                return rc;
            if (lab < 0)
                continue;
            loss -= logf(fmaxf(m->prob[i * dim + (size_t)lab * m->inner + j], FLT_MIN));
            count++;
        }
    return softmax_part_output(l, m, loss, count, top);
}

static int softmax_loss_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                                 struct tensor **bottom)
{
    struct softmax_loss *s = l->priv;
    int rc = loss_no_label_grad(l, propagate_down);
    if (rc || !propagate_down[0])
        return rc;
    struct softmax_part *m = &s->sm;
    const float *label = tensor_data(bottom[1]), *dy = tensor_diff(top[0]);
    float *dx = tensor_diff(bottom[0]);
    if (!label || !dy || !dx)
        return CREMA_ERR_NOMEM;
    memcpy(dx, m->prob, bottom[0]->count * sizeof(float));
    size_t dim = (size_t)m->channels * (size_t)m->inner;
    int count = 0;
    for (int i = 0; i < m->outer; i++)
        for (int j = 0; j < m->inner; j++) {
            size_t at = (size_t)i * m->inner + j;
            int lab;
            if ((rc = softmax_part_label(l, m, label[at], at, &lab)))
                return rc;
            if (lab < 0) {
                for (int c = 0; c < m->channels; c++)
                    dx[i * dim + (size_t)c * m->inner + j] = 0.f;
            } else {
                dx[i * dim + (size_t)lab * m->inner + j] -= 1.f;
                count++;
            }
        }
    softmax_part_scale(m, dy[0], count, dx, bottom[0]->count);
    return CREMA_OK;
}

static void softmax_loss_destroy(struct layer *l)
{
    struct softmax_loss *s = l->priv;
    if (s)
        softmax_part_free(&s->sm);
    loss_free_priv(l);
}

const struct layer_kind softmax_loss_layer = {
    .type = "SoftmaxWithLoss",
    .min_bottoms = 2, .max_bottoms = 2, .min_tops = 1, .max_tops = 2,
    .auto_top_blobs = true,
    .is_loss = true,
    .setup = softmax_loss_setup,
    .reshape = softmax_loss_reshape,
    .forward = softmax_loss_forward,
    .backward = softmax_loss_backward,
    .destroy = softmax_loss_destroy,
    .allow_force_backward = loss_not_label,
};

/* ---- EuclideanLoss --------------------------------------------------------- */

struct diff_buf {
    float *diff;
    size_t cap;
};

static int euclidean_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    int rc = loss_reshape_common(bottom, top);
    if (rc)
        return rc;
    if (bottom[0]->count != bottom[1]->count) {
        char a[256], b[256];
        return err_set(CREMA_ERR_SHAPE, "the two inputs must have the same dimension: %s vs %s",
                       tensor_shape_string(bottom[0], a, sizeof a), tensor_shape_string(bottom[1], b, sizeof b));
    }
    if (!l->priv && !(l->priv = calloc(1, sizeof(struct diff_buf))))
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    struct diff_buf *s = l->priv;
    return grow(&s->diff, &s->cap, bottom[0]->count) ? CREMA_OK : CREMA_ERR_NOMEM;
}

static int euclidean_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct diff_buf *s = l->priv;
    const float *a = tensor_data(bottom[0]), *b = tensor_data(bottom[1]);
    float *y = tensor_data(top[0]);
    if (!a || !b || !y)
        return CREMA_ERR_NOMEM;
    float dot = 0.f;
    for (size_t i = 0; i < bottom[0]->count; i++) {
        s->diff[i] = a[i] - b[i];
        dot += s->diff[i] * s->diff[i];
    }
    y[0] = dot / (float)bottom[0]->shape[0] / 2.f;
    return CREMA_OK;
}

static int euclidean_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                              struct tensor **bottom)
{
    struct diff_buf *s = l->priv;
    const float *dy = tensor_diff(top[0]);
    if (!dy)
        return CREMA_ERR_NOMEM;
    for (int i = 0; i < 2; i++) {
        if (!propagate_down[i])
            continue;
        float *dx = tensor_diff(bottom[i]);
        if (!dx)
            return CREMA_ERR_NOMEM;
        float alpha = (i == 0 ? 1.f : -1.f) * dy[0] / (float)bottom[i]->shape[0];
        for (size_t j = 0; j < bottom[i]->count; j++)
            dx[j] = alpha * s->diff[j];
    }
    return CREMA_OK;
}

static void diff_buf_destroy(struct layer *l)
{
    struct diff_buf *s = l->priv;
    if (s)
        free(s->diff);
    loss_free_priv(l);
}

const struct layer_kind euclidean_loss_layer = {
    .type = "EuclideanLoss",
    .min_bottoms = 2, .max_bottoms = 2, .min_tops = 1, .max_tops = 1,
    .auto_top_blobs = true,
    .is_loss = true,
    .reshape = euclidean_reshape,
    .forward = euclidean_forward,
    .backward = euclidean_backward,
    .destroy = diff_buf_destroy,
    /* both inputs are differentiable here */
};

/* ---- SigmoidCrossEntropyLoss ----------------------------------------------- */

struct sigmoid_ce {
    float *sig;
    size_t cap;
    int outer, inner;
    bool has_ignore;
    int ignore;
    Caffe__LossParameter__NormalizationMode norm;
    float normalizer; /* from the last forward, for backward */
};

static int sigmoid_ce_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    (void)top;
    const Caffe__LossParameter *p = loss_param(l);
    struct sigmoid_ce *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = s;
    s->has_ignore = p->has_ignore_label;
    s->ignore = p->ignore_label;
    /* Unlike SoftmaxWithLoss, the default here is BATCH_SIZE (Caffe keeps
     * the layer's historical division by the batch size). */
    if (p->has_normalization)
        s->norm = p->normalization;
    else if (p->has_normalize)
        s->norm = p->normalize ? CAFFE__LOSS_PARAMETER__NORMALIZATION_MODE__VALID
                               : CAFFE__LOSS_PARAMETER__NORMALIZATION_MODE__BATCH_SIZE;
    else
        s->norm = CAFFE__LOSS_PARAMETER__NORMALIZATION_MODE__BATCH_SIZE;
    s->normalizer = 1.f;
    return loss_check_normalization(s->norm);
}

static int sigmoid_ce_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct sigmoid_ce *s = l->priv;
    int rc = loss_reshape_common(bottom, top);
    if (rc)
        return rc;
    if (bottom[0]->count != bottom[1]->count)
        return err_set(CREMA_ERR_SHAPE, "the inputs must have the same count (%zu vs %zu)", bottom[0]->count,
                       bottom[1]->count);
    s->outer = bottom[0]->shape[0];
    s->inner = (int)tensor_count_range(bottom[0], 1, bottom[0]->num_axes);
    return grow(&s->sig, &s->cap, bottom[0]->count) ? CREMA_OK : CREMA_ERR_NOMEM;
}

static bool sigmoid_ce_ignored(const struct sigmoid_ce *s, float target)
{
    return s->has_ignore && target > -2147483648.f && target < 2147483648.f && (int)target == s->ignore;
}

static int sigmoid_ce_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct sigmoid_ce *s = l->priv;
    const float *x = tensor_data(bottom[0]), *t = tensor_data(bottom[1]);
    float *y = tensor_data(top[0]);
    if (!x || !t || !y)
        return CREMA_ERR_NOMEM;
    size_t n = bottom[0]->count;
    for (size_t i = 0; i < n; i++)
        s->sig[i] = (float)(0.5 * tanh(0.5 * (double)x[i]) + 0.5);
    int valid = 0;
    float loss = 0.f;
    for (size_t i = 0; i < n; i++) {
        if (sigmoid_ce_ignored(s, t[i]))
            continue;
        /* log(1 + exp(-|x|)) form: never overflows. */
        float pos = x[i] >= 0 ? 1.f : 0.f;
        loss -= x[i] * (t[i] - pos) - logf(1.f + expf(x[i] - 2.f * x[i] * pos));
        valid++;
    }
    s->normalizer = loss_normalizer(s->norm, s->outer, s->inner, valid);
    y[0] = loss / s->normalizer;
    return CREMA_OK;
}

static int sigmoid_ce_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                               struct tensor **bottom)
{
    struct sigmoid_ce *s = l->priv;
    int rc = loss_no_label_grad(l, propagate_down);
    if (rc || !propagate_down[0])
        return rc;
    const float *t = tensor_data(bottom[1]), *dy = tensor_diff(top[0]);
    float *dx = tensor_diff(bottom[0]);
    if (!t || !dy || !dx)
        return CREMA_ERR_NOMEM;
    size_t n = bottom[0]->count;
    for (size_t i = 0; i < n; i++)
        dx[i] = s->sig[i] - t[i];
    for (size_t i = 0; i < n; i++)
        if (sigmoid_ce_ignored(s, t[i]))
            dx[i] = 0.f;
    float w = dy[0] / s->normalizer;
    for (size_t i = 0; i < n; i++)
        dx[i] *= w;
    return CREMA_OK;
}

static void sigmoid_ce_destroy(struct layer *l)
{
    struct sigmoid_ce *s = l->priv;
    if (s)
        free(s->sig);
    loss_free_priv(l);
}

const struct layer_kind sigmoid_ce_loss_layer = {
    .type = "SigmoidCrossEntropyLoss",
    .min_bottoms = 2, .max_bottoms = 2, .min_tops = 1, .max_tops = 1,
    .auto_top_blobs = true,
    .is_loss = true,
    .setup = sigmoid_ce_setup,
    .reshape = sigmoid_ce_reshape,
    .forward = sigmoid_ce_forward,
    .backward = sigmoid_ce_backward,
    .destroy = sigmoid_ce_destroy,
    .allow_force_backward = loss_not_label,
};

/* ---- HingeLoss ------------------------------------------------------------- */

static int hinge_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    (void)top;
    const Caffe__HingeLossParameter *p = l->param->hinge_loss_param;
    if (p && p->norm != CAFFE__HINGE_LOSS_PARAMETER__NORM__L1 && p->norm != CAFFE__HINGE_LOSS_PARAMETER__NORM__L2)
        return err_set(CREMA_ERR_INVALID, "hinge_loss_param.norm: unknown norm %d", (int)p->norm);
    l->priv = calloc(1, sizeof(struct diff_buf));
    return l->priv ? CREMA_OK : err_set(CREMA_ERR_NOMEM, "out of memory");
}

static int hinge_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct diff_buf *s = l->priv;
    int rc = loss_reshape_common(bottom, top);
    if (rc)
        return rc;
    return grow(&s->diff, &s->cap, bottom[0]->count) ? CREMA_OK : CREMA_ERR_NOMEM;
}

static bool hinge_l2(const struct layer *l)
{
    const Caffe__HingeLossParameter *p = l->param->hinge_loss_param;
    return p && p->norm == CAFFE__HINGE_LOSS_PARAMETER__NORM__L2;
}

static int hinge_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct diff_buf *s = l->priv;
    const float *x = tensor_data(bottom[0]), *label = tensor_data(bottom[1]);
    float *y = tensor_data(top[0]);
    if (!x || !label || !y)
        return CREMA_ERR_NOMEM;
    int num = bottom[0]->shape[0];
    size_t count = bottom[0]->count, dim = num ? count / (size_t)num : 0;
    memcpy(s->diff, x, count * sizeof(float));
    for (int i = 0; i < num; i++) {
        int lab;
        int rc = loss_label_in_range(l, label[i], (size_t)i, (int)dim, &lab);
        if (rc)
            return rc;
        s->diff[(size_t)i * dim + (size_t)lab] *= -1.f;
    }
    for (size_t i = 0; i < count; i++)
        s->diff[i] = fmaxf(0.f, 1.f + s->diff[i]);
    float acc = 0.f;
    if (hinge_l2(l))
        for (size_t i = 0; i < count; i++)
            acc += s->diff[i] * s->diff[i];
    else
        for (size_t i = 0; i < count; i++)
            acc += fabsf(s->diff[i]);
    y[0] = acc / (float)num;
    return CREMA_OK;
}

static int hinge_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                          struct tensor **bottom)
{
    struct diff_buf *s = l->priv;
    int rc = loss_no_label_grad(l, propagate_down);
    if (rc || !propagate_down[0])
        return rc;
    const float *label = tensor_data(bottom[1]), *dy = tensor_diff(top[0]);
    float *dx = tensor_diff(bottom[0]);
    if (!label || !dy || !dx)
        return CREMA_ERR_NOMEM;
    int num = bottom[0]->shape[0];
    size_t count = bottom[0]->count, dim = num ? count / (size_t)num : 0;
    memcpy(dx, s->diff, count * sizeof(float));
    for (int i = 0; i < num; i++) {
        int lab;
        if ((rc = loss_label_in_range(l, label[i], (size_t)i, (int)dim, &lab)))
            return rc;
        dx[(size_t)i * dim + (size_t)lab] *= -1.f;
    }
    if (hinge_l2(l)) {
        float w = dy[0] * 2.f / (float)num;
        for (size_t i = 0; i < count; i++)
            dx[i] *= w;
    } else {
        float w = dy[0] / (float)num;
        for (size_t i = 0; i < count; i++)
            dx[i] = (float)((dx[i] > 0) - (dx[i] < 0)) * w;
    }
    return CREMA_OK;
}

const struct layer_kind hinge_loss_layer = {
    .type = "HingeLoss",
    .min_bottoms = 2, .max_bottoms = 2, .min_tops = 1, .max_tops = 1,
    .auto_top_blobs = true,
    .is_loss = true,
    .setup = hinge_setup,
    .reshape = hinge_reshape,
    .forward = hinge_forward,
    .backward = hinge_backward,
    .destroy = diff_buf_destroy,
    .allow_force_backward = loss_not_label,
};

/* ---- ContrastiveLoss ------------------------------------------------------- */

struct contrastive {
    float *diff, *dist_sq;
    size_t diff_cap, dist_cap;
};

static int contrastive_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    int rc = loss_reshape_common(bottom, top);
    if (rc)
        return rc;
    for (int b = 0; b < 3; b++)
        if (bottom[b]->num_axes > 4)
            return err_set(CREMA_ERR_SHAPE, "bottom %d has %d axes; ContrastiveLoss takes at most 4", b,
                           bottom[b]->num_axes);
    if (tensor_legacy_dim(bottom[0], 1) != tensor_legacy_dim(bottom[1], 1))
        return err_set(CREMA_ERR_SHAPE, "the two feature bottoms have %d and %d channels",
                       tensor_legacy_dim(bottom[0], 1), tensor_legacy_dim(bottom[1], 1));
    for (int b = 0; b < 2; b++)
        if (tensor_legacy_dim(bottom[b], 2) != 1 || tensor_legacy_dim(bottom[b], 3) != 1)
            return err_set(CREMA_ERR_SHAPE, "feature bottom %d must be N x C x 1 x 1", b);
    if (tensor_legacy_dim(bottom[2], 1) != 1 || tensor_legacy_dim(bottom[2], 2) != 1 ||
        tensor_legacy_dim(bottom[2], 3) != 1)
        return err_set(CREMA_ERR_SHAPE, "the similarity bottom (2) must be N x 1 x 1 x 1");
    if (bottom[2]->num_axes < 1 || bottom[2]->shape[0] != bottom[0]->shape[0] || bottom[1]->count != bottom[0]->count)
        return err_set(CREMA_ERR_SHAPE, "the three bottoms must hold the same number of pairs");
    if (!l->priv && !(l->priv = calloc(1, sizeof(struct contrastive))))
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    struct contrastive *s = l->priv;
    if (!grow(&s->diff, &s->diff_cap, bottom[0]->count) ||
        !grow(&s->dist_sq, &s->dist_cap, (size_t)bottom[0]->shape[0]))
        return CREMA_ERR_NOMEM;
    return CREMA_OK;
}

static const Caffe__ContrastiveLossParameter *contrastive_param(const struct layer *l)
{
    static const Caffe__ContrastiveLossParameter def = CAFFE__CONTRASTIVE_LOSS_PARAMETER__INIT;
    return l->param->contrastive_loss_param ? l->param->contrastive_loss_param : &def;
}

/* Caffe tests static_cast<int>(sim) != 0. */
static bool contrastive_similar(float v)
{
    return v >= 1.f || v <= -1.f;
}

static int contrastive_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct contrastive *s = l->priv;
    const Caffe__ContrastiveLossParameter *p = contrastive_param(l);
    const float *a = tensor_data(bottom[0]), *b = tensor_data(bottom[1]), *sim = tensor_data(bottom[2]);
    float *y = tensor_data(top[0]);
    if (!a || !b || !sim || !y)
        return CREMA_ERR_NOMEM;
    int num = bottom[0]->shape[0];
    size_t channels = (size_t)tensor_legacy_dim(bottom[0], 1);
    for (size_t i = 0; i < bottom[0]->count; i++)
        s->diff[i] = a[i] - b[i];
    float margin = p->margin, loss = 0.f;
    for (int i = 0; i < num; i++) {
        const float *d = s->diff + (size_t)i * channels;
        float dsq = 0.f;
        for (size_t c = 0; c < channels; c++)
            dsq += d[c] * d[c];
        s->dist_sq[i] = dsq;
        if (contrastive_similar(sim[i])) {
            loss += dsq;
        } else if (p->legacy_version) {
            loss += fmaxf(margin - dsq, 0.f);
        } else {
            float dist = fmaxf(margin - sqrtf(dsq), 0.f);
            loss += dist * dist;
        }
    }
    y[0] = loss / (float)num / 2.f;
    return CREMA_OK;
}

static int contrastive_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                                struct tensor **bottom)
{
    struct contrastive *s = l->priv;
    const Caffe__ContrastiveLossParameter *p = contrastive_param(l);
    if (propagate_down[2])
        return err_set(CREMA_ERR_INVALID, "layer %s (ContrastiveLoss) cannot back-propagate to its similarity input",
                       l->name);
    const float *sim = tensor_data(bottom[2]), *dy = tensor_diff(top[0]);
    if (!sim || !dy)
        return CREMA_ERR_NOMEM;
    float margin = p->margin;
    for (int i = 0; i < 2; i++) {
        if (!propagate_down[i])
            continue;
        float *dx = tensor_diff(bottom[i]);
        if (!dx)
            return CREMA_ERR_NOMEM;
        int num = bottom[i]->shape[0];
        size_t channels = (size_t)tensor_legacy_dim(bottom[i], 1);
        float alpha = (i == 0 ? 1.f : -1.f) * dy[0] / (float)num;
        for (int j = 0; j < num; j++) {
            const float *d = s->diff + (size_t)j * channels;
            float *o = dx + (size_t)j * channels;
            float scale;
            if (contrastive_similar(sim[j])) {
                scale = alpha;
            } else {
                float mdist, beta;
                if (p->legacy_version) {
                    mdist = margin - s->dist_sq[j];
                    beta = -alpha;
                } else {
                    float dist = sqrtf(s->dist_sq[j]);
                    mdist = margin - dist;
                    beta = -alpha * mdist / (dist + 1e-4f);
                }
                scale = mdist > 0.f ? beta : 0.f;
            }
            for (size_t c = 0; c < channels; c++)
                o[c] = scale * d[c];
        }
    }
    return CREMA_OK;
}

static void contrastive_destroy(struct layer *l)
{
    struct contrastive *s = l->priv;
    if (s) {
        free(s->diff);
        free(s->dist_sq);
    }
    loss_free_priv(l);
}

static bool contrastive_allow(const struct layer *l, int bottom_index)
{
    (void)l;
    return bottom_index != 2;
}

const struct layer_kind contrastive_loss_layer = {
    .type = "ContrastiveLoss",
    .min_bottoms = 3, .max_bottoms = 3, .min_tops = 1, .max_tops = 1,
    .auto_top_blobs = true,
    .is_loss = true,
    .reshape = contrastive_reshape,
    .forward = contrastive_forward,
    .backward = contrastive_backward,
    .destroy = contrastive_destroy,
    .allow_force_backward = contrastive_allow,
};

/* ---- MultinomialLogisticLoss ----------------------------------------------- */

static int multinomial_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)l;
    int rc = loss_reshape_common(bottom, top);
    if (rc)
        return rc;
    if (bottom[1]->num_axes > 4 || tensor_legacy_dim(bottom[1], 1) != 1 || tensor_legacy_dim(bottom[1], 2) != 1 ||
        tensor_legacy_dim(bottom[1], 3) != 1)
        return err_set(CREMA_ERR_SHAPE, "the label bottom must be N x 1 x 1 x 1 (one label per item)");
    return CREMA_OK;
}

static int multinomial_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    const float *x = tensor_data(bottom[0]), *label = tensor_data(bottom[1]);
    float *y = tensor_data(top[0]);
    if (!x || !label || !y)
        return CREMA_ERR_NOMEM;
    int num = bottom[0]->shape[0];
    size_t dim = num ? bottom[0]->count / (size_t)num : 0;
    float loss = 0.f;
    for (int i = 0; i < num; i++) {
        int lab;
        int rc = loss_label_in_range(l, label[i], (size_t)i, (int)dim, &lab);
        if (rc)
            return rc;
        loss -= logf(fmaxf(x[(size_t)i * dim + (size_t)lab], LOG_THRESHOLD));
    }
    y[0] = loss / (float)num;
    return CREMA_OK;
}

static int multinomial_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                                struct tensor **bottom)
{
    int rc = loss_no_label_grad(l, propagate_down);
    if (rc || !propagate_down[0])
        return rc;
    const float *x = tensor_data(bottom[0]), *label = tensor_data(bottom[1]), *dy = tensor_diff(top[0]);
    float *dx = tensor_diff(bottom[0]);
    if (!x || !label || !dy || !dx)
        return CREMA_ERR_NOMEM;
    int num = bottom[0]->shape[0];
    size_t dim = num ? bottom[0]->count / (size_t)num : 0;
    memset(dx, 0, bottom[0]->count * sizeof(float));
    float scale = -dy[0] / (float)num;
    for (int i = 0; i < num; i++) {
        int lab;
        if ((rc = loss_label_in_range(l, label[i], (size_t)i, (int)dim, &lab)))
            return rc;
        size_t at = (size_t)i * dim + (size_t)lab;
        dx[at] = scale / fmaxf(x[at], LOG_THRESHOLD);
    }
    return CREMA_OK;
}

const struct layer_kind multinomial_loss_layer = {
    .type = "MultinomialLogisticLoss",
    .min_bottoms = 2, .max_bottoms = 2, .min_tops = 1, .max_tops = 1,
    .auto_top_blobs = true,
    .is_loss = true,
    .reshape = multinomial_reshape,
    .forward = multinomial_forward,
    .backward = multinomial_backward,
    .allow_force_backward = loss_not_label,
};

/* ---- InfogainLoss ---------------------------------------------------------- */

/* Our schema's InfogainLossParameter has no `axis` field yet; Caffe's
 * default axis is 1. */
#define INFOGAIN_AXIS 1

struct infogain {
    struct softmax_part sm;
    struct tensor *h;       /* H read from infogain_loss_param.source */
    float *sum_rows;        /* row sums of H */
    size_t sum_cap;
};

static int infogain_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    (void)top;
    const Caffe__LossParameter *p = loss_param(l);
    if (p->has_normalize)
        return err_set(CREMA_ERR_INVALID, "loss_param.normalize is deprecated for InfogainLoss; use normalization");
    if (l->n_top == 2 && l->loss_weight[1] != 0.f)
        return err_set(CREMA_ERR_INVALID, "the probability top (top 1) cannot carry a loss weight");
    if (!softmax_part_new(l, sizeof(struct infogain), p))
        return CREMA_ERR_NOMEM;
    struct infogain *s = l->priv;
    s->sm.norm = p->normalization;
    int rc = loss_check_normalization(s->sm.norm);
    if (rc || l->n_bottom >= 3)
        return rc;
    const Caffe__InfogainLossParameter *ip = l->param->infogain_loss_param;
    if (!ip || !ip->source || !ip->source[0])
        return err_set(CREMA_ERR_INVALID,
                       "infogain_loss_param.source must name the H matrix file when H is not a third bottom");
    ProtobufCMessage *msg = NULL;
    rc = proto_read_binary(ip->source, &caffe__blob_proto__descriptor, &msg);
    if (rc)
        return err_prefix(rc, "infogain_loss_param.source");
    if (!(s->h = tensor_new()))
        rc = err_set(CREMA_ERR_NOMEM, "out of memory");
    else if ((rc = tensor_from_proto(s->h, (const Caffe__BlobProto *)msg, true)))
        err_prefix(rc, "infogain_loss_param.source %s", ip->source);
    proto_free(msg);
    return rc;
}

static const struct tensor *infogain_h(const struct layer *l, struct tensor **bottom)
{
    const struct infogain *s = l->priv;
    return l->n_bottom >= 3 ? bottom[2] : s->h;
}

static void infogain_sum_rows(struct infogain *s, const float *h, int n)
{
    for (int r = 0; r < n; r++) {
        float acc = 0.f;
        for (int c = 0; c < n; c++)
            acc += h[(size_t)r * n + c];
        s->sum_rows[r] = acc;
    }
}

static int infogain_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct infogain *s = l->priv;
    int rc = softmax_part_reshape(l, &s->sm, bottom, top, INFOGAIN_AXIS, "the infogain axis");
    if (rc)
        return rc;
    int n = s->sm.channels;
    struct tensor *h = (struct tensor *)infogain_h(l, bottom);
    if (h->count != (size_t)n * (size_t)n)
        return err_set(CREMA_ERR_SHAPE, "H has %zu elements; %d labels need %d x %d", h->count, n, n, n);
    if (!grow(&s->sum_rows, &s->sum_cap, (size_t)n))
        return CREMA_ERR_NOMEM;
    if (l->n_bottom < 3) {
        const float *hd = tensor_data(h);
        if (!hd)
            return CREMA_ERR_NOMEM;
        infogain_sum_rows(s, hd, n);
    }
    return CREMA_OK;
}

static int infogain_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct infogain *s = l->priv;
    struct softmax_part *m = &s->sm;
    const float *x = tensor_data(bottom[0]), *label = tensor_data(bottom[1]);
    const float *h = tensor_data((struct tensor *)infogain_h(l, bottom));
    if (!x || !label || !h)
        return CREMA_ERR_NOMEM;
    softmax_forward_cpu(x, m->prob, m->outer, m->channels, m->inner);
    int n = m->channels, count = 0;
    float loss = 0.f;
    for (int i = 0; i < m->outer; i++)
        for (int j = 0; j < m->inner; j++) {
            size_t at = (size_t)i * m->inner + j;
            int lab;
            int rc = softmax_part_label(l, m, label[at], at, &lab);
            if (rc)
                return rc;
            if (lab < 0)
                continue;
            for (int k = 0; k < n; k++)
                loss -= h[(size_t)lab * n + k] *
                        logf(fmaxf(m->prob[(size_t)i * m->inner * n + (size_t)k * m->inner + j], LOG_THRESHOLD));
            count++;
        }
    return softmax_part_output(l, m, loss, count, top);
}

static int infogain_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                             struct tensor **bottom)
{
    struct infogain *s = l->priv;
    struct softmax_part *m = &s->sm;
    int rc = loss_no_label_grad(l, propagate_down);
    if (rc)
        return rc;
    if (l->n_bottom >= 3 && propagate_down[2])
        return err_set(CREMA_ERR_INVALID, "layer %s (InfogainLoss) cannot back-propagate to its H input", l->name);
    if (!propagate_down[0])
        return CREMA_OK;
    const float *label = tensor_data(bottom[1]), *dy = tensor_diff(top[0]);
    const float *h = tensor_data((struct tensor *)infogain_h(l, bottom));
    float *dx = tensor_diff(bottom[0]);
    if (!label || !dy || !h || !dx)
        return CREMA_ERR_NOMEM;
    int n = m->channels, count = 0;
    /* H given as a bottom may change between passes. */
    if (l->n_bottom >= 3)
        infogain_sum_rows(s, h, n);
    size_t dim = (size_t)n * (size_t)m->inner;
    for (int i = 0; i < m->outer; i++)
        for (int j = 0; j < m->inner; j++) {
            size_t at = (size_t)i * m->inner + j;
            int lab;
            if ((rc = softmax_part_label(l, m, label[at], at, &lab)))
                return rc;
            if (lab < 0) {
                for (int k = 0; k < n; k++)
                    dx[i * dim + (size_t)k * m->inner + j] = 0.f;
                continue;
            }
            for (int k = 0; k < n; k++) {
                size_t o = i * dim + (size_t)k * m->inner + j;
                dx[o] = m->prob[o] * s->sum_rows[lab] - h[(size_t)lab * n + k];
            }
            count++;
        }
    softmax_part_scale(m, dy[0], count, dx, bottom[0]->count);
    return CREMA_OK;
}

static void infogain_destroy(struct layer *l)
{
    struct infogain *s = l->priv;
    if (s) {
        softmax_part_free(&s->sm);
        tensor_free(s->h);
        free(s->sum_rows);
    }
    loss_free_priv(l);
}

static bool infogain_allow(const struct layer *l, int bottom_index)
{
    (void)l;
    return bottom_index == 0;
}

const struct layer_kind infogain_loss_layer = {
    .type = "InfogainLoss",
    .min_bottoms = 2, .max_bottoms = 3, .min_tops = 1, .max_tops = 2,
    .auto_top_blobs = true,
    .is_loss = true,
    .setup = infogain_setup,
    .reshape = infogain_reshape,
    .forward = infogain_forward,
    .backward = infogain_backward,
    .destroy = infogain_destroy,
    .allow_force_backward = infogain_allow,
};
