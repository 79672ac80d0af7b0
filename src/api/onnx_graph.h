/* Building an ONNX graph (src/proto/onnx.proto) node by node and writing it
 * as a ModelProto: unique value names, attributes, initializers that point
 * into the net's own buffers. Errors are sticky: after the first failure
 * every call does nothing and returns NULL, and og_status() says why. */
#ifndef CREMA_API_ONNX_GRAPH_H
#define CREMA_API_ONNX_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "onnx.pb-c.h"

struct og;

struct og *og_new(void);
void og_free(struct og *g);
/* CREMA_OK, or the status of the first failure (crema_errmsg() has it). */
int og_status(const struct og *g);
/* Records a failure (status and message as err_set) unless one is already
 * recorded; returns the recorded status. */
int og_fail(struct og *g, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A copy of the formatted string that lives as long as g. */
char *og_str(struct og *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* n zeroed floats that live as long as g (values for an initializer). */
float *og_floats(struct og *g, size_t n);
/* Claims `name` for a value; false when it is taken already. */
bool og_claim(struct og *g, const char *name);
/* A value name not yet taken: the formatted name, or it with _2, _3, ...
 * appended; claimed before it is returned. */
const char *og_unique(struct og *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends a node; inputs may be "" (an omitted optional input). */
Onnx__NodeProto *og_node(struct og *g, const char *op, const char *name, int n_in, const char *const *in,
                         int n_out, const char *const *out);
void og_attr_int(struct og *g, Onnx__NodeProto *n, const char *name, int64_t v);
void og_attr_float(struct og *g, Onnx__NodeProto *n, const char *name, float v);
void og_attr_ints(struct og *g, Onnx__NodeProto *n, const char *name, int count, const int64_t *v);

/* Float initializer `name` (already claimed by the caller) of the given
 * shape; data is used in place (it must outlive og_write) unless copy. */
const char *og_init_float(struct og *g, const char *name, int ndims, const int64_t *dims, const float *data,
                          bool copy);
/* A 1-D int64 initializer (copied) under a unique name made from `base`. */
const char *og_const_ints(struct og *g, const char *base, int count, const int64_t *v);
/* A 0-D float initializer under a unique name made from `base`. */
const char *og_const_float(struct og *g, const char *base, float v);

/* Graph inputs and outputs: float tensors; dims[i] < 0 is the symbolic
 * dimension params[i] (or an unnamed one when params or params[i] is NULL). */
void og_input(struct og *g, const char *name, int ndims, const int64_t *dims, const char *const *params);
void og_output(struct og *g, const char *name, int ndims, const int64_t *dims, const char *const *params);

/* Packs the model (ir_version, the default-domain opset, producer crema)
 * and writes it atomically to path. */
int og_write(struct og *g, const char *path, const char *graph_name, const char *doc, int64_t ir_version,
             int64_t opset);

#endif
