/* Embed: each input value is an index into a learned input_dim x num_output
 * table (a one-hot InnerProduct); gradients reach the table only. */
#include "cpu/math.h"
#include "layers/layer.h"

#include <math.h>
#include <stdlib.h>

struct embed {
    int M, N, K;
    bool bias_term;
    float *ones;
    size_t ones_cap;
};

static int embed_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__EmbedParameter def = CAFFE__EMBED_PARAMETER__INIT;
    static const Caffe__FillerParameter fdef = CAFFE__FILLER_PARAMETER__INIT;
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
    int nb = s->bias_term ? 2 : 1, rc;
    int wshape[2] = { s->K, s->N }, bshape[1] = { s->N };
    if (l->n_blobs > 0) {
        char got[160];
        if (l->n_blobs != nb)
            return err_set(CREMA_ERR_SHAPE, "expected %d parameter blobs, got %d", nb, l->n_blobs);
        const struct tensor *w = l->blobs[0];
        if (w->num_axes != 2 || w->shape[0] != s->K || w->shape[1] != s->N)
            return err_set(CREMA_ERR_SHAPE, "weight blob has shape %s, expected %d %d",
                           tensor_shape_string(w, got, sizeof got), s->K, s->N);
        if (s->bias_term && (l->blobs[1]->num_axes != 1 || l->blobs[1]->shape[0] != s->N))
            return err_set(CREMA_ERR_SHAPE, "bias blob has shape %s, expected %d",
                           tensor_shape_string(l->blobs[1], got, sizeof got), s->N);
        return CREMA_OK;
    }
    if ((rc = layer_alloc_blobs(l, nb)) || (rc = tensor_reshape(l->blobs[0], 2, wshape)) ||
        (rc = filler_fill(ep->weight_filler ? ep->weight_filler : &fdef, l->blobs[0], l->rng)))
        return rc;
    if (s->bias_term &&
        ((rc = tensor_reshape(l->blobs[1], 1, bshape)) ||
         (rc = filler_fill(ep->bias_filler ? ep->bias_filler : &fdef, l->blobs[1], l->rng))))
        return rc;
    return CREMA_OK;
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
    int rc = tensor_reshape(top[0], b->num_axes + 1, shape);
    if (rc || !s->bias_term)
        return rc;
    size_t n = s->M ? (size_t)s->M : 1;
    if (s->ones_cap < n) {
        float *p = realloc(s->ones, n * sizeof *p);
        if (!p)
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        s->ones = p;
        s->ones_cap = n;
    }
    cpu_set((int)n, 1.f, s->ones);
    return CREMA_OK;
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

static int embed_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct embed *s = l->priv;
    const float *x = tensor_data(bottom[0]);
    const float *w = tensor_data(l->blobs[0]);
    float *y = tensor_data(top[0]);
    for (int n = 0; n < s->M; n++) {
        int idx = 0, rc = embed_index(s, x[n], n, &idx);
        if (rc)
            return rc;
        for (int j = 0; j < s->N; j++)
            y[(size_t)n * s->N + j] = w[(size_t)idx * s->N + j];
    }
    if (s->bias_term)
        cpu_gemm(false, false, s->M, s->N, 1, 1.f, s->ones, tensor_data(l->blobs[1]), 1.f, y);
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
    const float *dy = tensor_diff(top[0]);
    if (l->param_propagate_down[0]) {
        const float *x = tensor_data(bottom[0]);
        float *dw = tensor_diff(l->blobs[0]);
        for (int n = 0; n < s->M; n++) {
            int idx = 0, rc = embed_index(s, x[n], n, &idx);
            if (rc)
                return rc;
            cpu_axpy(s->N, 1.f, dy + (size_t)n * s->N, dw + (size_t)idx * s->N);
        }
    }
    if (s->bias_term && l->param_propagate_down[1])
        cpu_gemv(true, s->M, s->N, 1.f, dy, s->ones, 1.f, tensor_diff(l->blobs[1]));
    return CREMA_OK;
}

static bool embed_allow_force_backward(const struct layer *l, int bottom_index)
{
    return false;
}

static void embed_destroy(struct layer *l)
{
    struct embed *s = l->priv;
    if (s)
        free(s->ones);
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
    .destroy = embed_destroy,
    .allow_force_backward = embed_allow_force_backward,
};
