/* The neuron family's table (be->neuron) on $CREMA_TEST_DEVICE against the
 * CPU's: every entry on random inputs with the edge cases (sizes 1 and odd,
 * in place, zeros, the kinks and clip bounds hit exactly, large and negative
 * values), Dropout's generator against Philox's published answers, and
 * every activation layer forward and backward on both backends, copying
 * nothing in the steady state. */
#include "ops_compare.h"

#include <stdint.h>

static const size_t sizes[] = { 1, 2, 7, 4099 };

enum { X, Y, DY, DX, AUX, NB };

typedef void (*run_fn)(const struct backend *be, float *const *p, size_t n);
typedef void (*prep_fn)(float *const *h, size_t n);

/* One entry under one set of numbers: `out` is written (and `out2`, or -1);
 * in place, `out` is the input `alias` (y over x, dx over dy). */
struct entry {
    const char *name;
    run_fn run;
    int out, out2, alias;
    float lo, hi;        /* x's range */
    float special[3];    /* values x must also take (kinks, bounds) */
    int n_special;
    prep_fn prep;        /* inputs made from others (y from x, a 0/1 mask) */
    struct ops_tol tol;  /* on a GPU */
};

/* The CPU's table on host arrays, for making consistent inputs. */
#define CPU (ops_be[0])
#define CPU_OPS (ops_be[0]->neuron)

#define RUN(fn, ...)                                                          \
    static void fn(const struct backend *be, float *const *p, size_t n)      \
    {                                                                         \
        const struct neuron_ops *o = be->neuron;                              \
        __VA_ARGS__;                                                          \
    }

/* ReLU: slope 0 goes to cuDNN on a GPU, 0.1 to crema's kernel. */
RUN(relu_f0, o->relu_forward(be, n, 0.f, p[X], p[Y]))
RUN(relu_b0, o->relu_backward(be, n, 0.f, p[X], p[Y], p[DY], p[DX]))
RUN(relu_f1, o->relu_forward(be, n, 0.1f, p[X], p[Y]))
RUN(relu_b1, o->relu_backward(be, n, 0.1f, p[X], p[Y], p[DY], p[DX]))
static void prep_relu0(float *const *h, size_t n) { CPU_OPS->relu_forward(CPU, n, 0.f, h[X], h[Y]); }
static void prep_relu1(float *const *h, size_t n) { CPU_OPS->relu_forward(CPU, n, 0.1f, h[X], h[Y]); }

RUN(elu_f, o->elu_forward(be, n, 0.7f, p[X], p[Y]))
RUN(elu_b, o->elu_backward(be, n, 0.7f, p[X], p[Y], p[DY], p[DX]))
static void prep_elu(float *const *h, size_t n) { CPU_OPS->elu_forward(CPU, n, 0.7f, h[X], h[Y]); }

RUN(sigmoid_f, o->sigmoid_forward(be, n, p[X], p[Y]))
RUN(sigmoid_b, o->sigmoid_backward(be, n, p[Y], p[DY], p[DX]))
static void prep_sigmoid(float *const *h, size_t n) { CPU_OPS->sigmoid_forward(CPU, n, h[X], h[Y]); }
RUN(tanh_f, o->tanh_forward(be, n, p[X], p[Y]))
RUN(tanh_b, o->tanh_backward(be, n, p[Y], p[DY], p[DX]))
static void prep_tanh(float *const *h, size_t n) { CPU_OPS->tanh_forward(CPU, n, h[X], h[Y]); }

RUN(absval_f, o->absval_forward(be, n, p[X], p[Y]))
RUN(absval_b, o->absval_backward(be, n, p[X], p[DY], p[DX]))

/* Power under each of its branches: (power, scale, shift). */
#define POWER(tag, pw, sc, sh)                                                                    \
    RUN(power_f_##tag, o->power_forward(be, n, pw, sc, sh, p[X], p[Y]))                          \
    RUN(power_b_##tag, o->power_backward(be, n, pw, sc, sh, p[X], p[Y], p[DY], p[DX]))           \
    static void prep_power_##tag(float *const *h, size_t n)                                       \
    {                                                                                             \
        CPU_OPS->power_forward(CPU, n, pw, sc, sh, h[X], h[Y]);                                   \
    }
POWER(square, 2.f, 0.8f, 0.5f)
POWER(frac, 1.7f, 0.8f, 2.f)
POWER(one, 1.f, 1.5f, -0.3f)
POWER(sqrt, 0.5f, 1.f, 0.f)
POWER(cube, 3.f, -1.f, 0.f)
POWER(unit, 2.5f, 1.f, 1.f)

RUN(exp_f_e, o->exp_forward(be, n, 1.f, 1.f, p[X], p[Y]))
RUN(exp_b_e, o->exp_backward(be, n, 1.f, p[Y], p[DY], p[DX]))
static void prep_exp_e(float *const *h, size_t n) { CPU_OPS->exp_forward(CPU, n, 1.f, 1.f, h[X], h[Y]); }
/* base 2, scale 0.5, shift 0.3 */
#define EXP2_INNER (0.69314718f * 0.5f)
#define EXP2_OUTER 1.23114441f
RUN(exp_f_2, o->exp_forward(be, n, EXP2_INNER, EXP2_OUTER, p[X], p[Y]))
RUN(exp_b_2, o->exp_backward(be, n, EXP2_INNER, p[Y], p[DY], p[DX]))
static void prep_exp_2(float *const *h, size_t n) { CPU_OPS->exp_forward(CPU, n, EXP2_INNER, EXP2_OUTER, h[X], h[Y]); }

RUN(log_f_e, o->log_forward(be, n, 1.f, 1.f, 0.f, p[X], p[Y]))
RUN(log_b_e, o->log_backward(be, n, 1.f, 0.f, 1.f, p[X], p[DY], p[DX]))
/* base 10, scale 1.5, shift 2 */
#define LOG10_SCALE 0.43429448f
RUN(log_f_10, o->log_forward(be, n, LOG10_SCALE, 1.5f, 2.f, p[X], p[Y]))
RUN(log_b_10, o->log_backward(be, n, 1.5f, 2.f, 1.5f * LOG10_SCALE, p[X], p[DY], p[DX]))

RUN(bnll_f, o->bnll_forward(be, n, p[X], p[Y]))
RUN(bnll_b, o->bnll_backward(be, n, p[X], p[DY], p[DX]))
RUN(threshold_f, o->threshold_forward(be, n, 0.2f, p[X], p[Y]))
RUN(clip_f, o->clip_forward(be, n, -0.5f, 0.6f, p[X], p[Y]))
RUN(clip_b, o->clip_backward(be, n, -0.5f, 0.6f, p[X], p[DY], p[DX]))

RUN(swish_f, o->swish_forward(be, n, 1.5f, p[X], p[Y], p[AUX]))
RUN(swish_b, o->swish_backward(be, n, 1.5f, p[Y], p[AUX], p[DY], p[DX]))
static void prep_swish(float *const *h, size_t n) { CPU_OPS->swish_forward(CPU, n, 1.5f, h[X], h[Y], h[AUX]); }

RUN(dropout_a, o->dropout_apply(be, n, 1.f / 0.7f, p[AUX], p[X], p[Y]))
RUN(dropout_ab, o->dropout_apply(be, n, 1.f / 0.7f, p[AUX], p[DY], p[DX]))
static void prep_mask(float *const *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h[AUX][i] = (i * 2654435761u) % 10 < 7 ? 1.f : 0.f;
}

/* Tolerances on a GPU, and why:
 * EXACT: selects, a sign, one multiply or divide, or the same operations
 *   rounded step by step: nothing for two IEEE machines to differ on.
 * LIBM: expf, logf, powf, tanh: CUDA's are within 2 ulp, glibc's within 1;
 *   the atol covers results near 0 (log near 1, e^x - 1 near 0) where a
 *   few ulp of the operands are large relative to the result.
 * DNN: cuDNN's sigmoid and tanh use their own approximations; 2e-5 is five
 *   times under the 1e-4 of Caffe's numbers. */
#define EXACT { 0, 0 }
#define LIBM { 2e-6, 1e-6 }
#define DNN { 2e-5, 1e-6 }

static const struct entry entries[] = {
    { "relu_forward slope 0 (cuDNN)", relu_f0, Y, -1, X, -3, 3, { 0 }, 0, NULL, EXACT },
    { "relu_backward slope 0 (cuDNN)", relu_b0, DX, -1, DY, -3, 3, { 0 }, 0, prep_relu0, EXACT },
    { "relu_forward slope 0.1", relu_f1, Y, -1, X, -3, 3, { 0 }, 0, NULL, EXACT },
    { "relu_backward slope 0.1", relu_b1, DX, -1, DY, -3, 3, { 0 }, 0, prep_relu1, EXACT },
    { "elu_forward", elu_f, Y, -1, X, -4, 3, { -30.f, -1e-4f }, 2, NULL, LIBM },
    { "elu_backward", elu_b, DX, -1, DY, -4, 3, { -30.f, -1e-4f }, 2, prep_elu, EXACT },
    { "sigmoid_forward (cuDNN)", sigmoid_f, Y, -1, X, -8, 8, { 20.f, -20.f }, 2, NULL, DNN },
    { "sigmoid_backward (cuDNN)", sigmoid_b, DX, -1, DY, -8, 8, { 20.f, -20.f }, 2, prep_sigmoid, DNN },
    { "tanh_forward (cuDNN)", tanh_f, Y, -1, X, -5, 5, { 12.f, -12.f }, 2, NULL, DNN },
    { "tanh_backward (cuDNN)", tanh_b, DX, -1, DY, -5, 5, { 12.f, -12.f }, 2, prep_tanh, DNN },
    { "absval_forward", absval_f, Y, -1, X, -3, 3, { 0 }, 0, NULL, EXACT },
    { "absval_backward", absval_b, DX, -1, DY, -3, 3, { 0 }, 0, NULL, EXACT },
    { "power_forward (2, 0.8, 0.5)", power_f_square, Y, -1, X, -3, 3, { -0.625f }, 1, NULL, LIBM },
    { "power_backward (2, 0.8, 0.5)", power_b_square, DX, -1, DY, -3, 3, { -0.625f }, 1, prep_power_square, EXACT },
    { "power_forward (1.7, 0.8, 2)", power_f_frac, Y, -1, X, -2, 2, { 0 }, 0, NULL, LIBM },
    { "power_backward (1.7, 0.8, 2)", power_b_frac, DX, -1, DY, -2, 2, { 0 }, 0, prep_power_frac, EXACT },
    { "power_forward (1, 1.5, -0.3)", power_f_one, Y, -1, X, -3, 3, { 0.2f }, 1, NULL, EXACT },
    { "power_backward (1, 1.5, -0.3)", power_b_one, DX, -1, DY, -3, 3, { 0.2f }, 1, prep_power_one, EXACT },
    { "power_forward (0.5, 1, 0)", power_f_sqrt, Y, -1, X, 0.01f, 4, { 1.f }, 1, NULL, LIBM },
    { "power_backward (0.5, 1, 0)", power_b_sqrt, DX, -1, DY, 0.01f, 4, { 1.f }, 1, prep_power_sqrt, EXACT },
    { "power_forward (3, -1, 0)", power_f_cube, Y, -1, X, -2, 2, { 0 }, 0, NULL, LIBM },
    { "power_backward (3, -1, 0)", power_b_cube, DX, -1, DY, -2, 2, { 0.5f }, 1, prep_power_cube, EXACT },
    { "power_forward (2.5, 1, 1)", power_f_unit, Y, -1, X, -0.9f, 2, { 0 }, 0, NULL, LIBM },
    { "power_backward (2.5, 1, 1)", power_b_unit, DX, -1, DY, -0.9f, 2, { 0 }, 0, prep_power_unit, EXACT },
    { "exp_forward (e)", exp_f_e, Y, -1, X, -5, 5, { -80.f, 80.f }, 2, NULL, LIBM },
    { "exp_backward (e)", exp_b_e, DX, -1, DY, -5, 5, { 0 }, 0, prep_exp_e, EXACT },
    { "exp_forward (2, 0.5, 0.3)", exp_f_2, Y, -1, X, -5, 5, { 0 }, 0, NULL, LIBM },
    { "exp_backward (2, 0.5, 0.3)", exp_b_2, DX, -1, DY, -5, 5, { 0 }, 0, prep_exp_2, EXACT },
    { "log_forward (e)", log_f_e, Y, -1, X, 0.01f, 5, { 1.f }, 1, NULL, LIBM },
    { "log_backward (e)", log_b_e, DX, -1, DY, 0.01f, 5, { 1.f }, 1, NULL, EXACT },
    { "log_forward (10, 1.5, 2)", log_f_10, Y, -1, X, -1.3f, 3, { -2.f / 3.f }, 1, NULL, LIBM },
    { "log_backward (10, 1.5, 2)", log_b_10, DX, -1, DY, -1.3f, 3, { 0 }, 0, NULL, EXACT },
    { "bnll_forward", bnll_f, Y, -1, X, -6, 6, { 60.f, -60.f, 50.f }, 3, NULL, LIBM },
    { "bnll_backward", bnll_b, DX, -1, DY, -6, 6, { 60.f, -60.f, 50.f }, 3, NULL, LIBM },
    { "threshold_forward", threshold_f, Y, -1, X, -1, 1, { 0.2f }, 1, NULL, EXACT },
    { "clip_forward", clip_f, Y, -1, X, -1, 1, { -0.5f, 0.6f }, 2, NULL, EXACT },
    { "clip_backward", clip_b, DX, -1, DY, -1, 1, { -0.5f, 0.6f }, 2, NULL, EXACT },
    { "swish_forward", swish_f, Y, AUX, X, -6, 6, { 30.f, -30.f }, 2, NULL, LIBM },
    { "swish_backward", swish_b, DX, -1, DY, -6, 6, { 30.f, -30.f }, 2, prep_swish, LIBM },
    { "dropout_apply", dropout_a, Y, -1, X, -3, 3, { 0 }, 0, prep_mask, EXACT },
    { "dropout_apply (backward)", dropout_ab, DX, -1, DY, -3, 3, { 0 }, 0, prep_mask, EXACT },
};

/* One entry at size n, in place or not. */
static void run_entry(const struct entry *e, size_t n, bool in_place, struct rng *r)
{
    float *h[NB];
    struct ops_buf b[NB];
    for (int i = 0; i < NB; i++)
        h[i] = malloc((n ? n : 1) * sizeof(float));
    for (int i = 0; i < NB; i++)
        if (!h[i]) {
            CHECK_MSG(0, "out of memory");
            goto out_h;
        }
    ops_fill(h[X], n, r, e->lo, e->hi, e->special, e->n_special);
    ops_fill(h[Y], n, r, -1, 1, NULL, 0);
    ops_fill(h[DY], n, r, -1, 1, NULL, 0);
    ops_fill(h[DX], n, r, -5, 5, NULL, 0); /* stale values the entry must overwrite */
    ops_fill(h[AUX], n, r, 0, 1, NULL, 0);
    if (e->prep)
        e->prep(h, n);
    for (int i = 0; i < NB; i++)
        b[i] = ops_buf_new(n, h[i]);
    for (int k = 0; k < 2; k++) {
        float *p[NB];
        for (int i = 0; i < NB; i++)
            p[i] = ops_on(&b[i], k);
        if (in_place)
            p[e->out] = p[e->alias];
        e->run(ops_be[k], p, n);
    }
    char what[160];
    int out = in_place ? e->alias : e->out;
    snprintf(what, sizeof what, "%s%s", e->name, in_place ? " in place" : "");
    ops_check(what, &b[out], NULL, e->tol);
    if (e->out2 >= 0) {
        snprintf(what, sizeof what, "%s%s (second output)", e->name, in_place ? " in place" : "");
        ops_check(what, &b[e->out2], NULL, e->tol);
    }
    for (int i = 0; i < NB; i++)
        ops_buf_free(&b[i]);
out_h:
    for (int i = 0; i < NB; i++)
        free(h[i]);
}

static void entries_agree(void)
{
    struct rng r;
    rng_seed(&r, 2024);
    for (size_t e = 0; e < sizeof entries / sizeof entries[0]; e++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (int in_place = 0; in_place < 2; in_place++)
                run_entry(&entries[e], sizes[s], in_place, &r);
}

/* In place and out of place give the same numbers on the device itself. */
static void in_place_is_out_of_place(void)
{
    struct rng r;
    rng_seed(&r, 77);
    const size_t n = 999;
    for (size_t e = 0; e < sizeof entries / sizeof entries[0]; e++) {
        const struct entry *en = &entries[e];
        float *h[NB];
        struct ops_buf b[NB], c[NB];
        bool ok = true;
        for (int i = 0; i < NB; i++)
            ok = (h[i] = malloc(n * sizeof(float))) != NULL && ok;
        if (ok) {
            ops_fill(h[X], n, &r, en->lo, en->hi, en->special, en->n_special);
            for (int i = Y; i < NB; i++)
                ops_fill(h[i], n, &r, i == AUX ? 0 : -1, 1, NULL, 0);
            if (en->prep)
                en->prep(h, n);
            for (int i = 0; i < NB; i++) {
                b[i] = ops_buf_new(n, h[i]);
                c[i] = ops_buf_new(n, h[i]);
            }
            const struct backend *be = ops_be[1];
            float *p[NB], *q[NB];
            for (int i = 0; i < NB; i++) {
                p[i] = tensor_data_on(b[i].t[1], be);
                q[i] = tensor_data_on(c[i].t[1], be);
            }
            q[en->out] = q[en->alias];
            en->run(be, p, n);
            en->run(be, q, n);
            CHECK_OK(be->sync(be));
            const float *u = tensor_cdata(b[en->out].t[1]), *v = tensor_cdata(c[en->alias].t[1]);
            size_t bad = 0;
            for (size_t i = 0; i < n; i++)
                if (memcmp(&u[i], &v[i], sizeof(float)) != 0 && !(isnan(u[i]) && isnan(v[i])))
                    bad++;
            CHECK_MSG(bad == 0, "%s on %s: %zu of %zu values differ in place", en->name, be->name, bad, n);
            for (int i = 0; i < NB; i++) {
                ops_buf_free(&b[i]);
                ops_buf_free(&c[i]);
            }
        } else {
            CHECK_MSG(0, "out of memory");
        }
        for (int i = 0; i < NB; i++)
            free(h[i]);
    }
}

/* PReLU: per channel (dim 1 and odd dims), shared; the slope gradient ADDS
 * its sums, compared relative to the sum of the terms' magnitudes. */
static void prelu_entries(void)
{
    static const struct {
        size_t num, channels, dim;
    } shapes[] = { { 1, 1, 1 }, { 2, 3, 5 }, { 3, 7, 1 }, { 4, 16, 97 }, { 2, 1, 1001 } };
    struct rng r;
    rng_seed(&r, 31);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const size_t ch = shapes[s].channels, dim = shapes[s].dim, n = shapes[s].num * ch * dim;
        for (int in_place = 0; in_place < 2; in_place++) {
            float *hx = malloc(n * sizeof(float)), *hdy = malloc(n * sizeof(float)), hs[16], hds[16];
            if (!hx || !hdy) {
                free(hx);
                free(hdy);
                CHECK_MSG(0, "out of memory");
                return;
            }
            ops_fill(hx, n, &r, -2, 2, NULL, 0);
            ops_fill(hdy, n, &r, -1, 1, NULL, 0);
            ops_fill(hs, ch, &r, -0.5f, 1.5f, NULL, 0);
            ops_fill(hds, ch, &r, -1, 1, NULL, 0);
            struct ops_buf x = ops_buf_new(n, hx), y = ops_buf_new(n, NULL), dy = ops_buf_new(n, hdy),
                           dx = ops_buf_new(n, NULL), sl = ops_buf_new(ch, hs), ds = ops_buf_new(ch, hds);
            for (int k = 0; k < 2; k++) {
                const struct backend *be = ops_be[k];
                float *px = ops_on(&x, k), *pdy = ops_on(&dy, k);
                /* The slope's gradient first, while x is still the input. */
                be->neuron->prelu_slope_backward(be, n, ch, dim, px, pdy, ops_on(&ds, k));
                be->neuron->prelu_forward(be, n, ch, dim, ops_on(&sl, k), px, in_place ? px : ops_on(&y, k));
            }
            char what[128];
            snprintf(what, sizeof what, "prelu_forward %zux%zux%zu%s", shapes[s].num, ch, dim,
                     in_place ? " in place" : "");
            ops_check(what, in_place ? &x : &y, NULL, (struct ops_tol)EXACT);
            /* The sums' scale: the magnitudes of their terms, from the inputs. */
            double scale[16] = { 0 };
            for (size_t i = 0; i < n; i++)
                scale[(i / dim) % ch] += fabs((double)hdy[i] * hx[i] * (hx[i] <= 0));
            for (size_t c = 0; c < ch; c++)
                scale[c] += fabs(hds[c]);
            snprintf(what, sizeof what, "prelu_slope_backward %zux%zux%zu", shapes[s].num, ch, dim);
            /* Sums in another order: a few float roundings of the terms' total. */
            ops_check(what, &ds, scale, (struct ops_tol){ 1e-5, 0 });
            /* Backward to x from the input x (restored after in place). */
            ops_buf_free(&x);
            x = ops_buf_new(n, hx);
            for (int k = 0; k < 2; k++) {
                const struct backend *be = ops_be[k];
                float *pdy = ops_on(&dy, k);
                be->neuron->prelu_backward(be, n, ch, dim, tensor_cdata_on(sl.t[k], be), tensor_cdata_on(x.t[k], be),
                                           pdy, in_place ? pdy : ops_on(&dx, k));
            }
            snprintf(what, sizeof what, "prelu_backward %zux%zux%zu%s", shapes[s].num, ch, dim,
                     in_place ? " in place" : "");
            ops_check(what, in_place ? &dy : &dx, NULL, (struct ops_tol)EXACT);
            ops_buf_free(&x);
            ops_buf_free(&y);
            ops_buf_free(&dy);
            ops_buf_free(&dx);
            ops_buf_free(&sl);
            ops_buf_free(&ds);
            free(hx);
            free(hdy);
        }
    }
}

/* The slope's sums use no atomics: the same inputs give the same bits. */
static void prelu_slope_repeat(void)
{
    const struct backend *be = ops_be[1];
    const size_t ch = 5, dim = 1999, n = 3 * ch * dim;
    struct rng r;
    rng_seed(&r, 6);
    float *hx = malloc(n * sizeof(float)), *hdy = malloc(n * sizeof(float));
    if (!hx || !hdy) {
        free(hx);
        free(hdy);
        CHECK_MSG(0, "out of memory");
        return;
    }
    ops_fill(hx, n, &r, -2, 2, NULL, 0);
    ops_fill(hdy, n, &r, -1, 1, NULL, 0);
    struct ops_buf x = ops_buf_new(n, hx), dy = ops_buf_new(n, hdy), ds[2] = { ops_buf_new(ch, NULL), ops_buf_new(ch, NULL) };
    for (int t = 0; t < 2; t++)
        be->neuron->prelu_slope_backward(be, n, ch, dim, ops_on(&x, 1), ops_on(&dy, 1), ops_on(&ds[t], 1));
    CHECK_OK(be->sync(be));
    CHECK_MSG(memcmp(tensor_cdata(ds[0].t[1]), tensor_cdata(ds[1].t[1]), ch * sizeof(float)) == 0,
              "prelu_slope_backward on %s: two runs gave different bits", be->name);
    ops_buf_free(&x);
    ops_buf_free(&dy);
    ops_buf_free(&ds[0]);
    ops_buf_free(&ds[1]);
    free(hx);
    free(hdy);
}

/* Philox4x32-10's known answers (Random123's kat_vectors): counter 0, key 0
 * gives 6627e8d5 e169c58d bc57ac4c 9b00dbd8, which are elements 0..3 of seed
 * 0. (The other published vectors use counter words 2 and 3, which Dropout
 * keeps 0.) */
static void dropout_bits_known_answers(void)
{
    static const uint32_t want[4] = { 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u };
    for (uint64_t i = 0; i < 4; i++)
        CHECK_MSG(neuron_dropout_bits(0, i) == want[i], "philox(0, 0) word %d: %08x, expected %08x", (int)i,
                  (unsigned)neuron_dropout_bits(0, i), (unsigned)want[i]);
}

/* The device draws the same mask as the CPU table for the same seed (the
 * generator is integer arithmetic), keeps about 1 - ratio, and a new seed
 * draws a new mask. */
static void dropout_forward_entry(void)
{
    static const float ratios[] = { 0.f, 0.3f, 0.5f, 0.9f };
    static const uint64_t seeds[] = { 1, 0x0123456789abcdefull };
    const size_t n = 100003;
    struct rng r;
    rng_seed(&r, 8);
    float *hx = malloc(n * sizeof(float));
    if (!hx) {
        CHECK_MSG(0, "out of memory");
        return;
    }
    ops_fill(hx, n, &r, -2, 2, NULL, 0);
    for (size_t a = 0; a < sizeof ratios / sizeof ratios[0]; a++)
        for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++)
            for (int in_place = 0; in_place < 2; in_place++) {
                const float ratio = ratios[a], scale = 1.f / (1.f - ratio);
                const uint32_t threshold = (uint32_t)(4294967296.f * ratio); /* as the layer */
                struct ops_buf x = ops_buf_new(n, hx), y = ops_buf_new(n, NULL), mask = ops_buf_new(n, NULL);
                for (int k = 0; k < 2; k++) {
                    float *px = ops_on(&x, k);
                    ops_be[k]->neuron->dropout_forward(ops_be[k], n, threshold, scale, seeds[s], px,
                                                       ops_on(&mask, k), in_place ? px : ops_on(&y, k));
                }
                char what[96];
                snprintf(what, sizeof what, "dropout_forward ratio %g seed %llu%s", ratio,
                         (unsigned long long)seeds[s], in_place ? " in place" : "");
                ops_check(what, &mask, NULL, (struct ops_tol)EXACT);
                ops_check(what, in_place ? &x : &y, NULL, (struct ops_tol)EXACT);
                const float *m = tensor_cdata(mask.t[1]);
                size_t kept = 0;
                for (size_t i = 0; i < n; i++)
                    kept += m[i] == 1.f;
                /* n draws: the kept fraction's standard deviation is at most 0.0016. */
                double frac = (double)kept / (double)n;
                CHECK_MSG(fabs(frac - (1.0 - ratio)) < 0.01, "%s: kept %.4f, expected about %.2f", what, frac,
                          1.0 - ratio);
                ops_buf_free(&x);
                ops_buf_free(&y);
                ops_buf_free(&mask);
            }
    /* Two seeds, two masks. */
    struct ops_buf x = ops_buf_new(n, hx), y = ops_buf_new(n, NULL), m1 = ops_buf_new(n, NULL),
                   m2 = ops_buf_new(n, NULL);
    const struct backend *be = ops_be[1];
    be->neuron->dropout_forward(be, n, 2147483647u, 2.f, 11, ops_on(&x, 1), ops_on(&m1, 1), ops_on(&y, 1));
    be->neuron->dropout_forward(be, n, 2147483647u, 2.f, 12, ops_on(&x, 1), ops_on(&m2, 1), ops_on(&y, 1));
    CHECK_OK(be->sync(be));
    CHECK_MSG(memcmp(tensor_cdata(m1.t[1]), tensor_cdata(m2.t[1]), n * sizeof(float)) != 0,
              "two seeds gave the same mask");
    ops_buf_free(&x);
    ops_buf_free(&y);
    ops_buf_free(&m1);
    ops_buf_free(&m2);
    free(hx);
}

/* ---- the layers on both backends ---- */

static const int shape4[1][4] = { { 2, 3, 4, 5 } };
static const int axes4[1] = { 4 };

static void layer_case(const char *what, const char *text, Caffe__Phase phase, bool in_place, float lo, float hi,
                       bool compare_top)
{
    struct ops_layer o;
    char name[160];
    snprintf(name, sizeof name, "%s%s", what, in_place ? " in place" : "");
    if (ops_layer_new(&o, text, phase, 1, shape4, axes4, lo, hi, in_place))
        /* On a GPU: cuDNN's and CUDA's libm, as the entries' tolerances. */
        ops_layer_run(&o, name, compare_top, 2e-5, 1e-6);
    ops_layer_free(&o);
}

static void layers_agree(void)
{
    static const struct {
        const char *what, *text;
        float lo, hi;
    } kinds[] = {
        { "ReLU", "name: 'relu' type: 'ReLU'", -2, 2 },
        { "ReLU leaky", "name: 'relu' type: 'ReLU' relu_param { negative_slope: 0.1 }", -2, 2 },
        { "PReLU", "name: 'prelu' type: 'PReLU' prelu_param { filler { type: 'uniform' min: -0.5 max: 1 } }", -2, 2 },
        { "PReLU shared", "name: 'prelu' type: 'PReLU' prelu_param { channel_shared: true }", -2, 2 },
        { "ELU", "name: 'elu' type: 'ELU' elu_param { alpha: 0.7 }", -2, 2 },
        { "Sigmoid", "name: 'sig' type: 'Sigmoid'", -4, 4 },
        { "TanH", "name: 'tanh' type: 'TanH'", -3, 3 },
        { "AbsVal", "name: 'abs' type: 'AbsVal'", -2, 2 },
        { "Power", "name: 'pow' type: 'Power' power_param { power: 1.7 scale: 0.8 shift: 2 }", -2, 2 },
        { "Power square", "name: 'pow' type: 'Power' power_param { power: 2 scale: -0.5 shift: 0.1 }", -2, 2 },
        { "Power constant", "name: 'pow' type: 'Power' power_param { power: 2 scale: 0 shift: 3 }", -2, 2 },
        { "Exp", "name: 'exp' type: 'Exp' exp_param { base: 2 scale: 0.5 shift: 0.3 }", -2, 2 },
        { "Log", "name: 'log' type: 'Log' log_param { base: 10 scale: 1.5 shift: 4 }", -2, 2 },
        { "BNLL", "name: 'bnll' type: 'BNLL'", -3, 3 },
        { "Threshold", "name: 'thr' type: 'Threshold' threshold_param { threshold: 0.2 }", -1, 1 },
        { "Clip", "name: 'clip' type: 'Clip' clip_param { min: -0.5 max: 0.6 }", -1, 1 },
        { "Swish", "name: 'swish' type: 'Swish' swish_param { beta: 1.5 }", -3, 3 },
        { "Dropout TEST", "name: 'drop' type: 'Dropout' dropout_param { dropout_ratio: 0.3 }", -2, 2 },
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        Caffe__Phase phase = strstr(kinds[i].what, "TEST") ? CAFFE__PHASE__TEST : CAFFE__PHASE__TRAIN;
        for (int in_place = 0; in_place < 2; in_place++)
            layer_case(kinds[i].what, kinds[i].text, phase, in_place, kinds[i].lo, kinds[i].hi, true);
    }
}

/* Dropout TRAIN on the device: its own mask (not the CPU's), but every kept
 * value is x / (1 - ratio), the gradient passes where the value was kept,
 * and nothing is copied in the steady state. */
static void dropout_layer_train(void)
{
    for (int in_place = 0; in_place < 2; in_place++) {
        struct ops_layer o;
        if (ops_layer_new(&o, "name: 'drop' type: 'Dropout' dropout_param { dropout_ratio: 0.3 }",
                          CAFFE__PHASE__TRAIN, 1, shape4, axes4, 0.5f, 1.5f, in_place)) {
            struct layer *l = o.l[1];
            struct tensor *x = o.bottom[1][0], *y = o.top[1][0];
            /* No zeros: a kept 0 would look dropped. */
            float *xs = tensor_data(x);
            for (size_t i = 0; i < x->count; i++)
                xs[i] = 0.5f + (float)(i % 7) * 0.1f;
            float *keep_x = malloc(x->count * sizeof(float));
            if (!keep_x) {
                CHECK_MSG(0, "out of memory");
                ops_layer_free(&o);
                return;
            }
            memcpy(keep_x, tensor_cdata(x), x->count * sizeof(float));
            CHECK_OK(layer_forward(l, o.bottom[1], o.top[1]));
            const float *yd = tensor_cdata(y);
            const float scale = (float)(1. / (1. - 0.3f));
            size_t bad = 0, dropped = 0;
            for (size_t i = 0; i < y->count; i++) {
                if (yd[i] == 0.f)
                    dropped++;
                else if (yd[i] != keep_x[i] * 1.f * scale)
                    bad++;
            }
            CHECK_MSG(bad == 0, "Dropout on %s: %zu kept values are not x / (1 - ratio)", ops_be[1]->name, bad);
            CHECK_MSG(dropped > 0 && dropped < y->count, "Dropout on %s dropped %zu of %zu", ops_be[1]->name, dropped,
                      y->count);
            float *dy = tensor_diff(y);
            for (size_t i = 0; i < y->count; i++)
                dy[i] = 1.f;
            bool pd[1] = { true };
            float *was = malloc(y->count * sizeof(float));
            if (was) {
                memcpy(was, yd, y->count * sizeof(float));
                CHECK_OK(layer_backward(l, o.top[1], pd, o.bottom[1]));
                const float *dx = tensor_cdiff(x);
                bad = 0;
                for (size_t i = 0; i < x->count; i++)
                    if (dx[i] != (was[i] == 0.f ? 0.f : scale))
                        bad++;
                CHECK_MSG(bad == 0, "Dropout on %s: %zu gradients are not mask / (1 - ratio)", ops_be[1]->name, bad);
                free(was);
            }
            /* The steady state: no copy either way. */
            struct tensor_transfers t0;
            tensor_transfers(&t0);
            CHECK_OK(layer_forward(l, o.bottom[1], o.top[1]));
            CHECK_OK(layer_backward(l, o.top[1], pd, o.bottom[1]));
            CHECK_OK(ops_be[1]->sync(ops_be[1]));
            struct tensor_transfers t = ops_since(&t0);
            CHECK_MSG(t.to_host == 0 && t.to_device == 0, "Dropout: a second pass copied %llu/%llu",
                      (unsigned long long)t.to_host, (unsigned long long)t.to_device);
            free(keep_x);
        }
        ops_layer_free(&o);
    }
}

int main(int argc, char **argv)
{
    ops_open();
    static const struct check_case cases[] = {
        CASE(entries_agree),       CASE(in_place_is_out_of_place), CASE(prelu_entries), CASE(prelu_slope_repeat),
        CASE(dropout_bits_known_answers), CASE(dropout_forward_entry), CASE(layers_agree),
        CASE(dropout_layer_train),
    };
    return check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
}
