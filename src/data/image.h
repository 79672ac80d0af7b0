/* Images for the data module: JPEG/PNG decoding and encoding (libjpeg-turbo,
 * libpng) and bilinear resizing, on planar CHW uint8 pixels in BGR channel
 * order, which is what Caffe gets from OpenCV's imdecode. */
#ifndef CREMA_DATA_IMAGE_H
#define CREMA_DATA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* How to decode, as OpenCV's flags: keep the file's colour (gray stays one
 * channel, anything else becomes BGR), force 3-channel BGR, force gray. */
enum image_color { IMAGE_NATIVE = 0, IMAGE_COLOR = 1, IMAGE_GRAY = 2 };

struct image {
    int channels, height, width;
    uint8_t *data; /* channels x height x width, malloc'd */
};

/* Largest image side accepted (guards allocations on hostile input). */
#define IMAGE_MAX_SIDE 65535
#define IMAGE_MAX_PIXELS ((size_t)1 << 28)

/* Decodes JPEG or PNG bytes (detected by signature). Errors never exit the
 * process; the message says what is wrong with the image. */
int image_decode(const uint8_t *bytes, size_t len, enum image_color color, struct image *out);
/* Reads and decodes a file. */
int image_read(const char *path, enum image_color color, struct image *out);
/* Encodes as "jpg" (quality 95, OpenCV's default) or "png". *out malloc'd. */
int image_encode(const struct image *img, const char *type, uint8_t **out, size_t *len);
/* Bilinear resize with pixel centres aligned (OpenCV's INTER_LINEAR). */
int image_resize(const struct image *in, int height, int width, struct image *out);
void image_free(struct image *img);

#endif
