/* The CPU backend: the primitive table over host memory (OpenBLAS, crema's
 * threaded loops), and a mirror of it for tests. */
#ifndef CREMA_CPU_BACKEND_CPU_H
#define CREMA_CPU_BACKEND_CPU_H

#include "core/backend.h"

/* Computes on the host copies themselves: no device memory, no copies. */
extern const struct backend cpu_backend;

/* The same primitives over memory of its own: tensors keep a second copy
 * for it, moved only when one side asks, exactly as for a GPU. The device
 * paths of layers and solvers run here without a GPU, so the tests can
 * check them, and count the copies they cause. */
extern const struct backend cpu_mirror_backend;

/* The family tables (one file per family under src/cpu). */
extern const struct math_ops cpu_math_ops;
extern const struct solver_ops cpu_solver_ops;
extern const struct structure_ops cpu_structure_ops;
extern const struct recurrent_ops cpu_recurrent_ops;
extern const struct loss_ops cpu_loss_ops;
extern const struct vision_ops cpu_vision_ops;
extern const struct neuron_ops cpu_neuron_ops;
extern const struct norm_ops cpu_norm_ops;

#endif
