/* Split: one bottom to several tops that share its data; backward sums the
 * tops' diffs (on any backend). The net inserts these where one top feeds
 * several bottoms. */
#include "layers/layer.h"

#include <string.h>

static int split_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    for (int i = 0; i < l->n_top; i++) {
        if (top[i] == bottom[0])
            return err_set(CREMA_ERR_INVALID, "Split does not allow in-place computation (top %d is its bottom)", i);
        int rc = tensor_reshape_like(top[i], bottom[0]);
        if (rc)
            return rc;
        /* share the buffer, wherever its current copy is */
        if ((rc = tensor_ensure_buffers(bottom[0])) || (rc = tensor_share_data(top[i], bottom[0])))
            return rc;
    }
    return CREMA_OK;
}

static int split_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    /* Sharing again here follows the bottom if it was reallocated. */
    for (int i = 0; i < l->n_top; i++) {
        int rc = tensor_share_data(top[i], bottom[0]);
        if (rc)
            return rc;
    }
    return CREMA_OK;
}

static int split_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                          struct tensor **bottom)
{
    if (!propagate_down[0])
        return CREMA_OK;
    const struct backend *be = l->be;
    size_t n = bottom[0]->count;
    float *bd = LDIFF(bottom[0]);
    const float *t0 = LCDIFF(top[0]);
    if (!bd || !t0)
        return CREMA_ERR_NOMEM;
    if (l->n_top == 1) {
        be->math->copy(be, n, t0, bd);
        return CREMA_OK;
    }
    const float *t1 = LCDIFF(top[1]);
    if (!t1)
        return CREMA_ERR_NOMEM;
    be->math->add(be, (int)n, t0, t1, bd);
    for (int i = 2; i < l->n_top; i++) {
        const float *ti = LCDIFF(top[i]);
        if (!ti)
            return CREMA_ERR_NOMEM;
        be->math->add(be, (int)n, bd, ti, bd);
    }
    return CREMA_OK;
}

const struct layer_kind split_layer = {
    .type = "Split",
    .min_bottoms = 1, .max_bottoms = 1,
    .min_tops = 1, .max_tops = -1,
    .reshape = split_reshape,
    .forward = split_forward,
    .backward = split_backward,
    .forward_dev = split_forward,
    .backward_dev = split_backward,
};
