/* MVN: subtracts the mean of each channel of each item (or of each item,
 * across_channels) and optionally divides by (std + eps), as Caffe's does. */
#include "layers/layer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct mvn {
    bool normalize_variance, across_channels;
    float eps;
    float *mean, *std; /* one per normalised row */
    size_t cap;
    struct tensor *work; /* backward's scratch, so that in place works */
};

static void mvn_destroy(struct layer *l)
{
    struct mvn *m = l->priv;
    if (!m)
        return;
    free(m->mean);
    free(m->std);
    tensor_free(m->work);
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
    m->work = tensor_new();
    return m->work ? CREMA_OK : err_set(CREMA_ERR_NOMEM, "out of memory");
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
    if (!rc)
        rc = tensor_reshape_like(m->work, bottom[0]);
    size_t rows = mvn_rows(m, bottom[0]);
    if (!rc && rows > m->cap) {
        free(m->mean);
        free(m->std);
        m->mean = malloc(rows * sizeof(float));
        m->std = malloc(rows * sizeof(float));
        if (!m->mean || !m->std)
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        m->cap = rows;
    }
    return rc;
}

static float mvn_row_sum(const float *v, size_t dim)
{
    float s = 0.f;
    for (size_t i = 0; i < dim; i++)
        s += v[i];
    return s;
}

static int mvn_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct mvn *m = l->priv;
    const size_t rows = mvn_rows(m, bottom[0]);
    if (rows == 0 || bottom[0]->count == 0)
        return CREMA_OK;
    const size_t dim = bottom[0]->count / rows;
    const float inv_dim = (float)(1. / (double)dim);
    float *x = tensor_data(bottom[0]), *y = tensor_data(top[0]);
    if (!x || !y)
        return CREMA_ERR_NOMEM;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        float *yr = y + r * dim;
        const float mean = inv_dim * mvn_row_sum(xr, dim);
        m->mean[r] = mean;
        for (size_t i = 0; i < dim; i++)
            yr[i] = xr[i] + -mean;
        if (!m->normalize_variance)
            continue;
        float sq = 0.f;
        for (size_t i = 0; i < dim; i++)
            sq += yr[i] * yr[i];
        /* eps is added to the std, after the square root (as Caffe). */
        const float std = powf(inv_dim * sq, 0.5f) + m->eps;
        m->std[r] = std;
        for (size_t i = 0; i < dim; i++)
            yr[i] /= std;
    }
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
    const size_t dim = bottom[0]->count / rows;
    const float *y = tensor_data(top[0]), *dy = tensor_diff(top[0]);
    float *dx = tensor_diff(bottom[0]), *w = tensor_data(m->work);
    if (!y || !dy || !dx || !w)
        return CREMA_ERR_NOMEM;
    /* Computed in w, then copied: in place, dx and dy are one buffer. */
    for (size_t r = 0; r < rows; r++) {
        const float *yr = y + r * dim, *dyr = dy + r * dim;
        float *wr = w + r * dim;
        if (m->normalize_variance) {
            /* (dy - mean(dy) - y mean(dy y)) / (std + eps) */
            for (size_t i = 0; i < dim; i++)
                wr[i] = yr[i] * dyr[i];
            const float s_ydy = mvn_row_sum(wr, dim);
            const float s_dy = mvn_row_sum(dyr, dim);
            const float k = (float)(-1. / (double)dim);
            for (size_t i = 0; i < dim; i++) {
                float t = yr[i] * s_ydy + s_dy;
                wr[i] = (dyr[i] + k * t) / m->std[r];
            }
        } else {
            const float mean = (float)(1. / (double)dim) * mvn_row_sum(dyr, dim);
            for (size_t i = 0; i < dim; i++)
                wr[i] = dyr[i] + -mean;
        }
    }
    memcpy(dx, w, bottom[0]->count * sizeof(float));
    return CREMA_OK;
}

const struct layer_kind mvn_layer = {
    .type = "MVN",
    .min_bottoms = 1, .max_bottoms = 1, .min_tops = 1, .max_tops = 1,
    .setup = mvn_setup, .reshape = mvn_reshape,
    .forward = mvn_forward, .backward = mvn_backward, .destroy = mvn_destroy,
};
