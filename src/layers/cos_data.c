/* CaffeOnSpark's CoSData layer: one top per cos_data_param.top, filled with
 * DataFrame columns fed through the C API; and image feeding for MemoryData
 * layers (decode, resize, transform), which both share. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image.h"
#include "data/transformer.h"
#include "layers/cos_data.h"
#include "layers/data_source.h"
#include "layers/input.h"

/* n images (raw planar c x h x w, or encoded files of the given lengths)
 * into dst, out_size floats each, through tf. */
static int images_to_floats(const char *layer, const struct transformer *tf, struct rng *rng, const uint8_t *data,
                            const size_t *lengths, int n, int c, int h, int w, size_t out_size, float *dst)
{
    if (!lengths && (c <= 0 || h <= 0 || w <= 0))
        return err_set(CREMA_ERR_INVALID, "layer %s: raw images need channels, height and width (got %d x %d x %d)",
                       layer, c, h, w);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        struct image img = { 0 };
        const uint8_t *px;
        int ic = c, ih = h, iw = w, rc = CREMA_OK;
        if (lengths) {
            enum image_color color = c == 1 ? IMAGE_GRAY : c == 3 ? IMAGE_COLOR : IMAGE_NATIVE;
            rc = image_decode(data + off, lengths[i], color, &img);
            off += lengths[i];
            if (!rc && h > 0 && w > 0 && (img.height != h || img.width != w)) {
                struct image r = { 0 };
                rc = image_resize(&img, h, w, &r);
                image_free(&img);
                img = r;
            }
            px = img.data;
            ic = img.channels;
            ih = img.height;
            iw = img.width;
        } else {
            px = data + (size_t)i * (size_t)c * (size_t)h * (size_t)w;
        }
        int oh = 0, ow = 0;
        if (!rc)
            rc = transformer_check(tf, ic, ih, iw, &oh, &ow);
        if (!rc && (size_t)ic * (size_t)oh * (size_t)ow != out_size)
            rc = err_set(CREMA_ERR_SHAPE, "image is %d x %d x %d after transformation (%zu values), the top takes %zu",
                         ic, oh, ow, (size_t)ic * (size_t)oh * (size_t)ow, out_size);
        if (!rc)
            rc = transformer_apply(tf, rng, px, NULL, ic, ih, iw, dst + (size_t)i * out_size);
        image_free(&img);
        if (rc)
            return err_prefix(rc, "layer %s: image %d", layer, i);
    }
    return CREMA_OK;
}

/* ---- CoSData ---- */

struct cos_top {
    Caffe__CoSDataParameter__DataType type;
    int channels, height, width; /* the samples as they come (images: before transformation) */
    int shape[4];                /* the top: batch then up to 3 sample axes, or (channels, batch) */
    int num_axes;
    bool transpose;
    size_t size; /* floats per sample */
    bool has_tf;
    struct transformer tf;
    float *buf;
    int n, pos;
};

struct cos_priv {
    struct data_source src; /* the batch size: each top keeps its own place */
    int n_tops;
    struct cos_top *tops;
};
_Static_assert(offsetof(struct cos_priv, src) == 0, "a data layer's state begins with its data_source");

static bool is_image(Caffe__CoSDataParameter__DataType t)
{
    return t == CAFFE__CO_SDATA_PARAMETER__DATA_TYPE__RAW_IMAGE ||
           t == CAFFE__CO_SDATA_PARAMETER__DATA_TYPE__ENCODED_IMAGE ||
           t == CAFFE__CO_SDATA_PARAMETER__DATA_TYPE__ENCODED_IMAGE_WITH_DIM;
}

static int cos_setup_top(struct layer *l, int i, const Caffe__CoSDataParameter__TopBlob *tb, int batch,
                         struct cos_top *t)
{
    t->type = tb->type;
    if (t->type < CAFFE__CO_SDATA_PARAMETER__DATA_TYPE__STRING ||
        t->type > CAFFE__CO_SDATA_PARAMETER__DATA_TYPE__ENCODED_IMAGE_WITH_DIM)
        return err_set(CREMA_ERR_INVALID, "layer %s: cos_data_param.top[%d].type %d is not a DataType", l->name, i,
                       (int)t->type);
    int axes = tb->sample_num_axes;
    if (axes < 1 || axes > 3)
        return err_set(CREMA_ERR_INVALID, "layer %s: cos_data_param.top[%d].sample_num_axes is %d, must be 1..3",
                       l->name, i, axes);
    t->channels = tb->channels;
    t->height = tb->height;
    t->width = tb->width;
    int dims[3] = { tb->out_channels ? tb->out_channels : tb->channels,
                    tb->out_height ? tb->out_height : tb->height, tb->out_width ? tb->out_width : tb->width };
    static const char *const names[3] = { "channels", "height", "width" };
    t->size = 1;
    for (int a = 0; a < axes; a++) {
        if (dims[a] <= 0)
            return err_set(CREMA_ERR_INVALID, "layer %s: cos_data_param.top[%d] (%s): %s must be positive for "
                           "sample_num_axes %d (got %d)", l->name, i, tb->name ? tb->name : "", names[a], axes,
                           dims[a]);
        t->size *= (size_t)dims[a];
    }
    t->transpose = tb->transpose;
    if (t->transpose) {
        if (axes != 1)
            return err_set(CREMA_ERR_INVALID, "layer %s: cos_data_param.top[%d]: transpose needs each sample to be "
                           "a vector (sample_num_axes 1, got %d)", l->name, i, axes);
        t->num_axes = 2;
        t->shape[0] = dims[0];
        t->shape[1] = batch;
    } else {
        t->num_axes = axes + 1;
        t->shape[0] = batch;
        for (int a = 0; a < axes; a++)
            t->shape[a + 1] = dims[a];
    }
    if (is_image(t->type)) {
        int rc = transformer_init(&t->tf, tb->transform_param, l->phase);
        if (rc)
            return err_prefix(rc, "layer %s: cos_data_param.top[%d].transform_param", l->name, i);
        t->has_tf = true;
    }
    return CREMA_OK;
}

static int cos_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    static const Caffe__CoSDataParameter def = CAFFE__CO_SDATA_PARAMETER__INIT;
    const Caffe__CoSDataParameter *p = l->param->cos_data_param ? l->param->cos_data_param : &def;
    struct cos_priv *cp = calloc(1, sizeof *cp);
    if (!cp)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = cp;
    int rc = data_source_init(&cp->src, "cos_data_param.batch_size", p->has_batch_size ? p->batch_size : 0, 0);
    if (rc)
        return rc;
    if ((int)p->n_top != l->n_top)
        return err_set(CREMA_ERR_INVALID, "layer %s has %d tops but cos_data_param describes %zu: they must match",
                       l->name, l->n_top, p->n_top);
    cp->tops = calloc((size_t)l->n_top, sizeof *cp->tops);
    if (!cp->tops)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    cp->n_tops = l->n_top;
    for (int i = 0; i < l->n_top; i++) {
        struct cos_top *t = &cp->tops[i];
        rc = cos_setup_top(l, i, p->top[i], cp->src.batch_size, t);
        if (!rc)
            rc = tensor_reshape(top[i], t->num_axes, t->shape);
        if (rc)
            return rc;
    }
    return CREMA_OK;
}

static int cos_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    struct cos_priv *cp = l->priv;
    const int batch = cp->src.batch_size;
    for (int i = 0; i < cp->n_tops; i++) {
        struct cos_top *t = &cp->tops[i];
        if (!t->buf)
            return err_set(CREMA_ERR_INVALID, "CoSData layer %s: top %d has no data: feed it first "
                           "(crema_net_set_cos_data)", l->name, i);
        int rc = tensor_reshape(top[i], t->num_axes, t->shape);
        if (rc)
            return rc;
        float *d = tensor_data(top[i]);
        if (!d)
            return CREMA_ERR_NOMEM;
        const float *src = t->buf + (size_t)t->pos * t->size;
        if (t->transpose) {
            /* (channels, batch): sample b is column b */
            for (int b = 0; b < batch; b++)
                for (size_t c = 0; c < t->size; c++)
                    d[c * (size_t)batch + (size_t)b] = src[(size_t)b * t->size + c];
        } else {
            memcpy(d, src, (size_t)batch * t->size * sizeof(float));
        }
        t->pos = (t->pos + batch) % t->n;
    }
    return CREMA_OK;
}

static void cos_destroy(struct layer *l)
{
    struct cos_priv *cp = l->priv;
    if (!cp)
        return;
    for (int i = 0; i < cp->n_tops; i++) {
        free(cp->tops[i].buf);
        if (cp->tops[i].has_tf)
            transformer_free(&cp->tops[i].tf);
    }
    free(cp->tops);
    free(cp);
    l->priv = NULL;
}

int cos_data_feed(struct layer *l, int top, const void *data, const size_t *lengths, int n)
{
    if (l->kind != &cos_data_layer)
        return err_set(CREMA_ERR_INVALID, "layer %s is a %s layer, not CoSData", l->name, l->kind->type);
    struct cos_priv *cp = l->priv;
    if (top < 0 || top >= cp->n_tops)
        return err_set(CREMA_ERR_NOTFOUND, "CoSData layer %s has no top %d (it has %d)", l->name, top, cp->n_tops);
    struct cos_top *t = &cp->tops[top];
    if (!data)
        return err_set(CREMA_ERR_INVALID, "CoSData layer %s: top %d: no data", l->name, top);
    char what[48];
    snprintf(what, sizeof what, "samples for top %d", top);
    int rc = data_source_check_feed(l, what, n);
    if (rc)
        return rc;
    if (!is_image(t->type) && lengths)
        return err_set(CREMA_ERR_INVALID, "CoSData layer %s: top %d is not an image top: feed floats, no lengths",
                       l->name, top);
    if (t->type != CAFFE__CO_SDATA_PARAMETER__DATA_TYPE__RAW_IMAGE && is_image(t->type) && !lengths)
        return err_set(CREMA_ERR_INVALID, "CoSData layer %s: top %d holds encoded images: give their lengths",
                       l->name, top);
    float *buf = malloc((size_t)n * t->size * sizeof(float));
    if (!buf)
        return err_set(CREMA_ERR_NOMEM, "CoSData layer %s: cannot hold %d samples", l->name, n);
    if (is_image(t->type))
        rc = images_to_floats(l->name, &t->tf, l->rng, data, lengths, n, t->channels, t->height, t->width, t->size,
                              buf);
    else
        memcpy(buf, data, (size_t)n * t->size * sizeof(float));
    if (rc) {
        free(buf);
        return err_prefix(rc, "top %d", top);
    }
    free(t->buf);
    t->buf = buf;
    t->n = n;
    t->pos = 0;
    return CREMA_OK;
}

/* Each rank is fed its own partition (crema.spark), and fed anew on a
 * resumed run: no share to keep, no position. */
static const struct data_source_ops cos_data_source = { .set_shard = NULL };

const struct layer_kind cos_data_layer = {
    .type = "CoSData",
    .min_bottoms = 0, .max_bottoms = 0,
    .min_tops = 1, .max_tops = -1,
    .setup = cos_setup,
    .forward = cos_forward,
    .destroy = cos_destroy,
    .source = &cos_data_source,
};

/* ---- images for MemoryData ---- */

int memory_data_feed_images(struct layer *l, const uint8_t *data, const size_t *lengths, int n, int channels,
                            int height, int width, const float *labels)
{
    if (l->kind != &memory_data_layer)
        return err_set(CREMA_ERR_INVALID, "layer %s is a %s layer, not MemoryData", l->name, l->kind->type);
    static const Caffe__MemoryDataParameter def = CAFFE__MEMORY_DATA_PARAMETER__INIT;
    const Caffe__MemoryDataParameter *p = l->param->memory_data_param ? l->param->memory_data_param : &def;
    if (!data || !labels || n <= 0)
        return err_set(CREMA_ERR_INVALID, "MemoryData layer %s: images, labels and a positive count are needed",
                       l->name);
    size_t out = (size_t)p->channels * p->height * p->width;
    struct transformer tf;
    int rc = transformer_init(&tf, l->param->transform_param, l->phase);
    if (rc)
        return err_prefix(rc, "layer %s: transform_param", l->name);
    float *buf = malloc((size_t)n * out * sizeof(float));
    if (!buf)
        rc = err_set(CREMA_ERR_NOMEM, "MemoryData layer %s: cannot hold %d images", l->name, n);
    if (!rc)
        rc = images_to_floats(l->name, &tf, l->rng, data, lengths, n, channels, height, width, out, buf);
    if (!rc)
        rc = memory_data_reset(l, buf, labels, n);
    free(buf);
    transformer_free(&tf);
    return rc;
}

int cos_data_top_type(const struct layer *l, int top)
{
    const struct cos_priv *cp = l->kind == &cos_data_layer ? l->priv : NULL;
    return cp && top >= 0 && top < cp->n_tops ? (int)cp->tops[top].type : -1;
}

long cos_data_top_size(const struct layer *l, int top)
{
    const struct cos_priv *cp = l->kind == &cos_data_layer ? l->priv : NULL;
    return cp && top >= 0 && top < cp->n_tops ? (long)cp->tops[top].size : -1;
}
