/* N-D tensors (Caffe's Blob): a shape, and data and diff buffers.
 * Buffers are reference-counted so that layers can share them (Flatten,
 * Reshape, Split, shared parameters) as Caffe's ShareData does. Each buffer
 * is Caffe's SyncedMemory: a host copy and, once a device backend asks for
 * it, a device copy; it knows which copy is current and copies only when the
 * other side asks (lazily, and counted: tensor_transfers). Memory is
 * allocated, zeroed, on first access. */
#ifndef CREMA_CORE_TENSOR_H
#define CREMA_CORE_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/backend.h"

#define TENSOR_MAX_AXES 32

/* Where a buffer's current values are (Caffe's SyncedMemory::head). */
enum tensor_head { TENSOR_UNINIT = 0, TENSOR_AT_HOST, TENSOR_AT_DEVICE, TENSOR_SYNCED };

struct tensor_buf {
    float *host;               /* NULL until the host side is asked for */
    void *dev;                 /* NULL until a device backend asks */
    const struct backend *be;  /* the backend that owns dev */
    size_t capacity;           /* in floats */
    int refs;
    enum tensor_head head;
};

struct tensor {
    int num_axes;
    int shape[TENSOR_MAX_AXES];
    size_t count;
    struct tensor_buf *data_buf;
    struct tensor_buf *diff_buf;
};

struct tensor *tensor_new(void);
void tensor_free(struct tensor *t);

/* Caffe's Blob::Reshape: keeps the buffers when they are big enough. */
int tensor_reshape(struct tensor *t, int num_axes, const int *shape);
int tensor_reshape_like(struct tensor *t, const struct tensor *other);
int tensor_reshape4(struct tensor *t, int n, int c, int h, int w);

/* Host data and diff for reading and writing: the host copy becomes the
 * current one (a device copy is fetched first when it was newer). Allocated
 * and zeroed when first touched. NULL only when allocation or a copy fails
 * (err_msg says so); a count of 0 still gives a valid 1-float buffer. */
float *tensor_data(struct tensor *t);
float *tensor_diff(struct tensor *t);
/* Host copies for reading only: a newer device copy is fetched, and both
 * copies stay current. */
const float *tensor_cdata(struct tensor *t);
const float *tensor_cdiff(struct tensor *t);

/* The same on backend `be`: its memory when it has its own, else the host
 * copy (the CPU backend: nothing is copied). A layer or solver computing on
 * `be` asks for its pointers here. The _c forms are for reading only. */
float *tensor_data_on(struct tensor *t, const struct backend *be);
float *tensor_diff_on(struct tensor *t, const struct backend *be);
const float *tensor_cdata_on(struct tensor *t, const struct backend *be);
const float *tensor_cdiff_on(struct tensor *t, const struct backend *be);

/* Where the current data is: a device backend, or NULL for the host. */
const struct backend *tensor_data_backend(const struct tensor *t);

/* Every host <-> device copy the tensors of this process made (the
 * counters are atomic: the prefetch threads copy too). */
struct tensor_transfers {
    uint64_t to_device, to_host;
    uint64_t bytes_to_device, bytes_to_host;
};
void tensor_transfers(struct tensor_transfers *out);

/* Makes sure the tensor has its buffers (not their memory): what sharing
 * needs, without touching either copy. */
int tensor_ensure_buffers(struct tensor *t);
/* Both buffers of other become t's (ShareData + ShareDiff), no copy made. */
int tensor_share_both(struct tensor *t, struct tensor *other);

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
/* Zeroes on `be` (no copy: the other side is simply out of date). */
int tensor_zero_diff_on(struct tensor *t, const struct backend *be);
int tensor_zero_data_on(struct tensor *t, const struct backend *be);
/* Copy shape and data (and diff when with_diff) from other. */
int tensor_copy_from(struct tensor *t, const struct tensor *other, bool with_diff);

#endif
