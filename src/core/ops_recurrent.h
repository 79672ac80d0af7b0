/* The recurrent family's kernels (src/layers/recurrent.c, lstm_unit.c): the
 * LSTM cell step and the element-wise steps of the unrolled RNN/LSTM, each
 * in the arithmetic the CPU layers have always used (sigmoid and tanh
 * evaluated in double, as Caffe's templates promote, then stored). */
#ifndef CREMA_CORE_OPS_RECURRENT_H
#define CREMA_CORE_OPS_RECURRENT_H

#include <stddef.h>

struct backend;

struct recurrent_ops {
    /* One LSTM step for n instances of hidden size h, gates [i f o g]:
     * c = cont*sigmoid(f)*c_prev + sigmoid(i)*tanh(g), out = sigmoid(o)*tanh(c) */
    void (*lstm_unit_forward)(const struct backend *be, int n, int h, const float *c_prev, const float *x,
                              const float *cont, float *c, float *out);
    /* Its gradient from dc (may be NULL: zero) and dh; c_prev_diff and
     * x_diff may be NULL; c_prev_diff may be dc itself. */
    void (*lstm_unit_backward)(const struct backend *be, int n, int h, const float *c_prev, const float *x,
                               const float *cont, const float *c, const float *dc, const float *dh,
                               float *c_prev_diff, float *x_diff);
    /* y[r * cols + j] += bias[j] */
    void (*add_bias_rows)(const struct backend *be, size_t rows, int cols, const float *bias, float *y);
    /* y[r * cols + j] = x[r * cols + j] * s[r]  (y may be x) */
    void (*scale_rows)(const struct backend *be, size_t rows, int cols, const float *s, const float *x, float *y);
    /* y = tanh(x) (in double, rounded to float) */
    void (*tanh)(const struct backend *be, size_t n, const float *x, float *y);
    /* y[r * cols + j] = tanh(y[r * cols + j] + bias[j]) */
    void (*bias_tanh)(const struct backend *be, size_t rows, int cols, const float *bias, float *y);
    /* dx = dy * (1 - y * y) */
    void (*tanh_grad)(const struct backend *be, size_t n, const float *dy, const float *y, float *dx);
};

#endif
