/* Caffe's Datum records: decoding with validation into planar pixels. */
#ifndef CREMA_DATA_DATUM_H
#define CREMA_DATA_DATUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "data/image.h"

/* One decoded record: channels x height x width values, either uint8 (raw
 * or decoded from an encoded image, BGR order for colour) or float
 * (Datum.float_data). Buffers are reused from one decode to the next. */
struct datum {
    int channels, height, width;
    int label;
    bool is_float;
    uint8_t *u8;
    float *f;
    size_t count, cap_u8, cap_f;
    bool was_encoded;
};

/* Decodes a serialized Datum. color chooses how encoded images are decoded
 * (Caffe's force_color / force_gray; native otherwise). where names the
 * record for messages ("DB key 00000012"). */
int datum_decode(const uint8_t *bytes, size_t len, enum image_color color, const char *where,
                 struct datum *out);
void datum_free(struct datum *d);

/* Serializes a Datum exactly as Caffe's C++ protobuf does: only the fields
 * Caffe set, in field-number order. A negative channels/height/width/encoded
 * means "not set" (convert_mnist never sets encoded; convert_imageset sets
 * encoded false on raw records; ReadFileToDatum sets no shape). *out malloc'd. */
int datum_pack(int channels, int height, int width, const uint8_t *data, size_t n, int label, int encoded,
               uint8_t **out, size_t *len);

#endif
