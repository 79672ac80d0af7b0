/* What the input layers offer beyond the layer contract: feeding a
 * MemoryData layer (Caffe's MemoryDataLayer::Reset). */
#ifndef CREMA_LAYERS_INPUT_H
#define CREMA_LAYERS_INPUT_H

#include "layers/layer.h"

extern const struct layer_kind memory_data_layer;

/* Copies n items (n * channels * height * width floats) and n labels; the
 * following forwards hand out batch_size items at a time, wrapping around.
 * n must be a positive multiple of batch_size. */
int memory_data_reset(struct layer *l, const float *data, const float *labels, int n);

#endif
