/* The data transformer. The loop and index arithmetic follow Caffe's
 * DataTransformer::Transform(Datum) so results match it bit for bit. */
#include "data/transformer.h"
#include "core/blob_proto.h"
#include "core/tensor.h"
#include "util/err.h"
#include "util/io.h"

#include <stdlib.h>
#include <string.h>

static int load_mean(struct transformer *t, const char *path)
{
    uint8_t *bytes;
    size_t len;
    int rc = io_read_file(io_strip_file_uri(path), IO_MAX_MESSAGE, &bytes, &len);
    if (rc)
        return err_prefix(rc, "mean_file");
    Caffe__BlobProto *bp = caffe__blob_proto__unpack(NULL, len, bytes);
    free(bytes);
    if (!bp)
        return err_set(CREMA_ERR_PARSE, "mean_file %s: not a BlobProto", path);
    struct tensor *m = tensor_new();
    rc = m ? tensor_from_proto(m, bp, true) : err_set(CREMA_ERR_NOMEM, "out of memory");
    caffe__blob_proto__free_unpacked(bp, NULL);
    if (rc) {
        tensor_free(m);
        return err_prefix(rc, "mean_file %s", path);
    }
    /* Caffe reads the mean as a 4-D blob: num 1, then C x H x W. */
    if (m->num_axes > 4 || tensor_legacy_dim(m, 0) != 1 || m->count == 0) {
        char buf[128];
        rc = err_set(CREMA_ERR_SHAPE, "mean_file %s: expected a 1 x C x H x W blob, got %s", path,
                     tensor_shape_string(m, buf, sizeof buf));
        tensor_free(m);
        return rc;
    }
    t->mean_c = tensor_legacy_dim(m, 1);
    t->mean_h = tensor_legacy_dim(m, 2);
    t->mean_w = tensor_legacy_dim(m, 3);
    t->mean = malloc(m->count * sizeof(float));
    if (!t->mean) {
        tensor_free(m);
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    }
    memcpy(t->mean, tensor_data(m), m->count * sizeof(float));
    tensor_free(m);
    return CREMA_OK;
}

int transformer_init(struct transformer *t, const Caffe__TransformationParameter *p, Caffe__Phase phase)
{
    static const Caffe__TransformationParameter def = CAFFE__TRANSFORMATION_PARAMETER__INIT;
    memset(t, 0, sizeof *t);
    if (!p)
        p = &def;
    t->scale = p->scale;
    t->mirror = p->mirror;
    t->crop = (int)p->crop_size;
    if (p->crop_size > 1000000)
        return err_set(CREMA_ERR_INVALID, "transform_param: crop_size %u too large", p->crop_size);
    t->train = phase == CAFFE__PHASE__TRAIN;
    if (p->force_color && p->force_gray)
        return err_set(CREMA_ERR_INVALID, "transform_param: force_color and force_gray cannot both be set");
    t->color = p->force_color ? IMAGE_COLOR : p->force_gray ? IMAGE_GRAY : IMAGE_NATIVE;
    bool has_file = p->mean_file && *p->mean_file;
    if (has_file && p->n_mean_value > 0)
        return err_set(CREMA_ERR_INVALID, "transform_param: give mean_file or mean_value, not both");
    if (has_file) {
        int rc = load_mean(t, p->mean_file);
        if (rc) {
            transformer_free(t);
            return err_prefix(rc, "transform_param");
        }
    }
    if (p->n_mean_value > 0) {
        t->mean_values = malloc(p->n_mean_value * sizeof(float));
        if (!t->mean_values)
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        memcpy(t->mean_values, p->mean_value, p->n_mean_value * sizeof(float));
        t->n_mean_values = (int)p->n_mean_value;
    }
    return CREMA_OK;
}

void transformer_free(struct transformer *t)
{
    free(t->mean);
    free(t->mean_values);
    t->mean = NULL;
    t->mean_values = NULL;
}

int transformer_check(const struct transformer *t, int c, int h, int w, int *oh, int *ow)
{
    if (c <= 0 || h <= 0 || w <= 0)
        return err_set(CREMA_ERR_SHAPE, "input of shape %dx%dx%d", c, h, w);
    if (t->crop > 0 && (t->crop > h || t->crop > w))
        return err_set(CREMA_ERR_SHAPE, "crop_size %d is larger than the input %dx%d", t->crop, h, w);
    if (t->mean && (t->mean_c != c || t->mean_h != h || t->mean_w != w))
        return err_set(CREMA_ERR_SHAPE, "mean_file is %dx%dx%d but the input is %dx%dx%d", t->mean_c, t->mean_h,
                       t->mean_w, c, h, w);
    if (t->n_mean_values > 1 && t->n_mean_values != c)
        return err_set(CREMA_ERR_SHAPE, "%d mean_value given for an input of %d channels (give 1 or %d)",
                       t->n_mean_values, c, c);
    *oh = t->crop > 0 ? t->crop : h;
    *ow = t->crop > 0 ? t->crop : w;
    return CREMA_OK;
}

int transformer_apply(const struct transformer *t, struct rng *rng, const uint8_t *u8, const float *f, int c,
                      int h, int w, float *dst)
{
    int oh, ow;
    int rc = transformer_check(t, c, h, w, &oh, &ow);
    if (rc)
        return rc;
    /* As Caffe, mirroring is random in either phase when mirror is set;
     * only crop offsets depend on the phase. */
    bool flip = t->mirror && rng && rng_below(rng, 2);
    int h_off = 0, w_off = 0;
    if (t->crop > 0) {
        if (t->train && rng) {
            h_off = (int)rng_below(rng, (uint32_t)(h - t->crop + 1));
            w_off = (int)rng_below(rng, (uint32_t)(w - t->crop + 1));
        } else {
            h_off = (h - t->crop) / 2;
            w_off = (w - t->crop) / 2;
        }
    }
    const float scale = t->scale;
    for (int k = 0; k < c; k++) {
        float mv = t->n_mean_values == 0 ? 0.f : t->mean_values[t->n_mean_values == 1 ? 0 : k];
        for (int y = 0; y < oh; y++) {
            size_t srow = ((size_t)k * (size_t)h + (size_t)(h_off + y)) * (size_t)w + (size_t)w_off;
            float *drow = dst + ((size_t)k * (size_t)oh + (size_t)y) * (size_t)ow;
            for (int x = 0; x < ow; x++) {
                size_t si = srow + (size_t)x;
                float v = u8 ? (float)u8[si] : f[si];
                float out;
                if (t->mean)
                    out = (v - t->mean[si]) * scale;
                else if (t->n_mean_values)
                    out = (v - mv) * scale;
                else
                    out = v * scale;
                drow[flip ? ow - 1 - x : x] = out;
            }
        }
    }
    return CREMA_OK;
}
