/* The Data layer: Datum records from LMDB or LevelDB, transformed, in
 * batches filled ahead of time by a prefetch thread. Records are read in key
 * order and wrap around at the end, as Caffe's DataReader cursor does. */
#include "data/datum.h"
#include "data/db.h"
#include "data/transformer.h"
#include "layers/data_source.h"
#include "util/io.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* src.at.record is the position of the cursor's record within the database;
 * src.at.rng crops and mirrors (TRAIN) on the prefetch thread. */
struct data_priv {
    struct data_source src;
    struct db *db;
    struct db_cursor *cur;
    struct transformer tf;
    struct datum dt;
    bool labels;
};
_Static_assert(offsetof(struct data_priv, src) == 0, "a data layer's state begins with its data_source");

static int advance(struct data_priv *p)
{
    struct data_cursor *at = &p->src.at;
    int rc = db_cursor_next(p->cur);
    at->record++;
    if (!rc && !db_cursor_valid(p->cur)) {
        rc = db_cursor_first(p->cur);
        at->record = 0;
        at->epoch++;
    }
    if (!rc && !db_cursor_valid(p->cur))
        rc = err_set(CREMA_ERR_INVALID, "%s: the database is empty", db_path(p->db));
    return rc;
}

/* Decodes the next record of this rank's shard into p->dt. */
static int read_record(struct data_priv *p)
{
    int rc;
    while (!data_source_mine(&p->src, p->src.at.record))
        if ((rc = advance(p)))
            return rc;
    size_t vlen;
    const uint8_t *v = db_cursor_value(p->cur, &vlen);
    char key[160], where[400];
    snprintf(where, sizeof where, "%s: record %zu (key %s)", db_path(p->db), p->src.at.record,
             db_cursor_key_text(p->cur, key, sizeof key));
    rc = datum_decode(v, vlen, p->tf.color, where, &p->dt);
    if (!rc)
        rc = advance(p);
    return rc;
}

static int fill_batch(void *ctx, struct prefetch_batch *b)
{
    struct data_priv *p = ctx;
    const int batch_size = p->src.batch_size;
    const size_t *record = &p->src.at.record;
    for (int i = 0; i < batch_size; i++) {
        int rc = read_record(p);
        if (rc)
            return rc;
        int oh, ow;
        rc = transformer_check(&p->tf, p->dt.channels, p->dt.height, p->dt.width, &oh, &ow);
        if (rc)
            return err_prefix(rc, "%s: record %zu", db_path(p->db), *record ? *record - 1 : 0);
        if (i == 0) {
            rc = prefetch_reserve(b, batch_size, p->dt.channels, oh, ow);
            if (rc)
                return rc;
        } else if (b->c != p->dt.channels || b->h != oh || b->w != ow) {
            return err_set(CREMA_ERR_SHAPE, "%s: record %zu is %dx%dx%d but the batch's first is %dx%dx%d",
                           db_path(p->db), *record ? *record - 1 : 0, p->dt.channels, oh, ow, b->c, b->h, b->w);
        }
        size_t item = (size_t)b->c * (size_t)b->h * (size_t)b->w;
        rc = transformer_apply(&p->tf, &p->src.at.rng, p->dt.is_float ? NULL : p->dt.u8, p->dt.is_float ? p->dt.f : NULL,
                               p->dt.channels, p->dt.height, p->dt.width, b->data + item * (size_t)i);
        if (rc)
            return rc;
        if (p->labels)
            b->label[i] = (float)p->dt.label;
    }
    return CREMA_OK;
}

static int data_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    static const Caffe__DataParameter def = CAFFE__DATA_PARAMETER__INIT;
    const Caffe__DataParameter *dp = l->param->data_param ? l->param->data_param : &def;
    struct data_priv *p = calloc(1, sizeof *p);
    if (!p)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = p;
    p->labels = l->n_top > 1;
    if (!dp->source || !*dp->source)
        return err_set(CREMA_ERR_INVALID, "data_param.source is empty");
    int rc = data_source_init(&p->src, "data_param.batch_size", dp->batch_size,
                              DATA_SAVES_EPOCH | DATA_SAVES_RNG);
    if (!rc)
        rc = transformer_init(&p->tf, l->param->transform_param, l->phase);
    if (rc)
        return rc;
    data_source_seed(&p->src, l);
    enum db_backend be = dp->backend == CAFFE__DATA_PARAMETER__DB__LMDB ? DB_LMDB : DB_LEVELDB;
    rc = db_open_read(io_strip_file_uri(dp->source), be, &p->db);
    if (!rc)
        rc = db_cursor_open(p->db, &p->cur);
    if (rc)
        return err_prefix(rc, "data_param.source");
    if (!db_cursor_valid(p->cur))
        return err_set(CREMA_ERR_INVALID, "data_param.source %s: the database is empty", dp->source);
    if (dp->rand_skip > 0) {
        /* As Caffe's older readers: skip up to rand_skip records once, so
         * that parallel runs start at different places. */
        uint32_t skip = rng_below(&p->src.at.rng, dp->rand_skip);
        while (skip-- > 0)
            if ((rc = advance(p)))
                return rc;
    }
    /* Shape the tops from the record that will be read first. */
    size_t vlen;
    const uint8_t *v = db_cursor_value(p->cur, &vlen);
    char key[160], where[400];
    snprintf(where, sizeof where, "%s: record %zu (key %s)", dp->source, p->src.at.record,
             db_cursor_key_text(p->cur, key, sizeof key));
    rc = datum_decode(v, vlen, p->tf.color, where, &p->dt);
    int oh, ow;
    if (!rc)
        rc = transformer_check(&p->tf, p->dt.channels, p->dt.height, p->dt.width, &oh, &ow);
    if (rc)
        return rc;
    rc = tensor_reshape4(top[0], p->src.batch_size, p->dt.channels, oh, ow);
    if (!rc && p->labels)
        rc = tensor_reshape(top[1], 1, &p->src.batch_size);
    if (rc)
        return rc;
    return data_source_prefetch(&p->src, l, fill_batch, p);
}

static int data_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)l;
    (void)bottom;
    (void)top;
    return CREMA_OK; /* tops take each batch's shape in forward */
}

static int data_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    struct data_priv *p = l->priv;
    return data_source_forward_on(&p->src, top[0], p->labels ? top[1] : NULL, l->be);
}

/* Drops what was read ahead, walks the cursor to the record, and lets the
 * next forward start a fresh prefetch thread from there. */
static int data_set_position(struct layer *l, const Caffe__CremaDataPosition *pos)
{
    struct data_priv *p = l->priv;
    struct data_cursor at;
    int rc = data_source_read_position(l, &p->src, pos, &at);
    if (rc)
        return rc;
    data_source_stop(&p->src);
    if ((rc = db_cursor_first(p->cur)))
        return rc;
    p->src.at.record = 0;
    for (uint64_t i = 0; i < pos->record; i++) {
        if ((rc = advance(p)))
            return rc;
        if (p->src.at.record == 0)
            return err_set(CREMA_ERR_INVALID, "layer %s: crema_data_position.record %llu is past the end of %s",
                           l->name, (unsigned long long)pos->record, db_path(p->db));
    }
    p->src.at = at;
    return CREMA_OK;
}

static void data_destroy(struct layer *l)
{
    struct data_priv *p = l->priv;
    if (!p)
        return;
    data_source_close(&p->src);
    db_cursor_close(p->cur);
    db_close(p->db);
    datum_free(&p->dt);
    transformer_free(&p->tf);
    free(p);
    l->priv = NULL;
}

static const struct data_source_ops data_source = {
    .set_shard = data_source_keep_share,
    .get_position = data_source_cursor_position,
    .set_position = data_set_position,
    .follows_rank0 = true,
};

const struct layer_kind data_layer = {
    .type = "Data",
    .min_bottoms = 0,
    .max_bottoms = 0,
    .min_tops = 1,
    .max_tops = 2,
    .setup = data_setup,
    .reshape = data_reshape,
    .forward = data_forward,
    .forward_dev = data_forward, /* the prefetch thread uploads each batch */
    .runs_on = data_source_runs_on,
    .destroy = data_destroy,
    .source = &data_source,
};
