/* Choosing where nets compute, by name: the data that a solver_mode, a
 * -gpu flag or an API call becomes. */
#ifndef CREMA_NET_DEVICE_H
#define CREMA_NET_DEVICE_H

#include "core/backend.h"

/* "cpu"; "gpu", "cuda" (GPU 0), "gpu:N", "cuda:N" or "N"; "cpu-mirror" (the
 * CPU table over memory of its own, for tests). Errors say why a GPU cannot
 * be had (no plugin, no driver, no such device). */
int device_open(const char *spec, const struct backend **out);

/* The CPU backend. */
const struct backend *device_cpu(void);

#endif
