/* The neuron family's kernels (be->neuron): the element-wise activations of
 * layers/neuron.c, forward and backward, and Dropout's mask. */
#ifndef CREMA_CORE_OPS_NEURON_H
#define CREMA_CORE_OPS_NEURON_H

#include <stddef.h>
#include <stdint.h>

#include "core/backend.h"

/* Every entry works element by element on n values in be's memory, each
 * element read before its own output is written: y may be x, and dx may be
 * dy (in-place layers). x is the layer's input, y its output, dy and dx
 * their gradients. */
struct neuron_ops {
    /* ReLU: max(x, 0) + negative_slope min(x, 0); backward from x (and y,
     * which a library may read instead when the slope is 0). */
    void (*relu_forward)(const struct backend *be, size_t n, float negative_slope, const float *x, float *y);
    void (*relu_backward)(const struct backend *be, size_t n, float negative_slope, const float *x,
                          const float *y, const float *dy, float *dx);
    /* PReLU: element i uses slope[(i / dim) % channels] (channel_shared:
     * channels 1). slope_backward ADDS its sums to dslope (a parameter's
     * gradient); in place it must run before backward overwrites dy. */
    void (*prelu_forward)(const struct backend *be, size_t n, size_t channels, size_t dim, const float *slope,
                          const float *x, float *y);
    void (*prelu_backward)(const struct backend *be, size_t n, size_t channels, size_t dim, const float *slope,
                           const float *x, const float *dy, float *dx);
    void (*prelu_slope_backward)(const struct backend *be, size_t n, size_t channels, size_t dim, const float *x,
                                 const float *dy, float *dslope);
    /* ELU: x for x > 0, alpha (e^x - 1) otherwise. */
    void (*elu_forward)(const struct backend *be, size_t n, float alpha, const float *x, float *y);
    void (*elu_backward)(const struct backend *be, size_t n, float alpha, const float *x, const float *y,
                         const float *dy, float *dx);
    /* Sigmoid and TanH: backward from y alone. */
    void (*sigmoid_forward)(const struct backend *be, size_t n, const float *x, float *y);
    void (*sigmoid_backward)(const struct backend *be, size_t n, const float *y, const float *dy, float *dx);
    void (*tanh_forward)(const struct backend *be, size_t n, const float *x, float *y);
    void (*tanh_backward)(const struct backend *be, size_t n, const float *y, const float *dy, float *dx);
    void (*absval_forward)(const struct backend *be, size_t n, const float *x, float *y);
    void (*absval_backward)(const struct backend *be, size_t n, const float *x, const float *dy, float *dx);
    /* Power: (shift + scale x)^power, for power * scale != 0 (the layer
     * sets a constant output itself). */
    void (*power_forward)(const struct backend *be, size_t n, float power, float scale, float shift,
                          const float *x, float *y);
    void (*power_backward)(const struct backend *be, size_t n, float power, float scale, float shift,
                           const float *x, const float *y, const float *dy, float *dx);
    /* Exp: outer_scale e^(inner_scale x) (inner_scale = ln(base) scale,
     * outer_scale = base^shift). */
    void (*exp_forward)(const struct backend *be, size_t n, float inner_scale, float outer_scale, const float *x,
                        float *y);
    void (*exp_backward)(const struct backend *be, size_t n, float inner_scale, const float *y, const float *dy,
                         float *dx);
    /* Log: base_scale ln(shift + scale x) (base_scale = 1 / ln(base));
     * backward: dy back_scale / (shift + scale x), back_scale = scale / ln(base). */
    void (*log_forward)(const struct backend *be, size_t n, float base_scale, float scale, float shift,
                        const float *x, float *y);
    void (*log_backward)(const struct backend *be, size_t n, float scale, float shift, float back_scale,
                         const float *x, const float *dy, float *dx);
    void (*bnll_forward)(const struct backend *be, size_t n, const float *x, float *y);
    void (*bnll_backward)(const struct backend *be, size_t n, const float *x, const float *dy, float *dx);
    /* Threshold: 1 where x > threshold, else 0 (no backward, as Caffe). */
    void (*threshold_forward)(const struct backend *be, size_t n, float threshold, const float *x, float *y);
    void (*clip_forward)(const struct backend *be, size_t n, float min, float max, const float *x, float *y);
    void (*clip_backward)(const struct backend *be, size_t n, float min, float max, const float *x,
                          const float *dy, float *dx);
    /* Swish: y = x sig, sig = sigmoid(beta x) kept for backward. */
    void (*swish_forward)(const struct backend *be, size_t n, float beta, const float *x, float *y, float *sig);
    void (*swish_backward)(const struct backend *be, size_t n, float beta, const float *y, const float *sig,
                           const float *dy, float *dx);
    /* Dropout: y = x mask scale, mask 0 or 1 (backward: dy for x). */
    void (*dropout_apply)(const struct backend *be, size_t n, float scale, const float *mask, const float *x,
                          float *y);
    /* Draws the mask in be's memory, then applies it: element i is kept
     * when neuron_dropout_bits(seed, i) > threshold (Caffe's GPU test:
     * uniform 32-bit integers against ratio * UINT_MAX). */
    void (*dropout_forward)(const struct backend *be, size_t n, uint32_t threshold, float scale, uint64_t seed,
                            const float *x, float *mask, float *y);
};

/* Dropout's random bits, the same on every backend: Philox4x32-10
 * (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011),
 * keyed by the seed, counter i / 4, word i % 4. Counter-based, so a device
 * thread draws element i's bits alone, and one seed gives one mask whatever
 * the backend or the launch shape. */
#ifdef __CUDACC__
#define NEURON_HOST_DEVICE __host__ __device__
#else
#define NEURON_HOST_DEVICE
#endif
static inline NEURON_HOST_DEVICE uint32_t neuron_dropout_bits(uint64_t seed, uint64_t i)
{
    uint64_t block = i >> 2;
    uint32_t c[4] = { (uint32_t)block, (uint32_t)(block >> 32), 0u, 0u };
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c[0], p1 = (uint64_t)0xCD9E8D57u * c[2];
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c[0] = hi1 ^ c[1] ^ k0;
        c[1] = lo1;
        c[2] = hi0 ^ c[3] ^ k1;
        c[3] = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return c[i & 3];
}
#undef NEURON_HOST_DEVICE

#endif
