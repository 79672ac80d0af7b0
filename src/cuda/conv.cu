/* Convolution on the GPU with cuDNN (forward, backward data, backward
 * filter; groups, dilation, 1 to 3 spatial axes), one plan per layer and
 * shape holding the descriptors and the algorithms chosen for it, and the
 * convolution bias as own kernels (the gradient summed in a fixed order).
 *
 * Choosing: cuDNN's heuristics (cudnnGet*Algorithm_v7), or with
 * CREMA_CUDNN_FIND=1 a timed search (cudnnFind*Algorithm), once per plan;
 * the first algorithm in cuDNN's order that succeeds, fits the workspace
 * limit (CREMA_CUDNN_WORKSPACE_MB, default 1024 MiB), uses the math asked
 * for and, unless CREMA_CUDNN_DETERMINISTIC=0, is one cuDNN marks
 * CUDNN_DETERMINISTIC (so two runs give the same bits: this rules out
 * BWD_FILTER_ALGO_0 and _3 and BWD_DATA_ALGO_0, which sum with atomics).
 * Math: CUDNN_FMA_MATH, plain fp32 as Caffe computes (CUDNN_DEFAULT_MATH
 * would let cuDNN use TF32 on Ampere and newer); with the backend's TF32
 * switch on, the math cuDNN reports for the algorithm (CUDNN_TENSOR_OP_MATH
 * for tensor-core kernels; never _ALLOW_CONVERSION, which may go down to
 * fp16). The workspace is the backend's scratch (cuda_scratch), grown when
 * the plan is made so that the steady state never waits for the device. */
#include "cuda/vision.cuh"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define DNN(be) (CUDA_CTX(be)->dnn)

enum { OP_FWD, OP_DATA, OP_FILTER };

struct conv_op {
    int algo;
    size_t ws;
    cudnnMathType_t math;
};

struct conv_plan {
    cudnnTensorDescriptor_t im, col; /* the image side, the column side */
    cudnnFilterDescriptor_t filter;
    cudnnConvolutionDescriptor_t conv;
    struct conv_op op[3];
    bool tf32; /* the math the algorithms were chosen for */
    int num, channels, spatial; /* the column side, for the bias */
};

static size_t workspace_limit(void)
{
    const char *e = getenv("CREMA_CUDNN_WORKSPACE_MB");
    if (e && *e) {
        char *end = NULL;
        unsigned long long mb = strtoull(e, &end, 10);
        if (end && *end == 0 && mb <= (1ull << 24))
            return (size_t)mb << 20;
    }
    return (size_t)1024 << 20;
}

static bool env_flag(const char *name, bool dflt)
{
    const char *e = getenv(name);
    if (!e || !*e)
        return dflt;
    return strcmp(e, "0") != 0;
}

static cudnnStatus_t op_workspace(const struct backend *be, const struct conv_plan *p, int op, int algo,
                                  size_t *ws)
{
    switch (op) {
    case OP_FWD:
        return cudnnGetConvolutionForwardWorkspaceSize(DNN(be), p->im, p->filter, p->conv, p->col,
                                                       (cudnnConvolutionFwdAlgo_t)algo, ws);
    case OP_DATA:
        return cudnnGetConvolutionBackwardDataWorkspaceSize(DNN(be), p->filter, p->col, p->conv, p->im,
                                                            (cudnnConvolutionBwdDataAlgo_t)algo, ws);
    default:
        return cudnnGetConvolutionBackwardFilterWorkspaceSize(DNN(be), p->im, p->col, p->conv, p->filter,
                                                              (cudnnConvolutionBwdFilterAlgo_t)algo, ws);
    }
}

/* FFT and Winograd algorithms compute convolutions through transforms that
 * round more than a sum of products does (errors of 1e-5 relative and more
 * where GEMM-based ones stay near 1e-7): in fp32 they are used only with
 * CREMA_CUDNN_FAST=1; with TF32 they may be chosen. */
static bool fast_transforms(void)
{
    return env_flag("CREMA_CUDNN_FAST", false);
}

static bool transform_algo(int op, int algo)
{
    if (op == OP_FWD)
        return algo == CUDNN_CONVOLUTION_FWD_ALGO_FFT || algo == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING ||
               algo == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD || algo == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
    if (op == OP_DATA)
        return algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT || algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING ||
               algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD ||
               algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED;
    return algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT || algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING ||
           algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED;
}

/* The first usable algorithm of cuDNN's ranked list. */
template <typename Perf>
static bool pick(const struct backend *be, struct conv_plan *p, int op, const Perf *perf, int n, bool det,
                 size_t limit)
{
    for (int i = 0; i < n; i++) {
        const Perf &r = perf[i];
        if (r.status != CUDNN_STATUS_SUCCESS || (det && r.determinism != CUDNN_DETERMINISTIC))
            continue;
        if (r.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION || (!p->tf32 && r.mathType == CUDNN_TENSOR_OP_MATH))
            continue;
        /* fp32 means Caffe's arithmetic: sums of products, no transforms
         * whose rounding is larger (FFT, Winograd), unless asked for. */
        if (!p->tf32 && !fast_transforms() && transform_algo(op, (int)r.algo))
            continue;
        cudnnMathType_t math = p->tf32 ? r.mathType : CUDNN_FMA_MATH;
        size_t ws = 0;
        if (cudnnSetConvolutionMathType(p->conv, math) != CUDNN_STATUS_SUCCESS ||
            op_workspace(be, p, op, (int)r.algo, &ws) != CUDNN_STATUS_SUCCESS || ws > limit)
            continue;
        p->op[op].algo = (int)r.algo;
        p->op[op].ws = ws;
        p->op[op].math = math;
        return true;
    }
    return false;
}

/* Chooses the three algorithms for the backend's current math. Returns
 * false when cuDNN offers none for one of them (the layer then uses im2col
 * and GEMM); errors are recorded on the backend and reported by *rc. */
static bool choose(const struct backend *be, struct conv_plan *p, int *rc)
{
    *rc = CUDA_OK;
    p->tf32 = CUDA_CTX(be)->tf32;
    size_t limit = workspace_limit();
    bool det = env_flag("CREMA_CUDNN_DETERMINISTIC", true), find = env_flag("CREMA_CUDNN_FIND", false);
    cudnnMathType_t ask = p->tf32 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
    cudnnConvolutionFwdAlgoPerf_t fwd[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    cudnnConvolutionBwdDataAlgoPerf_t data[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    cudnnConvolutionBwdFilterAlgoPerf_t filt[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int nf = 0, nd = 0, nw = 0;
    cudnnStatus_t s = cudnnSetConvolutionMathType(p->conv, ask);
    if (s != CUDNN_STATUS_SUCCESS) {
        *rc = cudnn_check(be, s, "cudnnSetConvolutionMathType");
        return false;
    }
    if (find) {
        /* Runs every algorithm on memory cuDNN allocates itself, and waits. */
        s = cudnnFindConvolutionForwardAlgorithm(DNN(be), p->im, p->filter, p->conv, p->col,
                                                 CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &nf, fwd);
        if (s == CUDNN_STATUS_SUCCESS)
            s = cudnnFindConvolutionBackwardDataAlgorithm(DNN(be), p->filter, p->col, p->conv, p->im,
                                                          CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &nd, data);
        if (s == CUDNN_STATUS_SUCCESS)
            s = cudnnFindConvolutionBackwardFilterAlgorithm(DNN(be), p->im, p->col, p->conv, p->filter,
                                                            CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &nw, filt);
    } else {
        s = cudnnGetConvolutionForwardAlgorithm_v7(DNN(be), p->im, p->filter, p->conv, p->col,
                                                   CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &nf, fwd);
        if (s == CUDNN_STATUS_SUCCESS)
            s = cudnnGetConvolutionBackwardDataAlgorithm_v7(DNN(be), p->filter, p->col, p->conv, p->im,
                                                            CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &nd, data);
        if (s == CUDNN_STATUS_SUCCESS)
            s = cudnnGetConvolutionBackwardFilterAlgorithm_v7(DNN(be), p->im, p->col, p->conv, p->filter,
                                                              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &nw, filt);
    }
    if (s == CUDNN_STATUS_NOT_SUPPORTED || s == CUDNN_STATUS_BAD_PARAM)
        return false;
    if (s != CUDNN_STATUS_SUCCESS) {
        *rc = cudnn_check(be, s, find ? "cudnnFindConvolution*Algorithm" : "cudnnGetConvolution*Algorithm_v7");
        return false;
    }
    return pick(be, p, OP_FWD, fwd, nf, det, limit) && pick(be, p, OP_DATA, data, nd, det, limit) &&
           pick(be, p, OP_FILTER, filt, nw, det, limit);
}

static void plan_free(const struct backend *be, void *pv)
{
    struct conv_plan *p = (struct conv_plan *)pv;
    if (!p)
        return;
    if (p->im)
        cudnnDestroyTensorDescriptor(p->im);
    if (p->col)
        cudnnDestroyTensorDescriptor(p->col);
    if (p->filter)
        cudnnDestroyFilterDescriptor(p->filter);
    if (p->conv)
        cudnnDestroyConvolutionDescriptor(p->conv);
    free(p);
}

/* Packed NCHW strides of dims[0..n). */
static void packed_strides(int n, const int *dims, int *strides)
{
    strides[n - 1] = 1;
    for (int i = n - 2; i >= 0; i--)
        strides[i] = strides[i + 1] * dims[i + 1];
}

static bool fits_int(int n, const int *dims)
{
    long long c = 1;
    for (int i = 0; i < n; i++) {
        if (dims[i] <= 0)
            return false;
        c *= dims[i];
        if (c > INT_MAX)
            return false;
    }
    return true;
}

static int plan_create(const struct backend *be, const struct conv_shape *s, void **out)
{
    *out = NULL;
    int ns = s->num_spatial_axes;
    /* cuDNN convolves 4-D and 5-D tensors; one spatial axis becomes two
     * with a leading extent of 1. Anything else is im2col + GEMM's. */
    if (ns < 1 || ns > 3 || s->groups < 1 || s->in_channels % s->groups || s->out_channels % s->groups)
        return CUDA_OK;
    int nb = ns == 1 ? 4 : ns + 2, lead = nb - 2 - ns; /* lead: the added axis */
    int imd[5], cold[5], fd[5], pad[3], str[3], dil[3];
    imd[0] = cold[0] = s->num;
    imd[1] = s->in_channels;
    cold[1] = fd[0] = s->out_channels;
    fd[1] = s->in_channels / s->groups;
    if (lead) {
        imd[2] = cold[2] = fd[2] = 1;
        pad[0] = 0;
        str[0] = dil[0] = 1;
    }
    for (int a = 0; a < ns; a++) {
        imd[2 + lead + a] = s->in_shape[a];
        cold[2 + lead + a] = s->out_shape[a];
        fd[2 + lead + a] = s->kernel[a];
        pad[lead + a] = s->pad[a];
        str[lead + a] = s->stride[a];
        dil[lead + a] = s->dilation[a];
    }
    if (!fits_int(nb, imd) || !fits_int(nb, cold) || !fits_int(nb, fd))
        return CUDA_OK;
    struct conv_plan *p = (struct conv_plan *)calloc(1, sizeof *p);
    if (!p)
        return cuda_fail(be, CUDA_ERR_NOMEM, "out of memory for a convolution plan");
    p->num = s->num;
    p->channels = s->out_channels;
    p->spatial = 1;
    for (int a = 0; a < s->num_spatial_axes; a++)
        p->spatial *= s->out_shape[a];
    int rc = cudnn_check(be, cudnnCreateTensorDescriptor(&p->im), "cudnnCreateTensorDescriptor");
    if (!rc)
        rc = cudnn_check(be, cudnnCreateTensorDescriptor(&p->col), "cudnnCreateTensorDescriptor");
    if (!rc)
        rc = cudnn_check(be, cudnnCreateFilterDescriptor(&p->filter), "cudnnCreateFilterDescriptor");
    if (!rc)
        rc = cudnn_check(be, cudnnCreateConvolutionDescriptor(&p->conv), "cudnnCreateConvolutionDescriptor");
    if (rc) {
        plan_free(be, p);
        return rc;
    }
    int ims[5], cols[5], outd[5];
    packed_strides(nb, imd, ims);
    packed_strides(nb, cold, cols);
    /* A shape cuDNN refuses (or computes otherwise) is left to im2col. */
    bool ok = cudnnSetTensorNdDescriptor(p->im, CUDNN_DATA_FLOAT, nb, imd, ims) == CUDNN_STATUS_SUCCESS &&
              cudnnSetTensorNdDescriptor(p->col, CUDNN_DATA_FLOAT, nb, cold, cols) == CUDNN_STATUS_SUCCESS &&
              cudnnSetFilterNdDescriptor(p->filter, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, nb, fd) ==
                  CUDNN_STATUS_SUCCESS &&
              cudnnSetConvolutionNdDescriptor(p->conv, nb - 2, pad, str, dil, CUDNN_CROSS_CORRELATION,
                                              CUDNN_DATA_FLOAT) == CUDNN_STATUS_SUCCESS &&
              cudnnSetConvolutionGroupCount(p->conv, s->groups) == CUDNN_STATUS_SUCCESS &&
              cudnnGetConvolutionNdForwardOutputDim(p->conv, p->im, p->filter, nb, outd) == CUDNN_STATUS_SUCCESS &&
              memcmp(outd, cold, (size_t)nb * sizeof *outd) == 0;
    if (ok)
        ok = choose(be, p, &rc);
    if (ok) {
        size_t most = p->op[0].ws;
        for (int i = 1; i < 3; i++)
            most = p->op[i].ws > most ? p->op[i].ws : most;
        if (most && !cuda_scratch(be, most))
            rc = CUDA_ERR_NOMEM;
    }
    if (!ok || rc) {
        plan_free(be, p);
        return rc;
    }
    *out = p;
    return CUDA_OK;
}

/* The plan's algorithm for op, chosen again if the TF32 switch moved since;
 * its workspace (NULL when it needs none) in *ws. False: recorded error. */
static bool plan_op(const struct backend *be, struct conv_plan *p, int op, void **ws)
{
    *ws = NULL;
    if (p->tf32 != CUDA_CTX(be)->tf32) {
        int rc = CUDA_OK;
        if (!choose(be, p, &rc)) {
            if (!rc)
                cuda_fail(be, CUDA_ERR_UNSUPPORTED, "cuDNN has no convolution algorithm for this shape with "
                          "TF32 %s", CUDA_CTX(be)->tf32 ? "on" : "off");
            return false;
        }
    }
    if (cudnn_check(be, cudnnSetConvolutionMathType(p->conv, p->op[op].math), "cudnnSetConvolutionMathType"))
        return false;
    if (p->op[op].ws && !(*ws = cuda_scratch(be, p->op[op].ws)))
        return false;
    return true;
}

static void g_bias_forward(const struct backend *be, int num, int channels, int spatial, const float *bias,
                           const float *ones, float *y);

static void g_conv_forward(const struct backend *be, void *pv, const float *im, const float *w, const float *bias,
                           float *col)
{
    struct conv_plan *p = (struct conv_plan *)pv;
    void *ws;
    if (!plan_op(be, p, OP_FWD, &ws))
        return;
    const float one = 1.f, zero = 0.f;
    cudnn_check(be,
                cudnnConvolutionForward(DNN(be), &one, p->im, im, p->filter, w, p->conv,
                                        (cudnnConvolutionFwdAlgo_t)p->op[OP_FWD].algo, ws, p->op[OP_FWD].ws, &zero,
                                        p->col, col),
                "cudnnConvolutionForward");
    if (bias)
        g_bias_forward(be, p->num, p->channels, p->spatial, bias, NULL, col);
}

static void g_conv_backward_data(const struct backend *be, void *pv, const float *col, const float *w, float *im)
{
    struct conv_plan *p = (struct conv_plan *)pv;
    void *ws;
    if (!plan_op(be, p, OP_DATA, &ws))
        return;
    const float one = 1.f, zero = 0.f;
    cudnn_check(be,
                cudnnConvolutionBackwardData(DNN(be), &one, p->filter, w, p->col, col, p->conv,
                                             (cudnnConvolutionBwdDataAlgo_t)p->op[OP_DATA].algo, ws,
                                             p->op[OP_DATA].ws, &zero, p->im, im),
                "cudnnConvolutionBackwardData");
}

static void g_bias_backward(const struct backend *be, int num, int channels, int spatial, const float *dy,
                            const float *ones, float *db);

static void g_conv_backward_filter(const struct backend *be, void *pv, const float *im, const float *col,
                                   float *dw, float *db)
{
    struct conv_plan *p = (struct conv_plan *)pv;
    void *ws;
    if (!plan_op(be, p, OP_FILTER, &ws))
        return;
    const float one = 1.f; /* beta 1: parameter gradients accumulate */
    cudnn_check(be,
                cudnnConvolutionBackwardFilter(DNN(be), &one, p->im, im, p->col, col, p->conv,
                                               (cudnnConvolutionBwdFilterAlgo_t)p->op[OP_FILTER].algo, ws,
                                               p->op[OP_FILTER].ws, &one, p->filter, dw),
                "cudnnConvolutionBackwardFilter");
    if (db)
        g_bias_backward(be, p->num, p->channels, p->spatial, col, NULL, db);
}

/* ---- bias ---- */

__global__ void k_bias_forward(size_t n, int channels, int spatial, const float *bias, float *y)
{
    CUDA_LOOP(i, n) y[i] = __fadd_rn(y[i], bias[(i / (size_t)spatial) % (size_t)channels]);
}

static void g_bias_forward(const struct backend *be, int num, int channels, int spatial, const float *bias,
                           const float *ones, float *y)
{
    size_t n = (size_t)num * channels * spatial;
    CUDA_LAUNCH(be, k_bias_forward, n, n, channels, spatial, bias, y);
}

/* partial[c * num + n] = the sum of dy[n, c, :], one block per (n, c):
 * each thread sums a stride of the row, then a fixed tree. */
__global__ void k_bias_partial(int num, int channels, int spatial, const float *dy, float *partial)
{
    __shared__ float sh[CUDA_THREADS];
    size_t rows = (size_t)num * channels;
    for (size_t b = blockIdx.x; b < rows; b += gridDim.x) {
        const float *row = dy + b * (size_t)spatial;
        float v = 0.f;
        for (int s = threadIdx.x; s < spatial; s += blockDim.x)
            v += row[s];
        sh[threadIdx.x] = v;
        __syncthreads();
        for (int k = blockDim.x / 2; k > 0; k >>= 1) {
            if ((int)threadIdx.x < k)
                sh[threadIdx.x] += sh[threadIdx.x + k];
            __syncthreads();
        }
        if (threadIdx.x == 0)
            partial[(b % (size_t)channels) * (size_t)num + b / (size_t)channels] = sh[0];
        __syncthreads();
    }
}

/* db[c] += the images' sums in image order, as Caffe's per-image GEMV. */
__global__ void k_bias_sum(int num, int channels, const float *partial, float *db)
{
    CUDA_LOOP(c, channels)
    {
        float v = db[c];
        for (int n = 0; n < num; n++)
            v += partial[c * (size_t)num + n];
        db[c] = v;
    }
}

static void g_bias_backward(const struct backend *be, int num, int channels, int spatial, const float *dy,
                            const float *ones, float *db)
{
    size_t rows = (size_t)num * channels;
    if (rows == 0)
        return;
    float *partial = (float *)cuda_scratch(be, rows * sizeof(float));
    if (!partial)
        return;
    unsigned grid = rows > 65535u * 8u ? 65535u * 8u : (unsigned)rows;
    k_bias_partial<<<grid, CUDA_THREADS, 0, CUDA_CTX(be)->stream>>>(num, channels, spatial, dy, partial);
    if (CUDA_LAUNCHED(be, "k_bias_partial"))
        return;
    CUDA_LAUNCH(be, k_bias_sum, (size_t)channels, num, channels, partial, db);
}

void cuda_vision_conv_entries(struct vision_ops *t)
{
    t->conv_plan_create = plan_create;
    t->conv_plan_free = plan_free;
    t->conv_forward = g_conv_forward;
    t->conv_backward_data = g_conv_backward_data;
    t->conv_backward_filter = g_conv_backward_filter;
    t->bias_forward = g_bias_forward;
    t->bias_backward = g_bias_backward;
}
