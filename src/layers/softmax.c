/* Softmax: normalised exponentials along one axis, with Caffe's subtraction
 * of the maximum and its order of operations (so results match bit for bit). */
#include "layers/layer.h"
#include "layers/softmax.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void softmax_forward_cpu(const float *in, float *out, float *scale, int outer, int channels,
                         int inner)
{
    size_t dim = (size_t)channels * (size_t)inner;
    if (out != in)
        memcpy(out, in, (size_t)outer * dim * sizeof(float));
    for (int i = 0; i < outer; i++) {
        float *o = out + (size_t)i * dim;
        /* Caffe starts from the first plane and takes the max over all. */
        memcpy(scale, o, (size_t)inner * sizeof(float));
        for (int j = 0; j < channels; j++)
            for (int k = 0; k < inner; k++) {
                float v = o[(size_t)j * inner + k];
                if (v > scale[k])
                    scale[k] = v;
            }
        for (int j = 0; j < channels; j++)
            for (int k = 0; k < inner; k++)
                o[(size_t)j * inner + k] = expf(o[(size_t)j * inner + k] - scale[k]);
        for (int k = 0; k < inner; k++)
            scale[k] = 0.f;
        for (int j = 0; j < channels; j++)
            for (int k = 0; k < inner; k++)
                scale[k] += o[(size_t)j * inner + k];
        for (int j = 0; j < channels; j++)
            for (int k = 0; k < inner; k++)
                o[(size_t)j * inner + k] /= scale[k];
    }
}

void softmax_backward_cpu(const float *top_data, const float *top_diff, float *bottom_diff,
                          float *scale, int outer, int channels, int inner)
{
    size_t dim = (size_t)channels * (size_t)inner;
    if (bottom_diff != top_diff)
        memcpy(bottom_diff, top_diff, (size_t)outer * dim * sizeof(float));
    for (int i = 0; i < outer; i++) {
        float *d = bottom_diff + (size_t)i * dim;
        const float *y = top_data + (size_t)i * dim;
        for (int k = 0; k < inner; k++) {
            float s = 0.f;
            for (int j = 0; j < channels; j++)
                s += d[(size_t)j * inner + k] * y[(size_t)j * inner + k];
            scale[k] = s;
        }
        for (int j = 0; j < channels; j++)
            for (int k = 0; k < inner; k++)
                d[(size_t)j * inner + k] -= scale[k];
    }
    size_t n = (size_t)outer * dim;
    for (size_t i = 0; i < n; i++)
        bottom_diff[i] *= top_data[i];
}

struct softmax {
    int axis, outer, channels, inner;
    float *scale;
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
    free(s->scale);
    s->scale = malloc((size_t)(s->inner ? s->inner : 1) * sizeof(float));
    if (!s->scale)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    return tensor_reshape_like(top[0], bottom[0]);
}

static int softmax_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct softmax *s = l->priv;
    const float *in = tensor_data(bottom[0]);
    float *out = tensor_data(top[0]);
    if (!in || !out)
        return CREMA_ERR_NOMEM;
    softmax_forward_cpu(in, out, s->scale, s->outer, s->channels, s->inner);
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
    softmax_backward_cpu(y, dy, dx, s->scale, s->outer, s->channels, s->inner);
    return CREMA_OK;
}

static void softmax_destroy(struct layer *l)
{
    struct softmax *s = l->priv;
    if (s)
        free(s->scale);
    free(s);
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
