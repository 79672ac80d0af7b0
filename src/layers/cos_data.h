/* CaffeOnSpark's data feeding: the CoSData layer (DataFrame columns handed
 * in through the C API) and images fed to MemoryData layers. */
#ifndef CREMA_LAYERS_COS_DATA_H
#define CREMA_LAYERS_COS_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "layers/layer.h"

extern const struct layer_kind cos_data_layer;

/* Feeds top `top` of a CoSData layer n samples (a positive multiple of
 * batch_size); the following forwards hand out batch_size at a time,
 * wrapping around. For the STRING, INT, FLOAT, INT_ARRAY and FLOAT_ARRAY
 * types, data is n x (sample size) floats (the caller converts the column)
 * and lengths is NULL. For RAW_IMAGE, data is n images of channels x height
 * x width uint8 in Caffe's planar order, lengths NULL; for ENCODED_IMAGE and
 * ENCODED_IMAGE_WITH_DIM, data is the n JPEG/PNG files one after another and
 * lengths[i] the size of file i. Images are decoded, resized to the top's
 * height x width when both are given, then transformed by the top's
 * transform_param. */
int cos_data_feed(struct layer *l, int top, const void *data, const size_t *lengths, int n);

/* The DataType and sample size (floats) of a top; -1 when there is none. */
int cos_data_top_type(const struct layer *l, int top);
long cos_data_top_size(const struct layer *l, int top);

/* Feeds a MemoryData layer n images (a multiple of its batch_size) and n
 * labels: raw channels x height x width uint8 (lengths NULL) or encoded
 * files (lengths given; channels 1 decodes gray, 3 colour, 0 as stored;
 * height and width > 0 resize). The layer's transform_param is applied, as
 * CaffeOnSpark's image sources do before they reset the layer. */
int memory_data_feed_images(struct layer *l, const uint8_t *data, const size_t *lengths, int n, int channels,
                            int height, int width, const float *labels);

#endif
