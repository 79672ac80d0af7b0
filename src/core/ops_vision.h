/* The vision layers' kernels (Convolution, Deconvolution, Pooling, SPP, LRN,
 * Crop): be->vision. Pointers are in the backend's memory; geometry comes
 * in small host structs. */
#ifndef CREMA_CORE_OPS_VISION_H
#define CREMA_CORE_OPS_VISION_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct backend;

/* Caffe's PoolingParameter.PoolMethod values (the layers check they agree). */
enum vision_pool_method { VISION_POOL_MAX = 0, VISION_POOL_AVE = 1 };

/* One 2-D pooling over planes of height x width (Caffe's PoolingLayer). */
struct pool_geom {
    int method; /* enum vision_pool_method */
    int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
    int height, width, pooled_h, pooled_w;
};

/* LRN over num x channels x height x width; size is odd. */
struct lrn_geom {
    int num, channels, height, width, size;
    float alpha, beta, k;
};

/* WITHIN_CHANNEL LRN's window sums as an average pooling (Caffe builds the
 * layer from one): size x size windows, padded to keep the image's extent. */
static inline struct pool_geom lrn_within_pool(const struct lrn_geom *g)
{
    struct pool_geom p;
    memset(&p, 0, sizeof p);
    p.method = VISION_POOL_AVE;
    p.kernel_h = p.kernel_w = g->size;
    p.pad_h = p.pad_w = (g->size - 1) / 2;
    p.stride_h = p.stride_w = 1;
    p.height = p.pooled_h = g->height;
    p.width = p.pooled_w = g->width;
    return p;
}

/* A convolution in its own terms, whichever layer it serves: the image side
 * (num x in_channels x in_shape) is what im2col reads, the column side
 * (num x out_channels x out_shape) what the GEMM writes, and the filter is
 * out_channels x in_channels/groups x kernel (Caffe's weight blob, for
 * Convolution and Deconvolution alike). */
#define VISION_CONV_MAX_AXES 8
struct conv_shape {
    int num_spatial_axes;
    int num, groups, in_channels, out_channels;
    int in_shape[VISION_CONV_MAX_AXES], out_shape[VISION_CONV_MAX_AXES];
    int kernel[VISION_CONV_MAX_AXES], pad[VISION_CONV_MAX_AXES];
    int stride[VISION_CONV_MAX_AXES], dilation[VISION_CONV_MAX_AXES];
};

struct vision_ops {
    /* A backend's own convolution (cuDNN on CUDA), all optional: NULL means
     * the layer runs im2col + gemm through be->math, which is what the CPU
     * does. plan_create picks the algorithms once for a shape (host work;
     * may wait for the device while it chooses); *plan stays NULL, with
     * CREMA_OK, when the backend cannot do this shape, and the layer then
     * uses im2col + gemm too. */
    int (*conv_plan_create)(const struct backend *be, const struct conv_shape *s, void **plan);
    void (*conv_plan_free)(const struct backend *be, void *plan);
    /* col = W * im, for all images (overwrites col), then col += bias per
     * output channel where bias is not NULL (as bias_forward below). */
    void (*conv_forward)(const struct backend *be, void *plan, const float *im, const float *w, const float *bias,
                         float *col);
    /* im = W^T * col, the adjoint (overwrites im). */
    void (*conv_backward_data)(const struct backend *be, void *plan, const float *col, const float *w, float *im);
    /* dw += col * im^T, summed over the images; db += col's sum per output
     * channel where db is not NULL (as bias_backward below). */
    void (*conv_backward_filter)(const struct backend *be, void *plan, const float *im, const float *col,
                                 float *dw, float *db);

    /* The convolution bias over num images of channels x spatial values:
     * y += bias (per channel), db += the sum of dy per channel. ones holds
     * at least `spatial` ones (Caffe's bias multiplier, for backends that
     * compute these with GEMM/GEMV). */
    void (*bias_forward)(const struct backend *be, int num, int channels, int spatial, const float *bias,
                         const float *ones, float *y);
    void (*bias_backward)(const struct backend *be, int num, int channels, int spatial, const float *dy,
                          const float *ones, float *db);

    /* Pooling of `planes` planes (num * channels). MAX writes the index
     * (h * width + w) of the first maximum of each window into imask or
     * fmask, whichever is not NULL (both may be NULL). backward overwrites
     * dx: MAX routes each dy to its mask's index, AVE shares it over the
     * window. */
    void (*pool_forward)(const struct backend *be, const struct pool_geom *g, int planes, const float *x,
                         float *y, int *imask, float *fmask);
    void (*pool_backward)(const struct backend *be, const struct pool_geom *g, int planes, const float *dy,
                          const int *imask, const float *fmask, float *dx);

    /* LRN across channels: scale = k + alpha/size * (window sum of x^2),
     * y = x * scale^-beta (y may be x). backward writes dx from x, y, scale
     * and dy. Both return a crema status (the CPU's may run out of
     * memory). */
    int (*lrn_across_forward)(const struct backend *be, const struct lrn_geom *g, const float *x, float *scale,
                              float *y);
    int (*lrn_across_backward)(const struct backend *be, const struct lrn_geom *g, const float *x,
                               const float *y, const float *scale, const float *dy, float *dx);
    /* LRN within a channel, as Caffe's chain of internal layers: square,
     * AVE pool (size x size, pad (size-1)/2, stride 1) into scale, power
     * (1 + alpha * scale)^-beta into power, product y = x * power. work and
     * work2 are scratch of the input's size. y may not be x. */
    void (*lrn_within_forward)(const struct backend *be, const struct lrn_geom *g, const float *x, float *work,
                               float *scale, float *power, float *y);
    void (*lrn_within_backward)(const struct backend *be, const struct lrn_geom *g, const float *x,
                                const float *dy, const float *scale, const float *power, float *work,
                                float *work2, float *dx);

    /* Crop and SPP's concatenation: `big` and `small` have num_axes axes
     * (at most TENSOR_MAX_AXES; shapes and offsets are host arrays); the
     * window of big at `offsets` has small's shape. gather copies the
     * window into small; scatter writes small into the window and leaves
     * the rest of big alone. */
    void (*crop_gather)(const struct backend *be, int num_axes, const int *big_shape, const int *small_shape,
                        const int *offsets, const float *big, float *small);
    void (*crop_scatter)(const struct backend *be, int num_axes, const int *big_shape, const int *small_shape,
                         const int *offsets, const float *small, float *big);
};

#endif
