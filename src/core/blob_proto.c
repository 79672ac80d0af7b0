/* BlobProto <-> tensor, with Caffe's legacy 4-D shapes. */
#include "core/blob_proto.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

int blob_proto_shape(const Caffe__BlobProto *bp, int *num_axes, int shape[TENSOR_MAX_AXES])
{
    if (bp->shape) {
        if (bp->shape->n_dim > TENSOR_MAX_AXES)
            return err_set(CREMA_ERR_SHAPE, "blob has %zu axes; at most %d are allowed",
                           bp->shape->n_dim, TENSOR_MAX_AXES);
        for (size_t i = 0; i < bp->shape->n_dim; i++) {
            int64_t d = bp->shape->dim[i];
            if (d < 0 || d > INT32_MAX)
                return err_set(CREMA_ERR_SHAPE, "blob axis %zu has size %lld", i, (long long)d);
            shape[i] = (int)d;
        }
        *num_axes = (int)bp->shape->n_dim;
        return CREMA_OK;
    }
    if (bp->has_num || bp->has_channels || bp->has_height || bp->has_width) {
        int v[4] = { bp->num, bp->channels, bp->height, bp->width };
        for (int i = 0; i < 4; i++) {
            if (v[i] < 0)
                return err_set(CREMA_ERR_SHAPE, "legacy blob dimension %d is %d", i, v[i]);
            shape[i] = v[i];
        }
        *num_axes = 4;
        return CREMA_OK;
    }
    /* No shape at all: Caffe treats it as a 0-axis blob only when it has one
     * value; otherwise a 1-D blob of its data. */
    size_t n = bp->n_data ? bp->n_data : bp->n_double_data;
    if (n == 1) {
        *num_axes = 0;
    } else {
        *num_axes = 4;
        shape[0] = shape[1] = shape[2] = shape[3] = 0;
    }
    return CREMA_OK;
}

int tensor_from_proto(struct tensor *t, const Caffe__BlobProto *bp, bool reshape)
{
    int na = 0, shape[TENSOR_MAX_AXES];
    int rc = blob_proto_shape(bp, &na, shape);
    if (rc)
        return rc;
    size_t count = 1;
    for (int i = 0; i < na; i++)
        count *= (size_t)shape[i];
    if (reshape) {
        rc = tensor_reshape(t, na, shape);
        if (rc)
            return rc;
    } else if (count != t->count) {
        return err_set(CREMA_ERR_SHAPE, "blob has %zu elements, expected %zu", count, t->count);
    }
    float *d = tensor_data(t);
    if (!d)
        return CREMA_ERR_NOMEM;
    if (bp->n_double_data) {
        if (bp->n_double_data != count)
            return err_set(CREMA_ERR_SHAPE, "blob declares %zu elements but holds %zu values", count,
                           bp->n_double_data);
        for (size_t i = 0; i < count; i++)
            d[i] = (float)bp->double_data[i];
    } else {
        if (bp->n_data != count)
            return err_set(CREMA_ERR_SHAPE, "blob declares %zu elements but holds %zu values", count,
                           bp->n_data);
        if (count)
            memcpy(d, bp->data, count * sizeof(float));
    }
    if (bp->n_double_diff || bp->n_diff) {
        float *g = tensor_diff(t);
        if (!g)
            return CREMA_ERR_NOMEM;
        if (bp->n_double_diff == count) {
            for (size_t i = 0; i < count; i++)
                g[i] = (float)bp->double_diff[i];
        } else if (bp->n_diff == count) {
            if (count)
                memcpy(g, bp->diff, count * sizeof(float));
        } else {
            return err_set(CREMA_ERR_SHAPE, "blob declares %zu elements but holds %zu diff values", count,
                           bp->n_diff ? bp->n_diff : bp->n_double_diff);
        }
    }
    return CREMA_OK;
}

int tensor_to_proto(struct tensor *t, Caffe__BlobProto *bp, bool write_diff)
{
    Caffe__BlobShape *s = malloc(sizeof *s);
    if (!s)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    caffe__blob_shape__init(s);
    s->n_dim = (size_t)t->num_axes;
    s->dim = calloc(s->n_dim ? s->n_dim : 1, sizeof(int64_t));
    bp->shape = s;
    if (!s->dim)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    for (int i = 0; i < t->num_axes; i++)
        s->dim[i] = t->shape[i];
    bp->n_data = t->count;
    bp->data = malloc((t->count ? t->count : 1) * sizeof(float));
    if (!bp->data || !tensor_data(t))
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    memcpy(bp->data, tensor_data(t), t->count * sizeof(float));
    if (write_diff) {
        bp->n_diff = t->count;
        bp->diff = malloc((t->count ? t->count : 1) * sizeof(float));
        if (!bp->diff || !tensor_diff(t))
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        memcpy(bp->diff, tensor_diff(t), t->count * sizeof(float));
    }
    return CREMA_OK;
}

void blob_proto_clear(Caffe__BlobProto *bp)
{
    if (bp->shape) {
        free(bp->shape->dim);
        free(bp->shape);
        bp->shape = NULL;
    }
    free(bp->data);
    free(bp->diff);
    bp->data = bp->diff = NULL;
    bp->n_data = bp->n_diff = 0;
}
