/* Helpers shared by the dense-weight layers (InnerProduct, Embed): their
 * weight/bias blob setup and the ones-vector bias term. */
#ifndef CREMA_LAYERS_DENSE_H
#define CREMA_LAYERS_DENSE_H

#include "layers/layer.h"

#include <stdbool.h>
#include <stddef.h>

/* Checks given parameter blobs against a 2-D weight of wshape and (with
 * bias_term) a 1-D bias of n_out, or allocates and fills them. A NULL filler
 * means the FillerParameter defaults. */
int dense_setup_blobs(struct layer *l, bool bias_term, const int wshape[2], int n_out,
                      const Caffe__FillerParameter *weight_filler,
                      const Caffe__FillerParameter *bias_filler);

/* y (m x n) += ones * bias, on l->be; *ones is the layer's bias multiplier
 * (see layer_ones). */
int dense_bias_forward(struct layer *l, struct tensor **ones, int m, int n, const float *bias, float *y);

/* dbias (n) += dy^T * ones, dy being m x n. */
int dense_bias_backward(struct layer *l, struct tensor **ones, int m, int n, const float *dy, float *dbias);

#endif
