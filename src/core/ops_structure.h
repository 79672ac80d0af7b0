/* The structure family's kernels (src/layers/structure.c, split.c,
 * eltwise.c, reduction.c, embed.c): moving blocks of data, and the few
 * element-wise steps those layers take that plain math does not cover, each
 * in the exact arithmetic the CPU layers have always used. */
#ifndef CREMA_CORE_OPS_STRUCTURE_H
#define CREMA_CORE_OPS_STRUCTURE_H

#include <stdbool.h>
#include <stddef.h>

struct backend;

struct structure_ops {
    /* n blocks of len floats: dst[i * dst_step + j] = src[i * src_step + j] */
    void (*copy_blocks)(const struct backend *be, const float *src, size_t src_step, float *dst, size_t dst_step,
                        size_t n, size_t len);
    /* the same with dst[...] += src[...] */
    void (*add_blocks)(const struct backend *be, const float *src, size_t src_step, float *dst, size_t dst_step,
                       size_t n, size_t len);
    /* y[i] += coeff * x[i] (Eltwise SUM, unfused: the product rounds first) */
    void (*scale_add)(const struct backend *be, size_t n, float coeff, const float *x, float *y);
    /* y[i] = coeff * x[i] */
    void (*scale)(const struct backend *be, size_t n, float coeff, const float *x, float *y);
    /* Eltwise MAX. first: y = max(a, b), mask = 0 where a > b, else 1 (a
     * tie goes to b); next: where x > y, y = x and mask = k. The mask holds
     * bottom indices as floats. */
    void (*max_first)(const struct backend *be, size_t n, const float *a, const float *b, float *y, float *mask);
    void (*max_next)(const struct backend *be, size_t n, const float *x, int k, float *y, float *mask);
    /* dx[i] = mask[i] == k ? dy[i] : 0 */
    void (*max_backward)(const struct backend *be, size_t n, const float *dy, const float *mask, int k, float *dx);
    /* Reduction over num rows of dim values: op 1 SUM, 2 ASUM, 3 SUMSQ, 4
     * MEAN (Caffe's ReductionOp numbers), each row summed in order, then
     * y *= coeff when coeff != 1. */
    void (*reduce)(const struct backend *be, int op, size_t num, size_t dim, const float *x, float coeff,
                   float *y);
    /* dx for a row: g = dy[i] * coeff; ASUM sign(x) g, SUMSQ 2 g x, else g */
    void (*reduce_backward)(const struct backend *be, int op, size_t num, size_t dim, const float *x,
                            const float *dy, float coeff, float *dx);
};

#endif
