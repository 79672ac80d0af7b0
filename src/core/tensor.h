/* N-D tensors (Caffe's Blob): a shape, and data and diff buffers that know
 * their device. Buffers are reference-counted so that layers can share them
 * (Flatten, Reshape, Split, shared parameters) as Caffe's ShareData does, and
 * are allocated (zeroed) on first access, as Caffe's SyncedMemory is. */
#ifndef CREMA_CORE_TENSOR_H
#define CREMA_CORE_TENSOR_H

#include <stdbool.h>
#include <stddef.h>

#define TENSOR_MAX_AXES 32

enum device { DEVICE_CPU = 0, DEVICE_CUDA = 1 };

struct tensor_buf {
    float *ptr;        /* NULL until first access */
    size_t capacity;   /* in floats */
    int refs;
    enum device device;
};

struct tensor {
    int num_axes;
    int shape[TENSOR_MAX_AXES];
    size_t count;
    struct tensor_buf *data_buf;
    struct tensor_buf *diff_buf;
    enum device device;
};

struct tensor *tensor_new(void);
void tensor_free(struct tensor *t);

/* Caffe's Blob::Reshape: keeps the buffers when they are big enough. */
int tensor_reshape(struct tensor *t, int num_axes, const int *shape);
int tensor_reshape_like(struct tensor *t, const struct tensor *other);
int tensor_reshape4(struct tensor *t, int n, int c, int h, int w);

/* Data and diff for reading and writing; allocated and zeroed when first
 * touched. NULL only when allocation fails (err_msg says so) or count is 0
 * (then a valid pointer to a 1-float buffer is still returned). */
float *tensor_data(struct tensor *t);
float *tensor_diff(struct tensor *t);

/* Share the other tensor's data (or diff) buffer: Caffe's ShareData/ShareDiff.
 * The counts must match. */
int tensor_share_data(struct tensor *t, const struct tensor *other);
int tensor_share_diff(struct tensor *t, const struct tensor *other);

/* Axis helpers, as Blob's: negative axes count from the end. */
int tensor_canonical_axis(const struct tensor *t, int axis); /* -1 if out of range */
int tensor_dim(const struct tensor *t, int axis);            /* shape[canonical] */
size_t tensor_count_range(const struct tensor *t, int start, int end); /* product of shape[start..end) */
/* Blob::LegacyShape: index 0..3 of num/channels/height/width, 1 past the axes. */
int tensor_legacy_dim(const struct tensor *t, int index);
bool tensor_shape_equals(const struct tensor *a, const struct tensor *b);
/* "2 3 4 5 (120)" into buf. */
const char *tensor_shape_string(const struct tensor *t, char *buf, size_t n);

void tensor_zero_diff(struct tensor *t);
void tensor_zero_data(struct tensor *t);
/* Copy shape and data (and diff when with_diff) from other. */
int tensor_copy_from(struct tensor *t, const struct tensor *other, bool with_diff);

#endif
