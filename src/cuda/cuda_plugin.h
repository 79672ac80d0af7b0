/* The CUDA backend is a plugin, libcrema_cuda.so, loaded at run time when a
 * GPU is asked for (cuda_loader.c), so that libcrema, the command line and
 * the Python wheel start and run without CUDA's libraries. This header is
 * the contract between the two: the one symbol the plugin exports and the
 * table it returns. Both sides are built from the same tree; `abi` guards
 * against mixing builds. */
#ifndef CREMA_CUDA_CUDA_PLUGIN_H
#define CREMA_CUDA_CUDA_PLUGIN_H

#include <stddef.h>
#include <stdio.h>

#include "core/backend.h"

/* Changes whenever struct backend or a family table changes shape. */
#define CUDA_PLUGIN_ABI 1

/* What the plugin may call in the library that loaded it. */
struct cuda_host {
    /* util/err.h's err_set: the plugin's errors reach crema_errmsg(). */
    int (*err_set)(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
};

struct cuda_plugin {
    int abi;
    size_t backend_size; /* sizeof(struct backend) where the plugin was built */
    /* Devices the driver sees (0 when none: not an error). */
    int (*device_count)(int *n);
    /* The backend of device `id`, made on first use and kept for the life
     * of the process (every net on that device shares it). */
    int (*open)(int id, const struct backend **out);
    /* Caffe's `caffe device_query` lines for device `id`. */
    int (*query)(int id, FILE *out);
};

/* The plugin's one exported function. */
typedef const struct cuda_plugin *(*cuda_plugin_entry_fn)(const struct cuda_host *host);
#define CUDA_PLUGIN_ENTRY "crema_cuda_plugin"

#endif
