/* Datum decoding (raw bytes, float_data or an encoded image) with the checks
 * Caffe makes, reported as errors naming the record instead of aborts. */
#include "data/datum.h"
#include "caffe.pb-c.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

void datum_free(struct datum *d)
{
    if (!d)
        return;
    free(d->u8);
    free(d->f);
    memset(d, 0, sizeof *d);
}

static int shape_count(int c, int h, int w, size_t *count)
{
    if (c <= 0 || h <= 0 || w <= 0)
        return -1;
    unsigned long long n = (unsigned long long)c * (unsigned long long)h * (unsigned long long)w;
    if (n > ((unsigned long long)1 << 31))
        return -1;
    *count = (size_t)n;
    return 0;
}

static int reserve_u8(struct datum *d, size_t n)
{
    if (n > d->cap_u8) {
        uint8_t *p = realloc(d->u8, n);
        if (!p)
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        d->u8 = p;
        d->cap_u8 = n;
    }
    return CREMA_OK;
}

int datum_decode(const uint8_t *bytes, size_t len, enum image_color color, const char *where,
                 struct datum *out)
{
    if (!where)
        where = "record";
    Caffe__Datum *m = caffe__datum__unpack(NULL, len, bytes);
    if (!m)
        return err_set(CREMA_ERR_PARSE, "%s: not a Datum (protobuf parse failed, %zu bytes)", where, len);
    int rc = CREMA_OK;
    out->label = m->label;
    out->was_encoded = m->encoded;
    if (m->encoded) {
        struct image img;
        rc = image_decode(m->data.data, m->data.len, color, &img);
        if (rc) {
            err_prefix(rc, "%s: encoded image", where);
            goto done;
        }
        free(out->u8);
        out->u8 = img.data;
        out->cap_u8 = (size_t)img.channels * (size_t)img.height * (size_t)img.width;
        out->count = out->cap_u8;
        out->channels = img.channels;
        out->height = img.height;
        out->width = img.width;
        out->is_float = false;
        goto done;
    }
    size_t count;
    if (shape_count(m->channels, m->height, m->width, &count)) {
        rc = err_set(CREMA_ERR_INVALID, "%s: bad Datum shape channels %d height %d width %d", where, m->channels,
                     m->height, m->width);
        goto done;
    }
    out->channels = m->channels;
    out->height = m->height;
    out->width = m->width;
    out->count = count;
    if (m->data.len > 0) {
        if (m->data.len != count) {
            rc = err_set(CREMA_ERR_INVALID, "%s: Datum data has %zu bytes, expected channels*height*width = %d*%d*%d = %zu",
                         where, m->data.len, m->channels, m->height, m->width, count);
            goto done;
        }
        rc = reserve_u8(out, count);
        if (rc)
            goto done;
        memcpy(out->u8, m->data.data, count);
        out->is_float = false;
    } else {
        if (m->n_float_data != count) {
            rc = err_set(CREMA_ERR_INVALID, "%s: Datum has %zu float_data values (and no data bytes), expected channels*height*width = %zu",
                         where, m->n_float_data, count);
            goto done;
        }
        if (count > out->cap_f) {
            float *p = realloc(out->f, count * sizeof *p);
            if (!p) {
                rc = err_set(CREMA_ERR_NOMEM, "out of memory");
                goto done;
            }
            out->f = p;
            out->cap_f = count;
        }
        memcpy(out->f, m->float_data, count * sizeof(float));
        out->is_float = true;
    }
done:
    caffe__datum__free_unpacked(m, NULL);
    return rc;
}

int datum_pack(int channels, int height, int width, const uint8_t *data, size_t n, int label, int encoded,
               uint8_t **out, size_t *len)
{
    Caffe__Datum m = CAFFE__DATUM__INIT;
    m.has_channels = channels >= 0;
    m.channels = channels;
    m.has_height = height >= 0;
    m.height = height;
    m.has_width = width >= 0;
    m.width = width;
    m.has_data = true;
    m.data.data = (uint8_t *)data;
    m.data.len = n;
    m.has_label = true;
    m.label = label;
    m.has_encoded = encoded >= 0;
    m.encoded = encoded > 0;
    size_t sz = caffe__datum__get_packed_size(&m);
    *out = malloc(sz ? sz : 1);
    if (!*out)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    *len = caffe__datum__pack(&m, *out);
    return CREMA_OK;
}
