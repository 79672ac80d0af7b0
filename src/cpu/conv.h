/* The CPU's 2-D convolution over a whole batch: blocks of images go to
 * crema's threads, each running im2col and one-thread OpenBLAS GEMMs on
 * scratch of its own. The plan holds every buffer, made once per shape, so
 * a training step allocates nothing. */
#ifndef CREMA_CPU_CONV_H
#define CREMA_CPU_CONV_H

/* The convolution from the image side (num x in_channels x in_h x in_w) to
 * the column side (num x out_channels x out_h x out_w); the filter is
 * out_channels x in_channels/groups x kernel_h x kernel_w (Caffe's). */
struct cpu_conv_desc {
    int num, groups, in_channels, out_channels;
    int in_h, in_w, out_h, out_w;
    int kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w, dilation_h, dilation_w;
};

struct cpu_conv;

/* The plan for one shape; CREMA_ERR_NOMEM or CREMA_ERR_SHAPE (err_set). */
int cpu_conv_create(const struct cpu_conv_desc *d, struct cpu_conv **out);
void cpu_conv_free(struct cpu_conv *p);

/* out = W * im for every image (overwrites out). */
void cpu_conv_forward(struct cpu_conv *p, const float *im, const float *w, float *out);
/* im = W^T * out, the adjoint (overwrites im). */
void cpu_conv_backward_data(struct cpu_conv *p, const float *out, const float *w, float *im);
/* dw += out * im^T, summed over the images. */
void cpu_conv_backward_filter(struct cpu_conv *p, const float *im, const float *out, float *dw);

#endif
