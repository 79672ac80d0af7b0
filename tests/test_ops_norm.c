/* The normalisation family's table (be->norm) on $CREMA_TEST_DEVICE against
 * the CPU's: every entry on random inputs with the edge cases (sizes 1 and
 * odd, in place, a zero factor and zero variances, more rows than a GPU
 * grid holds at once), and BatchNorm, Scale, Bias and MVN forward and
 * backward on both backends, copying nothing in the steady state. */
#include "ops_compare.h"

#include <stdlib.h>

static float *host_random(size_t n, struct rng *r, float lo, float hi)
{
    float *v = malloc((n ? n : 1) * sizeof(float));
    if (v)
        ops_fill(v, n, r, lo, hi, NULL, 0);
    else
        CHECK_MSG(0, "out of memory");
    return v;
}

/* ---- BatchNorm's per-channel steps: IEEE operations rounded one by one,
 * the same on every machine, so equal on a GPU too ---- */

static void bn_entries(void)
{
    static const int channels[] = { 1, 3, 64 };
    static const float factors[] = { 0.f, 1.f, 7.3f };
    struct rng r;
    rng_seed(&r, 1);
    for (size_t c = 0; c < sizeof channels / sizeof channels[0]; c++) {
        const int ch = channels[c];
        float *ms = host_random((size_t)ch, &r, -3, 3), *vs = host_random((size_t)ch, &r, 0, 5);
        if (!ms || !vs) {
            free(ms);
            free(vs);
            return;
        }
        if (ch > 1)
            vs[1] = 0.f;
        for (size_t f = 0; f < sizeof factors / sizeof factors[0]; f++) {
            struct ops_buf m = ops_buf_new((size_t)ch, ms), v = ops_buf_new((size_t)ch, vs),
                           fac = ops_buf_new(1, &factors[f]), mean = ops_buf_new((size_t)ch, NULL),
                           var = ops_buf_new((size_t)ch, NULL);
            for (int k = 0; k < 2; k++) {
                const struct backend *be = ops_be[k];
                be->norm->bn_global_stats(be, ch, ops_on(&m, k), ops_on(&v, k), ops_on(&fac, k), ops_on(&mean, k),
                                          ops_on(&var, k));
                be->norm->bn_update_factor(be, 0.999f, ops_on(&fac, k));
                be->norm->bn_std(be, ch, 1e-5f, ops_on(&var, k));
            }
            char what[96];
            snprintf(what, sizeof what, "bn_global_stats mean, %d channels, factor %g", ch, factors[f]);
            ops_check(what, &mean, NULL, (struct ops_tol){ 0, 0 });
            snprintf(what, sizeof what, "bn_global_stats + bn_std, %d channels, factor %g", ch, factors[f]);
            ops_check(what, &var, NULL, (struct ops_tol){ 0, 0 });
            snprintf(what, sizeof what, "bn_update_factor from %g", factors[f]);
            ops_check(what, &fac, NULL, (struct ops_tol){ 0, 0 });
            ops_buf_free(&m);
            ops_buf_free(&v);
            ops_buf_free(&fac);
            ops_buf_free(&mean);
            ops_buf_free(&var);
        }
        /* eps 0 over a zero variance: sqrt(0). */
        struct ops_buf v = ops_buf_new((size_t)ch, vs);
        for (int k = 0; k < 2; k++)
            ops_be[k]->norm->bn_std(ops_be[k], ch, 0.f, ops_on(&v, k));
        ops_check("bn_std eps 0", &v, NULL, (struct ops_tol){ 0, 0 });
        ops_buf_free(&v);
        free(ms);
        free(vs);
    }
}

/* ---- Scale and Bias ---- */

static const struct {
    size_t outer, dim, inner;
} bdims[] = {
    { 1, 1, 1 }, { 2, 3, 5 }, { 3, 1, 7 }, { 1, 7, 1 }, { 4, 16, 49 }, { 64, 5, 1 },
    /* more j's than a GPU grid of blocks holds: the kernels loop */
    { 1, 524289, 1 },
};

static void broadcast_entries(void)
{
    struct rng r;
    rng_seed(&r, 2);
    for (size_t s = 0; s < sizeof bdims / sizeof bdims[0]; s++) {
        const size_t outer = bdims[s].outer, dim = bdims[s].dim, inner = bdims[s].inner;
        const size_t n = outer * dim * inner;
        float *hx = host_random(n, &r, -2, 2), *hb = host_random(dim, &r, -1, 1), *hdy = host_random(n, &r, -1, 1),
              *hdb = host_random(dim, &r, -1, 1);
        double *scale_b = calloc(dim, sizeof(double)), *scale_s = calloc(dim, sizeof(double));
        if (!hx || !hb || !hdy || !hdb || !scale_b || !scale_s) {
            CHECK_MSG(0, "out of memory");
            goto out;
        }
        for (int in_place = 0; in_place < 2; in_place++) {
            struct ops_buf x = ops_buf_new(n, hx), b = ops_buf_new(dim, hb), y = ops_buf_new(n, NULL);
            for (int k = 0; k < 2; k++) {
                float *px = ops_on(&x, k);
                ops_be[k]->norm->bias_forward(ops_be[k], outer, dim, inner, px, ops_on(&b, k),
                                              in_place ? px : ops_on(&y, k));
            }
            char what[128];
            snprintf(what, sizeof what, "bias_forward %zux%zux%zu%s", outer, dim, inner, in_place ? " in place" : "");
            ops_check(what, in_place ? &x : &y, NULL, (struct ops_tol){ 0, 0 });
            ops_buf_free(&x);
            x = ops_buf_new(n, hx);
            for (int k = 0; k < 2; k++) {
                float *px = ops_on(&x, k);
                ops_be[k]->norm->scale_forward(ops_be[k], outer, dim, inner, px, ops_on(&b, k),
                                               in_place ? px : ops_on(&y, k));
            }
            snprintf(what, sizeof what, "scale_forward %zux%zux%zu%s", outer, dim, inner,
                     in_place ? " in place" : "");
            ops_check(what, in_place ? &x : &y, NULL, (struct ops_tol){ 0, 0 });
            ops_buf_free(&x);
            ops_buf_free(&b);
            ops_buf_free(&y);
        }
        /* The sums: each compared relative to the sum of its terms'
         * magnitudes (plus the value it was added to), since the device adds
         * the same terms in another order. */
        for (size_t i = 0; i < n; i++) {
            size_t j = (i / inner) % dim;
            scale_b[j] += fabs(hdy[i]);
            scale_s[j] += fabs((double)hdy[i] * hx[i]);
        }
        for (int acc = 0; acc < 2; acc++) {
            struct ops_buf dy = ops_buf_new(n, hdy), x = ops_buf_new(n, hx), db = ops_buf_new(dim, hdb),
                           ds = ops_buf_new(dim, hdb);
            for (int k = 0; k < 2; k++) {
                const struct backend *be = ops_be[k];
                be->norm->bias_backward(be, outer, dim, inner, ops_on(&dy, k), ops_on(&db, k), acc);
                be->norm->scale_param_backward(be, outer, dim, inner, ops_on(&x, k), ops_on(&dy, k), ops_on(&ds, k),
                                               acc);
            }
            double *sb = malloc(dim * sizeof(double)), *ss = malloc(dim * sizeof(double));
            if (sb && ss) {
                for (size_t j = 0; j < dim; j++) {
                    sb[j] = scale_b[j] + (acc ? fabs(hdb[j]) : 0);
                    ss[j] = scale_s[j] + (acc ? fabs(hdb[j]) : 0);
                }
                char what[128];
                /* A float sum of m terms in any order is within about
                 * log2(m) + m / 256 roundings of the terms' magnitude; 1e-5
                 * of it leaves room for both orders' errors. */
                snprintf(what, sizeof what, "bias_backward %zux%zux%zu%s", outer, dim, inner,
                         acc ? " accumulating" : "");
                ops_check(what, &db, sb, (struct ops_tol){ 1e-5, 0 });
                snprintf(what, sizeof what, "scale_param_backward %zux%zux%zu%s", outer, dim, inner,
                         acc ? " accumulating" : "");
                ops_check(what, &ds, ss, (struct ops_tol){ 1e-5, 0 });
            } else {
                CHECK_MSG(0, "out of memory");
            }
            free(sb);
            free(ss);
            ops_buf_free(&dy);
            ops_buf_free(&x);
            ops_buf_free(&db);
            ops_buf_free(&ds);
        }
    out:
        free(hx);
        free(hb);
        free(hdy);
        free(hdb);
        free(scale_b);
        free(scale_s);
    }
}

/* ---- MVN ---- */

static void mvn_entries(void)
{
    static const struct {
        size_t rows, dim;
    } shapes[] = { { 1, 1 }, { 1, 7 }, { 6, 20 }, { 4, 32 }, { 4, 33 }, { 5, 3000 }, { 3, 257 }, { 524289, 3 } };
    struct rng r;
    rng_seed(&r, 3);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const size_t rows = shapes[s].rows, dim = shapes[s].dim, n = rows * dim;
        /* Values around 2: the mean matters, and subtracting it cancels. */
        float *hx = host_random(n, &r, 1, 3), *hdy = host_random(n, &r, -1, 1);
        float *hy = malloc(n * sizeof(float)), *hstd = malloc(rows * sizeof(float));
        if (!hx || !hdy || !hy || !hstd) {
            CHECK_MSG(0, "out of memory");
            free(hx);
            free(hdy);
            free(hy);
            free(hstd);
            return;
        }
        for (int nv = 0; nv < 2; nv++)
            for (int in_place = 0; in_place < 2; in_place++) {
                const float eps = nv ? 1e-9f : 1e-3f;
                struct ops_buf x = ops_buf_new(n, hx), y = ops_buf_new(n, NULL), sd = ops_buf_new(rows, NULL);
                for (int k = 0; k < 2; k++) {
                    float *px = ops_on(&x, k);
                    ops_be[k]->norm->mvn_forward(ops_be[k], rows, dim, nv, eps, px, in_place ? px : ops_on(&y, k),
                                                 ops_on(&sd, k));
                }
                char what[128];
                snprintf(what, sizeof what, "mvn_forward %zux%zu%s%s", rows, dim, nv ? " normalised" : "",
                         in_place ? " in place" : "");
                /* The outputs are O(1) after subtracting a mean near 2 that
                 * the two sum in different orders: a float sum of up to 3000
                 * values near 2 is good to about 1e-5 of the mean. */
                ops_check(what, in_place ? &x : &y, NULL, (struct ops_tol){ 1e-5, 5e-5 });
                if (nv) {
                    snprintf(what, sizeof what, "mvn_forward %zux%zu std%s", rows, dim, in_place ? " in place" : "");
                    ops_check(what, &sd, NULL, (struct ops_tol){ 1e-5, 0 });
                }
                ops_buf_free(&x);
                ops_buf_free(&y);
                ops_buf_free(&sd);
            }
        /* Backward from the CPU's forward (y and std as a layer keeps them). */
        for (int nv = 0; nv < 2; nv++) {
            ops_be[0]->norm->mvn_forward(ops_be[0], rows, dim, nv, 1e-9f, hx, hy, hstd);
            for (int in_place = 0; in_place < 2; in_place++) {
                struct ops_buf y = ops_buf_new(n, hy), dy = ops_buf_new(n, hdy), sd = ops_buf_new(rows, hstd),
                               dx = ops_buf_new(n, NULL);
                for (int k = 0; k < 2; k++) {
                    float *pdy = ops_on(&dy, k);
                    ops_be[k]->norm->mvn_backward(ops_be[k], rows, dim, nv, ops_on(&y, k), pdy, ops_on(&sd, k),
                                                  in_place ? pdy : ops_on(&dx, k));
                }
                char what[128];
                snprintf(what, sizeof what, "mvn_backward %zux%zu%s%s", rows, dim, nv ? " normalised" : "",
                         in_place ? " in place" : "");
                /* dx = dy less row means of O(1) terms: sums of up to 3000
                 * of them in two orders. */
                ops_check(what, in_place ? &dy : &dx, NULL, (struct ops_tol){ 1e-5, 1e-5 });
                ops_buf_free(&y);
                ops_buf_free(&dy);
                ops_buf_free(&sd);
                ops_buf_free(&dx);
            }
        }
        free(hx);
        free(hdy);
        free(hy);
        free(hstd);
    }
}

/* The sums use no atomics: the same inputs give the same bits every time. */
static void sums_repeat(void)
{
    const struct backend *be = ops_be[1];
    struct rng r;
    rng_seed(&r, 5);
    const size_t outer = 8, dim = 33, inner = 301, n = outer * dim * inner, rows = outer * dim;
    float *hx = host_random(n, &r, -2, 2), *hdy = host_random(n, &r, -1, 1);
    if (!hx || !hdy) {
        free(hx);
        free(hdy);
        return;
    }
    struct ops_buf x = ops_buf_new(n, hx), dy = ops_buf_new(n, hdy), out[2][4];
    for (int t = 0; t < 2; t++) {
        out[t][0] = ops_buf_new(dim, NULL);
        out[t][1] = ops_buf_new(dim, NULL);
        out[t][2] = ops_buf_new(n, NULL);
        out[t][3] = ops_buf_new(n, NULL);
        float *sd = NULL;
        struct ops_buf std = ops_buf_new(rows, NULL);
        sd = ops_on(&std, 1);
        be->norm->bias_backward(be, outer, dim, inner, ops_on(&dy, 1), ops_on(&out[t][0], 1), false);
        be->norm->scale_param_backward(be, outer, dim, inner, ops_on(&x, 1), ops_on(&dy, 1), ops_on(&out[t][1], 1),
                                       false);
        be->norm->mvn_forward(be, rows, inner, true, 1e-9f, ops_on(&x, 1), ops_on(&out[t][2], 1), sd);
        be->norm->mvn_backward(be, rows, inner, true, ops_on(&out[t][2], 1), ops_on(&dy, 1), sd,
                               ops_on(&out[t][3], 1));
        CHECK_OK(be->sync(be));
        ops_buf_free(&std);
    }
    static const char *names[4] = { "bias_backward", "scale_param_backward", "mvn_forward", "mvn_backward" };
    for (int i = 0; i < 4; i++) {
        CHECK_MSG(memcmp(tensor_cdata(out[0][i].t[1]), tensor_cdata(out[1][i].t[1]), out[0][i].n * sizeof(float)) == 0,
                  "%s on %s: two runs gave different bits", names[i], be->name);
        ops_buf_free(&out[0][i]);
        ops_buf_free(&out[1][i]);
    }
    ops_buf_free(&x);
    ops_buf_free(&dy);
    free(hx);
    free(hdy);
}

/* ---- the layers on both backends ---- */

/* On a GPU the sums are cuBLAS's and the kernels' trees: the golden tests'
 * measure, 1e-4 of the largest value. */
#define LAYER_RTOL 1e-4
#define LAYER_ATOL 1e-6

static void layer_case(const char *what, const char *text, Caffe__Phase phase, int n_bottom, const int shapes[][4],
                       const int *n_axes, bool in_place, bool set_stats)
{
    struct ops_layer o;
    char name[160];
    snprintf(name, sizeof name, "%s%s", what, in_place ? " in place" : "");
    if (ops_layer_new(&o, text, phase, n_bottom, shapes, n_axes, -2, 2, in_place)) {
        if (set_stats) {
            /* BatchNorm's running sums and factor, as a trained model has them. */
            struct layer *l = o.l[0];
            struct rng r;
            rng_seed(&r, 4);
            float *m = tensor_data(l->blobs[0]), *v = tensor_data(l->blobs[1]);
            for (size_t i = 0; i < l->blobs[0]->count; i++) {
                m[i] = rng_uniform(&r, -3, 3);
                v[i] = rng_uniform(&r, 0.5f, 9);
            }
            tensor_data(l->blobs[2])[0] = 3.5f;
            for (int b = 0; b < 3; b++)
                ops_copy_tensor(o.l[1]->blobs[b], l->blobs[b], false);
        }
        ops_layer_run(&o, name, true, LAYER_RTOL, LAYER_ATOL);
    }
    ops_layer_free(&o);
}

static void layers_agree(void)
{
    static const int s4[2][4] = { { 2, 3, 4, 5 }, { 3, 4 } };
    static const int a4[2] = { 4, 2 };
    static const int s2[1][4] = { { 7, 3 } };
    static const int a2[1] = { 2 };
    static const int s_scalar[2][4] = { { 2, 3, 4, 5 }, { 0 } };
    static const int a_scalar[2] = { 4, 0 };
    for (int in_place = 0; in_place < 2; in_place++) {
        layer_case("BatchNorm TRAIN", "name: 'bn' type: 'BatchNorm' batch_norm_param { moving_average_fraction: 0.9 }",
                   CAFFE__PHASE__TRAIN, 1, s4, a4, in_place, false);
        layer_case("BatchNorm TRAIN 2-D", "name: 'bn' type: 'BatchNorm'", CAFFE__PHASE__TRAIN, 1, s2, a2, in_place,
                   true);
        layer_case("BatchNorm TEST", "name: 'bn' type: 'BatchNorm' batch_norm_param { eps: 0.001 }",
                   CAFFE__PHASE__TEST, 1, s4, a4, in_place, true);
        layer_case("BatchNorm TEST, factor 0", "name: 'bn' type: 'BatchNorm'", CAFFE__PHASE__TEST, 1, s4, a4,
                   in_place, false);
        layer_case("BatchNorm TRAIN use_global_stats",
                   "name: 'bn' type: 'BatchNorm' batch_norm_param { use_global_stats: true }", CAFFE__PHASE__TRAIN, 1,
                   s4, a4, in_place, true);
        layer_case("Scale with bias",
                   "name: 'sc' type: 'Scale' scale_param { bias_term: true filler { type: 'uniform' min: -1 max: 2 } "
                   "bias_filler { type: 'uniform' min: -1 max: 1 } }",
                   CAFFE__PHASE__TRAIN, 1, s4, a4, in_place, false);
        layer_case("Scale axis 2 num_axes 2",
                   "name: 'sc' type: 'Scale' scale_param { axis: 2 num_axes: 2 filler { type: 'uniform' min: -1 max: 2 } }",
                   CAFFE__PHASE__TRAIN, 1, s4, a4, in_place, false);
        layer_case("Scale scalar",
                   "name: 'sc' type: 'Scale' scale_param { num_axes: 0 filler { type: 'uniform' min: -1 max: 2 } }",
                   CAFFE__PHASE__TRAIN, 1, s4, a4, in_place, false);
        layer_case("Scale second bottom", "name: 'sc' type: 'Scale' scale_param { axis: 1 }", CAFFE__PHASE__TRAIN, 2,
                   s4, a4, in_place, false);
        layer_case("Scale second bottom with bias",
                   "name: 'sc' type: 'Scale' scale_param { axis: 1 bias_term: true "
                   "bias_filler { type: 'uniform' min: -1 max: 1 } }",
                   CAFFE__PHASE__TRAIN, 2, s4, a4, in_place, false);
        layer_case("Scale scalar second bottom", "name: 'sc' type: 'Scale'", CAFFE__PHASE__TRAIN, 2, s_scalar,
                   a_scalar, in_place, false);
        layer_case("Bias", "name: 'b' type: 'Bias' bias_param { filler { type: 'uniform' min: -1 max: 1 } }",
                   CAFFE__PHASE__TRAIN, 1, s4, a4, in_place, false);
        layer_case("Bias axis -1",
                   "name: 'b' type: 'Bias' bias_param { axis: -1 filler { type: 'uniform' min: -1 max: 1 } }",
                   CAFFE__PHASE__TRAIN, 1, s4, a4, in_place, false);
        layer_case("Bias second bottom", "name: 'b' type: 'Bias' bias_param { axis: 1 }", CAFFE__PHASE__TRAIN, 2, s4,
                   a4, in_place, false);
        layer_case("MVN", "name: 'mvn' type: 'MVN'", CAFFE__PHASE__TRAIN, 1, s4, a4, in_place, false);
        layer_case("MVN across channels", "name: 'mvn' type: 'MVN' mvn_param { across_channels: true eps: 0.001 }",
                   CAFFE__PHASE__TRAIN, 1, s4, a4, in_place, false);
        layer_case("MVN mean only", "name: 'mvn' type: 'MVN' mvn_param { normalize_variance: false }",
                   CAFFE__PHASE__TRAIN, 1, s4, a4, in_place, false);
    }
}

int main(int argc, char **argv)
{
    ops_open();
    static const struct check_case cases[] = {
        CASE(bn_entries), CASE(broadcast_entries), CASE(mvn_entries), CASE(sums_repeat), CASE(layers_agree),
    };
    return check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
}
