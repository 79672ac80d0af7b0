/* Pooling (MAX, AVE) over 4-D blobs, with Caffe's rounding, padding and
 * divisor rules; the kernels here serve SPP and LRN as well. */
#include "layers/vision.h"

#include "cpu/threads.h"

#include <float.h>
#include <math.h>
#ifdef __SSE2__
#include <immintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

#define POOL_MAX CAFFE__POOLING_PARAMETER__POOL_METHOD__MAX
#define POOL_AVE CAFFE__POOLING_PARAMETER__POOL_METHOD__AVE
#define POOL_STOCHASTIC CAFFE__POOLING_PARAMETER__POOL_METHOD__STOCHASTIC

static int pooled_extent(int in, int pad, int kernel, int stride, bool ceil_mode)
{
    float span = (float)(in + 2 * pad - kernel) / (float)stride;
    return (int)(ceil_mode ? ceilf(span) : floorf(span)) + 1;
}

int pool_geom_shape(struct pool_geom *g, bool ceil_mode)
{
    g->pooled_h = pooled_extent(g->height, g->pad_h, g->kernel_h, g->stride_h, ceil_mode);
    g->pooled_w = pooled_extent(g->width, g->pad_w, g->kernel_w, g->stride_w, ceil_mode);
    if (g->pad_h || g->pad_w) {
        /* The last window must start inside the image or its top/left padding. */
        if ((g->pooled_h - 1) * g->stride_h >= g->height + g->pad_h)
            g->pooled_h--;
        if ((g->pooled_w - 1) * g->stride_w >= g->width + g->pad_w)
            g->pooled_w--;
    }
    if (g->pooled_h <= 0 || g->pooled_w <= 0)
        return err_set(CREMA_ERR_SHAPE,
                       "pooling a %dx%d input with kernel %dx%d, pad %dx%d, stride %dx%d gives "
                       "an empty %dx%d output",
                       g->height, g->width, g->kernel_h, g->kernel_w, g->pad_h, g->pad_w,
                       g->stride_h, g->stride_w, g->pooled_h, g->pooled_w);
    return CREMA_OK;
}

/* Output columns [*lo, *hi) whose windows lie wholly inside a row of
 * `width`: pw * stride - pad >= 0 and pw * stride - pad + kernel <= width. */
static void pool_inner_cols(int kernel, int stride, int pad, int width, int pooled, int *lo,
                            int *hi)
{
    int a = (pad + stride - 1) / stride;
    int b = width + pad - kernel < 0 ? 0 : (width + pad - kernel) / stride + 1;
    a = a < pooled ? a : pooled;
    b = b < pooled ? b : pooled;
    *lo = a;
    *hi = b > a ? b : a;
}

#define POOL_CHUNK 64

/* One max-pooling comparison: a strict > keeps the first maximum, as
 * Caffe; the update selects rather than branches (the winner is
 * data-dependent, so branches mispredict). */
#define POOL_MAX_STEP(v, idx, best, arg) \
    do {                                 \
        float v_ = (v);                  \
        bool more_ = v_ > (best);        \
        (arg) = more_ ? (idx) : (arg);   \
        (best) = more_ ? v_ : (best);    \
    } while (0)

/* Interior outputs [pw0, pw0 + n) of one output row, four at a time in
 * SSE lanes: the loops run window row, window column, output, so each
 * output still sees its inputs in Caffe's order (row-major within the
 * window), and the four compare chains are independent and branch-free. */
static void pool_max_run(const struct pool_geom *g, const float *bottom, int hs, int he, int pw0,
                         int n, float *top, int *imask, float *fmask)
{
    const int W = g->width, S = g->stride_w, KW = g->kernel_w;
    int j = 0;
#ifdef __SSE2__
    /* _mm_max_ps(v, b) is v > b ? v : b, the same strict comparison. */
    for (; n >= 4 && j < n; j += 4) {
        /* The last block overlaps the one before when n is not a multiple
         * of 4 (recomputing the same outputs). */
        if (j + 4 > n)
            j = n - 4;
        __m128 best = _mm_set1_ps(-FLT_MAX);
        __m128i arg = _mm_set1_epi32(-1);
        for (int h = hs; h < he; h++) {
            int base = h * W + (pw0 + j) * S - g->pad_w;
            __m128i idx = _mm_setr_epi32(base, base + S, base + 2 * S, base + 3 * S);
            for (int kw = 0; kw < KW; kw++, idx = _mm_add_epi32(idx, _mm_set1_epi32(1))) {
                const float *src = bottom + base + kw;
                __m128 v;
                if (S == 1)
                    v = _mm_loadu_ps(src);
                else if (S == 2) /* src[0..3], src[3..6]: no read past src[6] */
                    v = _mm_shuffle_ps(_mm_loadu_ps(src), _mm_loadu_ps(src + 3),
                                       _MM_SHUFFLE(3, 1, 2, 0));
                else
                    v = _mm_setr_ps(src[0], src[S], src[2 * S], src[3 * S]);
                __m128i more = _mm_castps_si128(_mm_cmpgt_ps(v, best));
                arg = _mm_or_si128(_mm_and_si128(more, idx), _mm_andnot_si128(more, arg));
                best = _mm_max_ps(v, best);
            }
        }
        _mm_storeu_ps(top + j, best);
        if (imask)
            _mm_storeu_si128((__m128i *)(imask + j), arg);
        if (fmask)
            _mm_storeu_ps(fmask + j, _mm_cvtepi32_ps(arg));
    }
#endif
    for (; j < n; j++) {
        float best = -FLT_MAX;
        int arg = -1;
        for (int h = hs; h < he; h++) {
            int base = h * W + (pw0 + j) * S - g->pad_w;
            for (int kw = 0; kw < KW; kw++)
                POOL_MAX_STEP(bottom[base + kw], base + kw, best, arg);
        }
        top[j] = best;
        if (imask)
            imask[j] = arg;
        if (fmask)
            fmask[j] = (float)arg;
    }
}

/* The same for AVE: sums in Caffe's order, then one division. */
static void pool_ave_run(const struct pool_geom *g, const float *bottom, int hs, int he, int pw0,
                         int n, float pool_size, float *top)
{
    const int W = g->width, S = g->stride_w;
    float sum[POOL_CHUNK];
    for (int j = 0; j < n; j++)
        sum[j] = 0.f;
    for (int h = hs; h < he; h++) {
        for (int kw = 0; kw < g->kernel_w; kw++) {
            const float *src = bottom + h * W + pw0 * S - g->pad_w + kw;
            for (int j = 0; j < n; j++)
                sum[j] += src[j * S];
        }
    }
    for (int j = 0; j < n; j++)
        top[j] = sum[j] / pool_size;
}

/* One output whose window may be clipped by the image's edges. */
static void pool_one(const struct pool_geom *g, const float *bottom, int ph, int pw, float *top,
                     int *imask, float *fmask)
{
    const int H = g->height, W = g->width;
    int hs = ph * g->stride_h - g->pad_h, ws = pw * g->stride_w - g->pad_w;
    if (g->method == POOL_MAX) {
        int he = hs + g->kernel_h < H ? hs + g->kernel_h : H;
        int we = ws + g->kernel_w < W ? ws + g->kernel_w : W;
        hs = hs > 0 ? hs : 0;
        ws = ws > 0 ? ws : 0;
        float best = -FLT_MAX;
        int arg = -1;
        for (int h = hs; h < he; h++) {
            for (int w = ws; w < we; w++)
                POOL_MAX_STEP(bottom[h * W + w], h * W + w, best, arg);
        }
        *top = best;
        if (imask)
            *imask = arg;
        if (fmask)
            *fmask = (float)arg;
        return;
    }
    /* The divisor counts padding but not what lies beyond it. */
    int he = hs + g->kernel_h < H + g->pad_h ? hs + g->kernel_h : H + g->pad_h;
    int we = ws + g->kernel_w < W + g->pad_w ? ws + g->kernel_w : W + g->pad_w;
    int pool_size = (he - hs) * (we - ws);
    hs = hs > 0 ? hs : 0;
    ws = ws > 0 ? ws : 0;
    he = he < H ? he : H;
    we = we < W ? we : W;
    float sum = 0.f;
    for (int h = hs; h < he; h++)
        for (int w = ws; w < we; w++)
            sum += bottom[h * W + w];
    *top = sum / (float)pool_size;
}

/* The planes of one pooling call; ranges of planes go to the threads. */
struct pool_job {
    const struct pool_geom *g;
    const float *bottom, *top_diff, *fmask_in;
    const int *imask_in;
    float *top, *fmask, *bottom_diff;
    int *imask;
};

static int pool_forward_planes(void *ctx, size_t p0, size_t p1)
{
    const struct pool_job *job = ctx;
    const struct pool_geom *g = job->g;
    float *top = job->top, *fmask = job->fmask;
    int *imask = job->imask;
    const int H = g->height, W = g->width, PH = g->pooled_h, PW = g->pooled_w;
    const size_t in_plane = (size_t)H * W, out_plane = (size_t)PH * PW;
    int lo, hi;
    pool_inner_cols(g->kernel_w, g->stride_w, g->pad_w, W, PW, &lo, &hi);
    const float *bottom = job->bottom + p0 * in_plane;
    for (size_t p = p0; p < p1; p++, bottom += in_plane) {
        for (int ph = 0; ph < PH; ph++) {
            size_t o = p * out_plane + (size_t)ph * PW;
            float *t = top + o;
            int *im = imask ? imask + o : NULL;
            float *fm = fmask ? fmask + o : NULL;
            for (int pw = 0; pw < PW; pw++) {
                if (pw == lo && hi > lo) {
                    int hs = ph * g->stride_h - g->pad_h;
                    if (g->method == POOL_MAX) {
                        int he = hs + g->kernel_h < H ? hs + g->kernel_h : H;
                        hs = hs > 0 ? hs : 0;
                        for (int j = lo; j < hi; j += POOL_CHUNK) {
                            int n = hi - j < POOL_CHUNK ? hi - j : POOL_CHUNK;
                            pool_max_run(g, bottom, hs, he, j, n, t + j, im ? im + j : NULL,
                                         fm ? fm + j : NULL);
                        }
                    } else {
                        int he = hs + g->kernel_h < H + g->pad_h ? hs + g->kernel_h : H + g->pad_h;
                        float pool_size = (float)((he - hs) * g->kernel_w);
                        hs = hs > 0 ? hs : 0;
                        he = he < H ? he : H;
                        for (int j = lo; j < hi; j += POOL_CHUNK) {
                            int n = hi - j < POOL_CHUNK ? hi - j : POOL_CHUNK;
                            pool_ave_run(g, bottom, hs, he, j, n, pool_size, t + j);
                        }
                    }
                    pw = hi - 1;
                    continue;
                }
                pool_one(g, bottom, ph, pw, t + pw, im ? im + pw : NULL, fm ? fm + pw : NULL);
            }
        }
    }
    return 0;
}

void pool_forward(const struct pool_geom *g, int planes, const float *bottom, float *top,
                  int *imask, float *fmask)
{
    struct pool_job j = { .g = g, .bottom = bottom, .top = top, .imask = imask, .fmask = fmask };
    size_t work = (size_t)g->pooled_h * g->pooled_w * g->kernel_h * g->kernel_w;
    cpu_parallel_for((size_t)planes, cpu_grain(work), pool_forward_planes, &j);
}

static int pool_backward_planes(void *ctx, size_t p0, size_t p1)
{
    const struct pool_job *job = ctx;
    const struct pool_geom *g = job->g;
    const int *imask = job->imask_in;
    const float *fmask = job->fmask_in;
    const int H = g->height, W = g->width, PH = g->pooled_h, PW = g->pooled_w;
    const size_t in_plane = (size_t)H * W, out_plane = (size_t)PH * PW;
    float *bottom_diff = job->bottom_diff + p0 * in_plane;
    const float *top_diff = job->top_diff + p0 * out_plane;
    memset(bottom_diff, 0, in_plane * (p1 - p0) * sizeof *bottom_diff);
    for (size_t p = p0; p < p1; p++, bottom_diff += in_plane, top_diff += out_plane) {
        for (int ph = 0; ph < PH; ph++) {
            for (int pw = 0; pw < PW; pw++) {
                int o = ph * PW + pw;
                if (g->method == POOL_MAX) {
                    long idx = imask ? imask[p * out_plane + o]
                                     : (long)fmask[p * out_plane + o];
                    /* -1: the window held nothing above -FLT_MAX (NaNs); Caffe
                     * would write out of bounds, we drop the gradient. */
                    if (idx >= 0 && (size_t)idx < in_plane)
                        bottom_diff[idx] += top_diff[o];
                    continue;
                }
                int hs = ph * g->stride_h - g->pad_h, ws = pw * g->stride_w - g->pad_w;
                int he = hs + g->kernel_h < H + g->pad_h ? hs + g->kernel_h : H + g->pad_h;
                int we = ws + g->kernel_w < W + g->pad_w ? ws + g->kernel_w : W + g->pad_w;
                int pool_size = (he - hs) * (we - ws);
                hs = hs > 0 ? hs : 0;
                ws = ws > 0 ? ws : 0;
                he = he < H ? he : H;
                we = we < W ? we : W;
                float share = top_diff[o] / (float)pool_size;
                for (int h = hs; h < he; h++)
                    for (int w = ws; w < we; w++)
                        bottom_diff[h * W + w] += share;
            }
        }
    }
    return 0;
}

void pool_backward(const struct pool_geom *g, int planes, const float *top_diff, const int *imask,
                   const float *fmask, float *bottom_diff)
{
    struct pool_job j = { .g = g, .top_diff = top_diff, .imask_in = imask, .fmask_in = fmask,
                          .bottom_diff = bottom_diff };
    size_t work = (size_t)g->height * g->width + (size_t)g->pooled_h * g->pooled_w;
    cpu_parallel_for((size_t)planes, cpu_grain(work), pool_backward_planes, &j);
}

struct pooling {
    struct pool_geom g;
    bool global, ceil_mode;
    int *mask; /* argmax when there is no mask top */
    size_t mask_cap;
};

static int pooling_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__PoolingParameter def = CAFFE__POOLING_PARAMETER__INIT;
    const Caffe__PoolingParameter *pp = l->param->pooling_param ? l->param->pooling_param : &def;
    struct pooling *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = s;
    struct pool_geom *g = &s->g;
    g->method = pp->pool;
    if (pp->pool == POOL_STOCHASTIC)
        return err_set(CREMA_ERR_UNSUPPORTED,
                       "pooling_param.pool: STOCHASTIC pooling is GPU-only in Caffe (its CPU "
                       "Forward aborts with NOT_IMPLEMENTED); crema's CPU backend has none");
    if (pp->pool != POOL_MAX && pp->pool != POOL_AVE)
        return err_set(CREMA_ERR_INVALID, "pooling_param.pool: unknown method %d", (int)pp->pool);
    if (l->n_top > 1 && pp->pool != POOL_MAX)
        return err_set(CREMA_ERR_INVALID,
                       "only MAX pooling has a second (mask) top; this layer has %d tops", l->n_top);
    s->global = pp->has_global_pooling && pp->global_pooling;
    s->ceil_mode = pp->round_mode == CAFFE__POOLING_PARAMETER__ROUND_MODE__CEIL;
    if (s->global) {
        if (pp->has_kernel_size || pp->has_kernel_h || pp->has_kernel_w)
            return err_set(CREMA_ERR_INVALID,
                           "pooling_param: with global_pooling the kernel size cannot be given");
    } else {
        if (pp->has_kernel_size == (pp->has_kernel_h || pp->has_kernel_w))
            return err_set(CREMA_ERR_INVALID,
                           "pooling_param: give kernel_size or kernel_h and kernel_w, not both "
                           "and not neither");
        if (!pp->has_kernel_size && !(pp->has_kernel_h && pp->has_kernel_w))
            return err_set(CREMA_ERR_INVALID,
                           "pooling_param: a non-square kernel needs both kernel_h and kernel_w");
        g->kernel_h = (int)(pp->has_kernel_size ? pp->kernel_size : pp->kernel_h);
        g->kernel_w = (int)(pp->has_kernel_size ? pp->kernel_size : pp->kernel_w);
        if (g->kernel_h <= 0 || g->kernel_w <= 0)
            return err_set(CREMA_ERR_INVALID, "pooling_param: kernel size %dx%d must be nonzero",
                           g->kernel_h, g->kernel_w);
    }
    if (pp->has_pad && (pp->has_pad_h || pp->has_pad_w))
        return err_set(CREMA_ERR_INVALID, "pooling_param: give pad or pad_h and pad_w, not both");
    if (!pp->has_pad && pp->has_pad_h != pp->has_pad_w)
        return err_set(CREMA_ERR_INVALID, "pooling_param: pad_h and pad_w must be given together");
    if (pp->has_stride && (pp->has_stride_h || pp->has_stride_w))
        return err_set(CREMA_ERR_INVALID,
                       "pooling_param: give stride or stride_h and stride_w, not both");
    if (!pp->has_stride && pp->has_stride_h != pp->has_stride_w)
        return err_set(CREMA_ERR_INVALID,
                       "pooling_param: stride_h and stride_w must be given together");
    g->pad_h = (int)(pp->has_pad_h ? pp->pad_h : pp->pad);
    g->pad_w = (int)(pp->has_pad_w ? pp->pad_w : pp->pad);
    g->stride_h = (int)(pp->has_stride_h ? pp->stride_h : pp->stride);
    g->stride_w = (int)(pp->has_stride_w ? pp->stride_w : pp->stride);
    if (g->stride_h <= 0 || g->stride_w <= 0)
        return err_set(CREMA_ERR_INVALID, "pooling_param: stride %dx%d must be nonzero",
                       g->stride_h, g->stride_w);
    if (g->pad_h < 0 || g->pad_w < 0 || g->kernel_h < 0 || g->kernel_w < 0)
        return err_set(CREMA_ERR_INVALID, "pooling_param: sizes out of range");
    if (s->global && (g->pad_h || g->pad_w || g->stride_h != 1 || g->stride_w != 1))
        return err_set(CREMA_ERR_INVALID,
                       "pooling_param: with global_pooling only pad 0 and stride 1 are allowed");
    if (!s->global && (g->pad_h >= g->kernel_h || g->pad_w >= g->kernel_w))
        return err_set(CREMA_ERR_INVALID,
                       "pooling_param: pad %dx%d must be smaller than the kernel %dx%d",
                       g->pad_h, g->pad_w, g->kernel_h, g->kernel_w);
    return CREMA_OK;
}

static int pooling_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct pooling *s = l->priv;
    struct pool_geom *g = &s->g;
    if (bottom[0]->num_axes != 4)
        return err_set(CREMA_ERR_SHAPE,
                       "pooling needs a 4-axis input (num, channels, height, width), got %d axes",
                       bottom[0]->num_axes);
    g->height = bottom[0]->shape[2];
    g->width = bottom[0]->shape[3];
    if (s->global) {
        g->kernel_h = g->height;
        g->kernel_w = g->width;
    }
    int rc = pool_geom_shape(g, s->ceil_mode);
    if (rc)
        return rc;
    rc = tensor_reshape4(top[0], bottom[0]->shape[0], bottom[0]->shape[1], g->pooled_h, g->pooled_w);
    if (!rc && l->n_top > 1)
        rc = tensor_reshape_like(top[1], top[0]);
    if (rc)
        return rc;
    if (g->method == POOL_MAX && l->n_top == 1 && s->mask_cap < top[0]->count) {
        free(s->mask);
        s->mask = malloc(top[0]->count * sizeof *s->mask);
        if (!s->mask) {
            s->mask_cap = 0;
            return err_set(CREMA_ERR_NOMEM, "out of memory for the pooling mask");
        }
        s->mask_cap = top[0]->count;
    }
    return CREMA_OK;
}

static int pooling_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct pooling *s = l->priv;
    int planes = bottom[0]->shape[0] * bottom[0]->shape[1];
    float *fmask = l->n_top > 1 ? tensor_data(top[1]) : NULL;
    pool_forward(&s->g, planes, tensor_data(bottom[0]), tensor_data(top[0]), fmask ? NULL : s->mask,
                 fmask);
    return CREMA_OK;
}

static int pooling_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                            struct tensor **bottom)
{
    struct pooling *s = l->priv;
    if (!propagate_down[0])
        return CREMA_OK;
    int planes = bottom[0]->shape[0] * bottom[0]->shape[1];
    const float *fmask = l->n_top > 1 ? tensor_data(top[1]) : NULL;
    pool_backward(&s->g, planes, tensor_diff(top[0]), fmask ? NULL : s->mask, fmask,
                  tensor_diff(bottom[0]));
    return CREMA_OK;
}

static void pooling_destroy(struct layer *l)
{
    struct pooling *s = l->priv;
    if (s)
        free(s->mask);
    free(s);
    l->priv = NULL;
}

const struct layer_kind pooling_layer = {
    .type = "Pooling",
    .min_bottoms = 1, .max_bottoms = 1,
    .min_tops = 1, .max_tops = 2,
    .setup = pooling_setup,
    .reshape = pooling_reshape,
    .forward = pooling_forward,
    .backward = pooling_backward,
    .destroy = pooling_destroy,
};
