/* The loss family on the GPU: cuDNN's softmax (own kernels for in-place
 * calls and tensors too big for a cuDNN descriptor), and own kernels for
 * the losses and Accuracy. A loss is summed by a deterministic two-pass
 * reduction (each block tree-sums a fixed grid-stride share into a partial,
 * then one block sums the partials in a fixed order) whose last thread
 * writes the loss, and its normalizer, into device memory; backward reads
 * the loss weight and the normalizer there. Caffe's GPU code reads these
 * back to the host instead (caffe_gpu_asum/caffe_gpu_dot into a host
 * Dtype, top[0]->mutable_cpu_data()[0] = loss, and top[0]->cpu_diff()[0]
 * for the loss weight, in SoftmaxWithLoss, SigmoidCrossEntropyLoss,
 * EuclideanLoss and ContrastiveLoss; Accuracy's caffe_gpu_asum): here
 * nothing leaves the device. No atomics: two runs give the same bits.
 * Where a kernel mirrors a CPU loop (cpu/loss.c) it keeps its formula;
 * products that the CPU rounds before adding are written __fmul_rn so nvcc
 * does not fuse them. */
#include "cuda/common.cuh"

#include <float.h>
#include <limits.h>

/* Caffe's kLOG_THRESHOLD. */
#define LOG_THRESHOLD 1e-20f

enum { LABEL_IGNORED = -1, LABEL_BAD = -2 };

__device__ __forceinline__ float qnan(void)
{
    return __int_as_float(0x7fc00000);
}

/* A label as Caffe's static_cast<int> reads it (see core/ops_loss.h). */
__device__ __forceinline__ int label_class(float v, int classes, bool has_ignore, int ignore)
{
    if (!(v > -2147483648.f && v < 2147483648.f))
        return LABEL_BAD;
    int lab = (int)v;
    if (has_ignore && lab == ignore)
        return LABEL_IGNORED;
    return lab >= 0 && lab < classes ? lab : LABEL_BAD;
}


/* ---- the reduction ---- */

/* A loss sum and two counts (labels used; Accuracy's hits). */
struct lsum {
    float v;
    int n, m;
};

#define RED_THREADS 256
#define RED_MAX_BLOCKS 256

/* Tree sum over the block, in the same pairing on every run; the total
 * ends in every thread's a. */
__device__ void block_sum(struct lsum &a)
{
    __shared__ float sv[RED_THREADS];
    __shared__ int sn[RED_THREADS], sm[RED_THREADS];
    unsigned t = threadIdx.x;
    sv[t] = a.v;
    sn[t] = a.n;
    sm[t] = a.m;
    __syncthreads();
    for (unsigned s = RED_THREADS / 2; s > 0; s >>= 1) {
        if (t < s) {
            sv[t] += sv[t + s];
            sn[t] += sn[t + s];
            sm[t] += sm[t + s];
        }
        __syncthreads();
    }
    a.v = sv[0];
    a.n = sn[0];
    a.m = sm[0];
}

/* f(i, acc) adds item i's share to acc. */
template <class F>
__global__ void __launch_bounds__(RED_THREADS) k_reduce_partial(size_t n, F f, struct lsum *part)
{
    struct lsum a = { 0.f, 0, 0 };
    for (size_t i = (size_t)blockIdx.x * RED_THREADS + threadIdx.x; i < n; i += (size_t)RED_THREADS * gridDim.x)
        f(i, a);
    block_sum(a);
    if (threadIdx.x == 0)
        part[blockIdx.x] = a;
}

/* One block: the partials in a fixed order, then fin(total) once. */
template <class G>
__global__ void __launch_bounds__(RED_THREADS) k_reduce_final(unsigned parts, const struct lsum *part, G fin)
{
    struct lsum a = { 0.f, 0, 0 };
    for (unsigned i = threadIdx.x; i < parts; i += RED_THREADS) {
        a.v += part[i].v;
        a.n += part[i].n;
        a.m += part[i].m;
    }
    block_sum(a);
    if (threadIdx.x == 0)
        fin(a);
}

/* Sums f over [0, n) and hands the total to fin, on the device. The grid
 * depends on n only, so the order of the sum does too. */
template <class F, class G>
static void reduce(const struct backend *be, size_t n, F f, G fin, const char *what)
{
    size_t b = (n + RED_THREADS - 1) / RED_THREADS;
    unsigned blocks = b < 1 ? 1u : b > RED_MAX_BLOCKS ? (unsigned)RED_MAX_BLOCKS : (unsigned)b;
    /* Always the largest size, so the area is grown once, not per shape. */
    struct lsum *part = (struct lsum *)cuda_scratch(be, RED_MAX_BLOCKS * sizeof(struct lsum));
    if (!part)
        return;
    cudaStream_t st = CUDA_CTX(be)->stream;
    k_reduce_partial<<<blocks, RED_THREADS, 0, st>>>(n, f, part);
    if (CUDA_LAUNCHED(be, what))
        return;
    k_reduce_final<<<1, RED_THREADS, 0, st>>>(blocks, part, fin);
    CUDA_LAUNCHED(be, what);
}

/* fin: loss = sum / normalizer(count), both written. */
struct write_normalized {
    struct loss_labels g;
    float *loss, *normalizer;
    __device__ void operator()(const struct lsum &t) const
    {
        float nz = loss_normalizer(g.norm, g.outer, g.inner, t.n);
        *normalizer = nz;
        *loss = t.v / nz;
    }
};

/* fin: loss = sum / num / div. */
struct write_mean {
    int num;
    float div;
    float *loss;
    __device__ void operator()(const struct lsum &t) const
    {
        *loss = div == 1.f ? t.v / (float)num : t.v / (float)num / div;
    }
};

/* ---- softmax ---- */

/* One thread per position: Caffe's order (max from the first plane on,
 * exp, sum, divide). y may be x. */
__global__ void k_softmax_forward(size_t positions, const float *x, float *y, int channels, size_t inner)
{
    CUDA_LOOP(p, positions)
    {
        size_t base = p / inner * (size_t)channels * inner + p % inner;
        float m = x[base];
        for (int j = 0; j < channels; j++) {
            float v = x[base + (size_t)j * inner];
            if (v > m)
                m = v;
        }
        float s = 0.f;
        for (int j = 0; j < channels; j++) {
            float e = expf(x[base + (size_t)j * inner] - m);
            y[base + (size_t)j * inner] = e;
            s += e;
        }
        for (int j = 0; j < channels; j++)
            y[base + (size_t)j * inner] /= s;
    }
}

/* dx = (dy - <dy, y>) * y per position; dx may be dy. */
__global__ void k_softmax_backward(size_t positions, const float *y, const float *dy, float *dx, int channels,
                                   size_t inner)
{
    CUDA_LOOP(p, positions)
    {
        size_t base = p / inner * (size_t)channels * inner + p % inner;
        float s = 0.f;
        for (int j = 0; j < channels; j++)
            s += __fmul_rn(dy[base + (size_t)j * inner], y[base + (size_t)j * inner]);
        for (int j = 0; j < channels; j++) {
            size_t o = base + (size_t)j * inner;
            dx[o] = (dy[o] - s) * y[o];
        }
    }
}

/* Caffe's CuDNNSoftmaxLayer's view: N = outer, C = channels, H = inner,
 * W = 1, softmax over C for each (N, H). */
enum { DESC_OK, DESC_TOO_BIG, DESC_FAILED };
static int softmax_desc(const struct backend *be, int outer, int channels, int inner, cudnnTensorDescriptor_t *d)
{
    if ((size_t)outer * (size_t)channels * (size_t)inner > (size_t)INT_MAX)
        return DESC_TOO_BIG;
    if (cudnn_check(be, cudnnCreateTensorDescriptor(d), "cudnnCreateTensorDescriptor"))
        return DESC_FAILED;
    if (cudnn_check(be, cudnnSetTensor4dDescriptor(*d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, outer, channels, inner, 1),
                    "cudnnSetTensor4dDescriptor")) {
        cudnnDestroyTensorDescriptor(*d);
        return DESC_FAILED;
    }
    return DESC_OK;
}

/* cuDNN's ACCURATE softmax subtracts the maximum and divides by the sum:
 * Caffe's arithmetic. cuDNN does not promise in-place operation, so in-place
 * calls take the own kernel, as do tensors of 2^31 values or more. */
static void g_softmax_forward(const struct backend *be, const float *x, float *y, int outer, int channels, int inner)
{
    if (outer <= 0 || channels <= 0 || inner <= 0)
        return;
    cudnnTensorDescriptor_t d;
    int how = x != y ? softmax_desc(be, outer, channels, inner, &d) : DESC_TOO_BIG;
    if (how == DESC_FAILED)
        return;
    if (how == DESC_OK) {
        const float one = 1.f, zero = 0.f;
        cudnn_check(be,
                    cudnnSoftmaxForward(CUDA_CTX(be)->dnn, CUDNN_SOFTMAX_ACCURATE, CUDNN_SOFTMAX_MODE_CHANNEL, &one,
                                        d, x, &zero, d, y),
                    "cudnnSoftmaxForward");
        cudnnDestroyTensorDescriptor(d);
        return;
    }
    size_t positions = (size_t)outer * (size_t)inner;
    CUDA_LAUNCH(be, k_softmax_forward, positions, positions, x, y, channels, (size_t)inner);
}

static void g_softmax_backward(const struct backend *be, const float *y, const float *dy, float *dx, int outer,
                               int channels, int inner)
{
    if (outer <= 0 || channels <= 0 || inner <= 0)
        return;
    cudnnTensorDescriptor_t d;
    int how = dy != dx ? softmax_desc(be, outer, channels, inner, &d) : DESC_TOO_BIG;
    if (how == DESC_FAILED)
        return;
    if (how == DESC_OK) {
        const float one = 1.f, zero = 0.f;
        cudnn_check(be,
                    cudnnSoftmaxBackward(CUDA_CTX(be)->dnn, CUDNN_SOFTMAX_ACCURATE, CUDNN_SOFTMAX_MODE_CHANNEL,
                                         &one, d, y, d, dy, &zero, d, dx),
                    "cudnnSoftmaxBackward");
        cudnnDestroyTensorDescriptor(d);
        return;
    }
    size_t positions = (size_t)outer * (size_t)inner;
    CUDA_LAUNCH(be, k_softmax_backward, positions, positions, y, dy, dx, channels, (size_t)inner);
}

/* ---- SoftmaxWithLoss ---- */

struct softmax_loss_term {
    const float *prob, *label;
    struct loss_labels g;
    __device__ void operator()(size_t p, struct lsum &a) const
    {
        size_t inner = (size_t)g.inner, i = p / inner, j = p % inner;
        int lab = label_class(label[p], g.channels, g.has_ignore, g.ignore);
        if (lab == LABEL_IGNORED)
            return;
        a.v -= lab == LABEL_BAD ? qnan() : logf(fmaxf(prob[(i * g.channels + lab) * inner + j], FLT_MIN));
        a.n++;
    }
};

static void g_softmax_loss_forward(const struct backend *be, const float *prob, const float *label,
                                   const struct loss_labels *g, float *loss, float *normalizer)
{
    softmax_loss_term f = { prob, label, *g };
    write_normalized fin = { *g, loss, normalizer };
    reduce(be, (size_t)g->outer * (size_t)g->inner, f, fin, "softmax loss");
}

__global__ void k_softmax_loss_backward(size_t n, const float *prob, const float *label, struct loss_labels g,
                                        const float *loss_weight, const float *normalizer, float *dx)
{
    CUDA_LOOP(e, n)
    {
        size_t inner = (size_t)g.inner, dim = (size_t)g.channels * inner;
        size_t i = e / dim, r = e % dim, j = r % inner;
        int c = (int)(r / inner);
        int lab = label_class(label[i * inner + j], g.channels, g.has_ignore, g.ignore);
        float w = loss_weight[0] / normalizer[0];
        float v;
        if (lab == LABEL_IGNORED) {
            v = 0.f * w;
        } else if (lab == LABEL_BAD) {
            v = qnan();
        } else {
            v = prob[e];
            if (c == lab)
                v -= 1.f;
            v *= w;
        }
        dx[e] = v;
    }
}

static void g_softmax_loss_backward(const struct backend *be, const float *prob, const float *label,
                                    const struct loss_labels *g, const float *loss_weight, const float *normalizer,
                                    float *dx)
{
    size_t n = (size_t)g->outer * (size_t)g->channels * (size_t)g->inner;
    CUDA_LAUNCH(be, k_softmax_loss_backward, n, n, prob, label, *g, loss_weight, normalizer, dx);
}

/* ---- InfogainLoss ---- */

struct infogain_term {
    const float *prob, *label, *h;
    struct loss_labels g;
    __device__ void operator()(size_t p, struct lsum &a) const
    {
        size_t inner = (size_t)g.inner, i = p / inner, j = p % inner;
        int n = g.channels;
        int lab = label_class(label[p], n, g.has_ignore, g.ignore);
        if (lab == LABEL_IGNORED)
            return;
        if (lab == LABEL_BAD) {
            a.v = qnan();
        } else {
            const float *hr = h + (size_t)lab * n;
            const float *pr = prob + i * inner * n + j;
            for (int k = 0; k < n; k++)
                a.v -= __fmul_rn(hr[k], logf(fmaxf(pr[(size_t)k * inner], LOG_THRESHOLD)));
        }
        a.n++;
    }
};

static void g_infogain_loss_forward(const struct backend *be, const float *prob, const float *label, const float *h,
                                    const struct loss_labels *g, float *loss, float *normalizer)
{
    infogain_term f = { prob, label, h, *g };
    write_normalized fin = { *g, loss, normalizer };
    reduce(be, (size_t)g->outer * (size_t)g->inner, f, fin, "infogain loss");
}

__global__ void k_infogain_sum_rows(int n, const float *h, float *sum_rows)
{
    CUDA_LOOP(r, n)
    {
        float acc = 0.f;
        for (int c = 0; c < n; c++)
            acc += h[r * n + c];
        sum_rows[r] = acc;
    }
}

static void g_infogain_sum_rows(const struct backend *be, const float *h, int n, float *sum_rows)
{
    CUDA_LAUNCH(be, k_infogain_sum_rows, n, n, h, sum_rows);
}

__global__ void k_infogain_loss_backward(size_t total, const float *prob, const float *label, const float *h,
                                         const float *sum_rows, struct loss_labels g, const float *loss_weight,
                                         const float *normalizer, float *dx)
{
    CUDA_LOOP(e, total)
    {
        size_t inner = (size_t)g.inner, dim = (size_t)g.channels * inner;
        size_t i = e / dim, r = e % dim, j = r % inner;
        int k = (int)(r / inner);
        int lab = label_class(label[i * inner + j], g.channels, g.has_ignore, g.ignore);
        float w = loss_weight[0] / normalizer[0];
        float v;
        if (lab == LABEL_IGNORED)
            v = 0.f;
        else if (lab == LABEL_BAD)
            v = qnan();
        else
            v = __fmul_rn(prob[e], sum_rows[lab]) - h[(size_t)lab * g.channels + k];
        dx[e] = v * w;
    }
}

static void g_infogain_loss_backward(const struct backend *be, const float *prob, const float *label,
                                     const float *h, const float *sum_rows, const struct loss_labels *g,
                                     const float *loss_weight, const float *normalizer, float *dx)
{
    size_t n = (size_t)g->outer * (size_t)g->channels * (size_t)g->inner;
    CUDA_LAUNCH(be, k_infogain_loss_backward, n, n, prob, label, h, sum_rows, *g, loss_weight, normalizer, dx);
}

/* ---- SigmoidCrossEntropyLoss ---- */

__device__ __forceinline__ bool sigmoid_ce_ignored(const struct loss_labels &g, float t)
{
    return g.has_ignore && t > -2147483648.f && t < 2147483648.f && (int)t == g.ignore;
}

struct sigmoid_ce_term {
    const float *x, *t;
    float *sig;
    struct loss_labels g;
    __device__ void operator()(size_t i, struct lsum &a) const
    {
        float xi = x[i], ti = t[i];
        /* the CPU's double-precision tanh form */
        sig[i] = (float)__dadd_rn(__dmul_rn(0.5, tanh(0.5 * (double)xi)), 0.5);
        if (sigmoid_ce_ignored(g, ti))
            return;
        /* log(1 + exp(-|x|)) form: never overflows. */
        float pos = xi >= 0 ? 1.f : 0.f;
        a.v -= __fmul_rn(xi, ti - pos) - logf(1.f + expf(xi - __fmul_rn(__fmul_rn(2.f, xi), pos)));
        a.n++;
    }
};

static void g_sigmoid_ce_loss_forward(const struct backend *be, const float *x, const float *t,
                                      const struct loss_labels *g, float *sig, float *loss, float *normalizer)
{
    sigmoid_ce_term f = { x, t, sig, *g };
    write_normalized fin = { *g, loss, normalizer };
    reduce(be, (size_t)g->outer * (size_t)g->inner, f, fin, "sigmoid cross-entropy loss");
}

__global__ void k_sigmoid_ce_loss_backward(size_t n, const float *sig, const float *t, struct loss_labels g,
                                           const float *loss_weight, const float *normalizer, float *dx)
{
    CUDA_LOOP(i, n)
    {
        float w = loss_weight[0] / normalizer[0];
        float v = sigmoid_ce_ignored(g, t[i]) ? 0.f : sig[i] - t[i];
        dx[i] = v * w;
    }
}

static void g_sigmoid_ce_loss_backward(const struct backend *be, const float *sig, const float *t,
                                       const struct loss_labels *g, const float *loss_weight,
                                       const float *normalizer, float *dx)
{
    size_t n = (size_t)g->outer * (size_t)g->inner;
    CUDA_LAUNCH(be, k_sigmoid_ce_loss_backward, n, n, sig, t, *g, loss_weight, normalizer, dx);
}

/* ---- EuclideanLoss ---- */

struct euclidean_term {
    const float *a, *b;
    float *diff;
    __device__ void operator()(size_t i, struct lsum &acc) const
    {
        float d = a[i] - b[i];
        diff[i] = d;
        acc.v += __fmul_rn(d, d);
    }
};

static void g_euclidean_loss_forward(const struct backend *be, size_t n, int num, const float *a, const float *b,
                                     float *diff, float *loss)
{
    euclidean_term f = { a, b, diff };
    write_mean fin = { num, 2.f, loss };
    reduce(be, n, f, fin, "euclidean loss");
}

__global__ void k_euclidean_loss_backward(size_t n, int num, float sign, const float *diff,
                                          const float *loss_weight, float *dx)
{
    CUDA_LOOP(j, n)
    {
        float alpha = sign * loss_weight[0] / (float)num;
        dx[j] = alpha * diff[j];
    }
}

static void g_euclidean_loss_backward(const struct backend *be, size_t n, int num, float sign, const float *diff,
                                      const float *loss_weight, float *dx)
{
    CUDA_LAUNCH(be, k_euclidean_loss_backward, n, n, num, sign, diff, loss_weight, dx);
}

/* ---- HingeLoss ---- */

struct hinge_term {
    const float *x, *label;
    float *diff;
    int dim;
    bool l2;
    __device__ void operator()(size_t e, struct lsum &a) const
    {
        size_t item = e / (size_t)dim;
        int k = (int)(e % (size_t)dim);
        int lab = label_class(label[item], dim, false, 0);
        float v = x[e];
        if (k == lab)
            v *= -1.f;
        float d = lab == LABEL_BAD ? qnan() : fmaxf(0.f, 1.f + v);
        diff[e] = d;
        a.v += l2 ? __fmul_rn(d, d) : fabsf(d);
    }
};

static void g_hinge_loss_forward(const struct backend *be, int num, int dim, bool l2, const float *x,
                                 const float *label, float *diff, float *loss)
{
    hinge_term f = { x, label, diff, dim, l2 };
    write_mean fin = { num, 1.f, loss };
    reduce(be, (size_t)num * (size_t)dim, f, fin, "hinge loss");
}

__global__ void k_hinge_loss_backward(size_t n, int num, int dim, bool l2, const float *diff, const float *label,
                                      const float *loss_weight, float *dx)
{
    CUDA_LOOP(e, n)
    {
        size_t item = e / (size_t)dim;
        int k = (int)(e % (size_t)dim);
        int lab = label_class(label[item], dim, false, 0);
        float v = diff[e];
        if (k == lab)
            v *= -1.f;
        if (l2) {
            float w = loss_weight[0] * 2.f / (float)num;
            v *= w;
        } else {
            float w = loss_weight[0] / (float)num;
            v = (float)((v > 0) - (v < 0)) * w;
        }
        dx[e] = lab == LABEL_BAD ? qnan() : v;
    }
}

static void g_hinge_loss_backward(const struct backend *be, int num, int dim, bool l2, const float *diff,
                                  const float *label, const float *loss_weight, float *dx)
{
    size_t n = (size_t)num * (size_t)dim;
    CUDA_LAUNCH(be, k_hinge_loss_backward, n, n, num, dim, l2, diff, label, loss_weight, dx);
}

/* ---- ContrastiveLoss ---- */

/* Caffe tests static_cast<int>(sim) != 0. */
__device__ __forceinline__ bool contrastive_similar(float v)
{
    return v >= 1.f || v <= -1.f;
}

/* One thread per pair: its diff, its squared distance (summed over the
 * channels in the CPU's order) and its share of the loss. */
struct contrastive_term {
    const float *a, *b, *sim;
    float *diff, *dist_sq;
    int channels;
    float margin;
    bool legacy;
    __device__ void operator()(size_t p, struct lsum &acc) const
    {
        size_t base = p * (size_t)channels;
        float dsq = 0.f;
        for (int c = 0; c < channels; c++) {
            float d = a[base + c] - b[base + c];
            diff[base + c] = d;
            dsq += __fmul_rn(d, d);
        }
        dist_sq[p] = dsq;
        if (contrastive_similar(sim[p])) {
            acc.v += dsq;
        } else if (legacy) {
            acc.v += fmaxf(margin - dsq, 0.f);
        } else {
            float dist = fmaxf(margin - sqrtf(dsq), 0.f);
            acc.v += __fmul_rn(dist, dist);
        }
    }
};

static void g_contrastive_loss_forward(const struct backend *be, int num, int channels, float margin, bool legacy,
                                       const float *a, const float *b, const float *sim, float *diff,
                                       float *dist_sq, float *loss)
{
    contrastive_term f = { a, b, sim, diff, dist_sq, channels, margin, legacy };
    write_mean fin = { num, 2.f, loss };
    reduce(be, (size_t)num, f, fin, "contrastive loss");
}

__global__ void k_contrastive_loss_backward(size_t n, int num, int channels, float margin, bool legacy, float sign,
                                            const float *diff, const float *dist_sq, const float *sim,
                                            const float *loss_weight, float *dx)
{
    CUDA_LOOP(e, n)
    {
        size_t p = e / (size_t)channels;
        float alpha = sign * loss_weight[0] / (float)num;
        float scale;
        if (contrastive_similar(sim[p])) {
            scale = alpha;
        } else {
            float mdist, beta;
            if (legacy) {
                mdist = margin - dist_sq[p];
                beta = -alpha;
            } else {
                float dist = sqrtf(dist_sq[p]);
                mdist = margin - dist;
                beta = -alpha * mdist / (dist + 1e-4f);
            }
            scale = mdist > 0.f ? beta : 0.f;
        }
        dx[e] = scale * diff[e];
    }
}

static void g_contrastive_loss_backward(const struct backend *be, int num, int channels, float margin, bool legacy,
                                        float sign, const float *diff, const float *dist_sq, const float *sim,
                                        const float *loss_weight, float *dx)
{
    size_t n = (size_t)num * (size_t)channels;
    CUDA_LAUNCH(be, k_contrastive_loss_backward, n, n, num, channels, margin, legacy, sign, diff, dist_sq, sim,
                loss_weight, dx);
}

/* ---- MultinomialLogisticLoss ---- */

struct multinomial_term {
    const float *x, *label;
    int dim;
    __device__ void operator()(size_t i, struct lsum &a) const
    {
        int lab = label_class(label[i], dim, false, 0);
        a.v -= lab < 0 ? qnan() : logf(fmaxf(x[i * (size_t)dim + lab], LOG_THRESHOLD));
    }
};

static void g_multinomial_loss_forward(const struct backend *be, int num, int dim, const float *x, const float *label,
                                       float *loss)
{
    multinomial_term f = { x, label, dim };
    write_mean fin = { num, 1.f, loss };
    reduce(be, (size_t)num, f, fin, "multinomial logistic loss");
}

__global__ void k_multinomial_loss_backward(size_t n, int num, int dim, const float *x, const float *label,
                                            const float *loss_weight, float *dx)
{
    CUDA_LOOP(e, n)
    {
        size_t item = e / (size_t)dim;
        int k = (int)(e % (size_t)dim);
        int lab = label_class(label[item], dim, false, 0);
        float scale = -loss_weight[0] / (float)num;
        float v = 0.f;
        if (lab < 0)
            v = qnan();
        else if (k == lab)
            v = scale / fmaxf(x[e], LOG_THRESHOLD);
        dx[e] = v;
    }
}

static void g_multinomial_loss_backward(const struct backend *be, int num, int dim, const float *x,
                                        const float *label, const float *loss_weight, float *dx)
{
    size_t n = (size_t)num * (size_t)dim;
    CUDA_LAUNCH(be, k_multinomial_loss_backward, n, n, num, dim, x, label, loss_weight, dx);
}

/* ---- Accuracy ---- */

/* One position: the classes ranked before the label's (larger score, or
 * equal score and larger index), counted until top_k. Its flag goes to
 * hit; hits and positions counted go to the sum, a bad label makes v NaN. */
struct accuracy_term {
    const float *x, *label;
    float *hit;
    struct loss_labels g;
    int top_k;
    __device__ void operator()(size_t p, struct lsum &a) const
    {
        size_t inner = (size_t)g.inner, i = p / inner, j = p % inner;
        int lab = label_class(label[p], g.channels, g.has_ignore, g.ignore);
        if (lab < 0) {
            hit[p] = (float)lab;
            if (lab == LABEL_BAD)
                a.v = qnan();
            return;
        }
        const float *xs = x + i * (size_t)g.channels * inner + j;
        float xl = xs[(size_t)lab * inner];
        int before = 0;
        for (int k = 0; k < g.channels && before < top_k; k++) {
            float v = xs[(size_t)k * inner];
            before += v > xl || (v == xl && k > lab);
        }
        int h = before < top_k;
        hit[p] = (float)h;
        a.n++;
        a.m += h;
    }
};

struct write_accuracy {
    float *accuracy;
    __device__ void operator()(const struct lsum &t) const
    {
        /* Caffe's CPU code divides by the count even when it is 0. */
        *accuracy = t.v != t.v || t.n == 0 ? qnan() : (float)t.m / (float)t.n;
    }
};

/* One thread per class: its positions and hits, in integers. */
__global__ void k_accuracy_per_class(int classes, size_t positions, const float *label, const float *hit,
                                     struct loss_labels g, float *per_class)
{
    CUDA_LOOP(c, classes)
    {
        int n = 0, h = 0;
        for (size_t p = 0; p < positions; p++) {
            float f = hit[p];
            if (f >= 0.f && label_class(label[p], g.channels, g.has_ignore, g.ignore) == (int)c) {
                n++;
                h += f > 0.f;
            }
        }
        per_class[c] = n ? (float)h / (float)n : 0.f;
    }
}

static void g_accuracy_forward(const struct backend *be, const float *x, const float *label,
                               const struct loss_labels *g, int top_k, float *hit, float *accuracy, float *per_class)
{
    size_t positions = (size_t)g->outer * (size_t)g->inner;
    accuracy_term f = { x, label, hit, *g, top_k };
    write_accuracy fin = { accuracy };
    reduce(be, positions, f, fin, "accuracy");
    if (per_class)
        CUDA_LAUNCH(be, k_accuracy_per_class, g->channels, g->channels, positions, label, hit, *g, per_class);
}

static struct loss_ops table;

extern "C" const struct loss_ops *cuda_loss_ops(void)
{
    table.softmax_forward = g_softmax_forward;
    table.softmax_backward = g_softmax_backward;
    table.softmax_loss_forward = g_softmax_loss_forward;
    table.softmax_loss_backward = g_softmax_loss_backward;
    table.infogain_loss_forward = g_infogain_loss_forward;
    table.infogain_sum_rows = g_infogain_sum_rows;
    table.infogain_loss_backward = g_infogain_loss_backward;
    table.sigmoid_ce_loss_forward = g_sigmoid_ce_loss_forward;
    table.sigmoid_ce_loss_backward = g_sigmoid_ce_loss_backward;
    table.euclidean_loss_forward = g_euclidean_loss_forward;
    table.euclidean_loss_backward = g_euclidean_loss_backward;
    table.hinge_loss_forward = g_hinge_loss_forward;
    table.hinge_loss_backward = g_hinge_loss_backward;
    table.contrastive_loss_forward = g_contrastive_loss_forward;
    table.contrastive_loss_backward = g_contrastive_loss_backward;
    table.multinomial_loss_forward = g_multinomial_loss_forward;
    table.multinomial_loss_backward = g_multinomial_loss_backward;
    table.accuracy_forward = g_accuracy_forward;
    return &table;
}
