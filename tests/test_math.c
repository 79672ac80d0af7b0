/* CPU math: the row-major BLAS wrappers against plain loops, and im2col /
 * col2im (2-D and N-D) against their definition and each other. */
#include "check.h"
#include "cpu/math.h"
#include "util/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float *randoms(size_t n, unsigned seed)
{
    struct rng r;
    rng_seed(&r, seed);
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = rng_uniform(&r, -1.f, 1.f);
    return p;
}

static void gemm_all_transposes(void)
{
    const int M = 5, N = 4, K = 3;
    float *A = randoms(M * K, 1), *B = randoms(K * N, 2), *C0 = randoms(M * N, 3);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            float C[20];
            memcpy(C, C0, sizeof C);
            cpu_gemm(ta, tb, M, N, K, 2.f, A, B, 0.5f, C);
            double worst = 0;
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double acc = 0;
                    for (int k = 0; k < K; k++) {
                        float a = ta ? A[k * M + i] : A[i * K + k];
                        float b = tb ? B[j * K + k] : B[k * N + j];
                        acc += (double)a * b;
                    }
                    worst = fmax(worst, fabs(2 * acc + 0.5 * C0[i * N + j] - C[i * N + j]));
                }
            CHECK_MSG(worst < 1e-5, "gemm trans_a %d trans_b %d off by %g", ta, tb, worst);
        }
    float y[5] = { 0 }, yt[4] = { 0 };
    float *x = randoms(5, 4);
    cpu_gemv(false, M, N, 1.f, C0, x, 0.f, y); /* C0 as 5x4, x's first 4 entries */
    cpu_gemv(true, M, N, 1.f, C0, x, 0.f, yt);
    double e1 = 0, e2 = 0;
    for (int i = 0; i < M; i++) {
        double acc = 0;
        for (int j = 0; j < N; j++)
            acc += (double)C0[i * N + j] * x[j];
        e1 = fmax(e1, fabs(acc - y[i]));
    }
    for (int j = 0; j < N; j++) {
        double acc = 0;
        for (int i = 0; i < M; i++)
            acc += (double)C0[i * N + j] * x[i];
        e2 = fmax(e2, fabs(acc - yt[j]));
    }
    CHECK_MSG(e1 < 1e-5 && e2 < 1e-5, "gemv off by %g / %g", e1, e2);
    float v[3] = { 1, -2, 3 }, w[3] = { 1, 1, 1 };
    CHECK(cpu_dot(3, v, w) == 2.f);
    CHECK(cpu_asum(3, v) == 6.f);
    cpu_axpy(3, 2.f, v, w);
    CHECK(w[1] == -3.f);
    cpu_axpby(3, 1.f, v, 0.5f, w); /* w = v + w/2 */
    CHECK(w[0] == 2.5f && w[1] == -3.5f);
    cpu_scal(3, -1.f, v);
    CHECK(v[2] == -3.f);
    cpu_set(3, 7.f, v);
    CHECK(v[0] == 7.f && v[2] == 7.f);
    free(A);
    free(B);
    free(C0);
    free(x);
}

/* Every column entry is the pixel the definition names, or 0 in the padding. */
static void im2col_definition(void)
{
    const int C = 2, H = 5, W = 6, kh = 3, kw = 2, ph = 1, pw = 2, sh = 2, sw = 1, dh = 2, dw = 3;
    const int OH = (H + 2 * ph - (dh * (kh - 1) + 1)) / sh + 1;
    const int OW = (W + 2 * pw - (dw * (kw - 1) + 1)) / sw + 1;
    float *im = randoms(C * H * W, 5);
    float *col = malloc(sizeof(float) * C * kh * kw * OH * OW);
    im2col(im, C, H, W, kh, kw, ph, pw, sh, sw, dh, dw, col);
    int bad = 0;
    for (int c = 0; c < C; c++)
        for (int i = 0; i < kh; i++)
            for (int j = 0; j < kw; j++)
                for (int oh = 0; oh < OH; oh++)
                    for (int ow = 0; ow < OW; ow++) {
                        int h = oh * sh - ph + i * dh, w = ow * sw - pw + j * dw;
                        float want = (h >= 0 && h < H && w >= 0 && w < W) ? im[(c * H + h) * W + w] : 0.f;
                        bad += col[(((c * kh + i) * kw + j) * OH + oh) * OW + ow] != want;
                    }
    CHECK_EQ_INT(bad, 0);
    /* The N-D path over the same 2 axes gives the same matrix. */
    int im_shape[3] = { C, H, W }, col_shape[3] = { C * kh * kw, OH, OW };
    int k[2] = { kh, kw }, p[2] = { ph, pw }, s[2] = { sh, sw }, d[2] = { dh, dw };
    float *col_nd = malloc(sizeof(float) * C * kh * kw * OH * OW);
    im2col_nd(im, 2, im_shape, col_shape, k, p, s, d, col_nd);
    CHECK(memcmp(col, col_nd, sizeof(float) * C * kh * kw * OH * OW) == 0);
    /* col2im is the adjoint: <im2col(x), y> = <x, col2im(y)>. */
    size_t ncol = (size_t)C * kh * kw * OH * OW, nim = (size_t)C * H * W;
    float *y = randoms(ncol, 6), *back = malloc(nim * sizeof(float)), *back_nd = malloc(nim * sizeof(float));
    col2im(y, C, H, W, kh, kw, ph, pw, sh, sw, dh, dw, back);
    col2im_nd(y, 2, im_shape, col_shape, k, p, s, d, back_nd);
    CHECK(memcmp(back, back_nd, nim * sizeof(float)) == 0);
    double lhs = 0, rhs = 0;
    for (size_t i = 0; i < ncol; i++)
        lhs += (double)col[i] * y[i];
    for (size_t i = 0; i < nim; i++)
        rhs += (double)im[i] * back[i];
    CHECK_MSG(fabs(lhs - rhs) < 1e-4, "col2im is not im2col's adjoint: %g vs %g", lhs, rhs);
    free(im);
    free(col);
    free(col_nd);
    free(y);
    free(back);
    free(back_nd);
}

/* Stride 1 with out_w == width takes im2col's whole-run copy; it must give
 * the N-D path's matrix exactly, whatever the vertical padding (including
 * rows wholly outside the image) and dilation. */
static void im2col_same_width_runs(void)
{
    /* C, H, W, kh, kw, ph, pw, dh, dw; pw * 2 == dw * (kw - 1) */
    const int geo[][9] = {
        { 3, 7, 5, 3, 3, 1, 1, 1, 1 }, { 2, 6, 6, 5, 5, 2, 2, 1, 1 }, { 2, 5, 4, 3, 3, 0, 2, 1, 2 },
        { 1, 3, 8, 3, 5, 4, 2, 2, 1 }, { 2, 4, 3, 1, 3, 0, 1, 1, 1 }, { 1, 2, 9, 5, 1, 6, 0, 1, 1 },
        { 2, 8, 1, 3, 1, 1, 0, 1, 1 },
    };
    for (size_t gi = 0; gi < sizeof geo / sizeof geo[0]; gi++) {
        const int *g = geo[gi];
        int C = g[0], H = g[1], W = g[2], kh = g[3], kw = g[4], ph = g[5], pw = g[6], dh = g[7], dw = g[8];
        int OH = H + 2 * ph - (dh * (kh - 1) + 1) + 1, OW = W + 2 * pw - (dw * (kw - 1) + 1) + 1;
        CHECK_EQ_INT(OW, W);
        if (OH <= 0)
            continue;
        size_t n = (size_t)C * kh * kw * OH * OW;
        float *im = randoms((size_t)C * H * W, 20 + (unsigned)gi), *col = malloc(n * sizeof(float)),
              *col_nd = malloc(n * sizeof(float));
        im2col(im, C, H, W, kh, kw, ph, pw, 1, 1, dh, dw, col);
        int im_shape[3] = { C, H, W }, col_shape[3] = { C * kh * kw, OH, OW };
        int k[2] = { kh, kw }, p[2] = { ph, pw }, s[2] = { 1, 1 }, d[2] = { dh, dw };
        im2col_nd(im, 2, im_shape, col_shape, k, p, s, d, col_nd);
        CHECK_MSG(memcmp(col, col_nd, n * sizeof(float)) == 0, "geometry %zu: im2col differs from im2col_nd", gi);
        free(im);
        free(col);
        free(col_nd);
    }
}

static void im2col_3d(void)
{
    const int C = 2, D = 3, H = 4, W = 5;
    int im_shape[4] = { C, D, H, W }, k[3] = { 2, 3, 2 }, p[3] = { 1, 1, 0 }, s[3] = { 1, 2, 2 },
        d[3] = { 1, 1, 2 };
    int out[3];
    for (int i = 0; i < 3; i++)
        out[i] = (im_shape[i + 1] + 2 * p[i] - (d[i] * (k[i] - 1) + 1)) / s[i] + 1;
    int col_shape[4] = { C * 12, out[0], out[1], out[2] };
    size_t ncol = (size_t)C * 12 * out[0] * out[1] * out[2], nim = (size_t)C * D * H * W;
    float *im = randoms(nim, 7), *col = malloc(ncol * sizeof(float));
    im2col_nd(im, 3, im_shape, col_shape, k, p, s, d, col);
    int bad = 0;
    size_t idx = 0;
    for (int c = 0; c < C; c++)
        for (int a = 0; a < k[0]; a++)
            for (int b = 0; b < k[1]; b++)
                for (int e = 0; e < k[2]; e++)
                    for (int o0 = 0; o0 < out[0]; o0++)
                        for (int o1 = 0; o1 < out[1]; o1++)
                            for (int o2 = 0; o2 < out[2]; o2++, idx++) {
                                int z = o0 * s[0] - p[0] + a * d[0], y = o1 * s[1] - p[1] + b * d[1],
                                    x = o2 * s[2] - p[2] + e * d[2];
                                bool in = z >= 0 && z < D && y >= 0 && y < H && x >= 0 && x < W;
                                float want = in ? im[((c * D + z) * H + y) * W + x] : 0.f;
                                bad += col[idx] != want;
                            }
    CHECK_EQ_INT(bad, 0);
    float *yv = randoms(ncol, 8), *back = malloc(nim * sizeof(float));
    col2im_nd(yv, 3, im_shape, col_shape, k, p, s, d, back);
    double lhs = 0, rhs = 0;
    for (size_t i = 0; i < ncol; i++)
        lhs += (double)col[i] * yv[i];
    for (size_t i = 0; i < nim; i++)
        rhs += (double)im[i] * back[i];
    CHECK_MSG(fabs(lhs - rhs) < 1e-4, "3-D col2im is not the adjoint: %g vs %g", lhs, rhs);
    free(im);
    free(col);
    free(yv);
    free(back);
}

CHECK_MAIN(CASE(gemm_all_transposes), CASE(im2col_definition), CASE(im2col_same_width_runs), CASE(im2col_3d))
