/* Exporting a built net, with its weights, as an ONNX model: one mapping
 * per Caffe layer type, Caffe's semantics kept where ONNX's differ, and a
 * layer without an ONNX equivalent refused by name with the reason. */
#ifndef CREMA_API_ONNX_EXPORT_H
#define CREMA_API_ONNX_EXPORT_H

#include <stdbool.h>
#include <stdio.h>

struct net;

/* The opsets crema writes (ONNX Runtime, TensorRT and OpenVINO read 17). */
#define ONNX_OPSET_MIN 13
#define ONNX_OPSET_MAX 21
#define ONNX_OPSET_DEFAULT 17

struct onnx_export_options {
    int opset;        /* 0: ONNX_OPSET_DEFAULT */
    bool fixed_batch; /* false: axis 0 of every input is the symbolic batch "N" */
    FILE *log;        /* one line per layer folded into another, or NULL */
};

/* Writes the net as it is now (its current input shapes, its weights) to
 * path, atomically. A layer that cannot be exported fails the whole export
 * with CREMA_ERR_UNSUPPORTED and a message naming the layer and why. */
int onnx_export_net(struct net *net, const char *path, const struct onnx_export_options *opt);

#endif
