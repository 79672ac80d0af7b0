/* The CPU's batch convolution (cpu/conv.h) against a direct convolution
 * summed in double: forward, backward data and the weight gradient, over
 * shapes that take every path (blocks of several images, one image, 1x1,
 * groups, padding, stride, dilation, several weight-gradient groups), and
 * the same bits on 1, 2 and 3 threads. */
#include "check.h"
#include "cpu/conv.h"
#include "cpu/threads.h"

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

/* The input pixel a (output pixel, kernel tap) reads, or -1 for padding. */
static long tap(const struct cpu_conv_desc *d, int c, int oh, int ow, int kh, int kw)
{
    int ih = oh * d->stride_h - d->pad_h + kh * d->dilation_h;
    int iw = ow * d->stride_w - d->pad_w + kw * d->dilation_w;
    if (ih < 0 || ih >= d->in_h || iw < 0 || iw >= d->in_w)
        return -1;
    return ((long)c * d->in_h + ih) * d->in_w + iw;
}

/* out, dim (from dout) and dw (from im, dout) by the definition, in double. */
static void reference(const struct cpu_conv_desc *d, const float *im, const float *w, const float *dout,
                      double *out, double *dim, double *dw)
{
    int cg = d->in_channels / d->groups, mg = d->out_channels / d->groups;
    long in_dim = (long)d->in_channels * d->in_h * d->in_w, S = (long)d->out_h * d->out_w;
    long out_dim = d->out_channels * S;
    memset(out, 0, sizeof *out * (size_t)(d->num * out_dim));
    memset(dim, 0, sizeof *dim * (size_t)(d->num * in_dim));
    memset(dw, 0, sizeof *dw * (size_t)(d->out_channels * cg * d->kernel_h * d->kernel_w));
    for (int n = 0; n < d->num; n++)
        for (int m = 0; m < d->out_channels; m++) {
            int g = m / mg;
            for (int oh = 0; oh < d->out_h; oh++)
                for (int ow = 0; ow < d->out_w; ow++) {
                    long o = n * out_dim + m * S + oh * d->out_w + ow;
                    for (int c = 0; c < cg; c++)
                        for (int kh = 0; kh < d->kernel_h; kh++)
                            for (int kw = 0; kw < d->kernel_w; kw++) {
                                long i = tap(d, g * cg + c, oh, ow, kh, kw);
                                if (i < 0)
                                    continue;
                                long wi = ((long)(m * cg + c) * d->kernel_h + kh) * d->kernel_w + kw;
                                out[o] += (double)w[wi] * im[n * in_dim + i];
                                dim[n * in_dim + i] += (double)w[wi] * dout[o];
                                dw[wi] += (double)dout[o] * im[n * in_dim + i];
                            }
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
    float *out, *dim, *dw;
};

static void run_plan(const struct cpu_conv_desc *d, const float *im, const float *w, const float *dout,
                     const float *dw0, struct outputs *o)
{
    size_t in_n = (size_t)d->num * d->in_channels * d->in_h * d->in_w;
    size_t out_n = (size_t)d->num * d->out_channels * d->out_h * d->out_w;
    size_t w_n = (size_t)d->out_channels * (d->in_channels / d->groups) * d->kernel_h * d->kernel_w;
    o->out = malloc(out_n * sizeof(float));
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
    cpu_conv_forward(p, im, w, o->out);
    cpu_conv_backward_data(p, dout, w, o->dim);
    cpu_conv_backward_filter(p, im, dout, o->dw);
    cpu_conv_free(p);
}

static void free_outputs(struct outputs *o)
{
    free(o->out);
    free(o->dim);
    free(o->dw);
}

static void check_shape(const char *name, struct cpu_conv_desc d)
{
    size_t in_n = (size_t)d.num * d.in_channels * d.in_h * d.in_w;
    size_t out_n = (size_t)d.num * d.out_channels * d.out_h * d.out_w;
    size_t w_n = (size_t)d.out_channels * (d.in_channels / d.groups) * d.kernel_h * d.kernel_w;
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
            one = o;
            continue;
        }
        CHECK_MSG(memcmp(o.out, one.out, out_n * sizeof(float)) == 0, "%s: forward differs on %d threads", name,
                  threads[t]);
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

static struct cpu_conv_desc desc(int num, int groups, int cin, int cout, int h, int w, int kh, int kw, int ph,
                                 int pw, int sh, int sw, int dh, int dw)
{
    struct cpu_conv_desc d = {
        .num = num, .groups = groups, .in_channels = cin, .out_channels = cout, .in_h = h, .in_w = w,
        .kernel_h = kh, .kernel_w = kw, .pad_h = ph, .pad_w = pw, .stride_h = sh, .stride_w = sw,
        .dilation_h = dh, .dilation_w = dw,
    };
    d.out_h = (h + 2 * ph - (dh * (kh - 1) + 1)) / sh + 1;
    d.out_w = (w + 2 * pw - (dw * (kw - 1) + 1)) / sw + 1;
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
    check_shape("caffenet conv1", desc(3, 1, 3, 8, 35, 35, 11, 11, 0, 0, 4, 4, 1, 1));
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

static void test_bad_shape(void)
{
    struct cpu_conv_desc d = desc(2, 3, 4, 6, 5, 5, 3, 3, 0, 0, 1, 1, 1, 1); /* 4 channels, 3 groups */
    struct cpu_conv *p = NULL;
    CHECK_EQ_INT(cpu_conv_create(&d, &p), CREMA_ERR_SHAPE);
    CHECK(p == NULL);
}

CHECK_MAIN(CASE(test_blocks_of_images), CASE(test_same_padding_ragged_block), CASE(test_groups_stride_dilation),
           CASE(test_one_image), CASE(test_1x1), CASE(test_bad_shape))
