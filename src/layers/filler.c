/* Caffe's weight fillers (FillerParameter): constant, uniform, gaussian
 * (optionally sparse), positive_unitball, xavier, msra and bilinear. */
#include "layers/layer.h"

#include <math.h>
#include <string.h>

/* Caffe's fan-in/out come from Blob::num() and channels(), i.e. the first two
 * legacy dimensions (1 past the axes a blob has). */
static float filler_fan(const Caffe__FillerParameter *fp, const struct tensor *t)
{
    int n0 = tensor_legacy_dim(t, 0), n1 = tensor_legacy_dim(t, 1);
    float fan_in = n0 ? (float)(t->count / (size_t)n0) : 0.f;
    float fan_out = n1 ? (float)(t->count / (size_t)n1) : 0.f;
    switch (fp->variance_norm) {
    case CAFFE__FILLER_PARAMETER__VARIANCE_NORM__FAN_OUT:
        return fan_out;
    case CAFFE__FILLER_PARAMETER__VARIANCE_NORM__AVERAGE:
        return (fan_in + fan_out) / 2.f;
    default:
        return fan_in;
    }
}

static int filler_no_sparse(const Caffe__FillerParameter *fp, const char *type)
{
    if (fp->sparse != -1)
        return err_set(CREMA_ERR_INVALID, "filler \"%s\": field sparse (%d) is only supported by the gaussian filler",
                       type, fp->sparse);
    return CREMA_OK;
}

int filler_fill(const Caffe__FillerParameter *fp, struct tensor *t, struct rng *rng)
{
    static const Caffe__FillerParameter def = CAFFE__FILLER_PARAMETER__INIT;
    if (!fp)
        fp = &def;
    const char *type = fp->type ? fp->type : "constant";
    float *d = tensor_data(t);
    if (!d)
        return CREMA_ERR_NOMEM;
    size_t n = t->count;
    int rc;
    if (strcmp(type, "constant") == 0) {
        if ((rc = filler_no_sparse(fp, type)))
            return rc;
        for (size_t i = 0; i < n; i++)
            d[i] = fp->value;
    } else if (strcmp(type, "uniform") == 0) {
        if ((rc = filler_no_sparse(fp, type)))
            return rc;
        if (fp->min > fp->max)
            return err_set(CREMA_ERR_INVALID, "uniform filler: field min (%g) is above max (%g)", fp->min, fp->max);
        for (size_t i = 0; i < n; i++)
            d[i] = rng_uniform(rng, fp->min, fp->max);
    } else if (strcmp(type, "gaussian") == 0) {
        if (fp->std <= 0)
            return err_set(CREMA_ERR_INVALID, "gaussian filler: field std must be positive, got %g", fp->std);
        for (size_t i = 0; i < n; i++)
            d[i] = rng_gaussian(rng, fp->mean, fp->std);
        if (fp->sparse >= 0) {
            /* Each output unit keeps about `sparse` non-zero inputs. */
            if (t->num_axes < 1)
                return err_set(CREMA_ERR_INVALID, "gaussian filler: sparse needs a blob with at least one axis");
            int num_outputs = t->shape[0];
            float p = num_outputs ? (float)fp->sparse / (float)num_outputs : 0.f;
            for (size_t i = 0; i < n; i++)
                if (!rng_bernoulli(rng, p))
                    d[i] = 0.f;
        }
    } else if (strcmp(type, "positive_unitball") == 0) {
        if ((rc = filler_no_sparse(fp, type)))
            return rc;
        for (size_t i = 0; i < n; i++)
            d[i] = rng_uniform(rng, 0.f, 1.f);
        int num = tensor_legacy_dim(t, 0);
        size_t dim = num ? n / (size_t)num : 0;
        for (int r = 0; r < num; r++) {
            float sum = 0.f;
            for (size_t j = 0; j < dim; j++)
                sum += d[(size_t)r * dim + j];
            for (size_t j = 0; j < dim; j++)
                d[(size_t)r * dim + j] /= sum;
        }
    } else if (strcmp(type, "xavier") == 0 || strcmp(type, "msra") == 0) {
        if ((rc = filler_no_sparse(fp, type)))
            return rc;
        if (n == 0)
            return CREMA_OK;
        float fan = filler_fan(fp, t);
        if (fan <= 0)
            return err_set(CREMA_ERR_INVALID, "%s filler: the blob's fan is zero", type);
        if (type[0] == 'x') {
            float scale = sqrtf(3.f / fan);
            for (size_t i = 0; i < n; i++)
                d[i] = rng_uniform(rng, -scale, scale);
        } else {
            float std = sqrtf(2.f / fan);
            for (size_t i = 0; i < n; i++)
                d[i] = rng_gaussian(rng, 0.f, std);
        }
    } else if (strcmp(type, "bilinear") == 0) {
        if ((rc = filler_no_sparse(fp, type)))
            return rc;
        if (t->num_axes != 4)
            return err_set(CREMA_ERR_INVALID, "bilinear filler needs a 4-D blob, got %d axes", t->num_axes);
        int w = t->shape[3], h = t->shape[2];
        if (w != h)
            return err_set(CREMA_ERR_INVALID, "bilinear filler needs a square kernel, got %dx%d", h, w);
        int f = (int)ceil(w / 2.);
        float c = (float)((2 * f - 1 - f % 2) / (2. * f));
        for (size_t i = 0; i < n; i++) {
            float x = (float)(i % (size_t)w);
            float y = (float)((i / (size_t)w) % (size_t)h);
            d[i] = (1 - fabsf(x / (float)f - c)) * (1 - fabsf(y / (float)f - c));
        }
    } else {
        return err_set(CREMA_ERR_INVALID, "filler: unknown type \"%s\"", type);
    }
    return CREMA_OK;
}
