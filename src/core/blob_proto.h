/* Between tensors and Caffe's BlobProto (shape or legacy num/channels/
 * height/width; float or double data). */
#ifndef CREMA_NET_BLOB_PROTO_H
#define CREMA_NET_BLOB_PROTO_H

#include <stdbool.h>

#include "caffe.pb-c.h"
#include "core/tensor.h"

/* The shape a BlobProto declares: its `shape`, else the legacy 4-D fields. */
int blob_proto_shape(const Caffe__BlobProto *bp, int *num_axes, int shape[TENSOR_MAX_AXES]);

/* Reshape t to the proto's shape (when reshape) or check the counts agree
 * (Caffe's FromProto), then copy data, and diff when present. */
int tensor_from_proto(struct tensor *t, const Caffe__BlobProto *bp, bool reshape);

/* Fill bp (initialised by the caller) with t's shape, data and, when
 * write_diff, its diff. Allocates the arrays; free with blob_proto_clear. */
int tensor_to_proto(struct tensor *t, Caffe__BlobProto *bp, bool write_diff);
void blob_proto_clear(Caffe__BlobProto *bp);

#endif
