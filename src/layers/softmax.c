/* Softmax: normalised exponentials along one axis, with Caffe's subtraction
 * of the maximum and its order of operations (so results match bit for bit). */
#include "layers/layer.h"
#include "layers/softmax.h"

#include "cpu/threads.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One softmax pass; it runs over ranges of the outer x inner positions,
 * each position's channels computed in Caffe's order on one thread. */
struct softmax_job {
    const float *in, *y, *dy;
    float *out;
    int channels, inner;
};

/* Positions handled together: consecutive inner positions of one outer
 * index, whose running maxima or sums live in a stack buffer. */
#define SOFTMAX_BLOCK 256

static void softmax_forward_block(const struct softmax_job *job, size_t i, size_t k0, size_t m)
{
    const size_t inner = (size_t)job->inner, dim = (size_t)job->channels * inner;
    const int channels = job->channels;
    float *o = job->out + i * dim + k0, scale[SOFTMAX_BLOCK];
    if (job->out != job->in) {
        const float *x = job->in + i * dim + k0;
        for (int j = 0; j < channels; j++)
            memcpy(o + (size_t)j * inner, x + (size_t)j * inner, m * sizeof(float));
    }
    /* Caffe starts from the first plane and takes the max over all. */
    memcpy(scale, o, m * sizeof(float));
    for (int j = 0; j < channels; j++)
        for (size_t k = 0; k < m; k++) {
            float v = o[(size_t)j * inner + k];
            if (v > scale[k])
                scale[k] = v;
        }
    for (int j = 0; j < channels; j++)
        for (size_t k = 0; k < m; k++)
            o[(size_t)j * inner + k] = expf(o[(size_t)j * inner + k] - scale[k]);
    for (size_t k = 0; k < m; k++)
        scale[k] = 0.f;
    for (int j = 0; j < channels; j++)
        for (size_t k = 0; k < m; k++)
            scale[k] += o[(size_t)j * inner + k];
    for (int j = 0; j < channels; j++)
        for (size_t k = 0; k < m; k++)
            o[(size_t)j * inner + k] /= scale[k];
}

/* bottom_diff = (top_diff - <top_diff, top_data>) * top_data, per position. */
static void softmax_backward_block(const struct softmax_job *job, size_t i, size_t k0, size_t m)
{
    const size_t inner = (size_t)job->inner, dim = (size_t)job->channels * inner;
    const int channels = job->channels;
    float *d = job->out + i * dim + k0, scale[SOFTMAX_BLOCK];
    const float *y = job->y + i * dim + k0;
    if (job->out != job->dy) {
        const float *dy = job->dy + i * dim + k0;
        for (int j = 0; j < channels; j++)
            memcpy(d + (size_t)j * inner, dy + (size_t)j * inner, m * sizeof(float));
    }
    for (size_t k = 0; k < m; k++) {
        float s = 0.f;
        for (int j = 0; j < channels; j++)
            s += d[(size_t)j * inner + k] * y[(size_t)j * inner + k];
        scale[k] = s;
    }
    for (int j = 0; j < channels; j++)
        for (size_t k = 0; k < m; k++)
            d[(size_t)j * inner + k] -= scale[k];
    for (int j = 0; j < channels; j++)
        for (size_t k = 0; k < m; k++)
            d[(size_t)j * inner + k] *= y[(size_t)j * inner + k];
}

/* Positions [p0, p1) of the flattened outer x inner, cut into blocks that
 * stay within one outer index. */
static void softmax_blocks(const struct softmax_job *job, size_t p0, size_t p1,
                           void (*block)(const struct softmax_job *, size_t, size_t, size_t))
{
    const size_t inner = (size_t)job->inner;
    while (p0 < p1) {
        size_t i = p0 / inner, k = p0 % inner;
        size_t m = inner - k;
        if (m > p1 - p0)
            m = p1 - p0;
        if (m > SOFTMAX_BLOCK)
            m = SOFTMAX_BLOCK;
        block(job, i, k, m);
        p0 += m;
    }
}

static int softmax_forward_range(void *ctx, size_t p0, size_t p1)
{
    softmax_blocks(ctx, p0, p1, softmax_forward_block);
    return 0;
}

static int softmax_backward_range(void *ctx, size_t p0, size_t p1)
{
    softmax_blocks(ctx, p0, p1, softmax_backward_block);
    return 0;
}

void softmax_forward_cpu(const float *in, float *out, int outer, int channels, int inner)
{
    if (inner <= 0 || channels <= 0)
        return;
    struct softmax_job job = { .in = in, .out = out, .channels = channels, .inner = inner };
    cpu_parallel_for((size_t)outer * (size_t)inner, cpu_grain(16 * (size_t)channels),
                     softmax_forward_range, &job);
}

void softmax_backward_cpu(const float *top_data, const float *top_diff, float *bottom_diff, int outer,
                          int channels, int inner)
{
    if (inner <= 0 || channels <= 0)
        return;
    struct softmax_job job = { .y = top_data, .dy = top_diff, .out = bottom_diff,
                               .channels = channels, .inner = inner };
    cpu_parallel_for((size_t)outer * (size_t)inner, cpu_grain(4 * (size_t)channels),
                     softmax_backward_range, &job);
}

struct softmax {
    int axis, outer, channels, inner;
};

static int softmax_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    (void)top;
    l->priv = calloc(1, sizeof(struct softmax));
    return l->priv ? CREMA_OK : err_set(CREMA_ERR_NOMEM, "out of memory");
}

static int softmax_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__SoftmaxParameter def = CAFFE__SOFTMAX_PARAMETER__INIT;
    const Caffe__SoftmaxParameter *p = l->param->softmax_param ? l->param->softmax_param : &def;
    struct softmax *s = l->priv;
    int axis = tensor_canonical_axis(bottom[0], p->axis);
    if (axis < 0)
        return err_set(CREMA_ERR_INVALID, "softmax_param.axis %d is out of range for a %d-axis bottom",
                       p->axis, bottom[0]->num_axes);
    s->axis = axis;
    s->outer = (int)tensor_count_range(bottom[0], 0, axis);
    s->channels = bottom[0]->shape[axis];
    s->inner = (int)tensor_count_range(bottom[0], axis + 1, bottom[0]->num_axes);
    return tensor_reshape_like(top[0], bottom[0]);
}

static int softmax_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct softmax *s = l->priv;
    const float *in = tensor_data(bottom[0]);
    float *out = tensor_data(top[0]);
    if (!in || !out)
        return CREMA_ERR_NOMEM;
    softmax_forward_cpu(in, out, s->outer, s->channels, s->inner);
    return CREMA_OK;
}

static int softmax_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                            struct tensor **bottom)
{
    struct softmax *s = l->priv;
    if (!propagate_down[0])
        return CREMA_OK;
    const float *y = tensor_data(top[0]), *dy = tensor_diff(top[0]);
    float *dx = tensor_diff(bottom[0]);
    if (!y || !dy || !dx)
        return CREMA_ERR_NOMEM;
    softmax_backward_cpu(y, dy, dx, s->outer, s->channels, s->inner);
    return CREMA_OK;
}

static void softmax_destroy(struct layer *l)
{
    free(l->priv);
    l->priv = NULL;
}

const struct layer_kind softmax_layer = {
    .type = "Softmax",
    .min_bottoms = 1, .max_bottoms = 1, .min_tops = 1, .max_tops = 1,
    .setup = softmax_setup,
    .reshape = softmax_reshape,
    .forward = softmax_forward,
    .backward = softmax_backward,
    .destroy = softmax_destroy,
};
