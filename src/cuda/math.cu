/* The math table on the GPU: cuBLAS for the BLAS entries, own kernels for
 * the element-wise ones and for im2col/col2im (one thread per column entry
 * group, and a gather per image element for col2im, so no atomics and the
 * same sum order on every run). */
#include "cuda/common.cuh"

#define BLAS(be) (CUDA_CTX(be)->blas)

static void g_gemm(const struct backend *be, bool ta, bool tb, int M, int N, int K, float alpha, const float *A,
                   const float *B, float beta, float *C)
{
    /* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T. */
    int lda = ta ? M : K, ldb = tb ? K : N;
    cublas_check(be,
                 cublasSgemm(BLAS(be), tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                             &alpha, B, ldb, A, lda, &beta, C, N),
                 "cublasSgemm");
}

static void g_gemv(const struct backend *be, bool ta, int M, int N, float alpha, const float *A, const float *x,
                   float beta, float *y)
{
    /* A row-major M x N is column-major N x M. */
    cublas_check(be, cublasSgemv(BLAS(be), ta ? CUBLAS_OP_N : CUBLAS_OP_T, N, M, &alpha, A, N, x, 1, &beta, y, 1),
                 "cublasSgemv");
}

static void g_axpy(const struct backend *be, int n, float alpha, const float *x, float *y)
{
    cublas_check(be, cublasSaxpy(BLAS(be), n, &alpha, x, 1, y, 1), "cublasSaxpy");
}

static void g_scal(const struct backend *be, int n, float alpha, float *x)
{
    cublas_check(be, cublasSscal(BLAS(be), n, &alpha, x, 1), "cublasSscal");
}

static void g_axpby(const struct backend *be, int n, float alpha, const float *x, float beta, float *y)
{
    g_scal(be, n, beta, y);
    g_axpy(be, n, alpha, x, y);
}

static float g_dot(const struct backend *be, int n, const float *x, const float *y)
{
    float r = 0;
    cublas_check(be, cublasSdot(BLAS(be), n, x, 1, y, 1, &r), "cublasSdot");
    return r;
}

static float g_asum(const struct backend *be, int n, const float *x)
{
    float r = 0;
    cublas_check(be, cublasSasum(BLAS(be), n, x, 1, &r), "cublasSasum");
    return r;
}

static float g_sumsq(const struct backend *be, int n, const float *x)
{
    return g_dot(be, n, x, x);
}

__global__ void k_set(size_t n, float v, float *x)
{
    CUDA_LOOP(i, n) x[i] = v;
}

static void g_set(const struct backend *be, size_t n, float v, float *x)
{
    if (v == 0.f) {
        if (n)
            cuda_check(be, cudaMemsetAsync(x, 0, n * sizeof(float), CUDA_CTX(be)->stream), "cudaMemsetAsync");
        return;
    }
    CUDA_LAUNCH(be, k_set, n, n, v, x);
}

static void g_copy(const struct backend *be, size_t n, const float *x, float *y)
{
    if (x != y && n)
        cuda_check(be, cudaMemcpyAsync(y, x, n * sizeof(float), cudaMemcpyDeviceToDevice, CUDA_CTX(be)->stream),
                   "cudaMemcpyAsync");
}

__global__ void k_add_scalar(int n, float a, float *x)
{
    CUDA_LOOP(i, n) x[i] += a;
}

static void g_add_scalar(const struct backend *be, int n, float alpha, float *x)
{
    CUDA_LAUNCH(be, k_add_scalar, n, n, alpha, x);
}

#define G_BINARY(name, expr)                                                                   \
    __global__ void k_##name(int n, const float *a, const float *b, float *y)                 \
    {                                                                                          \
        CUDA_LOOP(i, n) y[i] = expr;                                                           \
    }                                                                                          \
    static void g_##name(const struct backend *be, int n, const float *a, const float *b, float *y) \
    {                                                                                          \
        CUDA_LAUNCH(be, k_##name, n, n, a, b, y);                                              \
    }
G_BINARY(add, a[i] + b[i])
G_BINARY(sub, a[i] - b[i])
G_BINARY(mul, a[i] * b[i])
G_BINARY(div, a[i] / b[i])

#define G_UNARY(name, expr)                                                          \
    __global__ void k_##name(int n, const float *a, float *y)                        \
    {                                                                                \
        CUDA_LOOP(i, n) y[i] = expr;                                                 \
    }                                                                                \
    static void g_##name(const struct backend *be, int n, const float *a, float *y) \
    {                                                                                \
        CUDA_LAUNCH(be, k_##name, n, n, a, y);                                       \
    }
G_UNARY(abs, fabsf(a[i]))
G_UNARY(exp, expf(a[i]))
G_UNARY(log, logf(a[i]))
G_UNARY(sqr, a[i] * a[i])
G_UNARY(sqrt, sqrtf(a[i]))
G_UNARY(sign, (float)((0.f < a[i]) - (a[i] < 0.f)))

__global__ void k_powx(int n, const float *a, float alpha, float *y)
{
    CUDA_LOOP(i, n) y[i] = powf(a[i], alpha);
}

static void g_powx(const struct backend *be, int n, const float *a, float alpha, float *y)
{
    CUDA_LAUNCH(be, k_powx, n, n, a, alpha, y);
}

/* ---- im2col / col2im, 2-D ---- */

struct geom2 {
    int channels, height, width, kh, kw, ph, pw, sh, sw, dh, dw, out_h, out_w;
};

/* One thread per (channel, output row, output column): writes that
 * column entry for every kernel offset. */
__global__ void k_im2col(size_t n, const float *im, struct geom2 g, float *col)
{
    CUDA_LOOP(idx, n)
    {
        int ow = (int)(idx % g.out_w);
        size_t t = idx / g.out_w;
        int oh = (int)(t % g.out_h);
        int c = (int)(t / g.out_h);
        int h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
        size_t plane = (size_t)g.out_h * g.out_w;
        float *dst = col + (size_t)c * g.kh * g.kw * plane + (size_t)oh * g.out_w + ow;
        const float *src = im + (size_t)c * g.height * g.width;
        for (int i = 0; i < g.kh; i++) {
            int h = h0 + i * g.dh;
            for (int j = 0; j < g.kw; j++) {
                int w = w0 + j * g.dw;
                *dst = (h >= 0 && w >= 0 && h < g.height && w < g.width) ? src[(size_t)h * g.width + w] : 0.f;
                dst += plane;
            }
        }
    }
}

/* One thread per image element: the sum of every column entry that came
 * from it. */
__global__ void k_col2im(size_t n, const float *col, struct geom2 g, float *im)
{
    CUDA_LOOP(idx, n)
    {
        int w = (int)(idx % g.width) + g.pw;
        size_t t = idx / g.width;
        int h = (int)(t % g.height) + g.ph;
        int c = (int)(t / g.height);
        int ext_w = (g.kw - 1) * g.dw + 1, ext_h = (g.kh - 1) * g.dh + 1;
        int w_lo = w < ext_w ? 0 : (w - ext_w) / g.sw + 1;
        int h_lo = h < ext_h ? 0 : (h - ext_h) / g.sh + 1;
        int w_hi = min(w / g.sw + 1, g.out_w), h_hi = min(h / g.sh + 1, g.out_h);
        float v = 0.f;
        for (int oh = h_lo; oh < h_hi; oh++) {
            int kh = h - oh * g.sh;
            if (kh % g.dh)
                continue;
            kh /= g.dh;
            for (int ow = w_lo; ow < w_hi; ow++) {
                int kw = w - ow * g.sw;
                if (kw % g.dw)
                    continue;
                kw /= g.dw;
                size_t row = ((size_t)c * g.kh + kh) * g.kw + kw;
                v += col[(row * g.out_h + oh) * g.out_w + ow];
            }
        }
        im[idx] = v;
    }
}

static struct geom2 make_geom2(int channels, int height, int width, int kh, int kw, int ph, int pw, int sh, int sw,
                               int dh, int dw)
{
    struct geom2 g = { channels, height, width, kh, kw, ph, pw, sh, sw, dh, dw, 0, 0 };
    g.out_h = (height + 2 * ph - (dh * (kh - 1) + 1)) / sh + 1;
    g.out_w = (width + 2 * pw - (dw * (kw - 1) + 1)) / sw + 1;
    if (g.out_h < 0)
        g.out_h = 0;
    if (g.out_w < 0)
        g.out_w = 0;
    return g;
}

static void g_im2col(const struct backend *be, const float *im, int channels, int height, int width, int kh,
                     int kw, int ph, int pw, int sh, int sw, int dh, int dw, float *col)
{
    struct geom2 g = make_geom2(channels, height, width, kh, kw, ph, pw, sh, sw, dh, dw);
    size_t n = (size_t)channels * g.out_h * g.out_w;
    CUDA_LAUNCH(be, k_im2col, n, n, im, g, col);
}

static void g_col2im(const struct backend *be, const float *col, int channels, int height, int width, int kh,
                     int kw, int ph, int pw, int sh, int sw, int dh, int dw, float *im)
{
    struct geom2 g = make_geom2(channels, height, width, kh, kw, ph, pw, sh, sw, dh, dw);
    size_t n = (size_t)channels * height * width;
    CUDA_LAUNCH(be, k_col2im, n, n, col, g, im);
}

/* ---- N-D ---- */

#define ND_MAX 32
struct geomn {
    int n;
    int im[ND_MAX + 1], col[ND_MAX + 1];
    int kernel[ND_MAX], pad[ND_MAX], stride[ND_MAX], dilation[ND_MAX];
    size_t im_spatial, col_spatial, kernel_size;
};

/* One thread per (input channel, output position): every kernel offset. */
__global__ void k_im2col_nd(size_t total, const float *im, struct geomn g, float *out)
{
    CUDA_LOOP(idx, total)
    {
        size_t pos = idx % g.col_spatial, c = idx / g.col_spatial;
        int o[ND_MAX];
        size_t r = pos;
        for (int a = g.n - 1; a >= 0; a--) {
            o[a] = (int)(r % g.col[1 + a]);
            r /= g.col[1 + a];
        }
        for (size_t kk = 0; kk < g.kernel_size; kk++) {
            size_t rk = kk, lin = 0;
            bool inside = true;
            int k[ND_MAX];
            for (int a = g.n - 1; a >= 0; a--) {
                k[a] = (int)(rk % g.kernel[a]);
                rk /= g.kernel[a];
            }
            for (int a = 0; a < g.n; a++) {
                int d = o[a] * g.stride[a] - g.pad[a] + k[a] * g.dilation[a];
                inside = inside && d >= 0 && d < g.im[1 + a];
                lin = lin * g.im[1 + a] + (size_t)(d < 0 ? 0 : d);
            }
            out[(c * g.kernel_size + kk) * g.col_spatial + pos] = inside ? im[c * g.im_spatial + lin] : 0.f;
        }
    }
}

/* One thread per image element: gathers its column entries. */
__global__ void k_col2im_nd(size_t total, const float *cols, struct geomn g, float *im)
{
    CUDA_LOOP(idx, total)
    {
        size_t pos = idx % g.im_spatial, c = idx / g.im_spatial;
        int d[ND_MAX];
        size_t r = pos;
        for (int a = g.n - 1; a >= 0; a--) {
            d[a] = (int)(r % g.im[1 + a]);
            r /= g.im[1 + a];
        }
        float v = 0.f;
        for (size_t kk = 0; kk < g.kernel_size; kk++) {
            size_t rk = kk, lin = 0;
            bool hit = true;
            int k[ND_MAX];
            for (int a = g.n - 1; a >= 0; a--) {
                k[a] = (int)(rk % g.kernel[a]);
                rk /= g.kernel[a];
            }
            for (int a = 0; a < g.n && hit; a++) {
                int num = d[a] + g.pad[a] - k[a] * g.dilation[a];
                if (num < 0 || num % g.stride[a]) {
                    hit = false;
                    break;
                }
                int o = num / g.stride[a];
                if (o >= g.col[1 + a])
                    hit = false;
                lin = lin * g.col[1 + a] + (size_t)o;
            }
            if (hit)
                v += cols[(c * g.kernel_size + kk) * g.col_spatial + lin];
        }
        im[idx] = v;
    }
}

static bool make_geomn(const struct backend *be, int n, const int *im_shape, const int *col_shape, const int *kernel,
                       const int *pad, const int *stride, const int *dilation, struct geomn *g)
{
    if (n < 1 || n > ND_MAX) {
        cuda_fail(be, CUDA_ERR_UNSUPPORTED, "im2col over %d spatial axes (1..%d)", n, ND_MAX);
        return false;
    }
    g->n = n;
    g->im_spatial = g->col_spatial = g->kernel_size = 1;
    for (int a = 0; a <= n; a++) {
        g->im[a] = im_shape[a];
        g->col[a] = col_shape[a];
    }
    for (int a = 0; a < n; a++) {
        g->kernel[a] = kernel[a];
        g->pad[a] = pad[a];
        g->stride[a] = stride[a];
        g->dilation[a] = dilation[a];
        g->im_spatial *= (size_t)im_shape[1 + a];
        g->col_spatial *= (size_t)col_shape[1 + a];
        g->kernel_size *= (size_t)kernel[a];
    }
    return true;
}

static void g_im2col_nd(const struct backend *be, const float *im, int n, const int *im_shape, const int *col_shape,
                        const int *kernel, const int *pad, const int *stride, const int *dilation, float *col)
{
    struct geomn g;
    if (!make_geomn(be, n, im_shape, col_shape, kernel, pad, stride, dilation, &g))
        return;
    size_t total = (size_t)im_shape[0] * g.col_spatial;
    CUDA_LAUNCH(be, k_im2col_nd, total, total, im, g, col);
}

static void g_col2im_nd(const struct backend *be, const float *col, int n, const int *im_shape,
                        const int *col_shape, const int *kernel, const int *pad, const int *stride,
                        const int *dilation, float *im)
{
    struct geomn g;
    if (!make_geomn(be, n, im_shape, col_shape, kernel, pad, stride, dilation, &g))
        return;
    size_t total = (size_t)im_shape[0] * g.im_spatial;
    CUDA_LAUNCH(be, k_col2im_nd, total, total, col, g, im);
}

static struct math_ops table;

extern "C" const struct math_ops *cuda_math_ops(void)
{
    table.gemm = g_gemm;
    table.gemv = g_gemv;
    table.axpy = g_axpy;
    table.axpby = g_axpby;
    table.scal = g_scal;
    table.dot = g_dot;
    table.asum = g_asum;
    table.sumsq = g_sumsq;
    table.set = g_set;
    table.copy = g_copy;
    table.add_scalar = g_add_scalar;
    table.add = g_add;
    table.sub = g_sub;
    table.mul = g_mul;
    table.div = g_div;
    table.abs = g_abs;
    table.exp = g_exp;
    table.log = g_log;
    table.sqr = g_sqr;
    table.sqrt = g_sqrt;
    table.sign = g_sign;
    table.powx = g_powx;
    table.im2col = g_im2col;
    table.col2im = g_col2im;
    table.im2col_nd = g_im2col_nd;
    table.col2im_nd = g_col2im_nd;
    return &table;
}
