/* The neuron family on the GPU: cuDNN's activations where they compute what
 * Caffe computes (ReLU with negative_slope 0, Sigmoid, TanH, as Caffe's
 * CuDNN*Layer), own element-wise kernels for the rest, each with the CPU's
 * formula (cpu/neuron.c) so the two agree to rounding. */
#include "cuda/block_sum.cuh"
#include "cuda/common.cuh"

/* ---- cuDNN activations ---- */

/* cuDNN describes n floats as a 1 x 1 x 1 x n tensor; larger calls go in
 * pieces (its sizes are ints). */
#define DNN_CHUNK ((size_t)1 << 30)

struct dnn_act {
    cudnnActivationDescriptor_t act;
    cudnnTensorDescriptor_t desc;
};

static bool dnn_open(const struct backend *be, cudnnActivationMode_t mode, struct dnn_act *a)
{
    a->act = NULL;
    a->desc = NULL;
    /* NaN passes through, as Caffe's std::max does. */
    if (cudnn_check(be, cudnnCreateActivationDescriptor(&a->act), "cudnnCreateActivationDescriptor") ||
        cudnn_check(be, cudnnSetActivationDescriptor(a->act, mode, CUDNN_PROPAGATE_NAN, 0.0),
                    "cudnnSetActivationDescriptor") ||
        cudnn_check(be, cudnnCreateTensorDescriptor(&a->desc), "cudnnCreateTensorDescriptor"))
        return false;
    return true;
}

static void dnn_close(struct dnn_act *a)
{
    if (a->desc)
        cudnnDestroyTensorDescriptor(a->desc);
    if (a->act)
        cudnnDestroyActivationDescriptor(a->act);
}

static bool dnn_shape(const struct backend *be, struct dnn_act *a, size_t len)
{
    return !cudnn_check(be, cudnnSetTensor4dDescriptor(a->desc, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 1, 1, (int)len),
                        "cudnnSetTensor4dDescriptor");
}

static void dnn_forward(const struct backend *be, cudnnActivationMode_t mode, size_t n, const float *x, float *y)
{
    struct dnn_act a = { NULL, NULL };
    const float one = 1.f, zero = 0.f;
    if (n && dnn_open(be, mode, &a))
        for (size_t off = 0; off < n; off += DNN_CHUNK) {
            size_t len = n - off < DNN_CHUNK ? n - off : DNN_CHUNK;
            if (!dnn_shape(be, &a, len) ||
                cudnn_check(be, cudnnActivationForward(CUDA_CTX(be)->dnn, a.act, &one, a.desc, x + off, &zero, a.desc,
                                                       y + off),
                            "cudnnActivationForward"))
                break;
        }
    if (n)
        dnn_close(&a);
}

/* x: the layer's input; for Sigmoid and TanH cuDNN reads y alone, and the
 * layers pass y there too (as Caffe's in-place CuDNN layers do). */
static void dnn_backward(const struct backend *be, cudnnActivationMode_t mode, size_t n, const float *x,
                         const float *y, const float *dy, float *dx)
{
    struct dnn_act a = { NULL, NULL };
    const float one = 1.f, zero = 0.f;
    if (n && dnn_open(be, mode, &a))
        for (size_t off = 0; off < n; off += DNN_CHUNK) {
            size_t len = n - off < DNN_CHUNK ? n - off : DNN_CHUNK;
            if (!dnn_shape(be, &a, len) ||
                cudnn_check(be, cudnnActivationBackward(CUDA_CTX(be)->dnn, a.act, &one, a.desc, y + off, a.desc, dy + off,
                                                        a.desc, x + off, &zero, a.desc, dx + off),
                            "cudnnActivationBackward"))
                break;
        }
    if (n)
        dnn_close(&a);
}

/* cuDNN allows dx == dy (and y == x forward), not dx over an input it
 * still reads. */
static bool dnn_backward_ok(const float *x, const float *y, const float *dx)
{
    return dx != x && dx != y;
}

/* ---- own kernels ---- */

/* Rounded after each step, as on the CPU (no fused multiply-add). */
__device__ static float affine(float x, float scale, float shift)
{
    if (scale != 1.f)
        x = __fmul_rn(x, scale);
    if (shift != 0.f)
        x = __fadd_rn(x, shift);
    return x;
}

__device__ static float sigmoid_d(float x)
{
    return (float)(0.5 * tanh(0.5 * (double)x) + 0.5);
}

static __global__ void k_relu_fwd(size_t n, float p, const float *x, float *y)
{
    CUDA_LOOP(i, n)
    {
        float v = x[i];
        y[i] = (v < 0.f ? 0.f : v) + p * (0.f < v ? 0.f : v);
    }
}

static __global__ void k_relu_bwd(size_t n, float p, const float *x, const float *dy, float *dx)
{
    CUDA_LOOP(i, n) dx[i] = dy[i] * ((float)(x[i] > 0) + p * (float)(x[i] <= 0));
}

static void relu_forward(const struct backend *be, size_t n, float slope, const float *x, float *y)
{
    if (slope == 0.f)
        dnn_forward(be, CUDNN_ACTIVATION_RELU, n, x, y);
    else
        CUDA_LAUNCH(be, k_relu_fwd, n, n, slope, x, y);
}

static void relu_backward(const struct backend *be, size_t n, float slope, const float *x, const float *y,
                          const float *dy, float *dx)
{
    if (slope == 0.f && dnn_backward_ok(x, y, dx))
        dnn_backward(be, CUDNN_ACTIVATION_RELU, n, x, y, dy, dx);
    else
        CUDA_LAUNCH(be, k_relu_bwd, n, n, slope, x, dy, dx);
}

static __global__ void k_prelu_fwd(size_t n, size_t channels, size_t dim, const float *slope, const float *x, float *y)
{
    CUDA_LOOP(i, n)
    {
        size_t c = (i / dim) % channels;
        y[i] = fmaxf(x[i], 0.f) + slope[c] * fminf(x[i], 0.f);
    }
}

static __global__ void k_prelu_bwd(size_t n, size_t channels, size_t dim, const float *slope, const float *x,
                            const float *dy, float *dx)
{
    CUDA_LOOP(i, n)
    {
        size_t c = (i / dim) % channels;
        dx[i] = dy[i] * ((float)(x[i] > 0) + slope[c] * (float)(x[i] <= 0));
    }
}

/* One block per channel: its elements, in a fixed order per thread, then a
 * fixed tree; the total is added to ds[c] once. */
static __global__ void k_prelu_slope_bwd(size_t n, size_t channels, size_t dim, const float *x, const float *dy, float *ds)
{
    __shared__ float shared[BLOCK_SUM_THREADS];
    const size_t per_channel = n / channels; /* num * dim */
    for (size_t c = blockIdx.x; c < channels; c += gridDim.x) {
        float acc = 0.f;
        for (size_t j = threadIdx.x; j < per_channel; j += BLOCK_SUM_THREADS) {
            size_t idx = (j / dim) * channels * dim + c * dim + j % dim;
            acc = __fadd_rn(acc, __fmul_rn(__fmul_rn(dy[idx], x[idx]), (float)(x[idx] <= 0)));
        }
        float total = block_sum(acc, shared);
        if (threadIdx.x == 0)
            ds[c] = __fadd_rn(ds[c], total);
    }
}

static void prelu_forward(const struct backend *be, size_t n, size_t channels, size_t dim, const float *slope,
                          const float *x, float *y)
{
    CUDA_LAUNCH(be, k_prelu_fwd, n, n, channels, dim, slope, x, y);
}

static void prelu_backward(const struct backend *be, size_t n, size_t channels, size_t dim, const float *slope,
                           const float *x, const float *dy, float *dx)
{
    CUDA_LAUNCH(be, k_prelu_bwd, n, n, channels, dim, slope, x, dy, dx);
}

static void prelu_slope_backward(const struct backend *be, size_t n, size_t channels, size_t dim, const float *x,
                                 const float *dy, float *ds)
{
    if (n == 0 || channels == 0)
        return;
    k_prelu_slope_bwd<<<block_sum_grid(channels), BLOCK_SUM_THREADS, 0, CUDA_CTX(be)->stream>>>(n, channels, dim, x,
                                                                                                 dy, ds);
    CUDA_LAUNCHED(be, "k_prelu_slope_bwd");
}

static __global__ void k_elu_fwd(size_t n, float alpha, const float *x, float *y)
{
    CUDA_LOOP(i, n) y[i] = fmaxf(x[i], 0.f) + alpha * (expf(fminf(x[i], 0.f)) - 1.f);
}

static __global__ void k_elu_bwd(size_t n, float alpha, const float *x, const float *y, const float *dy, float *dx)
{
    CUDA_LOOP(i, n) dx[i] = dy[i] * ((float)(x[i] > 0) + (alpha + y[i]) * (float)(x[i] <= 0));
}

static void elu_forward(const struct backend *be, size_t n, float alpha, const float *x, float *y)
{
    CUDA_LAUNCH(be, k_elu_fwd, n, n, alpha, x, y);
}

static void elu_backward(const struct backend *be, size_t n, float alpha, const float *x, const float *y,
                         const float *dy, float *dx)
{
    CUDA_LAUNCH(be, k_elu_bwd, n, n, alpha, x, y, dy, dx);
}

/* Sigmoid's and TanH's backward read y alone, in both cuDNN and Caffe. */
static __global__ void k_sigmoid_bwd(size_t n, const float *y, const float *dy, float *dx)
{
    CUDA_LOOP(i, n) dx[i] = (float)(dy[i] * y[i] * (1. - y[i]));
}

static __global__ void k_tanh_bwd(size_t n, const float *y, const float *dy, float *dx)
{
    CUDA_LOOP(i, n) dx[i] = dy[i] * (1.f - y[i] * y[i]);
}

static void sigmoid_forward(const struct backend *be, size_t n, const float *x, float *y)
{
    dnn_forward(be, CUDNN_ACTIVATION_SIGMOID, n, x, y);
}

static void sigmoid_backward(const struct backend *be, size_t n, const float *y, const float *dy, float *dx)
{
    if (dnn_backward_ok(y, y, dx))
        dnn_backward(be, CUDNN_ACTIVATION_SIGMOID, n, y, y, dy, dx);
    else
        CUDA_LAUNCH(be, k_sigmoid_bwd, n, n, y, dy, dx);
}

static void tanh_forward(const struct backend *be, size_t n, const float *x, float *y)
{
    dnn_forward(be, CUDNN_ACTIVATION_TANH, n, x, y);
}

static void tanh_backward(const struct backend *be, size_t n, const float *y, const float *dy, float *dx)
{
    if (dnn_backward_ok(y, y, dx))
        dnn_backward(be, CUDNN_ACTIVATION_TANH, n, y, y, dy, dx);
    else
        CUDA_LAUNCH(be, k_tanh_bwd, n, n, y, dy, dx);
}

static __global__ void k_absval_fwd(size_t n, const float *x, float *y)
{
    CUDA_LOOP(i, n) y[i] = fabsf(x[i]);
}

static __global__ void k_absval_bwd(size_t n, const float *x, const float *dy, float *dx)
{
    CUDA_LOOP(i, n) dx[i] = (float)((x[i] > 0) - (x[i] < 0)) * dy[i];
}

static void absval_forward(const struct backend *be, size_t n, const float *x, float *y)
{
    CUDA_LAUNCH(be, k_absval_fwd, n, n, x, y);
}

static void absval_backward(const struct backend *be, size_t n, const float *x, const float *dy, float *dx)
{
    CUDA_LAUNCH(be, k_absval_bwd, n, n, x, dy, dx);
}

static __global__ void k_power_fwd(size_t n, float power, float scale, float shift, const float *x, float *y)
{
    CUDA_LOOP(i, n)
    {
        float t = affine(x[i], scale, shift);
        y[i] = power != 1.f ? powf(t, power) : t;
    }
}

static __global__ void k_power_bwd(size_t n, float power, float scale, float shift, const float *x, const float *y,
                            const float *dy, float *dx)
{
    const float diff_scale = power * scale;
    CUDA_LOOP(i, n)
    {
        float g;
        if (diff_scale == 0.f || power == 1.f) {
            g = diff_scale;
        } else if (power == 2.f) {
            g = __fmul_rn(__fmul_rn(diff_scale, scale), x[i]);
            if (shift != 0.f)
                g = __fadd_rn(g, __fmul_rn(diff_scale, shift));
        } else if (shift == 0.f) {
            g = y[i] / x[i] * power;
        } else {
            g = y[i] / affine(x[i], scale, shift);
            if (diff_scale != 1.f)
                g *= diff_scale;
        }
        dx[i] = diff_scale != 0.f ? dy[i] * g : g;
    }
}

static void power_forward(const struct backend *be, size_t n, float power, float scale, float shift,
                          const float *x, float *y)
{
    CUDA_LAUNCH(be, k_power_fwd, n, n, power, scale, shift, x, y);
}

static void power_backward(const struct backend *be, size_t n, float power, float scale, float shift,
                           const float *x, const float *y, const float *dy, float *dx)
{
    CUDA_LAUNCH(be, k_power_bwd, n, n, power, scale, shift, x, y, dy, dx);
}

static __global__ void k_exp_fwd(size_t n, float inner, float outer, const float *x, float *y)
{
    CUDA_LOOP(i, n)
    {
        float t = inner == 1.f ? expf(x[i]) : expf(inner * x[i]);
        y[i] = outer != 1.f ? outer * t : t;
    }
}

static __global__ void k_exp_bwd(size_t n, float inner, const float *y, const float *dy, float *dx)
{
    CUDA_LOOP(i, n)
    {
        float g = y[i] * dy[i];
        dx[i] = inner != 1.f ? inner * g : g;
    }
}

static void exp_forward(const struct backend *be, size_t n, float inner, float outer, const float *x, float *y)
{
    CUDA_LAUNCH(be, k_exp_fwd, n, n, inner, outer, x, y);
}

static void exp_backward(const struct backend *be, size_t n, float inner, const float *y, const float *dy,
                         float *dx)
{
    CUDA_LAUNCH(be, k_exp_bwd, n, n, inner, y, dy, dx);
}

static __global__ void k_log_fwd(size_t n, float base_scale, float scale, float shift, const float *x, float *y)
{
    CUDA_LOOP(i, n)
    {
        float t = logf(affine(x[i], scale, shift));
        y[i] = base_scale != 1.f ? base_scale * t : t;
    }
}

static __global__ void k_log_bwd(size_t n, float scale, float shift, float back_scale, const float *x, const float *dy,
                          float *dx)
{
    CUDA_LOOP(i, n)
    {
        float t = 1.f / affine(x[i], scale, shift);
        if (back_scale != 1.f)
            t *= back_scale;
        dx[i] = dy[i] * t;
    }
}

static void log_forward(const struct backend *be, size_t n, float base_scale, float scale, float shift,
                        const float *x, float *y)
{
    CUDA_LAUNCH(be, k_log_fwd, n, n, base_scale, scale, shift, x, y);
}

static void log_backward(const struct backend *be, size_t n, float scale, float shift, float back_scale,
                         const float *x, const float *dy, float *dx)
{
    CUDA_LAUNCH(be, k_log_bwd, n, n, scale, shift, back_scale, x, dy, dx);
}

#define BNLL_THRESHOLD 50.f

static __global__ void k_bnll_fwd(size_t n, const float *x, float *y)
{
    CUDA_LOOP(i, n)
    {
        float v = x[i];
        y[i] = v > 0 ? (float)(v + log(1. + expf(-v))) : (float)log(1. + expf(v));
    }
}

static __global__ void k_bnll_bwd(size_t n, const float *x, const float *dy, float *dx)
{
    CUDA_LOOP(i, n)
    {
        float e = expf(fminf(x[i], BNLL_THRESHOLD));
        dx[i] = (float)(dy[i] * e / (e + 1.));
    }
}

static void bnll_forward(const struct backend *be, size_t n, const float *x, float *y)
{
    CUDA_LAUNCH(be, k_bnll_fwd, n, n, x, y);
}

static void bnll_backward(const struct backend *be, size_t n, const float *x, const float *dy, float *dx)
{
    CUDA_LAUNCH(be, k_bnll_bwd, n, n, x, dy, dx);
}

static __global__ void k_threshold_fwd(size_t n, float t, const float *x, float *y)
{
    CUDA_LOOP(i, n) y[i] = x[i] > t ? 1.f : 0.f;
}

static void threshold_forward(const struct backend *be, size_t n, float t, const float *x, float *y)
{
    CUDA_LAUNCH(be, k_threshold_fwd, n, n, t, x, y);
}

static __global__ void k_clip_fwd(size_t n, float lo, float hi, const float *x, float *y)
{
    CUDA_LOOP(i, n) y[i] = fmaxf(lo, fminf(x[i], hi));
}

static __global__ void k_clip_bwd(size_t n, float lo, float hi, const float *x, const float *dy, float *dx)
{
    CUDA_LOOP(i, n) dx[i] = dy[i] * (float)(x[i] >= lo && x[i] <= hi);
}

static void clip_forward(const struct backend *be, size_t n, float lo, float hi, const float *x, float *y)
{
    CUDA_LAUNCH(be, k_clip_fwd, n, n, lo, hi, x, y);
}

static void clip_backward(const struct backend *be, size_t n, float lo, float hi, const float *x, const float *dy,
                          float *dx)
{
    CUDA_LAUNCH(be, k_clip_bwd, n, n, lo, hi, x, dy, dx);
}

static __global__ void k_swish_fwd(size_t n, float beta, const float *x, float *y, float *sig)
{
    CUDA_LOOP(i, n)
    {
        float v = x[i], s = sigmoid_d(v * beta);
        sig[i] = s;
        y[i] = v * s;
    }
}

static __global__ void k_swish_bwd(size_t n, float beta, const float *y, const float *sig, const float *dy, float *dx)
{
    CUDA_LOOP(i, n)
    {
        float by = beta * y[i];
        dx[i] = (float)(dy[i] * (by + sig[i] * (1. - by)));
    }
}

static void swish_forward(const struct backend *be, size_t n, float beta, const float *x, float *y, float *sig)
{
    CUDA_LAUNCH(be, k_swish_fwd, n, n, beta, x, y, sig);
}

static void swish_backward(const struct backend *be, size_t n, float beta, const float *y, const float *sig,
                           const float *dy, float *dx)
{
    CUDA_LAUNCH(be, k_swish_bwd, n, n, beta, y, sig, dy, dx);
}

/* Dropout: the mask is drawn here, from the seed alone (neuron_dropout_bits,
 * the CPU table's formula too), so the GPU's masks are those the mirror
 * backend draws for the same seed; they differ from the CPU layer's, which
 * draws from crema's generator, as Caffe's GPU masks differ from its CPU's. */
static __global__ void k_dropout_apply(size_t n, float scale, const float *mask, const float *x, float *y)
{
    CUDA_LOOP(i, n) y[i] = x[i] * mask[i] * scale;
}

static __global__ void k_dropout_fwd(size_t n, uint32_t threshold, float scale, uint64_t seed, const float *x, float *mask,
                              float *y)
{
    CUDA_LOOP(i, n)
    {
        float m = neuron_dropout_bits(seed, i) > threshold ? 1.f : 0.f;
        mask[i] = m;
        y[i] = x[i] * m * scale;
    }
}

static void dropout_apply(const struct backend *be, size_t n, float scale, const float *mask, const float *x,
                          float *y)
{
    CUDA_LAUNCH(be, k_dropout_apply, n, n, scale, mask, x, y);
}

static void dropout_forward(const struct backend *be, size_t n, uint32_t threshold, float scale, uint64_t seed,
                            const float *x, float *mask, float *y)
{
    CUDA_LAUNCH(be, k_dropout_fwd, n, n, threshold, scale, seed, x, mask, y);
}

static struct neuron_ops table;

extern "C" const struct neuron_ops *cuda_neuron_ops(void)
{
    table.relu_forward = relu_forward;
    table.relu_backward = relu_backward;
    table.prelu_forward = prelu_forward;
    table.prelu_backward = prelu_backward;
    table.prelu_slope_backward = prelu_slope_backward;
    table.elu_forward = elu_forward;
    table.elu_backward = elu_backward;
    table.sigmoid_forward = sigmoid_forward;
    table.sigmoid_backward = sigmoid_backward;
    table.tanh_forward = tanh_forward;
    table.tanh_backward = tanh_backward;
    table.absval_forward = absval_forward;
    table.absval_backward = absval_backward;
    table.power_forward = power_forward;
    table.power_backward = power_backward;
    table.exp_forward = exp_forward;
    table.exp_backward = exp_backward;
    table.log_forward = log_forward;
    table.log_backward = log_backward;
    table.bnll_forward = bnll_forward;
    table.bnll_backward = bnll_backward;
    table.threshold_forward = threshold_forward;
    table.clip_forward = clip_forward;
    table.clip_backward = clip_backward;
    table.swish_forward = swish_forward;
    table.swish_backward = swish_backward;
    table.dropout_apply = dropout_apply;
    table.dropout_forward = dropout_forward;
    return &table;
}
