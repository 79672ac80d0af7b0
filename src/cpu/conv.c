/* Batch convolution on crema's threads (see conv.h). Two engines share the
 * plan and its scratch:
 *
 * - packed (x86 with AVX2 or AVX-512, the default there): one image per
 *   work item; im2col (or col2im) around crema's own micro-kernels
 *   (cpu/ukernel.h), which read the column buffer and the output-side
 *   rows in place and the weights from panels packed once per call, so
 *   nothing is copied a second time as OpenBLAS's packing would.
 * - blas (other CPUs, 3-D, CREMA_CPU_ISA=blas): blocks of `block` images
 *   whose columns sit side by side in one im2col buffer, so a small image
 *   (LeNet's 8x8, CIFAR10-quick's 8x8) still makes a GEMM wide enough,
 *   with one-thread OpenBLAS GEMMs.
 *
 * The weight gradient, a sum over the images, is summed per group of
 * images into partial buffers that are added in group order at the end.
 * Items and groups depend on the shape alone, never on the thread count,
 * so results are the same on any number of threads. */
#include "cpu/conv.h"

#include "cpu/math.h"
#include "cpu/threads.h"
#include "cpu/ukernel.h"
#include "util/err.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Columns a block's GEMM should have at least (images x output pixels). */
#define BLOCK_COLUMNS 256
/* Most floats in one thread's im2col buffer (it should stay in L2). */
#define BLOCK_COL_FLOATS (512L * 1024)
/* A batch is cut into at least this many blocks, for the threads to share. */
#define MIN_BLOCKS 8
/* Weight-gradient groups: at most this many, with at most this many floats
 * of partial sums in all. */
#define MAX_GROUPS 8
#define PARTIAL_FLOATS (2L * 1024 * 1024)

/* Reduction lengths the packed engine takes at once: the weight panels'
 * slice and the column rows it meets stay in L1/L2. */
#define KC 256
/* LeNet's conv1 (Kd 25): OpenBLAS 0.53 ms, the packed weight gradient
 * 1.6 ms; CIFAR10-quick's conv1 (Kd 75): packed 9.2 ms, OpenBLAS 12.2. */
#define FILTER_MIN_KD 48
/* The packed weight gradient's vector lanes are output channels, nr at a
 * time: where more than 1/FILTER_MAX_WASTE of the lanes would be padding
 * (LeNet's conv2: 50 channels in 64 lanes) it is slower than OpenBLAS
 * (there 16.1 ms against 12.6 on AVX2); such a shape takes filter_cols
 * where the column's lanes waste no more (and it has no padding), else
 * OpenBLAS. */
#define FILTER_MAX_WASTE 8
/* filter_cols' rows: nr lanes and 8 floats that the last run of kernel
 * columns in a panel may write past them */
#define COLUMN_LD(nr) ((nr) + 8)

/* filter_cols: a run of column rows in one panel that reads `len`
 * consecutive floats of one image row, from `off` past the pixel's window
 * origin, into lanes from `lane` on */
struct col_run {
    long off;
    int lane, len;
};

struct slot {
    float *panel; /* direct engine: KC x nr column panel */
    float *arows; /* direct engine: mr column rows of the image (mr x n_panels nr) */
    float *col; /* K x (block * S): im2col of a block (packed: + mr rows) */
    float *tmp; /* M x (block * S): the block's output side, gathered */
    float *bt;  /* packed engine: the image's output side transposed, in nr-wide panels */
    float *bcols; /* filter_cols: a panel of the column transposed, S rows of COLUMN_LD (nr lanes) */
    float *atail; /* filter_cols: the last part row panel of the output side, mr rows */
};

/* The 2-D geometry the block path uses (1-D is 2-D of height 1). */
struct geom2 {
    int num, groups, in_channels, out_channels;
    int in_h, in_w, out_h, out_w;
    int kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w, dilation_h, dilation_w;
};

struct cpu_conv {
    struct geom2 d;
    bool nd; /* 3-D: one image per block, N-D im2col */
    struct conv_shape s;
    int im_shape[VISION_CONV_MAX_AXES + 1], col_shape[VISION_CONV_MAX_AXES + 1];
    long S, K, Kd, Mg, M, in_dim, out_dim, w_count;
    int block, n_blocks, n_groups, n_slots;
    size_t col_floats; /* of each slot's col (packed engine) */
    bool is_1x1;
    struct slot *slots;
    float *partial; /* n_groups x w_count (blas: when n_groups > 1) */
    float *bias_sums; /* num x M: each image's plane sums, for the bias gradient */
    float *arena;
    /* the packed engine (u NULL: blas) */
    const struct cpu_ukr *u;
    int mr, nr, m_panels, k_panels, o_panels; /* ceil(Mg/mr), ceil(Kd/mr), ceil(Mg/nr) */
    float *wpack;                             /* G x m_panels x Kd x mr */
    /* Backward data: W transposed (G x k_panels x Mg x mr) for a GEMM into
     * the column buffer and col2im; or, for a stride-1 convolution whose
     * input is no larger than its output ("same" padding), the
     * convolution of the output side with the flipped, transposed filter
     * (Kt = Mg x kernel taps, G x t_panels x Kt x mr), which needs no
     * col2im and sums each input gradient in one running sum. */
    bool tconv;
    /* A convolution of horizontal stride 1 ("direct"): the column panels
     * come straight from the image (ukr->pack with off/mask: [k][panel]
     * [segment], for each column row and nr-pixel panel the pieces of
     * output rows it spans, nseg at most, each one offset and lane mask),
     * for the forward and the weight gradient; and for the transposed
     * convolution of a "same" one (toff/tmask: its rows, Mg x taps). */
    bool direct;
    int n_panels, nseg, tnseg;
    long *off, *toff;
    unsigned *mask, *tmask;
    /* The weight gradient through OpenBLAS (blas_filter_group_t, one image
     * at a time) for a short column (Kd < FILTER_MIN_KD): there the packed
     * engine's transposed output side costs more than its GEMM; and where
     * its lanes would be much padding (FILTER_MAX_WASTE) and filter_cols
     * does not take the shape. */
    bool filter_blas;
    /* The weight gradient with the column rows in the vector lanes (dW =
     * dy * col^T: rows output channels, lanes nr column rows at a time)
     * where the channels would leave many lanes empty but the column does
     * not (LeNet's conv2: 50 channels in 64 lanes, 500 rows in 512): for
     * each output pixel its row of the column, straight from the image
     * (no padding: every tap is inside it), in c_panels panels. */
    bool filter_cols;
    int c_panels;
    struct col_run *runs; /* panel q's: runs[run_at[q]] up to runs[run_at[q + 1]] */
    int *run_at;
    size_t cols_floats; /* of each slot's bcols and atail */
    long Kt, S_in;
    int t_panels, tpad_h, tpad_w;
    float *wtpack;
};

/* filter_cols' runs, panel by panel: column row k = (c, kh, kw) of a
 * pixel reads its window origin + c * H * W + kh * dilation_h * W + kw;
 * each panel's part of each (c, kh) row of kw is a run. */
static int column_runs(struct cpu_conv *p)
{
    const struct geom2 *d = &p->d;
    const long KW = d->kernel_w, nr = p->nr, plane = (long)d->in_h * d->in_w;
    const long rows = p->Kd / KW; /* (c, kh) pairs */
    size_t most = (size_t)rows + (size_t)p->c_panels; /* a row split by a panel's end is two runs */
    p->runs = calloc(most, sizeof *p->runs);
    p->run_at = calloc((size_t)p->c_panels + 1, sizeof *p->run_at);
    if (!p->runs || !p->run_at)
        return err_set(CREMA_ERR_NOMEM, "cpu convolution: out of memory (%zu column runs)", most);
    int n = 0;
    long lane = 0, q = 0;
    for (long r = 0; r < rows; r++) {
        long c = r / d->kernel_h, kh = r % d->kernel_h;
        for (long t = 0; t < KW;) {
            long len = KW - t < nr - lane ? KW - t : nr - lane;
            p->runs[n++] = (struct col_run){ c * plane + kh * d->dilation_h * d->in_w + t, (int)lane, (int)len };
            t += len;
            lane += len;
            if (lane == nr) {
                lane = 0;
                p->run_at[++q] = n;
            }
        }
    }
    for (q++; q <= p->c_panels; q++)
        p->run_at[q] = n;
    return CREMA_OK;
}

static int blocks_for(const struct cpu_conv *p, long S, long K)
{
    long b = (BLOCK_COLUMNS + S - 1) / S;
    long by_mem = BLOCK_COL_FLOATS / (K * S > 0 ? K * S : 1);
    if (b > by_mem)
        b = by_mem;
    long by_share = p->d.num / MIN_BLOCKS;
    if (b > by_share)
        b = by_share;
    return b < 1 ? 1 : (int)b;
}

/* The shape as 2-D geometry; false when it has no 2-D form (3-D). */
static bool as_2d(const struct conv_shape *s, struct geom2 *d)
{
    *d = (struct geom2){ .num = s->num, .groups = s->groups, .in_channels = s->in_channels,
                         .out_channels = s->out_channels };
    int a = s->num_spatial_axes == 1 ? 0 : 1; /* the width axis */
    if (s->num_spatial_axes != 1 && s->num_spatial_axes != 2)
        return false;
    d->in_w = s->in_shape[a];
    d->out_w = s->out_shape[a];
    d->kernel_w = s->kernel[a];
    d->pad_w = s->pad[a];
    d->stride_w = s->stride[a];
    d->dilation_w = s->dilation[a];
    if (a == 0) {
        d->in_h = d->out_h = d->kernel_h = d->stride_h = d->dilation_h = 1;
        d->pad_h = 0;
    } else {
        d->in_h = s->in_shape[0];
        d->out_h = s->out_shape[0];
        d->kernel_h = s->kernel[0];
        d->pad_h = s->pad[0];
        d->stride_h = s->stride[0];
        d->dilation_h = s->dilation[0];
    }
    return true;
}

/* Offsets and lane masks of a stride_w-1 convolution's column panels, on
 * an image of planes H x W (the input) and a grid of output pixels
 * OH x OW: for kernel tap t (kernel row, kernel column), panel q (output
 * pixels q nr .. q nr + nr - 1) and segment s (the part of the panel in
 * one output row), lane j of the panel reads plane[off + j] where bit j
 * of mask is set; column row k = c taps + t reads plane c (tables for
 * every row would be Cg times larger and stream through the cache with
 * the image; these stay in L1). When the output rows follow each other
 * in the image (stride 1, OW == W) a whole panel is one segment. */
static int panel_tables(long H, long W, long OH, long OW, const struct geom2 *d, int pad_h, int pad_w, int nr,
                        int n_panels, int *nseg_out, long **off, unsigned **mask)
{
    const long S = OH * OW, taps = (long)d->kernel_h * d->kernel_w;
    const bool merged = d->stride_h == 1 && OW == W;
    int nseg = 1;
    for (long q = 0; !merged && q < n_panels; q++) {
        long last = q * nr + nr - 1 < S - 1 ? q * nr + nr - 1 : S - 1;
        long rows = last / OW - (q * nr) / OW + 1;
        if (rows > nseg)
            nseg = (int)rows;
    }
    size_t n = (size_t)taps * (size_t)n_panels * (size_t)nseg;
    *off = calloc(n, sizeof **off);
    *mask = calloc(n, sizeof **mask);
    if (!*off || !*mask)
        return err_set(CREMA_ERR_NOMEM, "cpu convolution: out of memory (%zu panel offsets)", n);
    *nseg_out = nseg;
    for (long k = 0; k < taps; k++) {
        long t = k;
        long dy = (t / d->kernel_w) * d->dilation_h - pad_h, dx = (t % d->kernel_w) * d->dilation_w - pad_w;
        for (long q = 0; q < n_panels; q++) {
            long *o = *off + (k * n_panels + q) * nseg;
            unsigned *m = *mask + (k * n_panels + q) * nseg;
            for (long j = 0; j < nr; j++) {
                long px = q * nr + j;
                if (px >= S)
                    break;
                long oh = px / OW, ow = px % OW, ih = oh * d->stride_h + dy, iw = ow + dx;
                long sg = merged ? 0 : oh - (q * nr) / OW;
                o[sg] = ih * W + iw - j; /* the same for every lane of the segment */
                if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                    m[sg] |= 1u << j;
            }
        }
    }
    return CREMA_OK;
}

int cpu_conv_create(const struct conv_shape *s, struct cpu_conv **out)
{
    *out = NULL;
    int axes = s->num_spatial_axes;
    bool ok = axes >= 1 && axes <= 3 && s->num > 0 && s->groups > 0 && s->in_channels > 0 && s->out_channels > 0 &&
              s->in_channels % s->groups == 0 && s->out_channels % s->groups == 0;
    long in_sp = 1, out_sp = 1, k_sp = 1;
    for (int i = 0; ok && i < axes; i++) {
        ok = s->in_shape[i] > 0 && s->out_shape[i] > 0 && s->kernel[i] > 0 && s->stride[i] > 0 &&
             s->dilation[i] > 0 && s->pad[i] >= 0 &&
             (long)s->out_shape[i] == ((long)s->in_shape[i] + 2L * s->pad[i] -
                                       ((long)s->dilation[i] * (s->kernel[i] - 1) + 1)) / s->stride[i] + 1;
        in_sp *= s->in_shape[i];
        out_sp *= s->out_shape[i];
        k_sp *= s->kernel[i];
        ok = ok && in_sp <= INT32_MAX && out_sp <= INT32_MAX && k_sp <= INT32_MAX;
    }
    if (!ok)
        return err_set(CREMA_ERR_SHAPE, "cpu convolution: bad shape");
    struct cpu_conv *p = calloc(1, sizeof *p);
    if (!p)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    p->s = *s;
    p->nd = !as_2d(s, &p->d);
    p->im_shape[0] = s->in_channels;
    p->col_shape[0] = (int)((long)s->in_channels * k_sp);
    for (int i = 0; i < axes; i++) {
        p->im_shape[1 + i] = s->in_shape[i];
        p->col_shape[1 + i] = s->out_shape[i];
    }
    p->S = out_sp;
    p->Kd = (long)(s->in_channels / s->groups) * k_sp;
    p->K = p->Kd * s->groups;
    p->M = s->out_channels;
    p->Mg = p->M / s->groups;
    p->in_dim = (long)s->in_channels * in_sp;
    p->out_dim = p->M * p->S;
    p->w_count = p->M * p->Kd;
    p->is_1x1 = k_sp == 1 && in_sp == out_sp;
    for (int i = 0; i < axes; i++)
        p->is_1x1 = p->is_1x1 && s->pad[i] == 0 && s->stride[i] == 1;
    if (p->S > INT32_MAX / 64 || p->K > INT32_MAX / 64 || p->M > INT32_MAX / 64) {
        long M = p->M, K = p->K, S = p->S;
        free(p);
        return err_set(CREMA_ERR_SHAPE, "cpu convolution: %ld x %ld x %ld is too large", M, K, S);
    }
    p->u = p->nd ? NULL : cpu_ukr_get();
    p->block = p->nd || p->u ? 1 : blocks_for(p, p->S, p->K);
    p->n_blocks = (s->num + p->block - 1) / p->block;
    long groups = PARTIAL_FLOATS / p->w_count;
    if (groups > MAX_GROUPS)
        groups = MAX_GROUPS;
    if (groups < 2)
        groups = 2;
    if (groups > p->n_blocks)
        groups = p->n_blocks;
    p->n_groups = (int)groups;
    p->n_slots = cpu_num_threads();
    if (p->n_slots > p->n_blocks)
        p->n_slots = p->n_blocks;

    size_t cols = (size_t)p->block * (size_t)p->S, per_slot, partial, shared = 0;
    if (p->u) {
        p->mr = p->u->mr;
        p->nr = p->u->nr;
        p->m_panels = (int)((p->Mg + p->mr - 1) / p->mr);
        p->k_panels = (int)((p->Kd + p->mr - 1) / p->mr);
        p->o_panels = (int)((p->Mg + p->nr - 1) / p->nr);
        p->filter_blas = p->Kd < FILTER_MIN_KD ||
                         ((long)p->o_panels * p->nr - p->Mg) * FILTER_MAX_WASTE > p->Mg;
        const struct geom2 *d = &p->d;
        p->c_panels = (int)((p->Kd + p->nr - 1) / p->nr);
        p->filter_cols = p->filter_blas && p->Kd >= FILTER_MIN_KD && !p->is_1x1 && d->pad_h == 0 &&
                         d->pad_w == 0 && d->dilation_w == 1 &&
                         ((long)p->c_panels * p->nr - p->Kd) * FILTER_MAX_WASTE <= p->Kd;
        if (p->filter_cols) {
            int rc = column_runs(p);
            if (rc) {
                cpu_conv_free(p);
                return rc;
            }
            p->filter_blas = false;
            p->cols_floats = (size_t)p->S * (size_t)COLUMN_LD(p->nr) + (size_t)p->mr * (size_t)p->S;
        }
        p->S_in = (long)d->in_h * d->in_w;
        p->tpad_h = d->dilation_h * (d->kernel_h - 1) - d->pad_h;
        p->tpad_w = d->dilation_w * (d->kernel_w - 1) - d->pad_w;
        p->tconv = d->stride_h == 1 && d->stride_w == 1 && p->tpad_h >= 0 && p->tpad_w >= 0 && p->S_in <= p->S &&
                   !p->is_1x1;
        p->Kt = p->Mg * d->kernel_h * d->kernel_w;
        p->direct = d->stride_w == 1 && !p->is_1x1 && p->nr <= 32;
        p->n_panels = (int)((p->S + p->nr - 1) / p->nr);
        p->t_panels = (int)((d->in_channels / d->groups + p->mr - 1) / p->mr);
        /* the column buffer has mr rows more: the last row panel reads them;
         * the direct engine needs one for OpenBLAS's weight gradient, and
         * for the input gradient unless it is the transposed convolution */
        size_t col = (size_t)(p->K + p->mr) * cols;
        if (p->tconv && (size_t)p->Kt * (size_t)p->S_in > col)
            col = (size_t)p->Kt * (size_t)p->S_in;
        size_t direct_bufs = 0;
        if (p->direct) {
            direct_bufs = (size_t)KC * (size_t)p->nr + (size_t)p->mr * (size_t)p->n_panels * (size_t)p->nr;
            if (p->tconv && p->S_in == p->S && !p->filter_blas)
                col = 0;
        }
        p->col_floats = col;
        per_slot = direct_bufs + col + (size_t)p->o_panels * (size_t)p->nr * cols + p->cols_floats;
        partial = (size_t)p->n_groups * (size_t)p->w_count;
        size_t wt = p->tconv ? (size_t)p->t_panels * (size_t)p->Kt : (size_t)p->k_panels * (size_t)p->Mg;
        shared = (size_t)s->groups * (size_t)p->mr * ((size_t)p->m_panels * (size_t)p->Kd + wt);
    } else {
        per_slot = (size_t)p->K * cols + (p->block > 1 ? (size_t)p->M * cols : 0);
        partial = p->n_groups > 1 ? (size_t)p->n_groups * (size_t)p->w_count : 0;
    }
    size_t total = per_slot * (size_t)p->n_slots + partial + shared;
    p->slots = calloc((size_t)p->n_slots, sizeof *p->slots);
    p->arena = calloc(total ? total : 1, sizeof(float));
    if (!p->slots || !p->arena) {
        cpu_conv_free(p);
        return err_set(CREMA_ERR_NOMEM, "cpu convolution: out of memory (%zu floats of scratch)", total);
    }
    float *a = p->arena;
    for (int sl = 0; sl < p->n_slots; sl++) {
        if (p->u && p->direct) {
            p->slots[sl].panel = a;
            p->slots[sl].arows = a + (size_t)KC * (size_t)p->nr;
            a += (size_t)KC * (size_t)p->nr + (size_t)p->mr * (size_t)p->n_panels * (size_t)p->nr;
        }
        p->slots[sl].col = a;
        if (p->u) {
            a += per_slot - (size_t)p->o_panels * (size_t)p->nr * cols - p->cols_floats -
                 (p->direct ? (size_t)KC * (size_t)p->nr + (size_t)p->mr * (size_t)p->n_panels * (size_t)p->nr : 0);
            p->slots[sl].bt = a;
            a += (size_t)p->o_panels * (size_t)p->nr * cols;
            if (p->filter_cols) {
                p->slots[sl].bcols = a;
                p->slots[sl].atail = a + (size_t)p->S * (size_t)COLUMN_LD(p->nr);
                a += p->cols_floats;
            }
        } else {
            a += (size_t)p->K * cols;
            if (p->block > 1) {
                p->slots[sl].tmp = a;
                a += (size_t)p->M * cols;
            }
        }
    }
    p->partial = partial ? a : NULL;
    a += partial;
    if (p->u) {
        p->wpack = a;
        a += (size_t)s->groups * (size_t)p->m_panels * (size_t)p->Kd * (size_t)p->mr;
        p->wtpack = a;
    }
    if (p->u && p->direct) {
        const struct geom2 *d = &p->d;
        int rc = panel_tables(d->in_h, d->in_w, d->out_h, d->out_w, d, d->pad_h, d->pad_w, p->nr, p->n_panels,
                              &p->nseg, &p->off, &p->mask);
        /* the transposed convolution of a "same" one: image and grid alike */
        if (!rc && p->tconv && p->S_in == p->S)
            rc = panel_tables(d->out_h, d->out_w, d->in_h, d->in_w, d, p->tpad_h, p->tpad_w, p->nr, p->n_panels,
                              &p->tnseg, &p->toff, &p->tmask);
        if (rc) {
            cpu_conv_free(p);
            return rc;
        }
    }
    p->bias_sums = calloc((size_t)s->num * (size_t)p->M, sizeof *p->bias_sums);
    if (!p->bias_sums) {
        size_t n = (size_t)s->num * (size_t)p->M;
        cpu_conv_free(p);
        return err_set(CREMA_ERR_NOMEM, "cpu convolution: out of memory (%zu bias sums)", n);
    }
    cpu_blas_init();
    *out = p;
    return CREMA_OK;
}

void cpu_conv_free(struct cpu_conv *p)
{
    if (!p)
        return;
    free(p->off);
    free(p->mask);
    free(p->toff);
    free(p->tmask);
    free(p->runs);
    free(p->run_at);
    free(p->bias_sums);
    free(p->slots);
    free(p->arena);
    free(p);
}

/* ---- one block ---- */

static void block_range(const struct cpu_conv *p, int b, int *n0, int *nb)
{
    *n0 = b * p->block;
    *nb = p->d.num - *n0 < p->block ? p->d.num - *n0 : p->block;
}

/* One image's im2col or col2im (channels planes h x w, the convolution's
 * kernel, padding pad_h/pad_w, stride 1 across): the micro-kernels' on
 * short rows, else math.h's. [lo, hi): what the kernels may read (the
 * batch, the column buffer). */
static struct cpu_col_geom col_geom(const struct geom2 *d, int channels, int h, int w, int pad_h, int pad_w)
{
    return (struct cpu_col_geom){
        .channels = channels, .height = h, .width = w, .kernel_h = d->kernel_h, .kernel_w = d->kernel_w,
        .pad_h = pad_h, .pad_w = pad_w, .stride_h = d->stride_h, .dilation_h = d->dilation_h,
        .dilation_w = d->dilation_w,
        .out_h = (h + 2 * pad_h - (d->dilation_h * (d->kernel_h - 1) + 1)) / d->stride_h + 1,
        .out_w = (w + 2 * pad_w - (d->dilation_w * (d->kernel_w - 1) + 1)) / d->stride_w + 1,
    };
}

static void image_im2col(const struct cpu_conv *p, const struct geom2 *d, const float *x, int channels, int h, int w,
                         int pad_h, int pad_w, float *col, long ld, const float *lo, const float *hi)
{
    struct cpu_col_geom g = col_geom(d, channels, h, w, pad_h, pad_w);
    if (p->u && d->stride_w == 1 && cpu_im2col_fits(&g))
        p->u->im2col(&g, x, col, ld, lo, hi);
    else
        im2col_ld(x, channels, h, w, d->kernel_h, d->kernel_w, pad_h, pad_w, d->stride_h, d->stride_w,
                  d->dilation_h, d->dilation_w, col, ld);
}

static void image_col2im(const struct cpu_conv *p, const float *col, long ld, float *x, const float *lo,
                         const float *hi)
{
    const struct geom2 *d = &p->d;
    struct cpu_col_geom g = col_geom(d, d->in_channels, d->in_h, d->in_w, d->pad_h, d->pad_w);
    if (p->u && d->stride_w == 1 && cpu_col2im_fits(&g))
        p->u->col2im(&g, col, ld, x, lo, hi);
    else
        col2im_ld(col, ld, d->in_channels, d->in_h, d->in_w, d->kernel_h, d->kernel_w, d->pad_h, d->pad_w,
                  d->stride_h, d->stride_w, d->dilation_h, d->dilation_w, x);
}

/* The block's columns: K rows of nb * S, images side by side (or the
 * image itself, for a 1x1 convolution of one image). */
static const float *block_im2col(const struct cpu_conv *p, const struct slot *sl, const float *im, int n0, int nb)
{
    const struct geom2 *d = &p->d;
    const struct conv_shape *s = &p->s;
    if (p->is_1x1 && nb == 1)
        return im + (size_t)n0 * (size_t)p->in_dim;
    if (p->nd) {
        im2col_nd(im + (size_t)n0 * (size_t)p->in_dim, s->num_spatial_axes, p->im_shape, p->col_shape, s->kernel,
                  s->pad, s->stride, s->dilation, sl->col);
        return sl->col;
    }
    long ld = (long)nb * p->S;
    const float *end = im + (size_t)p->d.num * (size_t)p->in_dim;
    for (int i = 0; i < nb; i++)
        image_im2col(p, d, im + (size_t)(n0 + i) * (size_t)p->in_dim, d->in_channels, d->in_h, d->in_w, d->pad_h,
                     d->pad_w, sl->col + (size_t)i * (size_t)p->S, ld, im, end);
    return sl->col;
}

/* The block's output side as M rows of nb * S (gathered when nb > 1). */
static const float *block_gather(const struct cpu_conv *p, const struct slot *sl, const float *out, int n0, int nb)
{
    const float *src = out + (size_t)n0 * (size_t)p->out_dim;
    if (nb == 1)
        return src;
    long ld = (long)nb * p->S;
    for (int i = 0; i < nb; i++)
        for (long m = 0; m < p->M; m++)
            memcpy(sl->tmp + m * ld + (long)i * p->S, src + (size_t)i * (size_t)p->out_dim + (size_t)(m * p->S),
                   (size_t)p->S * sizeof(float));
    return sl->tmp;
}

/* o[m][x] += bias[m] for m < M, x in [x0, x0 + n) of rows S long. */
static void add_bias(float *o, const float *bias, long M, long S, long x0, long n)
{
    for (long m = 0; m < M; m++) {
        float b = bias[m], *r = o + m * S + x0;
        for (long x = 0; x < n; x++)
            r[x] += b;
    }
}

static void forward_block(const struct cpu_conv *p, const struct slot *sl, const float *im, const float *w,
                          const float *bias, float *out, int b)
{
    int n0, nb;
    block_range(p, b, &n0, &nb);
    const float *col = block_im2col(p, sl, im, n0, nb);
    long ld = (long)nb * p->S;
    float *dst = nb == 1 ? out + (size_t)n0 * (size_t)p->out_dim : sl->tmp;
    for (int g = 0; g < p->d.groups; g++)
        cpu_gemm_serial(false, false, (int)p->Mg, (int)ld, (int)p->Kd, 1.f, w + (size_t)g * (size_t)(p->Mg * p->Kd),
                        (int)p->Kd, col + (size_t)g * (size_t)(p->Kd * ld), (int)ld, 0.f,
                        dst + (size_t)g * (size_t)(p->Mg * ld), (int)ld);
    if (nb > 1)
        for (int i = 0; i < nb; i++)
            for (long m = 0; m < p->M; m++)
                memcpy(out + (size_t)(n0 + i) * (size_t)p->out_dim + (size_t)(m * p->S),
                       sl->tmp + m * ld + (long)i * p->S, (size_t)p->S * sizeof(float));
    for (int i = 0; bias && i < nb; i++)
        add_bias(out + (size_t)(n0 + i) * (size_t)p->out_dim, bias, p->M, p->S, 0, p->S);
}

static void backward_data_block(const struct cpu_conv *p, const struct slot *sl, const float *out, const float *w,
                                float *im, int b)
{
    const struct geom2 *d = &p->d;
    const struct conv_shape *s = &p->s;
    int n0, nb;
    block_range(p, b, &n0, &nb);
    const float *src = block_gather(p, sl, out, n0, nb);
    long ld = (long)nb * p->S;
    /* A 1x1 convolution of one image writes the image directly. */
    bool direct = p->is_1x1 && nb == 1;
    float *col = direct ? im + (size_t)n0 * (size_t)p->in_dim : sl->col;
    for (int g = 0; g < d->groups; g++)
        cpu_gemm_serial(true, false, (int)p->Kd, (int)ld, (int)p->Mg, 1.f, w + (size_t)g * (size_t)(p->Mg * p->Kd),
                        (int)p->Kd, src + (size_t)g * (size_t)(p->Mg * ld), (int)ld, 0.f,
                        col + (size_t)g * (size_t)(p->Kd * ld), (int)ld);
    if (direct)
        return;
    if (p->nd) {
        col2im_nd(col, s->num_spatial_axes, p->im_shape, p->col_shape, s->kernel, s->pad, s->stride, s->dilation,
                  im + (size_t)n0 * (size_t)p->in_dim);
        return;
    }
    for (int i = 0; i < nb; i++)
        col2im_ld(col + (size_t)i * (size_t)p->S, ld, d->in_channels, d->in_h, d->in_w, d->kernel_h, d->kernel_w,
                  d->pad_h, d->pad_w, d->stride_h, d->stride_w, d->dilation_h, d->dilation_w,
                  im + (size_t)(n0 + i) * (size_t)p->in_dim);
}

/* dst (+)= out_block * col_block^T for the blocks of group r; the group's
 * first block overwrites dst when `fresh`. */
static void filter_group(const struct cpu_conv *p, const struct slot *sl, const float *im, const float *out,
                         float *dst, bool fresh, int r)
{
    int b0 = (int)((long)r * p->n_blocks / p->n_groups), b1 = (int)((long)(r + 1) * p->n_blocks / p->n_groups);
    for (int b = b0; b < b1; b++) {
        int n0, nb;
        block_range(p, b, &n0, &nb);
        const float *col = block_im2col(p, sl, im, n0, nb);
        const float *src = block_gather(p, sl, out, n0, nb);
        long ld = (long)nb * p->S;
        float beta = fresh && b == b0 ? 0.f : 1.f;
        for (int g = 0; g < p->d.groups; g++)
            cpu_gemm_serial(false, true, (int)p->Mg, (int)p->Kd, (int)ld, 1.f, src + (size_t)g * (size_t)(p->Mg * ld),
                            (int)ld, col + (size_t)g * (size_t)(p->Kd * ld), (int)ld, beta,
                            dst + (size_t)g * (size_t)(p->Mg * p->Kd), (int)p->Kd);
    }
}

/* ---- the packed engine: one image per item ---- */

/* A reduction of len in nearly equal blocks of at most KC. */
static int kblocks(long len)
{
    return (int)((len + KC - 1) / KC);
}

static void kblock(long len, int nb, int b, long *k0, long *kc)
{
    *k0 = len * b / nb;
    *kc = len * (b + 1) / nb - *k0;
}

static long min_l(long a, long b)
{
    return a < b ? a : b;
}

struct pack_job {
    const struct cpu_conv *p;
    const float *w;
    bool transposed; /* wtpack (backward data) instead of wpack */
};

/* wpack[g][i][k][r] = W[g Mg + i mr + r][k]; wtpack[g][i][m][r] =
 * W[g Mg + m][i mr + r]; zero past Mg (Kd). One index per panel. */
static int pack_weights(void *ctx, size_t t0, size_t t1)
{
    const struct pack_job *j = ctx;
    const struct cpu_conv *p = j->p;
    const long mr = p->mr, Kd = p->Kd, Mg = p->Mg;
    for (size_t t = t0; t < t1; t++) {
        if (!j->transposed) {
            long g = (long)t / p->m_panels, i = (long)t % p->m_panels;
            float *dst = p->wpack + (long)t * Kd * mr;
            for (long r = 0; r < mr; r++) {
                long m = i * mr + r;
                const float *src = j->w + (g * Mg + m) * Kd;
                for (long k = 0; k < Kd; k++)
                    dst[k * mr + r] = m < Mg ? src[k] : 0.f;
            }
        } else if (p->tconv) {
            /* Wt[g][c][m kk + t] = W[g Mg + m][c kk + kk - 1 - t] */
            long kk = (long)p->d.kernel_h * p->d.kernel_w, Cg = p->d.in_channels / p->d.groups;
            long g = (long)t / p->t_panels, i = (long)t % p->t_panels;
            float *dst = p->wtpack + (long)t * p->Kt * mr;
            for (long r = 0; r < mr; r++) {
                long c = i * mr + r;
                for (long m = 0; m < Mg; m++) {
                    const float *src = j->w + (g * Mg + m) * Kd + c * kk + kk - 1;
                    for (long x = 0; x < kk; x++)
                        dst[(m * kk + x) * mr + r] = c < Cg ? src[-x] : 0.f;
                }
            }
        } else {
            long g = (long)t / p->k_panels, i = (long)t % p->k_panels, n = min_l(mr, Kd - i * mr);
            float *dst = p->wtpack + (long)t * Mg * mr;
            for (long m = 0; m < Mg; m++) {
                const float *src = j->w + (g * Mg + m) * Kd + i * mr;
                for (long r = 0; r < mr; r++)
                    dst[m * mr + r] = r < n ? src[r] : 0.f;
            }
        }
    }
    return 0;
}

static void pack(const struct cpu_conv *p, const float *w, bool transposed)
{
    struct pack_job j = { p, w, transposed };
    size_t panels = (size_t)p->d.groups *
                    (size_t)(!transposed ? p->m_panels : p->tconv ? p->t_panels : p->k_panels);
    size_t per = (size_t)p->mr * (size_t)(!transposed ? p->Kd : p->tconv ? p->Kt : p->Mg);
    cpu_parallel_for(panels, cpu_grain(per), pack_weights, &j);
}

/* Image n's columns in the slot (ld S), or the image itself for a 1x1
 * convolution unless `copy` (the weight gradient reads mr rows more). */
static const float *packed_im2col(const struct cpu_conv *p, const struct slot *sl, const float *im, int n, bool copy)
{
    const struct geom2 *d = &p->d;
    const float *x = im + (size_t)n * (size_t)p->in_dim;
    if (p->is_1x1 && !copy)
        return x;
    if (p->is_1x1)
        memcpy(sl->col, x, (size_t)p->in_dim * sizeof(float));
    else
        image_im2col(p, d, x, d->in_channels, d->in_h, d->in_w, d->pad_h, d->pad_w, sl->col, p->S, im,
                     im + (size_t)d->num * (size_t)p->in_dim);
    return sl->col;
}

/* ---- the direct engine: column panels straight from the image ---- */

/* Column rows k0 .. k0 + kc - 1 of panel q into dst (nr floats a row),
 * from planes of `plane` floats: a call of ukr->pack per plane; the
 * tensor im lies in is [lo, hi). */
static void pack_rows(const struct cpu_conv *p, const float *im, long plane, const long *off, const unsigned *mask,
                      int ns, long k0, long kc, long q, float *dst, const float *lo, const float *hi)
{
    const long taps = (long)p->d.kernel_h * p->d.kernel_w, np = p->n_panels;
    for (long k = k0; k < k0 + kc;) {
        long c = k / taps, t = k % taps, run = min_l(taps - t, k0 + kc - k);
        p->u->pack((int)run, im + c * plane, off + (t * np + q) * ns, mask + (t * np + q) * ns, ns, np * ns,
                   dst + (k - k0) * p->nr, p->nr, lo, hi);
        k += run;
    }
}

static void direct_forward_image(const struct cpu_conv *p, const struct slot *sl, const float *im, const float *bias,
                                 float *out, int n)
{
    const struct cpu_ukr *u = p->u;
    const long S = p->S, Kd = p->Kd, Mg = p->Mg, mr = p->mr, nr = p->nr, np = p->n_panels, ns = p->nseg;
    const long Cg = p->d.in_channels / p->d.groups;
    const float *x = im + (size_t)n * (size_t)p->in_dim;
    float *o = out + (size_t)n * (size_t)p->out_dim;
    int nkb = kblocks(Kd);
    for (long g = 0; g < p->d.groups; g++)
        for (long q = 0; q < np; q++)
            for (int kb = 0; kb < nkb; kb++) {
                long k0, kc;
                kblock(Kd, nkb, kb, &k0, &kc);
                pack_rows(p, x + g * Cg * p->S_in, p->S_in, p->off, p->mask, (int)ns, k0, kc, q, sl->panel, im,
                          im + (size_t)p->d.num * (size_t)p->in_dim);
                for (long i = 0; i < p->m_panels; i++)
                    u->packed((int)kc, p->wpack + ((g * p->m_panels + i) * Kd + k0) * mr, 1, mr, sl->panel, nr,
                              o + (g * Mg + i * mr) * S + q * nr, S, (int)min_l(mr, Mg - i * mr),
                              (int)min_l(nr, S - q * nr), kb > 0, true);
                if (bias && kb == nkb - 1) /* the panel's sums are done */
                    add_bias(o + g * Mg * S, bias + g * Mg, Mg, S, q * nr, min_l(nr, S - q * nr));
            }
}

/* The input gradient as the transposed convolution of the output side. */
static void direct_backward_data_image(const struct cpu_conv *p, const struct slot *sl, const float *out, float *im,
                                       int n)
{
    const struct cpu_ukr *u = p->u;
    const long S = p->S, Kt = p->Kt, Mg = p->Mg, mr = p->mr, nr = p->nr, np = p->n_panels, ns = p->tnseg;
    const long Cg = p->d.in_channels / p->d.groups;
    const float *dy = out + (size_t)n * (size_t)p->out_dim;
    float *x = im + (size_t)n * (size_t)p->in_dim;
    int nkb = kblocks(Kt);
    for (long g = 0; g < p->d.groups; g++)
        for (long q = 0; q < np; q++)
            for (int kb = 0; kb < nkb; kb++) {
                long k0, kc;
                kblock(Kt, nkb, kb, &k0, &kc);
                pack_rows(p, dy + g * Mg * S, S, p->toff, p->tmask, (int)ns, k0, kc, q, sl->panel, out,
                          out + (size_t)p->d.num * (size_t)p->out_dim);
                for (long i = 0; i < p->t_panels; i++)
                    u->packed((int)kc, p->wtpack + ((g * p->t_panels + i) * Kt + k0) * mr, 1, mr, sl->panel, nr,
                              x + (g * Cg + i * mr) * S + q * nr, S, (int)min_l(mr, Cg - i * mr),
                              (int)min_l(nr, S - q * nr), kb > 0, true);
            }
}

static void pack_output_t(const struct cpu_conv *p, const struct slot *sl, const float *dy, long g);

/* The weight gradient: mr column rows at a time, packed from the image. */
static void direct_filter_group(const struct cpu_conv *p, const struct slot *sl, const float *im, const float *out,
                                int r)
{
    const struct cpu_ukr *u = p->u;
    const long S = p->S, Kd = p->Kd, Mg = p->Mg, mr = p->mr, nr = p->nr, np = p->n_panels, spad = np * nr;
    const long ns = p->nseg;
    const long Cg = p->d.in_channels / p->d.groups;
    float *P = p->partial + (size_t)r * (size_t)p->w_count;
    int n0 = (int)((long)r * p->d.num / p->n_groups), n1 = (int)((long)(r + 1) * p->d.num / p->n_groups);
    int npb = kblocks(S);
    for (int n = n0; n < n1; n++) {
        const float *x = im + (size_t)n * (size_t)p->in_dim;
        const float *dy = out + (size_t)n * (size_t)p->out_dim;
        for (long g = 0; g < p->d.groups; g++) {
            pack_output_t(p, sl, dy, g);
            for (long i = 0; i < p->k_panels; i++) {
                long rows = min_l(mr, Kd - i * mr);
                for (long rr = 0; rr < mr; rr++) {
                    long k = i * mr + rr, taps = (long)p->d.kernel_h * p->d.kernel_w;
                    if (rr < rows)
                        u->pack((int)np, x + (g * Cg + k / taps) * p->S_in, p->off + (k % taps) * np * ns,
                                p->mask + (k % taps) * np * ns, (int)ns, ns, sl->arows + rr * spad, nr, im,
                                im + (size_t)p->d.num * (size_t)p->in_dim);
                    else
                        memset(sl->arows + rr * spad, 0, (size_t)spad * sizeof(float));
                }
                for (int pb = 0; pb < npb; pb++) {
                    long x0, xc;
                    kblock(S, npb, pb, &x0, &xc);
                    bool acc = n > n0 || pb > 0;
                    for (long j = 0; j < p->o_panels; j++)
                        u->rows((int)xc, sl->arows + x0, spad, 1, sl->bt + (j * S + x0) * nr, nr,
                                P + (g * Kd + i * mr) * Mg + j * nr, Mg, (int)rows, (int)min_l(nr, Mg - j * nr), acc, true);
                }
            }
        }
    }
}

static void packed_forward_image(const struct cpu_conv *p, const struct slot *sl, const float *im, const float *bias,
                                 float *out, int n)
{
    const struct cpu_ukr *u = p->u;
    const long S = p->S, Kd = p->Kd, Mg = p->Mg, mr = p->mr, nr = p->nr;
    const float *col = packed_im2col(p, sl, im, n, false);
    float *o = out + (size_t)n * (size_t)p->out_dim;
    int nkb = kblocks(Kd);
    for (long g = 0; g < p->d.groups; g++)
        for (int kb = 0; kb < nkb; kb++) {
            long k0, kc;
            kblock(Kd, nkb, kb, &k0, &kc);
            for (long q = 0; q < S; q += nr)
                for (long i = 0; i < p->m_panels; i++)
                    u->packed((int)kc, p->wpack + ((g * p->m_panels + i) * Kd + k0) * mr, 1, mr,
                              col + (g * Kd + k0) * S + q, S, o + (g * Mg + i * mr) * S + q, S,
                              (int)min_l(mr, Mg - i * mr), (int)min_l(nr, S - q), kb > 0, false);
        }
    if (bias)
        add_bias(o, bias, p->M, S, 0, S);
}

static void packed_backward_data_image(const struct cpu_conv *p, const struct slot *sl, const float *out, float *im,
                                       int n)
{
    const struct geom2 *d = &p->d;
    const struct cpu_ukr *u = p->u;
    const long S = p->S, Kd = p->Kd, Mg = p->Mg, mr = p->mr, nr = p->nr;
    const float *dy = out + (size_t)n * (size_t)p->out_dim;
    float *x = im + (size_t)n * (size_t)p->in_dim;
    if (p->tconv) {
        const long Sx = p->S_in, Kt = p->Kt, Cg = d->in_channels / d->groups;
        int nkb = kblocks(Kt);
        for (long g = 0; g < d->groups; g++) {
            image_im2col(p, d, dy + g * Mg * S, (int)Mg, d->out_h, d->out_w, p->tpad_h, p->tpad_w, sl->col, Sx, out,
                         out + (size_t)d->num * (size_t)p->out_dim);
            for (int kb = 0; kb < nkb; kb++) {
                long k0, kc;
                kblock(Kt, nkb, kb, &k0, &kc);
                for (long q = 0; q < Sx; q += nr)
                    for (long i = 0; i < p->t_panels; i++)
                        u->packed((int)kc, p->wtpack + ((g * p->t_panels + i) * Kt + k0) * mr, 1, mr,
                                  sl->col + k0 * Sx + q, Sx, x + (g * Cg + i * mr) * Sx + q, Sx,
                                  (int)min_l(mr, Cg - i * mr), (int)min_l(nr, Sx - q), kb > 0, false);
            }
        }
        return;
    }
    float *col = p->is_1x1 ? x : sl->col;
    int nmb = kblocks(Mg);
    for (long g = 0; g < d->groups; g++)
        for (int mb = 0; mb < nmb; mb++) {
            long m0, mc;
            kblock(Mg, nmb, mb, &m0, &mc);
            for (long q = 0; q < S; q += nr)
                for (long i = 0; i < p->k_panels; i++)
                    u->packed((int)mc, p->wtpack + ((g * p->k_panels + i) * Mg + m0) * mr, 1, mr,
                              dy + (g * Mg + m0) * S + q, S, col + (g * Kd + i * mr) * S + q, S,
                              (int)min_l(mr, Kd - i * mr), (int)min_l(nr, S - q), mb > 0, false);
        }
    if (p->is_1x1)
        return;
    image_col2im(p, col, S, x, sl->col, sl->col + p->col_floats);
}

/* bt[j][pixel][jj] = dy[g Mg + j nr + jj][pixel], zero past Mg: the
 * output side of one image and group, transposed into nr-wide panels. */
static void pack_output_t(const struct cpu_conv *p, const struct slot *sl, const float *dy, long g)
{
    const long S = p->S, Mg = p->Mg, nr = p->nr;
    for (long j = 0; j < p->o_panels; j++)
        for (long jj = 0; jj < nr; jj++) {
            long m = j * nr + jj;
            float *dst = sl->bt + j * S * nr + jj;
            const float *src = dy + (g * Mg + m) * S;
            if (m < Mg)
                for (long x = 0; x < S; x++)
                    dst[x * nr] = src[x];
            else
                for (long x = 0; x < S; x++)
                    dst[x * nr] = 0.f;
        }
}

/* Group r's images into partial r, laid out as dW transposed ([G][Kd][Mg]):
 * the micro-kernel's rows are column rows, its vector lanes output
 * channels, its sum over the image's pixels. */
static void packed_filter_group(const struct cpu_conv *p, const struct slot *sl, const float *im, const float *out,
                                int r)
{
    const struct cpu_ukr *u = p->u;
    const long S = p->S, Kd = p->Kd, Mg = p->Mg, mr = p->mr, nr = p->nr;
    float *P = p->partial + (size_t)r * (size_t)p->w_count;
    int n0 = (int)((long)r * p->d.num / p->n_groups), n1 = (int)((long)(r + 1) * p->d.num / p->n_groups);
    int npb = kblocks(S);
    for (int n = n0; n < n1; n++) {
        const float *col = packed_im2col(p, sl, im, n, true);
        const float *dy = out + (size_t)n * (size_t)p->out_dim;
        for (long g = 0; g < p->d.groups; g++) {
            pack_output_t(p, sl, dy, g);
            for (int pb = 0; pb < npb; pb++) {
                long x0, xc;
                kblock(S, npb, pb, &x0, &xc);
                bool acc = n > n0 || pb > 0;
                for (long j = 0; j < p->o_panels; j++)
                    for (long i = 0; i < p->k_panels; i++)
                        u->rows((int)xc, col + (g * Kd + i * mr) * S + x0, S, 1, sl->bt + (j * S + x0) * nr, nr,
                                P + (g * Kd + i * mr) * Mg + j * nr, Mg, (int)min_l(mr, Kd - i * mr),
                                (int)min_l(nr, Mg - j * nr), acc, true);
            }
        }
    }
}

/* 8 floats; one vector where the micro-kernels run (AVX2 there: memcpy
 * would take two, GCC's generic tuning splitting unaligned ones) */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define COLUMN_TARGET __attribute__((target("avx2")))
__attribute__((target("avx2"), always_inline)) static inline void copy8(float *dst, const float *src)
{
    _mm256_storeu_ps(dst, _mm256_loadu_ps(src));
}
#else
#define COLUMN_TARGET
static inline void copy8(float *dst, const float *src)
{
    memcpy(dst, src, 8 * sizeof *dst);
}
#endif

/* Panel q of the column transposed, the group's image at src: row px
 * (pixel px's column rows in the lanes) of each run's floats, 8 at a
 * time; what a copy writes past its run the next run overwrites, or lies
 * past Kd or in the row's 8 spare floats. The 8-float reads do not leave
 * the batch (below hi). */
COLUMN_TARGET static void column_panel(const struct cpu_conv *p, const float *src, long q, float *dst,
                                       const float *hi)
{
    const struct geom2 *d = &p->d;
    const long ld = COLUMN_LD(p->nr);
    const struct col_run *r0 = p->runs + p->run_at[q], *r1 = p->runs + p->run_at[q + 1];
    if (r0 == r1)
        return;
    /* the panel's reads span [base + r0->off, base + last->off + last->len + 7] */
    const long span = (r1 - 1)->off + (r1 - 1)->len + 8;
    for (long oh = 0; oh < d->out_h; oh++)
        for (long ow = 0; ow < d->out_w; ow++, dst += ld) {
            const float *base = src + oh * d->stride_h * d->in_w + ow * d->stride_w;
            if (base + span <= hi && d->kernel_w <= 8) {
                for (const struct col_run *r = r0; r < r1; r++)
                    copy8(dst + r->lane, base + r->off);
                continue;
            }
            for (const struct col_run *r = r0; r < r1; r++)
                for (long e = 0; e < r->len; e += 8) {
                    const float *from = base + r->off + e;
                    if (from + 8 <= hi)
                        copy8(dst + r->lane + e, from);
                    else
                        for (long i = 0; i < r->len - e && from + i < hi; i++)
                            dst[r->lane + e + i] = from[i];
                }
        }
}

/* Group r's images into partial r as dW ([G][Mg][Kd]), filter_cols: the
 * micro-kernel's rows are output channels (the output side read in place,
 * its last part panel from a copy padded to mr rows), its lanes column
 * rows, its sum over the image's pixels. */
static void cols_filter_group(const struct cpu_conv *p, const struct slot *sl, const float *im, const float *out,
                              int r)
{
    const struct cpu_ukr *u = p->u;
    const struct geom2 *d = &p->d;
    const long S = p->S, Kd = p->Kd, Mg = p->Mg, mr = p->mr, nr = p->nr, np = p->c_panels, ld = COLUMN_LD(nr);
    const long Cg = d->in_channels / d->groups, plane = (long)d->in_h * d->in_w;
    float *P = p->partial + (size_t)r * (size_t)p->w_count;
    int n0 = (int)((long)r * d->num / p->n_groups), n1 = (int)((long)(r + 1) * d->num / p->n_groups);
    const float *hi = im + (size_t)d->num * (size_t)p->in_dim;
    int npb = kblocks(S);
    for (int n = n0; n < n1; n++) {
        const float *x = im + (size_t)n * (size_t)p->in_dim;
        const float *dy = out + (size_t)n * (size_t)p->out_dim;
        for (long g = 0; g < d->groups; g++) {
            const float *xg = x + g * Cg * plane, *A = dy + g * Mg * S;
            long tail = Mg % mr; /* rows in the last panel, when part */
            if (tail) {
                memcpy(sl->atail, A + (Mg - tail) * S, (size_t)(tail * S) * sizeof(float));
                memset(sl->atail + tail * S, 0, (size_t)((mr - tail) * S) * sizeof(float));
            }
            /* a panel at a time, in L1 while every row panel meets it */
            for (long j = 0; j < np; j++) {
                column_panel(p, xg, j, sl->bcols, hi);
                for (int pb = 0; pb < npb; pb++) {
                    long x0, xc;
                    kblock(S, npb, pb, &x0, &xc);
                    for (long i = 0; i < p->m_panels; i++) {
                        long rows = min_l(mr, Mg - i * mr);
                        const float *a = rows < mr ? sl->atail : A + i * mr * S;
                        u->rows((int)xc, a + x0, S, 1, sl->bcols + x0 * ld, ld, P + (g * Mg + i * mr) * Kd + j * nr,
                                Kd, (int)rows, (int)min_l(nr, Kd - j * nr), n > n0 || pb > 0, true);
                    }
                }
            }
        }
    }
}

/* The weight gradient through OpenBLAS on the packed engine (filter_blas),
 * into partial r transposed ([G][Kd][Mg]) as the micro-kernels' is: as
 * dW^T = col * dy^T OpenBLAS tiles the long side, Kd, where as dW = dy *
 * col^T LeNet's 50 channels would leave its tiles part empty (50 x 500 x
 * 64 per image, 64 images: 3.3 ms against 2.8 on Zen 4). */
static void blas_filter_group_t(const struct cpu_conv *p, const struct slot *sl, const float *im, const float *out,
                                int r)
{
    const long S = p->S, Kd = p->Kd, Mg = p->Mg;
    float *P = p->partial + (size_t)r * (size_t)p->w_count;
    int n0 = (int)((long)r * p->d.num / p->n_groups), n1 = (int)((long)(r + 1) * p->d.num / p->n_groups);
    for (int n = n0; n < n1; n++) {
        const float *col = packed_im2col(p, sl, im, n, false);
        const float *dy = out + (size_t)n * (size_t)p->out_dim;
        for (long g = 0; g < p->d.groups; g++)
            cpu_gemm_serial(false, true, (int)Kd, (int)Mg, (int)S, 1.f, col + g * Kd * S, (int)S, dy + g * Mg * S,
                            (int)S, n > n0 ? 1.f : 0.f, P + g * Kd * Mg, (int)Mg);
    }
}

struct sum_job {
    const struct cpu_conv *p;
    float *dw; /* or db */
};

/* The plane sums of group r's images (the weight gradient's next, so their
 * output side stays in cache for it). */
static void group_bias_sums(const struct cpu_conv *p, const float *out, int r)
{
    long n0, n1;
    if (p->u) {
        n0 = (long)r * p->d.num / p->n_groups;
        n1 = (long)(r + 1) * p->d.num / p->n_groups;
    } else { /* OpenBLAS's groups are of blocks */
        n0 = (long)r * p->n_blocks / p->n_groups * p->block;
        n1 = min_l((long)(r + 1) * p->n_blocks / p->n_groups * p->block, p->d.num);
    }
    for (long n = n0; n < n1; n++)
        for (long m = 0; m < p->M; m++)
            p->bias_sums[n * p->M + m] = cpu_plane_sum(out + (size_t)n * (size_t)p->out_dim + (size_t)(m * p->S),
                                                       (int)p->S);
}

/* db[m] += the images' sums of channel m, in image order. */
static int add_bias_sums(void *ctx, size_t m0, size_t m1)
{
    const struct sum_job *j = ctx;
    const struct cpu_conv *p = j->p;
    for (size_t m = m0; m < m1; m++) {
        float acc = j->dw[m];
        for (long n = 0; n < p->d.num; n++)
            acc += p->bias_sums[(size_t)n * (size_t)p->M + m];
        j->dw[m] = acc;
    }
    return 0;
}

/* ---- the parallel drivers: one slot (scratch) per range, work items
 * taken from a shared counter ---- */

enum conv_op { OP_FORWARD, OP_BACKWARD_DATA, OP_FILTER };

struct conv_job {
    const struct cpu_conv *p;
    enum conv_op op;
    const float *im, *out, *w, *bias;
    float *dst;
    bool bias_sums; /* OP_FILTER: each image's plane sums too */
    int n_items;
    atomic_int next;
};

static int conv_slots(void *ctx, size_t s0, size_t s1)
{
    struct conv_job *j = ctx;
    const struct cpu_conv *p = j->p;
    for (size_t s = s0; s < s1; s++) {
        const struct slot *sl = &p->slots[s];
        int i;
        while ((i = atomic_fetch_add(&j->next, 1)) < j->n_items) {
            switch (j->op) {
            case OP_FORWARD:
                if (p->u && p->direct)
                    direct_forward_image(p, sl, j->im, j->bias, j->dst, i);
                else if (p->u)
                    packed_forward_image(p, sl, j->im, j->bias, j->dst, i);
                else
                    forward_block(p, sl, j->im, j->w, j->bias, j->dst, i);
                break;
            case OP_BACKWARD_DATA:
                if (p->u && p->toff)
                    direct_backward_data_image(p, sl, j->out, j->dst, i);
                else if (p->u)
                    packed_backward_data_image(p, sl, j->out, j->dst, i);
                else
                    backward_data_block(p, sl, j->out, j->w, j->dst, i);
                break;
            case OP_FILTER:
                if (j->bias_sums)
                    group_bias_sums(p, j->out, i);
                if (p->u && p->filter_cols)
                    cols_filter_group(p, sl, j->im, j->out, i);
                else if (p->u && !p->filter_blas && p->direct)
                    direct_filter_group(p, sl, j->im, j->out, i);
                else if (p->u && !p->filter_blas)
                    packed_filter_group(p, sl, j->im, j->out, i);
                else if (p->u)
                    blas_filter_group_t(p, sl, j->im, j->out, i);
                else if (p->n_groups == 1)
                    filter_group(p, sl, j->im, j->out, j->dst, false, i);
                else
                    filter_group(p, sl, j->im, j->out, p->partial + (size_t)i * (size_t)p->w_count, true, i);
                break;
            }
        }
    }
    return 0;
}

static void run(struct conv_job *j)
{
    atomic_init(&j->next, 0);
    cpu_parallel_for((size_t)j->p->n_slots, 1, conv_slots, j);
}

void cpu_conv_forward(struct cpu_conv *p, const float *im, const float *w, const float *bias, float *out)
{
    if (p->u)
        pack(p, w, false);
    struct conv_job j = {
        .p = p, .op = OP_FORWARD, .im = im, .w = w, .bias = bias, .dst = out, .n_items = p->n_blocks,
    };
    run(&j);
}

void cpu_conv_backward_data(struct cpu_conv *p, const float *out, const float *w, float *im)
{
    if (p->u)
        pack(p, w, true);
    struct conv_job j = { .p = p, .op = OP_BACKWARD_DATA, .out = out, .w = w, .dst = im, .n_items = p->n_blocks };
    run(&j);
}

/* dw += the groups' partial sums, in group order; the packed engine's are
 * transposed ([G][Kd][Mg]), taken here one dw row (g, m) per index. */
static int sum_partials_t(void *ctx, size_t r0, size_t r1)
{
    const struct sum_job *j = ctx;
    const struct cpu_conv *p = j->p;
    for (size_t row = r0; row < r1; row++) {
        long g = (long)row / p->Mg, m = (long)row % p->Mg;
        float *dw = j->dw + (long)row * p->Kd;
        const float *src = p->partial + g * p->Kd * p->Mg + m;
        for (long k = 0; k < p->Kd; k++) {
            float acc = dw[k];
            for (int r = 0; r < p->n_groups; r++)
                acc += src[(size_t)r * (size_t)p->w_count + (size_t)(k * p->Mg)];
            dw[k] = acc;
        }
    }
    return 0;
}

static int sum_partials(void *ctx, size_t i0, size_t i1)
{
    const struct sum_job *j = ctx;
    const struct cpu_conv *p = j->p;
    for (size_t i = i0; i < i1; i++) {
        float acc = j->dw[i];
        for (int r = 0; r < p->n_groups; r++)
            acc += p->partial[(size_t)r * (size_t)p->w_count + i];
        j->dw[i] = acc;
    }
    return 0;
}

void cpu_conv_backward_filter(struct cpu_conv *p, const float *im, const float *out, float *dw, float *db)
{
    struct conv_job j = {
        .p = p, .op = OP_FILTER, .im = im, .out = out, .dst = dw, .n_items = p->n_groups, .bias_sums = db != NULL,
    };
    run(&j);
    if (db) {
        struct sum_job b = { p, db };
        cpu_parallel_for((size_t)p->M, cpu_grain((size_t)p->d.num), add_bias_sums, &b);
    }
    struct sum_job s = { p, dw };
    if (p->u && p->filter_cols)
        cpu_parallel_for((size_t)p->w_count, cpu_grain((size_t)p->n_groups), sum_partials, &s);
    else if (p->u)
        cpu_parallel_for((size_t)p->M, cpu_grain((size_t)(p->n_groups * p->Kd)), sum_partials_t, &s);
    else if (p->n_groups > 1)
        cpu_parallel_for((size_t)p->w_count, cpu_grain((size_t)p->n_groups), sum_partials, &s);
}

bool cpu_conv_filter_packed(const struct cpu_conv *p)
{
    return p->u && !p->filter_blas;
}
