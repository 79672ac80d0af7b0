/* CPU math for layers: row-major BLAS wrappers over OpenBLAS and Caffe's
 * im2col/col2im, computed in the same order as Caffe's so results match. */
#ifndef CREMA_CPU_MATH_H
#define CREMA_CPU_MATH_H

#include <stdbool.h>

/* C = alpha * op(A) * op(B) + beta * C, row-major; op(A) is M x K, op(B) is
 * K x N, C is M x N (caffe_cpu_gemm). trans_a: A is stored K x M. */
void cpu_gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
              const float *B, float beta, float *C);
/* The same on the calling thread alone, with leading dimensions. */
void cpu_gemm_serial(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc);
/* Sets OpenBLAS to one thread (once): crema's pool does the splitting.
 * cpu_gemm calls it; code that calls cblas itself calls it first. */
void cpu_blas_init(void);
/* y = alpha * op(A) * x + beta * y with A stored M x N row-major (caffe_cpu_gemv):
 * trans_a false: x has N entries, y has M; true: x has M, y has N. */
void cpu_gemv(bool trans_a, int M, int N, float alpha, const float *A, const float *x, float beta,
              float *y);
/* y += alpha * x (saxpy). */
void cpu_axpy(int n, float alpha, const float *x, float *y);
/* y = alpha * x + beta * y, as Caffe does it without MKL: scal then axpy. */
void cpu_axpby(int n, float alpha, const float *x, float beta, float *y);
/* x *= alpha (sscal). */
void cpu_scal(int n, float alpha, float *x);
float cpu_dot(int n, const float *x, const float *y);
/* Sum of |x[i]| (sasum). */
float cpu_asum(int n, const float *x);
/* The sum of x[0..n) in eight running sums added pairwise at the end (the
 * convolution bias's gradient, one plane at a time). */
float cpu_plane_sum(const float *x, int n);
void cpu_set(int n, float value, float *x);

/* Caffe's im2col for one image of `channels` planes height x width: writes
 * (channels * kernel_h * kernel_w) rows of out_h * out_w columns, where
 * out = (in + 2 * pad - (dilation * (kernel - 1) + 1)) / stride + 1 and
 * padding reads as zero. */
void im2col(const float *im, int channels, int height, int width, int kernel_h, int kernel_w,
            int pad_h, int pad_w, int stride_h, int stride_w, int dilation_h, int dilation_w,
            float *col);
/* The adjoint: im is zeroed, then every column entry is added back to the
 * pixel it came from (in im2col's order). */
void col2im(const float *col, int channels, int height, int width, int kernel_h, int kernel_w,
            int pad_h, int pad_w, int stride_h, int stride_w, int dilation_h, int dilation_w,
            float *im);

/* The same with column row r at col + r * ld (0: out_h * out_w), so that
 * several images' columns can sit side by side in one buffer. */
void im2col_ld(const float *im, int channels, int height, int width, int kernel_h, int kernel_w, int pad_h,
               int pad_w, int stride_h, int stride_w, int dilation_h, int dilation_w, float *col, long ld);
void col2im_ld(const float *col, long ld, int channels, int height, int width, int kernel_h, int kernel_w,
               int pad_h, int pad_w, int stride_h, int stride_w, int dilation_h, int dilation_w, float *im);

/* N-D versions over num_spatial_axes axes. im_shape is [channels, spatial...]
 * (num_spatial_axes + 1 entries); col_shape is [channels * prod(kernel),
 * output spatial...]; kernel, pad, stride, dilation have num_spatial_axes
 * entries each (Caffe's im2col_nd_cpu / col2im_nd_cpu). */
void im2col_nd(const float *im, int num_spatial_axes, const int *im_shape, const int *col_shape,
               const int *kernel, const int *pad, const int *stride, const int *dilation,
               float *col);
void col2im_nd(const float *col, int num_spatial_axes, const int *im_shape, const int *col_shape,
               const int *kernel, const int *pad, const int *stride, const int *dilation,
               float *im);

#endif
