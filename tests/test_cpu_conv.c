/* The CPU's batch convolution (cpu/conv.h) against a direct convolution
 * summed in double: forward, backward data and the weight gradient, over
 * shapes that take every path of every engine this CPU has (the AVX-512
 * and AVX2 micro-kernels, OpenBLAS: blocks of several images, one image, 1x1,
 * groups, padding, stride, dilation, several weight-gradient groups, 1-D
 * and 3-D), and
 * the same bits on 1, 2 and 3 threads. */
#include "check.h"
#include "cpu/conv.h"
#include "cpu/math.h"
#include "cpu/threads.h"
#include "cpu/ukernel.h"

#include <math.h>
#include <string.h>

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.f - 1.f;
}

static float *random_floats(size_t n, unsigned seed)
{
    float *v = malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n && v; i++)
        v[i] = frand(&seed);
    return v;
}

static size_t prod(const int *v, int n)
{
    size_t p = 1;
    for (int i = 0; i < n; i++)
        p *= (size_t)v[i];
    return p;
}

/* out, dim (from dout) and dw (from im, dout) by the definition, in double,
 * over any number of spatial axes. */
static void reference(const struct conv_shape *d, const float *im, const float *w, const float *dout,
                      double *out, double *dim, double *dw)
{
    int ns = d->num_spatial_axes, cg = d->in_channels / d->groups, mg = d->out_channels / d->groups;
    size_t in_sp = prod(d->in_shape, ns), S = prod(d->out_shape, ns), ks = prod(d->kernel, ns);
    memset(out, 0, sizeof *out * (size_t)d->num * d->out_channels * S);
    memset(dim, 0, sizeof *dim * (size_t)d->num * d->in_channels * in_sp);
    memset(dw, 0, sizeof *dw * (size_t)d->out_channels * cg * ks);
    for (int n = 0; n < d->num; n++)
        for (int m = 0; m < d->out_channels; m++)
            for (size_t o = 0; o < S; o++) {
                int op[VISION_CONV_MAX_AXES];
                size_t r = o;
                for (int a = ns - 1; a >= 0; a--) {
                    op[a] = (int)(r % (size_t)d->out_shape[a]);
                    r /= (size_t)d->out_shape[a];
                }
                size_t oi = ((size_t)n * d->out_channels + m) * S + o;
                int g = m / mg;
                for (int c = 0; c < cg; c++)
                    for (size_t k = 0; k < ks; k++) {
                        size_t rk = k, lin = 0;
                        bool inside = true;
                        int kp[VISION_CONV_MAX_AXES];
                        for (int a = ns - 1; a >= 0; a--) {
                            kp[a] = (int)(rk % (size_t)d->kernel[a]);
                            rk /= (size_t)d->kernel[a];
                        }
                        for (int a = 0; a < ns; a++) {
                            int pos = op[a] * d->stride[a] - d->pad[a] + kp[a] * d->dilation[a];
                            inside = inside && pos >= 0 && pos < d->in_shape[a];
                            lin = lin * (size_t)d->in_shape[a] + (size_t)(pos < 0 ? 0 : pos);
                        }
                        if (!inside)
                            continue;
                        size_t ii = ((size_t)n * d->in_channels + (size_t)(g * cg + c)) * in_sp + lin;
                        size_t wi = ((size_t)m * cg + (size_t)c) * ks + k;
                        out[oi] += (double)w[wi] * im[ii];
                        dim[ii] += (double)w[wi] * dout[oi];
                        dw[wi] += (double)dout[oi] * im[ii];
                    }
            }
}

static void compare(const char *what, const char *shape, const float *got, const double *want, size_t n)
{
    double gmax = 0, emax = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(want[i]) > gmax)
            gmax = fabs(want[i]);
        double e = fabs((double)got[i] - want[i]);
        if (e > emax || isnan(got[i])) {
            emax = isnan(got[i]) ? INFINITY : e;
            at = i;
        }
    }
    CHECK_MSG(emax <= 1e-5 * gmax + 1e-6, "%s %s: max |err| %.3g at %zu (got %.9g, want %.9g; max %.3g)", shape,
              what, emax, at, (double)got[at], want[at], gmax);
}

struct outputs {
    float *out, *outb, *dim, *dw, *db, *db3; /* outb: the forward with a bias; db: the bias's gradient (db3: of dout / 3) */
};

static void sizes(const struct conv_shape *d, size_t *in_n, size_t *out_n, size_t *w_n)
{
    int ns = d->num_spatial_axes;
    *in_n = (size_t)d->num * d->in_channels * prod(d->in_shape, ns);
    *out_n = (size_t)d->num * d->out_channels * prod(d->out_shape, ns);
    *w_n = (size_t)d->out_channels * (d->in_channels / d->groups) * prod(d->kernel, ns);
}

static void run_plan(const struct conv_shape *d, const float *im, const float *w, const float *dout,
                     const float *dw0, struct outputs *o)
{
    size_t in_n, out_n, w_n;
    sizes(d, &in_n, &out_n, &w_n);
    o->out = malloc(out_n * sizeof(float));
    o->outb = malloc(out_n * sizeof(float));
    o->dim = malloc(in_n * sizeof(float));
    o->dw = malloc(w_n * sizeof(float));
    memcpy(o->dw, dw0, w_n * sizeof(float));
    /* garbage where the results go: every entry must be written */
    for (size_t i = 0; i < out_n; i++)
        o->out[i] = NAN;
    for (size_t i = 0; i < in_n; i++)
        o->dim[i] = NAN;
    struct cpu_conv *p = NULL;
    CHECK_OK(cpu_conv_create(d, &p));
    if (!p)
        return;
    cpu_conv_forward(p, im, w, NULL, o->out);
    float *bias = random_floats((size_t)d->out_channels, 5);
    cpu_conv_forward(p, im, w, bias, o->outb);
    free(bias);
    cpu_conv_backward_data(p, dout, w, o->dim);
    cpu_conv_backward_filter(p, im, dout, o->dw, NULL);
    /* again with the bias's gradient beside it: the same weight gradient */
    float *dw2 = malloc(w_n * sizeof(float));
    o->db = random_floats((size_t)d->out_channels, 6);
    memcpy(dw2, dw0, w_n * sizeof(float));
    cpu_conv_backward_filter(p, im, dout, dw2, o->db);
    CHECK_MSG(memcmp(dw2, o->dw, w_n * sizeof(float)) == 0, "the weight gradient changes with the bias's beside it");
    /* and a bias gradient whose sums round (thirds), so that their order shows */
    float *third = malloc(out_n * sizeof(float));
    o->db3 = random_floats((size_t)d->out_channels, 6);
    for (size_t i = 0; i < out_n; i++)
        third[i] = dout[i] / 3.f;
    cpu_conv_backward_filter(p, im, third, dw2, o->db3);
    free(third);
    free(dw2);
    cpu_conv_free(p);
}

static void free_outputs(struct outputs *o)
{
    free(o->out);
    free(o->outb);
    free(o->db);
    free(o->db3);
    free(o->dim);
    free(o->dw);
}

/* Every engine this CPU has: the AVX-512 and AVX2 micro-kernels, and
 * OpenBLAS (always). */
static const char *const engines[] = { "avx512", "avx2", "blas" };

static void check_shape_on(const char *name, struct conv_shape d);

/* Whether shape d's weight gradient runs on the chosen engine's micro-kernels. */
static bool filter_packed(const struct conv_shape *d)
{
    struct cpu_conv *p = NULL;
    CHECK_OK(cpu_conv_create(d, &p));
    bool packed = p && cpu_conv_filter_packed(p);
    cpu_conv_free(p);
    return packed;
}

static void check_shape(const char *name, struct conv_shape d)
{
    for (size_t e = 0; e < sizeof engines / sizeof *engines; e++) {
        if (cpu_ukr_select(engines[e]) != CREMA_OK)
            continue; /* not on this CPU */
        char what[160];
        snprintf(what, sizeof what, "%s [%s]", name, engines[e]);
        check_shape_on(what, d);
    }
    CHECK_OK(cpu_ukr_select(NULL));
}

static void check_shape_on(const char *name, struct conv_shape d)
{
    size_t in_n, out_n, w_n;
    sizes(&d, &in_n, &out_n, &w_n);
    float *im = random_floats(in_n, 1), *w = random_floats(w_n, 2), *dout = random_floats(out_n, 3);
    float *dw0 = random_floats(w_n, 4);
    double *out = malloc(out_n * sizeof *out), *dim = malloc(in_n * sizeof *dim), *dw = malloc(w_n * sizeof *dw);
    reference(&d, im, w, dout, out, dim, dw);
    for (size_t i = 0; i < w_n; i++)
        dw[i] += dw0[i]; /* the gradient accumulates */
    struct outputs one = { 0 };
    static const int threads[] = { 1, 2, 3 };
    for (size_t t = 0; t < sizeof threads / sizeof *threads; t++) {
        CHECK_OK(cpu_set_num_threads(threads[t]));
        struct outputs o = { 0 };
        run_plan(&d, im, w, dout, dw0, &o);
        if (t == 0) {
            compare("forward", name, o.out, out, out_n);
            compare("backward data", name, o.dim, dim, in_n);
            compare("weight gradient", name, o.dw, dw, w_n);
            /* the bias added after the sums, as Caffe's separate step */
            float *bias = random_floats((size_t)d.out_channels, 5);
            size_t plane = out_n / (size_t)d.num / (size_t)d.out_channels, bad = 0;
            for (size_t i = 0; i < out_n; i++)
                bad += o.outb[i] != o.out[i] + bias[i / plane % (size_t)d.out_channels];
            CHECK_MSG(bad == 0, "%s: %zu outputs with a bias differ from the output plus the bias", name, bad);
            free(bias);
            /* the bias's gradient: each image's plane sums added in image
             * order, as the vision table's bias_backward (Caffe's GEMV per
             * image) */
            float *third = malloc(out_n * sizeof *third);
            for (size_t i = 0; i < out_n; i++)
                third[i] = dout[i] / 3.f;
            for (int k = 0; k < 2; k++) {
                const float *dy = k ? third : dout;
                float *db = random_floats((size_t)d.out_channels, 6);
                for (int m = 0; m < d.out_channels; m++)
                    for (int n = 0; n < d.num; n++)
                        db[m] += cpu_plane_sum(dy + ((size_t)n * d.out_channels + m) * plane, (int)plane);
                CHECK_MSG(memcmp(db, k ? o.db3 : o.db, (size_t)d.out_channels * sizeof *db) == 0,
                          "%s: the bias gradient differs from the images' plane sums added in order", name);
                free(db);
            }
            free(third);
            one = o;
            continue;
        }
        CHECK_MSG(memcmp(o.out, one.out, out_n * sizeof(float)) == 0, "%s: forward differs on %d threads", name,
                  threads[t]);
        CHECK_MSG(memcmp(o.outb, one.outb, out_n * sizeof(float)) == 0, "%s: forward with a bias differs on %d threads",
                  name, threads[t]);
        CHECK_MSG(memcmp(o.db, one.db, (size_t)d.out_channels * sizeof(float)) == 0 &&
                      memcmp(o.db3, one.db3, (size_t)d.out_channels * sizeof(float)) == 0,
                  "%s: the bias gradient differs on %d threads", name, threads[t]);
        CHECK_MSG(memcmp(o.dim, one.dim, in_n * sizeof(float)) == 0, "%s: backward data differs on %d threads",
                  name, threads[t]);
        CHECK_MSG(memcmp(o.dw, one.dw, w_n * sizeof(float)) == 0, "%s: weight gradient differs on %d threads",
                  name, threads[t]);
        free_outputs(&o);
    }
    CHECK_OK(cpu_set_num_threads(0));
    free_outputs(&one);
    free(im);
    free(w);
    free(dout);
    free(dw0);
    free(out);
    free(dim);
    free(dw);
}

static int out_extent(int in, int k, int p, int st, int dl)
{
    return (in + 2 * p - (dl * (k - 1) + 1)) / st + 1;
}

static struct conv_shape desc(int num, int groups, int cin, int cout, int h, int w, int kh, int kw, int ph,
                              int pw, int sh, int sw, int dh, int dw)
{
    struct conv_shape d = {
        .num_spatial_axes = 2, .num = num, .groups = groups, .in_channels = cin, .out_channels = cout,
        .in_shape = { h, w }, .kernel = { kh, kw }, .pad = { ph, pw }, .stride = { sh, sw },
        .dilation = { dh, dw },
    };
    for (int a = 0; a < 2; a++)
        d.out_shape[a] = out_extent(d.in_shape[a], d.kernel[a], d.pad[a], d.stride[a], d.dilation[a]);
    return d;
}

/* LeNet's conv2 on 16 images: blocks of two 8x8 images, eight gradient groups. */
static void test_blocks_of_images(void)
{
    check_shape("lenet conv2", desc(16, 1, 20, 50, 12, 12, 5, 5, 0, 0, 1, 1, 1, 1));
}

/* CIFAR10-quick's "same" 5x5 convolution with a ragged last block. */
static void test_same_padding_ragged_block(void)
{
    check_shape("cifar conv3", desc(19, 1, 8, 12, 8, 8, 5, 5, 2, 2, 1, 1, 1, 1));
}

static void test_groups_stride_dilation(void)
{
    check_shape("groups", desc(5, 2, 4, 6, 9, 7, 3, 2, 1, 2, 2, 1, 2, 1));
    /* "same" padding: the input gradient as the transposed convolution */
    check_shape("same, groups, dilation", desc(6, 2, 4, 6, 9, 9, 3, 3, 2, 2, 1, 1, 2, 2));
    check_shape("same, rectangular", desc(4, 1, 3, 5, 7, 6, 3, 1, 1, 0, 1, 1, 1, 1));
    /* output larger than the input: the transposed convolution through im2col */
    check_shape("wide padding", desc(3, 1, 2, 3, 5, 5, 3, 3, 2, 2, 1, 1, 1, 1));
    check_shape("wide padding, long column", desc(3, 1, 8, 3, 5, 5, 3, 3, 2, 2, 1, 1, 1, 1));
    check_shape("caffenet conv1", desc(3, 1, 3, 8, 35, 35, 11, 11, 0, 0, 4, 4, 1, 1));
}

/* The micro-kernels' weight gradient (lanes: output channels, nr at a
 * time) with a part panel of lanes, 30 channels in 32: direct (stride 1),
 * from im2col (stride 2), and by groups. Where most of those lanes would
 * be padding but few of the column's would be (LeNet's 50 channels in 64,
 * its 500 column rows in 512; unpadded), the lanes are column rows: there
 * with groups, vertical stride and dilation, a kernel wider than 8, and a
 * part last row panel of channels. A short column takes OpenBLAS. */
static void test_weight_gradient_engines(void)
{
    struct conv_shape direct = desc(5, 1, 6, 30, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1);
    struct conv_shape strided = desc(5, 1, 6, 30, 9, 8, 3, 3, 1, 1, 2, 2, 1, 1);
    struct conv_shape grouped = desc(4, 2, 12, 60, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1);
    struct conv_shape lenet = desc(4, 1, 20, 50, 12, 12, 5, 5, 0, 0, 1, 1, 1, 1);
    struct conv_shape short_col = desc(4, 1, 1, 32, 12, 12, 5, 5, 0, 0, 1, 1, 1, 1);
    struct conv_shape cols_groups = desc(3, 2, 8, 10, 11, 13, 3, 5, 0, 0, 2, 1, 2, 1);
    struct conv_shape cols_wide = desc(2, 1, 1, 7, 12, 14, 6, 10, 0, 0, 1, 1, 1, 1);
    static const char *const ukr[] = { "avx512", "avx2" };
    for (size_t e = 0; e < sizeof ukr / sizeof *ukr; e++) {
        if (cpu_ukr_select(ukr[e]) != CREMA_OK)
            continue;
        CHECK_MSG(filter_packed(&direct) && filter_packed(&strided) && filter_packed(&grouped),
                  "%s: the 30-channel weight gradients should run on the micro-kernels", ukr[e]);
        CHECK_MSG(filter_packed(&lenet) && filter_packed(&cols_groups) && filter_packed(&cols_wide),
                  "%s: LeNet's conv2's weight gradient (and the like) should run on the micro-kernels", ukr[e]);
        CHECK_MSG(!filter_packed(&short_col), "%s: a 25-long column should take OpenBLAS's weight gradient", ukr[e]);
    }
    CHECK_OK(cpu_ukr_select(NULL));
    check_shape("weight gradient, direct", direct);
    check_shape("weight gradient, strided", strided);
    check_shape("weight gradient, groups", grouped);
    check_shape("weight gradient, column lanes", lenet);
    check_shape("column lanes, groups, stride_h, dilation_h", cols_groups);
    check_shape("column lanes, kernel 10 wide", cols_wide);
    /* columns of 50 and 52 rows: a last row panel of 2 and of 4 */
    check_shape("weight gradient, 2-row tail", desc(5, 1, 2, 30, 9, 8, 5, 5, 2, 2, 1, 1, 1, 1));
    check_shape("weight gradient, 4-row tail", desc(4, 1, 4, 30, 7, 7, 13, 1, 6, 0, 1, 1, 1, 1));
}

static void test_one_image(void)
{
    check_shape("one image", desc(1, 1, 3, 5, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1));
}

static void test_1x1(void)
{
    check_shape("1x1 one per block", desc(3, 1, 8, 4, 20, 20, 1, 1, 0, 0, 1, 1, 1, 1));
    check_shape("1x1 blocks", desc(24, 2, 8, 4, 5, 5, 1, 1, 0, 0, 1, 1, 1, 1));
}

/* 1-D runs as 2-D of height 1; 3-D one image at a time (N-D im2col). */
static void test_1d_3d(void)
{
    struct conv_shape one = { .num_spatial_axes = 1, .num = 20, .groups = 1, .in_channels = 3, .out_channels = 4,
                              .in_shape = { 40 }, .kernel = { 3 }, .pad = { 1 }, .stride = { 2 }, .dilation = { 2 } };
    one.out_shape[0] = out_extent(40, 3, 1, 2, 2);
    check_shape("1-D", one);
    struct conv_shape three = { .num_spatial_axes = 3, .num = 3, .groups = 1, .in_channels = 2, .out_channels = 3,
                                .in_shape = { 3, 4, 4 }, .kernel = { 3, 3, 3 }, .pad = { 1, 1, 1 },
                                .stride = { 1, 2, 1 }, .dilation = { 1, 1, 1 } };
    for (int a = 0; a < 3; a++)
        three.out_shape[a] = out_extent(three.in_shape[a], 3, 1, three.stride[a], 1);
    check_shape("3-D", three);
}

/* The micro-kernels' im2col and col2im (stride_w 1, rows up to 32 wide)
 * against math.h's, Caffe's loops: the same bits, the destination written
 * whole and nothing else (the gaps between column rows ld apart, what
 * follows the image). Shapes: LeNet's conv2; padding on both sides;
 * stride_h 2; dilation; rows of four whole vectors; three vectors with a
 * part one; width 1; output wider than the input; a kernel 16 wide. */
static void test_col_kernels(void)
{
    static const struct {
        int channels, h, w, kh, kw, ph, pw, sh, dh, dw, extra_ld;
    } cases[] = {
        { 20, 12, 12, 5, 5, 0, 0, 1, 1, 1, 0 }, { 3, 8, 8, 5, 5, 2, 2, 1, 1, 1, 0 },
        { 4, 9, 7, 3, 3, 1, 1, 2, 1, 1, 0 },    { 2, 11, 10, 3, 3, 2, 2, 1, 2, 2, 0 },
        { 3, 5, 32, 3, 3, 1, 1, 1, 1, 1, 0 },   { 2, 6, 17, 4, 2, 1, 0, 1, 1, 1, 5 },
        { 2, 7, 1, 3, 1, 1, 0, 1, 1, 1, 0 },    { 2, 5, 5, 3, 3, 2, 2, 1, 1, 1, 3 },
        { 1, 4, 20, 1, 16, 0, 15, 3, 1, 1, 0 }, { 2, 6, 28, 5, 5, 0, 0, 1, 1, 1, 0 },
        { 3, 4, 3, 3, 3, 1, 1, 1, 1, 1, 1 },
    };
    static const char *const ukr[] = { "avx512", "avx2" };
    for (size_t e = 0; e < sizeof ukr / sizeof *ukr; e++) {
        const struct cpu_ukr *u = cpu_ukr_named(ukr[e]);
        if (!u)
            continue;
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
            struct cpu_col_geom g = {
                .channels = cases[i].channels, .height = cases[i].h, .width = cases[i].w,
                .kernel_h = cases[i].kh, .kernel_w = cases[i].kw, .pad_h = cases[i].ph, .pad_w = cases[i].pw,
                .stride_h = cases[i].sh, .dilation_h = cases[i].dh, .dilation_w = cases[i].dw,
            };
            g.out_h = out_extent(g.height, g.kernel_h, g.pad_h, g.stride_h, g.dilation_h);
            g.out_w = out_extent(g.width, g.kernel_w, g.pad_w, 1, g.dilation_w);
            long len = (long)g.out_h * g.out_w, ld = len + cases[i].extra_ld;
            size_t rows = (size_t)g.channels * g.kernel_h * g.kernel_w, ncol = rows * (size_t)ld;
            size_t nim = (size_t)g.channels * g.height * g.width;
            float *col = random_floats(ncol, 7 + (unsigned)i), *want = malloc(nim * sizeof *want);
            float *got = random_floats(nim + 16, 9); /* stale values the kernel must overwrite */
            float *im = random_floats(nim, 11 + (unsigned)i), *cwant = malloc((ncol + 16) * sizeof *cwant);
            float *cgot = malloc((ncol + 16) * sizeof *cgot);
            CHECK(col && want && got && im && cwant && cgot);
            for (size_t k = 0; k < ncol + 16; k++)
                cwant[k] = cgot[k] = -777.f - (float)(k % 13);
            for (int k = 0; k < 16; k++)
                got[nim + k] = 1234.f + (float)k;
            if (cpu_im2col_fits(&g)) {
                im2col_ld(im, g.channels, g.height, g.width, g.kernel_h, g.kernel_w, g.pad_h, g.pad_w, g.stride_h,
                          1, g.dilation_h, g.dilation_w, cwant, ld);
                u->im2col(&g, im, cgot, ld, im, im + nim);
                CHECK_MSG(memcmp(cgot, cwant, (ncol + 16) * sizeof *cgot) == 0,
                          "%s im2col case %zu differs from Caffe's loops or wrote outside its rows", ukr[e], i);
            }
            CHECK_MSG(cpu_col2im_fits(&g), "col2im case %zu should fit the kernel", i);
            col2im_ld(col, ld, g.channels, g.height, g.width, g.kernel_h, g.kernel_w, g.pad_h, g.pad_w,
                      g.stride_h, 1, g.dilation_h, g.dilation_w, want);
            u->col2im(&g, col, ld, got, col, col + ncol);
            CHECK_MSG(memcmp(got, want, nim * sizeof *got) == 0, "%s col2im case %zu differs from Caffe's loops",
                      ukr[e], i);
            for (int k = 0; k < 16; k++)
                CHECK_MSG(got[nim + k] == 1234.f + (float)k, "%s col2im case %zu wrote past the image", ukr[e], i);
            free(col);
            free(want);
            free(got);
            free(im);
            free(cwant);
            free(cgot);
        }
    }
}

static void test_bad_shape(void)
{
    struct conv_shape d = desc(2, 3, 4, 6, 5, 5, 3, 3, 0, 0, 1, 1, 1, 1); /* 4 channels, 3 groups */
    struct cpu_conv *p = NULL;
    CHECK_EQ_INT(cpu_conv_create(&d, &p), CREMA_ERR_SHAPE);
    CHECK(p == NULL);
    d = desc(2, 1, 4, 6, 5, 5, 3, 3, 0, 0, 1, 1, 1, 1);
    d.out_shape[1] = 4; /* 5 - 3 + 1 = 3 */
    CHECK_EQ_INT(cpu_conv_create(&d, &p), CREMA_ERR_SHAPE);
    d = desc(2, 1, 4, 6, 5, 5, 3, 3, 0, 0, 1, 1, 1, 1);
    d.num_spatial_axes = 4;
    CHECK_EQ_INT(cpu_conv_create(&d, &p), CREMA_ERR_SHAPE);
}

CHECK_MAIN(CASE(test_blocks_of_images), CASE(test_same_padding_ragged_block), CASE(test_groups_stride_dilation),
           CASE(test_weight_gradient_engines), CASE(test_one_image), CASE(test_1x1), CASE(test_1d_3d), CASE(test_col_kernels),
           CASE(test_bad_shape))
