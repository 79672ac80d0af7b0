/* The recurrent family on the host (core/ops_recurrent.h): the LSTM cell
 * step and the unrolled layers' element-wise loops, as they always were. */
#include "core/ops_recurrent.h"
#include "cpu/backend_cpu.h"

#include <math.h>

/* Caffe's LSTMUnit evaluates these in double (its own sigmoid/tanh templates
 * promote), then stores floats; doing the same keeps us bit-close. */
static float unit_sigmoid(float x)
{
    return (float)(1.0 / (1.0 + exp(-(double)x)));
}

static float unit_tanh(float x)
{
    return (float)(2.0 * (1.0 / (1.0 + exp(-2.0 * (double)x))) - 1.0);
}

static void r_lstm_forward(const struct backend *be, int n, int h, const float *c_prev, const float *x,
                           const float *cont, float *c, float *out)
{
    for (int k = 0; k < n; k++) {
        const float *xk = x + (size_t)k * 4 * h;
        for (int d = 0; d < h; d++) {
            float i = unit_sigmoid(xk[d]);
            /* cont == 0 must cut c_prev even when it holds inf or NaN. */
            float f = cont[k] == 0.f ? 0.f : cont[k] * unit_sigmoid(xk[h + d]);
            float o = unit_sigmoid(xk[2 * h + d]);
            float g = unit_tanh(xk[3 * h + d]);
            float cv = f * c_prev[(size_t)k * h + d] + i * g;
            c[(size_t)k * h + d] = cv;
            out[(size_t)k * h + d] = o * unit_tanh(cv);
        }
    }
}

static void r_lstm_backward(const struct backend *be, int n, int h, const float *c_prev, const float *x,
                            const float *cont, const float *c, const float *dc, const float *dh, float *c_prev_diff,
                            float *x_diff)
{
    for (int k = 0; k < n; k++) {
        const float *xk = x + (size_t)k * 4 * h;
        for (int d = 0; d < h; d++) {
            size_t j = (size_t)k * h + d;
            float i = unit_sigmoid(xk[d]);
            float f = cont[k] == 0.f ? 0.f : cont[k] * unit_sigmoid(xk[h + d]);
            float o = unit_sigmoid(xk[2 * h + d]);
            float g = unit_tanh(xk[3 * h + d]);
            float tanh_c = unit_tanh(c[j]);
            float c_term = (dc ? dc[j] : 0.f) + dh[j] * o * (1 - tanh_c * tanh_c);
            if (c_prev_diff)
                c_prev_diff[j] = c_term * f;
            if (x_diff) {
                float *xd = x_diff + (size_t)k * 4 * h;
                xd[d] = c_term * g * i * (1 - i);
                xd[h + d] = c_term * c_prev[j] * f * (1 - f);
                xd[2 * h + d] = dh[j] * tanh_c * o * (1 - o);
                xd[3 * h + d] = c_term * i * (1 - g * g);
            }
        }
    }
}

static void r_add_bias_rows(const struct backend *be, size_t rows, int cols, const float *bias, float *y)
{
    for (size_t i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            y[i * cols + j] += bias[j];
}

static void r_scale_rows(const struct backend *be, size_t rows, int cols, const float *s, const float *x, float *y)
{
    for (size_t n = 0; n < rows; n++)
        for (int d = 0; d < cols; d++)
            y[n * cols + d] = x[n * cols + d] * s[n];
}

static float rec_tanh(float x)
{
    return (float)tanh((double)x);
}

static void r_tanh(const struct backend *be, size_t n, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = rec_tanh(x[i]);
}

static void r_bias_tanh(const struct backend *be, size_t rows, int cols, const float *bias, float *y)
{
    for (size_t n = 0; n < rows; n++)
        for (int d = 0; d < cols; d++)
            y[n * cols + d] = rec_tanh(y[n * cols + d] + bias[d]);
}

static void r_tanh_grad(const struct backend *be, size_t n, const float *dy, const float *y, float *dx)
{
    for (size_t i = 0; i < n; i++)
        dx[i] = dy[i] * (1 - y[i] * y[i]);
}

const struct recurrent_ops cpu_recurrent_ops = {
    .lstm_unit_forward = r_lstm_forward,
    .lstm_unit_backward = r_lstm_backward,
    .add_bias_rows = r_add_bias_rows,
    .scale_rows = r_scale_rows,
    .tanh = r_tanh,
    .bias_tanh = r_bias_tanh,
    .tanh_grad = r_tanh_grad,
};
