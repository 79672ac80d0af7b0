/* The finite-difference gradient checker behind gradcheck.h. */
#include "gradcheck.h"
#include "check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void gradcheck_fill(struct tensor *t, float lo, float hi, unsigned seed)
{
    struct rng r;
    rng_seed(&r, seed);
    float *d = tensor_data(t);
    for (size_t i = 0; i < t->count; i++)
        d[i] = rng_uniform(&r, lo, hi);
}

static double objective(struct layer *l, struct tensor **bottom, struct tensor **top, int n_top,
                        float **w, int top_only)
{
    if (l->kind->forward(l, bottom, top) != 0)
        return NAN;
    double e = 0;
    for (int t = 0; t < n_top; t++) {
        if (top_only >= 0 && t != top_only)
            continue;
        const float *d = tensor_data(top[t]);
        for (size_t i = 0; i < top[t]->count; i++)
            e += (double)d[i] * w[t][i];
    }
    return e;
}

static int compare(const char *what, int index, size_t i, double a, double n, float threshold)
{
    double scale = fmax(fmax(fabs(a), fabs(n)), 1.0);
    if (fabs(a - n) > threshold * scale) {
        check_fail(__FILE__, __LINE__, "%s %d element %zu: analytic %.6g, numeric %.6g", what, index, i,
                   a, n);
        return 1;
    }
    return 0;
}

/* What each central difference needs: the layer, its blobs and the
 * objective's weights. */
struct probe {
    struct layer *l;
    struct tensor **bottom, **top;
    int n_top;
    float **w;
    const struct gradcheck_opts *opts;
};

/* Compares t's analytic gradient (its diff after backward) with central
 * differences of the objective, value by value, while fewer than 10 have
 * disagreed; returns bad plus the new disagreements. */
static int probe_tensor(const struct probe *pr, struct tensor *t, const char *what, int index, int bad)
{
    const struct gradcheck_opts *o = pr->opts;
    size_t n = t->count;
    float *g = malloc((n ? n : 1) * sizeof(float));
    memcpy(g, tensor_diff(t), n * sizeof(float));
    float *x = tensor_data(t);
    for (size_t i = 0; i < n && bad < 10; i++) {
        float keep = x[i];
        x[i] = keep + o->step;
        double ep = objective(pr->l, pr->bottom, pr->top, pr->n_top, pr->w, o->top_only);
        x[i] = keep - o->step;
        double em = objective(pr->l, pr->bottom, pr->top, pr->n_top, pr->w, o->top_only);
        x[i] = keep;
        bad += compare(what, index, i, g[i], (ep - em) / (2.0 * o->step), o->threshold);
    }
    free(g);
    return bad;
}

int gradcheck_layer(const Caffe__LayerParameter *param, Caffe__Phase phase, struct tensor **bottom,
                    int n_bottom, int n_top, const struct gradcheck_opts *o)
{
    struct gradcheck_opts opts = { 1e-2f, 1e-3f, NULL, false, -1, 1701 };
    if (o)
        opts = *o;
    if (opts.step == 0)
        opts.step = 1e-2f;
    if (opts.threshold == 0)
        opts.threshold = 1e-3f;
    struct rng rng;
    rng_seed(&rng, opts.seed);
    struct tensor **top = calloc((size_t)n_top, sizeof *top);
    for (int t = 0; t < n_top; t++)
        top[t] = tensor_new();
    struct layer *l = NULL;
    int rc = layer_create(param, phase, &rng, bottom, n_bottom, top, n_top, &l);
    if (rc) {
        check_fail(__FILE__, __LINE__, "layer_create: %s", crema_errmsg());
        goto out;
    }
    if (!l->kind->backward) {
        check_fail(__FILE__, __LINE__, "layer %s has no backward", l->name);
        rc = 1;
        goto out;
    }
    /* Fixed random weights for the objective. */
    if (l->kind->forward(l, bottom, top) != 0) {
        check_fail(__FILE__, __LINE__, "forward: %s", crema_errmsg());
        rc = 1;
        goto out;
    }
    float **w = calloc((size_t)n_top, sizeof *w);
    for (int t = 0; t < n_top; t++) {
        w[t] = malloc((top[t]->count ? top[t]->count : 1) * sizeof(float));
        for (size_t i = 0; i < top[t]->count; i++)
            w[t][i] = (opts.top_only >= 0 && t != opts.top_only) ? 0.f : rng_uniform(&rng, -1.f, 1.f);
    }
    /* Analytic gradients. */
    for (int b = 0; b < l->n_blobs; b++)
        tensor_zero_diff(l->blobs[b]);
    for (int t = 0; t < n_top; t++)
        memcpy(tensor_diff(top[t]), w[t], top[t]->count * sizeof(float));
    bool *pd = calloc((size_t)(n_bottom ? n_bottom : 1), sizeof(bool));
    for (int b = 0; b < n_bottom; b++)
        pd[b] = !(opts.skip_bottom && opts.skip_bottom[b]);
    if (l->kind->backward(l, top, pd, bottom) != 0) {
        check_fail(__FILE__, __LINE__, "backward: %s", crema_errmsg());
        rc = 1;
    }
    int bad = 0;
    const struct probe pr = { l, bottom, top, n_top, w, &opts };
    for (int b = 0; !rc && b < n_bottom; b++)
        if (pd[b])
            bad = probe_tensor(&pr, bottom[b], "bottom", b, bad);
    for (int p = 0; !rc && !opts.skip_params && p < l->n_blobs; p++)
        bad = probe_tensor(&pr, l->blobs[p], "param", p, bad);
    if (bad)
        rc = 1;
    for (int t = 0; t < n_top; t++)
        free(w[t]);
    free(w);
    free(pd);
out:
    layer_free(l);
    for (int t = 0; t < n_top; t++)
        tensor_free(top[t]);
    free(top);
    return rc;
}
