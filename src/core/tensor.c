/* Tensors: shape bookkeeping and lazily allocated, shareable buffers. */
#include "core/tensor.h"
#include "util/err.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every copy the buffers make, for tensor_transfers. */
static _Atomic uint64_t n_to_device, n_to_host, bytes_to_device, bytes_to_host;

void tensor_transfers(struct tensor_transfers *out)
{
    out->to_device = n_to_device;
    out->to_host = n_to_host;
    out->bytes_to_device = bytes_to_device;
    out->bytes_to_host = bytes_to_host;
}

static struct tensor_buf *buf_new(size_t capacity)
{
    struct tensor_buf *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->capacity = capacity;
    b->refs = 1;
    return b;
}

static void buf_release(struct tensor_buf *b)
{
    if (b && --b->refs == 0) {
        free(b->host);
        if (b->dev)
            b->be->free(b->be, b->dev);
        free(b);
    }
}

static size_t buf_bytes(const struct tensor_buf *b)
{
    return (b->capacity ? b->capacity : 1) * sizeof(float);
}

static int buf_alloc_host(struct tensor_buf *b)
{
    if (!b->host) {
        size_t n = b->capacity ? b->capacity : 1;
        b->host = calloc(n, sizeof(float));
        if (!b->host)
            return err_set(CREMA_ERR_NOMEM, "cannot allocate a tensor of %zu floats", n);
    }
    return CREMA_OK;
}

static int buf_alloc_dev(struct tensor_buf *b, const struct backend *be)
{
    if (b->dev && b->be != be)
        return err_set(CREMA_ERR_INVALID, "a tensor on %s was asked for on %s", b->be->name, be->name);
    if (!b->dev) {
        b->dev = be->alloc(be, buf_bytes(b));
        if (!b->dev)
            return err_prefix(CREMA_ERR_NOMEM, "a tensor of %zu floats on %s", b->capacity, be->name);
        b->be = be;
    }
    return CREMA_OK;
}

/* Caffe's SyncedMemory::to_cpu: the host copy, current. */
static int buf_to_host(struct tensor_buf *b)
{
    int rc = buf_alloc_host(b);
    if (rc)
        return rc;
    if (b->head == TENSOR_AT_DEVICE) {
        if ((rc = b->be->download(b->be, b->host, b->dev, buf_bytes(b))))
            return rc;
        n_to_host++;
        bytes_to_host += buf_bytes(b);
        b->head = TENSOR_SYNCED;
    } else if (b->head == TENSOR_UNINIT) {
        b->head = TENSOR_AT_HOST;
    }
    return CREMA_OK;
}

/* SyncedMemory::to_gpu: the copy on be, current. */
static int buf_to_dev(struct tensor_buf *b, const struct backend *be)
{
    int rc = buf_alloc_dev(b, be);
    if (rc)
        return rc;
    if (b->head == TENSOR_AT_HOST) {
        if ((rc = be->upload(be, b->dev, b->host, buf_bytes(b))))
            return rc;
        n_to_device++;
        bytes_to_device += buf_bytes(b);
        b->head = TENSOR_SYNCED;
    } else if (b->head == TENSOR_UNINIT) {
        b->head = TENSOR_AT_DEVICE; /* alloc zeroed it */
    }
    return CREMA_OK;
}

static float *buf_host(struct tensor_buf *b, bool write)
{
    if (buf_to_host(b))
        return NULL;
    if (write)
        b->head = TENSOR_AT_HOST;
    return b->host;
}

static float *buf_on(struct tensor_buf *b, const struct backend *be, bool write)
{
    if (be->host_memory)
        return buf_host(b, write);
    if (buf_to_dev(b, be))
        return NULL;
    if (write)
        b->head = TENSOR_AT_DEVICE;
    return b->dev;
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
        /* As Caffe's Blob::Reshape: layers index a tensor with int. */
        if (shape[i] != 0 && count > (size_t)INT_MAX / (size_t)shape[i])
            return err_set(CREMA_ERR_SHAPE, "a tensor of more than %d elements (INT_MAX): axis %d of size %d "
                           "after %zu elements", INT_MAX, i, shape[i], count);
        count *= (size_t)shape[i];
    }
    t->num_axes = num_axes;
    for (int i = 0; i < num_axes; i++)
        t->shape[i] = shape[i];
    t->count = count;
    if (!t->data_buf || count > t->data_buf->capacity) {
        buf_release(t->data_buf);
        buf_release(t->diff_buf);
        t->data_buf = buf_new(count);
        t->diff_buf = buf_new(count);
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

/* The buffers exist once the tensor has a shape (a tensor never reshaped
 * gets its 0-axis, 1-element ones here). */
static int tensor_bufs(struct tensor *t)
{
    if (!t->data_buf || !t->diff_buf)
        return tensor_reshape(t, t->num_axes, t->shape);
    return CREMA_OK;
}

float *tensor_data(struct tensor *t)
{
    return tensor_bufs(t) ? NULL : buf_host(t->data_buf, true);
}

float *tensor_diff(struct tensor *t)
{
    return tensor_bufs(t) ? NULL : buf_host(t->diff_buf, true);
}

const float *tensor_cdata(struct tensor *t)
{
    return tensor_bufs(t) ? NULL : buf_host(t->data_buf, false);
}

const float *tensor_cdiff(struct tensor *t)
{
    return tensor_bufs(t) ? NULL : buf_host(t->diff_buf, false);
}

float *tensor_data_on(struct tensor *t, const struct backend *be)
{
    return tensor_bufs(t) ? NULL : buf_on(t->data_buf, be, true);
}

float *tensor_diff_on(struct tensor *t, const struct backend *be)
{
    return tensor_bufs(t) ? NULL : buf_on(t->diff_buf, be, true);
}

const float *tensor_cdata_on(struct tensor *t, const struct backend *be)
{
    return tensor_bufs(t) ? NULL : buf_on(t->data_buf, be, false);
}

const float *tensor_cdiff_on(struct tensor *t, const struct backend *be)
{
    return tensor_bufs(t) ? NULL : buf_on(t->diff_buf, be, false);
}

const struct backend *tensor_data_backend(const struct tensor *t)
{
    const struct tensor_buf *b = t->data_buf;
    return b && b->head == TENSOR_AT_DEVICE ? b->be : NULL;
}

int tensor_ensure_buffers(struct tensor *t)
{
    return tensor_bufs(t);
}

int tensor_share_both(struct tensor *t, struct tensor *other)
{
    int rc = tensor_bufs(other);
    if (!rc)
        rc = tensor_share_data(t, other);
    return rc ? rc : tensor_share_diff(t, other);
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

/* Zeroes b on be without fetching the other copy first. */
static int buf_zero_on(struct tensor_buf *b, size_t count, const struct backend *be)
{
    int rc;
    if (be->host_memory) {
        if ((rc = buf_alloc_host(b)))
            return rc;
        memset(b->host, 0, count * sizeof(float));
        b->head = TENSOR_AT_HOST;
        return CREMA_OK;
    }
    if ((rc = buf_alloc_dev(b, be)))
        return rc;
    be->math->set(be, count, 0.f, b->dev);
    b->head = TENSOR_AT_DEVICE;
    return CREMA_OK;
}

int tensor_zero_diff_on(struct tensor *t, const struct backend *be)
{
    int rc = tensor_bufs(t);
    return rc ? rc : buf_zero_on(t->diff_buf, t->count, be);
}

int tensor_zero_data_on(struct tensor *t, const struct backend *be)
{
    int rc = tensor_bufs(t);
    return rc ? rc : buf_zero_on(t->data_buf, t->count, be);
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
    float *dst = tensor_data(t);
    const float *src = tensor_cdata(o);
    if (!dst || !src)
        return CREMA_ERR_NOMEM;
    memcpy(dst, src, t->count * sizeof(float));
    if (with_diff) {
        dst = tensor_diff(t);
        src = tensor_cdiff(o);
        if (!dst || !src)
            return CREMA_ERR_NOMEM;
        memcpy(dst, src, t->count * sizeof(float));
    }
    return CREMA_OK;
}
