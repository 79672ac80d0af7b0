/* Row-major BLAS wrappers and im2col/col2im, in Caffe's loop order so that
 * sums round the same way (see math.h). */
#include "cpu/math.h"

#include "cpu/threads.h"

#include <cblas.h>
#include <pthread.h>
#include <string.h>

/* OpenBLAS runs on the calling thread only: crema's pool is the one set of
 * threads (cpu/threads.h), and it splits the GEMMs itself below. Two pools
 * on the same cores would take each other's time (OpenBLAS's idle workers
 * spin after every call). */
static void blas_one_thread(void)
{
    openblas_set_num_threads(1);
}

void cpu_blas_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, blas_one_thread);
}

void cpu_gemm_serial(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N,
                K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* A GEMM cut into panels of C: whole columns ranges (split_n) or row
 * ranges. The panels depend on the shape alone, never on the thread count,
 * so every element is summed by the same call on any number of threads. */
struct gemm_job {
    bool ta, tb, split_n;
    int M, N, K, panel, n_panels;
    float alpha, beta;
    const float *A, *B;
    float *C;
};

static int gemm_panels(void *ctx, size_t p0, size_t p1)
{
    const struct gemm_job *j = ctx;
    int lda = j->ta ? j->M : j->K, ldb = j->tb ? j->K : j->N;
    for (size_t p = p0; p < p1; p++) {
        int lo = (int)p * j->panel, hi = lo + j->panel;
        int total = j->split_n ? j->N : j->M;
        if (hi > total)
            hi = total;
        if (j->split_n) {
            const float *B = j->tb ? j->B + (size_t)lo * (size_t)j->K : j->B + lo;
            cpu_gemm_serial(j->ta, j->tb, j->M, hi - lo, j->K, j->alpha, j->A, lda, B, ldb, j->beta, j->C + lo,
                            j->N);
        } else {
            const float *A = j->ta ? j->A + lo : j->A + (size_t)lo * (size_t)j->K;
            cpu_gemm_serial(j->ta, j->tb, hi - lo, j->N, j->K, j->alpha, A, lda, j->B, ldb, j->beta,
                            j->C + (size_t)lo * (size_t)j->N, j->N);
        }
    }
    return 0;
}

/* Work per panel (multiply-adds) and the most panels. Each panel's call
 * packs the shared operand again (LeNet's ip1: 25.6 M multiply-adds in 11
 * panels of 2 M took 0.68 ms forward on one thread, in 4 panels 0.65), so
 * panels are large; a GEMM of at least GEMM_SPLIT_MACS still gets two. A
 * power of two of them shares evenly among 2, 4 or 8 threads. */
#define GEMM_PANEL_MACS (6L << 20)
#define GEMM_SPLIT_MACS (4L << 20)
#define GEMM_MAX_PANELS 16
#define GEMM_MIN_PANEL 32

void cpu_gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
              const float *B, float beta, float *C)
{
    cpu_blas_init();
    struct gemm_job j = {
        .ta = trans_a, .tb = trans_b, .M = M, .N = N, .K = K, .alpha = alpha, .beta = beta,
        .A = A, .B = B, .C = C, .split_n = N >= M,
    };
    double macs = (double)M * (double)N * (double)K;
    int total = j.split_n ? N : M;
    long panels = (long)(macs / (double)GEMM_PANEL_MACS);
    if (panels < 2 && macs >= (double)GEMM_SPLIT_MACS)
        panels = 2;
    if (panels > GEMM_MAX_PANELS)
        panels = GEMM_MAX_PANELS;
    if (panels > total / GEMM_MIN_PANEL)
        panels = total / GEMM_MIN_PANEL;
    while (panels & (panels - 1))
        panels &= panels - 1; /* the highest power of two in it */
    if (panels < 2) {
        cpu_gemm_serial(trans_a, trans_b, M, N, K, alpha, A, trans_a ? M : K, B, trans_b ? K : N, beta, C, N);
        return;
    }
    /* Panel edges on multiples of 16 columns or rows (whole SIMD tiles). */
    j.panel = ((total + (int)panels - 1) / (int)panels + 15) / 16 * 16;
    j.n_panels = (total + j.panel - 1) / j.panel;
    cpu_parallel_for((size_t)j.n_panels, 1, gemm_panels, &j);
}

void cpu_gemv(bool trans_a, int M, int N, float alpha, const float *A, const float *x, float beta,
              float *y)
{
    cpu_blas_init();
    cblas_sgemv(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, M, N, alpha, A, N, x, 1, beta,
                y, 1);
}

void cpu_axpy(int n, float alpha, const float *x, float *y)
{
    cpu_blas_init();
    cblas_saxpy(n, alpha, x, 1, y, 1);
}

void cpu_axpby(int n, float alpha, const float *x, float beta, float *y)
{
    cpu_blas_init();
    cblas_sscal(n, beta, y, 1);
    cblas_saxpy(n, alpha, x, 1, y, 1);
}

void cpu_scal(int n, float alpha, float *x)
{
    cpu_blas_init();
    cblas_sscal(n, alpha, x, 1);
}

float cpu_dot(int n, const float *x, const float *y)
{
    cpu_blas_init();
    return cblas_sdot(n, x, 1, y, 1);
}

/* Eight running sums, added pairwise at the end: the plane's sum without
 * a chain of dependent additions. */
float cpu_plane_sum(const float *x, int n)
{
    float acc[8] = { 0 };
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += x[i + k];
    for (int k = 0; i < n; i++, k++)
        acc[k] += x[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

float cpu_asum(int n, const float *x)
{
    cpu_blas_init();
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

/* Rows are short (tens of floats) and may not be vectorized by the compiler
 * at -O2; fixed 8-float blocks are (memcpy of a constant size is inlined). */
static inline void copy_row(float *dst, const float *src, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8)
        memcpy(dst + i, src + i, 8 * sizeof *dst);
    for (; i < n; i++)
        dst[i] = src[i];
}

static inline void add_row(float *dst, const float *src, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        float a[8], b[8];
        memcpy(a, dst + i, sizeof a);
        memcpy(b, src + i, sizeof b);
        for (int k = 0; k < 8; k++)
            a[k] += b[k];
        memcpy(dst + i, a, sizeof a);
    }
    for (; i < n; i++)
        dst[i] += src[i];
}

/* Output columns ow in [*lo, *hi) read inside the row: x = x0 + ow * stride
 * with 0 <= x < width. The rest read padding. */
static void inside_range(int x0, int stride, int width, int out_w, int *lo, int *hi)
{
    int a = x0 >= 0 ? 0 : (-x0 + stride - 1) / stride;
    int b = x0 >= width ? 0 : (width - 1 - x0) / stride + 1;
    if (a > out_w)
        a = out_w;
    if (b > out_w)
        b = out_w;
    if (b < a)
        b = a;
    *lo = a;
    *hi = b;
}

static int conv_out_extent(int in, int kernel, int pad, int stride, int dilation)
{
    return (in + 2 * pad - (dilation * (kernel - 1) + 1)) / stride + 1;
}

/* One image's im2col or col2im, with its geometry; the parallel loops below
 * hand out ranges of (channel, kernel row) units for im2col, whose column
 * rows are disjoint, and of channels for col2im, whose image planes are.
 * Column row r starts at col + r * ld (ld >= out_h * out_w: several images
 * may sit side by side in one buffer). */
struct im2col_job {
    const float *im;
    float *col;
    float *im_out;
    long ld;
    int channels, height, width, kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w;
    int dilation_h, dilation_w, out_h, out_w;
};

/* Stride 1 with as many output columns as input columns ("same" padding
 * along the width, as in CaffeNet's conv2-5 and CIFAR10-quick): output row
 * oh of a column row reads image row row0 + oh shifted by x0, so the valid
 * rows of a column row are one contiguous run of the image, copied at once;
 * the few columns that fall off a row's ends (padding) are zeroed after. */
static void im2col_same_units(const struct im2col_job *j, size_t u0, size_t u1)
{
    const int height = j->height, width = j->width, out_h = j->out_h, kernel_w = j->kernel_w;
    const long plane = (long)height * width, len = (long)out_h * width;
    float *col = j->col + (long)u0 * kernel_w * j->ld;
    for (size_t u = u0; u < u1; u++) {
        const float *im = j->im + (long)(u / (size_t)j->kernel_h) * plane;
        int kr = (int)(u % (size_t)j->kernel_h);
        int row0 = kr * j->dilation_h - j->pad_h;
        int oh_lo = row0 < 0 ? -row0 : 0;
        int oh_hi = height - row0 < out_h ? height - row0 : out_h;
        if (oh_lo > out_h)
            oh_lo = out_h;
        if (oh_hi < oh_lo)
            oh_hi = oh_lo;
        for (int kc = 0; kc < kernel_w; kc++, col += j->ld) {
            int x0 = kc * j->dilation_w - j->pad_w, lo, hi;
            inside_range(x0, 1, width, width, &lo, &hi);
            long base = (long)row0 * width + x0;
            long j0 = (long)oh_lo * width, j1 = (long)oh_hi * width;
            long a = j0 > -base ? j0 : -base, b = j1 < plane - base ? j1 : plane - base;
            if (b < a)
                b = a;
            memset(col, 0, (size_t)a * sizeof *col);
            memcpy(col + a, im + base + a, (size_t)(b - a) * sizeof *col);
            memset(col + b, 0, (size_t)(len - b) * sizeof *col);
            if (lo == 0 && hi == width)
                continue;
            for (int oh = oh_lo; oh < oh_hi; oh++) {
                float *r = col + (long)oh * width;
                for (int ow = 0; ow < lo; ow++)
                    r[ow] = 0.f;
                for (int ow = hi; ow < width; ow++)
                    r[ow] = 0.f;
            }
        }
    }
}

/* Both walk channel, kernel row, kernel column, output row, output column,
 * as Caffe's loops do; col2im therefore adds into every pixel in Caffe's
 * order. The column range that lies inside the image is computed once per
 * row instead of tested per element. */
static int im2col_units(void *ctx, size_t u0, size_t u1)
{
    const struct im2col_job *j = ctx;
    if (j->stride_h == 1 && j->stride_w == 1 && j->out_w == j->width) {
        im2col_same_units(j, u0, u1);
        return 0;
    }
    const int height = j->height, width = j->width, out_h = j->out_h, out_w = j->out_w;
    const int stride_w = j->stride_w;
    const size_t plane = (size_t)height * (size_t)width;
    float *crow = j->col + (long)u0 * j->kernel_w * j->ld;
    for (size_t u = u0; u < u1; u++) {
        const float *im = j->im + (u / (size_t)j->kernel_h) * plane;
        int kr = (int)(u % (size_t)j->kernel_h);
        for (int kc = 0; kc < j->kernel_w; kc++, crow += j->ld) {
            int x0 = kc * j->dilation_w - j->pad_w, lo, hi;
            inside_range(x0, stride_w, width, out_w, &lo, &hi);
            int row = kr * j->dilation_h - j->pad_h;
            float *col = crow;
            for (int oh = 0; oh < out_h; oh++, row += j->stride_h, col += out_w) {
                if (row < 0 || row >= height) {
                    memset(col, 0, (size_t)out_w * sizeof *col);
                    continue;
                }
                const float *line = im + (size_t)row * (size_t)width + x0;
                for (int ow = 0; ow < lo; ow++)
                    col[ow] = 0.f;
                if (stride_w == 1) {
                    copy_row(col + lo, line + lo, hi - lo);
                } else {
                    for (int ow = lo; ow < hi; ow++)
                        col[ow] = line[(long)ow * stride_w];
                }
                for (int ow = hi; ow < out_w; ow++)
                    col[ow] = 0.f;
            }
        }
    }
    return 0;
}

static int col2im_channels(void *ctx, size_t c0, size_t c1)
{
    const struct im2col_job *j = ctx;
    const int height = j->height, width = j->width, out_h = j->out_h, out_w = j->out_w;
    const int stride_w = j->stride_w;
    const size_t plane = (size_t)height * (size_t)width;
    const float *crow = j->col + (long)c0 * j->kernel_h * j->kernel_w * j->ld;
    float *im = j->im_out + c0 * plane;
    memset(im, 0, plane * (c1 - c0) * sizeof *im);
    for (size_t c = c0; c < c1; c++, im += plane) {
        for (int kr = 0; kr < j->kernel_h; kr++) {
            for (int kc = 0; kc < j->kernel_w; kc++, crow += j->ld) {
                int x0 = kc * j->dilation_w - j->pad_w, lo, hi;
                inside_range(x0, stride_w, width, out_w, &lo, &hi);
                int row = kr * j->dilation_h - j->pad_h;
                const float *col = crow;
                for (int oh = 0; oh < out_h; oh++, row += j->stride_h, col += out_w) {
                    if (row < 0 || row >= height)
                        continue;
                    float *line = im + (size_t)row * (size_t)width + x0;
                    if (stride_w == 1) {
                        add_row(line + lo, col + lo, hi - lo);
                    } else {
                        for (int ow = lo; ow < hi; ow++)
                            line[(long)ow * stride_w] += col[ow];
                    }
                }
            }
        }
    }
    return 0;
}

void im2col_ld(const float *im, int channels, int height, int width, int kernel_h, int kernel_w, int pad_h,
               int pad_w, int stride_h, int stride_w, int dilation_h, int dilation_w, float *col, long ld)
{
    struct im2col_job j = {
        .im = im, .col = col, .channels = channels, .height = height, .width = width,
        .kernel_h = kernel_h, .kernel_w = kernel_w, .pad_h = pad_h, .pad_w = pad_w,
        .stride_h = stride_h, .stride_w = stride_w, .dilation_h = dilation_h,
        .dilation_w = dilation_w,
        .out_h = conv_out_extent(height, kernel_h, pad_h, stride_h, dilation_h),
        .out_w = conv_out_extent(width, kernel_w, pad_w, stride_w, dilation_w),
    };
    j.ld = ld ? ld : (long)j.out_h * j.out_w;
    size_t per_unit = (size_t)kernel_w * (size_t)j.out_h * (size_t)j.out_w;
    cpu_parallel_for((size_t)channels * (size_t)kernel_h, cpu_grain(per_unit), im2col_units, &j);
}

void col2im_ld(const float *col, long ld, int channels, int height, int width, int kernel_h, int kernel_w,
               int pad_h, int pad_w, int stride_h, int stride_w, int dilation_h, int dilation_w, float *im)
{
    struct im2col_job j = {
        .col = (float *)col, .im_out = im, .channels = channels, .height = height,
        .width = width, .kernel_h = kernel_h, .kernel_w = kernel_w, .pad_h = pad_h,
        .pad_w = pad_w, .stride_h = stride_h, .stride_w = stride_w, .dilation_h = dilation_h,
        .dilation_w = dilation_w,
        .out_h = conv_out_extent(height, kernel_h, pad_h, stride_h, dilation_h),
        .out_w = conv_out_extent(width, kernel_w, pad_w, stride_w, dilation_w),
    };
    j.ld = ld ? ld : (long)j.out_h * j.out_w;
    size_t per_channel = (size_t)kernel_h * (size_t)kernel_w * (size_t)j.out_h * (size_t)j.out_w;
    cpu_parallel_for((size_t)channels, cpu_grain(per_channel), col2im_channels, &j);
}

void im2col(const float *im, int channels, int height, int width, int kernel_h, int kernel_w,
            int pad_h, int pad_w, int stride_h, int stride_w, int dilation_h, int dilation_w,
            float *col)
{
    im2col_ld(im, channels, height, width, kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w, dilation_h,
              dilation_w, col, 0);
}

void col2im(const float *col, int channels, int height, int width, int kernel_h, int kernel_w,
            int pad_h, int pad_w, int stride_h, int stride_w, int dilation_h, int dilation_w,
            float *im)
{
    col2im_ld(col, 0, channels, height, width, kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w,
              dilation_h, dilation_w, im);
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
