/* Loss layers: SoftmaxWithLoss, EuclideanLoss, SigmoidCrossEntropyLoss,
 * HingeLoss, ContrastiveLoss, InfogainLoss, MultinomialLogisticLoss.
 * Each writes a scalar top; backward scales by that top's diff (the loss
 * weight the net put there), exactly where Caffe does. The arithmetic is the
 * loss family's (core/ops_loss.h): the loss, its normalizer and the loss
 * weight stay where the layer computes. */
#include "layers/loss.h"
#include "core/blob_proto.h"
#include "proto/proto_io.h"

#include <stdlib.h>

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

/* The labels' host copy when reading it copies nothing; NULL when only a
 * device copy is current. */
static const float *loss_host_labels(const struct layer *l, struct tensor *t)
{
    const struct tensor_buf *b = t->data_buf;
    if (!l->be->host_memory && (!b || (b->head != TENSOR_AT_HOST && b->head != TENSOR_SYNCED)))
        return NULL;
    return tensor_cdata(t);
}

int loss_check_labels(const struct layer *l, struct tensor *labels, size_t n, int classes, bool has_ignore,
                      int ignore)
{
    const float *label = loss_host_labels(l, labels);
    if (!label)
        return l->be->host_memory ? CREMA_ERR_NOMEM : CREMA_OK;
    for (size_t at = 0; at < n; at++) {
        float v = label[at];
        if (!(v > -2147483648.f && v < 2147483648.f))
            return err_set(CREMA_ERR_INVALID, "layer %s (%s): label %zu is %g, not an integer label", l->name,
                           l->kind->type, at, (double)v);
        int lab = (int)v;
        /* Caffe casts to int before comparing with the ignore label, and
         * range-checks only the rest. */
        if (has_ignore && lab == ignore)
            continue;
        if (lab < 0 || lab >= classes)
            return err_set(CREMA_ERR_INVALID, "layer %s (%s): label %zu is %d, outside [0, %d)", l->name,
                           l->kind->type, at, lab, classes);
    }
    return CREMA_OK;
}

static int loss_check_normalization(Caffe__LossParameter__NormalizationMode mode)
{
    if (mode < CAFFE__LOSS_PARAMETER__NORMALIZATION_MODE__FULL || mode > CAFFE__LOSS_PARAMETER__NORMALIZATION_MODE__NONE)
        return err_set(CREMA_ERR_INVALID, "loss_param.normalization: unknown mode %d", (int)mode);
    return CREMA_OK;
}

/* The schema's modes have the values of enum loss_norm. */
static enum loss_norm loss_norm_of(Caffe__LossParameter__NormalizationMode mode)
{
    switch (mode) {
    case CAFFE__LOSS_PARAMETER__NORMALIZATION_MODE__FULL:
        return LOSS_NORM_FULL;
    case CAFFE__LOSS_PARAMETER__NORMALIZATION_MODE__VALID:
        return LOSS_NORM_VALID;
    case CAFFE__LOSS_PARAMETER__NORMALIZATION_MODE__BATCH_SIZE:
        return LOSS_NORM_BATCH_SIZE;
    default:
        return LOSS_NORM_NONE;
    }
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

/* Makes *t (a new tensor the first time), shaped like `like` or, when like
 * is NULL, as a vector of n. */
static int loss_buffer(struct tensor **t, const struct tensor *like, int n)
{
    if (!*t && !(*t = tensor_new()))
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    return like ? tensor_reshape_like(*t, like) : tensor_reshape(*t, 1, &n);
}

static void loss_free_priv(struct layer *l)
{
    free(l->priv);
    l->priv = NULL;
}

static bool loss_runs_on(const struct backend *be)
{
    return be->loss != NULL;
}

/* ---- the softmax shared by SoftmaxWithLoss and InfogainLoss ---------------- */

struct softmax_part {
    struct loss_labels g;
    struct tensor *prob;
    struct tensor *norm; /* the normalizer forward found, for backward */
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
    s->g.has_ignore = p->has_ignore_label;
    s->g.ignore = p->ignore_label;
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
    s->g.outer = (int)tensor_count_range(x, 0, axis);
    s->g.channels = x->shape[axis];
    s->g.inner = (int)tensor_count_range(x, axis + 1, x->num_axes);
    if ((rc = loss_buffer(&s->prob, x, 0)) || (rc = loss_buffer(&s->norm, NULL, 1)))
        return rc;
    if ((size_t)s->g.outer * (size_t)s->g.inner != bottom[1]->count) {
        char a[256];
        return err_set(CREMA_ERR_SHAPE,
                       "%zu labels for predictions %s: with softmax axis %d there must be one label per item and position (%d)",
                       bottom[1]->count, tensor_shape_string(x, a, sizeof a), axis, s->g.outer * s->g.inner);
    }
    if (l->n_top >= 2)
        rc = tensor_reshape_like(top[1], x);
    return rc;
}

static int softmax_part_check_labels(const struct layer *l, const struct softmax_part *s, struct tensor *label)
{
    return loss_check_labels(l, label, label->count, s->g.channels, s->g.has_ignore, s->g.ignore);
}

/* The softmax of bottom 0 into prob; its pointer in *prob. */
static int softmax_part_forward(struct layer *l, struct softmax_part *s, struct tensor *x_t, const float **prob)
{
    const float *x = LCDATA(x_t);
    float *p = LDATA(s->prob);
    if (!x || !p)
        return CREMA_ERR_NOMEM;
    l->be->loss->softmax_forward(l->be, x, p, s->g.outer, s->g.channels, s->g.inner);
    *prob = p;
    return CREMA_OK;
}

/* The optional probability top: a copy of prob (Caffe shares it). */
static int softmax_part_output(struct layer *l, const struct softmax_part *s, const float *prob, struct tensor **top)
{
    if (l->n_top < 2)
        return CREMA_OK;
    float *p = LDATA(top[1]);
    if (!p)
        return CREMA_ERR_NOMEM;
    l->be->math->copy(l->be, top[1]->count, prob, p);
    return CREMA_OK;
}

static void softmax_part_free(struct softmax_part *s)
{
    tensor_free(s->prob);
    tensor_free(s->norm);
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
    Caffe__LossParameter__NormalizationMode mode;
    if (!p->has_normalization && p->has_normalize)
        mode = p->normalize ? CAFFE__LOSS_PARAMETER__NORMALIZATION_MODE__VALID
                            : CAFFE__LOSS_PARAMETER__NORMALIZATION_MODE__BATCH_SIZE;
    else
        mode = p->normalization;
    s->g.norm = loss_norm_of(mode);
    return loss_check_normalization(mode);
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
    struct softmax_part *m = &((struct softmax_loss *)l->priv)->sm;
    const float *prob;
    int rc = softmax_part_check_labels(l, m, bottom[1]);
    if (rc || (rc = softmax_part_forward(l, m, bottom[0], &prob)))
        return rc;
    const float *label = LCDATA(bottom[1]);
    float *y = LDATA(top[0]), *norm = LDATA(m->norm);
    if (!label || !y || !norm)
        return CREMA_ERR_NOMEM;
    l->be->loss->softmax_loss_forward(l->be, prob, label, &m->g, y, norm);
    return softmax_part_output(l, m, prob, top);
}

static int softmax_loss_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                                 struct tensor **bottom)
{
    struct softmax_part *m = &((struct softmax_loss *)l->priv)->sm;
    int rc = loss_no_label_grad(l, propagate_down);
    if (rc || !propagate_down[0] || (rc = softmax_part_check_labels(l, m, bottom[1])))
        return rc;
    const float *prob = LCDATA(m->prob), *label = LCDATA(bottom[1]), *w = LCDIFF(top[0]), *norm = LCDATA(m->norm);
    float *dx = LDIFF(bottom[0]);
    if (!prob || !label || !w || !norm || !dx)
        return CREMA_ERR_NOMEM;
    l->be->loss->softmax_loss_backward(l->be, prob, label, &m->g, w, norm, dx);
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
    .forward_dev = softmax_loss_forward,
    .backward_dev = softmax_loss_backward,
    .runs_on = loss_runs_on,
    .destroy = softmax_loss_destroy,
    .allow_force_backward = loss_not_label,
};

/* ---- EuclideanLoss --------------------------------------------------------- */

struct diff_buf {
    struct tensor *diff;
};

static int diff_buf_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    (void)top;
    l->priv = calloc(1, sizeof(struct diff_buf));
    return l->priv ? CREMA_OK : err_set(CREMA_ERR_NOMEM, "out of memory");
}

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
    struct diff_buf *s = l->priv;
    return loss_buffer(&s->diff, bottom[0], 0);
}

static int euclidean_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct diff_buf *s = l->priv;
    const float *a = LCDATA(bottom[0]), *b = LCDATA(bottom[1]);
    float *diff = LDATA(s->diff), *y = LDATA(top[0]);
    if (!a || !b || !diff || !y)
        return CREMA_ERR_NOMEM;
    l->be->loss->euclidean_loss_forward(l->be, bottom[0]->count, bottom[0]->shape[0], a, b, diff, y);
    return CREMA_OK;
}

static int euclidean_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                              struct tensor **bottom)
{
    struct diff_buf *s = l->priv;
    const float *w = LCDIFF(top[0]), *diff = LCDATA(s->diff);
    if (!w || !diff)
        return CREMA_ERR_NOMEM;
    for (int i = 0; i < 2; i++) {
        if (!propagate_down[i])
            continue;
        float *dx = LDIFF(bottom[i]);
        if (!dx)
            return CREMA_ERR_NOMEM;
        l->be->loss->euclidean_loss_backward(l->be, bottom[i]->count, bottom[i]->shape[0], i == 0 ? 1.f : -1.f,
                                             diff, w, dx);
    }
    return CREMA_OK;
}

static void diff_buf_destroy(struct layer *l)
{
    struct diff_buf *s = l->priv;
    if (s)
        tensor_free(s->diff);
    loss_free_priv(l);
}

const struct layer_kind euclidean_loss_layer = {
    .type = "EuclideanLoss",
    .min_bottoms = 2, .max_bottoms = 2, .min_tops = 1, .max_tops = 1,
    .auto_top_blobs = true,
    .is_loss = true,
    .setup = diff_buf_setup,
    .reshape = euclidean_reshape,
    .forward = euclidean_forward,
    .backward = euclidean_backward,
    .forward_dev = euclidean_forward,
    .backward_dev = euclidean_backward,
    .runs_on = loss_runs_on,
    .destroy = diff_buf_destroy,
    /* both inputs are differentiable here */
};

/* ---- SigmoidCrossEntropyLoss ----------------------------------------------- */

struct sigmoid_ce {
    struct loss_labels g; /* outer = items, inner = values per item */
    struct tensor *sig;
    struct tensor *norm; /* the normalizer forward found, for backward */
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
    s->g.has_ignore = p->has_ignore_label;
    s->g.ignore = p->ignore_label;
    s->g.channels = 1;
    /* Unlike SoftmaxWithLoss, the default here is BATCH_SIZE (Caffe keeps
     * the layer's historical division by the batch size). */
    Caffe__LossParameter__NormalizationMode mode;
    if (p->has_normalization)
        mode = p->normalization;
    else if (p->has_normalize)
        mode = p->normalize ? CAFFE__LOSS_PARAMETER__NORMALIZATION_MODE__VALID
                            : CAFFE__LOSS_PARAMETER__NORMALIZATION_MODE__BATCH_SIZE;
    else
        mode = CAFFE__LOSS_PARAMETER__NORMALIZATION_MODE__BATCH_SIZE;
    s->g.norm = loss_norm_of(mode);
    return loss_check_normalization(mode);
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
    s->g.outer = bottom[0]->shape[0];
    s->g.inner = (int)tensor_count_range(bottom[0], 1, bottom[0]->num_axes);
    if ((rc = loss_buffer(&s->sig, bottom[0], 0)))
        return rc;
    return loss_buffer(&s->norm, NULL, 1);
}

static int sigmoid_ce_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct sigmoid_ce *s = l->priv;
    const float *x = LCDATA(bottom[0]), *t = LCDATA(bottom[1]);
    float *sig = LDATA(s->sig), *y = LDATA(top[0]), *norm = LDATA(s->norm);
    if (!x || !t || !sig || !y || !norm)
        return CREMA_ERR_NOMEM;
    l->be->loss->sigmoid_ce_loss_forward(l->be, x, t, &s->g, sig, y, norm);
    return CREMA_OK;
}

static int sigmoid_ce_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                               struct tensor **bottom)
{
    struct sigmoid_ce *s = l->priv;
    int rc = loss_no_label_grad(l, propagate_down);
    if (rc || !propagate_down[0])
        return rc;
    const float *sig = LCDATA(s->sig), *t = LCDATA(bottom[1]), *w = LCDIFF(top[0]), *norm = LCDATA(s->norm);
    float *dx = LDIFF(bottom[0]);
    if (!sig || !t || !w || !norm || !dx)
        return CREMA_ERR_NOMEM;
    l->be->loss->sigmoid_ce_loss_backward(l->be, sig, t, &s->g, w, norm, dx);
    return CREMA_OK;
}

static void sigmoid_ce_destroy(struct layer *l)
{
    struct sigmoid_ce *s = l->priv;
    if (s) {
        tensor_free(s->sig);
        tensor_free(s->norm);
    }
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
    .forward_dev = sigmoid_ce_forward,
    .backward_dev = sigmoid_ce_backward,
    .runs_on = loss_runs_on,
    .destroy = sigmoid_ce_destroy,
    .allow_force_backward = loss_not_label,
};

/* ---- HingeLoss ------------------------------------------------------------- */

static int hinge_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    const Caffe__HingeLossParameter *p = l->param->hinge_loss_param;
    if (p && p->norm != CAFFE__HINGE_LOSS_PARAMETER__NORM__L1 && p->norm != CAFFE__HINGE_LOSS_PARAMETER__NORM__L2)
        return err_set(CREMA_ERR_INVALID, "hinge_loss_param.norm: unknown norm %d", (int)p->norm);
    return diff_buf_setup(l, bottom, top);
}

static int hinge_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct diff_buf *s = l->priv;
    int rc = loss_reshape_common(bottom, top);
    if (rc)
        return rc;
    /* one label per item; with an empty label blob there would be none */
    if (bottom[1]->count < (size_t)bottom[1]->shape[0])
        return err_set(CREMA_ERR_SHAPE, "the label bottom holds %zu values for %d items", bottom[1]->count,
                       bottom[1]->shape[0]);
    return loss_buffer(&s->diff, bottom[0], 0);
}

static bool hinge_l2(const struct layer *l)
{
    const Caffe__HingeLossParameter *p = l->param->hinge_loss_param;
    return p && p->norm == CAFFE__HINGE_LOSS_PARAMETER__NORM__L2;
}

/* Items, and scores per item. */
static void item_dims(const struct tensor *x, int *num, int *dim)
{
    *num = x->shape[0];
    *dim = *num ? (int)(x->count / (size_t)*num) : 0;
}

static int hinge_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct diff_buf *s = l->priv;
    int num, dim;
    item_dims(bottom[0], &num, &dim);
    int rc = loss_check_labels(l, bottom[1], (size_t)num, dim, false, 0);
    if (rc)
        return rc;
    const float *x = LCDATA(bottom[0]), *label = LCDATA(bottom[1]);
    float *diff = LDATA(s->diff), *y = LDATA(top[0]);
    if (!x || !label || !diff || !y)
        return CREMA_ERR_NOMEM;
    l->be->loss->hinge_loss_forward(l->be, num, dim, hinge_l2(l), x, label, diff, y);
    return CREMA_OK;
}

static int hinge_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                          struct tensor **bottom)
{
    struct diff_buf *s = l->priv;
    int rc = loss_no_label_grad(l, propagate_down);
    if (rc || !propagate_down[0])
        return rc;
    int num, dim;
    item_dims(bottom[0], &num, &dim);
    if ((rc = loss_check_labels(l, bottom[1], (size_t)num, dim, false, 0)))
        return rc;
    const float *diff = LCDATA(s->diff), *label = LCDATA(bottom[1]), *w = LCDIFF(top[0]);
    float *dx = LDIFF(bottom[0]);
    if (!diff || !label || !w || !dx)
        return CREMA_ERR_NOMEM;
    l->be->loss->hinge_loss_backward(l->be, num, dim, hinge_l2(l), diff, label, w, dx);
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
    .forward_dev = hinge_forward,
    .backward_dev = hinge_backward,
    .runs_on = loss_runs_on,
    .destroy = diff_buf_destroy,
    .allow_force_backward = loss_not_label,
};

/* ---- ContrastiveLoss ------------------------------------------------------- */

struct contrastive {
    struct tensor *diff, *dist_sq;
};

static int contrastive_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    (void)top;
    l->priv = calloc(1, sizeof(struct contrastive));
    return l->priv ? CREMA_OK : err_set(CREMA_ERR_NOMEM, "out of memory");
}

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
    struct contrastive *s = l->priv;
    if ((rc = loss_buffer(&s->diff, bottom[0], 0)))
        return rc;
    return loss_buffer(&s->dist_sq, NULL, bottom[0]->shape[0]);
}

static const Caffe__ContrastiveLossParameter *contrastive_param(const struct layer *l)
{
    static const Caffe__ContrastiveLossParameter def = CAFFE__CONTRASTIVE_LOSS_PARAMETER__INIT;
    return l->param->contrastive_loss_param ? l->param->contrastive_loss_param : &def;
}

static int contrastive_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct contrastive *s = l->priv;
    const Caffe__ContrastiveLossParameter *p = contrastive_param(l);
    const float *a = LCDATA(bottom[0]), *b = LCDATA(bottom[1]), *sim = LCDATA(bottom[2]);
    float *diff = LDATA(s->diff), *dist_sq = LDATA(s->dist_sq), *y = LDATA(top[0]);
    if (!a || !b || !sim || !diff || !dist_sq || !y)
        return CREMA_ERR_NOMEM;
    l->be->loss->contrastive_loss_forward(l->be, bottom[0]->shape[0], tensor_legacy_dim(bottom[0], 1), p->margin,
                                          p->legacy_version, a, b, sim, diff, dist_sq, y);
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
    const float *sim = LCDATA(bottom[2]), *w = LCDIFF(top[0]), *diff = LCDATA(s->diff),
                *dist_sq = LCDATA(s->dist_sq);
    if (!sim || !w || !diff || !dist_sq)
        return CREMA_ERR_NOMEM;
    for (int i = 0; i < 2; i++) {
        if (!propagate_down[i])
            continue;
        float *dx = LDIFF(bottom[i]);
        if (!dx)
            return CREMA_ERR_NOMEM;
        l->be->loss->contrastive_loss_backward(l->be, bottom[i]->shape[0], tensor_legacy_dim(bottom[i], 1),
                                               p->margin, p->legacy_version, i == 0 ? 1.f : -1.f, diff, dist_sq,
                                               sim, w, dx);
    }
    return CREMA_OK;
}

static void contrastive_destroy(struct layer *l)
{
    struct contrastive *s = l->priv;
    if (s) {
        tensor_free(s->diff);
        tensor_free(s->dist_sq);
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
    .setup = contrastive_setup,
    .reshape = contrastive_reshape,
    .forward = contrastive_forward,
    .backward = contrastive_backward,
    .forward_dev = contrastive_forward,
    .backward_dev = contrastive_backward,
    .runs_on = loss_runs_on,
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
    int num, dim;
    item_dims(bottom[0], &num, &dim);
    int rc = loss_check_labels(l, bottom[1], (size_t)num, dim, false, 0);
    if (rc)
        return rc;
    const float *x = LCDATA(bottom[0]), *label = LCDATA(bottom[1]);
    float *y = LDATA(top[0]);
    if (!x || !label || !y)
        return CREMA_ERR_NOMEM;
    l->be->loss->multinomial_loss_forward(l->be, num, dim, x, label, y);
    return CREMA_OK;
}

static int multinomial_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                                struct tensor **bottom)
{
    int rc = loss_no_label_grad(l, propagate_down);
    if (rc || !propagate_down[0])
        return rc;
    int num, dim;
    item_dims(bottom[0], &num, &dim);
    if ((rc = loss_check_labels(l, bottom[1], (size_t)num, dim, false, 0)))
        return rc;
    const float *x = LCDATA(bottom[0]), *label = LCDATA(bottom[1]), *w = LCDIFF(top[0]);
    float *dx = LDIFF(bottom[0]);
    if (!x || !label || !w || !dx)
        return CREMA_ERR_NOMEM;
    l->be->loss->multinomial_loss_backward(l->be, num, dim, x, label, w, dx);
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
    .forward_dev = multinomial_forward,
    .backward_dev = multinomial_backward,
    .runs_on = loss_runs_on,
    .allow_force_backward = loss_not_label,
};

/* ---- InfogainLoss ---------------------------------------------------------- */

/* Our schema's InfogainLossParameter has no `axis` field yet; Caffe's
 * default axis is 1. */
#define INFOGAIN_AXIS 1

struct infogain {
    struct softmax_part sm;
    struct tensor *h;        /* H read from infogain_loss_param.source */
    struct tensor *sum_rows; /* row sums of H */
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
    s->sm.g.norm = loss_norm_of(p->normalization);
    int rc = loss_check_normalization(p->normalization);
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

static struct tensor *infogain_h(const struct layer *l, struct tensor **bottom)
{
    const struct infogain *s = l->priv;
    return l->n_bottom >= 3 ? bottom[2] : s->h;
}

static int infogain_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct infogain *s = l->priv;
    int rc = softmax_part_reshape(l, &s->sm, bottom, top, INFOGAIN_AXIS, "the infogain axis");
    if (rc)
        return rc;
    int n = s->sm.g.channels;
    const struct tensor *h = infogain_h(l, bottom);
    if (h->count != (size_t)n * (size_t)n)
        return err_set(CREMA_ERR_SHAPE, "H has %zu elements; %d labels need %d x %d", h->count, n, n, n);
    return loss_buffer(&s->sum_rows, NULL, n);
}

static int infogain_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct infogain *s = l->priv;
    struct softmax_part *m = &s->sm;
    const float *prob;
    int rc = softmax_part_check_labels(l, m, bottom[1]);
    if (rc || (rc = softmax_part_forward(l, m, bottom[0], &prob)))
        return rc;
    const float *label = LCDATA(bottom[1]), *h = LCDATA(infogain_h(l, bottom));
    float *y = LDATA(top[0]), *norm = LDATA(m->norm);
    if (!label || !h || !y || !norm)
        return CREMA_ERR_NOMEM;
    l->be->loss->infogain_loss_forward(l->be, prob, label, h, &m->g, y, norm);
    return softmax_part_output(l, m, prob, top);
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
    if (!propagate_down[0] || (rc = softmax_part_check_labels(l, m, bottom[1])))
        return rc;
    const float *prob = LCDATA(m->prob), *label = LCDATA(bottom[1]), *h = LCDATA(infogain_h(l, bottom));
    const float *w = LCDIFF(top[0]), *norm = LCDATA(m->norm);
    float *sum_rows = LDATA(s->sum_rows), *dx = LDIFF(bottom[0]);
    if (!prob || !label || !h || !w || !norm || !sum_rows || !dx)
        return CREMA_ERR_NOMEM;
    /* Every pass: H given as a bottom may change between passes. */
    l->be->loss->infogain_sum_rows(l->be, h, m->g.channels, sum_rows);
    l->be->loss->infogain_loss_backward(l->be, prob, label, h, sum_rows, &m->g, w, norm, dx);
    return CREMA_OK;
}

static void infogain_destroy(struct layer *l)
{
    struct infogain *s = l->priv;
    if (s) {
        softmax_part_free(&s->sm);
        tensor_free(s->h);
        tensor_free(s->sum_rows);
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
    .forward_dev = infogain_forward,
    .backward_dev = infogain_backward,
    .runs_on = loss_runs_on,
    .destroy = infogain_destroy,
    .allow_force_backward = infogain_allow,
};
