/* LSTMUnit: one LSTM cell step over a 1 x N batch (Caffe's LSTMUnitLayer),
 * on any backend (be->recurrent's cell step, which the unrolled LSTM layer
 * of recurrent.c uses too). */
#include "layers/layer.h"

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
    const float *cp = LCDATA(bottom[0]), *x = LCDATA(bottom[1]), *cont = LCDATA(bottom[2]);
    float *c = LDATA(top[0]), *h = LDATA(top[1]);
    if (!cp || !x || !cont || !c || !h)
        return CREMA_ERR_NOMEM;
    l->be->recurrent->lstm_unit_forward(l->be, bottom[0]->shape[1], bottom[0]->shape[2], cp, x, cont, c, h);
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
    const float *cp = LCDATA(bottom[0]), *x = LCDATA(bottom[1]), *cont = LCDATA(bottom[2]);
    const float *c = LCDATA(top[0]), *dc = LCDIFF(top[0]), *dh = LCDIFF(top[1]);
    float *cpd = propagate_down[0] ? LDIFF(bottom[0]) : NULL;
    float *xd = propagate_down[1] ? LDIFF(bottom[1]) : NULL;
    if (!cp || !x || !cont || !c || !dc || !dh || (propagate_down[0] && !cpd) || (propagate_down[1] && !xd))
        return CREMA_ERR_NOMEM;
    l->be->recurrent->lstm_unit_backward(l->be, bottom[0]->shape[1], bottom[0]->shape[2], cp, x, cont, c, dc, dh,
                                         cpd, xd);
    return CREMA_OK;
}

static bool recurrent_runs_on(const struct backend *be)
{
    return be->recurrent != NULL;
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
    .forward_dev = unit_forward,
    .backward_dev = unit_backward,
    .runs_on = recurrent_runs_on,
    .allow_force_backward = unit_allow_force_backward,
};
