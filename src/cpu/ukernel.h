/* GEMM micro-kernels for the convolution (cpu/conv.c): an mr x nr tile of
 * C += A * B held in vector registers, for the instruction sets this CPU
 * has, chosen once at run time (AVX-512, else AVX2 with FMA; none on other
 * CPUs, where the convolution stays on OpenBLAS). CREMA_CPU_ISA=avx2 (or
 * avx512, or blas) narrows the choice, for tests and comparisons. */
#ifndef CREMA_CPU_UKERNEL_H
#define CREMA_CPU_UKERNEL_H

#include <stdbool.h>

/* C[i][j] (+)= sum_k A(i, k) * B[k * ldb + j] for i < m, j < n (m <= mr,
 * n <= nr), where A(i, k) = a[i * rs_a + k * cs_a]: a packed panel
 * (rs_a 1, cs_a mr) or mr rows of a row-major matrix (rs_a its row
 * stride, cs_a 1). Up to mr rows of A are read (rows past m must be valid
 * memory); B columns past n are not read unless b_wide (B is a packed
 * panel: nr columns in each row can be read, whatever they hold), C rows
 * past m and columns past n neither read nor written. Each C value is one
 * running sum over k in order, added to C last when accumulating. */
typedef void (*cpu_ukr_fn)(int kc, const float *a, long rs_a, long cs_a, const float *b, long ldb, float *c,
                           long ldc, int m, int n, bool accumulate, bool b_wide);

/* For e < n: lane j of the nr floats at dst + e * dstride is
 * base[off[e * tstride + s] + j] for the segment s < nseg whose mask
 * (mask[e * tstride + s]) has bit j set, else 0 (the segments' masks are
 * disjoint). Lanes whose bits are clear are not read where they lie
 * outside [lo, hi), memory the caller can read (the whole tensor): an
 * offset may point outside the image there. Inside it a kernel may load
 * them and clear them, a masked load being slow on some cores. The
 * convolution packs its column panels straight from the image with it. */
typedef void (*cpu_pack_fn)(int n, const float *base, const long *off, const unsigned *mask, int nseg, long tstride,
                            float *dst, long dstride, const float *lo, const float *hi);

/* One image's im2col and col2im for a horizontal stride of 1: cpu/math.h's
 * im2col_ld and col2im_ld, bit for bit, on short rows. im2col writes each
 * output row of a column row with whole vectors from the shifted image row
 * (the padding's lanes cleared) where im2col_ld copies it piece by piece;
 * col2im sums each input row in registers over its (kernel row, kernel
 * column) terms in Caffe's order, from +0, and stores it once, where
 * col2im_ld adds column rows into the image one after another. The rows
 * the vectors span are at most CPU_COL_MAX_W floats (output rows for
 * im2col, input rows for col2im), kernels at most CPU_COL_MAX_KW wide
 * (cpu_im2col_fits, cpu_col2im_fits). Column rows are ld floats apart.
 * Reads: memory in [lo, hi) (the batch for im2col, the column buffer for
 * col2im) may be read past a row's ends. Writes: all of the destination
 * (column rows: their out_h x out_w floats; the image: its planes), none
 * past it (vectors that run past a row end on a row stored later). */
#define CPU_COL_MAX_W 32
#define CPU_COL_MAX_KW 16
struct cpu_col_geom {
    int channels, height, width, out_h, out_w;
    int kernel_h, kernel_w, pad_h, pad_w, stride_h, dilation_h, dilation_w;
};
typedef void (*cpu_im2col_fn)(const struct cpu_col_geom *g, const float *im, float *col, long ld, const float *lo,
                              const float *hi);
typedef void (*cpu_col2im_fn)(const struct cpu_col_geom *g, const float *col, long ld, float *im,
                              const float *lo, const float *hi);

struct cpu_ukr {
    const char *isa; /* "avx512", "avx2" */
    int mr, nr;
    cpu_ukr_fn packed; /* for rs_a == 1, cs_a == mr */
    cpu_ukr_fn rows;   /* for cs_a == 1 */
    cpu_pack_fn pack;
    cpu_im2col_fn im2col;
    cpu_col2im_fn col2im;
};

/* Whether the im2col and col2im above take geometry g (stride_w 1 is the
 * caller's). */
static inline bool cpu_col_fits(const struct cpu_col_geom *g, int row)
{
    return row >= 1 && row <= CPU_COL_MAX_W && g->kernel_w >= 1 && g->kernel_w <= CPU_COL_MAX_KW &&
           g->stride_h >= 1 && g->out_w >= 1 && g->width >= 1;
}
static inline bool cpu_im2col_fits(const struct cpu_col_geom *g)
{
    return cpu_col_fits(g, g->out_w);
}
static inline bool cpu_col2im_fits(const struct cpu_col_geom *g)
{
    return cpu_col_fits(g, g->width);
}

/* The kernel for this CPU, or NULL (no AVX2: use OpenBLAS). */
const struct cpu_ukr *cpu_ukr_get(void);
/* A named one ("avx512", "avx2"), or NULL when this CPU lacks it. */
const struct cpu_ukr *cpu_ukr_named(const char *isa);
/* Makes cpu_ukr_get return the named kernel from now on ("blas": none;
 * NULL: the default choice again), for tests and benchmarks; plans made
 * before keep theirs. CREMA_ERR_UNSUPPORTED when this CPU lacks it. */
int cpu_ukr_select(const char *isa);

#endif
