/* Tensors: shape bookkeeping and lazily allocated, shareable buffers. */
#include "core/tensor.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct tensor_buf *buf_new(size_t capacity, enum device dev)
{
    struct tensor_buf *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->capacity = capacity;
    b->refs = 1;
    b->device = dev;
    return b;
}

static void buf_release(struct tensor_buf *b)
{
    if (b && --b->refs == 0) {
        free(b->ptr);
        free(b);
    }
}

static float *buf_ptr(struct tensor_buf *b)
{
    if (!b->ptr) {
        size_t n = b->capacity ? b->capacity : 1;
        b->ptr = calloc(n, sizeof(float));
        if (!b->ptr)
            err_set(CREMA_ERR_NOMEM, "cannot allocate a tensor of %zu floats", n);
    }
    return b->ptr;
}

struct tensor *tensor_new(void)
{
    struct tensor *t = calloc(1, sizeof *t);
    return t;
}

void tensor_free(struct tensor *t)
{
    if (!t)
        return;
    buf_release(t->data_buf);
    buf_release(t->diff_buf);
    free(t);
}

int tensor_reshape(struct tensor *t, int num_axes, const int *shape)
{
    if (num_axes < 0 || num_axes > TENSOR_MAX_AXES)
        return err_set(CREMA_ERR_SHAPE, "a tensor has at most %d axes, not %d", TENSOR_MAX_AXES, num_axes);
    size_t count = 1;
    for (int i = 0; i < num_axes; i++) {
        if (shape[i] < 0)
            return err_set(CREMA_ERR_SHAPE, "axis %d has negative size %d", i, shape[i]);
        if (shape[i] != 0 && count > ((size_t)1 << 40) / (size_t)shape[i])
            return err_set(CREMA_ERR_SHAPE, "tensor of more than 2^40 elements");
        count *= (size_t)shape[i];
    }
    t->num_axes = num_axes;
    for (int i = 0; i < num_axes; i++)
        t->shape[i] = shape[i];
    t->count = count;
    if (!t->data_buf || count > t->data_buf->capacity) {
        buf_release(t->data_buf);
        buf_release(t->diff_buf);
        t->data_buf = buf_new(count, t->device);
        t->diff_buf = buf_new(count, t->device);
        if (!t->data_buf || !t->diff_buf)
            return err_set(CREMA_ERR_NOMEM, "out of memory");
    }
    return CREMA_OK;
}

int tensor_reshape_like(struct tensor *t, const struct tensor *other)
{
    return tensor_reshape(t, other->num_axes, other->shape);
}

int tensor_reshape4(struct tensor *t, int n, int c, int h, int w)
{
    int s[4] = { n, c, h, w };
    return tensor_reshape(t, 4, s);
}

float *tensor_data(struct tensor *t)
{
    if (!t->data_buf && tensor_reshape(t, t->num_axes, t->shape) != CREMA_OK)
        return NULL;
    return buf_ptr(t->data_buf);
}

float *tensor_diff(struct tensor *t)
{
    if (!t->diff_buf && tensor_reshape(t, t->num_axes, t->shape) != CREMA_OK)
        return NULL;
    return buf_ptr(t->diff_buf);
}

int tensor_share_data(struct tensor *t, const struct tensor *other)
{
    if (t->count != other->count)
        return err_set(CREMA_ERR_SHAPE, "cannot share data between tensors of %zu and %zu elements",
                       t->count, other->count);
    other->data_buf->refs++;
    buf_release(t->data_buf);
    t->data_buf = other->data_buf;
    return CREMA_OK;
}

int tensor_share_diff(struct tensor *t, const struct tensor *other)
{
    if (t->count != other->count)
        return err_set(CREMA_ERR_SHAPE, "cannot share diff between tensors of %zu and %zu elements",
                       t->count, other->count);
    other->diff_buf->refs++;
    buf_release(t->diff_buf);
    t->diff_buf = other->diff_buf;
    return CREMA_OK;
}

int tensor_canonical_axis(const struct tensor *t, int axis)
{
    if (axis < -t->num_axes || axis >= t->num_axes)
        return -1;
    return axis < 0 ? axis + t->num_axes : axis;
}

int tensor_dim(const struct tensor *t, int axis)
{
    int a = tensor_canonical_axis(t, axis);
    return a < 0 ? 0 : t->shape[a];
}

size_t tensor_count_range(const struct tensor *t, int start, int end)
{
    size_t c = 1;
    for (int i = start; i < end && i < t->num_axes; i++)
        c *= (size_t)t->shape[i];
    return c;
}

int tensor_legacy_dim(const struct tensor *t, int index)
{
    if (index >= t->num_axes || index < -t->num_axes)
        return 1;
    return tensor_dim(t, index);
}

bool tensor_shape_equals(const struct tensor *a, const struct tensor *b)
{
    if (a->num_axes != b->num_axes)
        return false;
    for (int i = 0; i < a->num_axes; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

const char *tensor_shape_string(const struct tensor *t, char *buf, size_t n)
{
    size_t off = 0;
    buf[0] = 0;
    for (int i = 0; i < t->num_axes && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, "%d ", t->shape[i]);
    if (off < n)
        snprintf(buf + off, n - off, "(%zu)", t->count);
    return buf;
}

void tensor_zero_diff(struct tensor *t)
{
    float *d = tensor_diff(t);
    if (d)
        memset(d, 0, t->count * sizeof(float));
}

void tensor_zero_data(struct tensor *t)
{
    float *d = tensor_data(t);
    if (d)
        memset(d, 0, t->count * sizeof(float));
}

int tensor_copy_from(struct tensor *t, const struct tensor *other, bool with_diff)
{
    int rc = tensor_reshape_like(t, other);
    if (rc)
        return rc;
    struct tensor *o = (struct tensor *)other;
    float *dst = tensor_data(t), *src = tensor_data(o);
    if (!dst || !src)
        return CREMA_ERR_NOMEM;
    memcpy(dst, src, t->count * sizeof(float));
    if (with_diff) {
        dst = tensor_diff(t);
        src = tensor_diff(o);
        if (!dst || !src)
            return CREMA_ERR_NOMEM;
        memcpy(dst, src, t->count * sizeof(float));
    }
    return CREMA_OK;
}
