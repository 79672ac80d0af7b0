/* The structure family on the host (core/ops_structure.h): the loops the
 * data-moving layers have always run, unchanged. */
#include "core/ops_structure.h"
#include "cpu/backend_cpu.h"

#include <string.h>

static void s_copy_blocks(const struct backend *be, const float *src, size_t src_step, float *dst, size_t dst_step,
                          size_t n, size_t len)
{
    for (size_t i = 0; i < n; i++)
        memcpy(dst + i * dst_step, src + i * src_step, len * sizeof(float));
}

static void s_add_blocks(const struct backend *be, const float *src, size_t src_step, float *dst, size_t dst_step,
                         size_t n, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        float *d = dst + i * dst_step;
        const float *s = src + i * src_step;
        for (size_t j = 0; j < len; j++)
            d[j] += s[j];
    }
}

static void s_scale_add(const struct backend *be, size_t n, float coeff, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] += coeff * x[i];
}

static void s_scale(const struct backend *be, size_t n, float coeff, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = coeff * x[i];
}

static void s_max_first(const struct backend *be, size_t n, const float *a, const float *b, float *y, float *mask)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i] > b[i]) {
            y[i] = a[i];
            mask[i] = 0.f;
        } else {
            y[i] = b[i];
            mask[i] = 1.f;
        }
    }
}

static void s_max_next(const struct backend *be, size_t n, const float *x, int k, float *y, float *mask)
{
    for (size_t i = 0; i < n; i++)
        if (x[i] > y[i]) {
            y[i] = x[i];
            mask[i] = (float)k;
        }
}

static void s_max_backward(const struct backend *be, size_t n, const float *dy, const float *mask, int k, float *dx)
{
    for (size_t i = 0; i < n; i++)
        dx[i] = mask[i] == (float)k ? dy[i] : 0.f;
}

enum { OP_SUM = 1, OP_ASUM = 2, OP_SUMSQ = 3, OP_MEAN = 4 };

static void s_reduce(const struct backend *be, int op, size_t num, size_t dim, const float *x, float coeff, float *y)
{
    for (size_t i = 0; i < num; i++, x += dim) {
        float acc = 0.f;
        if (op == OP_ASUM)
            for (size_t j = 0; j < dim; j++)
                acc += x[j] < 0 ? -x[j] : x[j];
        else if (op == OP_SUMSQ)
            for (size_t j = 0; j < dim; j++)
                acc += x[j] * x[j];
        else
            for (size_t j = 0; j < dim; j++)
                acc += x[j];
        y[i] = acc;
    }
    if (coeff != 1.f)
        for (size_t i = 0; i < num; i++)
            y[i] *= coeff;
}

static void s_reduce_backward(const struct backend *be, int op, size_t num, size_t dim, const float *x,
                              const float *dy, float coeff, float *dx)
{
    for (size_t i = 0; i < num; i++, x += dim, dx += dim) {
        float g = dy[i] * coeff;
        if (op == OP_ASUM) {
            for (size_t j = 0; j < dim; j++)
                dx[j] = (float)((x[j] > 0) - (x[j] < 0)) * g;
        } else if (op == OP_SUMSQ) {
            float a = 2 * g;
            for (size_t j = 0; j < dim; j++)
                dx[j] = a * x[j];
        } else {
            for (size_t j = 0; j < dim; j++)
                dx[j] = g;
        }
    }
}

const struct structure_ops cpu_structure_ops = {
    .copy_blocks = s_copy_blocks,
    .add_blocks = s_add_blocks,
    .scale_add = s_scale_add,
    .scale = s_scale,
    .max_first = s_max_first,
    .max_next = s_max_next,
    .max_backward = s_max_backward,
    .reduce = s_reduce,
    .reduce_backward = s_reduce_backward,
};
