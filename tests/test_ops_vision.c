/* The vision table (core/ops_vision.h) on $CREMA_TEST_DEVICE (default
 * cpu-mirror; cuda:0 on a GPU machine) against the CPU backend's, entry by
 * entry, on random inputs and the edge cases (odd and size-1 extents,
 * clipped and padded windows, ties for the maximum, in-place calls), then
 * the vision layers on the device against the same layers on the CPU.
 *
 * Tolerances: the mirror runs the CPU's own code, so everything must agree
 * bit for bit there. On a GPU, each entry's limit is derived next to it:
 * exact where the kernel performs the CPU's operations in the CPU's order
 * (explicitly rounded), otherwise the bound for a different summation
 * order (n terms: n * 2^-24 * the sum of their magnitudes) or for CUDA's
 * powf (within 4 ulp; glibc's within 1). Every comparison prints its worst
 * error, so one GPU run shows them all. */
#include "check.h"
#include "cpu/ukernel.h"
#include "layers/layer.h"
#include "layers/vision.h"
#include "net/device.h"
#include "proto/proto_io.h"
#include "util/rng.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define U (1.0 / 16777216.0) /* 2^-24: float's unit roundoff */

static const struct backend *cpu_be, *dev_be;
static bool on_gpu; /* the device is not the CPU's code */

/* ------------------------------------------------------------ helpers */

static struct tensor *vec(size_t n)
{
    struct tensor *t = tensor_new();
    int s[1] = { (int)n };
    CHECK_OK(tensor_reshape(t, 1, s));
    return t;
}

static void fill(struct tensor *t, struct rng *r, float lo, float hi)
{
    float *d = tensor_data(t);
    for (size_t i = 0; i < t->count; i++)
        d[i] = rng_uniform(r, lo, hi);
}

/* Values in {-1, -0.5, 0, 0.5, 1}: windows full of ties. */
static void fill_ties(struct tensor *t, struct rng *r)
{
    float *d = tensor_data(t);
    for (size_t i = 0; i < t->count; i++)
        d[i] = roundf(rng_uniform(r, -2.f, 2.f)) / 2.f;
}

static void set_all(struct tensor *t, float v)
{
    float *d = tensor_data(t);
    for (size_t i = 0; i < t->count; i++)
        d[i] = v;
}

static double max_abs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i]));
    return m;
}

/* got against want: |got - want| <= bound[i] (or <= atol when bound is
 * NULL) everywhere; prints the worst error either way. */
static void compare(const char *what, const float *got, const float *want, size_t n, double atol,
                    const double *bound)
{
    double worst = 0, excess = -1;
    size_t at = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)want[i]);
        bool nan = isnan(got[i]) != isnan(want[i]);
        if (isnan(got[i]) && isnan(want[i]))
            e = 0;
        double lim = bound ? bound[i] : atol;
        if (nan || e > lim) {
            bad++;
            double x = nan ? INFINITY : e - lim;
            if (x > excess) {
                excess = x;
                at = i;
            }
        }
        worst = fmax(worst, nan ? INFINITY : e);
    }
    printf("  %-44s max |err| %.3g%s\n", what, worst, bad ? "  <-- over the limit" : "");
    CHECK_MSG(bad == 0, "%s: %zu of %zu values off (at %zu: got %.9g, want %.9g, limit %.3g)", what, bad, n, at,
              (double)got[at], (double)want[at], bound ? bound[at] : atol);
}

/* The device's values of t (downloaded). */
static const float *host(struct tensor *t)
{
    return tensor_cdata(t);
}

/* ------------------------------------------------------------ pooling */

struct pool_case {
    int method, kh, kw, sh, sw, ph, pw, H, W, planes;
    bool ceil, ties;
};

/* Whether the CUDA backend runs this AVE pooling through cuDNN (all
 * windows inside the padded image), where it sums in its own order. */
static bool pool_cudnn(const struct pool_geom *g)
{
    return g->method == VISION_POOL_AVE && g->height + 2 * g->pad_h >= g->kernel_h &&
           g->width + 2 * g->pad_w >= g->kernel_w &&
           g->pooled_h == (g->height + 2 * g->pad_h - g->kernel_h) / g->stride_h + 1 &&
           g->pooled_w == (g->width + 2 * g->pad_w - g->kernel_w) / g->stride_w + 1;
}

static void pool_one_case(const struct pool_case *pc, int mask_kind, struct rng *r)
{
    struct pool_geom g = { .method = pc->method, .kernel_h = pc->kh, .kernel_w = pc->kw, .stride_h = pc->sh,
                           .stride_w = pc->sw, .pad_h = pc->ph, .pad_w = pc->pw, .height = pc->H, .width = pc->W };
    CHECK_OK(pool_geom_shape(&g, pc->ceil));
    size_t nin = (size_t)pc->planes * pc->H * pc->W, nout = (size_t)pc->planes * g.pooled_h * g.pooled_w;
    struct tensor *x = vec(nin), *dy = vec(nout), *y[2], *m[2], *dx[2];
    if (pc->ties)
        fill_ties(x, r);
    else
        fill(x, r, -1.f, 1.f);
    fill(dy, r, -1.f, 1.f);
    const struct backend *bes[2] = { cpu_be, dev_be };
    for (int k = 0; k < 2; k++) {
        const struct backend *be = bes[k];
        y[k] = vec(nout);
        m[k] = vec(nout);
        dx[k] = vec(nin);
        set_all(y[k], 7.f); /* every output must be written */
        set_all(dx[k], 7.f);
        set_all(m[k], -5.f);
        float *mp = tensor_data_on(m[k], be);
        int *im = mask_kind == 1 ? (int *)mp : NULL;
        float *fm = mask_kind == 2 ? mp : NULL;
        be->vision->pool_forward(be, &g, pc->planes, tensor_cdata_on(x, be), tensor_data_on(y[k], be), im, fm);
        if (pc->method == VISION_POOL_AVE || mask_kind)
            be->vision->pool_backward(be, &g, pc->planes, tensor_cdata_on(dy, be), im, fm,
                                      tensor_data_on(dx[k], be));
        CHECK_OK(be->sync(be));
    }
    char what[160];
    const char *mk[3] = { "no mask", "int mask", "float mask" };
    snprintf(what, sizeof what, "pool %s %dx%d/%dx%d/%dx%d on %dx%d %s, %s", pc->method ? "AVE" : "MAX", pc->kh,
             pc->kw, pc->sh, pc->sw, pc->ph, pc->pw, pc->H, pc->W, pc->ceil ? "ceil" : "floor", mk[mask_kind]);
    /* MAX selects: exact. AVE: the own kernel adds in the CPU's order
     * (exact); cuDNN's sum of n = kh*kw values in any order is within
     * (n - 1) 2^-24 sum|x| <= n 2^-24 max|x| of the CPU's, each division
     * adding half an ulp on each side. */
    double tol = 0;
    if (on_gpu && pool_cudnn(&g))
        tol = (pc->kh * pc->kw + 2) * U * max_abs(tensor_cdata(x), nin);
    char w2[200];
    snprintf(w2, sizeof w2, "%s: y", what);
    compare(w2, host(y[1]), host(y[0]), nout, tol, NULL);
    if (mask_kind) {
        if (mask_kind == 1) {
            /* ints in float tensors: equal ints are equal bytes */
            const unsigned char *a = (const unsigned char *)host(m[1]), *b = (const unsigned char *)host(m[0]);
            size_t bad = 0;
            for (size_t i = 0; i < nout; i++)
                bad += memcmp(a + 4 * i, b + 4 * i, 4) != 0;
            printf("  %-44s %zu of %zu differ\n", "  argmax indices", bad, nout);
            CHECK_MSG(bad == 0, "%s: %zu argmax indices differ", what, bad);
        } else {
            snprintf(w2, sizeof w2, "%s: mask", what);
            compare(w2, host(m[1]), host(m[0]), nout, 0, NULL);
        }
    }
    /* Backward gathers, per input element, the same terms in the order
     * the CPU scatters them: exact. */
    if (pc->method == VISION_POOL_AVE || mask_kind) {
        snprintf(w2, sizeof w2, "%s: dx", what);
        compare(w2, host(dx[1]), host(dx[0]), nin, 0, NULL);
    }
    tensor_free(x);
    tensor_free(dy);
    for (int k = 0; k < 2; k++) {
        tensor_free(y[k]);
        tensor_free(m[k]);
        tensor_free(dx[k]);
    }
}

static void test_pooling(void)
{
    struct rng r;
    rng_seed(&r, 1);
    const struct pool_case cases[] = {
        /* method, kh, kw, sh, sw, ph, pw, H, W, planes, ceil, ties */
        { 0, 3, 3, 2, 2, 0, 0, 7, 8, 3, true, false },   /* CEIL adds a clipped window */
        { 0, 3, 3, 2, 2, 1, 1, 7, 7, 5, true, true },    /* padded, ties */
        { 0, 3, 2, 2, 1, 1, 0, 9, 6, 2, false, false },  /* rectangular, FLOOR */
        { 0, 5, 7, 1, 1, 0, 0, 5, 7, 3, true, true },    /* global, ties */
        { 0, 1, 1, 1, 1, 0, 0, 1, 1, 4, true, false },   /* 1x1 */
        { 0, 2, 2, 2, 2, 1, 1, 6, 5, 3, true, true },    /* windows of one pixel at the corners */
        { 0, 3, 3, 3, 3, 2, 2, 6, 6, 1, true, false },   /* the last window would start in the padding */
        { 0, 11, 11, 4, 4, 0, 0, 37, 29, 2, true, false }, /* large windows, many ranges */
        { 1, 3, 3, 2, 2, 0, 0, 7, 8, 3, true, false },   /* clipped AVE windows (own kernel) */
        { 1, 3, 3, 2, 2, 1, 1, 7, 7, 5, true, false },   /* padded, divisor counts padding */
        { 1, 3, 3, 2, 2, 1, 1, 7, 7, 5, false, false },  /* FLOOR: cuDNN's on a GPU */
        { 1, 3, 2, 2, 1, 1, 0, 9, 6, 2, false, true },
        { 1, 5, 7, 1, 1, 0, 0, 5, 7, 3, true, false },   /* global: cuDNN's */
        { 1, 1, 1, 1, 1, 0, 0, 1, 1, 4, true, false },
        { 1, 2, 2, 2, 2, 1, 1, 6, 5, 3, true, false },
        { 1, 4, 4, 3, 3, 0, 0, 10, 10, 2, false, false }, /* cuDNN's, stride < kernel */
        { 1, 11, 11, 4, 4, 0, 0, 37, 29, 2, true, false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].method == VISION_POOL_MAX)
            for (int mk = 0; mk < 3; mk++)
                pool_one_case(&cases[i], mk, &r);
        else
            pool_one_case(&cases[i], 0, &r);
    }
}

/* Caffe's pooling loops, the reference for the CPU's own: the first
 * maximum of each window in row-major order (strict >, so NaN and values
 * not above -FLT_MAX never win: index -1), or the window's sum from 0 in
 * that order over a divisor that counts the padding. */
static void pool_reference(const struct pool_geom *g, int planes, const float *x, float *y, int *arg,
                           const float *dy, float *dx)
{
    memset(dx, 0, (size_t)planes * g->height * g->width * sizeof *dx);
    for (int p = 0; p < planes; p++)
        for (int ph = 0; ph < g->pooled_h; ph++)
            for (int pw = 0; pw < g->pooled_w; pw++) {
                int hs = ph * g->stride_h - g->pad_h, ws = pw * g->stride_w - g->pad_w;
                int he, we;
                float size = 0;
                if (g->method == VISION_POOL_MAX) {
                    he = hs + g->kernel_h < g->height ? hs + g->kernel_h : g->height;
                    we = ws + g->kernel_w < g->width ? ws + g->kernel_w : g->width;
                } else {
                    he = hs + g->kernel_h < g->height + g->pad_h ? hs + g->kernel_h : g->height + g->pad_h;
                    we = ws + g->kernel_w < g->width + g->pad_w ? ws + g->kernel_w : g->width + g->pad_w;
                    size = (float)((he - hs) * (we - ws));
                    he = he < g->height ? he : g->height;
                    we = we < g->width ? we : g->width;
                }
                hs = hs > 0 ? hs : 0;
                ws = ws > 0 ? ws : 0;
                const float *in = x + (size_t)p * g->height * g->width;
                size_t o = ((size_t)p * g->pooled_h + ph) * g->pooled_w + pw;
                float best = g->method == VISION_POOL_MAX ? -FLT_MAX : 0.f;
                int at = -1;
                for (int h = hs; h < he; h++)
                    for (int w = ws; w < we; w++) {
                        float v = in[h * g->width + w];
                        if (g->method != VISION_POOL_MAX)
                            best += v;
                        else if (v > best) {
                            best = v;
                            at = h * g->width + w;
                        }
                    }
                y[o] = g->method == VISION_POOL_MAX ? best : best / size;
                arg[o] = at;
                /* the gradient, added in this order */
                float *din = dx + (size_t)p * g->height * g->width;
                if (g->method == VISION_POOL_MAX) {
                    if (at >= 0)
                        din[at] += dy[o];
                    continue;
                }
                for (int h = hs; h < he; h++)
                    for (int w = ws; w < we; w++)
                        din[h * g->width + w] += dy[o] / size;
            }
}

/* Rows of at least eight interior outputs (the CPU's vector code for
 * horizontal strides 1 and 2, eight and sixteen outputs at a time, the
 * last block overlapping) and rows of at most eight outputs (one vector a
 * row, clipped windows included), on each engine this CPU has, against Caffe's
 * loops: values, argmax and the gradient bit for bit, with ties, NaN,
 * -inf and -FLT_MAX in the windows. */
static void test_pooling_rows_against_caffe(void)
{
    struct rng r;
    rng_seed(&r, 7);
    const struct pool_case cases[] = {
        /* method, kh, kw, sh, sw, ph, pw, H, W, planes, ceil, ties */
        { 0, 3, 3, 2, 2, 0, 0, 9, 37, 3, true, false },  /* CIFAR10-quick's pool1: 18 a row */
        { 0, 2, 2, 2, 2, 0, 0, 24, 24, 2, true, true },  /* LeNet's pool1: 12 a row */
        { 0, 3, 3, 1, 1, 1, 1, 7, 21, 2, true, true },   /* stride 1, padded */
        { 0, 5, 4, 2, 2, 2, 2, 6, 40, 2, false, true },
        { 0, 3, 3, 2, 2, 0, 0, 5, 17, 2, true, false },  /* exactly 8 a row */
        { 1, 3, 3, 2, 2, 0, 0, 9, 37, 3, true, false },
        { 1, 3, 3, 1, 1, 1, 1, 7, 21, 2, true, false },
        { 1, 2, 2, 2, 2, 1, 1, 10, 34, 2, true, false },
        { 1, 5, 4, 2, 2, 2, 2, 6, 40, 2, false, false },
        /* rows of at most eight outputs, most of them clipped (AVE's
         * narrow-plane code): CIFAR10-quick's pool2 and pool3, padded
         * ones, a single output per row, the widest kernel it takes */
        { 1, 3, 3, 2, 2, 0, 0, 16, 16, 3, true, false },
        { 1, 3, 3, 2, 2, 0, 0, 8, 8, 5, true, false },
        { 1, 3, 3, 1, 1, 1, 1, 6, 7, 3, true, false },
        { 1, 2, 3, 2, 2, 1, 1, 9, 13, 2, true, false },
        { 1, 4, 5, 1, 2, 2, 2, 5, 11, 2, false, false },
        { 1, 5, 5, 1, 1, 0, 0, 5, 5, 4, true, false },
        { 1, 3, 8, 2, 2, 1, 3, 7, 16, 2, true, false },
        /* MAX's forward on the same narrow planes: LeNet's pool2,
         * CaffeNet's pool5, padded, one output a row, the widest kernel */
        { 0, 2, 2, 2, 2, 0, 0, 8, 8, 5, true, true },
        { 0, 3, 3, 2, 2, 0, 0, 13, 13, 3, true, false },
        { 0, 3, 3, 1, 1, 1, 1, 6, 7, 3, true, true },
        { 0, 2, 3, 2, 2, 1, 1, 9, 13, 2, true, false },
        { 0, 5, 5, 1, 1, 0, 0, 5, 5, 4, true, true },
        { 0, 3, 8, 2, 2, 1, 3, 7, 16, 2, true, false },
    };
    static const char *const engines[] = { "avx512", "avx2", "blas" };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const struct pool_case *pc = &cases[c];
        struct pool_geom g = { .method = pc->method, .kernel_h = pc->kh, .kernel_w = pc->kw,
                               .stride_h = pc->sh, .stride_w = pc->sw, .pad_h = pc->ph, .pad_w = pc->pw,
                               .height = pc->H, .width = pc->W };
        CHECK_OK(pool_geom_shape(&g, pc->ceil));
        size_t nin = (size_t)pc->planes * pc->H * pc->W, nout = (size_t)pc->planes * g.pooled_h * g.pooled_w;
        struct tensor *x = vec(nin);
        if (pc->ties)
            fill_ties(x, &r);
        else
            fill(x, &r, -1.f, 1.f);
        float *xd = tensor_data(x);
        if (pc->method == VISION_POOL_MAX) /* values that must not win */
            for (size_t i = 0; i < nin; i += 5)
                xd[i] = i % 3 == 0 ? NAN : i % 3 == 1 ? -INFINITY : -FLT_MAX;
        float *want = malloc(nout * sizeof *want), *got = malloc(nout * sizeof *got);
        float *fmask = malloc(nout * sizeof *fmask), *dy = malloc(nout * sizeof *dy);
        float *dx_want = malloc(nin * sizeof *dx_want), *dx = malloc(nin * sizeof *dx);
        int *arg = malloc(nout * sizeof *arg), *imask = malloc(nout * sizeof *imask);
        CHECK(want && got && fmask && dy && dx_want && dx && arg && imask);
        for (size_t i = 0; i < nout; i++)
            dy[i] = rng_uniform(&r, -1.f, 1.f);
        pool_reference(&g, pc->planes, xd, want, arg, dy, dx_want);
        for (size_t e = 0; e < sizeof engines / sizeof *engines; e++) {
            if (cpu_ukr_select(engines[e]) != CREMA_OK)
                continue; /* not on this CPU */
            for (int mk = 0; mk < (pc->method == VISION_POOL_MAX ? 3 : 1); mk++) {
                for (size_t i = 0; i < nout; i++) {
                    got[i] = 7.f;
                    imask[i] = -5;
                    fmask[i] = -5.f;
                }
                cpu_be->vision->pool_forward(cpu_be, &g, pc->planes, xd, got, mk == 1 ? imask : NULL,
                                             mk == 2 ? fmask : NULL);
                size_t bad = 0, bad_arg = 0, bad_dx = 0;
                for (size_t i = 0; i < nout; i++) {
                    bad += memcmp(&got[i], &want[i], sizeof(float)) != 0;
                    bad_arg += (mk == 1 && imask[i] != arg[i]) || (mk == 2 && fmask[i] != (float)arg[i]);
                }
                bool back = pc->method == VISION_POOL_AVE || mk > 0;
                if (back) {
                    for (size_t i = 0; i < nin; i++)
                        dx[i] = 7.f;
                    cpu_be->vision->pool_backward(cpu_be, &g, pc->planes, dy, mk == 1 ? imask : NULL,
                                                  mk == 2 ? fmask : NULL, dx);
                    for (size_t i = 0; i < nin; i++)
                        bad_dx += memcmp(&dx[i], &dx_want[i], sizeof(float)) != 0;
                }
                printf("  pool %s %dx%d/%d on %dx%d [%s] mask %d: %zu values, %zu indices of %zu, %zu of %zu "
                       "gradients differ\n",
                       pc->method ? "AVE" : "MAX", pc->kh, pc->kw, pc->sw, pc->H, pc->W, engines[e], mk, bad,
                       bad_arg, nout, bad_dx, back ? nin : 0);
                CHECK_MSG(bad == 0 && bad_arg == 0 && bad_dx == 0,
                          "pool case %zu on %s: %zu values, %zu indices, %zu gradients differ", c, engines[e], bad,
                          bad_arg, bad_dx);
            }
        }
        CHECK_OK(cpu_ukr_select(NULL));
        tensor_free(x);
        free(want);
        free(got);
        free(fmask);
        free(dy);
        free(dx_want);
        free(dx);
        free(arg);
        free(imask);
    }
}

/* A float mask handed back to MAX's backward (Caffe's second top) is cut
 * to an int as Caffe's static_cast does, toward zero: -0.5 and 0.9 are
 * input 0, 2.75 is input 2; -1 (a window of NaNs), NaN and indices at or
 * past the plane's end are dropped, not written out of bounds. */
static void test_pool_float_mask_indices(void)
{
    struct pool_geom g = { .method = VISION_POOL_MAX, .kernel_h = 1, .kernel_w = 1, .stride_h = 1, .stride_w = 1,
                           .height = 2, .width = 4 };
    CHECK_OK(pool_geom_shape(&g, true));
    CHECK(g.pooled_h == 2 && g.pooled_w == 4);
    const float mask[8] = { -0.5f, 0.9f, 2.75f, -1.f, NAN, 8.f, 7.5f, -0.999f };
    const float dy[8] = { 1.f, 2.f, 4.f, 8.f, 16.f, 32.f, 64.f, 128.f };
    /* input 0 gets -0.5, 0.9 and -0.999's; 2 gets 2.75's; 7 gets 7.5's */
    const float want[8] = { 131.f, 0.f, 4.f, 0.f, 0.f, 0.f, 0.f, 64.f };
    float dx[8 + 1];
    dx[8] = 99.f; /* the slot past the plane stays untouched */
    cpu_be->vision->pool_backward(cpu_be, &g, 1, dy, NULL, mask, dx);
    for (int i = 0; i < 8; i++)
        CHECK_MSG(dx[i] == want[i], "input %d: gradient %g, want %g", i, dx[i], want[i]);
    CHECK(dx[8] == 99.f);
}

/* ------------------------------------------------------------ LRN */

static void test_lrn_across(void)
{
    struct rng r;
    rng_seed(&r, 2);
    const struct lrn_geom cases[] = {
        /* num, channels, height, width, size, alpha, beta, k */
        { 2, 7, 3, 5, 5, 0.5f, 0.75f, 2.f },
        { 1, 1, 1, 1, 3, 1e-4f, 0.75f, 1.f },
        { 2, 2, 3, 3, 5, 0.9f, 0.6f, 1.5f }, /* window wider than the channels */
        { 3, 5, 2, 1, 1, 0.3f, 0.75f, 1.f }, /* size 1 */
        { 1, 16, 4, 4, 3, 2.f, 1.3f, 0.5f },
        { 2, 9, 5, 3, 7, 1e-3f, 0.75f, 1.f },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const struct lrn_geom *g = &cases[c];
        size_t n = (size_t)g->num * g->channels * g->height * g->width;
        struct tensor *x = vec(n), *dy = vec(n), *sc[2], *y[2], *dx[2], *yin[2];
        fill(x, &r, -2.f, 2.f);
        fill(dy, &r, -1.f, 1.f);
        const struct backend *bes[2] = { cpu_be, dev_be };
        for (int k = 0; k < 2; k++) {
            const struct backend *be = bes[k];
            sc[k] = vec(n);
            y[k] = vec(n);
            dx[k] = vec(n);
            yin[k] = vec(n);
            CHECK_OK(tensor_copy_from(yin[k], x, false));
            CHECK_OK(be->vision->lrn_across_forward(be, g, tensor_cdata_on(x, be), tensor_data_on(sc[k], be),
                                                    tensor_data_on(y[k], be)));
            /* in place: y over x */
            float *io = tensor_data_on(yin[k], be);
            CHECK_OK(be->vision->lrn_across_forward(be, g, io, tensor_data_on(sc[k], be), io));
            CHECK_OK(be->vision->lrn_across_backward(be, g, tensor_cdata_on(x, be), tensor_cdata_on(y[k], be),
                                                     tensor_cdata_on(sc[k], be), tensor_cdata_on(dy, be),
                                                     tensor_data_on(dx[k], be)));
            CHECK_OK(be->sync(be));
        }
        /* scale: the same running sums, operation for operation: exact.
         * beta 0.75 is three correctly rounded operations on both sides:
         * exact. Otherwise powf: CUDA's is within 4 ulp, glibc's within 1,
         * so p = scale^-beta differs by at most 5 ulp <= 10 2^-24 |p|; y
         * = x p adds an ulp each side; dx = dy p - c x (sum of ratios,
         * each dy y / scale carrying y's error): 12 2^-24 times the
         * magnitude of both terms. */
        double ytol = 0, dxtol = 0;
        if (on_gpu && g->beta != 0.75f) {
            const float *s = tensor_cdata(sc[0]), *yy = tensor_cdata(y[0]), *xx = tensor_cdata(x),
                        *d = tensor_cdata(dy);
            double t1 = 0, t2 = 0, cr = 2.0 * g->alpha * g->beta / g->size;
            for (size_t i = 0; i < n; i++) {
                t1 = fmax(t1, fabs(d[i] * pow(s[i], -g->beta)));
                t2 = fmax(t2, fabs(d[i] * yy[i] / s[i]));
            }
            ytol = 12 * U * max_abs(yy, n);
            dxtol = 12 * U * (t1 + cr * max_abs(xx, n) * g->size * t2);
        }
        char what[160];
        snprintf(what, sizeof what, "lrn across %dx%dx%dx%d size %d beta %g", g->num, g->channels, g->height,
                 g->width, g->size, (double)g->beta);
        char w2[200];
        snprintf(w2, sizeof w2, "%s: scale", what);
        compare(w2, host(sc[1]), host(sc[0]), n, 0, NULL);
        snprintf(w2, sizeof w2, "%s: y", what);
        compare(w2, host(y[1]), host(y[0]), n, ytol, NULL);
        snprintf(w2, sizeof w2, "%s: y in place", what);
        compare(w2, host(yin[1]), host(y[0]), n, ytol, NULL);
        snprintf(w2, sizeof w2, "%s: dx", what);
        compare(w2, host(dx[1]), host(dx[0]), n, dxtol, NULL);
        tensor_free(x);
        tensor_free(dy);
        for (int k = 0; k < 2; k++) {
            tensor_free(sc[k]);
            tensor_free(y[k]);
            tensor_free(dx[k]);
            tensor_free(yin[k]);
        }
    }
}

static void test_lrn_within(void)
{
    struct rng r;
    rng_seed(&r, 3);
    const struct lrn_geom cases[] = {
        { 2, 3, 5, 7, 3, 0.8f, 0.6f, 1.f },
        { 1, 2, 4, 4, 5, 1e-2f, 0.75f, 1.f },
        { 1, 1, 1, 1, 3, 0.5f, 0.75f, 1.f }, /* a 1x1 image: all padding around */
        { 2, 4, 3, 2, 1, 0.5f, 0.75f, 1.f }, /* size 1 */
        { 1, 3, 6, 5, 5, 1.f, 1.f, 1.f },    /* power -1 */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const struct lrn_geom *g = &cases[c];
        size_t n = (size_t)g->num * g->channels * g->height * g->width;
        struct tensor *x = vec(n), *dy = vec(n), *sc[2], *pw[2], *y[2], *dx[2], *w1[2], *w2t[2];
        fill(x, &r, -2.f, 2.f);
        fill(dy, &r, -1.f, 1.f);
        const struct backend *bes[2] = { cpu_be, dev_be };
        for (int k = 0; k < 2; k++) {
            const struct backend *be = bes[k];
            sc[k] = vec(n);
            pw[k] = vec(n);
            y[k] = vec(n);
            dx[k] = vec(n);
            w1[k] = vec(n);
            w2t[k] = vec(n);
            be->vision->lrn_within_forward(be, g, tensor_cdata_on(x, be), tensor_data_on(w1[k], be),
                                           tensor_data_on(sc[k], be), tensor_data_on(pw[k], be),
                                           tensor_data_on(y[k], be));
            be->vision->lrn_within_backward(be, g, tensor_cdata_on(x, be), tensor_cdata_on(dy, be),
                                            tensor_cdata_on(sc[k], be), tensor_cdata_on(pw[k], be),
                                            tensor_data_on(w1[k], be), tensor_data_on(w2t[k], be),
                                            tensor_data_on(dx[k], be));
            CHECK_OK(be->sync(be));
        }
        /* The pooled squares: x*x rounded once, then the own AVE kernel in
         * the CPU's order: exact. power = (1 + alpha s)^-beta goes through
         * powf on both sides (CUDA within 4 ulp, glibc 1): 10 2^-24 |p|,
         * and y = x p one more ulp. dx = p dy + 2 x d_sq, d_sq the pooled
         * d_pool (work2 after the CPU's backward), each term carrying p's
         * error: 16 2^-24 times the largest of each term. */
        double ptol = 0, ytol = 0, dxtol = 0;
        if (on_gpu) {
            const float *p = tensor_cdata(pw[0]), *d = tensor_cdata(dy), *dp = tensor_cdata(w2t[0]);
            double t1 = 0;
            for (size_t i = 0; i < n; i++)
                t1 = fmax(t1, fabs((double)p[i] * d[i]));
            ptol = 10 * U * max_abs(p, n);
            ytol = 12 * U * max_abs(tensor_cdata(y[0]), n);
            dxtol = 16 * U * (t1 + 2 * max_abs(tensor_cdata(x), n) * max_abs(dp, n));
        }
        char what[160], w2[200];
        snprintf(what, sizeof what, "lrn within %dx%dx%dx%d size %d beta %g", g->num, g->channels, g->height,
                 g->width, g->size, (double)g->beta);
        snprintf(w2, sizeof w2, "%s: scale", what);
        compare(w2, host(sc[1]), host(sc[0]), n, 0, NULL);
        snprintf(w2, sizeof w2, "%s: power", what);
        compare(w2, host(pw[1]), host(pw[0]), n, ptol, NULL);
        snprintf(w2, sizeof w2, "%s: y", what);
        compare(w2, host(y[1]), host(y[0]), n, ytol, NULL);
        snprintf(w2, sizeof w2, "%s: dx", what);
        compare(w2, host(dx[1]), host(dx[0]), n, dxtol, NULL);
        tensor_free(x);
        tensor_free(dy);
        for (int k = 0; k < 2; k++) {
            tensor_free(sc[k]);
            tensor_free(pw[k]);
            tensor_free(y[k]);
            tensor_free(dx[k]);
            tensor_free(w1[k]);
            tensor_free(w2t[k]);
        }
    }
}

/* ------------------------------------------------------------ bias */

static void test_bias(void)
{
    struct rng r;
    rng_seed(&r, 4);
    const int cases[][3] = { { 3, 5, 7 }, { 1, 1, 1 }, { 2, 3, 1 }, { 4, 2, 33 }, { 2, 64, 300 } };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int N = cases[c][0], C = cases[c][1], S = cases[c][2];
        size_t n = (size_t)N * C * S;
        struct tensor *y0 = vec(n), *bias = vec((size_t)C), *db0 = vec((size_t)C), *dy = vec(n), *ones = vec((size_t)S);
        struct tensor *y[2], *db[2];
        fill(y0, &r, -1.f, 1.f);
        fill(bias, &r, -1.f, 1.f);
        fill(db0, &r, -1.f, 1.f);
        fill(dy, &r, -1.f, 1.f);
        set_all(ones, 1.f);
        const struct backend *bes[2] = { cpu_be, dev_be };
        for (int k = 0; k < 2; k++) {
            const struct backend *be = bes[k];
            y[k] = vec(n);
            db[k] = vec((size_t)C);
            CHECK_OK(tensor_copy_from(y[k], y0, false));
            CHECK_OK(tensor_copy_from(db[k], db0, false));
            be->vision->bias_forward(be, N, C, S, tensor_cdata_on(bias, be), tensor_cdata_on(ones, be),
                                     tensor_data_on(y[k], be));
            be->vision->bias_backward(be, N, C, S, tensor_cdata_on(dy, be), tensor_cdata_on(ones, be),
                                      tensor_data_on(db[k], be));
            CHECK_OK(be->sync(be));
        }
        /* y + bias is one rounded addition on both sides: exact. db adds
         * N*S values to db0 in another order: within (N*S + 1) 2^-24 times
         * the sum of their magnitudes, on each side. */
        double *bound = calloc((size_t)C, sizeof *bound);
        const float *d = tensor_cdata(dy), *b0 = tensor_cdata(db0);
        for (int ch = 0; ch < C; ch++) {
            double s = fabs(b0[ch]);
            for (int i = 0; i < N; i++)
                for (int j = 0; j < S; j++)
                    s += fabs(d[((size_t)i * C + ch) * S + j]);
            bound[ch] = on_gpu ? 2.0 * (N * S + 1) * U * s : 0;
        }
        char what[120];
        snprintf(what, sizeof what, "bias %dx%dx%d: forward", N, C, S);
        compare(what, host(y[1]), host(y[0]), n, 0, NULL);
        snprintf(what, sizeof what, "bias %dx%dx%d: backward", N, C, S);
        compare(what, host(db[1]), host(db[0]), (size_t)C, 0, bound);
        free(bound);
        tensor_free(y0);
        tensor_free(bias);
        tensor_free(db0);
        tensor_free(dy);
        tensor_free(ones);
        for (int k = 0; k < 2; k++) {
            tensor_free(y[k]);
            tensor_free(db[k]);
        }
    }
}

/* ------------------------------------------------------------ crop */

static void test_crop(void)
{
    struct rng r;
    rng_seed(&r, 5);
    struct {
        int n, big[5], small[5], off[5];
    } cases[] = {
        { 4, { 2, 4, 6, 5 }, { 2, 2, 3, 3 }, { 0, 1, 2, 1 } },
        { 1, { 10 }, { 3 }, { 7 } },
        { 0, { 0 }, { 0 }, { 0 } }, /* a scalar */
        { 5, { 2, 3, 4, 3, 5 }, { 1, 2, 2, 3, 1 }, { 1, 0, 2, 0, 4 } },
        { 3, { 3, 1, 7 }, { 3, 1, 7 }, { 0, 0, 0 } }, /* the whole */
        { 2, { 4, 9 }, { 4, 1 }, { 0, 8 } },          /* one column */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int n = cases[c].n;
        size_t nb = 1, ns = 1;
        for (int d = 0; d < n; d++) {
            nb *= (size_t)cases[c].big[d];
            ns *= (size_t)cases[c].small[d];
        }
        struct tensor *big = vec(nb), *small = vec(ns), *g[2], *s[2];
        fill(big, &r, -1.f, 1.f);
        fill(small, &r, -1.f, 1.f);
        const struct backend *bes[2] = { cpu_be, dev_be };
        for (int k = 0; k < 2; k++) {
            const struct backend *be = bes[k];
            g[k] = vec(ns);
            s[k] = vec(nb);
            set_all(g[k], 9.f);
            CHECK_OK(tensor_copy_from(s[k], big, false)); /* scatter leaves the rest alone */
            be->vision->crop_gather(be, n, cases[c].big, cases[c].small, cases[c].off, tensor_cdata_on(big, be),
                                    tensor_data_on(g[k], be));
            be->vision->crop_scatter(be, n, cases[c].big, cases[c].small, cases[c].off,
                                     tensor_cdata_on(small, be), tensor_data_on(s[k], be));
            CHECK_OK(be->sync(be));
        }
        /* Copies: exact. */
        char what[80];
        snprintf(what, sizeof what, "crop %d axes: gather", n);
        compare(what, host(g[1]), host(g[0]), ns, 0, NULL);
        snprintf(what, sizeof what, "crop %d axes: scatter", n);
        compare(what, host(s[1]), host(s[0]), nb, 0, NULL);
        tensor_free(big);
        tensor_free(small);
        for (int k = 0; k < 2; k++) {
            tensor_free(g[k]);
            tensor_free(s[k]);
        }
    }
}

/* ------------------------------------------------------------ convolution plans */

static size_t prod(const int *a, int n)
{
    size_t p = 1;
    for (int i = 0; i < n; i++)
        p *= (size_t)a[i];
    return p;
}

/* The three products on the CPU backend, im2col + gemm image by image and
 * group by group (what the layers do without a plan). */
static void conv_cpu(const struct conv_shape *s, const float *x, const float *w, const float *dy, float *y,
                     float *dx, float *dw)
{
    const struct backend *be = cpu_be;
    int ns = s->num_spatial_axes, G = s->groups;
    size_t in_sp = prod(s->in_shape, ns), out_sp = prod(s->out_shape, ns), ks = prod(s->kernel, ns);
    int kdim = (int)(s->in_channels / G * ks), og = s->out_channels / G;
    int ims[VISION_CONV_MAX_AXES + 1], cols[VISION_CONV_MAX_AXES + 1];
    ims[0] = s->in_channels;
    cols[0] = (int)(s->in_channels * ks);
    for (int a = 0; a < ns; a++) {
        ims[1 + a] = s->in_shape[a];
        cols[1 + a] = s->out_shape[a];
    }
    float *col = calloc((size_t)cols[0] * out_sp, sizeof *col);
    if (!col)
        return;
    for (int n = 0; n < s->num; n++) {
        const float *xn = x + (size_t)n * s->in_channels * in_sp;
        const float *dyn = dy + (size_t)n * s->out_channels * out_sp;
        be->math->im2col_nd(be, xn, ns, ims, cols, s->kernel, s->pad, s->stride, s->dilation, col);
        for (int g = 0; g < G; g++) {
            be->math->gemm(be, false, false, og, (int)out_sp, kdim, 1.f, w + (size_t)g * og * kdim,
                           col + (size_t)g * kdim * out_sp, 0.f, y + ((size_t)n * s->out_channels + g * og) * out_sp);
            be->math->gemm(be, false, true, og, kdim, (int)out_sp, 1.f, dyn + (size_t)g * og * out_sp,
                           col + (size_t)g * kdim * out_sp, 1.f, dw + (size_t)g * og * kdim);
        }
        for (int g = 0; g < G; g++)
            be->math->gemm(be, true, false, kdim, (int)out_sp, og, 1.f, w + (size_t)g * og * kdim,
                           dyn + (size_t)g * og * out_sp, 0.f, col + (size_t)g * kdim * out_sp);
        be->math->col2im_nd(be, col, ns, ims, cols, s->kernel, s->pad, s->stride, s->dilation,
                            dx + (size_t)n * s->in_channels * in_sp);
    }
    free(col);
}

/* For each output of the three products, the sum of the magnitudes of its
 * terms (and their number in *terms_*), by direct loops in double: the
 * scale of any summation order's rounding error. */
static void conv_abs(const struct conv_shape *s, const float *x, const float *w, const float *dy, const float *dw0,
                     double *ay, double *adx, double *adw)
{
    int ns = s->num_spatial_axes, G = s->groups;
    size_t in_sp = prod(s->in_shape, ns), out_sp = prod(s->out_shape, ns), ks = prod(s->kernel, ns);
    int icg = s->in_channels / G, og = s->out_channels / G;
    for (size_t i = 0; i < prod(s->kernel, ns) * icg * s->out_channels; i++)
        adw[i] = fabs(dw0[i]);
    for (int n = 0; n < s->num; n++)
        for (int oc = 0; oc < s->out_channels; oc++) {
            int g = oc / og;
            for (size_t o = 0; o < out_sp; o++) {
                int op[VISION_CONV_MAX_AXES];
                size_t r = o;
                for (int a = ns - 1; a >= 0; a--) {
                    op[a] = (int)(r % (size_t)s->out_shape[a]);
                    r /= (size_t)s->out_shape[a];
                }
                size_t yi = ((size_t)n * s->out_channels + oc) * out_sp + o;
                for (int icl = 0; icl < icg; icl++)
                    for (size_t kk = 0; kk < ks; kk++) {
                        size_t rk = kk, lin = 0;
                        bool inside = true;
                        int kp[VISION_CONV_MAX_AXES];
                        for (int a = ns - 1; a >= 0; a--) {
                            kp[a] = (int)(rk % (size_t)s->kernel[a]);
                            rk /= (size_t)s->kernel[a];
                        }
                        for (int a = 0; a < ns; a++) {
                            int p = op[a] * s->stride[a] - s->pad[a] + kp[a] * s->dilation[a];
                            inside = inside && p >= 0 && p < s->in_shape[a];
                            lin = lin * (size_t)s->in_shape[a] + (size_t)(p < 0 ? 0 : p);
                        }
                        if (!inside)
                            continue;
                        size_t xi = ((size_t)n * s->in_channels + g * icg + icl) * in_sp + lin;
                        size_t wi = ((size_t)oc * icg + icl) * ks + kk;
                        ay[yi] += fabs((double)w[wi] * x[xi]);
                        adx[xi] += fabs((double)w[wi] * dy[yi]);
                        adw[wi] += fabs((double)dy[yi] * x[xi]);
                    }
            }
        }
}

struct conv_case {
    const char *name;
    struct conv_shape s;
};

static void conv_plan_case(const struct conv_case *cc, struct rng *r)
{
    const struct conv_shape *s = &cc->s;
    const struct vision_ops *v = dev_be->vision;
    void *plan = NULL;
    CHECK_OK(v->conv_plan_create(dev_be, s, &plan));
    CHECK_MSG(plan != NULL, "conv %s: the device made no plan for a shape it should handle", cc->name);
    if (!plan)
        return;
    int ns = s->num_spatial_axes;
    size_t nx = (size_t)s->num * s->in_channels * prod(s->in_shape, ns);
    size_t ny = (size_t)s->num * s->out_channels * prod(s->out_shape, ns);
    size_t nw = (size_t)s->out_channels * (s->in_channels / s->groups) * prod(s->kernel, ns);
    struct tensor *x = vec(nx), *w = vec(nw), *dy = vec(ny), *dw0 = vec(nw);
    struct tensor *y[2] = { vec(ny), vec(ny) }, *dx[2] = { vec(nx), vec(nx) }, *dw[2] = { vec(nw), vec(nw) };
    struct tensor *again = vec(ny), *dx2 = vec(nx), *dw2 = vec(nw);
    fill(x, r, -1.f, 1.f);
    fill(w, r, -1.f, 1.f);
    fill(dy, r, -1.f, 1.f);
    fill(dw0, r, -1.f, 1.f);
    CHECK_OK(tensor_copy_from(dw[0], dw0, false));
    CHECK_OK(tensor_copy_from(dw[1], dw0, false));
    CHECK_OK(tensor_copy_from(dw2, dw0, false));
    set_all(y[1], 7.f);
    set_all(dx[1], 7.f);
    conv_cpu(s, tensor_cdata(x), tensor_cdata(w), tensor_cdata(dy), tensor_data(y[0]), tensor_data(dx[0]),
             tensor_data(dw[0]));
    const float *xd = tensor_cdata_on(x, dev_be), *wd = tensor_cdata_on(w, dev_be), *dyd = tensor_cdata_on(dy, dev_be);
    v->conv_forward(dev_be, plan, xd, wd, NULL, tensor_data_on(y[1], dev_be));
    v->conv_backward_data(dev_be, plan, dyd, wd, tensor_data_on(dx[1], dev_be));
    v->conv_backward_filter(dev_be, plan, xd, dyd, tensor_data_on(dw[1], dev_be), NULL);
    /* Twice more from the same start: the algorithms are deterministic. */
    v->conv_forward(dev_be, plan, xd, wd, NULL, tensor_data_on(again, dev_be));
    v->conv_backward_data(dev_be, plan, dyd, wd, tensor_data_on(dx2, dev_be));
    v->conv_backward_filter(dev_be, plan, xd, dyd, tensor_data_on(dw2, dev_be), NULL);
    CHECK_OK(dev_be->sync(dev_be));
    /* Each output is a sum of terms; fp32 in any order (and with FMA) is
     * within (terms + 1) 2^-24 times the sum of their magnitudes of the
     * exact value, on each side: twice that apart. */
    double *ay = calloc(ny, sizeof *ay), *adx = calloc(nx, sizeof *adx), *adw = calloc(nw, sizeof *adw);
    if (!ay || !adx || !adw)
        return;
    conv_abs(s, tensor_cdata(x), tensor_cdata(w), tensor_cdata(dy), tensor_cdata(dw0), ay, adx, adw);
    size_t ks = prod(s->kernel, ns);
    double tf = (double)(s->in_channels / s->groups * ks + 1), td = (double)(s->out_channels / s->groups * ks + 1),
           tw = (double)(s->num * prod(s->out_shape, ns) + 2);
    for (size_t i = 0; i < ny; i++)
        ay[i] *= 2 * tf * U;
    for (size_t i = 0; i < nx; i++)
        adx[i] *= 2 * td * U;
    for (size_t i = 0; i < nw; i++)
        adw[i] *= 2 * tw * U;
    char what[160];
    snprintf(what, sizeof what, "conv %s: forward", cc->name);
    compare(what, host(y[1]), host(y[0]), ny, 0, ay);
    snprintf(what, sizeof what, "conv %s: backward data", cc->name);
    compare(what, host(dx[1]), host(dx[0]), nx, 0, adx);
    snprintf(what, sizeof what, "conv %s: backward filter (accumulated)", cc->name);
    compare(what, host(dw[1]), host(dw[0]), nw, 0, adw);
    CHECK_MSG(memcmp(host(again), host(y[1]), ny * sizeof(float)) == 0, "conv %s: forward differs between runs",
              cc->name);
    CHECK_MSG(memcmp(host(dx2), host(dx[1]), nx * sizeof(float)) == 0,
              "conv %s: backward data differs between runs", cc->name);
    CHECK_MSG(memcmp(host(dw2), host(dw[1]), nw * sizeof(float)) == 0,
              "conv %s: backward filter differs between runs", cc->name);

    /* TF32: each operand rounded to 10 fraction bits (2^-11 relative), so
     * each product within 2^-10 + the fp32 bound; then back to fp32,
     * which must choose FMA kernels again. */
    if (dev_be->set_tf32) {
        CHECK_OK(dev_be->set_tf32(dev_be, true));
        v->conv_forward(dev_be, plan, xd, wd, NULL, tensor_data_on(again, dev_be));
        CHECK_OK(dev_be->sync(dev_be));
        double *at = calloc(ny, sizeof *at);
        for (size_t i = 0; at && i < ny; i++)
            at[i] = ay[i] + 1.01 * ay[i] / (2 * tf * U) * (1.0 / 1024);
        snprintf(what, sizeof what, "conv %s: forward with TF32", cc->name);
        if (at)
            compare(what, host(again), host(y[0]), ny, 0, at);
        printf("  %-44s %s\n", "", memcmp(host(again), host(y[1]), ny * sizeof(float))
                                        ? "(TF32 changed the result: tensor-core kernels)"
                                        : "(the same bits as fp32: cuDNN kept FMA kernels)");
        free(at);
        CHECK_OK(dev_be->set_tf32(dev_be, false));
        v->conv_forward(dev_be, plan, xd, wd, NULL, tensor_data_on(again, dev_be));
        CHECK_OK(dev_be->sync(dev_be));
        CHECK_MSG(memcmp(host(again), host(y[1]), ny * sizeof(float)) == 0,
                  "conv %s: fp32 forward after TF32 differs from the first", cc->name);
    }
    free(ay);
    free(adx);
    free(adw);
    v->conv_plan_free(dev_be, plan);
    tensor_free(x);
    tensor_free(w);
    tensor_free(dy);
    tensor_free(dw0);
    tensor_free(again);
    tensor_free(dx2);
    tensor_free(dw2);
    for (int k = 0; k < 2; k++) {
        tensor_free(y[k]);
        tensor_free(dx[k]);
        tensor_free(dw[k]);
    }
}

#define SP1(a) { a }
static void test_conv_plans(void)
{
    const struct vision_ops *v = dev_be->vision;
    if (!v->conv_plan_create) {
        /* The mirror has no convolution of its own: its layers run im2col
         * + gemm, which the layer comparisons below and the golden cases
         * cover. */
        check_skip("%s has no convolution plans (its layers use im2col + gemm)", dev_be->name);
        return;
    }
    struct rng r;
    rng_seed(&r, 6);
    static const struct conv_case cases[] = {
        /* name, { axes, num, groups, in_ch, out_ch, in_shape, out_shape, kernel, pad, stride, dilation } */
        { "2-D k3 s2 p1", { 2, 2, 1, 3, 4, { 7, 6 }, { 4, 3 }, { 3, 3 }, { 1, 1 }, { 2, 2 }, { 1, 1 } } },
        { "2-D group 2", { 2, 2, 2, 4, 6, { 5, 5 }, { 5, 5 }, { 3, 3 }, { 1, 1 }, { 1, 1 }, { 1, 1 } } },
        { "2-D rect dilated", { 2, 1, 1, 3, 2, { 9, 8 }, { 9, 5 }, { 3, 2 }, { 2, 1 }, { 1, 2 }, { 2, 1 } } },
        { "2-D 1x1", { 2, 3, 1, 5, 7, { 4, 3 }, { 4, 3 }, { 1, 1 }, { 0, 0 }, { 1, 1 }, { 1, 1 } } },
        { "2-D depthwise", { 2, 2, 4, 4, 4, { 6, 6 }, { 6, 6 }, { 3, 3 }, { 1, 1 }, { 1, 1 }, { 1, 1 } } },
        { "2-D one output", { 2, 1, 1, 2, 1, { 3, 3 }, { 1, 1 }, { 3, 3 }, { 0, 0 }, { 1, 1 }, { 1, 1 } } },
        { "2-D 11x11 s4", { 2, 2, 1, 3, 8, { 35, 35 }, { 7, 7 }, { 11, 11 }, { 0, 0 }, { 4, 4 }, { 1, 1 } } },
        { "1-D", { 1, 2, 1, 3, 2, SP1(11), SP1(6), SP1(3), SP1(1), SP1(2), SP1(1) } },
        /* big enough for tensor-core kernels when TF32 is on */
        { "2-D 64ch 32x32", { 2, 2, 1, 64, 64, { 32, 32 }, { 32, 32 }, { 3, 3 }, { 1, 1 }, { 1, 1 }, { 1, 1 } } },
        { "3-D", { 3, 1, 1, 2, 3, { 3, 4, 4 }, { 3, 2, 4 }, { 3, 3, 3 }, { 1, 1, 1 }, { 1, 2, 1 }, { 1, 1, 1 } } },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        conv_plan_case(&cases[i], &r);
    /* Shapes cuDNN does not take: no plan, no error (im2col + gemm). */
    struct conv_shape four = { 4, 1, 1, 1, 1, { 2, 2, 2, 2 }, { 2, 2, 2, 2 }, { 1, 1, 1, 1 }, { 0 }, { 1, 1, 1, 1 },
                               { 1, 1, 1, 1 } };
    struct conv_shape empty = { 2, 0, 1, 1, 1, { 3, 3 }, { 1, 1 }, { 3, 3 }, { 0, 0 }, { 1, 1 }, { 1, 1 } };
    void *plan = (void *)&four;
    CHECK_OK(v->conv_plan_create(dev_be, &four, &plan));
    CHECK(plan == NULL);
    plan = (void *)&four;
    CHECK_OK(v->conv_plan_create(dev_be, &empty, &plan));
    CHECK(plan == NULL);
}

/* ------------------------------------------------------------ layers */

static Caffe__LayerParameter *param_of(const char *text)
{
    ProtobufCMessage *m = NULL;
    if (proto_parse_text(&caffe__layer_parameter__descriptor, text, strlen(text), "test", &m)) {
        check_fail(__FILE__, __LINE__, "parse %s: %s", text, crema_errmsg());
        return NULL;
    }
    return (Caffe__LayerParameter *)m;
}

struct layer_case {
    const char *text;
    int n_bottom, n_top;
    int axes, shape[5];
    bool skip_bottom1; /* Crop: bottom 1 gives a shape only */
    /* The absolute limit on a GPU for values in [-1, 1] (see each case). */
    double gpu_tol;
};

static struct layer *make_layer(const Caffe__LayerParameter *p, struct tensor **bottom, int nb,
                                struct tensor **top, int nt)
{
    struct rng rng;
    rng_seed(&rng, 11);
    struct layer *l = NULL;
    int rc = layer_create(p, CAFFE__PHASE__TRAIN, &rng, bottom, nb, top, nt, &l);
    if (rc)
        check_fail(__FILE__, __LINE__, "layer_create: %s", crema_errmsg());
    return l;
}

static void layer_case(const struct layer_case *lc, struct rng *r)
{
    Caffe__LayerParameter *p = param_of(lc->text);
    if (!p)
        return;
    struct tensor *bot[2][2], *top[2][2];
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 2; i++) {
            bot[k][i] = tensor_new();
            top[k][i] = tensor_new();
        }
    for (int i = 0; i < lc->n_bottom; i++) {
        int shape[5];
        memcpy(shape, lc->shape, sizeof shape);
        if (i == 1 && lc->skip_bottom1) /* Crop's reference: smaller */
            for (int a = 1; a < lc->axes; a++)
                shape[a] = shape[a] > 2 ? shape[a] - 2 : shape[a];
        CHECK_OK(tensor_reshape(bot[0][i], lc->axes, shape));
        fill(bot[0][i], r, -1.f, 1.f);
        CHECK_OK(tensor_copy_from(bot[1][i], bot[0][i], false));
    }
    struct layer *l[2] = { make_layer(p, bot[0], lc->n_bottom, top[0], lc->n_top),
                           make_layer(p, bot[1], lc->n_bottom, top[1], lc->n_top) };
    if (!l[0] || !l[1])
        goto out;
    for (int b = 0; b < l[0]->n_blobs; b++)
        CHECK_OK(tensor_copy_from(l[1]->blobs[b], l[0]->blobs[b], false));
    CHECK_MSG(layer_set_backend(l[1], dev_be), "%s: the layer has no %s path", lc->text, dev_be->name);
    bool pd[2] = { true, !lc->skip_bottom1 };
    double tol = on_gpu ? lc->gpu_tol : 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < 2; k++) {
            CHECK_OK(l[k]->kind->reshape(l[k], bot[k], top[k]));
            CHECK_OK(layer_forward(l[k], bot[k], top[k]));
        }
        for (int t = 0; t < lc->n_top; t++) {
            char what[120];
            snprintf(what, sizeof what, "layer %s pass %d: top %d", p->type, pass, t);
            compare(what, host(top[1][t]), host(top[0][t]), top[0][t]->count, tol, NULL);
            float *d0 = tensor_diff(top[0][t]);
            for (size_t j = 0; j < top[0][t]->count; j++)
                d0[j] = rng_uniform(r, -1.f, 1.f);
            memcpy(tensor_diff(top[1][t]), d0, top[0][t]->count * sizeof(float));
        }
        for (int k = 0; k < 2; k++) {
            for (int b = 0; b < l[k]->n_blobs; b++)
                tensor_zero_diff(l[k]->blobs[b]);
            CHECK_OK(layer_backward(l[k], top[k], pd, bot[k]));
        }
        CHECK_OK(dev_be->sync(dev_be));
        for (int i = 0; i < lc->n_bottom; i++) {
            if (!pd[i])
                continue;
            char what[120];
            snprintf(what, sizeof what, "layer %s pass %d: bottom %d diff", p->type, pass, i);
            compare(what, tensor_cdiff(bot[1][i]), tensor_cdiff(bot[0][i]), bot[0][i]->count, tol, NULL);
        }
        for (int b = 0; b < l[0]->n_blobs; b++) {
            char what[120];
            snprintf(what, sizeof what, "layer %s pass %d: param %d diff", p->type, pass, b);
            compare(what, tensor_cdiff(l[1]->blobs[b]), tensor_cdiff(l[0]->blobs[b]), l[0]->blobs[b]->count, tol,
                    NULL);
        }
    }
out:
    for (int k = 0; k < 2; k++) {
        layer_free(l[k]);
        for (int i = 0; i < 2; i++) {
            tensor_free(bot[k][i]);
            tensor_free(top[k][i]);
        }
    }
    proto_free(&p->base);
}

#define GW "weight_filler { type: 'uniform' min: -1 max: 1 } bias_filler { type: 'uniform' min: -1 max: 1 }"

static void test_layers(void)
{
    struct rng r;
    rng_seed(&r, 7);
    /* Limits on a GPU, inputs and weights in [-1, 1]: a sum of K products
     * (the bias counting as one more) differs by at most 2 (K + 1) 2^-24
     * (K + 1); K is the largest of the forward's, the two gradients' and
     * the bias gradient's term counts (worked out per case); col2im's
     * too. AVE pooling through cuDNN: (kh kw + 2) 2^-24.
     * LRN: powf's 4 ulp through values below 10. MAX, crop and im2col
     * select or copy: exact. */
#define KTOL(K) (2.0 * ((K) + 2) * ((K) + 1) * U)
    const struct layer_case cases[] = {
        { "name: 'c' type: 'Convolution' convolution_param { num_output: 4 kernel_size: 3 stride: 2 pad: 1 " GW " }",
          1, 1, 4, { 2, 3, 7, 6 }, false, KTOL(36) },
        { "name: 'c' type: 'Convolution' convolution_param { num_output: 6 group: 2 kernel_h: 3 kernel_w: 2 "
          "dilation: 2 pad: 1 " GW " }",
          1, 1, 4, { 2, 4, 7, 6 }, false, KTOL(60) },
        { "name: 'c' type: 'Convolution' convolution_param { num_output: 3 kernel_size: 1 bias_term: false " GW " }",
          2, 2, 4, { 2, 5, 4, 3 }, false, KTOL(2 * 12) },
        { "name: 'c' type: 'Convolution' convolution_param { num_output: 2 kernel_size: 3 pad: 1 stride: 1 "
          "stride: 2 stride: 1 " GW " }",
          1, 1, 5, { 1, 2, 3, 4, 4 }, false, KTOL(55) },
        { "name: 'd' type: 'Deconvolution' convolution_param { num_output: 3 kernel_size: 4 stride: 2 pad: 1 " GW
          " }",
          1, 1, 4, { 2, 4, 3, 3 }, false, KTOL(2 * 36) },
        { "name: 'd' type: 'Deconvolution' convolution_param { num_output: 4 group: 2 kernel_size: 3 " GW " }",
          1, 1, 4, { 2, 4, 3, 5 }, false, KTOL(70) },
        { "name: 'p' type: 'Pooling' pooling_param { pool: MAX kernel_size: 3 stride: 2 }", 1, 2, 4,
          { 2, 3, 7, 8 }, false, 0 },
        { "name: 'p' type: 'Pooling' pooling_param { pool: MAX kernel_size: 2 stride: 2 pad: 1 }", 1, 1, 4,
          { 2, 3, 7, 8 }, false, 0 },
        { "name: 'p' type: 'Pooling' pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }", 1, 1, 4,
          { 2, 3, 7, 8 }, false, 11 * U },
        { "name: 'p' type: 'Pooling' pooling_param { pool: AVE global_pooling: true }", 1, 1, 4, { 2, 3, 5, 7 },
          false, 37 * U },
        { "name: 'n' type: 'LRN' lrn_param { local_size: 5 alpha: 0.5 beta: 0.75 k: 2 }", 1, 1, 4, { 2, 7, 3, 3 },
          false, 0 },
        { "name: 'n' type: 'LRN' lrn_param { local_size: 3 alpha: 0.8 beta: 0.6 norm_region: WITHIN_CHANNEL }", 1,
          1, 4, { 2, 3, 4, 5 }, false, 160 * U },
        { "name: 's' type: 'SPP' spp_param { pyramid_height: 3 pool: MAX }", 1, 1, 4, { 2, 2, 9, 10 }, false, 0 },
        { "name: 's' type: 'SPP' spp_param { pyramid_height: 2 pool: AVE }", 1, 1, 4, { 2, 2, 9, 10 }, false,
          92 * U },
        { "name: 'c' type: 'Crop' crop_param { axis: 2 offset: 2 offset: 1 }", 2, 1, 4, { 2, 4, 6, 5 }, true, 0 },
        /* backward is the math table's col2im, which on a GPU gathers each
         * pixel's (at most kernel-size) terms in another order than the
         * CPU's scatter */
        { "name: 'i' type: 'Im2col' convolution_param { kernel_size: 3 stride: 2 pad: 1 }", 1, 1, 4,
          { 2, 2, 5, 4 }, false, KTOL(9) },
        { "name: 'i' type: 'Im2col' convolution_param { kernel_size: 2 dilation: 2 force_nd_im2col: true }", 1, 1,
          4, { 1, 3, 5, 6 }, false, KTOL(4) },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        layer_case(&cases[i], &r);
}

static void setup(void)
{
    const char *dev = getenv("CREMA_TEST_DEVICE");
    if (!dev || !*dev)
        dev = "cpu-mirror";
    cpu_be = device_cpu();
    if (device_open(dev, &dev_be)) {
        printf("SKIP: device %s cannot be opened: %s\n", dev, crema_errmsg());
        exit(77);
    }
    if (!dev_be->vision) {
        printf("SKIP: device %s has no vision table\n", dev);
        exit(77);
    }
    on_gpu = dev_be->device != DEVICE_CPU;
    printf("device: %s\n", dev_be->name);
}

int main(int argc, char **argv)
{
    setup();
    static const struct check_case cases[] = {
        CASE(test_pooling), CASE(test_pooling_rows_against_caffe), CASE(test_pool_float_mask_indices),
        CASE(test_lrn_across), CASE(test_lrn_within), CASE(test_bias),
        CASE(test_crop),    CASE(test_conv_plans), CASE(test_layers),
    };
    return check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
}
