/* Embed: each input value is an index into a learned input_dim x num_output
 * table (a one-hot InnerProduct); gradients reach the table only. */
#include "layers/dense.h"
#include "layers/layer.h"

#include <math.h>
#include <stdlib.h>

struct embed {
    int M, N, K;
    bool bias_term;
    struct tensor *ones; /* bias multiplier */
};

static int embed_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__EmbedParameter def = CAFFE__EMBED_PARAMETER__INIT;
    const Caffe__EmbedParameter *ep = l->param->embed_param ? l->param->embed_param : &def;
    struct embed *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = s;
    if (ep->num_output == 0 || ep->num_output > (1u << 30))
        return err_set(CREMA_ERR_INVALID, "embed_param.num_output must be given and positive");
    if (ep->input_dim == 0 || ep->input_dim > (1u << 30))
        return err_set(CREMA_ERR_INVALID, "embed_param.input_dim must be given and positive");
    s->N = (int)ep->num_output;
    s->K = (int)ep->input_dim;
    s->bias_term = ep->bias_term;
    int wshape[2] = { s->K, s->N };
    return dense_setup_blobs(l, s->bias_term, wshape, s->N, ep->weight_filler, ep->bias_filler);
}

static int embed_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct embed *s = l->priv;
    const struct tensor *b = bottom[0];
    if (b->num_axes >= TENSOR_MAX_AXES)
        return err_set(CREMA_ERR_SHAPE, "input has too many axes (%d)", b->num_axes);
    if (b->count > (1u << 30))
        return err_set(CREMA_ERR_SHAPE, "input too large");
    s->M = (int)b->count;
    int shape[TENSOR_MAX_AXES];
    for (int i = 0; i < b->num_axes; i++)
        shape[i] = b->shape[i];
    shape[b->num_axes] = s->N;
    return tensor_reshape(top[0], b->num_axes + 1, shape);
}

/* Caffe only DCHECKs the indices; here a bad one is an error, not a crash. */
static int embed_index(const struct embed *s, float v, int item, int *out)
{
    if (!(v >= 0.f && v < (float)s->K) || v != floorf(v))
        return err_set(CREMA_ERR_INVALID,
                       "input %d is %g; embed indices must be integers in [0, input_dim %d)",
                       item, (double)v, s->K);
    *out = (int)v;
    return CREMA_OK;
}

/* The indices are read and checked on the host (a bad one is an error, not
 * a stray read on a device); the rows move on l->be. */
static int embed_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct embed *s = l->priv;
    const float *x = tensor_cdata(bottom[0]);
    const float *w = LCDATA(l->blobs[0]);
    float *y = LDATA(top[0]);
    if (!x || !w || !y)
        return CREMA_ERR_NOMEM;
    for (int n = 0; n < s->M; n++) {
        int idx = 0, rc = embed_index(s, x[n], n, &idx);
        if (rc)
            return rc;
        l->be->structure->copy_blocks(l->be, w + (size_t)idx * s->N, 0, y + (size_t)n * s->N, 0, 1, (size_t)s->N);
    }
    if (s->bias_term) {
        const float *bias = LCDATA(l->blobs[1]);
        return bias ? dense_bias_forward(l, &s->ones, s->M, s->N, bias, y) : CREMA_ERR_NOMEM;
    }
    return CREMA_OK;
}

static int embed_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                          struct tensor **bottom)
{
    struct embed *s = l->priv;
    if (propagate_down[0])
        return err_set(CREMA_ERR_UNSUPPORTED,
                       "Embed cannot back-propagate to its input (indices); set "
                       "propagate_down: false for it");
    const float *dy = LCDIFF(top[0]);
    if (!dy)
        return CREMA_ERR_NOMEM;
    if (l->param_propagate_down[0]) {
        const float *x = tensor_cdata(bottom[0]);
        float *dw = LDIFF(l->blobs[0]);
        if (!x || !dw)
            return CREMA_ERR_NOMEM;
        /* items in order: a row used twice sums in the same order anywhere */
        for (int n = 0; n < s->M; n++) {
            int idx = 0, rc = embed_index(s, x[n], n, &idx);
            if (rc)
                return rc;
            l->be->math->axpy(l->be, s->N, 1.f, dy + (size_t)n * s->N, dw + (size_t)idx * s->N);
        }
    }
    if (s->bias_term && l->param_propagate_down[1]) {
        float *db = LDIFF(l->blobs[1]);
        return db ? dense_bias_backward(l, &s->ones, s->M, s->N, dy, db) : CREMA_ERR_NOMEM;
    }
    return CREMA_OK;
}

static bool embed_runs_on(const struct backend *be)
{
    return be->structure != NULL;
}

static bool embed_allow_force_backward(const struct layer *l, int bottom_index)
{
    return false;
}

static void embed_destroy(struct layer *l)
{
    struct embed *s = l->priv;
    if (s)
        tensor_free(s->ones);
    free(s);
    l->priv = NULL;
}

const struct layer_kind embed_layer = {
    .type = "Embed",
    .min_bottoms = 1, .max_bottoms = 1,
    .min_tops = 1, .max_tops = 1,
    .setup = embed_setup,
    .reshape = embed_reshape,
    .forward = embed_forward,
    .backward = embed_backward,
    .forward_dev = embed_forward,
    .backward_dev = embed_backward,
    .runs_on = embed_runs_on,
    .destroy = embed_destroy,
    .allow_force_backward = embed_allow_force_backward,
};
