/* Comparing a family's kernel table on $CREMA_TEST_DEVICE (default
 * cpu-mirror; cuda:0 on a GPU machine) with the CPU's, entry by entry on the
 * same inputs, and whole layers on the two backends with their copies
 * counted. On the mirror the device runs the CPU's own kernels: results must
 * be equal bit for bit; on a GPU, within each entry's tolerance. */
#ifndef CREMA_TESTS_OPS_COMPARE_H
#define CREMA_TESTS_OPS_COMPARE_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "core/tensor.h"
#include "layers/layer.h"
#include "net/device.h"
#include "proto/proto_io.h"
#include "util/rng.h"

/* [0] the CPU, [1] the device under test. */
static const struct backend *ops_be[2];

static void ops_open(void)
{
    const char *dev = getenv("CREMA_TEST_DEVICE");
    if (!dev || !*dev)
        dev = "cpu-mirror";
    ops_be[0] = device_cpu();
    if (device_open(dev, &ops_be[1])) {
        printf("SKIP: device %s: %s\n", dev, crema_errmsg());
        exit(77);
    }
    printf("device: %s\n", ops_be[1]->name);
}

/* The device computes with the CPU's kernels: nothing but equality will do. */
static bool ops_exact(void)
{
    return ops_be[1]->device == DEVICE_CPU;
}

/* One array with the same starting values on both backends. */
struct ops_buf {
    size_t n;
    struct tensor *t[2];
};

static struct ops_buf ops_buf_new(size_t n, const float *init)
{
    struct ops_buf b = { n, { tensor_new(), tensor_new() } };
    int shape[1] = { (int)(n ? n : 1) };
    for (int k = 0; k < 2; k++) {
        CHECK_OK(tensor_reshape(b.t[k], 1, shape));
        if (init)
            memcpy(tensor_data(b.t[k]), init, n * sizeof(float));
    }
    return b;
}

static void ops_buf_free(struct ops_buf *b)
{
    tensor_free(b->t[0]);
    tensor_free(b->t[1]);
}

/* The array's memory on backend k (made current there). */
static float *ops_on(struct ops_buf *b, int k)
{
    return tensor_data_on(b->t[k], ops_be[k]);
}

/* Uniform in [lo, hi), with the edge values a kernel must treat as the CPU
 * does spread in: 0 and -0, the bounds themselves, and each `special`. */
static void ops_fill(float *v, size_t n, struct rng *r, float lo, float hi, const float *special, int n_special)
{
    for (size_t i = 0; i < n; i++)
        v[i] = rng_uniform(r, lo, hi);
    if (n < 4)
        return;
    const float edges[4] = { 0.f, -0.f, lo, hi };
    for (int e = 0; e < 4; e++)
        v[(size_t)(e * 131 + 3) % n] = edges[e];
    for (int s = 0; s < n_special; s++)
        for (size_t i = (size_t)s * 7 + 1; i < n; i += 97)
            v[i] = special[s];
}

/* Per-entry tolerance on a GPU: |got - want| <= rtol * scale + atol, scale
 * being |want| or the caller's (for sums: the sum of the terms' magnitudes). */
struct ops_tol {
    double rtol, atol;
};

/* Compares the device's copy of b with the CPU's: equal on the mirror (NaN
 * with NaN), within tol on a GPU. Reports the worst element. */
static void ops_check(const char *what, struct ops_buf *b, const double *scale, struct ops_tol tol)
{
    CHECK_OK(ops_be[1]->sync(ops_be[1]));
    const float *got = tensor_cdata(b->t[1]), *want = tensor_cdata(b->t[0]);
    if (!got || !want) {
        CHECK_MSG(0, "%s: no host copy", what);
        return;
    }
    const bool exact = ops_exact();
    double worst = 0;
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < b->n; i++) {
        const double g = got[i], w = want[i];
        bool ok;
        double err;
        if (isnan(w) || isnan(g)) {
            ok = isnan(w) && isnan(g);
            err = ok ? 0 : INFINITY;
        } else if (exact || g == w) {
            ok = g == w;
            err = ok ? 0 : INFINITY;
        } else {
            const double s = scale ? scale[i] : fabs(w);
            err = fabs(g - w);
            ok = err <= tol.rtol * s + tol.atol;
            err = s > 0 ? err / s : err;
        }
        if (!ok && bad++ == 0)
            first = i;
        if (err > worst)
            worst = err;
    }
    CHECK_MSG(bad == 0, "%s: %zu of %zu differ; the first at %zu: device %.9g, cpu %.9g (rtol %g atol %g)", what,
              bad, b->n, first, (double)got[first], (double)want[first], tol.rtol, tol.atol);
    if (!exact)
        printf("    %-44s n=%-8zu worst rel err %.2e\n", what, b->n, worst);
}

/* ---- whole layers on both backends ---- */

/* Host values of a tensor of the device layer set from the CPU layer's. */
static void ops_copy_tensor(struct tensor *dst, struct tensor *src, bool diff)
{
    const float *s = diff ? tensor_cdiff(src) : tensor_cdata(src);
    float *d = diff ? tensor_diff(dst) : tensor_data(dst);
    if (s && d)
        memcpy(d, s, src->count * sizeof(float));
}

/* a (device) against b (CPU), on the host: equal on the mirror; on a GPU
 * within rtol of the largest |b| plus atol (the golden tests' measure). */
static void ops_check_tensor(const char *what, struct tensor *a, struct tensor *b, bool diff, double rtol, double atol)
{
    const float *x = diff ? tensor_cdiff(a) : tensor_cdata(a), *y = diff ? tensor_cdiff(b) : tensor_cdata(b);
    if (!x || !y || a->count != b->count) {
        CHECK_MSG(0, "%s: counts %zu and %zu", what, a->count, b->count);
        return;
    }
    double m = 0, e = 0;
    size_t at = 0;
    for (size_t i = 0; i < b->count; i++) {
        m = fmax(m, fabs(y[i]));
        double d = isnan(x[i]) != isnan(y[i]) ? INFINITY : isnan(y[i]) ? 0 : fabs((double)x[i] - y[i]);
        if (d > e) {
            e = d;
            at = i;
        }
    }
    if (ops_exact())
        CHECK_MSG(e == 0, "%s: differs on the mirror: %.9g against %.9g at %zu", what, (double)x[at], (double)y[at], at);
    else
        CHECK_MSG(e <= rtol * m + atol, "%s: max |err| %.3g at %zu (device %.9g, cpu %.9g; max %.3g)", what, e, at,
                  (double)x[at], (double)y[at], m);
}

static struct tensor_transfers ops_since(const struct tensor_transfers *t0)
{
    struct tensor_transfers t;
    tensor_transfers(&t);
    t.to_device -= t0->to_device;
    t.to_host -= t0->to_host;
    return t;
}

/* A layer from its prototxt text, built twice over copies of the same
 * bottoms: on the CPU and on the device. */
struct ops_layer {
    Caffe__LayerParameter *param;
    struct layer *l[2];
    int n_bottom;
    bool in_place;
    struct tensor *bottom[2][4], *top[2][1];
    struct rng rng[2];
};

/* Bottoms get uniform values in [lo, hi) (with 0 spread in); shapes[i] has
 * n_axes[i] axes. in_place: top 0 is bottom 0. */
static bool ops_layer_new(struct ops_layer *o, const char *text, Caffe__Phase phase, int n_bottom,
                          const int shapes[][4], const int *n_axes, float lo, float hi, bool in_place)
{
    memset(o, 0, sizeof *o);
    o->n_bottom = n_bottom;
    o->in_place = in_place;
    ProtobufCMessage *m = NULL;
    CHECK_OK(proto_parse_text(&caffe__layer_parameter__descriptor, text, strlen(text), "test", &m));
    if (!m)
        return false;
    o->param = (Caffe__LayerParameter *)m;
    struct rng fill;
    rng_seed(&fill, 99);
    for (int i = 0; i < n_bottom; i++) {
        for (int k = 0; k < 2; k++) {
            o->bottom[k][i] = tensor_new();
            CHECK_OK(tensor_reshape(o->bottom[k][i], n_axes[i], shapes[i]));
        }
        float *v = tensor_data(o->bottom[0][i]);
        ops_fill(v, o->bottom[0][i]->count, &fill, lo, hi, NULL, 0);
        ops_copy_tensor(o->bottom[1][i], o->bottom[0][i], false);
    }
    for (int k = 0; k < 2; k++) {
        o->top[k][0] = in_place ? o->bottom[k][0] : tensor_new();
        rng_seed(&o->rng[k], 5);
        CHECK_OK(layer_create(o->param, phase, &o->rng[k], o->bottom[k], n_bottom, o->top[k], 1, &o->l[k]));
        if (!o->l[k])
            return false;
    }
    /* The same parameters on both (fillers drew the same, but say so). */
    for (int b = 0; b < o->l[0]->n_blobs; b++)
        ops_copy_tensor(o->l[1]->blobs[b], o->l[0]->blobs[b], false);
    bool on = layer_set_backend(o->l[1], ops_be[1]);
    CHECK_MSG(on, "layer %s (%s) has no %s path", o->l[1]->name, o->l[1]->kind->type, ops_be[1]->name);
    return on;
}

static void ops_layer_free(struct ops_layer *o)
{
    for (int k = 0; k < 2; k++) {
        layer_free(o->l[k]);
        if (!o->in_place)
            tensor_free(o->top[k][0]);
        for (int i = 0; i < o->n_bottom; i++)
            tensor_free(o->bottom[k][i]);
    }
    if (o->param)
        proto_free(&o->param->base);
}

/* Forward and backward on both backends, every output compared (top data
 * unless !compare_top, parameters after forward, bottom and parameter
 * diffs); then a second pass on the device, whose inputs are there already,
 * must copy nothing either way: no host round trip inside the layer. */
static void ops_layer_run(struct ops_layer *o, const char *what, bool compare_top, double rtol, double atol)
{
    char name[256];
    struct layer *ld = o->l[1];
    for (int k = 0; k < 2; k++)
        CHECK_OK(layer_forward(o->l[k], o->bottom[k], o->top[k]));
    if (compare_top) {
        snprintf(name, sizeof name, "%s: top data", what);
        ops_check_tensor(name, o->top[1][0], o->top[0][0], false, rtol, atol);
    }
    for (int b = 0; b < ld->n_blobs; b++) {
        snprintf(name, sizeof name, "%s: blob %d after forward", what, b);
        ops_check_tensor(name, ld->blobs[b], o->l[0]->blobs[b], false, rtol, atol);
    }
    bool pd[4] = { true, true, true, true };
    if (ld->kind->backward) {
        struct rng r;
        rng_seed(&r, 17);
        float *dy = tensor_diff(o->top[0][0]);
        for (size_t i = 0; dy && i < o->top[0][0]->count; i++)
            dy[i] = rng_uniform(&r, -1.f, 1.f);
        ops_copy_tensor(o->top[1][0], o->top[0][0], true);
        for (int k = 0; k < 2; k++) {
            for (int b = 0; b < o->l[k]->n_blobs; b++)
                tensor_zero_diff(o->l[k]->blobs[b]);
            CHECK_OK(layer_backward(o->l[k], o->top[k], pd, o->bottom[k]));
        }
        for (int i = 0; i < o->n_bottom; i++) {
            snprintf(name, sizeof name, "%s: bottom %d diff", what, i);
            ops_check_tensor(name, o->bottom[1][i], o->bottom[0][i], true, rtol, atol);
        }
        for (int b = 0; b < ld->n_blobs; b++) {
            if (!ld->param_propagate_down[b])
                continue;
            snprintf(name, sizeof name, "%s: blob %d diff", what, b);
            ops_check_tensor(name, ld->blobs[b], o->l[0]->blobs[b], true, rtol, atol);
        }
    }
    CHECK_OK(ops_be[1]->sync(ops_be[1]));
    struct tensor_transfers t0;
    tensor_transfers(&t0);
    CHECK_OK(layer_forward(ld, o->bottom[1], o->top[1]));
    if (ld->kind->backward)
        CHECK_OK(layer_backward(ld, o->top[1], pd, o->bottom[1]));
    CHECK_OK(ops_be[1]->sync(ops_be[1]));
    struct tensor_transfers t = ops_since(&t0);
    CHECK_MSG(t.to_host == 0 && t.to_device == 0, "%s: a second pass on %s copied %llu to the host, %llu to the device",
              what, ops_be[1]->name, (unsigned long long)t.to_host, (unsigned long long)t.to_device);
}

#endif
