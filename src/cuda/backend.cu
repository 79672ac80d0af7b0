/* The CUDA plugin's core: device contexts, memory, errors, the math table
 * (cuBLAS and element-wise kernels, im2col/col2im) and the plugin entry. */
#include "cuda/common.cuh"

#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <mutex>
#include <unordered_map>

const struct cuda_host *cuda_host_api;

#define MAX_DEVICES 64

static std::mutex open_lock;
static struct backend backends[MAX_DEVICES];
static struct cuda_ctx contexts[MAX_DEVICES];
static bool opened[MAX_DEVICES];
/* Each allocation's size, for the in-use and peak counts. */
static std::mutex size_lock;
static std::unordered_map<void *, size_t> sizes;

int cuda_fail(const struct backend *be, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (be && CUDA_CTX(be)->error == CUDA_OK)
        CUDA_CTX(be)->error = code;
    if (be)
        return cuda_host_api->err_set(code, "%s: %s", be->name, msg);
    return cuda_host_api->err_set(code, "%s", msg);
}

int cuda_check(const struct backend *be, cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        return CUDA_OK;
    int code = e == cudaErrorMemoryAllocation ? CUDA_ERR_NOMEM : CUDA_ERR_DEVICE;
    return cuda_fail(be, code, "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

int cublas_check(const struct backend *be, cublasStatus_t s, const char *what)
{
    if (s == CUBLAS_STATUS_SUCCESS)
        return CUDA_OK;
    return cuda_fail(be, s == CUBLAS_STATUS_ALLOC_FAILED ? CUDA_ERR_NOMEM : CUDA_ERR_DEVICE, "%s: %s", what,
                     cublasGetStatusString(s));
}

int cudnn_check(const struct backend *be, cudnnStatus_t s, const char *what)
{
    if (s == CUDNN_STATUS_SUCCESS)
        return CUDA_OK;
    return cuda_fail(be, s == CUDNN_STATUS_ALLOC_FAILED ? CUDA_ERR_NOMEM : CUDA_ERR_DEVICE, "%s: %s", what,
                     cudnnGetErrorString(s));
}

void *cuda_scratch(const struct backend *be, size_t bytes)
{
    struct cuda_ctx *c = CUDA_CTX(be);
    if (bytes <= c->scratch_bytes)
        return c->scratch;
    /* Work queued on the stream may still read the old area. */
    if (cuda_check(be, cudaStreamSynchronize(c->stream), "cudaStreamSynchronize"))
        return NULL;
    cudaFree(c->scratch);
    c->scratch = NULL;
    c->scratch_bytes = 0;
    if (cuda_check(be, cudaMalloc(&c->scratch, bytes), "cudaMalloc (scratch)"))
        return NULL;
    c->scratch_bytes = bytes;
    return c->scratch;
}

/* ---- memory ---- */

static void *cu_alloc(const struct backend *be, size_t bytes)
{
    struct cuda_ctx *c = CUDA_CTX(be);
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* an allocation failure does not poison the context */
        cuda_host_api->err_set(CUDA_ERR_NOMEM, "%s: cannot allocate %zu bytes of GPU memory (%s)", be->name,
                               bytes, cudaGetErrorString(e));
        return NULL;
    }
    if (cuda_check(be, cudaMemsetAsync(p, 0, bytes ? bytes : 1, c->stream), "cudaMemsetAsync")) {
        cudaFree(p);
        return NULL;
    }
    std::lock_guard<std::mutex> guard(size_lock);
    sizes[p] = bytes;
    c->in_use += bytes;
    if (c->in_use > c->peak)
        c->peak = c->in_use;
    return p;
}

static void cu_free(const struct backend *be, void *p)
{
    /* cudaFree waits for the device; work on the stream is done with p. */
    cudaFree(p);
    std::lock_guard<std::mutex> guard(size_lock);
    auto it = sizes.find(p);
    if (it != sizes.end()) {
        CUDA_CTX(be)->in_use -= it->second;
        sizes.erase(it);
    }
}

static int cu_memory(const struct backend *be, size_t *in_use, size_t *peak)
{
    std::lock_guard<std::mutex> guard(size_lock);
    struct cuda_ctx *c = CUDA_CTX(be);
    /* the scratch area (cuDNN workspaces) counts too */
    *in_use = c->in_use + c->scratch_bytes;
    *peak = c->peak + c->scratch_bytes;
    return CUDA_OK;
}

static int cu_copy(const struct backend *be, void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                   const char *what)
{
    struct cuda_ctx *c = CUDA_CTX(be);
    int rc = cuda_check(be, cudaMemcpyAsync(dst, src, bytes, kind, c->stream), what);
    if (!rc)
        rc = cuda_check(be, cudaStreamSynchronize(c->stream), what);
    return rc;
}

static int cu_upload(const struct backend *be, void *dst, const void *host, size_t bytes)
{
    return cu_copy(be, dst, host, bytes, cudaMemcpyHostToDevice, "copy to the GPU");
}

static int cu_download(const struct backend *be, void *host, const void *src, size_t bytes)
{
    return cu_copy(be, host, src, bytes, cudaMemcpyDeviceToHost, "copy from the GPU");
}

/* ---- for the prefetch threads ---- */

static int cu_host_register(const struct backend *be, void *p, size_t bytes)
{
    cudaError_t e = cudaHostRegister(p, bytes ? bytes : 1, cudaHostRegisterDefault);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* pageable memory still works, only slower */
        return cuda_host_api->err_set(CUDA_ERR_DEVICE, "%s: cannot pin %zu bytes of host memory (%s)", be->name, bytes,
                                      cudaGetErrorString(e));
    }
    return CUDA_OK;
}

static void cu_host_unregister(const struct backend *be, void *p)
{
    if (cudaHostUnregister(p) != cudaSuccess)
        cudaGetLastError();
}

static int cu_upload_side(const struct backend *be, void *dst, const void *host, size_t bytes)
{
    struct cuda_ctx *c = CUDA_CTX(be);
    /* the calling thread may not have made this device current yet */
    int rc = cuda_check(be, cudaSetDevice(c->device), "cudaSetDevice");
    if (!rc)
        rc = cuda_check(be, cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, c->side), "copy to the GPU");
    if (!rc)
        rc = cuda_check(be, cudaStreamSynchronize(c->side), "copy to the GPU");
    return rc;
}

static int cu_mark(const struct backend *be, void **ev)
{
    if (!*ev) {
        cudaEvent_t e;
        int rc = cuda_check(be, cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
        if (rc)
            return rc;
        *ev = (void *)e;
    }
    return cuda_check(be, cudaEventRecord((cudaEvent_t)*ev, CUDA_CTX(be)->stream), "cudaEventRecord");
}

static int cu_mark_wait(const struct backend *be, void *ev)
{
    if (!ev)
        return CUDA_OK;
    cudaSetDevice(CUDA_CTX(be)->device);
    return cuda_check(be, cudaEventSynchronize((cudaEvent_t)ev), "waiting for the GPU");
}

static void cu_mark_free(const struct backend *be, void *ev)
{
    if (ev)
        cudaEventDestroy((cudaEvent_t)ev);
}

static int cu_status(const struct backend *be)
{
    struct cuda_ctx *c = CUDA_CTX(be);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        cuda_check(be, e, "a kernel");
    int rc = c->error;
    c->error = CUDA_OK;
    return rc;
}

static int cu_sync(const struct backend *be)
{
    struct cuda_ctx *c = CUDA_CTX(be);
    cudaError_t e = cudaStreamSynchronize(c->stream);
    if (e != cudaSuccess)
        cuda_check(be, e, "the GPU's queue");
    return cu_status(be);
}

static int cu_set_tf32(const struct backend *be, bool on)
{
    struct cuda_ctx *c = CUDA_CTX(be);
    c->tf32 = on;
    return cublas_check(be, cublasSetMathMode(c->blas, on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
                        "cublasSetMathMode");
}

/* ---- the plugin ---- */

static int cu_device_count(int *n)
{
    *n = 0;
    cudaError_t e = cudaGetDeviceCount(n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        *n = 0; /* no driver, no device: none, not an error */
    }
    return CUDA_OK;
}

/* At exit, what each opened device holds for the process's life goes back:
 * the scratch area, cuBLAS's and cuDNN's handles (and their workspaces),
 * the stream; so a leak checker sees only what the program left. Runs
 * before the CUDA runtime's own teardown (registered after it started). */
static void cu_close_all(void)
{
    std::lock_guard<std::mutex> guard(open_lock);
    for (int id = 0; id < MAX_DEVICES; id++) {
        if (!opened[id])
            continue;
        struct cuda_ctx *c = &contexts[id];
        cudaSetDevice(id);
        cudaStreamSynchronize(c->stream);
        cudaFree(c->scratch);
        c->scratch = NULL;
        c->scratch_bytes = 0;
        cudnnDestroy(c->dnn);
        cublasDestroy(c->blas);
        cudaStreamSynchronize(c->side);
        cudaStreamDestroy(c->side);
        cudaStreamDestroy(c->stream);
        opened[id] = false;
    }
}

static int cu_open(int id, const struct backend **out)
{
    *out = NULL;
    int n = 0;
    cu_device_count(&n);
    if (n == 0) {
        int driver = 0;
        cudaError_t e = cudaDriverGetVersion(&driver);
        return cuda_fail(NULL, CUDA_ERR_UNSUPPORTED, "no CUDA device is present (%s)",
                         e == cudaSuccess && driver ? "the driver sees none" : "no NVIDIA driver is loaded");
    }
    if (id < 0 || id >= n || id >= MAX_DEVICES)
        return cuda_fail(NULL, CUDA_ERR_INVALID, "GPU %d does not exist: this machine has %d (0..%d)", id, n,
                         n - 1);
    std::lock_guard<std::mutex> guard(open_lock);
    if (opened[id]) {
        *out = &backends[id];
        return CUDA_OK;
    }
    struct backend *be = &backends[id];
    struct cuda_ctx *c = &contexts[id];
    memset(c, 0, sizeof *c);
    c->device = id;
    snprintf(c->name, sizeof c->name, "cuda:%d", id);
    be->name = c->name;
    be->device = DEVICE_CUDA;
    be->device_id = id;
    be->host_memory = false;
    be->ctx = c;
    int rc = cuda_check(be, cudaSetDevice(id), "cudaSetDevice");
    if (!rc)
        rc = cuda_check(be, cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking), "cudaStreamCreate");
    if (!rc)
        rc = cuda_check(be, cudaStreamCreateWithFlags(&c->side, cudaStreamNonBlocking), "cudaStreamCreate");
    if (!rc)
        rc = cublas_check(be, cublasCreate(&c->blas), "cublasCreate");
    if (!rc)
        rc = cublas_check(be, cublasSetStream(c->blas, c->stream), "cublasSetStream");
    if (!rc)
        rc = cublas_check(be, cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
    if (!rc)
        rc = cudnn_check(be, cudnnCreate(&c->dnn), "cudnnCreate");
    if (!rc)
        rc = cudnn_check(be, cudnnSetStream(c->dnn, c->stream), "cudnnSetStream");
    if (rc) {
        c->error = CUDA_OK;
        return rc;
    }
    be->alloc = cu_alloc;
    be->free = cu_free;
    be->upload = cu_upload;
    be->download = cu_download;
    be->sync = cu_sync;
    be->status = cu_status;
    be->set_tf32 = cu_set_tf32;
    be->host_register = cu_host_register;
    be->host_unregister = cu_host_unregister;
    be->upload_side = cu_upload_side;
    be->mark = cu_mark;
    be->mark_wait = cu_mark_wait;
    be->mark_free = cu_mark_free;
    be->memory = cu_memory;
    be->math = cuda_math_ops();
    be->solver = cuda_solver_ops();
    be->comm = cuda_comm_ops();
    /* Layer families: one line each. */
    be->neuron = cuda_neuron_ops();

    be->vision = cuda_vision_ops();

    be->loss = cuda_loss_ops();

    be->structure = cuda_structure_ops();

    be->norm = cuda_norm_ops();

    be->recurrent = cuda_recurrent_ops();

    static bool exit_hook;
    if (!exit_hook)
        exit_hook = atexit(cu_close_all) == 0;
    opened[id] = true;
    *out = be;
    return CUDA_OK;
}

static int cu_query(int id, FILE *out)
{
    int n = 0;
    cu_device_count(&n);
    if (id < 0 || id >= n)
        return cuda_fail(NULL, n ? CUDA_ERR_INVALID : CUDA_ERR_UNSUPPORTED,
                         n ? "GPU %d does not exist: this machine has %d" : "no CUDA device is present (GPU %d)",
                         id, n);
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, id);
    if (e != cudaSuccess)
        return cuda_fail(NULL, CUDA_ERR_DEVICE, "cudaGetDeviceProperties: %s", cudaGetErrorString(e));
    int clock = 0, timeout = 0, overlap = 0;
    cudaDeviceGetAttribute(&clock, cudaDevAttrClockRate, id);
    cudaDeviceGetAttribute(&timeout, cudaDevAttrKernelExecTimeout, id);
    cudaDeviceGetAttribute(&overlap, cudaDevAttrGpuOverlap, id);
    fprintf(out, "Device id:                     %d\n", id);
    fprintf(out, "Major revision number:         %d\n", p.major);
    fprintf(out, "Minor revision number:         %d\n", p.minor);
    fprintf(out, "Name:                          %s\n", p.name);
    fprintf(out, "Total global memory:           %zu\n", p.totalGlobalMem);
    fprintf(out, "Total shared memory per block: %zu\n", p.sharedMemPerBlock);
    fprintf(out, "Total registers per block:     %d\n", p.regsPerBlock);
    fprintf(out, "Warp size:                     %d\n", p.warpSize);
    fprintf(out, "Maximum memory pitch:          %zu\n", p.memPitch);
    fprintf(out, "Maximum threads per block:     %d\n", p.maxThreadsPerBlock);
    fprintf(out, "Maximum dimension of block:    %d, %d, %d\n", p.maxThreadsDim[0], p.maxThreadsDim[1],
            p.maxThreadsDim[2]);
    fprintf(out, "Maximum dimension of grid:     %d, %d, %d\n", p.maxGridSize[0], p.maxGridSize[1],
            p.maxGridSize[2]);
    fprintf(out, "Clock rate:                    %d\n", clock);
    fprintf(out, "Total constant memory:         %zu\n", p.totalConstMem);
    fprintf(out, "Texture alignment:             %zu\n", p.textureAlignment);
    fprintf(out, "Concurrent copy and execution: %s\n", overlap ? "Yes" : "No");
    fprintf(out, "Number of multiprocessors:     %d\n", p.multiProcessorCount);
    fprintf(out, "Kernel execution timeout:      %s\n", timeout ? "Yes" : "No");
    return CUDA_OK;
}

static const struct cuda_plugin plugin = {
    CUDA_PLUGIN_ABI, sizeof(struct backend), cu_device_count, cu_open, cu_query,
};

extern "C" __attribute__((visibility("default"))) const struct cuda_plugin *crema_cuda_plugin(
    const struct cuda_host *host)
{
    cuda_host_api = host;
    return &plugin;
}
