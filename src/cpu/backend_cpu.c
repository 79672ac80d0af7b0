/* The CPU backend's table: OpenBLAS and crema's loops (cpu/math.c), the
 * solver arithmetic (cpu/solver_ops.c), and the layer families' kernels;
 * and the mirror backend, the same table over memory of its own. */
#include "cpu/backend_cpu.h"
#include "cpu/math.h"
#include "util/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void m_gemm(const struct backend *be, bool ta, bool tb, int M, int N, int K, float alpha, const float *A,
                   const float *B, float beta, float *C)
{
    cpu_gemm(ta, tb, M, N, K, alpha, A, B, beta, C);
}

static void m_gemv(const struct backend *be, bool ta, int M, int N, float alpha, const float *A, const float *x,
                   float beta, float *y)
{
    cpu_gemv(ta, M, N, alpha, A, x, beta, y);
}

static void m_axpy(const struct backend *be, int n, float alpha, const float *x, float *y)
{
    cpu_axpy(n, alpha, x, y);
}

static void m_axpby(const struct backend *be, int n, float alpha, const float *x, float beta, float *y)
{
    cpu_axpby(n, alpha, x, beta, y);
}

static void m_scal(const struct backend *be, int n, float alpha, float *x)
{
    cpu_scal(n, alpha, x);
}

static float m_dot(const struct backend *be, int n, const float *x, const float *y)
{
    return cpu_dot(n, x, y);
}

static float m_asum(const struct backend *be, int n, const float *x)
{
    return cpu_asum(n, x);
}

/* Summed in index order into one float, as the solvers' clipping does. */
static float m_sumsq(const struct backend *be, int n, const float *x)
{
    float s = 0;
    for (int i = 0; i < n; i++)
        s += x[i] * x[i];
    return s;
}

static void m_set(const struct backend *be, size_t n, float v, float *x)
{
    if (v == 0.f) {
        memset(x, 0, n * sizeof *x);
        return;
    }
    for (size_t i = 0; i < n; i++)
        x[i] = v;
}

static void m_copy(const struct backend *be, size_t n, const float *x, float *y)
{
    if (x != y)
        memcpy(y, x, n * sizeof *y);
}

static void m_add_scalar(const struct backend *be, int n, float alpha, float *x)
{
    for (int i = 0; i < n; i++)
        x[i] += alpha;
}

#define BINARY(name, expr)                                                                   \
    static void name(const struct backend *be, int n, const float *a, const float *b, float *y) \
    {                                                                                        \
        for (int i = 0; i < n; i++)                                                          \
            y[i] = expr;                                                                     \
    }
BINARY(m_add, a[i] + b[i])
BINARY(m_sub, a[i] - b[i])
BINARY(m_mul, a[i] * b[i])
BINARY(m_div, a[i] / b[i])

#define UNARY(name, expr)                                                      \
    static void name(const struct backend *be, int n, const float *a, float *y) \
    {                                                                          \
        for (int i = 0; i < n; i++)                                            \
            y[i] = expr;                                                       \
    }
UNARY(m_abs, fabsf(a[i]))
UNARY(m_exp, expf(a[i]))
UNARY(m_log, logf(a[i]))
UNARY(m_sqr, a[i] * a[i])
UNARY(m_sqrt, sqrtf(a[i]))
UNARY(m_sign, (float)((0.f < a[i]) - (a[i] < 0.f)))

static void m_powx(const struct backend *be, int n, const float *a, float alpha, float *y)
{
    for (int i = 0; i < n; i++)
        y[i] = powf(a[i], alpha);
}

static void m_im2col(const struct backend *be, const float *im, int channels, int height, int width, int kh,
                     int kw, int ph, int pw, int sh, int sw, int dh, int dw, float *col)
{
    im2col(im, channels, height, width, kh, kw, ph, pw, sh, sw, dh, dw, col);
}

static void m_col2im(const struct backend *be, const float *col, int channels, int height, int width, int kh,
                     int kw, int ph, int pw, int sh, int sw, int dh, int dw, float *im)
{
    col2im(col, channels, height, width, kh, kw, ph, pw, sh, sw, dh, dw, im);
}

static void m_im2col_nd(const struct backend *be, const float *im, int n, const int *im_shape,
                        const int *col_shape, const int *kernel, const int *pad, const int *stride,
                        const int *dilation, float *col)
{
    im2col_nd(im, n, im_shape, col_shape, kernel, pad, stride, dilation, col);
}

static void m_col2im_nd(const struct backend *be, const float *col, int n, const int *im_shape,
                        const int *col_shape, const int *kernel, const int *pad, const int *stride,
                        const int *dilation, float *im)
{
    col2im_nd(col, n, im_shape, col_shape, kernel, pad, stride, dilation, im);
}

const struct math_ops cpu_math_ops = {
    .gemm = m_gemm, .gemv = m_gemv, .axpy = m_axpy, .axpby = m_axpby, .scal = m_scal,
    .dot = m_dot, .asum = m_asum, .sumsq = m_sumsq, .set = m_set, .copy = m_copy,
    .add_scalar = m_add_scalar, .add = m_add, .sub = m_sub, .mul = m_mul, .div = m_div,
    .abs = m_abs, .exp = m_exp, .log = m_log, .sqr = m_sqr, .sqrt = m_sqrt, .sign = m_sign,
    .powx = m_powx,
    .im2col = m_im2col, .col2im = m_col2im, .im2col_nd = m_im2col_nd, .col2im_nd = m_col2im_nd,
};

static int host_ok(const struct backend *be)
{
    return CREMA_OK;
}

/* The mirror's "device" memory: plain host allocations, kept apart from the
 * tensors' host copies. */
static void *mirror_alloc(const struct backend *be, size_t bytes)
{
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p)
        err_set(CREMA_ERR_NOMEM, "cannot allocate %zu bytes", bytes);
    return p;
}

static void mirror_free(const struct backend *be, void *p)
{
    free(p);
}

static int mirror_copy(const struct backend *be, void *dst, const void *src, size_t bytes)
{
    memcpy(dst, src, bytes);
    return CREMA_OK;
}

/* The mirror computes as it is called: nothing to pin, nothing queued. */
static int mirror_register(const struct backend *be, void *p, size_t bytes)
{
    return CREMA_OK;
}

static void mirror_unregister(const struct backend *be, void *p)
{
}

static int mirror_mark(const struct backend *be, void **ev)
{
    return CREMA_OK;
}

static int mirror_mark_wait(const struct backend *be, void *ev)
{
    return CREMA_OK;
}

static void mirror_mark_free(const struct backend *be, void *ev)
{
}

/* Each family's table, where the family has one (NULL: its layers run
 * their host code). One line per family; see core/backend.h. */
#define CPU_FAMILIES                      \
    .math = &cpu_math_ops,                \
    .solver = &cpu_solver_ops,            \
    .neuron = &cpu_neuron_ops,            \
                                          \
    .vision = &cpu_vision_ops,            \
                                          \
    .loss = &cpu_loss_ops,                \
                                          \
    .structure = &cpu_structure_ops,      \
                                          \
    .norm = &cpu_norm_ops,                \
                                          \
    .recurrent = &cpu_recurrent_ops

const struct backend cpu_backend = {
    .name = "cpu",
    .device = DEVICE_CPU,
    .host_memory = true,
    .sync = host_ok,
    .status = host_ok,
    CPU_FAMILIES,
};

const struct backend cpu_mirror_backend = {
    .name = "cpu-mirror",
    .device = DEVICE_CPU,
    .host_memory = false,
    .alloc = mirror_alloc,
    .free = mirror_free,
    .upload = mirror_copy,
    .download = mirror_copy,
    .host_register = mirror_register,
    .host_unregister = mirror_unregister,
    .upload_side = mirror_copy,
    .mark = mirror_mark,
    .mark_wait = mirror_mark_wait,
    .mark_free = mirror_mark_free,
    .sync = host_ok,
    .status = host_ok,
    CPU_FAMILIES,
};
