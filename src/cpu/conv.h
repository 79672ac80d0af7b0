/* The CPU's 2-D convolution over a whole batch: blocks of images go to
 * crema's threads, each running im2col and one-thread OpenBLAS GEMMs on
 * scratch of its own. The plan holds every buffer, made once per shape, so
 * a training step allocates nothing. */
#ifndef CREMA_CPU_CONV_H
#define CREMA_CPU_CONV_H

#include "core/ops_vision.h"

#include <stdbool.h>

struct cpu_conv;

/* The plan for one shape of 1 to 3 spatial axes (core/ops_vision.h: the
 * image side is num x in_channels x in_shape, the column side num x
 * out_channels x out_shape); CREMA_ERR_NOMEM or CREMA_ERR_SHAPE (err_set).
 * 2-D (and 1-D, as 2-D of height 1) runs in blocks of images; 3-D one
 * image at a time through the N-D im2col. */
int cpu_conv_create(const struct conv_shape *s, struct cpu_conv **out);
void cpu_conv_free(struct cpu_conv *p);

/* out = W * im for every image (overwrites out), then + bias[channel]
 * where bias is not NULL: Caffe's two steps, each value's bias added once
 * its sum is done, while the image's output is still in cache. */
void cpu_conv_forward(struct cpu_conv *p, const float *im, const float *w, const float *bias, float *out);
/* im = W^T * out, the adjoint (overwrites im). */
void cpu_conv_backward_data(struct cpu_conv *p, const float *out, const float *w, float *im);
/* dw += out * im^T, summed over the images; and db += each output
 * channel's sum of out where db is not NULL (the bias gradient, as
 * cpu/vision's: each image's plane summed by cpu_plane_sum, the images
 * added in order), taken while the weight gradient has them in cache. */
void cpu_conv_backward_filter(struct cpu_conv *p, const float *im, const float *out, float *dw, float *db);
/* Whether the weight gradient runs on the micro-kernels (else OpenBLAS),
 * for tests that must reach both. */
bool cpu_conv_filter_packed(const struct cpu_conv *p);

#endif
