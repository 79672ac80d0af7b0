/* Opening NVIDIA GPUs: loads the CUDA plugin (libcrema_cuda.so) on first
 * use. Without the plugin, CUDA's libraries or a device, each call fails
 * with a message saying which, never a crash. */
#ifndef CREMA_CUDA_CUDA_BACKEND_H
#define CREMA_CUDA_CUDA_BACKEND_H

#include <stdio.h>

#include "core/backend.h"

/* GPUs present; 0 (and CREMA_OK) when there are none or no plugin. */
int cuda_device_count(int *n);
/* The backend of GPU `id`. */
int cuda_backend_open(int id, const struct backend **out);
/* Prints Caffe's device_query lines for GPU `id`. */
int cuda_device_query(int id, FILE *out);

#endif
