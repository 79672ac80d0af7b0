/* The normalisation family's kernels (be->norm): what BatchNorm, Scale, Bias
 * and MVN need beyond be->math. */
#ifndef CREMA_CORE_OPS_NORM_H
#define CREMA_CORE_OPS_NORM_H

#include <stdbool.h>
#include <stddef.h>

#include "core/backend.h"

/* Scale and Bias see x as outer x dim x inner, the broadcast blob as dim
 * values: element (o, j, i) uses b[j]. */
struct norm_ops {
    /* BatchNorm's per-channel steps; its sums and broadcasts are
     * be->math's gemv and gemm, in Caffe's order. All on be's memory, the
     * factor blob (blobs[2]) included, so nothing is read on the host. */
    /* mean = f mean_sum, var = f var_sum, f = 1 / factor (0 when factor is 0). */
    void (*bn_global_stats)(const struct backend *be, int channels, const float *mean_sum, const float *var_sum,
                            const float *factor, float *mean, float *var);
    /* factor = factor * moving_average_fraction + 1 (rounded after each step, as Caffe's two steps) */
    void (*bn_update_factor)(const struct backend *be, float moving_average_fraction, float *factor);
    /* var = sqrt(var + eps) */
    void (*bn_std)(const struct backend *be, int channels, float eps, float *var);

    /* y = x + b broadcast (y may be x). */
    void (*bias_forward)(const struct backend *be, size_t outer, size_t dim, size_t inner, const float *x,
                         const float *b, float *y);
    /* db[j] = (accumulate ? db[j] : 0) + the sum of dy over outer and inner. */
    void (*bias_backward)(const struct backend *be, size_t outer, size_t dim, size_t inner, const float *dy,
                          float *db, bool accumulate);
    /* y = x s broadcast (y may be x); Scale's backward to x is this with dy for x. */
    void (*scale_forward)(const struct backend *be, size_t outer, size_t dim, size_t inner, const float *x,
                          const float *s, float *y);
    /* ds[j] = (accumulate ? ds[j] : 0) + the sum of dy x over outer and inner. */
    void (*scale_param_backward)(const struct backend *be, size_t outer, size_t dim, size_t inner,
                                 const float *x, const float *dy, float *ds, bool accumulate);

    /* MVN over rows of dim values: y = x - mean, then (normalize_variance)
     * divided by std = sqrt(mean of (x - mean)^2) + eps, std[r] kept for
     * backward (y may be x). */
    void (*mvn_forward)(const struct backend *be, size_t rows, size_t dim, bool normalize_variance, float eps,
                        const float *x, float *y, float *std);
    /* dx = dy - mean(dy) (- y mean(dy y), / std with normalize_variance);
     * dx may be dy. */
    void (*mvn_backward)(const struct backend *be, size_t rows, size_t dim, bool normalize_variance,
                         const float *y, const float *dy, const float *std, float *dx);
};

#endif
