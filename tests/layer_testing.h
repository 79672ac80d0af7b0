/* Small helpers for tests of single layers: a LayerParameter from text,
 * tensors from literal shapes and values, one forward/backward. */
#ifndef CREMA_TESTS_LAYER_TESTING_H
#define CREMA_TESTS_LAYER_TESTING_H

#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "check.h"
#include "gradcheck.h"
#include "layers/layer.h"
#include "proto/proto_io.h"

/* A LayerParameter from text format; free with proto_free. NULL (and a
 * failed check) when the text does not parse. */
static inline Caffe__LayerParameter *lt_param(const char *text)
{
    ProtobufCMessage *m = NULL;
    int rc = proto_parse_text(&caffe__layer_parameter__descriptor, text, strlen(text), "test", &m);
    if (rc) {
        check_fail(__FILE__, __LINE__, "cannot parse layer text: %s", crema_errmsg());
        return NULL;
    }
    return (Caffe__LayerParameter *)m;
}

static inline void lt_free_param(Caffe__LayerParameter *p)
{
    if (p)
        proto_free(&p->base);
}

/* A tensor of the given axes (n sizes follow). */
static inline struct tensor *lt_tensor(int n, ...)
{
    int shape[TENSOR_MAX_AXES];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        shape[i] = va_arg(ap, int);
    va_end(ap);
    struct tensor *t = tensor_new();
    if (tensor_reshape(t, n, shape))
        check_fail(__FILE__, __LINE__, "tensor_reshape: %s", crema_errmsg());
    return t;
}

static inline void lt_set(struct tensor *t, const float *v)
{
    memcpy(tensor_data(t), v, t->count * sizeof(float));
}

static inline void lt_free(struct tensor **t, int n)
{
    for (int i = 0; i < n; i++)
        tensor_free(t[i]);
}

/* Checks a shape: n sizes follow. */
#define LT_SHAPE(t, ...) lt_check_shape(__FILE__, __LINE__, (t), (int[]){ __VA_ARGS__ }, \
                                        (int)(sizeof((int[]){ __VA_ARGS__ }) / sizeof(int)))
static inline void lt_check_shape(const char *file, int line, const struct tensor *t, const int *s, int n)
{
    bool ok = t->num_axes == n;
    for (int i = 0; ok && i < n; i++)
        ok = t->shape[i] == s[i];
    if (!ok) {
        char got[256];
        char want[256];
        size_t off = 0;
        want[0] = 0;
        for (int i = 0; i < n && off < sizeof want; i++)
            off += (size_t)snprintf(want + off, sizeof want - off, "%d ", s[i]);
        check_fail(file, line, "shape: expected %s, got %s", want, tensor_shape_string(t, got, sizeof got));
    }
}

/* Compares n floats with a tolerance; reports the first mismatch. */
#define LT_NEAR(got, want, n, tol) lt_check_near(__FILE__, __LINE__, (got), (want), (n), (tol))
static inline void lt_check_near(const char *file, int line, const float *got, const float *want, size_t n,
                                 double tol)
{
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)got[i] - (double)want[i]) <= tol) && !(isnan(got[i]) && isnan(want[i]))) {
            check_fail(file, line, "element %zu: expected %.9g, got %.9g", i, (double)want[i], (double)got[i]);
            return;
        }
}

/* Expects layer creation to fail with a message containing `part`. */
#define LT_CREATE_FAILS(param, bottom, nb, top, nt, part) \
    lt_create_fails(__FILE__, __LINE__, (param), (bottom), (nb), (top), (nt), (part))
static inline void lt_create_fails(const char *file, int line, const Caffe__LayerParameter *p,
                                   struct tensor **bottom, int nb, struct tensor **top, int nt, const char *part)
{
    struct layer *l = NULL;
    int rc = layer_create(p, CAFFE__PHASE__TRAIN, NULL, bottom, nb, top, nt, &l);
    if (rc == 0) {
        check_fail(file, line, "expected layer_create to fail with \"%s\"; it succeeded", part);
        layer_free(l);
    } else if (!strstr(crema_errmsg(), part)) {
        check_fail(file, line, "expected an error containing \"%s\", got \"%s\"", part, crema_errmsg());
    }
}

#endif
