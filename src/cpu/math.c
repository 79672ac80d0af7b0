/* Row-major BLAS wrappers and im2col/col2im, in Caffe's loop order so that
 * sums round the same way (see math.h). */
#include "cpu/math.h"

#include <cblas.h>
#include <string.h>

void cpu_gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
              const float *B, float beta, float *C)
{
    int lda = trans_a ? M : K;
    int ldb = trans_b ? K : N;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, N);
}

void cpu_gemv(bool trans_a, int M, int N, float alpha, const float *A, const float *x, float beta,
              float *y)
{
    cblas_sgemv(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, M, N, alpha, A, N, x, 1, beta,
                y, 1);
}

void cpu_axpy(int n, float alpha, const float *x, float *y)
{
    cblas_saxpy(n, alpha, x, 1, y, 1);
}

void cpu_axpby(int n, float alpha, const float *x, float beta, float *y)
{
    cblas_sscal(n, beta, y, 1);
    cblas_saxpy(n, alpha, x, 1, y, 1);
}

void cpu_scal(int n, float alpha, float *x)
{
    cblas_sscal(n, alpha, x, 1);
}

float cpu_dot(int n, const float *x, const float *y)
{
    return cblas_sdot(n, x, 1, y, 1);
}

float cpu_asum(int n, const float *x)
{
    return cblas_sasum(n, x, 1);
}

void cpu_set(int n, float value, float *x)
{
    if (value == 0.f) {
        memset(x, 0, (size_t)n * sizeof *x);
        return;
    }
    for (int i = 0; i < n; i++)
        x[i] = value;
}

/* One walk serves both directions: im2col copies image to columns,
 * col2im adds columns back into the (zeroed) image. */
static void im2col_walk(float *im, float *col, bool to_col, int channels, int height, int width,
                        int kernel_h, int kernel_w, int pad_h, int pad_w, int stride_h,
                        int stride_w, int dilation_h, int dilation_w)
{
    int out_h = (height + 2 * pad_h - (dilation_h * (kernel_h - 1) + 1)) / stride_h + 1;
    int out_w = (width + 2 * pad_w - (dilation_w * (kernel_w - 1) + 1)) / stride_w + 1;
    size_t plane = (size_t)height * (size_t)width;
    if (!to_col)
        memset(im, 0, plane * (size_t)channels * sizeof *im);
    for (int c = 0; c < channels; c++, im += plane) {
        for (int kr = 0; kr < kernel_h; kr++) {
            for (int kc = 0; kc < kernel_w; kc++) {
                int row = kr * dilation_h - pad_h;
                for (int oh = 0; oh < out_h; oh++, row += stride_h) {
                    if (row < 0 || row >= height) {
                        if (to_col)
                            memset(col, 0, (size_t)out_w * sizeof *col);
                        col += out_w;
                        continue;
                    }
                    float *line = im + (size_t)row * (size_t)width;
                    int x = kc * dilation_w - pad_w;
                    for (int ow = 0; ow < out_w; ow++, x += stride_w, col++) {
                        bool inside = x >= 0 && x < width;
                        if (to_col)
                            *col = inside ? line[x] : 0.f;
                        else if (inside)
                            line[x] += *col;
                    }
                }
            }
        }
    }
}

void im2col(const float *im, int channels, int height, int width, int kernel_h, int kernel_w,
            int pad_h, int pad_w, int stride_h, int stride_w, int dilation_h, int dilation_w,
            float *col)
{
    im2col_walk((float *)im, col, true, channels, height, width, kernel_h, kernel_w, pad_h, pad_w,
                stride_h, stride_w, dilation_h, dilation_w);
}

void col2im(const float *col, int channels, int height, int width, int kernel_h, int kernel_w,
            int pad_h, int pad_w, int stride_h, int stride_w, int dilation_h, int dilation_w,
            float *im)
{
    im2col_walk(im, (float *)col, false, channels, height, width, kernel_h, kernel_w, pad_h, pad_w,
                stride_h, stride_w, dilation_h, dilation_w);
}

#define ND_MAX 32

static void im2col_nd_walk(float *im, float *col, bool to_col, int n, const int *im_shape,
                           const int *col_shape, const int *kernel, const int *pad,
                           const int *stride, const int *dilation)
{
    if (!to_col) {
        size_t im_size = (size_t)im_shape[0];
        for (int i = 0; i < n; i++)
            im_size *= (size_t)im_shape[1 + i];
        memset(im, 0, im_size * sizeof *im);
    }
    int kernel_size = 1;
    for (int i = 0; i < n; i++)
        kernel_size *= kernel[i];
    int k_off[ND_MAX], it[ND_MAX];
    for (int c_col = 0; c_col < col_shape[0]; c_col++) {
        /* Position inside the kernel of this column row, last axis fastest. */
        int rest = c_col;
        for (int d = n - 1; d >= 0; d--) {
            k_off[d] = rest % kernel[d];
            rest /= kernel[d];
        }
        for (int d = 0; d < n; d++)
            it[d] = 0;
        for (;;) {
            size_t index_col = (size_t)c_col;
            size_t index_im = (size_t)(c_col / kernel_size);
            bool padding = false;
            for (int d = 0; d < n; d++) {
                int pos = it[d] * stride[d] - pad[d] + k_off[d] * dilation[d];
                padding |= pos < 0 || pos >= im_shape[d + 1];
                index_col = index_col * (size_t)col_shape[d + 1] + (size_t)it[d];
                index_im = index_im * (size_t)im_shape[d + 1] + (size_t)pos;
            }
            if (to_col)
                col[index_col] = padding ? 0.f : im[index_im];
            else if (!padding)
                im[index_im] += col[index_col];
            /* Odometer over the output positions, last axis fastest. */
            int d = n - 1;
            for (; d >= 0; d--) {
                if (it[d] == col_shape[d + 1] - 1) {
                    it[d] = 0;
                } else {
                    it[d]++;
                    break;
                }
            }
            if (d < 0)
                break;
        }
    }
}

void im2col_nd(const float *im, int num_spatial_axes, const int *im_shape, const int *col_shape,
               const int *kernel, const int *pad, const int *stride, const int *dilation,
               float *col)
{
    im2col_nd_walk((float *)im, col, true, num_spatial_axes, im_shape, col_shape, kernel, pad,
                   stride, dilation);
}

void col2im_nd(const float *col, int num_spatial_axes, const int *im_shape, const int *col_shape,
               const int *kernel, const int *pad, const int *stride, const int *dilation,
               float *im)
{
    im2col_nd_walk(im, (float *)col, false, num_spatial_axes, im_shape, col_shape, kernel, pad,
                   stride, dilation);
}
