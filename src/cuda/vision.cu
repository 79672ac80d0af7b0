/* The vision family on the GPU: pooling, LRN and Crop's window copies as own
 * kernels, written to compute what src/cpu/vision.c computes operation for
 * operation (explicitly rounded, so no fused multiply-adds), and the table
 * (convolution and bias entries from conv.cu).
 *
 * Pooling uses cuDNN only for AVE windows that all lie inside the padded
 * image: there cuDNN's CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING divides
 * by kernel_h * kernel_w as Caffe does. Elsewhere cuDNN does not compute
 * Caffe's pooling: Caffe's CEIL output size adds windows that run past the
 * padded border, which Caffe divides by their size clipped to that border;
 * Caffe's MAX gives the mask top and routes a tie's gradient to the first
 * maximum only (Caffe's own layer factory keeps its own MAX kernel too). So
 * MAX, clipped AVE windows and every backward are own kernels; backward
 * gathers per input element over the windows covering it, in the order the
 * CPU scatters, so it is deterministic and matches the CPU bit for bit.
 *
 * LRN is own kernels as well: cuDNN's cross-channel LRN sums each window
 * afresh and takes only windows of 1 to 16 channels, where Caffe slides a
 * running sum (adding the square entering, subtracting the one leaving),
 * and WITHIN_CHANNEL is Caffe's chain of layers, not a cuDNN operation. */
#include "cuda/vision.cuh"

#include <float.h>
#include <string.h>

#define DNN(be) (CUDA_CTX(be)->dnn)

/* ---------------------------------------------------------------- pooling */

/* One thread per output: the CPU's pool_one (and its interior runs, which
 * visit the window in the same row-major order). */
__global__ void k_pool_max(size_t n, struct pool_geom g, const float *x, float *y, int *imask, float *fmask)
{
    CUDA_LOOP(i, n)
    {
        int pw = (int)(i % g.pooled_w);
        int ph = (int)((i / g.pooled_w) % g.pooled_h);
        size_t p = i / ((size_t)g.pooled_w * g.pooled_h);
        const float *src = x + p * (size_t)g.height * g.width;
        int hs = ph * g.stride_h - g.pad_h, ws = pw * g.stride_w - g.pad_w;
        int he = min(hs + g.kernel_h, g.height), we = min(ws + g.kernel_w, g.width);
        hs = max(hs, 0);
        ws = max(ws, 0);
        float best = -FLT_MAX;
        int arg = -1;
        for (int h = hs; h < he; h++)
            for (int w = ws; w < we; w++) {
                float v = src[h * g.width + w];
                if (v > best) { /* strict: the first maximum wins */
                    best = v;
                    arg = h * g.width + w;
                }
            }
        y[i] = best;
        if (imask)
            imask[i] = arg;
        if (fmask)
            fmask[i] = (float)arg;
    }
}

/* The divisor counts padding but not what lies beyond it. */
__device__ static inline int ave_window(const struct pool_geom &g, int ph, int pw, int *hs, int *ws, int *he,
                                        int *we)
{
    *hs = ph * g.stride_h - g.pad_h;
    *ws = pw * g.stride_w - g.pad_w;
    *he = min(*hs + g.kernel_h, g.height + g.pad_h);
    *we = min(*ws + g.kernel_w, g.width + g.pad_w);
    int size = (*he - *hs) * (*we - *ws);
    *hs = max(*hs, 0);
    *ws = max(*ws, 0);
    *he = min(*he, g.height);
    *we = min(*we, g.width);
    return size;
}

__global__ void k_pool_ave(size_t n, struct pool_geom g, const float *x, float *y)
{
    CUDA_LOOP(i, n)
    {
        int pw = (int)(i % g.pooled_w);
        int ph = (int)((i / g.pooled_w) % g.pooled_h);
        size_t p = i / ((size_t)g.pooled_w * g.pooled_h);
        const float *src = x + p * (size_t)g.height * g.width;
        int hs, ws, he, we;
        int size = ave_window(g, ph, pw, &hs, &ws, &he, &we);
        float sum = 0.f;
        for (int h = hs; h < he; h++)
            for (int w = ws; w < we; w++)
                sum = __fadd_rn(sum, src[h * g.width + w]);
        y[i] = __fdiv_rn(sum, (float)size);
    }
}

/* The outputs whose windows cover input row (column) h: [*lo, *hi). */
__device__ static inline void covering(int h, int pad, int kernel, int stride, int pooled, int *lo, int *hi)
{
    *lo = h + pad < kernel ? 0 : (h + pad - kernel) / stride + 1;
    *hi = min((h + pad) / stride + 1, pooled);
}

/* One thread per input element: the dy of every window whose mask points
 * at it, in output order (the CPU's scatter order). */
__global__ void k_pool_max_back(size_t n, struct pool_geom g, const float *dy, const int *imask,
                                const float *fmask, float *dx)
{
    CUDA_LOOP(i, n)
    {
        int w = (int)(i % g.width);
        int h = (int)((i / g.width) % g.height);
        size_t p = i / ((size_t)g.width * g.height);
        int me = h * g.width + w;
        int ph0, ph1, pw0, pw1;
        covering(h, g.pad_h, g.kernel_h, g.stride_h, g.pooled_h, &ph0, &ph1);
        covering(w, g.pad_w, g.kernel_w, g.stride_w, g.pooled_w, &pw0, &pw1);
        size_t base = p * (size_t)g.pooled_h * g.pooled_w;
        float v = 0.f;
        for (int ph = ph0; ph < ph1; ph++)
            for (int pw = pw0; pw < pw1; pw++) {
                size_t o = base + (size_t)ph * g.pooled_w + pw;
                long idx = imask ? (long)imask[o] : (long)fmask[o];
                if (idx == me)
                    v = __fadd_rn(v, dy[o]);
            }
        dx[i] = v;
    }
}

__global__ void k_pool_ave_back(size_t n, struct pool_geom g, const float *dy, float *dx)
{
    CUDA_LOOP(i, n)
    {
        int w = (int)(i % g.width);
        int h = (int)((i / g.width) % g.height);
        size_t p = i / ((size_t)g.width * g.height);
        int ph0, ph1, pw0, pw1;
        covering(h, g.pad_h, g.kernel_h, g.stride_h, g.pooled_h, &ph0, &ph1);
        covering(w, g.pad_w, g.kernel_w, g.stride_w, g.pooled_w, &pw0, &pw1);
        size_t base = p * (size_t)g.pooled_h * g.pooled_w;
        float v = 0.f;
        for (int ph = ph0; ph < ph1; ph++)
            for (int pw = pw0; pw < pw1; pw++) {
                int hs, ws, he, we;
                int size = ave_window(g, ph, pw, &hs, &ws, &he, &we);
                v = __fadd_rn(v, __fdiv_rn(dy[base + (size_t)ph * g.pooled_w + pw], (float)size));
            }
        dx[i] = v;
    }
}

/* AVE by cuDNN when every window lies inside the padded image (the output
 * has FLOOR's size): true when it ran (or recorded a failure). */
static bool cudnn_pool_ave(const struct backend *be, const struct pool_geom *g, int planes, const float *x,
                           float *y)
{
    if (g->method != VISION_POOL_AVE || planes <= 0 || g->height + 2 * g->pad_h < g->kernel_h ||
        g->width + 2 * g->pad_w < g->kernel_w ||
        g->pooled_h != (g->height + 2 * g->pad_h - g->kernel_h) / g->stride_h + 1 ||
        g->pooled_w != (g->width + 2 * g->pad_w - g->kernel_w) / g->stride_w + 1)
        return false;
    cudnnPoolingDescriptor_t pd = NULL;
    cudnnTensorDescriptor_t xd = NULL, yd = NULL;
    bool ok = cudnnCreatePoolingDescriptor(&pd) == CUDNN_STATUS_SUCCESS &&
              cudnnCreateTensorDescriptor(&xd) == CUDNN_STATUS_SUCCESS &&
              cudnnCreateTensorDescriptor(&yd) == CUDNN_STATUS_SUCCESS &&
              cudnnSetPooling2dDescriptor(pd, CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING, CUDNN_NOT_PROPAGATE_NAN,
                                          g->kernel_h, g->kernel_w, g->pad_h, g->pad_w, g->stride_h,
                                          g->stride_w) == CUDNN_STATUS_SUCCESS &&
              cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, planes, 1, g->height,
                                         g->width) == CUDNN_STATUS_SUCCESS &&
              cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, planes, 1, g->pooled_h,
                                         g->pooled_w) == CUDNN_STATUS_SUCCESS;
    if (ok) {
        const float one = 1.f, zero = 0.f;
        /* A refusal queues nothing: the own kernel runs instead. */
        ok = cudnnPoolingForward(DNN(be), pd, &one, xd, x, &zero, yd, y) == CUDNN_STATUS_SUCCESS;
    }
    if (yd)
        cudnnDestroyTensorDescriptor(yd);
    if (xd)
        cudnnDestroyTensorDescriptor(xd);
    if (pd)
        cudnnDestroyPoolingDescriptor(pd);
    return ok;
}

static void pool_forward(const struct backend *be, const struct pool_geom *g, int planes, const float *x,
                         float *y, int *imask, float *fmask, bool allow_cudnn)
{
    size_t n = (size_t)planes * g->pooled_h * g->pooled_w;
    if (g->method == VISION_POOL_MAX)
        CUDA_LAUNCH(be, k_pool_max, n, n, *g, x, y, imask, fmask);
    else if (!allow_cudnn || !cudnn_pool_ave(be, g, planes, x, y))
        CUDA_LAUNCH(be, k_pool_ave, n, n, *g, x, y);
}

static void g_pool_forward(const struct backend *be, const struct pool_geom *g, int planes, const float *x,
                           float *y, int *imask, float *fmask)
{
    pool_forward(be, g, planes, x, y, imask, fmask, true);
}

static void pool_backward(const struct backend *be, const struct pool_geom *g, int planes, const float *dy,
                          const int *imask, const float *fmask, float *dx)
{
    size_t n = (size_t)planes * g->height * g->width;
    if (g->method == VISION_POOL_MAX)
        CUDA_LAUNCH(be, k_pool_max_back, n, n, *g, dy, imask, fmask, dx);
    else
        CUDA_LAUNCH(be, k_pool_ave_back, n, n, *g, dy, dx);
}

static void g_pool_backward(const struct backend *be, const struct pool_geom *g, int planes, const float *dy,
                            const int *imask, const float *fmask, float *dx)
{
    if (g->method == VISION_POOL_MAX && !imask && !fmask) {
        cuda_fail(be, CUDA_ERR_INVALID, "MAX pooling backward without a mask");
        return;
    }
    pool_backward(be, g, planes, dy, imask, fmask, dx);
}

/* ---------------------------------------------------------------- LRN */

/* s^-beta: 1 / sqrt(s * sqrt(s)) for beta 0.75, as the CPU computes it. */
__device__ static inline float neg_pow(float s, float beta)
{
    if (beta == 0.75f)
        return __fdiv_rn(1.f, __fsqrt_rn(__fmul_rn(s, __fsqrt_rn(s))));
    return powf(s, -beta);
}

/* One thread per (image, pixel), down the channels: the CPU's running
 * window, operation for operation; y after the whole column's scale, so
 * that y may be x. */
__global__ void k_lrn_across(size_t n, struct lrn_geom g, float a, const float *x, float *scale, float *y)
{
    CUDA_LOOP(t, n)
    {
        size_t plane = (size_t)g.height * g.width;
        size_t img = t / plane, pix = t % plane;
        size_t base = img * g.channels * plane + pix;
        int C = g.channels, pre = (g.size - 1) / 2;
        float s = g.k;
        for (int c = 0; c <= pre && c < C; c++) {
            float v = x[base + c * plane];
            s = __fadd_rn(s, __fmul_rn(a, __fmul_rn(v, v)));
        }
        scale[base] = s;
        for (int c = 1; c < C; c++) {
            if (c + pre < C) {
                float v = x[base + (c + pre) * plane];
                s = __fadd_rn(s, __fmul_rn(a, __fmul_rn(v, v)));
            }
            if (c - 1 - pre >= 0) {
                float v = x[base + (c - 1 - pre) * plane];
                s = __fsub_rn(s, __fmul_rn(a, __fmul_rn(v, v)));
            }
            scale[base + c * plane] = s;
        }
        for (int c = 0; c < C; c++) {
            size_t o = base + c * plane;
            y[o] = __fmul_rn(neg_pow(scale[o], g.beta), x[o]);
        }
    }
}

__device__ static inline float lrn_ratio(const float *dy, const float *y, const float *scale, size_t o)
{
    return __fdiv_rn(__fmul_rn(dy[o], y[o]), scale[o]);
}

__global__ void k_lrn_across_back(size_t n, struct lrn_geom g, float cache_ratio, const float *x, const float *y,
                                  const float *scale, const float *dy, float *dx)
{
    CUDA_LOOP(t, n)
    {
        size_t plane = (size_t)g.height * g.width;
        size_t img = t / plane, pix = t % plane;
        size_t base = img * g.channels * plane + pix;
        int C = g.channels, pre = (g.size - 1) / 2;
        float accum = 0.f;
        for (int c = 0; c < pre && c < C; c++)
            accum = __fadd_rn(accum, lrn_ratio(dy, y, scale, base + c * plane));
        for (int c = 0; c < C; c++) {
            size_t o = base + c * plane;
            if (c + pre < C)
                accum = __fadd_rn(accum, lrn_ratio(dy, y, scale, o + pre * plane));
            float p = neg_pow(scale[o], g.beta);
            float d = __fsub_rn(__fmul_rn(dy[o], p), __fmul_rn(cache_ratio, __fmul_rn(x[o], accum)));
            if (c - pre >= 0)
                accum = __fsub_rn(accum, lrn_ratio(dy, y, scale, o - pre * plane));
            dx[o] = d;
        }
    }
}

static size_t lrn_pixels(const struct lrn_geom *g)
{
    return (size_t)g->num * g->height * g->width;
}

static int g_lrn_across_forward(const struct backend *be, const struct lrn_geom *g, const float *x, float *scale,
                                float *y)
{
    size_t n = lrn_pixels(g);
    float a = g->alpha / (float)g->size;
    CUDA_LAUNCH(be, k_lrn_across, n, n, *g, a, x, scale, y);
    return CUDA_CTX(be)->error;
}

static int g_lrn_across_backward(const struct backend *be, const struct lrn_geom *g, const float *x,
                                 const float *y, const float *scale, const float *dy, float *dx)
{
    size_t n = lrn_pixels(g);
    float cache_ratio = (float)(2. * g->alpha * g->beta / g->size);
    CUDA_LAUNCH(be, k_lrn_across_back, n, n, *g, cache_ratio, x, y, scale, dy, dx);
    return CUDA_CTX(be)->error;
}

/* WITHIN_CHANNEL's AVE pooling: size x size, pad (size-1)/2, stride 1. */

__global__ void k_square(size_t n, const float *x, float *y)
{
    CUDA_LOOP(i, n) y[i] = __fmul_rn(x[i], x[i]);
}

/* Caffe's PowerLayer on the pool output, (1 + alpha * s)^-beta, in its
 * steps (scale, shift, pow), then the product with x. */
__global__ void k_within_out(size_t n, float alpha, float beta, const float *x, const float *scale, float *power,
                             float *y)
{
    CUDA_LOOP(i, n)
    {
        float pw = -beta, p;
        if (__fmul_rn(pw, alpha) == 0.f) {
            p = pw == 0.f ? 1.f : powf(1.f, pw);
        } else {
            p = scale[i];
            if (alpha != 1.f)
                p = __fmul_rn(p, alpha);
            p = __fadd_rn(p, 1.f);
            if (pw != 1.f)
                p = powf(p, pw);
        }
        power[i] = p;
        y[i] = __fmul_rn(x[i], p);
    }
}

/* The pool output's diff: PowerLayer's backward (Caffe's branches) times
 * the product's diff x * dy. */
__global__ void k_within_dpool(size_t n, float alpha, float beta, const float *x, const float *dy,
                               const float *scale, const float *power, float *d_pool)
{
    CUDA_LOOP(i, n)
    {
        float pw = -beta, diff_scale = __fmul_rn(pw, alpha), d;
        if (diff_scale == 0.f || pw == 1.f) {
            d = diff_scale;
        } else if (pw == 2.f) {
            d = __fadd_rn(__fmul_rn(__fmul_rn(diff_scale, alpha), scale[i]), diff_scale);
        } else {
            d = scale[i];
            if (alpha != 1.f)
                d = __fmul_rn(d, alpha);
            d = __fdiv_rn(power[i], __fadd_rn(d, 1.f));
            if (diff_scale != 1.f)
                d = __fmul_rn(d, diff_scale);
        }
        if (diff_scale != 0.f)
            d = __fmul_rn(__fmul_rn(x[i], dy[i]), d);
        d_pool[i] = d;
    }
}

/* The square's and the split's: dx = power * dy + d_sq * (2 x). */
__global__ void k_within_dx(size_t n, const float *x, const float *dy, const float *power, const float *d_sq,
                            float *dx)
{
    CUDA_LOOP(i, n)
    {
        dx[i] = __fadd_rn(__fmul_rn(power[i], dy[i]), __fmul_rn(d_sq[i], __fmul_rn(2.f, x[i])));
    }
}

static void g_lrn_within_forward(const struct backend *be, const struct lrn_geom *g, const float *x, float *work,
                                 float *scale, float *power, float *y)
{
    size_t n = lrn_pixels(g) * g->channels;
    struct pool_geom pg = lrn_within_pool(g);
    CUDA_LAUNCH(be, k_square, n, n, x, work);
    /* The own kernel, as the CPU rounds: LRN is the CPU's op for op. */
    pool_forward(be, &pg, g->num * g->channels, work, scale, NULL, NULL, false);
    CUDA_LAUNCH(be, k_within_out, n, n, g->alpha, g->beta, x, scale, power, y);
}

static void g_lrn_within_backward(const struct backend *be, const struct lrn_geom *g, const float *x,
                                  const float *dy, const float *scale, const float *power, float *work,
                                  float *work2, float *dx)
{
    size_t n = lrn_pixels(g) * g->channels;
    struct pool_geom pg = lrn_within_pool(g);
    CUDA_LAUNCH(be, k_within_dpool, n, n, g->alpha, g->beta, x, dy, scale, power, work2);
    pool_backward(be, &pg, g->num * g->channels, work2, NULL, NULL, work);
    CUDA_LAUNCH(be, k_within_dx, n, n, x, dy, power, work, dx);
}

/* ---------------------------------------------------------------- crop */

#define CROP_MAX_AXES 32
struct crop_geom {
    int n;
    int big[CROP_MAX_AXES], small[CROP_MAX_AXES], off[CROP_MAX_AXES];
};

/* The offset in big of small's element i. */
__device__ static inline size_t crop_at(const struct crop_geom &g, size_t i)
{
    size_t off = 0, stride = 1;
    for (int d = g.n - 1; d >= 0; d--) {
        size_t k = i % (size_t)g.small[d];
        i /= (size_t)g.small[d];
        off += (k + (size_t)g.off[d]) * stride;
        stride *= (size_t)g.big[d];
    }
    return off;
}

__global__ void k_crop_gather(size_t n, struct crop_geom g, const float *big, float *small)
{
    CUDA_LOOP(i, n) small[i] = big[crop_at(g, i)];
}

__global__ void k_crop_scatter(size_t n, struct crop_geom g, const float *small, float *big)
{
    CUDA_LOOP(i, n) big[crop_at(g, i)] = small[i];
}

static bool crop_geom_of(const struct backend *be, int n, const int *big, const int *small, const int *off,
                         struct crop_geom *g, size_t *count)
{
    if (n < 0 || n > CROP_MAX_AXES) {
        cuda_fail(be, CUDA_ERR_UNSUPPORTED, "crop over %d axes (0..%d)", n, CROP_MAX_AXES);
        return false;
    }
    memset(g, 0, sizeof *g);
    g->n = n;
    *count = 1;
    for (int d = 0; d < n; d++) {
        g->big[d] = big[d];
        g->small[d] = small[d];
        g->off[d] = off[d];
        *count *= (size_t)small[d];
    }
    return true;
}

static void g_crop_gather(const struct backend *be, int n, const int *big_shape, const int *small_shape,
                          const int *offsets, const float *big, float *small)
{
    struct crop_geom g;
    size_t count;
    if (crop_geom_of(be, n, big_shape, small_shape, offsets, &g, &count))
        CUDA_LAUNCH(be, k_crop_gather, count, count, g, big, small);
}

static void g_crop_scatter(const struct backend *be, int n, const int *big_shape, const int *small_shape,
                           const int *offsets, const float *small, float *big)
{
    struct crop_geom g;
    size_t count;
    if (crop_geom_of(be, n, big_shape, small_shape, offsets, &g, &count))
        CUDA_LAUNCH(be, k_crop_scatter, count, count, g, small, big);
}

static struct vision_ops table;

extern "C" const struct vision_ops *cuda_vision_ops(void)
{
    cuda_vision_conv_entries(&table);
    table.pool_forward = g_pool_forward;
    table.pool_backward = g_pool_backward;
    table.lrn_across_forward = g_lrn_across_forward;
    table.lrn_across_backward = g_lrn_across_backward;
    table.lrn_within_forward = g_lrn_within_forward;
    table.lrn_within_backward = g_lrn_within_backward;
    table.crop_gather = g_crop_gather;
    table.crop_scatter = g_crop_scatter;
    return &table;
}
