/* The loss family's kernels: Softmax, Caffe's loss layers and Accuracy
 * (layers/softmax.c, layers/loss.c, layers/accuracy.c). CPU: cpu/loss.c;
 * CUDA: cuda/loss.cu.
 *
 * Every loss writes its value into the loss top's one float itself, and the
 * normalizer into a float the layer keeps; backward reads the loss weight
 * (the top's diff) and that normalizer where they are. So no value comes
 * back to the host inside forward or backward. */
#ifndef CREMA_CORE_OPS_LOSS_H
#define CREMA_CORE_OPS_LOSS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/hostdev.h"

struct backend;

/* Caffe's LossParameter.NormalizationMode, with its values. The normalizer
 * is outer * inner (FULL), the number of labels not ignored (VALID), outer
 * (BATCH_SIZE) or 1 (NONE), and at least 1 (a batch with every label
 * ignored must not divide by zero). */
enum loss_norm { LOSS_NORM_FULL = 0, LOSS_NORM_VALID = 1, LOSS_NORM_BATCH_SIZE = 2, LOSS_NORM_NONE = 3 };

/* Caffe's LossLayer normalizer for a mode (at least 1), the same on every
 * backend. */
static inline CREMA_HOST_DEVICE float loss_normalizer(enum loss_norm mode, int outer, int inner, int valid)
{
    float n;
    switch (mode) {
    case LOSS_NORM_FULL:
        n = (float)(outer * inner);
        break;
    case LOSS_NORM_VALID:
        n = (float)valid;
        break;
    case LOSS_NORM_BATCH_SIZE:
        n = (float)outer;
        break;
    default:
        n = 1.f;
        break;
    }
    return n < 1.f ? 1.f : n;
}

/* Class scores as an outer x channels x inner array (the class axis in the
 * middle, Caffe's outer_num_/inner_num_), and one label per outer x inner
 * position.
 *
 * A label is read as Caffe's static_cast<int>. With has_ignore, a label
 * equal to `ignore` is skipped: it adds nothing to the loss, its gradient is
 * 0 and VALID does not count it. A label that no int holds, or outside
 * [0, channels), is an error of the input: the layers report it from the
 * host copy where that costs no copy; the kernels never read outside their
 * arrays for it, and make the loss NaN and that position's gradient NaN
 * (Caffe's GPU code would read out of bounds). */
struct loss_labels {
    int outer, channels, inner;
    bool has_ignore;
    int ignore;
    enum loss_norm norm;
};

/* Pointers are into the backend's memory. `loss`, `normalizer` and
 * `loss_weight` point to one float; loss_weight is the loss top's diff (the
 * net's loss weight, scaled by any gradient from above). */
struct loss_ops {
    /* Caffe's softmax along the middle axis of outer x channels x inner:
     * y = exp(x - max) / sum. y may be x. */
    void (*softmax_forward)(const struct backend *be, const float *x, float *y, int outer, int channels,
                            int inner);
    /* dx = y * (dy - <dy, y>) along the channels; dx may be dy. */
    void (*softmax_backward)(const struct backend *be, const float *y, const float *dy, float *dx, int outer,
                             int channels, int inner);

    /* SoftmaxWithLoss, from the softmax's output prob: loss = -sum log
     * max(prob[label], FLT_MIN) / normalizer. */
    void (*softmax_loss_forward)(const struct backend *be, const float *prob, const float *label,
                                 const struct loss_labels *g, float *loss, float *normalizer);
    /* dx = (prob - onehot(label)) * loss_weight / normalizer. */
    void (*softmax_loss_backward)(const struct backend *be, const float *prob, const float *label,
                                  const struct loss_labels *g, const float *loss_weight, const float *normalizer,
                                  float *dx);

    /* InfogainLoss with H (channels x channels): loss = -sum_k H[label][k]
     * log max(prob_k, 1e-20) / normalizer. */
    void (*infogain_loss_forward)(const struct backend *be, const float *prob, const float *label, const float *h,
                                  const struct loss_labels *g, float *loss, float *normalizer);
    /* sum_rows[r] = sum_c H[r][c], n x n. */
    void (*infogain_sum_rows)(const struct backend *be, const float *h, int n, float *sum_rows);
    /* dx = (prob * sum_rows[label] - H[label][k]) * loss_weight / normalizer. */
    void (*infogain_loss_backward)(const struct backend *be, const float *prob, const float *label,
                                   const float *h, const float *sum_rows, const struct loss_labels *g,
                                   const float *loss_weight, const float *normalizer, float *dx);

    /* SigmoidCrossEntropyLoss over g->outer x g->inner values (channels
     * unused; a target equal to the ignore label is skipped, any other is a
     * soft target): sigmoid = 1 / (1 + exp(-x)), loss = the cross-entropy
     * sum / normalizer. */
    void (*sigmoid_ce_loss_forward)(const struct backend *be, const float *x, const float *target,
                                    const struct loss_labels *g, float *sigmoid, float *loss, float *normalizer);
    /* dx = (sigmoid - target) * loss_weight / normalizer; 0 where ignored. */
    void (*sigmoid_ce_loss_backward)(const struct backend *be, const float *sigmoid, const float *target,
                                     const struct loss_labels *g, const float *loss_weight,
                                     const float *normalizer, float *dx);

    /* EuclideanLoss: diff = a - b, loss = <diff, diff> / num / 2. */
    void (*euclidean_loss_forward)(const struct backend *be, size_t n, int num, const float *a, const float *b,
                                   float *diff, float *loss);
    /* dx = (sign * loss_weight / num) * diff (sign: +1 for a, -1 for b). */
    void (*euclidean_loss_backward)(const struct backend *be, size_t n, int num, float sign, const float *diff,
                                    const float *loss_weight, float *dx);

    /* HingeLoss over num x dim scores, one label per item: diff =
     * max(0, 1 + x * (k == label ? -1 : 1)); loss = sum |diff| (or diff^2
     * with l2) / num. */
    void (*hinge_loss_forward)(const struct backend *be, int num, int dim, bool l2, const float *x,
                               const float *label, float *diff, float *loss);
    void (*hinge_loss_backward)(const struct backend *be, int num, int dim, bool l2, const float *diff,
                                const float *label, const float *loss_weight, float *dx);

    /* ContrastiveLoss over num pairs of `channels` features, sim one per
     * pair (similar when static_cast<int>(sim) != 0): diff = a - b, dist_sq
     * per pair, loss / num / 2; legacy_version uses max(margin - d^2, 0). */
    void (*contrastive_loss_forward)(const struct backend *be, int num, int channels, float margin, bool legacy,
                                     const float *a, const float *b, const float *sim, float *diff,
                                     float *dist_sq, float *loss);
    /* The gradient to a (sign +1) or b (sign -1). */
    void (*contrastive_loss_backward)(const struct backend *be, int num, int channels, float margin, bool legacy,
                                      float sign, const float *diff, const float *dist_sq, const float *sim,
                                      const float *loss_weight, float *dx);

    /* MultinomialLogisticLoss over num x dim probabilities: loss = -sum log
     * max(prob[label], 1e-20) / num (Caffe's kLOG_THRESHOLD). */
    void (*multinomial_loss_forward)(const struct backend *be, int num, int dim, const float *prob,
                                     const float *label, float *loss);
    void (*multinomial_loss_backward)(const struct backend *be, int num, int dim, const float *prob,
                                      const float *label, const float *loss_weight, float *dx);

    /* Accuracy (g->norm unused): a position is a hit when fewer than top_k
     * classes rank before its label's, ranking by larger score first and,
     * among equal scores, larger class index first (the order of crema's
     * top-k and of Caffe's std::partial_sort with std::greater on
     * (score, index) pairs). hit (outer * inner floats, scratch) gets 1 for
     * a hit, 0 for a miss, -1 ignored, -2 a bad label. accuracy = hits /
     * positions counted (NaN when none, as Caffe's 0/0; NaN with a bad
     * label); per_class (channels floats, or NULL) = each class's hits / its
     * positions (0 when none). */
    void (*accuracy_forward)(const struct backend *be, const float *x, const float *label,
                             const struct loss_labels *g, int top_k, float *hit, float *accuracy,
                             float *per_class);
};

#endif
