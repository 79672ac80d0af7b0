/* Gradient sums among ranks in GPU memory, over NCCL: one non-blocking
 * communicator per rank and a stream of its own, so a bucket's sum overlaps
 * with the backward kernels that follow it; the host polls NCCL's
 * asynchronous error state while it waits, so a dead peer ends the wait with
 * NCCL's reason or a timeout, never a hang. */
#include "cuda/common.cuh"

#include <nccl.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct nccl_comm {
    ncclComm_t comm;
    cudaStream_t stream;  /* the sums */
    cudaEvent_t ready;    /* the compute stream reached a bucket */
    cudaEvent_t done;     /* every sum started so far is done */
    int timeout_ms;
    int rank, size;
    bool started, failed;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int nccl_fail(const struct backend *be, struct nccl_comm *c, ncclResult_t r, const char *what)
{
    if (c)
        c->failed = true;
    const char *last = c ? ncclGetLastError(c->comm) : NULL;
    return cuda_fail(be, CUDA_ERR_DEVICE, "NCCL %s: %s%s%s", what, ncclGetErrorString(r), last && *last ? ": " : "",
                     last ? last : "");
}

/* Polls until the communicator is out of ncclInProgress, or fails. */
static int nccl_settle(const struct backend *be, struct nccl_comm *c, const char *what)
{
    double deadline = now_s() + c->timeout_ms / 1000.0;
    for (;;) {
        ncclResult_t st = ncclSuccess;
        ncclResult_t r = ncclCommGetAsyncError(c->comm, &st);
        if (r != ncclSuccess)
            return nccl_fail(be, c, r, what);
        if (st == ncclSuccess)
            return CUDA_OK;
        if (st != ncclInProgress)
            return nccl_fail(be, c, st, what);
        if (now_s() > deadline) {
            c->failed = true;
            return cuda_fail(be, CUDA_ERR_DEVICE, "NCCL %s: timed out after %d s waiting for the other ranks", what,
                             c->timeout_ms / 1000);
        }
        usleep(200);
    }
}

static int n_make_id(const struct backend *be, void *id)
{
    ncclUniqueId u;
    ncclResult_t r = ncclGetUniqueId(&u);
    if (r != ncclSuccess)
        return nccl_fail(be, NULL, r, "ncclGetUniqueId");
    memcpy(id, &u, sizeof u);
    return CUDA_OK;
}

static void n_close(const struct backend *be, void *handle)
{
    struct nccl_comm *c = (struct nccl_comm *)handle;
    if (!c)
        return;
    if (c->comm) {
        if (c->failed)
            ncclCommAbort(c->comm);
        else
            ncclCommDestroy(c->comm);
    }
    if (c->stream)
        cudaStreamDestroy(c->stream);
    if (c->ready)
        cudaEventDestroy(c->ready);
    if (c->done)
        cudaEventDestroy(c->done);
    free(c);
}

static int n_open(const struct backend *be, int rank, int size, const void *id, int timeout_ms, void **out)
{
    *out = NULL;
    struct nccl_comm *c = (struct nccl_comm *)calloc(1, sizeof *c);
    if (!c)
        return cuda_fail(be, CUDA_ERR_NOMEM, "out of memory");
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
    c->rank = rank;
    c->size = size;
    int rc = cuda_check(be, cudaSetDevice(CUDA_CTX(be)->device), "cudaSetDevice");
    if (!rc)
        rc = cuda_check(be, cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking), "cudaStreamCreate");
    if (!rc)
        rc = cuda_check(be, cudaEventCreateWithFlags(&c->ready, cudaEventDisableTiming), "cudaEventCreate");
    if (!rc)
        rc = cuda_check(be, cudaEventCreateWithFlags(&c->done, cudaEventDisableTiming), "cudaEventCreate");
    if (!rc) {
        ncclUniqueId u;
        memcpy(&u, id, sizeof u);
        ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
        config.blocking = 0; /* return at once; nccl_settle polls with a deadline */
        ncclResult_t r = ncclCommInitRankConfig(&c->comm, size, u, rank, &config);
        if (r != ncclSuccess && r != ncclInProgress)
            rc = nccl_fail(be, c, r, "ncclCommInitRankConfig");
        else
            rc = nccl_settle(be, c, "joining the ranks");
    }
    if (rc) {
        c->failed = true;
        n_close(be, c);
        return rc;
    }
    *out = c;
    return CUDA_OK;
}

static int n_allreduce_start(const struct backend *be, void *handle, float *buf, size_t n)
{
    struct nccl_comm *c = (struct nccl_comm *)handle;
    if (c->failed)
        return cuda_fail(be, CUDA_ERR_DEVICE, "NCCL: the communicator failed earlier");
    cudaStream_t main = CUDA_CTX(be)->stream;
    int rc = cuda_check(be, cudaEventRecord(c->ready, main), "cudaEventRecord");
    if (!rc)
        rc = cuda_check(be, cudaStreamWaitEvent(c->stream, c->ready, 0), "cudaStreamWaitEvent");
    if (rc)
        return rc;
    ncclResult_t r = ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, c->comm, c->stream);
    if (r == ncclInProgress)
        rc = nccl_settle(be, c, "ncclAllReduce");
    else if (r != ncclSuccess)
        rc = nccl_fail(be, c, r, "ncclAllReduce");
    c->started = true;
    return rc;
}

static int n_allreduce_finish(const struct backend *be, void *handle)
{
    struct nccl_comm *c = (struct nccl_comm *)handle;
    if (!c->started)
        return CUDA_OK;
    c->started = false;
    int rc = cuda_check(be, cudaEventRecord(c->done, c->stream), "cudaEventRecord");
    if (rc)
        return rc;
    /* Wait on the host, watching NCCL, so that a dead peer is reported. */
    double deadline = now_s() + c->timeout_ms / 1000.0;
    for (;;) {
        cudaError_t e = cudaEventQuery(c->done);
        if (e == cudaSuccess)
            break;
        if (e != cudaErrorNotReady)
            return cuda_check(be, e, "waiting for the gradient sums");
        ncclResult_t st = ncclSuccess;
        ncclCommGetAsyncError(c->comm, &st);
        if (st != ncclSuccess && st != ncclInProgress)
            return nccl_fail(be, c, st, "summing gradients");
        if (now_s() > deadline) {
            c->failed = true;
            return cuda_fail(be, CUDA_ERR_DEVICE,
                             "NCCL: timed out after %d s summing gradients: a rank is gone or stalled",
                             c->timeout_ms / 1000);
        }
        usleep(50);
    }
    return cuda_check(be, cudaStreamWaitEvent(CUDA_CTX(be)->stream, c->done, 0), "cudaStreamWaitEvent");
}

static struct comm_ops table;

extern "C" const struct comm_ops *cuda_comm_ops(void)
{
    table.id_bytes = sizeof(ncclUniqueId);
    table.make_id = n_make_id;
    table.open = n_open;
    table.allreduce_start = n_allreduce_start;
    table.allreduce_finish = n_allreduce_finish;
    table.close = n_close;
    return &table;
}
