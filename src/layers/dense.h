/* Helpers shared by the dense-weight layers (InnerProduct, Embed): their
 * weight/bias blob setup and the ones-vector bias term. */
#ifndef CREMA_LAYERS_DENSE_H
#define CREMA_LAYERS_DENSE_H

#include "layers/layer.h"

#include <stdbool.h>
#include <stddef.h>

/* The bias multiplier: a vector of ones, one per row of the output. */
struct dense_ones {
    float *v;
    size_t cap;
};

/* Checks given parameter blobs against a 2-D weight of wshape and (with
 * bias_term) a 1-D bias of n_out, or allocates and fills them. A NULL filler
 * means the FillerParameter defaults. */
int dense_setup_blobs(struct layer *l, bool bias_term, const int wshape[2], int n_out,
                      const Caffe__FillerParameter *weight_filler,
                      const Caffe__FillerParameter *bias_filler);

/* Makes o hold max(m, 1) ones. */
int dense_ones_reserve(struct dense_ones *o, int m);

/* y (m x n) += ones * bias. */
void dense_bias_forward(const struct dense_ones *o, int m, int n, const float *bias, float *y);

/* dbias (n) += dy^T * ones, dy being m x n. */
void dense_bias_backward(const struct dense_ones *o, int m, int n, const float *dy, float *dbias);

#endif
