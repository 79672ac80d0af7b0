/* What every file of the CUDA plugin shares: the device context behind a
 * backend, error recording, and launch helpers. Plugin-private. */
#ifndef CREMA_CUDA_COMMON_CUH
#define CREMA_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <stddef.h>

#include "core/backend.h"
#include "cuda/cuda_plugin.h"

/* crema's status codes (include/crema.h), which the plugin does not include. */
enum {
    CUDA_OK = 0,
    CUDA_ERR_INVALID = 3,
    CUDA_ERR_UNSUPPORTED = 5,
    CUDA_ERR_NOMEM = 6,
    CUDA_ERR_DEVICE = 10,
};

/* One per device, for the life of the process. */
struct cuda_ctx {
    int device;
    char name[32];
    cudaStream_t stream; /* every kernel and copy of this backend, in order */
    cudaStream_t side;   /* the prefetch threads' uploads */
    cublasHandle_t blas;
    cudnnHandle_t dnn;
    bool tf32;           /* TF32 tensor cores for GEMM and convolution */
    int error;           /* the first failure (sticky until sync/status reports it) */
    /* A scratch area any family may use between two launches on the
     * stream (cuDNN workspaces, reduction partials); grown, never shrunk. */
    void *scratch;
    size_t scratch_bytes;
    size_t in_use, peak; /* bytes allocated through the backend (alloc/free) */
};

#define CUDA_CTX(be) ((struct cuda_ctx *)(be)->ctx)

/* The loader's functions (err_set), given to the plugin at load. */
extern const struct cuda_host *cuda_host_api;

/* Records a failure on the backend (the first one sticks) and sets crema's
 * message; returns code. */
int cuda_fail(const struct backend *be, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Checks a runtime call / cuBLAS / cuDNN status; records and returns a
 * crema status. `what` names the call. */
int cuda_check(const struct backend *be, cudaError_t e, const char *what);
int cublas_check(const struct backend *be, cublasStatus_t s, const char *what);
int cudnn_check(const struct backend *be, cudnnStatus_t s, const char *what);
/* After a kernel launch: records a launch error. */
#define CUDA_LAUNCHED(be, what) cuda_check((be), cudaGetLastError(), (what))

/* At least `bytes` of scratch on the device; NULL (recorded) on failure. */
void *cuda_scratch(const struct backend *be, size_t bytes);

#define CUDA_THREADS 256
/* Blocks for n elements, one thread each, capped (kernels loop). */
static inline unsigned cuda_blocks(size_t n)
{
    size_t b = (n + CUDA_THREADS - 1) / CUDA_THREADS;
    if (b < 1)
        b = 1;
    return b > 65535u * 8u ? 65535u * 8u : (unsigned)b;
}
#define CUDA_LOOP(i, n)                                                                    \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (size_t)(n);      \
         i += (size_t)blockDim.x * gridDim.x)
#define CUDA_LAUNCH(be, kernel, n, ...)                                                    \
    do {                                                                                   \
        if ((n) > 0) {                                                                     \
            kernel<<<cuda_blocks(n), CUDA_THREADS, 0, CUDA_CTX(be)->stream>>>(__VA_ARGS__); \
            CUDA_LAUNCHED((be), #kernel);                                                  \
        }                                                                                  \
    } while (0)

/* The family tables (one file per family); each returns its table. */
extern "C" {
const struct math_ops *cuda_math_ops(void);
const struct solver_ops *cuda_solver_ops(void);
const struct comm_ops *cuda_comm_ops(void);
const struct structure_ops *cuda_structure_ops(void);
const struct recurrent_ops *cuda_recurrent_ops(void);
const struct loss_ops *cuda_loss_ops(void);
const struct vision_ops *cuda_vision_ops(void);
const struct neuron_ops *cuda_neuron_ops(void);
const struct norm_ops *cuda_norm_ops(void);
}

#endif
