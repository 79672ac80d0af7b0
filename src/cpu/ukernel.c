/* The micro-kernels of ukernel.h: AVX-512 (8 x 32: sixteen zmm sums) and
 * AVX2 with FMA (6 x 16: twelve ymm sums), compiled for their instruction
 * set by function attributes so the library itself needs no -m flags, and
 * picked by what the CPU reports. */
#include "cpu/ukernel.h"

#include "util/err.h"

#include <pthread.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_X86_KERNELS 1

/* ---- AVX-512: 8 rows x 32 columns ---- */

#define MR16 8
#define NR16 32

__attribute__((target("avx512f,fma"), always_inline)) static inline void
ukr_avx512(int kc, const float *a, long rs_a, long cs_a, const float *b, long ldb, float *c, long ldc, int m, int n,
           bool accumulate, const int rows)
{
    __m512 s0[MR16], s1[MR16];
#pragma GCC unroll 8
    for (int i = 0; i < rows; i++)
        s0[i] = s1[i] = _mm512_setzero_ps();
    __mmask16 m0 = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
    __mmask16 m1 = n >= 32 ? (__mmask16)0xffff : n > 16 ? (__mmask16)((1u << (n - 16)) - 1) : (__mmask16)0;
    if (n >= NR16) {
        for (int k = 0; k < kc; k++) {
            __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 8
            for (int i = 0; i < rows; i++) {
                __m512 ai = _mm512_set1_ps(a[i * rs_a]);
                s0[i] = _mm512_fmadd_ps(ai, b0, s0[i]);
                s1[i] = _mm512_fmadd_ps(ai, b1, s1[i]);
            }
            a += cs_a;
            b += ldb;
        }
    } else {
        /* A part panel: the lanes past n are not loaded (B may end there). */
        for (int k = 0; k < kc; k++) {
            __m512 b0 = _mm512_maskz_loadu_ps(m0, b), b1 = _mm512_maskz_loadu_ps(m1, b + 16);
#pragma GCC unroll 8
            for (int i = 0; i < rows; i++) {
                __m512 ai = _mm512_set1_ps(a[i * rs_a]);
                s0[i] = _mm512_fmadd_ps(ai, b0, s0[i]);
                s1[i] = _mm512_fmadd_ps(ai, b1, s1[i]);
            }
            a += cs_a;
            b += ldb;
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < rows; i++) {
        if (i >= m)
            break;
        float *ci = c + i * ldc;
        if (accumulate) {
            s0[i] = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, ci), s0[i]);
            s1[i] = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, ci + 16), s1[i]);
        }
        _mm512_mask_storeu_ps(ci, m0, s0[i]);
        _mm512_mask_storeu_ps(ci + 16, m1, s1[i]);
    }
}

/* A tile of m <= 4 (or 2) rows, the last of an M that is not a multiple
 * of 8 (LeNet's 20 and 50 channels, its 500-long column), runs a 4- (2-)
 * row loop rather than eight rows' FMAs for fewer results. */
__attribute__((target("avx512f,fma"))) static void ukr_avx512_packed(int kc, const float *a, long rs_a, long cs_a,
                                                                     const float *b, long ldb, float *c, long ldc,
                                                                     int m, int n, bool accumulate, bool b_wide)
{
    (void)b_wide; /* masked loads cost a plain one with AVX-512 */
    if (m > 4)
        ukr_avx512(kc, a, 1, MR16, b, ldb, c, ldc, m, n, accumulate, MR16);
    else if (m > 2)
        ukr_avx512(kc, a, 1, MR16, b, ldb, c, ldc, m, n, accumulate, 4);
    else
        ukr_avx512(kc, a, 1, MR16, b, ldb, c, ldc, m, n, accumulate, 2);
}

__attribute__((target("avx512f,fma"))) static void ukr_avx512_rows(int kc, const float *a, long rs_a, long cs_a,
                                                                   const float *b, long ldb, float *c, long ldc,
                                                                   int m, int n, bool accumulate, bool b_wide)
{
    (void)b_wide;
    if (m > 4)
        ukr_avx512(kc, a, rs_a, 1, b, ldb, c, ldc, m, n, accumulate, MR16);
    else if (m > 2)
        ukr_avx512(kc, a, rs_a, 1, b, ldb, c, ldc, m, n, accumulate, 4);
    else
        ukr_avx512(kc, a, rs_a, 1, b, ldb, c, ldc, m, n, accumulate, 2);
}

__attribute__((target("avx512f"))) static void pack_avx512(int n, const float *base, const long *off,
                                                           const unsigned *mask, int nseg, long tstride, float *dst,
                                                           long dstride, const float *lo, const float *hi)
{
    (void)lo, (void)hi; /* masked loads cost a plain one with AVX-512 */
    for (int e = 0; e < n; e++, off += tstride, mask += tstride, dst += dstride) {
        __m512 v0 = _mm512_setzero_ps(), v1 = _mm512_setzero_ps();
        for (int sg = 0; sg < nseg; sg++) {
            /* the address is formed as an integer: it may lie outside the
             * image where the mask's lanes are off */
            const float *src = (const float *)((uintptr_t)base + (uintptr_t)(off[sg] * (long)sizeof(float)));
            v0 = _mm512_mask_loadu_ps(v0, (__mmask16)(mask[sg] & 0xffff), src);
            v1 = _mm512_mask_loadu_ps(v1, (__mmask16)(mask[sg] >> 16), src + 16);
        }
        _mm512_storeu_ps(dst, v0);
        _mm512_storeu_ps(dst + 16, v1);
    }
}

/* ---- AVX2 + FMA: 6 rows x 16 columns ---- */

#define MR8 6
#define NR8 16

__attribute__((target("avx2,fma"), always_inline)) static inline __m256i lanes_below(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

__attribute__((target("avx2,fma"), always_inline)) static inline void
ukr_avx2(int kc, const float *a, long rs_a, long cs_a, const float *b, long ldb, float *c, long ldc, int m, int n,
         bool accumulate, bool b_wide, const int rows)
{
    __m256 s0[MR8], s1[MR8];
#pragma GCC unroll 6
    for (int i = 0; i < rows; i++)
        s0[i] = s1[i] = _mm256_setzero_ps();
    if (n >= NR8 || b_wide) {
        for (int k = 0; k < kc; k++) {
            __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
            for (int i = 0; i < rows; i++) {
                __m256 ai = _mm256_broadcast_ss(a + i * rs_a);
                s0[i] = _mm256_fmadd_ps(ai, b0, s0[i]);
                s1[i] = _mm256_fmadd_ps(ai, b1, s1[i]);
            }
            a += cs_a;
            b += ldb;
        }
    } else {
        /* A part panel: the lanes past n are not loaded (B may end there). */
        __m256i l0 = lanes_below(n), l1 = lanes_below(n - 8);
        for (int k = 0; k < kc; k++) {
            __m256 b0 = _mm256_maskload_ps(b, l0), b1 = _mm256_maskload_ps(b + 8, l1);
#pragma GCC unroll 6
            for (int i = 0; i < rows; i++) {
                __m256 ai = _mm256_broadcast_ss(a + i * rs_a);
                s0[i] = _mm256_fmadd_ps(ai, b0, s0[i]);
                s1[i] = _mm256_fmadd_ps(ai, b1, s1[i]);
            }
            a += cs_a;
            b += ldb;
        }
    }
    if (n >= NR8) {
#pragma GCC unroll 6
        for (int i = 0; i < rows; i++) {
            if (i >= m)
                break;
            float *ci = c + i * ldc;
            if (accumulate) {
                s0[i] = _mm256_add_ps(_mm256_loadu_ps(ci), s0[i]);
                s1[i] = _mm256_add_ps(_mm256_loadu_ps(ci + 8), s1[i]);
            }
            _mm256_storeu_ps(ci, s0[i]);
            _mm256_storeu_ps(ci + 8, s1[i]);
        }
        return;
    }
    /* A part tile: its n columns one by one (vmaskmovps, a store above
     * all, takes several times as long on AMD's cores). */
    float tmp[NR8];
#pragma GCC unroll 6
    for (int i = 0; i < rows; i++) {
        if (i >= m)
            break;
        float *ci = c + i * ldc;
        _mm256_storeu_ps(tmp, s0[i]);
        _mm256_storeu_ps(tmp + 8, s1[i]);
        if (accumulate)
            for (int j = 0; j < n; j++)
                ci[j] = ci[j] + tmp[j];
        else
            for (int j = 0; j < n; j++)
                ci[j] = tmp[j];
    }
}

/* A tile of m <= 4 (or 2) rows, the last of an M that is not a multiple
 * of 6 (CIFAR10-quick's 32 and 64 channels, LeNet's 20 and 50), runs a
 * 4- (2-) row loop rather than six rows' FMAs for fewer results. */
__attribute__((target("avx2,fma"))) static void ukr_avx2_packed(int kc, const float *a, long rs_a, long cs_a,
                                                                const float *b, long ldb, float *c, long ldc, int m,
                                                                int n, bool accumulate, bool b_wide)
{
    if (m > 4)
        ukr_avx2(kc, a, 1, MR8, b, ldb, c, ldc, m, n, accumulate, b_wide, MR8);
    else if (m > 2)
        ukr_avx2(kc, a, 1, MR8, b, ldb, c, ldc, m, n, accumulate, b_wide, 4);
    else
        ukr_avx2(kc, a, 1, MR8, b, ldb, c, ldc, m, n, accumulate, b_wide, 2);
}

__attribute__((target("avx2,fma"))) static void ukr_avx2_rows(int kc, const float *a, long rs_a, long cs_a,
                                                              const float *b, long ldb, float *c, long ldc, int m,
                                                              int n, bool accumulate, bool b_wide)
{
    if (m > 4)
        ukr_avx2(kc, a, rs_a, 1, b, ldb, c, ldc, m, n, accumulate, b_wide, MR8);
    else if (m > 2)
        ukr_avx2(kc, a, rs_a, 1, b, ldb, c, ldc, m, n, accumulate, b_wide, 4);
    else
        ukr_avx2(kc, a, rs_a, 1, b, ldb, c, ldc, m, n, accumulate, b_wide, 2);
}

__attribute__((target("avx2"))) static void pack_avx2(int n, const float *base, const long *off, const unsigned *mask,
                                                       int nseg, long tstride, float *dst, long dstride,
                                                       const float *lo, const float *hi)
{
    const __m256i bits0 = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    const __m256i bits1 = _mm256_slli_epi32(bits0, 8);
    const uintptr_t lo_u = (uintptr_t)lo, hi_u = (uintptr_t)hi;
    for (int e = 0; e < n; e++, off += tstride, mask += tstride, dst += dstride) {
        /* The segments' lanes are disjoint and the lanes a piece leaves
         * are 0, so the pieces are OR-ed together. A whole half (the
         * common case inside the image) is a plain load; a part one is a
         * plain load AND-ed with its lanes where the 8 floats lie in
         * [lo, hi) (vmaskmovps takes several times as long on AMD's
         * cores), else a masked load; an empty one (a row in the
         * padding) is skipped. */
        __m256 v0 = _mm256_setzero_ps(), v1 = _mm256_setzero_ps();
        for (int sg = 0; sg < nseg; sg++) {
            unsigned mk = mask[sg];
            if (!mk)
                continue;
            uintptr_t a = (uintptr_t)base + (uintptr_t)(off[sg] * (long)sizeof(float));
            const float *src = (const float *)a;
            unsigned l8 = mk & 0xffu, h8 = (mk >> 8) & 0xffu;
            __m256i m = _mm256_set1_epi32((int)mk);
            if (l8 == 0xffu)
                v0 = _mm256_or_ps(v0, _mm256_loadu_ps(src));
            else if (l8) {
                __m256i lanes = _mm256_cmpeq_epi32(_mm256_and_si256(m, bits0), bits0);
                __m256 x = a >= lo_u && a + 8 * sizeof(float) <= hi_u
                               ? _mm256_and_ps(_mm256_loadu_ps(src), _mm256_castsi256_ps(lanes))
                               : _mm256_maskload_ps(src, lanes);
                v0 = _mm256_or_ps(v0, x);
            }
            if (h8 == 0xffu)
                v1 = _mm256_or_ps(v1, _mm256_loadu_ps(src + 8));
            else if (h8) {
                __m256i lanes = _mm256_cmpeq_epi32(_mm256_and_si256(m, bits1), bits1);
                __m256 x = a + 8 * sizeof(float) >= lo_u && a + 16 * sizeof(float) <= hi_u
                               ? _mm256_and_ps(_mm256_loadu_ps(src + 8), _mm256_castsi256_ps(lanes))
                               : _mm256_maskload_ps(src + 8, lanes);
                v1 = _mm256_or_ps(v1, x);
            }
        }
        _mm256_storeu_ps(dst, v0);
        _mm256_storeu_ps(dst + 8, v1);
    }
}

/* ---- im2col and col2im for a horizontal stride of 1 (both ISAs: AVX2) ---- */

/* mk[kc][v]: of a row of L floats in vectors of 8, lanes p = 8v + j (p < L)
 * that read p + sign * x0, x0 = kc * dilation_w - pad_w, inside [0, R). */
__attribute__((target("avx2"))) static void col_masks(const struct cpu_col_geom *g, int sign, int L, int R,
                                                       __m256 mk[][CPU_COL_MAX_W / 8])
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int kc = 0; kc < g->kernel_w; kc++) {
        int sh = sign * (kc * g->dilation_w - g->pad_w);
        for (int v = 0; v < (L + 7) / 8; v++) {
            int a = -sh - 8 * v, b = R - sh - 8 * v; /* lanes j in [a, b) */
            if (b > L - 8 * v)
                b = L - 8 * v;
            __m256i in = _mm256_and_si256(_mm256_cmpgt_epi32(lane, _mm256_set1_epi32(a - 1)),
                                          _mm256_cmpgt_epi32(_mm256_set1_epi32(b), lane));
            mk[kc][v] = _mm256_castsi256_ps(in);
        }
    }
}

/* A row of n floats from NV vectors: whole vectors where `whole` (what
 * they put past the row is stored over later), else through a copy. */
__attribute__((target("avx2"), always_inline)) static inline void store_row(float *dst, const __m256 *x, int n,
                                                                          bool whole, const int NV)
{
    if (whole) {
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            _mm256_storeu_ps(dst + 8 * v, x[v]);
        return;
    }
    float tmp[CPU_COL_MAX_W];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
        _mm256_storeu_ps(tmp + 8 * v, x[v]);
    memcpy(dst, tmp, (size_t)n * sizeof *dst);
}

/* Each output row of a column row: NV vectors from the image row, shifted
 * by x0, the lanes in the padding cleared. */
__attribute__((target("avx2"), always_inline)) static inline void
im2col_avx2_nv(const struct cpu_col_geom *g, const float *im, float *col, long ld, const float *lo, const float *hi,
               const __m256 mk[][CPU_COL_MAX_W / 8], const int NV)
{
    const int H = g->height, W = g->width, KH = g->kernel_h, KW = g->kernel_w, OH = g->out_h, OW = g->out_w;
    const uintptr_t lo_u = (uintptr_t)lo, hi_u = (uintptr_t)hi;
    const long len = (long)OH * OW;
    /* where a row's vectors may run to: with the column rows end to end,
     * the end of all of them (what they run over is stored later), else
     * the end of their own column row */
    float *const end = ld == len ? col + (long)g->channels * KH * KW * ld : NULL;
    float *dst = col;
    for (int c = 0; c < g->channels; c++) {
        const float *plane = im + (long)c * H * W;
        for (int kr = 0; kr < KH; kr++)
            for (int kc = 0; kc < KW; kc++) {
                float *row = col + ((long)(c * KH + kr) * KW + kc) * ld, *limit = end ? end : row + len;
                long x0 = (long)kc * g->dilation_w - g->pad_w;
                int ih = kr * g->dilation_h - g->pad_h;
                dst = row;
                for (int oh = 0; oh < OH; oh++, ih += g->stride_h, dst += OW) {
                    __m256 x[CPU_COL_MAX_W / 8];
                    if (ih < 0 || ih >= H) {
#pragma GCC unroll 4
                        for (int v = 0; v < NV; v++)
                            x[v] = _mm256_setzero_ps();
                    } else {
                        /* formed as an integer: it may lie outside the
                         * image where the lanes are off */
                        uintptr_t a = (uintptr_t)(plane + (long)ih * W) + (uintptr_t)(x0 * (long)sizeof(float));
                        if (a >= lo_u && a + (uintptr_t)NV * 8 * sizeof(float) <= hi_u) {
#pragma GCC unroll 4
                            for (int v = 0; v < NV; v++)
                                x[v] = _mm256_and_ps(_mm256_loadu_ps((const float *)a + 8 * v), mk[kc][v]);
                        } else {
#pragma GCC unroll 4
                            for (int v = 0; v < NV; v++)
                                x[v] = _mm256_maskload_ps((const float *)a + 8 * v, _mm256_castps_si256(mk[kc][v]));
                        }
                    }
                    store_row(dst, x, OW, dst + 8 * NV <= limit, NV);
                }
            }
    }
}

__attribute__((target("avx2"))) static void im2col_avx2(const struct cpu_col_geom *g, const float *im, float *col,
                                                         long ld, const float *lo, const float *hi)
{
    __m256 mk[CPU_COL_MAX_KW][CPU_COL_MAX_W / 8];
    col_masks(g, 1, g->out_w, g->width, mk);
    switch ((g->out_w + 7) / 8) {
    case 1:
        im2col_avx2_nv(g, im, col, ld, lo, hi, mk, 1);
        break;
    case 2:
        im2col_avx2_nv(g, im, col, ld, lo, hi, mk, 2);
        break;
    case 3:
        im2col_avx2_nv(g, im, col, ld, lo, hi, mk, 3);
        break;
    default:
        im2col_avx2_nv(g, im, col, ld, lo, hi, mk, 4);
        break;
    }
}


/* Input row ih of every plane is a sum in nv vectors (lane j of vector v:
 * pixel 8v + j). Kernel column kc shifts a column row by x0 = kc *
 * dilation_w - pad_w: pixel iw takes output column iw - x0 where that lies
 * in [0, out_w), else nothing, which in the sum is a +0 (a running sum
 * from +0 is never -0, so adding +0 changes no bit). NV: nv as a constant,
 * for the sums to stay in registers. */
__attribute__((target("avx2"), always_inline)) static inline void
col2im_avx2_nv(const struct cpu_col_geom *g, const float *col, long ld, float *im, const float *lo,
               const float *hi, const __m256 mk[][CPU_COL_MAX_W / 8], long span_lo, long span_hi, const int NV)
{
    const int H = g->height, W = g->width, KH = g->kernel_h, KW = g->kernel_w, OW = g->out_w, OH = g->out_h;
    const int SH = g->stride_h;
    const uintptr_t lo_u = (uintptr_t)lo, hi_u = (uintptr_t)hi;
    const long taps = (long)KH * KW;
    const long step = (long)(ld - g->dilation_w) * (long)sizeof(float); /* from kernel column kc to kc + 1 */
    for (int c = 0; c < g->channels; c++) {
        const float *cc = col + c * taps * ld;
        float *plane = im + (long)c * H * W;
        for (int ih = 0; ih < H; ih++) {
            __m256 acc[CPU_COL_MAX_W / 8];
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                acc[v] = _mm256_setzero_ps();
            for (int kr = 0; kr < KH; kr++) {
                int t = ih + g->pad_h - kr * g->dilation_h, oh = t;
                if (SH > 1) {
                    if (t < 0 || t % SH)
                        continue;
                    oh = t / SH;
                }
                if (t < 0 || oh >= OH)
                    continue;
                /* lane j of vector v of kernel column kc reads row[kc *
                 * ld + 8v + j - x0], an address formed as an integer: it
                 * may lie outside the buffer where the lane is off */
                const float *row = cc + kr * KW * ld + (long)oh * OW;
                uintptr_t a = (uintptr_t)row + (uintptr_t)((long)g->pad_w * (long)sizeof(float));
                if ((uintptr_t)row + (uintptr_t)span_lo >= lo_u && (uintptr_t)row + (uintptr_t)span_hi <= hi_u) {
                    /* all inside the buffer: plain loads, the lanes that are
                     * off cleared (vmaskmovps takes several times as long
                     * on AMD's cores) */
                    for (int kc = 0; kc < KW; kc++, a += (uintptr_t)step)
#pragma GCC unroll 4
                        for (int v = 0; v < NV; v++)
                            acc[v] = _mm256_add_ps(acc[v],
                                                   _mm256_and_ps(_mm256_loadu_ps((const float *)a + 8 * v), mk[kc][v]));
                } else {
                    for (int kc = 0; kc < KW; kc++, a += (uintptr_t)step)
#pragma GCC unroll 4
                        for (int v = 0; v < NV; v++)
                            acc[v] = _mm256_add_ps(
                                acc[v], _mm256_maskload_ps((const float *)a + 8 * v, _mm256_castps_si256(mk[kc][v])));
                }
            }
            /* whole vectors: a row's last one may run into the rows after
             * it, which are stored later, except at the image's end */
            store_row(plane + (long)ih * W, acc, W, (long)(g->channels - c) * H * W - (long)ih * W >= 8L * NV, NV);
        }
    }
}

__attribute__((target("avx2"))) static void col2im_avx2(const struct cpu_col_geom *g, const float *col, long ld,
                                                         float *im, const float *lo, const float *hi)
{
    const int nv = (g->width + 7) / 8;
    __m256 mk[CPU_COL_MAX_KW][CPU_COL_MAX_W / 8];
    col_masks(g, -1, g->width, g->out_w, mk);
    /* the bytes a kernel row's loads span around its first column row's
     * output row */
    long span_lo = 0, span_hi = 0;
    for (int kc = 0; kc < g->kernel_w; kc++) {
        long first = (long)kc * ld - (kc * g->dilation_w - g->pad_w), last = first + 8L * nv;
        span_lo = kc == 0 || first < span_lo ? first : span_lo;
        span_hi = kc == 0 || last > span_hi ? last : span_hi;
    }
    span_lo *= (long)sizeof(float);
    span_hi *= (long)sizeof(float);
    switch (nv) {
    case 1:
        col2im_avx2_nv(g, col, ld, im, lo, hi, mk, span_lo, span_hi, 1);
        break;
    case 2:
        col2im_avx2_nv(g, col, ld, im, lo, hi, mk, span_lo, span_hi, 2);
        break;
    case 3:
        col2im_avx2_nv(g, col, ld, im, lo, hi, mk, span_lo, span_hi, 3);
        break;
    default:
        col2im_avx2_nv(g, col, ld, im, lo, hi, mk, span_lo, span_hi, 4);
        break;
    }
}

static const struct cpu_ukr kernels[] = {
    { "avx512", MR16, NR16, ukr_avx512_packed, ukr_avx512_rows, pack_avx512, im2col_avx2, col2im_avx2 },
    { "avx2", MR8, NR8, ukr_avx2_packed, ukr_avx2_rows, pack_avx2, im2col_avx2, col2im_avx2 },
};

static bool cpu_has(const char *isa)
{
    __builtin_cpu_init();
    if (strcmp(isa, "avx512") == 0)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
    if (strcmp(isa, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return false;
}
#else
#define HAVE_X86_KERNELS 0
#endif

const struct cpu_ukr *cpu_ukr_named(const char *isa)
{
#if HAVE_X86_KERNELS
    for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++)
        if (strcmp(kernels[i].isa, isa) == 0)
            return cpu_has(isa) ? &kernels[i] : NULL;
#else
    (void)isa;
#endif
    return NULL;
}

static const struct cpu_ukr *_Atomic chosen;

static void choose(void)
{
    const char *want = getenv("CREMA_CPU_ISA");
    if (want && strcmp(want, "blas") == 0)
        return;
    if (want && *want) {
        chosen = cpu_ukr_named(want);
        if (chosen)
            return;
    }
    chosen = cpu_ukr_named("avx512");
    if (!chosen)
        chosen = cpu_ukr_named("avx2");
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

const struct cpu_ukr *cpu_ukr_get(void)
{
    pthread_once(&once, choose);
    return chosen;
}

int cpu_ukr_select(const char *isa)
{
    pthread_once(&once, choose);
    if (!isa) {
        chosen = NULL;
        choose();
        return CREMA_OK;
    }
    if (strcmp(isa, "blas") == 0) {
        chosen = NULL;
        return CREMA_OK;
    }
    const struct cpu_ukr *u = cpu_ukr_named(isa);
    if (!u)
        return err_set(CREMA_ERR_UNSUPPORTED, "this CPU has no %s kernels", isa);
    chosen = u;
    return CREMA_OK;
}
