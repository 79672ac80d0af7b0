/* What the loss layers and Accuracy share: checking their labels on the
 * host where that costs no copy, to name a bad one. */
#ifndef CREMA_LAYERS_LOSS_H
#define CREMA_LAYERS_LOSS_H

#include "layers/layer.h"

/* Checks the first n labels of `labels` as Caffe's static_cast<int> reads
 * them: each must be an int, and in [0, classes) unless it is the ignore
 * label; the error names the layer, the label's index and its value. The
 * labels are read on the host when l computes there, or when their host
 * copy is current (written on the host and sent up from there, as data
 * layers and Input do); otherwise nothing is checked here, and the kernels
 * turn a bad label into a NaN loss (core/ops_loss.h). */
int loss_check_labels(const struct layer *l, struct tensor *labels, size_t n, int classes, bool has_ignore,
                      int ignore);

#endif
