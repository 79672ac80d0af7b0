/* Weight/bias setup and bias term shared by InnerProduct and Embed. */
#include "layers/dense.h"

#include <stdlib.h>

static int dense_check_blob(const struct tensor *t, const char *what, int n, const int *want)
{
    bool same = t->num_axes == n;
    for (int i = 0; same && i < n; i++)
        same = t->shape[i] == want[i];
    if (same)
        return CREMA_OK;
    char got[160];
    if (n == 1)
        return err_set(CREMA_ERR_SHAPE, "%s blob has shape %s, expected %d", what,
                       tensor_shape_string(t, got, sizeof got), want[0]);
    return err_set(CREMA_ERR_SHAPE, "%s blob has shape %s, expected %d %d", what,
                   tensor_shape_string(t, got, sizeof got), want[0], want[1]);
}

int dense_setup_blobs(struct layer *l, bool bias_term, const int wshape[2], int n_out,
                      const Caffe__FillerParameter *weight_filler,
                      const Caffe__FillerParameter *bias_filler)
{
    static const Caffe__FillerParameter fdef = CAFFE__FILLER_PARAMETER__INIT;
    int nb = bias_term ? 2 : 1, rc;
    int bshape[1] = { n_out };
    if (l->n_blobs > 0) {
        if (l->n_blobs != nb)
            return err_set(CREMA_ERR_SHAPE, "expected %d parameter blobs, got %d", nb, l->n_blobs);
        if ((rc = dense_check_blob(l->blobs[0], "weight", 2, wshape)))
            return rc;
        if (bias_term && (rc = dense_check_blob(l->blobs[1], "bias", 1, bshape)))
            return rc;
        return CREMA_OK;
    }
    if ((rc = layer_alloc_blobs(l, nb)) || (rc = tensor_reshape(l->blobs[0], 2, wshape)) ||
        (rc = filler_fill(weight_filler ? weight_filler : &fdef, l->blobs[0], l->rng)))
        return rc;
    if (bias_term &&
        ((rc = tensor_reshape(l->blobs[1], 1, bshape)) ||
         (rc = filler_fill(bias_filler ? bias_filler : &fdef, l->blobs[1], l->rng))))
        return rc;
    return CREMA_OK;
}

int dense_bias_forward(struct layer *l, struct tensor **ones, int m, int n, const float *bias, float *y)
{
    const float *o = layer_ones(l, ones, (size_t)m);
    if (!o)
        return CREMA_ERR_NOMEM;
    l->be->math->gemm(l->be, false, false, m, n, 1, 1.f, o, bias, 1.f, y);
    return CREMA_OK;
}

int dense_bias_backward(struct layer *l, struct tensor **ones, int m, int n, const float *dy, float *dbias)
{
    const float *o = layer_ones(l, ones, (size_t)m);
    if (!o)
        return CREMA_ERR_NOMEM;
    l->be->math->gemv(l->be, true, m, n, 1.f, dy, o, 1.f, dbias);
    return CREMA_OK;
}
