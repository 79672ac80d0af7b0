/* The loss family's table (core/ops_loss.h) on $CREMA_TEST_DEVICE (default
 * cpu-mirror; cuda:0 on a GPU machine) against the CPU's, entry by entry, on
 * random inputs with the edge cases (sizes 1 and odd, in-place softmax, ties,
 * negative values, ignored and bad labels, every normalization); then a net of
 * every loss layer on the device: the CPU's numbers, and no copy to the host. */
#include "check.h"
#include "net/device.h"
#include "net/net.h"
#include "proto/proto_io.h"
#include "util/rng.h"

#include <float.h>
#include <math.h>
#include <string.h>

static const struct backend *bes[2]; /* the CPU, the device */
static struct rng r;

/* The mirror runs the CPU's own code, so it must give the same bits: every
 * tolerance is 0 there. A GPU gets the one given. */
static double on_dev(double tol)
{
    return bes[1]->device == DEVICE_CPU ? 0 : tol;
}

/* Tolerances on a GPU, as a fraction of the largest |value| of the result.
 * SAME: the kernel has the CPU's formula and order, with IEEE +, -, *, / and
 * sqrt on both (products the CPU rounds are written __fmul_rn there); one
 * ulp covers the GPU's expf/logf/tanh, which may differ from glibc's by an
 * ulp where a value goes through one. */
#define SAME on_dev(FLT_EPSILON)
/* A loss is a sum of n terms of one sign: the CPU adds them in order (its
 * rounding walks like sqrt(n) ulps of the total, n at worst), the GPU in a
 * tree (log n ulps); each term may be an ulp or two off (libm). 8 + 4 sqrt(n)
 * ulps covers the walk with margin. */
static double sum_tol(size_t n)
{
    return on_dev(FLT_EPSILON * (8 + 4 * sqrt((double)n)));
}

static struct tensor *tnew(size_t n, const float *v)
{
    struct tensor *t = tensor_new();
    int s[1] = { (int)(n ? n : 1) };
    CHECK_OK(tensor_reshape(t, 1, s));
    float *h = tensor_data(t);
    if (v)
        memcpy(h, v, (n ? n : 1) * sizeof(float));
    return t;
}

static const float *in(struct tensor *t, int k)
{
    return tensor_cdata_on(t, bes[k]);
}

static float *out(struct tensor *t, int k)
{
    return tensor_data_on(t, bes[k]);
}

/* One output per backend, both starting from the same host values. */
struct twin {
    struct tensor *t[2];
    size_t n;
};

static struct twin twin_new(size_t n, const float *init)
{
    struct twin w = { { tnew(n, init), tnew(n, init) }, n };
    return w;
}

static void twin_free(struct twin *w)
{
    tensor_free(w->t[0]);
    tensor_free(w->t[1]);
}

/* max |dev - cpu| <= rtol * max |cpu| (+ atol); NaN must meet NaN. */
static void compare(const char *what, const char *ctx, struct twin *w, double rtol, double atol)
{
    CHECK_OK(bes[1]->sync(bes[1]));
    const float *a = tensor_cdata(w->t[1]), *b = tensor_cdata(w->t[0]);
    double m = 0, e = 0;
    size_t at = 0;
    for (size_t i = 0; i < w->n; i++) {
        if (isnan(b[i]) || isnan(a[i])) {
            CHECK_MSG(isnan(b[i]) && isnan(a[i]), "%s (%s): at %zu %s gives %.9g, the CPU %.9g", what, ctx, i,
                      bes[1]->name, (double)a[i], (double)b[i]);
            if (!(isnan(b[i]) && isnan(a[i])))
                return;
            continue;
        }
        m = fmax(m, fabs(b[i]));
        double d = a[i] == b[i] ? 0 : fabs((double)a[i] - b[i]);
        if (d > e) {
            e = d;
            at = i;
        }
    }
    CHECK_MSG(e <= rtol * m + atol, "%s (%s): max |err| %.3g at %zu (%s %.9g, CPU %.9g; max %.3g, tolerance %.3g)",
              what, ctx, e, at, bes[1]->name, (double)a[at], (double)b[at], m, rtol * m + atol);
}

/* The device's second run on the same inputs must give the same bits (no
 * atomics, reductions in a fixed order): again is that run's output. */
static void same_bits(const char *what, const char *ctx, struct twin *w, struct tensor *again)
{
    CHECK_OK(bes[1]->sync(bes[1]));
    const float *a = tensor_cdata(w->t[1]), *b = tensor_cdata(again);
    CHECK_MSG(memcmp(a, b, w->n * sizeof(float)) == 0, "%s (%s): two runs on %s differ", what, ctx, bes[1]->name);
}

static void fill(float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = rng_uniform(&r, lo, hi);
}

/* Labels in [0, classes); with ignore, about one in five is the ignore label;
 * with bad, a few are not labels (out of range, too big for an int, NaN, a
 * negative that is not the ignore label). */
static void labels(float *l, size_t n, int classes, bool has_ignore, int ignore, bool bad)
{
    for (size_t i = 0; i < n; i++) {
        l[i] = (float)rng_below(&r, (uint32_t)classes);
        if (has_ignore && rng_below(&r, 5) == 0)
            l[i] = (float)ignore;
    }
    if (bad && n > 0) {
        static const float bads[4] = { 0, 1e10f, NAN, -3 };
        for (size_t i = 0; i < 4 && i < n; i++) {
            size_t at = (i * 7 + 1) % n;
            l[at] = i == 0 ? (float)classes : bads[i];
            if (has_ignore && l[at] == (float)ignore)
                l[at] = (float)classes + 1;
        }
    }
}

static const char *norm_name(enum loss_norm n)
{
    static const char *names[] = { "FULL", "VALID", "BATCH_SIZE", "NONE" };
    return names[n];
}

/* ---- softmax ---- */

static void test_softmax(void)
{
    static const int shapes[][3] = { { 1, 1, 1 }, { 1, 2, 1 }, { 3, 7, 1 }, { 2, 5, 3 }, { 1, 3, 17 },
                                     { 5, 10, 13 }, { 4, 1000, 1 }, { 2, 33, 65 } };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int big = 0; big < 2; big++)
            for (int in_place = 0; in_place < 2; in_place++) {
                int outer = shapes[s][0], ch = shapes[s][1], inner = shapes[s][2];
                size_t n = (size_t)outer * ch * inner;
                float *x = malloc(n * sizeof *x), *dy = malloc(n * sizeof *dy);
                /* big: exp would overflow without the max subtracted */
                fill(x, n, big ? -90.f : -8.f, big ? 90.f : 8.f);
                fill(dy, n, -1, 1);
                /* ties for the max at the first position */
                if (ch > 2) {
                    x[(size_t)inner] = 100.f;
                    x[2 * (size_t)inner] = 100.f;
                }
                char ctx[96];
                snprintf(ctx, sizeof ctx, "%d x %d x %d%s%s", outer, ch, inner, big ? ", large" : "",
                         in_place ? ", in place" : "");
                struct tensor *xt = tnew(n, x);
                struct twin y = twin_new(n, x);
                for (int k = 0; k < 2; k++) {
                    float *yp = out(y.t[k], k);
                    bes[k]->loss->softmax_forward(bes[k], in_place ? yp : in(xt, k), yp, outer, ch, inner);
                }
                /* Probabilities in [0, 1] whose sum of up to 1000 terms the
                 * GPU (cuDNN) takes in its own order: 1e-5 of the largest. */
                compare("softmax_forward", ctx, &y, on_dev(1e-5), 0);
                if (!in_place) {
                    struct tensor *y2 = tnew(n, NULL);
                    bes[1]->loss->softmax_forward(bes[1], in(xt, 1), out(y2, 1), outer, ch, inner);
                    same_bits("softmax_forward", ctx, &y, y2);
                    tensor_free(y2);
                }
                /* backward from the CPU's y, so only the entry differs */
                struct tensor *yt = tnew(n, tensor_cdata(y.t[0]));
                struct tensor *dyt = tnew(n, dy);
                struct twin dx = twin_new(n, dy);
                for (int k = 0; k < 2; k++) {
                    float *dxp = out(dx.t[k], k);
                    bes[k]->loss->softmax_backward(bes[k], in(yt, k), in_place ? dxp : in(dyt, k), dxp, outer, ch,
                                                   inner);
                }
                /* <dy, y> summed in another order: its rounding (an ulp of
                 * max |dy|) times y; 1e-5 of the largest |dx| plus 1e-7. */
                compare("softmax_backward", ctx, &dx, on_dev(1e-5), on_dev(1e-7));
                tensor_free(xt);
                tensor_free(yt);
                tensor_free(dyt);
                twin_free(&y);
                twin_free(&dx);
                free(x);
                free(dy);
            }
}

/* ---- SoftmaxWithLoss and InfogainLoss ---- */

/* Probabilities: the CPU's softmax of random logits (the losses' input). */
static struct tensor *probabilities(int outer, int ch, int inner)
{
    size_t n = (size_t)outer * ch * inner;
    struct tensor *t = tnew(n, NULL);
    float *p = tensor_data(t);
    fill(p, n, -6, 6);
    bes[0]->loss->softmax_forward(bes[0], p, p, outer, ch, inner);
    return t;
}

static const int loss_shapes[][3] = { { 1, 1, 1 }, { 6, 5, 1 }, { 4, 5, 6 }, { 3, 17, 7 }, { 2, 1000, 1 } };
static const float loss_weights[] = { 1.f, 2.5f, -0.5f };

/* The label cases: 0 plain, 1 some ignored, 2 all ignored, 3 bad labels. */
static void label_case(int c, float *l, size_t n, int ch, struct loss_labels *g)
{
    g->has_ignore = c != 0;
    g->ignore = c == 3 ? -1 : 1;
    labels(l, n, ch, g->has_ignore, g->ignore, c == 3);
    if (c == 2)
        for (size_t i = 0; i < n; i++)
            l[i] = (float)g->ignore;
}

static void test_softmax_loss(void)
{
    int iter = 0;
    for (size_t s = 0; s < sizeof loss_shapes / sizeof loss_shapes[0]; s++)
        for (int norm = 0; norm < 4; norm++)
            for (int c = 0; c < 4; c++, iter++) {
                struct loss_labels g = { loss_shapes[s][0], loss_shapes[s][1], loss_shapes[s][2], false, 0,
                                         (enum loss_norm)norm };
                size_t positions = (size_t)g.outer * g.inner, n = positions * g.channels;
                float *l = malloc(positions * sizeof *l);
                label_case(c, l, positions, g.channels, &g);
                float lw = loss_weights[iter % 3];
                char ctx[128];
                snprintf(ctx, sizeof ctx, "%d x %d x %d, %s, labels case %d, loss weight %g", g.outer, g.channels,
                         g.inner, norm_name(g.norm), c, (double)lw);
                struct tensor *prob = probabilities(g.outer, g.channels, g.inner), *lab = tnew(positions, l),
                              *w = tnew(1, &lw);
                struct twin loss = twin_new(1, NULL), nz = twin_new(1, NULL), dx = twin_new(n, NULL);
                for (int k = 0; k < 2; k++) {
                    bes[k]->loss->softmax_loss_forward(bes[k], in(prob, k), in(lab, k), &g, out(loss.t[k], k),
                                                       out(nz.t[k], k));
                    bes[k]->loss->softmax_loss_backward(bes[k], in(prob, k), in(lab, k), &g, in(w, k),
                                                        tensor_cdata_on(nz.t[k], bes[k]), out(dx.t[k], k));
                }
                compare("softmax_loss_forward loss", ctx, &loss, sum_tol(positions), 0);
                struct tensor *again = tnew(1, NULL), *nz2 = tnew(1, NULL);
                bes[1]->loss->softmax_loss_forward(bes[1], in(prob, 1), in(lab, 1), &g, out(again, 1), out(nz2, 1));
                same_bits("softmax_loss_forward loss", ctx, &loss, again);
                tensor_free(again);
                tensor_free(nz2);
                compare("softmax_loss_forward normalizer", ctx, &nz, 0, 0); /* a count */
                compare("softmax_loss_backward", ctx, &dx, SAME, 0);
                if (c == 3)
                    CHECK_MSG(isnan(tensor_cdata(loss.t[1])[0]), "bad labels: loss %g on %s, not NaN (%s)",
                              (double)tensor_cdata(loss.t[1])[0], bes[1]->name, ctx);
                /* every label ignored: nothing to divide, and VALID's
                 * normalizer held at 1 */
                if (c == 2)
                    CHECK_MSG(tensor_cdata(loss.t[1])[0] == 0.f &&
                                  (g.norm != LOSS_NORM_VALID || tensor_cdata(nz.t[1])[0] == 1.f),
                              "every label ignored: loss %g, normalizer %g on %s (%s)",
                              (double)tensor_cdata(loss.t[1])[0], (double)tensor_cdata(nz.t[1])[0], bes[1]->name,
                              ctx);
                tensor_free(prob);
                tensor_free(lab);
                tensor_free(w);
                twin_free(&loss);
                twin_free(&nz);
                twin_free(&dx);
                free(l);
            }
}

static void test_infogain(void)
{
    static const int shapes[][3] = { { 1, 1, 1 }, { 5, 4, 1 }, { 3, 6, 5 }, { 2, 37, 3 } };
    int iter = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int norm = 0; norm < 4; norm++)
            for (int c = 0; c < 4; c++, iter++) {
                struct loss_labels g = { shapes[s][0], shapes[s][1], shapes[s][2], false, 0, (enum loss_norm)norm };
                size_t positions = (size_t)g.outer * g.inner, n = positions * g.channels;
                size_t hn = (size_t)g.channels * g.channels;
                float *l = malloc(positions * sizeof *l), *h = malloc(hn * sizeof *h);
                label_case(c, l, positions, g.channels, &g);
                /* H >= 0, as infogain matrices are: the loss is a sum of
                 * terms of one sign (sum_tol's premise). */
                fill(h, hn, 0, 1);
                float lw = loss_weights[iter % 3];
                char ctx[128];
                snprintf(ctx, sizeof ctx, "%d x %d x %d, %s, labels case %d", g.outer, g.channels, g.inner,
                         norm_name(g.norm), c);
                struct tensor *prob = probabilities(g.outer, g.channels, g.inner), *lab = tnew(positions, l),
                              *ht = tnew(hn, h), *w = tnew(1, &lw);
                struct twin loss = twin_new(1, NULL), nz = twin_new(1, NULL), rows = twin_new((size_t)g.channels, NULL),
                            dx = twin_new(n, NULL);
                for (int k = 0; k < 2; k++) {
                    const struct loss_ops *o = bes[k]->loss;
                    o->infogain_loss_forward(bes[k], in(prob, k), in(lab, k), in(ht, k), &g, out(loss.t[k], k),
                                             out(nz.t[k], k));
                    o->infogain_sum_rows(bes[k], in(ht, k), g.channels, out(rows.t[k], k));
                    o->infogain_loss_backward(bes[k], in(prob, k), in(lab, k), in(ht, k),
                                              tensor_cdata_on(rows.t[k], bes[k]), &g, in(w, k),
                                              tensor_cdata_on(nz.t[k], bes[k]), out(dx.t[k], k));
                }
                compare("infogain_loss_forward loss", ctx, &loss, sum_tol(n), 0);
                compare("infogain_loss_forward normalizer", ctx, &nz, 0, 0);
                compare("infogain_sum_rows", ctx, &rows, SAME, 0);
                compare("infogain_loss_backward", ctx, &dx, SAME, 0);
                tensor_free(prob);
                tensor_free(lab);
                tensor_free(ht);
                tensor_free(w);
                twin_free(&loss);
                twin_free(&nz);
                twin_free(&rows);
                twin_free(&dx);
                free(l);
                free(h);
            }
}

/* ---- SigmoidCrossEntropyLoss ---- */

static void test_sigmoid_ce(void)
{
    static const int shapes[][2] = { { 1, 1 }, { 4, 6 }, { 3, 1001 }, { 64, 300 } };
    int iter = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int norm = 0; norm < 4; norm++)
            for (int ign = 0; ign < 2; ign++, iter++) {
                struct loss_labels g = { shapes[s][0], 1, shapes[s][1], ign != 0, -1, (enum loss_norm)norm };
                size_t n = (size_t)g.outer * g.inner;
                float *x = malloc(n * sizeof *x), *t = malloc(n * sizeof *t);
                fill(x, n, -12, 12);
                fill(t, n, 0, 1);
                static const float edges[] = { 0.f, -0.f, 30.f, -30.f, 100.f, -100.f };
                for (size_t i = 0; i < 6 && i < n; i++)
                    x[(i * 5 + 2) % n] = edges[i];
                if (ign)
                    for (size_t i = 0; i < n; i += 3)
                        t[i] = -1.f;
                float lw = loss_weights[iter % 3];
                char ctx[128];
                snprintf(ctx, sizeof ctx, "%d x %d, %s%s", g.outer, g.inner, norm_name(g.norm),
                         ign ? ", ignore -1" : "");
                struct tensor *xt = tnew(n, x), *tt = tnew(n, t), *w = tnew(1, &lw);
                struct twin sig = twin_new(n, NULL), loss = twin_new(1, NULL), nz = twin_new(1, NULL),
                            dx = twin_new(n, NULL);
                for (int k = 0; k < 2; k++) {
                    const struct loss_ops *o = bes[k]->loss;
                    o->sigmoid_ce_loss_forward(bes[k], in(xt, k), in(tt, k), &g, out(sig.t[k], k), out(loss.t[k], k),
                                               out(nz.t[k], k));
                    o->sigmoid_ce_loss_backward(bes[k], tensor_cdata_on(sig.t[k], bes[k]), in(tt, k), &g, in(w, k),
                                                tensor_cdata_on(nz.t[k], bes[k]), out(dx.t[k], k));
                }
                compare("sigmoid_ce_loss_forward sigmoid", ctx, &sig, SAME, 0);
                compare("sigmoid_ce_loss_forward loss", ctx, &loss, sum_tol(n), 0);
                compare("sigmoid_ce_loss_forward normalizer", ctx, &nz, 0, 0);
                /* sigmoid - t: the sigmoid's ulp, times the weight, is an
                 * absolute error of the difference. */
                compare("sigmoid_ce_loss_backward", ctx, &dx, SAME, on_dev(FLT_EPSILON * fabsf(lw)));
                tensor_free(xt);
                tensor_free(tt);
                tensor_free(w);
                twin_free(&sig);
                twin_free(&loss);
                twin_free(&nz);
                twin_free(&dx);
                free(x);
                free(t);
            }
}

/* ---- EuclideanLoss, HingeLoss, ContrastiveLoss, MultinomialLogisticLoss ---- */

static void test_euclidean(void)
{
    static const size_t sizes[][2] = { { 1, 1 }, { 7, 7 }, { 1000, 10 }, { 70001, 7 } };
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s][0];
        int num = (int)sizes[s][1];
        float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), lw = loss_weights[s % 3];
        fill(a, n, -2, 2);
        fill(b, n, -2, 2);
        char ctx[64];
        snprintf(ctx, sizeof ctx, "%zu values, num %d", n, num);
        struct tensor *at = tnew(n, a), *bt = tnew(n, b), *w = tnew(1, &lw);
        struct twin diff = twin_new(n, NULL), loss = twin_new(1, NULL), da = twin_new(n, NULL), db = twin_new(n, NULL);
        for (int k = 0; k < 2; k++) {
            const struct loss_ops *o = bes[k]->loss;
            o->euclidean_loss_forward(bes[k], n, num, in(at, k), in(bt, k), out(diff.t[k], k), out(loss.t[k], k));
            const float *d = tensor_cdata_on(diff.t[k], bes[k]);
            o->euclidean_loss_backward(bes[k], n, num, 1.f, d, in(w, k), out(da.t[k], k));
            o->euclidean_loss_backward(bes[k], n, num, -1.f, d, in(w, k), out(db.t[k], k));
        }
        compare("euclidean_loss_forward diff", ctx, &diff, 0, 0); /* a - b: exact on both */
        compare("euclidean_loss_forward loss", ctx, &loss, sum_tol(n), 0);
        struct tensor *again = tnew(1, NULL), *diff2 = tnew(n, NULL);
        bes[1]->loss->euclidean_loss_forward(bes[1], n, num, in(at, 1), in(bt, 1), out(diff2, 1), out(again, 1));
        same_bits("euclidean_loss_forward loss", ctx, &loss, again);
        tensor_free(again);
        tensor_free(diff2);
        compare("euclidean_loss_backward a", ctx, &da, SAME, 0);
        compare("euclidean_loss_backward b", ctx, &db, SAME, 0);
        tensor_free(at);
        tensor_free(bt);
        tensor_free(w);
        twin_free(&diff);
        twin_free(&loss);
        twin_free(&da);
        twin_free(&db);
        free(a);
        free(b);
    }
}

static void test_hinge(void)
{
    static const int shapes[][2] = { { 1, 1 }, { 5, 4 }, { 7, 33 }, { 64, 1000 } };
    int iter = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int l2 = 0; l2 < 2; l2++)
            for (int bad = 0; bad < 2; bad++, iter++) {
                int num = shapes[s][0], dim = shapes[s][1];
                size_t n = (size_t)num * dim;
                float *x = malloc(n * sizeof *x), *l = malloc((size_t)num * sizeof *l), lw = loss_weights[iter % 3];
                fill(x, n, -3, 3);
                labels(l, (size_t)num, dim, false, 0, bad != 0);
                char ctx[96];
                snprintf(ctx, sizeof ctx, "%d x %d, %s%s", num, dim, l2 ? "L2" : "L1", bad ? ", bad labels" : "");
                struct tensor *xt = tnew(n, x), *lt = tnew((size_t)num, l), *w = tnew(1, &lw);
                struct twin diff = twin_new(n, NULL), loss = twin_new(1, NULL), dx = twin_new(n, NULL);
                for (int k = 0; k < 2; k++) {
                    const struct loss_ops *o = bes[k]->loss;
                    o->hinge_loss_forward(bes[k], num, dim, l2, in(xt, k), in(lt, k), out(diff.t[k], k),
                                          out(loss.t[k], k));
                    o->hinge_loss_backward(bes[k], num, dim, l2, tensor_cdata_on(diff.t[k], bes[k]), in(lt, k),
                                           in(w, k), out(dx.t[k], k));
                }
                compare("hinge_loss_forward diff", ctx, &diff, 0, 0); /* max(0, 1 + x): exact */
                compare("hinge_loss_forward loss", ctx, &loss, sum_tol(n), 0);
                compare("hinge_loss_backward", ctx, &dx, SAME, 0);
                tensor_free(xt);
                tensor_free(lt);
                tensor_free(w);
                twin_free(&diff);
                twin_free(&loss);
                twin_free(&dx);
                free(x);
                free(l);
            }
}

static void test_contrastive(void)
{
    static const int shapes[][2] = { { 1, 1 }, { 6, 3 }, { 17, 65 }, { 128, 256 } };
    static const float margins[] = { 1.f, 0.3f, 5.f };
    static const float sims[] = { 0, 1, -1, 0.5f, 2, -0.7f };
    int iter = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int legacy = 0; legacy < 2; legacy++, iter++) {
            int num = shapes[s][0], ch = shapes[s][1];
            size_t n = (size_t)num * ch;
            float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *sim = malloc((size_t)num * sizeof *sim);
            float margin = margins[iter % 3], lw = loss_weights[iter % 3];
            fill(a, n, -0.6f, 0.6f);
            fill(b, n, -0.6f, 0.6f);
            for (int i = 0; i < num; i++)
                sim[i] = sims[rng_below(&r, 6)];
            char ctx[96];
            snprintf(ctx, sizeof ctx, "%d pairs of %d, margin %g%s", num, ch, (double)margin,
                     legacy ? ", legacy" : "");
            struct tensor *at = tnew(n, a), *bt = tnew(n, b), *st = tnew((size_t)num, sim), *w = tnew(1, &lw);
            struct twin diff = twin_new(n, NULL), dsq = twin_new((size_t)num, NULL), loss = twin_new(1, NULL),
                        da = twin_new(n, NULL), db = twin_new(n, NULL);
            for (int k = 0; k < 2; k++) {
                const struct loss_ops *o = bes[k]->loss;
                o->contrastive_loss_forward(bes[k], num, ch, margin, legacy, in(at, k), in(bt, k), in(st, k),
                                            out(diff.t[k], k), out(dsq.t[k], k), out(loss.t[k], k));
                const float *d = tensor_cdata_on(diff.t[k], bes[k]), *q = tensor_cdata_on(dsq.t[k], bes[k]);
                o->contrastive_loss_backward(bes[k], num, ch, margin, legacy, 1.f, d, q, in(st, k), in(w, k),
                                             out(da.t[k], k));
                o->contrastive_loss_backward(bes[k], num, ch, margin, legacy, -1.f, d, q, in(st, k), in(w, k),
                                             out(db.t[k], k));
            }
            compare("contrastive_loss_forward diff", ctx, &diff, 0, 0);
            compare("contrastive_loss_forward dist_sq", ctx, &dsq, SAME, 0);
            compare("contrastive_loss_forward loss", ctx, &loss, sum_tol((size_t)num), 0);
            compare("contrastive_loss_backward a", ctx, &da, SAME, 0);
            compare("contrastive_loss_backward b", ctx, &db, SAME, 0);
            tensor_free(at);
            tensor_free(bt);
            tensor_free(st);
            tensor_free(w);
            twin_free(&diff);
            twin_free(&dsq);
            twin_free(&loss);
            twin_free(&da);
            twin_free(&db);
            free(a);
            free(b);
            free(sim);
        }
}

static void test_multinomial(void)
{
    static const int shapes[][2] = { { 1, 1 }, { 5, 4 }, { 9, 101 }, { 256, 10 } };
    int iter = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int bad = 0; bad < 2; bad++, iter++) {
            int num = shapes[s][0], dim = shapes[s][1];
            size_t n = (size_t)num * dim;
            float *x = malloc(n * sizeof *x), *l = malloc((size_t)num * sizeof *l), lw = loss_weights[iter % 3];
            fill(x, n, 0, 1);
            for (size_t i = 0; i < n; i += 4)
                x[i] = 0.f; /* below kLOG_THRESHOLD */
            labels(l, (size_t)num, dim, false, 0, bad != 0);
            char ctx[64];
            snprintf(ctx, sizeof ctx, "%d x %d%s", num, dim, bad ? ", bad labels" : "");
            struct tensor *xt = tnew(n, x), *lt = tnew((size_t)num, l), *w = tnew(1, &lw);
            struct twin loss = twin_new(1, NULL), dx = twin_new(n, NULL);
            for (int k = 0; k < 2; k++) {
                bes[k]->loss->multinomial_loss_forward(bes[k], num, dim, in(xt, k), in(lt, k), out(loss.t[k], k));
                bes[k]->loss->multinomial_loss_backward(bes[k], num, dim, in(xt, k), in(lt, k), in(w, k),
                                                        out(dx.t[k], k));
            }
            compare("multinomial_loss_forward", ctx, &loss, sum_tol((size_t)num), 0);
            compare("multinomial_loss_backward", ctx, &dx, SAME, 0);
            tensor_free(xt);
            tensor_free(lt);
            tensor_free(w);
            twin_free(&loss);
            twin_free(&dx);
            free(x);
            free(l);
        }
}

/* ---- Accuracy ---- */

/* Counts and their ratios: the same integers on every backend, so exact. */
static void test_accuracy(void)
{
    static const int shapes[][3] = { { 1, 1, 1 }, { 8, 3, 1 }, { 4, 5, 6 }, { 2, 10, 33 }, { 50, 1000, 1 } };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ties = 0; ties < 2; ties++)
            for (int c = 0; c < 4; c++) {
                struct loss_labels g = { shapes[s][0], shapes[s][1], shapes[s][2], false, 0, LOSS_NORM_VALID };
                size_t positions = (size_t)g.outer * g.inner, n = positions * g.channels;
                float *x = malloc(n * sizeof *x), *l = malloc(positions * sizeof *l);
                fill(x, n, -1, 1);
                if (ties) /* a few distinct scores: many ties, broken by index */
                    for (size_t i = 0; i < n; i++)
                        x[i] = (float)rng_below(&r, 3) - 1.f;
                label_case(c, l, positions, g.channels, &g);
                int ks[3] = { 1, g.channels > 1 ? 2 : 1, g.channels };
                for (int kk = 0; kk < 3; kk++)
                    for (int pc = 0; pc < 2; pc++) {
                        char ctx[128];
                        snprintf(ctx, sizeof ctx, "%d x %d x %d%s, labels case %d, top_k %d%s", g.outer, g.channels,
                                 g.inner, ties ? ", ties" : "", c, ks[kk], pc ? ", per class" : "");
                        struct tensor *xt = tnew(n, x), *lt = tnew(positions, l);
                        struct twin hit = twin_new(positions, NULL), acc = twin_new(1, NULL),
                                    per = twin_new((size_t)g.channels, NULL);
                        for (int k = 0; k < 2; k++)
                            bes[k]->loss->accuracy_forward(bes[k], in(xt, k), in(lt, k), &g, ks[kk], out(hit.t[k], k),
                                                           out(acc.t[k], k), pc ? out(per.t[k], k) : NULL);
                        compare("accuracy_forward hit", ctx, &hit, 0, 0);
                        compare("accuracy_forward accuracy", ctx, &acc, 0, 0);
                        if (pc)
                            compare("accuracy_forward per class", ctx, &per, 0, 0);
                        if (c == 3)
                            CHECK_MSG(isnan(tensor_cdata(acc.t[1])[0]), "bad labels: accuracy %g, not NaN (%s)",
                                      (double)tensor_cdata(acc.t[1])[0], ctx);
                        tensor_free(xt);
                        tensor_free(lt);
                        twin_free(&hit);
                        twin_free(&acc);
                        twin_free(&per);
                    }
                free(x);
                free(l);
            }
}

/* The top-k rule itself, on the CPU: ties go to the larger class index. */
static void test_accuracy_ties(void)
{
    /* 1 item, 4 classes, scores 1 2 2 0; label 1 ranks after class 2 */
    float x[4] = { 1, 2, 2, 0 }, l1 = 1, l2 = 2, hit, acc;
    struct loss_labels g = { 1, 4, 1, false, 0, LOSS_NORM_VALID };
    bes[0]->loss->accuracy_forward(bes[0], x, &l1, &g, 1, &hit, &acc, NULL);
    CHECK(acc == 0.f);
    bes[0]->loss->accuracy_forward(bes[0], x, &l1, &g, 2, &hit, &acc, NULL);
    CHECK(acc == 1.f);
    bes[0]->loss->accuracy_forward(bes[0], x, &l2, &g, 1, &hit, &acc, NULL);
    CHECK(acc == 1.f);
}

/* ---- every layer of the family in a net on the device ---- */

static const char *family_net =
    "name: 'loss_family' force_backward: true state { phase: TRAIN }\n"
    "layer { name: 'in' type: 'Input'\n"
    "  top: 'x1' top: 'lab1' top: 'x3' top: 'lab3' top: 'e1' top: 'e2'\n"
    "  top: 'z' top: 'tz' top: 'hx' top: 'hlab' top: 'ca' top: 'cb' top: 'csim' top: 'ix' top: 'ilab' top: 'H'\n"
    "  input_param {\n"
    "    shape { dim: 4 dim: 5 dim: 2 dim: 3 } shape { dim: 4 dim: 2 dim: 3 }\n"
    "    shape { dim: 5 dim: 9 } shape { dim: 5 }\n"
    "    shape { dim: 3 dim: 4 dim: 5 } shape { dim: 3 dim: 4 dim: 5 }\n"
    "    shape { dim: 4 dim: 6 } shape { dim: 4 dim: 6 }\n"
    "    shape { dim: 5 dim: 4 } shape { dim: 5 }\n"
    "    shape { dim: 6 dim: 3 } shape { dim: 6 dim: 3 } shape { dim: 6 }\n"
    "    shape { dim: 5 dim: 4 } shape { dim: 5 } shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }\n"
    "layer { name: 'sl' type: 'SoftmaxWithLoss' bottom: 'x1' bottom: 'lab1' top: 'l_sl' top: 'prob'\n"
    "  loss_weight: 1 loss_weight: 0 loss_param { ignore_label: 0 normalization: VALID } }\n"
    "layer { name: 'sm' type: 'Softmax' bottom: 'x3' top: 's3' }\n"
    "layer { name: 'ml' type: 'MultinomialLogisticLoss' bottom: 's3' bottom: 'lab3' top: 'l_ml' loss_weight: 0.5 }\n"
    "layer { name: 'el' type: 'EuclideanLoss' bottom: 'e1' bottom: 'e2' top: 'l_el' }\n"
    "layer { name: 'sce' type: 'SigmoidCrossEntropyLoss' bottom: 'z' bottom: 'tz' top: 'l_sce'\n"
    "  loss_param { ignore_label: -1 normalization: VALID } }\n"
    "layer { name: 'hl' type: 'HingeLoss' bottom: 'hx' bottom: 'hlab' top: 'l_hl' hinge_loss_param { norm: L2 } }\n"
    "layer { name: 'cl' type: 'ContrastiveLoss' bottom: 'ca' bottom: 'cb' bottom: 'csim' top: 'l_cl'\n"
    "  contrastive_loss_param { margin: 0.8 } }\n"
    "layer { name: 'il' type: 'InfogainLoss' bottom: 'ix' bottom: 'ilab' bottom: 'H' top: 'l_il' loss_weight: 2 }\n";

/* Accuracy has no backward (Caffe's aborts when force_backward asks it for
 * one): a forward-only net of its own. */
static const char *accuracy_net =
    "name: 'accuracy' state { phase: TEST }\n"
    "layer { name: 'in' type: 'Input' top: 'x2' top: 'lab2' top: 'x4' top: 'lab4'\n"
    "  input_param { shape { dim: 6 dim: 7 } shape { dim: 6 }\n"
    "                shape { dim: 2 dim: 3 dim: 4 dim: 5 } shape { dim: 2 dim: 1 dim: 4 dim: 5 } } }\n"
    "layer { name: 'acc' type: 'Accuracy' bottom: 'x2' bottom: 'lab2' top: 'acc' top: 'acc_class'\n"
    "  accuracy_param { top_k: 2 } }\n"
    "layer { name: 'acc4' type: 'Accuracy' bottom: 'x4' bottom: 'lab4' top: 'acc4'\n"
    "  accuracy_param { ignore_label: 1 } }\n";

/* Every input: labels drawn in range for their layer, the rest random. */
static void family_inputs(struct net *net, uint64_t seed)
{
    struct rng q;
    rng_seed(&q, seed);
    for (int i = 0; i < net->n_inputs; i++) {
        int id = net->input_ids[i];
        const char *name = net->blob_names[id];
        struct tensor *t = net->blobs[id];
        float *d = tensor_data(t);
        int classes = !strcmp(name, "lab1") ? 5 : !strcmp(name, "lab2") ? 7 : !strcmp(name, "lab3") ? 9
                      : !strcmp(name, "hlab") || !strcmp(name, "ilab") ? 4 : !strcmp(name, "lab4") ? 3 : 0;
        for (size_t k = 0; k < t->count; k++) {
            if (classes)
                d[k] = (float)rng_below(&q, (uint32_t)classes);
            else if (!strcmp(name, "tz"))
                d[k] = rng_below(&q, 4) == 0 ? -1.f : rng_uniform(&q, 0, 1);
            else if (!strcmp(name, "csim"))
                d[k] = (float)rng_below(&q, 2);
            else if (!strcmp(name, "H"))
                d[k] = rng_uniform(&q, 0, 1);
            else if (!strcmp(name, "x4")) /* ties */
                d[k] = (float)rng_below(&q, 3);
            else
                d[k] = rng_uniform(&q, -2, 2);
        }
    }
}

static struct net *family_build(const struct backend *be, const char *text)
{
    Caffe__NetParameter *np = NULL;
    struct net *net = NULL;
    CHECK_OK(proto_parse_text(&caffe__net_parameter__descriptor, text, strlen(text), "family net",
                              (ProtobufCMessage **)&np));
    if (!np)
        return NULL;
    CHECK_OK(net_build(np, NULL, 1, &net));
    proto_free(&np->base);
    if (net)
        CHECK_OK(net_set_backend(net, be, NULL));
    return net;
}

static struct tensor_transfers transfers_since(const struct tensor_transfers *t0)
{
    struct tensor_transfers t;
    tensor_transfers(&t);
    t.to_device -= t0->to_device;
    t.to_host -= t0->to_host;
    return t;
}

/* Two forward+backward passes on each backend: after the first, the device
 * net copies only the inputs the host rewrote up, and nothing comes back
 * (the loss the net sums is a dot product's scalar, not a copy); every
 * blob and gradient is the CPU's. */
static void family_net_run(const char *text, bool backward)
{
    struct net *nets[2] = { family_build(bes[0], text), family_build(bes[1], text) };
    if (!nets[0] || !nets[1]) {
        net_free(nets[0]);
        net_free(nets[1]);
        return;
    }
    for (int i = 0; i < nets[1]->n_layers; i++) {
        struct layer *l = nets[1]->layers[i].layer;
        CHECK_MSG(l->be == bes[1] || !strcmp(l->kind->type, "Input"), "layer %s (%s) does not run on %s", l->name,
                  l->kind->type, bes[1]->name);
    }
    float loss[2] = { 0, 0 };
    struct tensor_transfers t0, t;
    for (int k = 0; k < 2; k++)
        for (int pass = 0; pass < 2; pass++) {
            family_inputs(nets[k], 11 + (uint64_t)pass);
            if (pass == 1)
                tensor_transfers(&t0);
            CHECK_OK(net_forward(nets[k], &loss[k]));
            if (backward)
                CHECK_OK(net_backward(nets[k]));
            if (pass == 1 && k == 1) {
                t = transfers_since(&t0);
                CHECK_EQ_INT(t.to_host, 0);
                CHECK_EQ_INT(t.to_device, nets[1]->n_inputs);
            }
        }
    CHECK_OK(bes[1]->sync(bes[1]));
    /* the net's total: sums of a few hundred terms each */
    CHECK_MSG(fabs(loss[1] - loss[0]) <= sum_tol(1000) * fabs(loss[0]), "loss %.9g on %s, %.9g on the CPU",
              (double)loss[1], bes[1]->name, (double)loss[0]);
    for (int b = 0; b < nets[0]->n_blobs; b++) {
        const char *name = nets[0]->blob_names[b];
        size_t n = nets[0]->blobs[b]->count;
        struct twin w = { { nets[0]->blobs[b], nets[1]->blobs[b] }, n };
        /* losses are sums; the rest the formulas above, and the softmax
         * through cuDNN (1e-5 as in test_softmax) */
        double tol = !strncmp(name, "l_", 2) ? sum_tol(1000) : on_dev(1e-5);
        compare("blob data", name, &w, !strncmp(name, "acc", 3) ? 0 : tol, 0);
        struct tensor *d[2] = { tensor_new(), tensor_new() };
        for (int k = 0; k < 2; k++) {
            CHECK_OK(tensor_reshape_like(d[k], nets[k]->blobs[b]));
            memcpy(tensor_data(d[k]), tensor_cdiff(nets[k]->blobs[b]), n * sizeof(float));
        }
        struct twin dw = { { d[0], d[1] }, n };
        compare("blob diff", name, &dw, on_dev(1e-5), on_dev(1e-7));
        tensor_free(d[0]);
        tensor_free(d[1]);
    }
    net_free(nets[0]);
    net_free(nets[1]);
}

static void test_family_net(void)
{
    family_net_run(family_net, true);
    family_net_run(accuracy_net, false);
}

/* Bad labels on the device: named from the host copy when the labels went
 * up from the host (as here, from Input); a NaN loss, and no crash, when
 * only the device copy holds them. */
static void test_bad_labels_on_device(void)
{
    struct net *net = family_build(bes[1], family_net);
    if (!net)
        return;
    family_inputs(net, 5);
    int id = net_blob_index(net, "lab1");
    CHECK(id >= 0);
    if (id < 0) {
        net_free(net);
        return;
    }
    tensor_data(net->blobs[id])[3] = 5.f;
    float loss = 0;
    CHECK(net_forward(net, &loss) != CREMA_OK);
    CHECK_MSG(strstr(crema_errmsg(), "label 3 is 5, outside [0, 5)") != NULL, "message: %s", crema_errmsg());
    /* the labels written on the device only (a backend with memory of its
     * own: on the CPU backend the host copy is the device copy) */
    if (bes[1]->host_memory) {
        net_free(net);
        return;
    }
    family_inputs(net, 5);
    float *d = tensor_data_on(net->blobs[id], bes[1]);
    bes[1]->math->set(bes[1], 1, 7.f, d + 2);
    CHECK_OK(net_forward(net, &loss));
    CHECK_OK(bes[1]->sync(bes[1]));
    CHECK_MSG(isnan(loss), "a bad label only on %s: loss %g, not NaN", bes[1]->name, (double)loss);
    CHECK_OK(net_backward(net));
    net_free(net);
}

int main(int argc, char **argv)
{
    const char *dev = getenv("CREMA_TEST_DEVICE");
    if (!dev || !*dev)
        dev = "cpu-mirror";
    bes[0] = device_cpu();
    if (device_open(dev, &bes[1])) {
        printf("SKIP: device %s: %s\n", dev, crema_errmsg());
        return 77;
    }
    if (!bes[1]->loss) {
        printf("SKIP: %s has no loss table\n", bes[1]->name);
        return 77;
    }
    printf("device: %s\n", bes[1]->name);
    fflush(stdout);
    rng_seed(&r, 20261204);
    static const struct check_case cases[] = {
        CASE(test_softmax),     CASE(test_softmax_loss), CASE(test_infogain),     CASE(test_sigmoid_ce),
        CASE(test_euclidean),   CASE(test_hinge),        CASE(test_contrastive),  CASE(test_multinomial),
        CASE(test_accuracy),    CASE(test_accuracy_ties), CASE(test_family_net), CASE(test_bad_labels_on_device),
    };
    return check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
}
