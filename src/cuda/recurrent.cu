/* The recurrent family on the GPU (core/ops_recurrent.h): one thread per
 * element, sigmoid and tanh in double as on the CPU (Caffe's templates
 * promote), so the two agree to a float's rounding. */
#include "cuda/common.cuh"
#include "core/ops_recurrent.h"

__device__ static float unit_sigmoid(float x)
{
    return (float)(1.0 / (1.0 + exp(-(double)x)));
}

__device__ static float unit_tanh(float x)
{
    return (float)(2.0 * (1.0 / (1.0 + exp(-2.0 * (double)x))) - 1.0);
}

__global__ void k_lstm_forward(size_t total, int h, const float *c_prev, const float *x, const float *cont, float *c,
                               float *out)
{
    CUDA_LOOP(j, total)
    {
        size_t k = j / h, d = j % h;
        const float *xk = x + k * 4 * h;
        float i = unit_sigmoid(xk[d]);
        float f = cont[k] == 0.f ? 0.f : __fmul_rn(cont[k], unit_sigmoid(xk[h + d]));
        float o = unit_sigmoid(xk[2 * h + d]);
        float g = unit_tanh(xk[3 * h + d]);
        float cv = __fadd_rn(__fmul_rn(f, c_prev[j]), __fmul_rn(i, g));
        c[j] = cv;
        out[j] = __fmul_rn(o, unit_tanh(cv));
    }
}

static void r_lstm_forward(const struct backend *be, int n, int h, const float *c_prev, const float *x,
                           const float *cont, float *c, float *out)
{
    size_t total = (size_t)n * h;
    CUDA_LAUNCH(be, k_lstm_forward, total, total, h, c_prev, x, cont, c, out);
}

__global__ void k_lstm_backward(size_t total, int h, const float *c_prev, const float *x, const float *cont,
                                const float *c, const float *dc, const float *dh, float *c_prev_diff, float *x_diff)
{
    CUDA_LOOP(j, total)
    {
        size_t k = j / h, d = j % h;
        const float *xk = x + k * 4 * h;
        float i = unit_sigmoid(xk[d]);
        float f = cont[k] == 0.f ? 0.f : __fmul_rn(cont[k], unit_sigmoid(xk[h + d]));
        float o = unit_sigmoid(xk[2 * h + d]);
        float g = unit_tanh(xk[3 * h + d]);
        float tanh_c = unit_tanh(c[j]);
        float one_m = __fsub_rn(1.f, __fmul_rn(tanh_c, tanh_c));
        float c_term = __fadd_rn(dc ? dc[j] : 0.f, __fmul_rn(__fmul_rn(dh[j], o), one_m));
        float cp = c_prev[j]; /* read before c_prev_diff, which may alias dc only */
        if (c_prev_diff)
            c_prev_diff[j] = __fmul_rn(c_term, f);
        if (x_diff) {
            float *xd = x_diff + k * 4 * h;
            xd[d] = __fmul_rn(__fmul_rn(__fmul_rn(c_term, g), i), __fsub_rn(1.f, i));
            xd[h + d] = __fmul_rn(__fmul_rn(__fmul_rn(c_term, cp), f), __fsub_rn(1.f, f));
            xd[2 * h + d] = __fmul_rn(__fmul_rn(__fmul_rn(dh[j], tanh_c), o), __fsub_rn(1.f, o));
            xd[3 * h + d] = __fmul_rn(__fmul_rn(c_term, i), __fsub_rn(1.f, __fmul_rn(g, g)));
        }
    }
}

static void r_lstm_backward(const struct backend *be, int n, int h, const float *c_prev, const float *x,
                            const float *cont, const float *c, const float *dc, const float *dh, float *c_prev_diff,
                            float *x_diff)
{
    size_t total = (size_t)n * h;
    CUDA_LAUNCH(be, k_lstm_backward, total, total, h, c_prev, x, cont, c, dc, dh, c_prev_diff, x_diff);
}

__global__ void k_add_bias_rows(size_t total, int cols, const float *bias, float *y)
{
    CUDA_LOOP(t, total) y[t] += bias[t % cols];
}

static void r_add_bias_rows(const struct backend *be, size_t rows, int cols, const float *bias, float *y)
{
    size_t total = rows * cols;
    CUDA_LAUNCH(be, k_add_bias_rows, total, total, cols, bias, y);
}

__global__ void k_scale_rows(size_t total, int cols, const float *s, const float *x, float *y)
{
    CUDA_LOOP(t, total) y[t] = x[t] * s[t / cols];
}

static void r_scale_rows(const struct backend *be, size_t rows, int cols, const float *s, const float *x, float *y)
{
    size_t total = rows * cols;
    CUDA_LAUNCH(be, k_scale_rows, total, total, cols, s, x, y);
}

__global__ void k_tanh(size_t n, const float *x, float *y)
{
    CUDA_LOOP(i, n) y[i] = (float)tanh((double)x[i]);
}

static void r_tanh(const struct backend *be, size_t n, const float *x, float *y)
{
    CUDA_LAUNCH(be, k_tanh, n, n, x, y);
}

__global__ void k_bias_tanh(size_t total, int cols, const float *bias, float *y)
{
    CUDA_LOOP(t, total) y[t] = (float)tanh((double)(y[t] + bias[t % cols]));
}

static void r_bias_tanh(const struct backend *be, size_t rows, int cols, const float *bias, float *y)
{
    size_t total = rows * cols;
    CUDA_LAUNCH(be, k_bias_tanh, total, total, cols, bias, y);
}

__global__ void k_tanh_grad(size_t n, const float *dy, const float *y, float *dx)
{
    CUDA_LOOP(i, n) dx[i] = __fmul_rn(dy[i], __fsub_rn(1.f, __fmul_rn(y[i], y[i])));
}

static void r_tanh_grad(const struct backend *be, size_t n, const float *dy, const float *y, float *dx)
{
    CUDA_LAUNCH(be, k_tanh_grad, n, n, dy, y, dx);
}

static struct recurrent_ops table;

extern "C" const struct recurrent_ops *cuda_recurrent_ops(void)
{
    table.lstm_unit_forward = r_lstm_forward;
    table.lstm_unit_backward = r_lstm_backward;
    table.add_bias_rows = r_add_bias_rows;
    table.scale_rows = r_scale_rows;
    table.tanh = r_tanh;
    table.bias_tanh = r_bias_tanh;
    table.tanh_grad = r_tanh_grad;
    return &table;
}
