/* The Data layer: Datum records from LMDB or LevelDB, transformed, in
 * batches filled ahead of time by a prefetch thread. Records are read in key
 * order and wrap around at the end, as Caffe's DataReader cursor does. */
#include "layers/data_layer.h"
#include "data/datum.h"
#include "data/db.h"
#include "data/prefetch.h"
#include "data/transformer.h"
#include "util/io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where the reader stands: the next record to read, passes made, and the
 * generator that crops and mirrors. The prefetch ring keeps one per batch. */
struct data_mark {
    size_t index;
    uint64_t epoch;
    struct rng rng;
};

struct data_priv {
    struct db *db;
    struct db_cursor *cur;
    struct transformer tf;
    struct rng rng; /* the prefetch thread's own: TRAIN crops and mirrors */
    struct datum dt;
    int batch_size;
    bool labels;
    size_t index; /* position of the cursor's record within the database */
    uint64_t epoch;
    int rank, size;
    struct prefetch *pf;
};

static int advance(struct data_priv *p)
{
    int rc = db_cursor_next(p->cur);
    p->index++;
    if (!rc && !db_cursor_valid(p->cur)) {
        rc = db_cursor_first(p->cur);
        p->index = 0;
        p->epoch++;
    }
    if (!rc && !db_cursor_valid(p->cur))
        rc = err_set(CREMA_ERR_INVALID, "%s: the database is empty", db_path(p->db));
    return rc;
}

/* Decodes the next record of this rank's shard into p->dt. */
static int read_record(struct data_priv *p)
{
    int rc;
    while (p->index % (size_t)p->size != (size_t)p->rank)
        if ((rc = advance(p)))
            return rc;
    size_t vlen;
    const uint8_t *v = db_cursor_value(p->cur, &vlen);
    char key[160], where[400];
    snprintf(where, sizeof where, "%s: record %zu (key %s)", db_path(p->db), p->index,
             db_cursor_key_text(p->cur, key, sizeof key));
    rc = datum_decode(v, vlen, p->tf.color, where, &p->dt);
    if (!rc)
        rc = advance(p);
    return rc;
}

static int fill_batch(void *ctx, struct prefetch_batch *b)
{
    struct data_priv *p = ctx;
    for (int i = 0; i < p->batch_size; i++) {
        int rc = read_record(p);
        if (rc)
            return rc;
        int oh, ow;
        rc = transformer_check(&p->tf, p->dt.channels, p->dt.height, p->dt.width, &oh, &ow);
        if (rc)
            return err_prefix(rc, "%s: record %zu", db_path(p->db), p->index ? p->index - 1 : 0);
        if (i == 0) {
            rc = prefetch_reserve(b, p->batch_size, p->dt.channels, oh, ow);
            if (rc)
                return rc;
        } else if (b->c != p->dt.channels || b->h != oh || b->w != ow) {
            return err_set(CREMA_ERR_SHAPE, "%s: record %zu is %dx%dx%d but the batch's first is %dx%dx%d",
                           db_path(p->db), p->index ? p->index - 1 : 0, p->dt.channels, oh, ow, b->c, b->h, b->w);
        }
        size_t item = (size_t)b->c * (size_t)b->h * (size_t)b->w;
        rc = transformer_apply(&p->tf, &p->rng, p->dt.is_float ? NULL : p->dt.u8, p->dt.is_float ? p->dt.f : NULL,
                               p->dt.channels, p->dt.height, p->dt.width, b->data + item * (size_t)i);
        if (rc)
            return rc;
        if (p->labels)
            b->label[i] = (float)p->dt.label;
    }
    return CREMA_OK;
}

int data_layer_set_shard(struct layer *l, int rank, int size)
{
    if (!l || !l->kind || !l->kind->set_shard)
        return err_set(CREMA_ERR_INVALID, "layer %s (%s) cannot be sharded: only layers that read a source can",
                       l && l->name ? l->name : "?", l && l->kind ? l->kind->type : "?");
    if (size < 1 || rank < 0 || rank >= size)
        return err_set(CREMA_ERR_INVALID, "layer %s: shard rank %d of %d is out of range", l->name, rank, size);
    return l->kind->set_shard(l, rank, size);
}

static int data_set_shard(struct layer *l, int rank, int size)
{
    struct data_priv *p = l->priv;
    if (prefetch_started(p->pf))
        return err_set(CREMA_ERR_INVALID, "layer %s: set the shard before the first forward", l->name);
    p->rank = rank;
    p->size = size;
    return CREMA_OK;
}

static void data_take_mark(const void *ctx, void *out)
{
    const struct data_priv *p = ctx;
    *(struct data_mark *)out = (struct data_mark){ p->index, p->epoch, p->rng };
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
    p->size = 1;
    p->labels = l->n_top > 1;
    if (!dp->source || !*dp->source)
        return err_set(CREMA_ERR_INVALID, "data_param.source is empty");
    if (dp->batch_size == 0 || dp->batch_size > (1u << 24))
        return err_set(CREMA_ERR_INVALID, "data_param.batch_size %u must be positive", dp->batch_size);
    p->batch_size = (int)dp->batch_size;
    int rc = transformer_init(&p->tf, l->param->transform_param, l->phase);
    if (rc)
        return rc;
    rng_seed(&p->rng, l->rng ? rng_next(l->rng) : 0x5eed);
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
        uint32_t skip = rng_below(&p->rng, dp->rand_skip);
        while (skip-- > 0)
            if ((rc = advance(p)))
                return rc;
    }
    /* Shape the tops from the record that will be read first. */
    size_t vlen;
    const uint8_t *v = db_cursor_value(p->cur, &vlen);
    char key[160], where[400];
    snprintf(where, sizeof where, "%s: record %zu (key %s)", dp->source, p->index,
             db_cursor_key_text(p->cur, key, sizeof key));
    rc = datum_decode(v, vlen, p->tf.color, where, &p->dt);
    int oh, ow;
    if (!rc)
        rc = transformer_check(&p->tf, p->dt.channels, p->dt.height, p->dt.width, &oh, &ow);
    if (rc)
        return rc;
    rc = tensor_reshape4(top[0], p->batch_size, p->dt.channels, oh, ow);
    if (!rc && p->labels)
        rc = tensor_reshape(top[1], 1, &p->batch_size);
    if (rc)
        return rc;
    rc = prefetch_new(p->batch_size, prefetch_slots(l->param), fill_batch, p, &p->pf);
    if (!rc)
        rc = prefetch_track(p->pf, sizeof(struct data_mark), data_take_mark);
    return rc;
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
    return prefetch_forward(p->pf, top[0], p->labels ? top[1] : NULL, 1);
}

/* Where the batch the next forward returns began, however far the prefetch
 * thread has read ahead. */
static int data_get_position(struct layer *l, Caffe__CremaDataPosition *pos)
{
    struct data_priv *p = l->priv;
    struct data_mark m;
    prefetch_position(p->pf, &m);
    pos->has_record = pos->has_epoch = true;
    pos->record = m.index;
    pos->epoch = m.epoch;
    return layer_position_put_rng(pos, &m.rng);
}

/* Drops what was read ahead, walks the cursor to the record, and lets the
 * next forward start a fresh prefetch thread from there. */
static int data_set_position(struct layer *l, const Caffe__CremaDataPosition *pos)
{
    struct data_priv *p = l->priv;
    prefetch_stop(p->pf);
    struct rng r = p->rng;
    int rc = layer_position_get_rng(l, pos, &r);
    if (rc)
        return rc;
    if ((rc = db_cursor_first(p->cur)))
        return rc;
    p->index = 0;
    for (uint64_t i = 0; i < pos->record; i++) {
        if ((rc = advance(p)))
            return rc;
        if (p->index == 0)
            return err_set(CREMA_ERR_INVALID, "layer %s: crema_data_position.record %llu is past the end of %s",
                           l->name, (unsigned long long)pos->record, db_path(p->db));
    }
    p->epoch = pos->epoch;
    p->rng = r;
    return CREMA_OK;
}

static void data_destroy(struct layer *l)
{
    struct data_priv *p = l->priv;
    if (!p)
        return;
    prefetch_free(p->pf); /* joins the thread before its state goes */
    db_cursor_close(p->cur);
    db_close(p->db);
    datum_free(&p->dt);
    transformer_free(&p->tf);
    free(p);
    l->priv = NULL;
}

const struct layer_kind data_layer = {
    .type = "Data",
    .min_bottoms = 0,
    .max_bottoms = 0,
    .min_tops = 1,
    .max_tops = 2,
    .setup = data_setup,
    .reshape = data_reshape,
    .forward = data_forward,
    .destroy = data_destroy,
    .get_position = data_get_position,
    .set_position = data_set_position,
    .set_shard = data_set_shard,
};
