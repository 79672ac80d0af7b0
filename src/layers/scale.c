/* Scale: multiplies the first bottom by a learned blob (or by a second bottom)
 * broadcast over some of its axes, then optionally adds a learned bias. */
#include "layers/bias.h"
#include "layers/layer.h"

#include <stdlib.h>

struct scale {
    int axis;
    int bias_blob;           /* index in l->blobs of the bias, -1 without */
    struct bias_dims dims;   /* of the scale */
    struct bias_dims bdims;  /* of the bias */
    struct tensor *saved;    /* x, kept by forward when in place */
};

static void scale_destroy(struct layer *l)
{
    struct scale *s = l->priv;
    if (!s)
        return;
    tensor_free(s->saved);
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
    if (!s->saved)
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
    return rc;
}

static int scale_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct scale *s = l->priv;
    const struct backend *be = l->be;
    const float *scale = LCDATA(l->n_bottom > 1 ? bottom[1] : l->blobs[0]);
    const float *x = LCDATA(bottom[0]);
    if (!scale || !x)
        return CREMA_ERR_NOMEM;
    if (top[0] == bottom[0]) {
        float *keep = LDATA(s->saved);
        if (!keep)
            return CREMA_ERR_NOMEM;
        be->math->copy(be, bottom[0]->count, x, keep);
    }
    float *y = LDATA(top[0]);
    if (!y)
        return CREMA_ERR_NOMEM;
    const struct bias_dims *d = &s->dims;
    be->norm->scale_forward(be, d->outer, d->dim, d->inner, x, scale, y);
    if (s->bias_blob >= 0) {
        const float *bias = LCDATA(l->blobs[s->bias_blob]);
        if (!bias)
            return CREMA_ERR_NOMEM;
        be->norm->bias_forward(be, s->bdims.outer, s->bdims.dim, s->bdims.inner, y, bias, y);
    }
    return CREMA_OK;
}

static int scale_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    struct scale *s = l->priv;
    const struct backend *be = l->be;
    const struct bias_dims *d = &s->dims;
    const float *dy = LCDIFF(top[0]);
    if (!dy)
        return CREMA_ERR_NOMEM;
    if (s->bias_blob >= 0 && l->param_propagate_down[s->bias_blob]) {
        float *db = LDIFF(l->blobs[s->bias_blob]);
        if (!db)
            return CREMA_ERR_NOMEM;
        be->norm->bias_backward(be, s->bdims.outer, s->bdims.dim, s->bdims.inner, dy, db, true);
    }
    const bool learned = l->n_bottom == 1;
    struct tensor *scale = learned ? l->blobs[0] : bottom[1];
    if ((learned && l->param_propagate_down[0]) || (!learned && pd[1])) {
        const float *x = LCDATA(top[0] == bottom[0] ? s->saved : bottom[0]);
        float *ds = LDIFF(scale);
        if (!x || !ds)
            return CREMA_ERR_NOMEM;
        /* A parameter's gradient accumulates; a bottom's is written. */
        be->norm->scale_param_backward(be, d->outer, d->dim, d->inner, x, dy, ds, learned);
    }
    if (pd[0]) {
        const float *scale_data = LCDATA(scale);
        float *dx = LDIFF(bottom[0]);
        if (!scale_data || !dx)
            return CREMA_ERR_NOMEM;
        be->norm->scale_forward(be, d->outer, d->dim, d->inner, dy, scale_data, dx);
    }
    return CREMA_OK;
}

static bool scale_runs_on(const struct backend *be)
{
    return be->norm != NULL;
}

const struct layer_kind scale_layer = {
    .type = "Scale",
    .min_bottoms = 1, .max_bottoms = 2, .min_tops = 1, .max_tops = 1,
    .setup = scale_setup, .reshape = scale_reshape,
    .forward = scale_forward, .backward = scale_backward,
    .forward_dev = scale_forward, .backward_dev = scale_backward,
    .runs_on = scale_runs_on, .destroy = scale_destroy,
};
