/* Broadcasting a small blob (a bias or a scale) over a bigger one along some
 * of its axes, as Caffe's Bias and Scale layers do: the shapes, shared by
 * bias.c and scale.c (the arithmetic is be->norm's). */
#ifndef CREMA_LAYERS_BIAS_H
#define CREMA_LAYERS_BIAS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/tensor.h"

/* x seen as outer x dim x inner, where dim is the count of the broadcast blob. */
struct bias_dims {
    size_t outer, dim, inner;
};

/* Shape of the blob to create for x from axis and num_axes (-1: to the end)
 * into shape[] (*n_axes axes). `what` names the blob in messages. */
int bias_blob_shape(const struct tensor *x, int axis, int num_axes, const char *what, int *n_axes,
                    int shape[TENSOR_MAX_AXES]);
/* Checks that b fits x from axis (ignored when b has no axes) and fills d. */
int bias_dims_of(const struct tensor *x, const struct tensor *b, int axis, const char *what,
                 struct bias_dims *d);

#endif
