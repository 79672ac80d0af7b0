/* Marks a small inline function that the CPU backend (C) and the CUDA
 * plugin (device code) share, so the two compute it from one definition. */
#ifndef CREMA_CORE_HOSTDEV_H
#define CREMA_CORE_HOSTDEV_H

#ifdef __CUDACC__
#define CREMA_HOST_DEVICE __host__ __device__
#else
#define CREMA_HOST_DEVICE
#endif

#endif
