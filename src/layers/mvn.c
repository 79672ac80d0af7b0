/* MVN: subtracts the mean of each channel of each item (or of each item,
 * across_channels) and optionally divides by (std + eps), as Caffe's does;
 * the rows are l->be->norm's. */
#include "layers/layer.h"

#include <stdint.h>
#include <stdlib.h>

struct mvn {
    bool normalize_variance, across_channels;
    float eps;
    struct tensor *std; /* std + eps, one per normalised row */
};

static void mvn_destroy(struct layer *l)
{
    struct mvn *m = l->priv;
    if (!m)
        return;
    tensor_free(m->std);
    free(m);
    l->priv = NULL;
}

static int mvn_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__MVNParameter def = CAFFE__MVNPARAMETER__INIT;
    const Caffe__MVNParameter *p = l->param->mvn_param ? l->param->mvn_param : &def;
    struct mvn *m = calloc(1, sizeof *m);
    if (!m)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = m;
    m->normalize_variance = p->normalize_variance;
    m->across_channels = p->across_channels;
    m->eps = p->eps;
    m->std = tensor_new();
    return m->std ? CREMA_OK : err_set(CREMA_ERR_NOMEM, "out of memory");
}

/* Rows that are normalised, each of `dim` values. */
static size_t mvn_rows(const struct mvn *m, struct tensor *x)
{
    return (size_t)tensor_legacy_dim(x, 0) * (m->across_channels ? 1 : (size_t)tensor_legacy_dim(x, 1));
}

static int mvn_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct mvn *m = l->priv;
    if (bottom[0]->num_axes > 4)
        return err_set(CREMA_ERR_SHAPE, "bottom has %d axes; MVN works on at most 4 (num, channels, height, width)",
                       bottom[0]->num_axes);
    int rc = CREMA_OK;
    if (top[0] != bottom[0])
        /* Caffe gives the top the 4-axis legacy shape of the bottom. */
        rc = tensor_reshape4(top[0], tensor_legacy_dim(bottom[0], 0), tensor_legacy_dim(bottom[0], 1),
                             tensor_legacy_dim(bottom[0], 2), tensor_legacy_dim(bottom[0], 3));
    size_t rows = mvn_rows(m, bottom[0]);
    if (!rc && rows > (size_t)INT32_MAX)
        return err_set(CREMA_ERR_SHAPE, "bottom has %zu rows to normalise; MVN takes at most %d", rows, INT32_MAX);
    int n_rows = (int)(rows ? rows : 1);
    if (!rc)
        rc = tensor_reshape(m->std, 1, &n_rows);
    return rc;
}

static int mvn_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct mvn *m = l->priv;
    const size_t rows = mvn_rows(m, bottom[0]);
    if (rows == 0 || bottom[0]->count == 0)
        return CREMA_OK;
    const float *x = LCDATA(bottom[0]);
    float *y = LDATA(top[0]), *std = LDATA(m->std);
    if (!x || !y || !std)
        return CREMA_ERR_NOMEM;
    l->be->norm->mvn_forward(l->be, rows, bottom[0]->count / rows, m->normalize_variance, m->eps, x, y, std);
    return CREMA_OK;
}

static int mvn_backward(struct layer *l, struct tensor **top, const bool *pd, struct tensor **bottom)
{
    if (!pd[0])
        return CREMA_OK;
    struct mvn *m = l->priv;
    const size_t rows = mvn_rows(m, bottom[0]);
    if (rows == 0 || bottom[0]->count == 0)
        return CREMA_OK;
    const float *y = LCDATA(top[0]), *std = LCDATA(m->std);
    const float *dy = LCDIFF(top[0]);
    float *dx = LDIFF(bottom[0]);
    if (!y || !std || !dy || !dx)
        return CREMA_ERR_NOMEM;
    l->be->norm->mvn_backward(l->be, rows, bottom[0]->count / rows, m->normalize_variance, y, dy, std, dx);
    return CREMA_OK;
}

static bool mvn_runs_on(const struct backend *be)
{
    return be->norm != NULL;
}

const struct layer_kind mvn_layer = {
    .type = "MVN",
    .min_bottoms = 1, .max_bottoms = 1, .min_tops = 1, .max_tops = 1,
    .setup = mvn_setup, .reshape = mvn_reshape,
    .forward = mvn_forward, .backward = mvn_backward,
    .forward_dev = mvn_forward, .backward_dev = mvn_backward,
    .runs_on = mvn_runs_on, .destroy = mvn_destroy,
};
