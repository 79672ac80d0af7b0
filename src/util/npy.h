/* numpy's .npy format: float32 little-endian, C order, any number of axes.
 * Readers also accept float64 and integer arrays, converted to float. */
#ifndef CREMA_UTIL_NPY_H
#define CREMA_UTIL_NPY_H

#include <stddef.h>

#define NPY_MAX_AXES 32

struct npy_array {
    int num_axes;
    int shape[NPY_MAX_AXES];
    size_t count;
    float *data; /* malloc'd */
};

int npy_read(const char *path, struct npy_array *out);
/* Parses an in-memory .npy image (path only names it in messages). */
int npy_parse(const char *path, const unsigned char *buf, size_t len, struct npy_array *out);
int npy_write(const char *path, int num_axes, const int *shape, const float *data);
void npy_free(struct npy_array *a);

#endif
