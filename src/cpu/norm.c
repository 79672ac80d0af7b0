/* The normalisation family on the CPU: BatchNorm's per-channel steps,
 * Scale's and Bias's broadcasts and sums, MVN's rows; single-threaded loops
 * in a fixed order, so sums round the same way on every run. */
#include "cpu/backend_cpu.h"

#include <math.h>

/* Caffe's caffe_powx as it behaves in the reference build: the power taken
 * in double and rounded once (powf differs in the last bit now and then). */
static float pow_double(float x, double e)
{
    return (float)pow((double)x, e);
}

static void bn_global_stats(const struct backend *be, int channels, const float *mean_sum, const float *var_sum,
                            const float *factor, float *mean, float *var)
{
    const float f = factor[0] == 0.f ? 0.f : 1.f / factor[0];
    for (int c = 0; c < channels; c++) {
        mean[c] = f * mean_sum[c];
        var[c] = f * var_sum[c];
    }
}

static void bn_update_factor(const struct backend *be, float moving_average_fraction, float *factor)
{
    factor[0] *= moving_average_fraction;
    factor[0] += 1.f;
}

static void bn_std(const struct backend *be, int channels, float eps, float *var)
{
    for (int c = 0; c < channels; c++)
        var[c] = pow_double(var[c] + eps, 0.5);
}

static void bias_forward(const struct backend *be, size_t outer, size_t dim, size_t inner, const float *x,
                         const float *b, float *y)
{
    for (size_t n = 0; n < outer; n++)
        for (size_t j = 0; j < dim; j++) {
            const float v = b[j];
            for (size_t i = 0; i < inner; i++)
                y[i] = x[i] + v;
            x += inner;
            y += inner;
        }
}

/* Each (outer, j) row summed on its own, then added to db[j] in outer order. */
static void bias_backward(const struct backend *be, size_t outer, size_t dim, size_t inner, const float *dy,
                          float *db, bool accumulate)
{
    for (size_t n = 0; n < outer; n++)
        for (size_t j = 0; j < dim; j++) {
            float s = 0.f;
            for (size_t i = 0; i < inner; i++)
                s += dy[i];
            db[j] = (accumulate || n > 0) ? db[j] + s : s;
            dy += inner;
        }
}

static void scale_forward(const struct backend *be, size_t outer, size_t dim, size_t inner, const float *x,
                          const float *s, float *y)
{
    for (size_t n = 0; n < outer; n++)
        for (size_t j = 0; j < dim; j++) {
            const float f = s[j];
            for (size_t i = 0; i < inner; i++)
                y[i] = f * x[i];
            x += inner;
            y += inner;
        }
}

/* Each (outer, j) row of dy x summed on its own, the rows then summed in
 * outer order, and the total added to ds[j] once. */
static void scale_param_backward(const struct backend *be, size_t outer, size_t dim, size_t inner,
                                 const float *x, const float *dy, float *ds, bool accumulate)
{
    for (size_t j = 0; j < dim; j++) {
        float total = 0.f;
        for (size_t n = 0; n < outer; n++) {
            const size_t row = (n * dim + j) * inner;
            float acc = 0.f;
            for (size_t i = 0; i < inner; i++) {
                const float p = dy[row + i] * x[row + i];
                acc += p;
            }
            total += acc;
        }
        ds[j] = accumulate ? ds[j] + total : total;
    }
}

static float row_sum(const float *v, size_t dim)
{
    float s = 0.f;
    for (size_t i = 0; i < dim; i++)
        s += v[i];
    return s;
}

/* Row by row; a row's sums are taken before it is written, so y may be x. */
static void mvn_forward(const struct backend *be, size_t rows, size_t dim, bool normalize_variance, float eps,
                        const float *x, float *y, float *std)
{
    const float inv_dim = (float)(1. / (double)dim);
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        float *yr = y + r * dim;
        const float mean = inv_dim * row_sum(xr, dim);
        for (size_t i = 0; i < dim; i++)
            yr[i] = xr[i] + -mean;
        if (!normalize_variance)
            continue;
        float sq = 0.f;
        for (size_t i = 0; i < dim; i++)
            sq += yr[i] * yr[i];
        /* eps is added to the std, after the square root (as Caffe). */
        const float s = powf(inv_dim * sq, 0.5f) + eps;
        std[r] = s;
        for (size_t i = 0; i < dim; i++)
            yr[i] /= s;
    }
}

static void mvn_backward(const struct backend *be, size_t rows, size_t dim, bool normalize_variance,
                         const float *y, const float *dy, const float *std, float *dx)
{
    for (size_t r = 0; r < rows; r++) {
        const float *yr = y + r * dim, *dyr = dy + r * dim;
        float *dxr = dx + r * dim;
        if (normalize_variance) {
            /* (dy - mean(dy) - y mean(dy y)) / (std + eps) */
            float s_ydy = 0.f;
            for (size_t i = 0; i < dim; i++) {
                const float p = yr[i] * dyr[i];
                s_ydy += p;
            }
            const float s_dy = row_sum(dyr, dim);
            const float k = (float)(-1. / (double)dim);
            for (size_t i = 0; i < dim; i++) {
                float t = yr[i] * s_ydy + s_dy;
                dxr[i] = (dyr[i] + k * t) / std[r];
            }
        } else {
            const float mean = (float)(1. / (double)dim) * row_sum(dyr, dim);
            for (size_t i = 0; i < dim; i++)
                dxr[i] = dyr[i] + -mean;
        }
    }
}

const struct norm_ops cpu_norm_ops = {
    .bn_global_stats = bn_global_stats, .bn_update_factor = bn_update_factor, .bn_std = bn_std,
    .bias_forward = bias_forward, .bias_backward = bias_backward,
    .scale_forward = scale_forward, .scale_param_backward = scale_param_backward,
    .mvn_forward = mvn_forward, .mvn_backward = mvn_backward,
};
