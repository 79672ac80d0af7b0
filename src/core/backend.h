/* The backend seam: where a tensor's memory lives and who computes on it.
 * A backend is a run-time table (ggml's backends, Caffe's math_functions):
 * memory entries that tensors use to keep their device copy (core/tensor.c),
 * and the primitive operations layers and solvers call on pointers of that
 * backend's memory. src/cpu fills the table for host memory, src/cuda for an
 * NVIDIA GPU. Layers and solvers call `be->math->gemm(be, ...)` for the
 * backend they were given, never a backend's functions by name.
 *
 * The family tables below (neuron, vision, ...) hold the kernels of one layer
 * family each; every entry has plain arguments (pointers into the backend's
 * memory, sizes, numbers), so a backend needs no layer headers. */
#ifndef CREMA_CORE_BACKEND_H
#define CREMA_CORE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "core/ops_loss.h"
#include "core/ops_neuron.h"
#include "core/ops_norm.h"
#include "core/ops_recurrent.h"
#include "core/ops_structure.h"
#include "core/ops_vision.h"

enum device { DEVICE_CPU = 0, DEVICE_CUDA = 1 };

struct backend;
struct math_ops;
struct solver_ops;
struct neuron_ops;
struct vision_ops;
struct loss_ops;
struct structure_ops;
struct norm_ops;
struct recurrent_ops;
struct comm_ops;

struct backend {
    const char *name; /* "cpu", "cuda:0", "cpu-mirror" */
    enum device device;
    int device_id;
    /* The backend computes on host memory itself (the CPU backend): a
     * tensor hands it the host copy and nothing is ever copied. When false,
     * tensors keep a second copy in the backend's memory, made with the
     * entries below and moved only when the other side asks for it. */
    bool host_memory;
    /* Zeroed memory; NULL (with err_set) when it cannot be had. */
    void *(*alloc)(const struct backend *be, size_t bytes);
    void (*free)(const struct backend *be, void *p);
    /* Host <-> backend copies; both return once the copy is done. */
    int (*upload)(const struct backend *be, void *dst, const void *host, size_t bytes);
    int (*download)(const struct backend *be, void *host, const void *src, size_t bytes);
    /* For the data layers' prefetch threads, so that a batch reaches the
     * device while the previous one computes (NULL where the backend has
     * no device): pinning host memory for fast asynchronous copies;
     * copying host -> backend memory on a queue of its own, waiting for it
     * on the calling thread only (any thread may call); and marks on the
     * compute queue, so a thread can wait until the work queued before a
     * mark is done (*ev is made on first use). */
    int (*host_register)(const struct backend *be, void *p, size_t bytes);
    void (*host_unregister)(const struct backend *be, void *p);
    int (*upload_side)(const struct backend *be, void *dst, const void *host, size_t bytes);
    int (*mark)(const struct backend *be, void **ev);
    int (*mark_wait)(const struct backend *be, void *ev);
    void (*mark_free)(const struct backend *be, void *ev);
    /* Waits for every queued operation; returns the first error any of
     * them hit since the last call (CREMA_OK when none). Primitives return
     * nothing: a device reports its errors here. */
    int (*sync)(const struct backend *be);
    /* The first error hit so far, without waiting (CREMA_OK when none). */
    int (*status)(const struct backend *be);
    /* Bytes of the backend's memory in use now and at most so far (NULL:
     * the backend does not count). */
    int (*memory)(const struct backend *be, size_t *in_use, size_t *peak);
    /* TF32 tensor cores for GEMMs and convolutions (off: fp32, what Caffe
     * computes). NULL: the backend has no such mode. */
    int (*set_tf32)(const struct backend *be, bool on);
    void *ctx; /* the backend's own state (handles, streams) */

    const struct math_ops *math;
    const struct solver_ops *solver;
    /* Collectives among ranks on the backend's own memory (NCCL on a GPU);
     * NULL: ranks sum on the host (dist/, Gloo). */
    const struct comm_ops *comm;
    /* Layer families: NULL where the backend has none; a layer whose family
     * table is missing runs on the host (see layer_kind). */
    const struct neuron_ops *neuron;
    const struct vision_ops *vision;
    const struct loss_ops *loss;
    const struct structure_ops *structure;
    const struct norm_ops *norm;
    const struct recurrent_ops *recurrent;
};

/* BLAS, element-wise arithmetic, reductions and im2col: Caffe's
 * math_functions.hpp. Matrices are row-major; sizes are ints as in BLAS. */
struct math_ops {
    /* C = alpha op(A) op(B) + beta C; op(A) is M x K, op(B) K x N. */
    void (*gemm)(const struct backend *be, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                 const float *A, const float *B, float beta, float *C);
    /* y = alpha op(A) x + beta y, A stored M x N. */
    void (*gemv)(const struct backend *be, bool trans_a, int M, int N, float alpha, const float *A,
                 const float *x, float beta, float *y);
    void (*axpy)(const struct backend *be, int n, float alpha, const float *x, float *y);
    /* y = alpha x + beta y (Caffe's order: scal, then axpy) */
    void (*axpby)(const struct backend *be, int n, float alpha, const float *x, float beta, float *y);
    void (*scal)(const struct backend *be, int n, float alpha, float *x);
    /* Reductions return to the host: on a device they wait for the queue. */
    float (*dot)(const struct backend *be, int n, const float *x, const float *y);
    float (*asum)(const struct backend *be, int n, const float *x);
    float (*sumsq)(const struct backend *be, int n, const float *x);
    void (*set)(const struct backend *be, size_t n, float value, float *x);
    /* y = x, within the backend's memory (may overlap only when equal) */
    void (*copy)(const struct backend *be, size_t n, const float *x, float *y);
    void (*add_scalar)(const struct backend *be, int n, float alpha, float *x);
    /* y = a op b, element-wise (y may be a or b) */
    void (*add)(const struct backend *be, int n, const float *a, const float *b, float *y);
    void (*sub)(const struct backend *be, int n, const float *a, const float *b, float *y);
    void (*mul)(const struct backend *be, int n, const float *a, const float *b, float *y);
    void (*div)(const struct backend *be, int n, const float *a, const float *b, float *y);
    /* y = f(a) */
    void (*abs)(const struct backend *be, int n, const float *a, float *y);
    void (*exp)(const struct backend *be, int n, const float *a, float *y);
    void (*log)(const struct backend *be, int n, const float *a, float *y);
    void (*sqr)(const struct backend *be, int n, const float *a, float *y);
    void (*sqrt)(const struct backend *be, int n, const float *a, float *y);
    void (*sign)(const struct backend *be, int n, const float *a, float *y);
    void (*powx)(const struct backend *be, int n, const float *a, float alpha, float *y);

    /* Caffe's im2col/col2im for one image (see cpu/math.h for the layout);
     * col2im zeroes im first. */
    void (*im2col)(const struct backend *be, const float *im, int channels, int height, int width,
                   int kernel_h, int kernel_w, int pad_h, int pad_w, int stride_h, int stride_w,
                   int dilation_h, int dilation_w, float *col);
    void (*col2im)(const struct backend *be, const float *col, int channels, int height, int width,
                   int kernel_h, int kernel_w, int pad_h, int pad_w, int stride_h, int stride_w,
                   int dilation_h, int dilation_w, float *im);
    /* N-D; the shape arrays are host memory. */
    void (*im2col_nd)(const struct backend *be, const float *im, int num_spatial_axes, const int *im_shape,
                      const int *col_shape, const int *kernel, const int *pad, const int *stride,
                      const int *dilation, float *col);
    void (*col2im_nd)(const struct backend *be, const float *col, int num_spatial_axes, const int *im_shape,
                      const int *col_shape, const int *kernel, const int *pad, const int *stride,
                      const int *dilation, float *im);
};

/* The solvers' element-wise arithmetic (solvers/solver_update.c): g is a
 * parameter's diff, w its data, h/h2 its history. Each is Caffe's
 * sequence of operations for one parameter, element by element. */
struct solver_ops {
    /* g *= scale (clipping, iter_size normalisation) */
    void (*scale)(const struct backend *be, size_t n, float scale, float *g);
    /* g += decay * w (L2) or decay * sign(w) (L1) */
    void (*regularize)(const struct backend *be, size_t n, bool l1, float decay, const float *w, float *g);
    void (*sgd)(const struct backend *be, size_t n, float *g, float *h, float momentum, float local_rate);
    void (*nesterov)(const struct backend *be, size_t n, float *g, float *h, float momentum,
                     float local_rate);
    void (*adagrad)(const struct backend *be, size_t n, float *g, float *h, float delta, float local_rate);
    void (*rmsprop)(const struct backend *be, size_t n, float *g, float *h, float rms_decay, float delta,
                    float local_rate);
    void (*adadelta)(const struct backend *be, size_t n, float *g, float *h, float *h2, float momentum,
                     float delta, float local_rate);
    /* m, v: the two moments; scale = local_rate * the bias correction */
    void (*adam)(const struct backend *be, size_t n, float *g, float *m, float *v, float beta1, float beta2,
                 float delta, float scale);
    /* w -= g (Net::Update) */
    void (*apply)(const struct backend *be, size_t n, const float *g, float *w);
    /* Optional (NULL: the steps above, one pass each): SGD's whole step for
     * one parameter in one pass, element by element in Caffe's order: g *=
     * scale (when scale != 1), regularize (when decay != 0), sgd, then w -=
     * g; the same bits as the separate entries. */
    void (*sgd_step)(const struct backend *be, size_t n, float *w, float *g, float *h, float scale, bool l1,
                     float decay, float momentum, float local_rate);
};

/* Summing gradients across ranks inside device memory (NCCL). A job sets
 * it up over its host collectives: rank 0 makes an id, the ranks share it,
 * each opens its end. Calls are queued behind the work already on the
 * backend's queue and overlap with what follows; finish waits for them and
 * names a failed or silent peer (never a hang past timeout_ms). */
struct comm_ops {
    size_t id_bytes;
    int (*make_id)(const struct backend *be, void *id);
    int (*open)(const struct backend *be, int rank, int size, const void *id, int timeout_ms, void **comm);
    /* buf (n floats of the backend's memory) becomes the sum over ranks */
    int (*allreduce_start)(const struct backend *be, void *comm, float *buf, size_t n);
    /* Every sum started is done before the backend's next queued work. */
    int (*allreduce_finish)(const struct backend *be, void *comm);
    /* Ends the rank's part; aborts pending work after an error. */
    void (*close)(const struct backend *be, void *comm);
};

#endif
