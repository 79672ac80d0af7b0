/* Batch convolution on crema's threads (see conv.h). The images are cut
 * into blocks of `block` images; a block's columns sit side by side in one
 * im2col buffer, so a small image (LeNet's 8x8, CIFAR10-quick's 8x8 and
 * 16x16) still makes a GEMM wide enough to run at the machine's rate, and
 * the blocks go to the threads. The weight gradient, a sum over the images,
 * is summed per group of blocks into partial buffers that are added in
 * group order at the end. The blocks and groups depend on the shape alone,
 * never on the thread count, so results are the same on any number of
 * threads. With one image per block and one group (small batches) the
 * arithmetic is Caffe's: one GEMM per image and group, the weight gradient
 * accumulated image by image. */
#include "cpu/conv.h"

#include "cpu/math.h"
#include "cpu/threads.h"
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

struct slot {
    float *col; /* K x (block * S): im2col of a block */
    float *tmp; /* M x (block * S): the block's output side, gathered */
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
    bool is_1x1;
    struct slot *slots;
    float *partial; /* n_groups x w_count, when n_groups > 1 */
    float *arena;
};

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
    p->block = p->nd ? 1 : blocks_for(p, p->S, p->K);
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

    size_t cols = (size_t)p->block * (size_t)p->S;
    size_t per_slot = (size_t)p->K * cols + (p->block > 1 ? (size_t)p->M * cols : 0);
    size_t partial = p->n_groups > 1 ? (size_t)p->n_groups * (size_t)p->w_count : 0;
    size_t total = per_slot * (size_t)p->n_slots + partial;
    p->slots = calloc((size_t)p->n_slots, sizeof *p->slots);
    p->arena = malloc((total ? total : 1) * sizeof(float));
    if (!p->slots || !p->arena) {
        cpu_conv_free(p);
        return err_set(CREMA_ERR_NOMEM, "cpu convolution: out of memory (%zu floats of scratch)", total);
    }
    float *a = p->arena;
    for (int s = 0; s < p->n_slots; s++) {
        p->slots[s].col = a;
        a += (size_t)p->K * cols;
        if (p->block > 1) {
            p->slots[s].tmp = a;
            a += (size_t)p->M * cols;
        }
    }
    p->partial = partial ? a : NULL;
    cpu_blas_init();
    *out = p;
    return CREMA_OK;
}

void cpu_conv_free(struct cpu_conv *p)
{
    if (!p)
        return;
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
    for (int i = 0; i < nb; i++)
        im2col_ld(im + (size_t)(n0 + i) * (size_t)p->in_dim, d->in_channels, d->in_h, d->in_w, d->kernel_h,
                  d->kernel_w, d->pad_h, d->pad_w, d->stride_h, d->stride_w, d->dilation_h, d->dilation_w,
                  sl->col + (size_t)i * (size_t)p->S, ld);
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

static void forward_block(const struct cpu_conv *p, const struct slot *sl, const float *im, const float *w,
                          float *out, int b)
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
    if (nb == 1)
        return;
    for (int i = 0; i < nb; i++)
        for (long m = 0; m < p->M; m++)
            memcpy(out + (size_t)(n0 + i) * (size_t)p->out_dim + (size_t)(m * p->S), sl->tmp + m * ld + (long)i * p->S,
                   (size_t)p->S * sizeof(float));
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

/* ---- the parallel drivers: one slot (scratch) per range, work items
 * taken from a shared counter ---- */

enum conv_op { OP_FORWARD, OP_BACKWARD_DATA, OP_FILTER };

struct conv_job {
    const struct cpu_conv *p;
    enum conv_op op;
    const float *im, *out, *w;
    float *dst;
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
                forward_block(p, sl, j->im, j->w, j->dst, i);
                break;
            case OP_BACKWARD_DATA:
                backward_data_block(p, sl, j->out, j->w, j->dst, i);
                break;
            case OP_FILTER:
                if (p->n_groups == 1)
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

void cpu_conv_forward(struct cpu_conv *p, const float *im, const float *w, float *out)
{
    struct conv_job j = { .p = p, .op = OP_FORWARD, .im = im, .w = w, .dst = out, .n_items = p->n_blocks };
    run(&j);
}

void cpu_conv_backward_data(struct cpu_conv *p, const float *out, const float *w, float *im)
{
    struct conv_job j = { .p = p, .op = OP_BACKWARD_DATA, .out = out, .w = w, .dst = im, .n_items = p->n_blocks };
    run(&j);
}

struct sum_job {
    const struct cpu_conv *p;
    float *dw;
};

/* dw += the groups' partial sums, in group order. */
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

void cpu_conv_backward_filter(struct cpu_conv *p, const float *im, const float *out, float *dw)
{
    struct conv_job j = { .p = p, .op = OP_FILTER, .im = im, .out = out, .dst = dw, .n_items = p->n_groups };
    run(&j);
    if (p->n_groups > 1) {
        struct sum_job s = { p, dw };
        cpu_parallel_for((size_t)p->w_count, cpu_grain((size_t)p->n_groups), sum_partials, &s);
    }
}
