/* The input layers: Input (tops set from outside), DummyData (filled by
 * fillers) and MemoryData (arrays handed in through the API). */
#include "layers/input.h"
#include "data/cos_source.h"
#include "layers/data_source.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static int shape_from_blob_shape(struct tensor *t, const Caffe__BlobShape *s, const char *what)
{
    int dims[TENSOR_MAX_AXES];
    if (s->n_dim > TENSOR_MAX_AXES)
        return err_set(CREMA_ERR_SHAPE, "%s: %zu axes, at most %d allowed", what, s->n_dim, TENSOR_MAX_AXES);
    for (size_t i = 0; i < s->n_dim; i++) {
        if (s->dim[i] < 0 || s->dim[i] > INT32_MAX)
            return err_set(CREMA_ERR_SHAPE, "%s: dim %zu is %lld", what, i, (long long)s->dim[i]);
        dims[i] = (int)s->dim[i];
    }
    return tensor_reshape(t, (int)s->n_dim, dims);
}

/* ---- Input ---- */

static int input_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__InputParameter def = CAFFE__INPUT_PARAMETER__INIT;
    const Caffe__InputParameter *p = l->param->input_param ? l->param->input_param : &def;
    size_t ns = p->n_shape;
    if (ns != 0 && ns != 1 && ns != (size_t)l->n_top)
        return err_set(CREMA_ERR_INVALID, "input_param: give shape once, once per top or not at all: %d tops, %zu shapes",
                       l->n_top, ns);
    for (int i = 0; ns && i < l->n_top; i++) {
        int rc = shape_from_blob_shape(top[i], p->shape[ns == 1 ? 0 : i], "input_param.shape");
        if (rc)
            return rc;
    }
    return CREMA_OK;
}

static int input_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    return CREMA_OK;
}

const struct layer_kind input_layer = {
    .type = "Input",
    .min_bottoms = 0, .max_bottoms = 0,
    .min_tops = 1, .max_tops = -1,
    .setup = input_setup,
    .forward = input_forward,
    .forward_dev = input_forward, /* nothing to compute: the tops are what callers put there */
};

/* ---- DummyData ---- */

struct dummy_priv {
    int n_fillers;
    const Caffe__FillerParameter **fillers;
    bool *refill; /* constant fillers are applied once, at setup */
};

/* No data_filler: Caffe fills with constant 0, the FillerParameter default. */
static const Caffe__FillerParameter dummy_zero = CAFFE__FILLER_PARAMETER__INIT;

static int dummy_legacy_dim(size_t n, const uint32_t *v, int i, int n_top, const char *field, int *out)
{
    if (n != 1 && n != (size_t)n_top)
        return err_set(CREMA_ERR_INVALID, "dummy_data_param: give %s once or once per top (%d); got %zu",
                       field, n_top, n);
    uint32_t d = v[n == 1 ? 0 : i];
    if (d > INT32_MAX)
        return err_set(CREMA_ERR_INVALID, "dummy_data_param: %s %u is too large", field, d);
    *out = (int)d;
    return CREMA_OK;
}

static int dummy_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__DummyDataParameter def = CAFFE__DUMMY_DATA_PARAMETER__INIT;
    const Caffe__DummyDataParameter *p = l->param->dummy_data_param ? l->param->dummy_data_param : &def;
    int n_top = l->n_top;
    size_t nf = p->n_data_filler;
    if (nf != 0 && nf != 1 && nf != (size_t)n_top)
        return err_set(CREMA_ERR_INVALID, "dummy_data_param: give data_filler 0 times, once or once per top (%d); got %zu",
                       n_top, nf);
    struct dummy_priv *dp = calloc(1, sizeof *dp);
    if (!dp)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = dp;
    dp->n_fillers = nf <= 1 ? 1 : n_top;
    dp->fillers = calloc((size_t)dp->n_fillers, sizeof *dp->fillers);
    dp->refill = calloc((size_t)dp->n_fillers, sizeof *dp->refill);
    if (!dp->fillers || !dp->refill)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    for (int i = 0; i < dp->n_fillers; i++) {
        const Caffe__FillerParameter *f = nf == 0 ? &dummy_zero : p->data_filler[i];
        dp->fillers[i] = f;
        dp->refill[i] = !(f->type && strcmp(f->type, "constant") == 0);
    }
    bool legacy = p->n_num || p->n_channels || p->n_height || p->n_width;
    if (legacy && p->n_shape)
        return err_set(CREMA_ERR_INVALID, "dummy_data_param: both shape and the legacy num/channels/height/width are given");
    if (!legacy && p->n_shape != 1 && p->n_shape != (size_t)n_top)
        return err_set(CREMA_ERR_INVALID, "dummy_data_param: give shape once or once per top (%d); got %zu",
                       n_top, p->n_shape);
    for (int i = 0; i < n_top; i++) {
        int rc;
        if (legacy) {
            int d[4];
            if ((rc = dummy_legacy_dim(p->n_num, p->num, i, n_top, "num", &d[0])) ||
                (rc = dummy_legacy_dim(p->n_channels, p->channels, i, n_top, "channels", &d[1])) ||
                (rc = dummy_legacy_dim(p->n_height, p->height, i, n_top, "height", &d[2])) ||
                (rc = dummy_legacy_dim(p->n_width, p->width, i, n_top, "width", &d[3])))
                return rc;
            rc = tensor_reshape(top[i], 4, d);
        } else {
            rc = shape_from_blob_shape(top[i], p->shape[p->n_shape == 1 ? 0 : i], "dummy_data_param.shape");
        }
        if (rc)
            return rc;
    }
    /* The constant tops are filled now and never again. */
    for (int i = 0; i < n_top; i++) {
        int f = dp->n_fillers > 1 ? i : 0;
        if (!dp->refill[f]) {
            int rc = filler_fill(dp->fillers[f], top[i], l->rng);
            if (rc)
                return rc;
        }
    }
    return CREMA_OK;
}

static int dummy_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct dummy_priv *dp = l->priv;
    for (int i = 0; i < l->n_top; i++) {
        int f = dp->n_fillers > 1 ? i : 0;
        if (dp->refill[f]) {
            int rc = filler_fill(dp->fillers[f], top[i], l->rng);
            if (rc)
                return rc;
        }
    }
    return CREMA_OK;
}

static void dummy_destroy(struct layer *l)
{
    struct dummy_priv *dp = l->priv;
    if (!dp)
        return;
    free(dp->fillers);
    free(dp->refill);
    free(dp);
    l->priv = NULL;
}

const struct layer_kind dummy_data_layer = {
    .type = "DummyData",
    .min_bottoms = 0, .max_bottoms = 0,
    .min_tops = 1, .max_tops = -1,
    .setup = dummy_setup,
    .forward = dummy_forward,
    .destroy = dummy_destroy,
};

/* ---- MemoryData ---- */

/* src.at.record is the first item of the next batch. */
struct memory_priv {
    struct data_source src;
    int channels, height, width;
    size_t size; /* floats per item */
    float *data, *labels;
    int n;
    /* CaffeOnSpark sources (source_class): an LMDB is read by a Data layer
     * standing in for the arrays; other classes are fed by crema.spark. */
    enum cos_source_kind source;
    struct cos_lmdb lmdb;
    struct layer *reader;
};
_Static_assert(offsetof(struct memory_priv, src) == 0, "a data layer's state begins with its data_source");

static int memory_check_reader_shape(const struct layer *l, const struct memory_priv *mp, const struct tensor *t)
{
    if (t->num_axes == 4 && t->shape[1] == mp->channels && t->shape[2] == mp->height && t->shape[3] == mp->width)
        return CREMA_OK;
    char buf[128];
    return err_set(CREMA_ERR_SHAPE,
                   "MemoryData layer %s: the records of %s give %s after transform_param, but memory_data_param "
                   "says channels %d height %d width %d", l->name, mp->lmdb.data.source,
                   tensor_shape_string(t, buf, sizeof buf), mp->channels, mp->height, mp->width);
}

static int memory_open_source(struct layer *l, struct memory_priv *mp, struct tensor **top)
{
    int rc = cos_source_resolve(l->param, &mp->source, &mp->lmdb);
    if (rc || mp->source != COS_SOURCE_LMDB)
        return rc;
    rc = layer_create(&mp->lmdb.layer, l->phase, l->rng, NULL, 0, top, 2, &mp->reader);
    if (rc)
        return err_prefix(rc, "MemoryData layer %s: source_class %s", l->name, l->param->source_class);
    rc = memory_check_reader_shape(l, mp, top[0]);
    if (!rc)
        rc = tensor_reshape4(top[1], mp->src.batch_size, 1, 1, 1);
    return rc;
}

static int memory_set_shard(struct layer *l, int rank, int size)
{
    struct memory_priv *mp = l->priv;
    /* Arrays fed through the API are already this rank's own (crema.spark
     * feeds each rank its partition): nothing to split. */
    if (!mp->reader)
        return CREMA_OK;
    return data_source_set_shard(mp->reader, rank, size);
}

static int memory_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__MemoryDataParameter def = CAFFE__MEMORY_DATA_PARAMETER__INIT;
    const Caffe__MemoryDataParameter *p = l->param->memory_data_param ? l->param->memory_data_param : &def;
    struct memory_priv *mp = calloc(1, sizeof *mp);
    if (!mp)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = mp;
    int rc = data_source_init(&mp->src, "memory_data_param.batch_size", p->batch_size, 0);
    if (rc)
        return rc;
    mp->channels = (int)p->channels;
    mp->height = (int)p->height;
    mp->width = (int)p->width;
    if (mp->channels <= 0 || mp->height <= 0 || mp->width <= 0)
        return err_set(CREMA_ERR_INVALID,
                       "memory_data_param: batch_size, channels, height and width must be given and positive "
                       "(got %d, %d, %d, %d)", mp->src.batch_size, mp->channels, mp->height, mp->width);
    mp->size = (size_t)mp->channels * (size_t)mp->height * (size_t)mp->width;
    if (l->param->source_class && *l->param->source_class) {
        rc = memory_open_source(l, mp, top);
        if (rc || mp->reader)
            return rc;
    }
    rc = tensor_reshape4(top[0], mp->src.batch_size, mp->channels, mp->height, mp->width);
    if (!rc)
        rc = tensor_reshape(top[1], 1, &mp->src.batch_size);
    return rc;
}

static int memory_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct memory_priv *mp = l->priv;
    if (mp->reader) {
        int rc = mp->reader->kind->forward(mp->reader, bottom, top);
        if (!rc)
            rc = memory_check_reader_shape(l, mp, top[0]);
        if (!rc)
            rc = tensor_reshape4(top[1], mp->src.batch_size, 1, 1, 1);
        return rc;
    }
    if (!mp->data && mp->source == COS_SOURCE_SPARK)
        return cos_source_spark_only(l->param);
    if (!mp->data)
        return err_set(CREMA_ERR_INVALID, "MemoryData layer %s has no data: feed it first "
                       "(crema_net_set_memory_data)", l->name);
    const int batch = mp->src.batch_size;
    size_t *at = &mp->src.at.record;
    int rc = tensor_reshape4(top[0], batch, mp->channels, mp->height, mp->width);
    if (!rc)
        rc = tensor_reshape4(top[1], batch, 1, 1, 1);
    if (rc)
        return rc;
    float *d = tensor_data(top[0]), *lab = tensor_data(top[1]);
    if (!d || !lab)
        return CREMA_ERR_NOMEM;
    memcpy(d, mp->data + *at * mp->size, (size_t)batch * mp->size * sizeof(float));
    memcpy(lab, mp->labels + *at, (size_t)batch * sizeof(float));
    *at = (*at + (size_t)batch) % (size_t)mp->n;
    return CREMA_OK;
}

static void memory_destroy(struct layer *l)
{
    struct memory_priv *mp = l->priv;
    if (!mp)
        return;
    layer_free(mp->reader);
    free(mp->data);
    free(mp->labels);
    free(mp);
    l->priv = NULL;
}

/* With an LMDB source the position is the inner Data layer's. */
static int memory_get_position(struct layer *l, Caffe__CremaDataPosition *pos)
{
    struct memory_priv *mp = l->priv;
    if (mp->reader)
        return data_source_get_position(mp->reader, pos);
    return data_source_cursor_position(l, pos);
}

/* The arrays are the caller's to feed again; only the offset comes back. */
static int memory_set_position(struct layer *l, const Caffe__CremaDataPosition *pos)
{
    struct memory_priv *mp = l->priv;
    if (mp->reader)
        return data_source_set_position(mp->reader, pos); /* it carries this layer's name */
    if (mp->data ? pos->record >= (uint64_t)mp->n : pos->record != 0)
        return err_set(CREMA_ERR_INVALID, "layer %s: crema_data_position.record %llu is past the %d items fed",
                       l->name, (unsigned long long)pos->record, mp->data ? mp->n : 0);
    struct data_cursor at;
    int rc = data_source_read_position(l, &mp->src, pos, &at);
    if (!rc)
        mp->src.at = at;
    return rc;
}

int memory_data_reset(struct layer *l, const float *data, const float *labels, int n)
{
    if (l->kind != &memory_data_layer)
        return err_set(CREMA_ERR_INVALID, "layer %s is a %s layer, not MemoryData", l->name, l->kind->type);
    struct memory_priv *mp = l->priv;
    if (mp->reader)
        return err_set(CREMA_ERR_INVALID, "MemoryData layer %s reads its source_class %s itself; it cannot be fed",
                       l->name, l->param->source_class);
    if (!data || !labels)
        return err_set(CREMA_ERR_INVALID, "MemoryData layer %s: data and labels are both needed", l->name);
    int rc = data_source_check_feed(l, "items", n);
    if (rc)
        return rc;
    size_t nd = (size_t)n * mp->size;
    float *d = malloc(nd * sizeof(float)), *lab = malloc((size_t)n * sizeof(float));
    if (!d || !lab) {
        free(d);
        free(lab);
        return err_set(CREMA_ERR_NOMEM, "MemoryData layer %s: cannot hold %d items", l->name, n);
    }
    memcpy(d, data, nd * sizeof(float));
    memcpy(lab, labels, (size_t)n * sizeof(float));
    free(mp->data);
    free(mp->labels);
    mp->data = d;
    mp->labels = lab;
    mp->n = n;
    mp->src.at.record = 0;
    return CREMA_OK;
}

static const struct data_source_ops memory_data_source = {
    .set_shard = memory_set_shard,
    .get_position = memory_get_position,
    .set_position = memory_set_position,
};

const struct layer_kind memory_data_layer = {
    .type = "MemoryData",
    .min_bottoms = 0, .max_bottoms = 0,
    .min_tops = 2, .max_tops = 2,
    .setup = memory_setup,
    .forward = memory_forward,
    .destroy = memory_destroy,
    .source = &memory_data_source,
};
