/* Choosing where nets compute, by name: the data that a solver_mode, a
 * -gpu flag or an API call becomes. */
#ifndef CREMA_NET_DEVICE_H
#define CREMA_NET_DEVICE_H

#include "core/backend.h"

#include <stdbool.h>
#include <stdio.h>

/* "cpu"; "gpu", "cuda" (GPU 0), "gpu:N", "cuda:N" or "N"; "cpu-mirror" (the
 * CPU table over memory of its own, for tests). Errors say why a GPU cannot
 * be had (no plugin, no driver, no such device). */
int device_open(const char *spec, const struct backend **out);

/* GPUs present (0 without a GPU, driver or plugin). */
int device_gpu_count(void);

/* Caffe's device_query lines for GPU id. */
int device_query(int id, FILE *out);

/* The arithmetic a backend computes in: "fp32" (what Caffe computes;
 * the default), "tf32" (TF32 tensor cores for GEMMs and convolutions, where
 * the backend has them). Errors name what the backend cannot do. */
int device_set_precision(const struct backend *be, const char *precision);

/* The CPU backend. */
const struct backend *device_cpu(void);

/* A -gpu value: "" (none), "all" (every GPU present) or a comma-separated
 * list of ids, into ids[0..*n) (at most max). Errors name the bad entry. */
int device_parse_gpus(const char *flag, int *ids, int max, int *n);

/* Where a command computes, as caffe.cpp decides it: an explicit -gpu
 * (gpu_flag non-empty) must be satisfied, or it is an error saying why; a
 * solver's `solver_mode: GPU` (mode_gpu) asks for GPU device_id and falls
 * back to the CPU with one warning line on log when there is no usable GPU;
 * otherwise the CPU. One device per process: with several ids, *out is the
 * first and *n_gpus says how many were asked for. */
int device_choose(const char *gpu_flag, bool mode_gpu, int device_id, FILE *log, const struct backend **out,
                  int *n_gpus);

#endif
