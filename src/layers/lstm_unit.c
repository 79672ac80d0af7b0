/* LSTMUnit: one LSTM cell step over a 1 x N batch (Caffe's LSTMUnitLayer),
 * and the step functions the unrolled LSTM layer (recurrent.c) reuses. */
#include "layers/layer.h"
#include "layers/lstm_unit.h"

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

void lstm_unit_forward(int n, int h, const float *c_prev, const float *x, const float *cont,
                       float *c, float *out)
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

void lstm_unit_backward(int n, int h, const float *c_prev, const float *x, const float *cont,
                        const float *c, const float *dc, const float *dh, float *c_prev_diff,
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

static int unit_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const char *const names[3] = { "c_prev", "x (gate input)", "cont" };
    char s[128];
    for (int i = 0; i < 3; i++) {
        int want = i == 2 ? 2 : 3;
        if (bottom[i]->num_axes != want)
            return err_set(CREMA_ERR_SHAPE, "layer %s (LSTMUnit): bottom %d (%s) must have %d axes, got shape %s",
                           l->name, i, names[i], want, tensor_shape_string(bottom[i], s, sizeof s));
        if (bottom[i]->shape[0] != 1)
            return err_set(CREMA_ERR_SHAPE, "layer %s (LSTMUnit): bottom %d (%s) must have 1 time step (axis 0), got shape %s",
                           l->name, i, names[i], tensor_shape_string(bottom[i], s, sizeof s));
        if (bottom[i]->shape[1] != bottom[0]->shape[1])
            return err_set(CREMA_ERR_SHAPE, "layer %s (LSTMUnit): bottom %d (%s) has %d instances (axis 1), c_prev has %d",
                           l->name, i, names[i], bottom[i]->shape[1], bottom[0]->shape[1]);
    }
    int h = bottom[0]->shape[2];
    if (bottom[1]->shape[2] != 4 * h)
        return err_set(CREMA_ERR_SHAPE, "layer %s (LSTMUnit): gate input has %d channels (axis 2), needs 4 x %d = %d",
                       l->name, bottom[1]->shape[2], h, 4 * h);
    int rc = tensor_reshape_like(top[0], bottom[0]);
    if (!rc)
        rc = tensor_reshape_like(top[1], bottom[0]);
    return rc;
}

static int unit_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    float *cp = tensor_data(bottom[0]), *x = tensor_data(bottom[1]), *cont = tensor_data(bottom[2]);
    float *c = tensor_data(top[0]), *h = tensor_data(top[1]);
    if (!cp || !x || !cont || !c || !h)
        return CREMA_ERR_NOMEM;
    lstm_unit_forward(bottom[0]->shape[1], bottom[0]->shape[2], cp, x, cont, c, h);
    return CREMA_OK;
}

static int unit_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                         struct tensor **bottom)
{
    if (propagate_down[2])
        return err_set(CREMA_ERR_INVALID, "layer %s (LSTMUnit): cannot backpropagate to the sequence indicators (bottom 2, cont)",
                       l->name);
    if (!propagate_down[0] && !propagate_down[1])
        return CREMA_OK;
    float *cp = tensor_data(bottom[0]), *x = tensor_data(bottom[1]), *cont = tensor_data(bottom[2]);
    float *c = tensor_data(top[0]), *dc = tensor_diff(top[0]), *dh = tensor_diff(top[1]);
    float *cpd = propagate_down[0] ? tensor_diff(bottom[0]) : NULL;
    float *xd = propagate_down[1] ? tensor_diff(bottom[1]) : NULL;
    if (!cp || !x || !cont || !c || !dc || !dh || (propagate_down[0] && !cpd) || (propagate_down[1] && !xd))
        return CREMA_ERR_NOMEM;
    lstm_unit_backward(bottom[0]->shape[1], bottom[0]->shape[2], cp, x, cont, c, dc, dh, cpd, xd);
    return CREMA_OK;
}

static bool unit_allow_force_backward(const struct layer *l, int bottom_index)
{
    return bottom_index != 2;
}

const struct layer_kind lstm_unit_layer = {
    .type = "LSTMUnit",
    .min_bottoms = 3, .max_bottoms = 3,
    .min_tops = 2, .max_tops = 2,
    .reshape = unit_reshape,
    .forward = unit_forward,
    .backward = unit_backward,
    .allow_force_backward = unit_allow_force_backward,
};
