/* Pieces the vision layers share: convolution geometry (Convolution,
 * Deconvolution, Im2col) and pooling's output size (Pooling, SPP, LRN). The
 * kernels are the backend's (be->vision, core/ops_vision.h). */
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

/* Caffe's pooling output size: CEIL or FLOOR rounding, then the last window
 * must start inside the padded image. */
int pool_geom_shape(struct pool_geom *g, bool ceil_mode);

/* The vision table of l->be, for layers that use it in forward/backward. */
static inline bool vision_runs_on(const struct backend *be)
{
    return be->vision != NULL;
}

#endif
