/* Scale: multiplies the first bottom by a learned blob (or by a second bottom)
 * broadcast over some of its axes, then optionally adds a learned bias. */
#include "layers/bias.h"
#include "layers/layer.h"

#include <stdlib.h>
#include <string.h>

struct scale {
    int axis;
    int bias_blob;           /* index in l->blobs of the bias, -1 without */
    struct bias_dims dims;   /* of the scale */
    struct bias_dims bdims;  /* of the bias */
    struct tensor *saved;    /* x, kept by forward when in place */
    struct tensor *product;  /* dy * x, summed into the scale gradient */
    float *sums;             /* outer x dim partial sums */
    size_t sums_cap;
};

static void scale_destroy(struct layer *l)
{
    struct scale *s = l->priv;
    if (!s)
        return;
    tensor_free(s->saved);
    tensor_free(s->product);
    free(s->sums);
    free(s);
    l->priv = NULL;
}

static int scale_make_blob(struct layer *l, int index, const struct tensor *x, int axis, int num_axes,
                           const char *what, const Caffe__FillerParameter *filler)
{
    int n_axes, shape[TENSOR_MAX_AXES];
    int rc = bias_blob_shape(x, axis, num_axes, what, &n_axes, shape);
    if (!rc)
        rc = tensor_reshape(l->blobs[index], n_axes, shape);
    if (!rc)
        rc = filler_fill(filler, l->blobs[index], l->rng);
    return rc;
}

/* Makes room for one more blob in l->blobs (Caffe's bias blob comes last). */
static int scale_grow_blobs(struct layer *l)
{
    int n = l->n_blobs + 1;
    struct tensor **blobs = realloc(l->blobs, (size_t)n * sizeof *blobs);
    if (!blobs)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->blobs = blobs;
    bool *ppd = realloc(l->param_propagate_down, (size_t)n * sizeof *ppd);
    if (!ppd)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->param_propagate_down = ppd;
    l->blobs[n - 1] = tensor_new();
    if (!l->blobs[n - 1])
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->param_propagate_down[n - 1] = true;
    l->n_blobs = n;
    return CREMA_OK;
}

static int scale_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__ScaleParameter def = CAFFE__SCALE_PARAMETER__INIT;
    const Caffe__ScaleParameter *p = l->param->scale_param ? l->param->scale_param : &def;
    struct scale *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = s;
    s->axis = p->axis;
    s->bias_blob = -1;
    s->saved = tensor_new();
    s->product = tensor_new();
    if (!s->saved || !s->product)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    const bool learned = l->n_bottom == 1;
    const int given = l->n_blobs;
    /* Blobs the layer owns: [scale] [bias], scale only when not a bottom. */
    const int want = (learned ? 1 : 0) + (p->bias_term ? 1 : 0);
    if (given > want)
        return err_set(CREMA_ERR_SHAPE, "has %d blobs, expected at most %d (scale%s%s)", given, want,
                       learned ? "" : " from bottom[1]", p->bias_term ? ", bias" : "");
    int rc;
    if (learned && given == 0) {
        if ((rc = layer_alloc_blobs(l, 1)))
            return rc;
        Caffe__FillerParameter one = CAFFE__FILLER_PARAMETER__INIT;
        one.type = "constant";
        one.has_value = 1;
        one.value = 1.f;
        if ((rc = scale_make_blob(l, 0, bottom[0], p->axis, p->num_axes, "scale", p->filler ? p->filler : &one)))
            return rc;
    }
    if (p->bias_term) {
        s->bias_blob = learned ? 1 : 0;
        if (l->n_blobs <= s->bias_blob) {
            if (l->n_blobs == 0)
                rc = layer_alloc_blobs(l, 1);
            else
                rc = scale_grow_blobs(l);
            if (rc)
                return rc;
            static const Caffe__FillerParameter zero = CAFFE__FILLER_PARAMETER__INIT;
            int num_axes = learned ? p->num_axes : bottom[1]->num_axes;
            if ((rc = scale_make_blob(l, s->bias_blob, bottom[0], p->axis, num_axes, "bias",
                                      p->bias_filler ? p->bias_filler : &zero)))
                return rc;
        }
    }
    return CREMA_OK;
}

static int scale_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct scale *s = l->priv;
    const struct tensor *scale = l->n_bottom > 1 ? bottom[1] : l->blobs[0];
    int rc = bias_dims_of(bottom[0], scale, s->axis, "scale", &s->dims);
    if (!rc && s->bias_blob >= 0)
        rc = bias_dims_of(bottom[0], l->blobs[s->bias_blob], s->axis, "bias", &s->bdims);
    if (!rc && top[0] != bottom[0])
        rc = tensor_reshape_like(top[0], bottom[0]);
    if (!rc && top[0] == bottom[0])
        rc = tensor_reshape_like(s->saved, bottom[0]);
    if (!rc)
        rc = tensor_reshape_like(s->product, bottom[0]);
    size_t need = s->dims.outer * s->dims.dim;
    if (!rc && need > s->sums_cap) {
        free(s->sums);
        s->sums = malloc(need * sizeof(float));
        if (!s->sums)
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        s->sums_cap = need;
    }
    return rc;
}

static int scale_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct scale *s = l->priv;
    const float *scale = tensor_data(l->n_bottom > 1 ? bottom[1] : l->blobs[0]);
    const float *x = tensor_data(bottom[0]);
    float *y = tensor_data(top[0]);
    if (!scale || !x || !y)
        return CREMA_ERR_NOMEM;
    if (top[0] == bottom[0]) {
        float *keep = tensor_data(s->saved);
        if (!keep)
            return CREMA_ERR_NOMEM;
        memcpy(keep, x, bottom[0]->count * sizeof(float));
    }
    const struct bias_dims *d = &s->dims;
    for (size_t n = 0; n < d->outer; n++)
        for (size_t j = 0; j < d->dim; j++) {
            const float f = scale[j];
            for (size_t i = 0; i < d->inner; i++)
                y[i] = f * x[i];
            x += d->inner;
            y += d->inner;
        }
    if (s->bias_blob >= 0) {
        const float *bias = tensor_data(l->blobs[s->bias_blob]);
        if (!bias)
            return CREMA_ERR_NOMEM;
        bias_add(tensor_data(top[0]), bias, &s->bdims);
    }
    return CREMA_OK;
}

static int scale_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    struct scale *s = l->priv;
    const struct bias_dims *d = &s->dims;
    const float *dy = tensor_diff(top[0]);
    if (!dy)
        return CREMA_ERR_NOMEM;
    if (s->bias_blob >= 0 && l->param_propagate_down[s->bias_blob]) {
        float *db = tensor_diff(l->blobs[s->bias_blob]);
        if (!db)
            return CREMA_ERR_NOMEM;
        bias_sum(dy, db, &s->bdims, true);
    }
    const bool learned = l->n_bottom == 1;
    struct tensor *scale = learned ? l->blobs[0] : bottom[1];
    if ((learned && l->param_propagate_down[0]) || (!learned && pd[1])) {
        const float *x = tensor_data(top[0] == bottom[0] ? s->saved : bottom[0]);
        float *prod = tensor_data(s->product), *ds = tensor_diff(scale);
        if (!x || !prod || !ds)
            return CREMA_ERR_NOMEM;
        const size_t count = bottom[0]->count;
        for (size_t i = 0; i < count; i++)
            prod[i] = dy[i] * x[i];
        /* Sum over inner, then over outer. A parameter's gradient
         * accumulates; a bottom's is written. */
        const float *p = prod;
        for (size_t r = 0; r < d->outer * d->dim; r++) {
            float acc = 0.f;
            for (size_t i = 0; i < d->inner; i++)
                acc += p[i];
            s->sums[r] = acc;
            p += d->inner;
        }
        for (size_t j = 0; j < d->dim; j++) {
            float acc = 0.f;
            for (size_t n = 0; n < d->outer; n++)
                acc += s->sums[n * d->dim + j];
            ds[j] = learned ? ds[j] + acc : acc;
        }
    }
    if (pd[0]) {
        const float *scale_data = tensor_data(scale);
        float *dx = tensor_diff(bottom[0]);
        if (!scale_data || !dx)
            return CREMA_ERR_NOMEM;
        for (size_t n = 0; n < d->outer; n++)
            for (size_t j = 0; j < d->dim; j++) {
                const float f = scale_data[j];
                for (size_t i = 0; i < d->inner; i++)
                    dx[i] = f * dy[i];
                dx += d->inner;
                dy += d->inner;
            }
    }
    return CREMA_OK;
}

const struct layer_kind scale_layer = {
    .type = "Scale",
    .min_bottoms = 1, .max_bottoms = 2, .min_tops = 1, .max_tops = 1,
    .setup = scale_setup, .reshape = scale_reshape,
    .forward = scale_forward, .backward = scale_backward, .destroy = scale_destroy,
};
