/* Pieces the vision layers share: convolution geometry (Convolution,
 * Deconvolution, Im2col) and the pooling kernels (Pooling, SPP, LRN). */
#ifndef CREMA_LAYERS_VISION_H
#define CREMA_LAYERS_VISION_H

#include "layers/layer.h"

/* Kernel, stride, pad and dilation per spatial axis, read as Caffe's
 * BaseConvolutionLayer reads them (repeated fields or _h/_w). */
struct conv_geom {
    int num_spatial_axes;
    int kernel[TENSOR_MAX_AXES];
    int stride[TENSOR_MAX_AXES];
    int pad[TENSOR_MAX_AXES];
    int dilation[TENSOR_MAX_AXES];
};

/* Fills g for num_spatial_axes axes; errors name the field. */
int conv_geom_parse(const Caffe__ConvolutionParameter *cp, int num_spatial_axes,
                    struct conv_geom *g);
/* Output extent of a convolution along axis i (may be <= 0 when too small). */
int conv_geom_out(const struct conv_geom *g, int i, int in);

/* One 2-D pooling over planes of height x width. */
struct pool_geom {
    int method; /* CAFFE__POOLING_PARAMETER__POOL_METHOD__* */
    int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
    int height, width, pooled_h, pooled_w;
};

/* Caffe's output size: CEIL or FLOOR rounding, then the last window must
 * start inside the padded image. */
int pool_geom_shape(struct pool_geom *g, bool ceil_mode);
/* planes = num * channels. MAX writes the index (h * width + w) of the first
 * maximum into imask or fmask (whichever is not NULL). */
void pool_forward(const struct pool_geom *g, int planes, const float *bottom, float *top,
                  int *imask, float *fmask);
/* Zeroes bottom_diff, then scatters top_diff back as Caffe does. */
void pool_backward(const struct pool_geom *g, int planes, const float *top_diff, const int *imask,
                   const float *fmask, float *bottom_diff);

#endif
