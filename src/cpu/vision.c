/* The vision family on the CPU: pooling (MAX, AVE) with Caffe's rounding,
 * padding and divisor rules, LRN across and within channels, the
 * convolution (cpu/conv.c: 1-3 spatial axes; more go through the layer's
 * im2col + gemm) and its bias, and Crop's window copies; threaded with
 * cpu/threads.h. */
#include "cpu/backend_cpu.h"
#include "cpu/conv.h"
#include "cpu/math.h"
#include "cpu/threads.h"
#include "cpu/ukernel.h"
#include "core/tensor.h"
#include "util/err.h"

#include <float.h>
#include <math.h>
#ifdef __SSE2__
#include <immintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- pooling */

/* Output columns [*lo, *hi) whose windows lie wholly inside a row of
 * `width`: pw * stride - pad >= 0 and pw * stride - pad + kernel <= width. */
static void pool_inner_cols(int kernel, int stride, int pad, int width, int pooled, int *lo, int *hi)
{
    int a = (pad + stride - 1) / stride;
    int b = width + pad - kernel < 0 ? 0 : (width + pad - kernel) / stride + 1;
    a = a < pooled ? a : pooled;
    b = b < pooled ? b : pooled;
    *lo = a;
    *hi = b > a ? b : a;
}

#define POOL_CHUNK 64

/* AVE's window along one axis, from its start s = p * stride - pad: Caffe
 * divides by its length clipped to the padded extent (padding counts, what
 * lies beyond it does not) and sums over it clipped to the image, [*lo, *hi). */
static int pool_ave_span(int s, int kernel, int extent, int pad, int *lo, int *hi)
{
    int e = s + kernel < extent + pad ? s + kernel : extent + pad;
    *lo = s > 0 ? s : 0;
    *hi = e < extent ? e : extent;
    return e - s;
}

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
static void pool_max_run(const struct pool_geom *g, const float *bottom, int hs, int he, int pw0, int n,
                         float *top, int *imask, float *fmask)
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
                    v = _mm_shuffle_ps(_mm_loadu_ps(src), _mm_loadu_ps(src + 3), _MM_SHUFFLE(3, 1, 2, 0));
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

#if defined(__x86_64__) && defined(__GNUC__)
#define POOL_AVX2 1
/* AVX2 (where the CPU's convolution kernels are chosen, cpu/ukernel.h;
 * CREMA_CPU_ISA=blas keeps the SSE code above): eight outputs to a
 * vector, two vectors at once, so that two compare chains overlap; the
 * same comparisons and sums, in the same order, as the SSE and scalar
 * code. Horizontal strides 1 and 2. */

/* Tap kw of eight outputs' windows starting at src, src + S, ...: for
 * stride 2 the even floats of src[0..14] from two loads (the second at
 * src + 7, so nothing past the last tap is read), in the lane order of
 * outputs 0 1 4 5 2 3 6 7 (pool_unscramble puts them right). */
__attribute__((target("avx2"), always_inline)) static inline __m256 pool_taps8(const float *src, int S)
{
    if (S == 1)
        return _mm256_loadu_ps(src);
    return _mm256_shuffle_ps(_mm256_loadu_ps(src), _mm256_loadu_ps(src + 7), _MM_SHUFFLE(3, 1, 2, 0));
}

__attribute__((target("avx2"), always_inline)) static inline __m256 pool_unscramble(__m256 v, int S)
{
    if (S == 1)
        return v;
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), _MM_SHUFFLE(3, 1, 2, 0)));
}

/* The input offsets of the eight outputs' windows, in pool_taps8's lane order. */
__attribute__((target("avx2"), always_inline)) static inline __m256i pool_lanes8(int S)
{
    return S == 1 ? _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7) : _mm256_setr_epi32(0, 2, 8, 10, 4, 6, 12, 14);
}

/* Outputs [pw0, pw0 + n), n >= 8, of one output row: blocks of eight,
 * the last one overlapping the one before when 8 does not divide n. */
__attribute__((target("avx2"))) static void pool_max_run_avx2(const struct pool_geom *g, const float *bottom, int hs,
                                                              int he, int pw0, int n, float *top, int *imask,
                                                              float *fmask)
{
    const int W = g->width, S = g->stride_w, KW = g->kernel_w;
    const __m256i lanes = pool_lanes8(S), one = _mm256_set1_epi32(1);
    for (int j = 0; j < n; j += 16) {
        int j0 = j + 8 > n ? n - 8 : j, j1 = j + 16 > n ? n - 8 : j + 8;
        __m256 b0 = _mm256_set1_ps(-FLT_MAX), b1 = b0;
        __m256 a0 = _mm256_castsi256_ps(_mm256_set1_epi32(-1)), a1 = a0;
        for (int h = hs; h < he; h++) {
            int r0 = h * W + (pw0 + j0) * S - g->pad_w, r1 = h * W + (pw0 + j1) * S - g->pad_w;
            __m256i i0 = _mm256_add_epi32(_mm256_set1_epi32(r0), lanes);
            __m256i i1 = _mm256_add_epi32(_mm256_set1_epi32(r1), lanes);
            for (int kw = 0; kw < KW; kw++) {
                __m256 v0 = pool_taps8(bottom + r0 + kw, S), v1 = pool_taps8(bottom + r1 + kw, S);
                /* strict >: the first maximum stays; NaN never wins */
                __m256 m0 = _mm256_cmp_ps(v0, b0, _CMP_GT_OQ), m1 = _mm256_cmp_ps(v1, b1, _CMP_GT_OQ);
                a0 = _mm256_blendv_ps(a0, _mm256_castsi256_ps(i0), m0);
                a1 = _mm256_blendv_ps(a1, _mm256_castsi256_ps(i1), m1);
                b0 = _mm256_max_ps(v0, b0);
                b1 = _mm256_max_ps(v1, b1);
                i0 = _mm256_add_epi32(i0, one);
                i1 = _mm256_add_epi32(i1, one);
            }
        }
        b0 = pool_unscramble(b0, S);
        a0 = pool_unscramble(a0, S);
        b1 = pool_unscramble(b1, S);
        a1 = pool_unscramble(a1, S);
        _mm256_storeu_ps(top + j0, b0);
        _mm256_storeu_ps(top + j1, b1);
        if (imask) {
            _mm256_storeu_ps((float *)(imask + j0), a0);
            _mm256_storeu_ps((float *)(imask + j1), a1);
        }
        if (fmask) {
            _mm256_storeu_ps(fmask + j0, _mm256_cvtepi32_ps(_mm256_castps_si256(a0)));
            _mm256_storeu_ps(fmask + j1, _mm256_cvtepi32_ps(_mm256_castps_si256(a1)));
        }
    }
}

/* The same for AVE: each output's sum in Caffe's order from 0, then one division. */
__attribute__((target("avx2"))) static void pool_ave_run_avx2(const struct pool_geom *g, const float *bottom, int hs,
                                                              int he, int pw0, int n, float pool_size, float *top)
{
    const int W = g->width, S = g->stride_w, KW = g->kernel_w;
    const __m256 size = _mm256_set1_ps(pool_size);
    for (int j = 0; j < n; j += 16) {
        int j0 = j + 8 > n ? n - 8 : j, j1 = j + 16 > n ? n - 8 : j + 8;
        __m256 s0 = _mm256_setzero_ps(), s1 = s0;
        for (int h = hs; h < he; h++) {
            const float *r0 = bottom + h * W + (pw0 + j0) * S - g->pad_w;
            const float *r1 = bottom + h * W + (pw0 + j1) * S - g->pad_w;
            for (int kw = 0; kw < KW; kw++) {
                s0 = _mm256_add_ps(s0, pool_taps8(r0 + kw, S));
                s1 = _mm256_add_ps(s1, pool_taps8(r1 + kw, S));
            }
        }
        _mm256_storeu_ps(top + j0, _mm256_div_ps(pool_unscramble(s0, S), size));
        _mm256_storeu_ps(top + j1, _mm256_div_ps(pool_unscramble(s1, S), size));
    }
}

/* AVE on planes whose output rows fit one vector (at most eight outputs,
 * horizontal strides 1 and 2: CIFAR10-quick's pool2 and pool3, where the
 * interior runs are too short for the code above and most outputs are
 * clipped ones). The plane goes into a scratch whose padding and whatever
 * lies past a row's end are +0, so every output of a row, interior or
 * clipped, is one lane of the same code: a clipped tap adds +0, which
 * leaves a sum as it was (a sum that starts at +0 is never -0), so each
 * output is still Caffe's sum in Caffe's order; each lane divides by its
 * own window's size. The gradient runs the same way: each output's share
 * is added into a zero-padded scratch (a row restarts from zero where a
 * plane first reaches it, marked in `seen`) and the image part is copied
 * out. MAX's forward (LeNet's pool2, CaffeNet's pool5) runs on the same
 * planes over a scratch padded with -inf, which never wins. */
#define POOL_NARROW_SCRATCH 4096

/* The scratch's row length, or 0 where the plane does not qualify. */
static int pool_narrow_width(const struct pool_geom *g)
{
    if ((g->method != VISION_POOL_AVE && g->method != VISION_POOL_MAX) || g->pooled_w > 8 ||
        (g->stride_w != 1 && g->stride_w != 2) || g->kernel_w > 8)
        return 0;
    /* every float a row's outputs touch lies in its first 24 (the last:
     * 7 * 2 + 7), which the gradient holds in three vectors */
    long wp = (long)g->pad_w + g->width;
    wp = wp > 24 ? (wp + 7) / 8 * 8 : 24; /* rows on 32-byte boundaries */
    return wp * g->height <= POOL_NARROW_SCRATCH ? (int)wp : 0;
}

/* Window widths of a row's outputs, a lane each; 0 past the row. */
static void pool_narrow_widths(const struct pool_geom *g, int w[8])
{
    for (int j = 0; j < 8; j++) {
        int lo, hi;
        w[j] = j < g->pooled_w ? pool_ave_span(j * g->stride_w - g->pad_w, g->kernel_w, g->width, g->pad_w, &lo, &hi)
                               : 0;
    }
}

/* Each lane's divisor for output row ph, Caffe's int window size (1 past
 * the row); the clipped window rows [*hs, *he). */
__attribute__((target("avx2"), always_inline)) static inline __m256 pool_narrow_sizes(const struct pool_geom *g,
                                                                                    __m256i wspan, int ph, int *hs,
                                                                                    int *he)
{
    int span = pool_ave_span(ph * g->stride_h - g->pad_h, g->kernel_h, g->height, g->pad_h, hs, he);
    __m256i size = _mm256_mullo_epi32(_mm256_set1_epi32(span), wspan);
    __m256i none = _mm256_cmpeq_epi32(wspan, _mm256_setzero_si256());
    return _mm256_cvtepi32_ps(_mm256_blendv_epi8(size, _mm256_set1_epi32(1), none));
}

/* n floats, without a call for the few of a narrow row */
__attribute__((target("avx2"), always_inline)) static inline void pool_copy(float *dst, const float *src, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_loadu_ps(src + i));
    for (; i < n; i++)
        dst[i] = src[i];
}

/* The plane into the scratch; the padding around stays as the caller set
 * it (+0 for AVE, -inf for MAX). */
__attribute__((target("avx2"))) static void pool_narrow_fill(const struct pool_geom *g, int wp, const float *bottom,
                                                             float *scratch)
{
    for (int h = 0; h < g->height; h++)
        pool_copy(scratch + (size_t)h * wp + g->pad_w, bottom + (size_t)h * g->width, g->width);
}

/* The outputs of a plane that pool_narrow_fill put in the scratch. */
__attribute__((target("avx2"))) static void pool_ave_narrow_avx2(const struct pool_geom *g, int wp, const int widths[8],
                                                                 const float *scratch, float *top)
{
    const __m256i wspan = _mm256_loadu_si256((const __m256i *)widths);
    const int S = g->stride_w, KW = g->kernel_w, PH = g->pooled_h, PW = g->pooled_w;
    for (int ph = 0; ph < PH; ph++) {
        int hs, he;
        __m256 size = pool_narrow_sizes(g, wspan, ph, &hs, &he);
        __m256 sum = _mm256_setzero_ps();
        for (int h = hs; h < he; h++)
            for (int kw = 0; kw < KW; kw++)
                sum = _mm256_add_ps(sum, pool_taps8(scratch + (size_t)h * wp + kw, S));
        __m256 y = _mm256_div_ps(pool_unscramble(sum, S), size);
        if ((PH - ph) * PW >= 8) { /* lanes past the row land on rows still to come */
            _mm256_storeu_ps(top + (size_t)ph * PW, y);
        } else {
            float out[8];
            _mm256_storeu_ps(out, y);
            pool_copy(top + (size_t)ph * PW, out, PW);
        }
    }
}

/* MAX over a plane that pool_narrow_fill put in a scratch of -inf: every
 * output of a row one lane, each lane Caffe's scan of its clipped window
 * (row by row, left to right, strict >, from -FLT_MAX and index -1); a tap
 * in the padding or past the row is -inf and never wins, as NaN does not.
 * Indices count in the plane, as Caffe's mask. */
__attribute__((target("avx2"))) static void pool_max_narrow_avx2(const struct pool_geom *g, int wp,
                                                                 const float *scratch, float *top, int *imask,
                                                                 float *fmask)
{
    const int H = g->height, W = g->width, S = g->stride_w, KW = g->kernel_w, PH = g->pooled_h, PW = g->pooled_w;
    const __m256i lanes = pool_lanes8(S), one = _mm256_set1_epi32(1);
    for (int ph = 0; ph < PH; ph++) {
        int hs = ph * g->stride_h - g->pad_h;
        int he = hs + g->kernel_h < H ? hs + g->kernel_h : H;
        hs = hs > 0 ? hs : 0;
        __m256 b = _mm256_set1_ps(-FLT_MAX), a = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
        for (int h = hs; h < he; h++) {
            /* lane pw's tap kw: input column pw * S - pad_w + kw, scratch
             * column pw * S + kw */
            __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(h * W - g->pad_w), lanes);
            const float *row = scratch + (size_t)h * wp;
            for (int kw = 0; kw < KW; kw++) {
                __m256 v = pool_taps8(row + kw, S);
                a = _mm256_blendv_ps(a, _mm256_castsi256_ps(idx), _mm256_cmp_ps(v, b, _CMP_GT_OQ));
                b = _mm256_max_ps(v, b);
                idx = _mm256_add_epi32(idx, one);
            }
        }
        b = pool_unscramble(b, S);
        a = pool_unscramble(a, S);
        size_t o = (size_t)ph * PW;
        if ((PH - ph) * PW >= 8) { /* lanes past the row land on rows still to come */
            _mm256_storeu_ps(top + o, b);
            if (imask)
                _mm256_storeu_ps((float *)(imask + o), a);
            if (fmask)
                _mm256_storeu_ps(fmask + o, _mm256_cvtepi32_ps(_mm256_castps_si256(a)));
        } else {
            float out[8];
            int at[8];
            _mm256_storeu_ps(out, b);
            _mm256_storeu_si256((__m256i *)at, _mm256_castps_si256(a));
            for (int j = 0; j < PW; j++) {
                top[o + j] = out[j];
                if (imask)
                    imask[o + j] = at[j];
                if (fmask)
                    fmask[o + j] = (float)at[j];
            }
        }
    }
}

/* The gradient: each output's share, Caffe's top_diff / size, added to
 * its window's inputs. Per output row, the shares laid out as they fall
 * on an input row for each window column (v[kw]: share j at j * S + kw,
 * +0 elsewhere); each input row's first 24 floats then stay in three
 * vectors while the columns add from the window's last to its first, so
 * an input receives its shares in order of the outputs, as in Caffe (and
 * no load waits on a store it only partly overlaps). Lanes past the row
 * carry +0. */
__attribute__((target("avx2"))) static void pool_ave_back_narrow_avx2(const struct pool_geom *g, int wp,
                                                                      const float *top_diff, float *scratch,
                                                                      float *bottom_diff, const int widths[8],
                                                                      int *seen, int mark)
{
    const __m256i wspan = _mm256_loadu_si256((const __m256i *)widths);
    const int H = g->height, W = g->width, S = g->stride_w, KW = g->kernel_w, PH = g->pooled_h, PW = g->pooled_w;
    /* A row's first 24 floats start from +0 where the plane first
     * reaches it (seen[h] != mark), and rows no window reaches are +0 in
     * the gradient; the rest of the scratch stays +0 from the caller.
     * (Clearing the scratch for each plane would cost more than the
     * adds: the loads after a clearing memset wait for its stores.) */
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256 in_row = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(PW), lane));
    const __m256 z = _mm256_setzero_ps();
    for (int ph = 0; ph < PH; ph++) {
        int hs, he;
        __m256 size = pool_narrow_sizes(g, wspan, ph, &hs, &he);
        __m256 dy;
        if ((PH - ph) * PW >= 8) { /* lanes past the row read rows still to come */
            dy = _mm256_and_ps(_mm256_loadu_ps(top_diff + (size_t)ph * PW), in_row);
        } else {
            float d[8] = { 0 };
            pool_copy(d, top_diff + (size_t)ph * PW, PW);
            dy = _mm256_loadu_ps(d);
        }
        __m256 share = _mm256_div_ps(dy, size);
        /* the sixteen floats from the window's first column: the shares,
         * for stride 2 on the even ones */
        __m256 lo = share, hi = z;
        if (S == 2) {
            __m256 a = _mm256_unpacklo_ps(share, z), b = _mm256_unpackhi_ps(share, z);
            lo = _mm256_permute2f128_ps(a, b, 0x20);
            hi = _mm256_permute2f128_ps(a, b, 0x31);
        }
        /* moved kw floats on: lanes rotate by kw, the ones that wrap go
         * to the next vector */
        __m256 v[8][3];
        for (int kw = 0; kw < KW; kw++) {
            __m256i by = _mm256_set1_epi32(kw);
            __m256i idx = _mm256_and_si256(_mm256_sub_epi32(lane, by), _mm256_set1_epi32(7));
            __m256 wrap = _mm256_castsi256_ps(_mm256_cmpgt_epi32(by, lane));
            __m256 rl = _mm256_permutevar8x32_ps(lo, idx), rh = _mm256_permutevar8x32_ps(hi, idx);
            v[kw][0] = _mm256_blendv_ps(rl, z, wrap);
            v[kw][1] = _mm256_blendv_ps(rh, rl, wrap);
            v[kw][2] = _mm256_blendv_ps(z, rh, wrap);
        }
        for (int h = hs; h < he; h++) {
            float *d = scratch + (size_t)h * wp;
            __m256 r0 = z, r1 = z, r2 = z;
            if (seen[h] == mark) {
                r0 = _mm256_load_ps(d);
                r1 = _mm256_load_ps(d + 8);
                r2 = _mm256_load_ps(d + 16);
            }
            seen[h] = mark;
            for (int kw = KW - 1; kw >= 0; kw--) {
                r0 = _mm256_add_ps(r0, v[kw][0]);
                r1 = _mm256_add_ps(r1, v[kw][1]);
                r2 = _mm256_add_ps(r2, v[kw][2]);
            }
            _mm256_store_ps(d, r0);
            _mm256_store_ps(d + 8, r1);
            _mm256_store_ps(d + 16, r2);
        }
    }
    for (int h = 0; h < H; h++) {
        float *dst = bottom_diff + (size_t)h * W;
        if (seen[h] == mark)
            pool_copy(dst, scratch + (size_t)h * wp + g->pad_w, W);
        else
            for (int w = 0; w < W; w++)
                dst[w] = 0.f;
    }
}
#endif

/* The same for AVE: sums in Caffe's order, then one division. */
static void pool_ave_run(const struct pool_geom *g, const float *bottom, int hs, int he, int pw0, int n,
                         float pool_size, float *top)
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
static void pool_one(const struct pool_geom *g, const float *bottom, int ph, int pw, float *top, int *imask,
                     float *fmask)
{
    const int H = g->height, W = g->width;
    int hs = ph * g->stride_h - g->pad_h, ws = pw * g->stride_w - g->pad_w;
    if (g->method == VISION_POOL_MAX) {
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
    int he, we;
    int pool_size = pool_ave_span(hs, g->kernel_h, H, g->pad_h, &hs, &he) *
                    pool_ave_span(ws, g->kernel_w, W, g->pad_w, &ws, &we);
    float sum = 0.f;
    for (int h = hs; h < he; h++)
        for (int w = ws; w < we; w++)
            sum += bottom[h * W + w];
    *top = sum / (float)pool_size;
}

/* The planes of one pooling call; ranges of planes go to the threads. */
struct pool_job {
    const struct pool_geom *g;
    bool avx2; /* pool_max_run_avx2 / pool_ave_run_avx2 for strides 1 and 2 */
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
    const float *bottom = job->bottom + p0 * in_plane;
#ifdef POOL_AVX2
    int wp = job->avx2 ? pool_narrow_width(g) : 0;
    if (wp) {
        /* two scratches: the next plane goes into one while the other's
         * is read, so no read waits on the copy's stores (loads at other
         * offsets than a store's cannot take its data before it is done) */
        _Alignas(32) float scratch[2][POOL_NARROW_SCRATCH];
        bool max = g->method == VISION_POOL_MAX;
        for (size_t i = 0; i < (size_t)H * wp; i++)
            scratch[0][i] = scratch[1][i] = max ? -INFINITY : 0.f;
        int wspan[8];
        pool_narrow_widths(g, wspan);
        pool_narrow_fill(g, wp, bottom, scratch[0]);
        for (size_t p = p0; p < p1; p++, bottom += in_plane) {
            if (p + 1 < p1)
                pool_narrow_fill(g, wp, bottom + in_plane, scratch[(p + 1 - p0) & 1]);
            size_t o = p * out_plane;
            if (max)
                pool_max_narrow_avx2(g, wp, scratch[(p - p0) & 1], top + o, imask ? imask + o : NULL,
                                     fmask ? fmask + o : NULL);
            else
                pool_ave_narrow_avx2(g, wp, wspan, scratch[(p - p0) & 1], top + o);
        }
        return 0;
    }
#endif
    int lo, hi;
    pool_inner_cols(g->kernel_w, g->stride_w, g->pad_w, W, PW, &lo, &hi);
    /* AVX2 for whole runs of interior outputs at least 8 long */
    const bool wide = job->avx2 && (g->stride_w == 1 || g->stride_w == 2) && hi - lo >= 8;
    for (size_t p = p0; p < p1; p++, bottom += in_plane) {
        for (int ph = 0; ph < PH; ph++) {
            size_t o = p * out_plane + (size_t)ph * PW;
            float *t = top + o;
            int *im = imask ? imask + o : NULL;
            float *fm = fmask ? fmask + o : NULL;
            for (int pw = 0; pw < PW; pw++) {
                if (pw == lo && hi > lo) {
                    int hs = ph * g->stride_h - g->pad_h;
                    if (g->method == VISION_POOL_MAX) {
                        int he = hs + g->kernel_h < H ? hs + g->kernel_h : H;
                        hs = hs > 0 ? hs : 0;
#ifdef POOL_AVX2
                        if (wide) {
                            pool_max_run_avx2(g, bottom, hs, he, lo, hi - lo, t + lo, im ? im + lo : NULL,
                                              fm ? fm + lo : NULL);
                            pw = hi - 1;
                            continue;
                        }
#endif
                        for (int j = lo; j < hi; j += POOL_CHUNK) {
                            int n = hi - j < POOL_CHUNK ? hi - j : POOL_CHUNK;
                            pool_max_run(g, bottom, hs, he, j, n, t + j, im ? im + j : NULL,
                                         fm ? fm + j : NULL);
                        }
                    } else {
                        int he;
                        float pool_size = (float)(pool_ave_span(hs, g->kernel_h, H, g->pad_h, &hs, &he) *
                                                  g->kernel_w);
#ifdef POOL_AVX2
                        if (wide) {
                            pool_ave_run_avx2(g, bottom, hs, he, lo, hi - lo, pool_size, t + lo);
                            pw = hi - 1;
                            continue;
                        }
#endif
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

static void pool_forward(const struct pool_geom *g, int planes, const float *bottom, float *top, int *imask,
                         float *fmask)
{
    struct pool_job j = { .g = g, .bottom = bottom, .top = top, .imask = imask, .fmask = fmask };
#ifdef POOL_AVX2
    j.avx2 = cpu_ukr_get() != NULL;
#endif
    size_t work = (size_t)g->pooled_h * g->pooled_w * g->kernel_h * g->kernel_w;
    cpu_parallel_for((size_t)planes, cpu_grain(work), pool_forward_planes, &j);
}

/* AVE's gradient for the interior outputs [pw0, pw0 + n) of output row
 * ph: each input still receives its shares in Caffe's order (by output,
 * row-major), as the window's columns run from the last to the first:
 * of the outputs whose windows hold an input, the one with the smaller pw
 * meets it at the larger kw. Consecutive outputs then add to different
 * inputs, so the additions do not wait on each other. */
static void pool_ave_back_run(const struct pool_geom *g, int ph, const float *top_diff, int pw0, int n,
                              float *bottom_diff)
{
    const int H = g->height, W = g->width, S = g->stride_w;
    int hs, he;
    float pool_size = (float)(pool_ave_span(ph * g->stride_h - g->pad_h, g->kernel_h, H, g->pad_h, &hs, &he) *
                              g->kernel_w);
    float share[POOL_CHUNK];
    for (int j0 = 0; j0 < n; j0 += POOL_CHUNK) {
        int m = n - j0 < POOL_CHUNK ? n - j0 : POOL_CHUNK;
        for (int j = 0; j < m; j++)
            share[j] = top_diff[j0 + j] / pool_size;
        for (int h = hs; h < he; h++)
            for (int kw = g->kernel_w - 1; kw >= 0; kw--) {
                float *dst = bottom_diff + h * W + (pw0 + j0) * S - g->pad_w + kw;
                if (S == 1)
                    for (int j = 0; j < m; j++)
                        dst[j] += share[j];
                else
                    for (int j = 0; j < m; j++)
                        dst[j * S] += share[j];
            }
    }
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
#ifdef POOL_AVX2
    int wp = job->avx2 && g->method == VISION_POOL_AVE ? pool_narrow_width(g) : 0;
    if (wp) {
        _Alignas(32) float scratch[POOL_NARROW_SCRATCH];
        int seen[POOL_NARROW_SCRATCH / 24]; /* the plane that last reached each row */
        memset(scratch, 0, (size_t)H * wp * sizeof *scratch);
        memset(seen, 0, (size_t)H * sizeof *seen);
        int wspan[8];
        pool_narrow_widths(g, wspan);
        for (size_t p = p0; p < p1; p++, bottom_diff += in_plane, top_diff += out_plane)
            pool_ave_back_narrow_avx2(g, wp, top_diff, scratch, bottom_diff, wspan, seen, (int)(p - p0) + 1);
        return 0;
    }
#endif
    int lo, hi;
    pool_inner_cols(g->kernel_w, g->stride_w, g->pad_w, W, PW, &lo, &hi);
    /* plane by plane: each is cleared right before its sums, in cache */
    for (size_t p = p0; p < p1; p++, bottom_diff += in_plane, top_diff += out_plane) {
        memset(bottom_diff, 0, in_plane * sizeof *bottom_diff);
        if (g->method == VISION_POOL_MAX) {
            /* -1: the window held nothing above -FLT_MAX (NaNs); Caffe
             * would write out of bounds, we drop the gradient. A float
             * mask (a second top handed back) is cut to an int as Caffe
             * does, toward zero: -0.5 is input 0; NaN, -1 and indices
             * past the plane are dropped. */
            if (imask) {
                const int *m = imask + p * out_plane;
                for (size_t o = 0; o < out_plane; o++)
                    if (m[o] >= 0 && (size_t)m[o] < in_plane)
                        bottom_diff[m[o]] += top_diff[o];
            } else {
                const float *m = fmask + p * out_plane;
                for (size_t o = 0; o < out_plane; o++)
                    if (m[o] > -1.f && (double)m[o] < (double)in_plane)
                        bottom_diff[(size_t)m[o]] += top_diff[o];
            }
            continue;
        }
        for (int ph = 0; ph < PH; ph++) {
            for (int pw = 0; pw < PW; pw++) {
                int o = ph * PW + pw;
                if (pw == lo && hi > lo) {
                    pool_ave_back_run(g, ph, top_diff + o, lo, hi - lo, bottom_diff);
                    pw = hi - 1;
                    continue;
                }
                int hs, he, ws, we;
                int pool_size = pool_ave_span(ph * g->stride_h - g->pad_h, g->kernel_h, H, g->pad_h, &hs, &he) *
                                pool_ave_span(pw * g->stride_w - g->pad_w, g->kernel_w, W, g->pad_w, &ws, &we);
                float share = top_diff[o] / (float)pool_size;
                for (int h = hs; h < he; h++)
                    for (int w = ws; w < we; w++)
                        bottom_diff[h * W + w] += share;
            }
        }
    }
    return 0;
}

static void pool_backward(const struct pool_geom *g, int planes, const float *top_diff, const int *imask,
                          const float *fmask, float *bottom_diff)
{
    struct pool_job j = { .g = g, .top_diff = top_diff, .imask_in = imask, .fmask_in = fmask,
                          .bottom_diff = bottom_diff };
#ifdef POOL_AVX2
    j.avx2 = cpu_ukr_get() != NULL;
#endif
    size_t work = (size_t)g->height * g->width + (size_t)g->pooled_h * g->pooled_w;
    cpu_parallel_for((size_t)planes, cpu_grain(work), pool_backward_planes, &j);
}

static void v_pool_forward(const struct backend *be, const struct pool_geom *g, int planes, const float *x,
                           float *y, int *imask, float *fmask)
{
    pool_forward(g, planes, x, y, imask, fmask);
}

static void v_pool_backward(const struct backend *be, const struct pool_geom *g, int planes, const float *dy,
                            const int *imask, const float *fmask, float *dx)
{
    pool_backward(g, planes, dy, imask, fmask, dx);
}

/* ---------------------------------------------------------------- LRN */

/* scale^-beta for n values. beta 0.75 (AlexNet, CaffeNet, GoogLeNet) is
 * 1 / sqrt(s * sqrt(s)): three correctly rounded operations instead of a
 * powf call, within 2 ulp of it. */
static void neg_pow(size_t n, float beta, const float *restrict s, float *restrict p)
{
    size_t i = 0;
    if (beta == 0.75f) {
#ifdef __SSE2__
        const __m128 one = _mm_set1_ps(1.f);
        for (; i + 4 <= n; i += 4) {
            __m128 v = _mm_loadu_ps(s + i);
            _mm_storeu_ps(p + i, _mm_div_ps(one, _mm_sqrt_ps(_mm_mul_ps(v, _mm_sqrt_ps(v)))));
        }
#endif
        for (; i < n; i++)
            p[i] = 1.f / sqrtf(s[i] * sqrtf(s[i]));
        return;
    }
    for (; i < n; i++)
        p[i] = powf(s[i], -beta);
}

/* The arrays of one ACROSS pass, which runs over ranges of images. */
struct across_job {
    const struct lrn_geom *g;
    const float *x, *y, *dy, *scale_in; /* scale_in: backward's */
    float *scale;                        /* forward's */
    float *out;
};

/* Scale^-beta times x, a block at a time from a stack buffer. */
#define ACROSS_BLOCK 256

/* Caffe's running window over channels: the first channel's scale is k
 * plus alpha/size times the squares of the channels it covers; each next
 * one adds the square entering the window, then subtracts the one leaving
 * it. Channels beyond the edges are zero padding, which adds nothing, so
 * they are skipped instead of stored. */
static int across_forward_images(void *ctx, size_t n0, size_t n1)
{
    const struct across_job *j = ctx;
    const struct lrn_geom *s = j->g;
    const int C = s->channels, plane = s->height * s->width, pre = (s->size - 1) / 2;
    const size_t item = (size_t)C * plane;
    const float a = s->alpha / (float)s->size, k = s->k;
    float p[ACROSS_BLOCK];
    for (size_t n = n0; n < n1; n++) {
        const float *xn = j->x + n * item;
        float *sn = j->scale + n * item;
        for (int i = 0; i < plane; i++)
            sn[i] = k;
        for (int c = 0; c <= pre && c < C; c++) {
            const float *xc = xn + (size_t)c * plane;
            for (int i = 0; i < plane; i++)
                sn[i] += a * (xc[i] * xc[i]);
        }
        for (int c = 1; c < C; c++) {
            float *restrict cur = sn + (size_t)c * plane;
            const float *prev = cur - plane;
            if (c + pre < C) {
                const float *h = xn + (size_t)(c + pre) * plane;
                for (int i = 0; i < plane; i++)
                    cur[i] = prev[i] + a * (h[i] * h[i]);
            } else {
                memcpy(cur, prev, (size_t)plane * sizeof *cur);
            }
            if (c - 1 - pre >= 0) {
                const float *t = xn + (size_t)(c - 1 - pre) * plane;
                for (int i = 0; i < plane; i++)
                    cur[i] -= a * (t[i] * t[i]);
            }
        }
        /* After the whole item's scale, so that top may share bottom. */
        float *yn = j->out + n * item;
        for (size_t b = 0; b < item; b += ACROSS_BLOCK) {
            size_t m = item - b < ACROSS_BLOCK ? item - b : ACROSS_BLOCK;
            neg_pow(m, s->beta, sn + b, p);
            for (size_t i = 0; i < m; i++)
                yn[b + i] = p[i] * xn[b + i];
        }
    }
    return CREMA_OK;
}

static int v_lrn_across_forward(const struct backend *be, const struct lrn_geom *g, const float *x, float *scale,
                                float *y)
{
    struct across_job j = { .g = g, .x = x, .scale = scale, .out = y };
    size_t work = 8 * (size_t)g->channels * (size_t)g->height * (size_t)g->width;
    return cpu_parallel_for((size_t)g->num, cpu_grain(work), across_forward_images, &j);
}

/* dx = dy * scale^-beta - (2 alpha beta / size) * x * (window sum over
 * channels of dy * y / scale), the window sliding as in the forward. Each
 * range of images has its own scratch (the thread's, kept between calls):
 * one image's ratios, a plane's window sum and scale^-beta. */
static int across_backward_images(void *ctx, size_t n0, size_t n1)
{
    const struct across_job *j = ctx;
    const struct lrn_geom *s = j->g;
    const int C = s->channels, plane = s->height * s->width, pre = (s->size - 1) / 2;
    const size_t item = (size_t)C * plane;
    float *ratio = cpu_scratch(item + 2 * (size_t)plane);
    if (!ratio)
        return err_set(CREMA_ERR_NOMEM, "LRN backward: out of memory (%zu floats)", item + 2 * (size_t)plane);
    float *accum = ratio + item, *p = accum + plane;
    const float cache_ratio = (float)(2. * s->alpha * s->beta / s->size);
    for (size_t n = n0; n < n1; n++) {
        const size_t off = n * item;
        const float *sn = j->scale_in + off, *dyn = j->dy + off, *yn = j->y + off, *xn = j->x + off;
        float *dxn = j->out + off;
        for (size_t i = 0; i < item; i++)
            ratio[i] = dyn[i] * yn[i] / sn[i];
        memset(accum, 0, (size_t)plane * sizeof *accum);
        for (int c = 0; c < pre && c < C; c++)
            for (int i = 0; i < plane; i++)
                accum[i] += ratio[(size_t)c * plane + i];
        for (int c = 0; c < C; c++) {
            const size_t co = (size_t)c * plane;
            if (c + pre < C)
                for (int i = 0; i < plane; i++)
                    accum[i] += ratio[co + (size_t)pre * plane + i];
            neg_pow((size_t)plane, s->beta, sn + co, p);
            for (int i = 0; i < plane; i++)
                dxn[co + i] = dyn[co + i] * p[i] - cache_ratio * (xn[co + i] * accum[i]);
            if (c - pre >= 0)
                for (int i = 0; i < plane; i++)
                    accum[i] -= ratio[co - (size_t)pre * plane + i];
        }
    }
    return CREMA_OK;
}

static int v_lrn_across_backward(const struct backend *be, const struct lrn_geom *g, const float *x,
                                 const float *y, const float *scale, const float *dy, float *dx)
{
    struct across_job j = { .g = g, .x = x, .y = y, .dy = dy, .scale_in = scale, .out = dx };
    size_t work = 8 * (size_t)g->channels * (size_t)g->height * (size_t)g->width;
    return cpu_parallel_for((size_t)g->num, cpu_grain(work), across_backward_images, &j);
}

/* WITHIN_CHANNEL's AVE pooling: size x size windows, pad (size-1)/2,
 * stride 1, Caffe's CEIL rounding (which keeps height x width). */

/* Caffe's PowerLayer forward for (shift + scale * x)^power, step by step. */
static void power_forward(size_t n, float power, float scale, float shift, const float *x, float *y)
{
    if (power * scale == 0.f) {
        float v = power == 0.f ? 1.f : powf(shift, power);
        for (size_t i = 0; i < n; i++)
            y[i] = v;
        return;
    }
    if (y != x)
        memcpy(y, x, n * sizeof *y);
    if (scale != 1.f)
        cpu_scal((int)n, scale, y);
    if (shift != 0.f)
        for (size_t i = 0; i < n; i++)
            y[i] += shift;
    if (power != 1.f)
        for (size_t i = 0; i < n; i++)
            y[i] = powf(y[i], power);
}

static void v_lrn_within_forward(const struct backend *be, const struct lrn_geom *g, const float *x, float *work,
                                 float *scale, float *power, float *y)
{
    size_t n = (size_t)g->num * g->channels * g->height * g->width;
    struct pool_geom pg = lrn_within_pool(g);
    float *sq = work;
    for (size_t i = 0; i < n; i++)
        sq[i] = powf(x[i], 2.f);
    pool_forward(&pg, g->num * g->channels, sq, scale, NULL, NULL);
    power_forward(n, -g->beta, g->alpha, 1.f, scale, power);
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * power[i];
}

static void v_lrn_within_backward(const struct backend *be, const struct lrn_geom *g, const float *x,
                                  const float *dy, const float *scale, const float *pow_out, float *work,
                                  float *work2, float *dx)
{
    size_t n = (size_t)g->num * g->channels * g->height * g->width;
    struct pool_geom pg = lrn_within_pool(g);
    float *d_power = work, *d_pool = work2;
    /* Product: the power output's diff is x * dy. */
    for (size_t i = 0; i < n; i++)
        d_power[i] = x[i] * dy[i];
    /* Power (shift 1) on the pool output, following Caffe's branches. */
    float power = -g->beta, scale_f = g->alpha, shift = 1.f;
    float diff_scale = power * scale_f;
    if (diff_scale == 0.f || power == 1.f) {
        for (size_t i = 0; i < n; i++)
            d_pool[i] = diff_scale;
    } else if (power == 2.f) {
        float a = diff_scale * scale_f, b = diff_scale * shift;
        for (size_t i = 0; i < n; i++)
            d_pool[i] = 0.f;
        cpu_axpy((int)n, a, scale, d_pool);
        for (size_t i = 0; i < n; i++)
            d_pool[i] += b;
    } else {
        memcpy(d_pool, scale, n * sizeof *d_pool);
        if (scale_f != 1.f)
            cpu_scal((int)n, scale_f, d_pool);
        for (size_t i = 0; i < n; i++)
            d_pool[i] = pow_out[i] / (d_pool[i] + shift);
        if (diff_scale != 1.f)
            cpu_scal((int)n, diff_scale, d_pool);
    }
    if (diff_scale != 0.f)
        for (size_t i = 0; i < n; i++)
            d_pool[i] = d_power[i] * d_pool[i];
    /* AVE pooling back to the squares (d_power is free again). */
    float *d_sq = d_power;
    pool_backward(&pg, g->num * g->channels, d_pool, NULL, NULL, d_sq);
    /* Square, then the split: dx = power * dy + 2 x * d_sq. */
    for (size_t i = 0; i < n; i++)
        dx[i] = pow_out[i] * dy[i] + d_sq[i] * (2.f * x[i]);
}

/* ---------------------------------------------------------------- bias */

/* Caffe adds the bias with a GEMM of inner dimension 1 (one rounded
 * addition per value, done here directly) and sums its gradient with a
 * GEMV per image. Planes (image, channel) go to the threads for the
 * forward; channels for the backward, each summed over the images in
 * order, so no sum depends on the thread count. */
struct bias_job {
    int num, channels, spatial;
    const float *bias, *dy;
    float *y, *db;
};

static int bias_forward_planes(void *ctx, size_t p0, size_t p1)
{
    const struct bias_job *j = ctx;
    for (size_t p = p0; p < p1; p++) {
        float b = j->bias[p % (size_t)j->channels], *y = j->y + p * (size_t)j->spatial;
        for (int i = 0; i < j->spatial; i++)
            y[i] += b;
    }
    return 0;
}

static void v_bias_forward(const struct backend *be, int num, int channels, int spatial, const float *bias,
                           const float *ones, float *y)
{
    struct bias_job j = { .num = num, .channels = channels, .spatial = spatial, .bias = bias, .y = y };
    cpu_parallel_for((size_t)num * (size_t)channels, cpu_grain((size_t)spatial), bias_forward_planes, &j);
}

static int bias_backward_channels(void *ctx, size_t c0, size_t c1)
{
    const struct bias_job *j = ctx;
    for (size_t c = c0; c < c1; c++) {
        float db = j->db[c];
        for (int n = 0; n < j->num; n++)
            db += cpu_plane_sum(j->dy + ((size_t)n * (size_t)j->channels + c) * (size_t)j->spatial, j->spatial);
        j->db[c] = db;
    }
    return 0;
}

static void v_bias_backward(const struct backend *be, int num, int channels, int spatial, const float *dy,
                            const float *ones, float *db)
{
    struct bias_job j = { .num = num, .channels = channels, .spatial = spatial, .dy = dy, .db = db };
    cpu_parallel_for((size_t)channels, cpu_grain((size_t)num * (size_t)spatial), bias_backward_channels, &j);
}

/* ---------------------------------------------------------------- convolution */

static int v_conv_plan_create(const struct backend *be, const struct conv_shape *s, void **plan)
{
    *plan = NULL;
    if (s->num <= 0 || s->num_spatial_axes < 1 || s->num_spatial_axes > 3)
        return CREMA_OK;
    return cpu_conv_create(s, (struct cpu_conv **)plan);
}

static void v_conv_plan_free(const struct backend *be, void *plan)
{
    cpu_conv_free(plan);
}

static void v_conv_forward(const struct backend *be, void *plan, const float *im, const float *w, const float *bias,
                           float *col)
{
    cpu_conv_forward(plan, im, w, bias, col);
}

static void v_conv_backward_data(const struct backend *be, void *plan, const float *col, const float *w, float *im)
{
    cpu_conv_backward_data(plan, col, w, im);
}

static void v_conv_backward_filter(const struct backend *be, void *plan, const float *im, const float *col,
                                   float *dw, float *db)
{
    cpu_conv_backward_filter(plan, im, col, dw, db);
}

/* ---------------------------------------------------------------- crop */

/* Row by row between the window of `big` and the dense `small`: the last
 * axis is contiguous in both, so whole rows move at once. src is big when
 * src_is_big, else small (and dst the other). */
static void crop_rows(int n, const int *big_shape, const int *small_shape, const int *offsets, const float *src,
                      float *dst, bool src_is_big)
{
    size_t count = 1;
    for (int d = 0; d < n; d++)
        count *= (size_t)small_shape[d];
    if (count == 0 || n > TENSOR_MAX_AXES)
        return;
    if (n == 0) {
        dst[0] = src[0];
        return;
    }
    int idx[TENSOR_MAX_AXES] = { 0 };
    size_t row = (size_t)small_shape[n - 1];
    size_t rows = count / row;
    for (size_t r = 0; r < rows; r++) {
        size_t off = 0;
        for (int d = 0; d < n; d++)
            off = off * (size_t)big_shape[d] + (size_t)(idx[d] + offsets[d]);
        if (src_is_big)
            memcpy(dst + r * row, src + off, row * sizeof *dst);
        else
            memcpy(dst + off, src + r * row, row * sizeof *dst);
        for (int d = n - 2; d >= 0; d--) {
            if (++idx[d] < small_shape[d])
                break;
            idx[d] = 0;
        }
    }
}

static void v_crop_gather(const struct backend *be, int n, const int *big_shape, const int *small_shape,
                          const int *offsets, const float *big, float *small)
{
    crop_rows(n, big_shape, small_shape, offsets, big, small, true);
}

static void v_crop_scatter(const struct backend *be, int n, const int *big_shape, const int *small_shape,
                           const int *offsets, const float *small, float *big)
{
    crop_rows(n, big_shape, small_shape, offsets, small, big, false);
}

const struct vision_ops cpu_vision_ops = {
    .conv_plan_create = v_conv_plan_create,
    .conv_plan_free = v_conv_plan_free,
    .conv_forward = v_conv_forward,
    .conv_backward_data = v_conv_backward_data,
    .conv_backward_filter = v_conv_backward_filter,
    .bias_forward = v_bias_forward,
    .bias_backward = v_bias_backward,
    .pool_forward = v_pool_forward,
    .pool_backward = v_pool_backward,
    .lrn_across_forward = v_lrn_across_forward,
    .lrn_across_backward = v_lrn_across_backward,
    .lrn_within_forward = v_lrn_within_forward,
    .lrn_within_backward = v_lrn_within_backward,
    .crop_gather = v_crop_gather,
    .crop_scatter = v_crop_scatter,
};
