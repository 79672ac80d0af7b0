/* The data layers' shared part: batch_size, sharding, reading positions
 * (crema_data_position, solverstate field 1000) and the prefetch ring. */
#include "layers/data_source.h"

#include <stddef.h>
#include <stdlib.h>

static struct data_source *source_of(struct layer *l)
{
    return l->priv;
}

static const struct data_source_ops *ops_of(const struct layer *l)
{
    return l && l->kind ? l->kind->source : NULL;
}

bool data_source_has_position(const struct layer *l)
{
    const struct data_source_ops *ops = ops_of(l);
    return ops && ops->get_position && ops->set_position;
}

int data_source_get_position(struct layer *l, Caffe__CremaDataPosition *pos)
{
    if (!data_source_has_position(l))
        return err_set(CREMA_ERR_INVALID, "layer %s (%s) has no reading position", l ? l->name : "?",
                       l && l->kind ? l->kind->type : "?");
    return l->kind->source->get_position(l, pos);
}

int data_source_set_position(struct layer *l, const Caffe__CremaDataPosition *pos)
{
    if (!data_source_has_position(l))
        return err_set(CREMA_ERR_INVALID, "layer %s (%s) has no reading position", l ? l->name : "?",
                       l && l->kind ? l->kind->type : "?");
    return l->kind->source->set_position(l, pos);
}

bool data_source_shardable(const struct layer *l)
{
    const struct data_source_ops *ops = ops_of(l);
    return ops && ops->set_shard;
}

bool data_source_follows_rank0(const struct layer *l)
{
    const struct data_source_ops *ops = ops_of(l);
    return ops && ops->follows_rank0 && data_source_has_position(l);
}

int data_source_set_shard(struct layer *l, int rank, int size)
{
    if (!data_source_shardable(l))
        return err_set(CREMA_ERR_INVALID, "layer %s (%s) cannot be sharded: only layers that read a source can",
                       l && l->name ? l->name : "?", l && l->kind ? l->kind->type : "?");
    if (size < 1 || rank < 0 || rank >= size)
        return err_set(CREMA_ERR_INVALID, "layer %s: shard rank %d of %d is out of range", l->name, rank, size);
    return l->kind->source->set_shard(l, rank, size);
}

int data_source_init(struct data_source *s, const char *field, uint32_t batch_size, unsigned saves)
{
    if (batch_size == 0 || batch_size > DATA_SOURCE_MAX_BATCH)
        return err_set(CREMA_ERR_INVALID, "%s is %u; it must be given, from 1 to %d", field, batch_size,
                       DATA_SOURCE_MAX_BATCH);
    s->batch_size = (int)batch_size;
    s->rank = 0;
    s->size = 1;
    s->saves = saves;
    return CREMA_OK;
}

void data_source_seed(struct data_source *s, const struct layer *l)
{
    rng_seed(&s->at.rng, l->rng ? rng_next(l->rng) : 0x5eed);
}

bool data_source_mine(const struct data_source *s, size_t record)
{
    return record % (size_t)s->size == (size_t)s->rank;
}

int data_source_keep_share(struct layer *l, int rank, int size)
{
    struct data_source *s = source_of(l);
    if (prefetch_started(s->pf))
        return err_set(CREMA_ERR_INVALID, "layer %s: set the shard before the first forward", l->name);
    s->rank = rank;
    s->size = size;
    return CREMA_OK;
}

int data_source_check_feed(const struct layer *l, const char *what, int n)
{
    const struct data_source *s = l->priv;
    if (n <= 0 || n % s->batch_size != 0)
        return err_set(CREMA_ERR_INVALID,
                       "%s layer %s: the number of %s (%d) must be a positive multiple of batch_size (%d)",
                       l->kind->type, l->name, what, n, s->batch_size);
    return CREMA_OK;
}

/* ---- the prefetch thread ---- */

int data_source_prefetch(struct data_source *s, const struct layer *l, prefetch_fill_fn fill, void *ctx)
{
    int rc = prefetch_new(s->batch_size, prefetch_slots(l->param), fill, ctx, &s->pf);
    if (!rc)
        rc = prefetch_track(s->pf, &s->at, sizeof s->at);
    return rc;
}

int data_source_forward(struct data_source *s, struct tensor *data, struct tensor *label)
{
    return prefetch_forward(s->pf, data, label, 1);
}

int data_source_forward_on(struct data_source *s, struct tensor *data, struct tensor *label,
                           const struct backend *be)
{
    if (be->host_memory)
        return prefetch_forward(s->pf, data, label, 1);
    int rc = prefetch_set_device(s->pf, be); /* before the first batch; later, as it was */
    return rc ? rc : prefetch_forward_on(s->pf, data, label, 1, be);
}

bool data_source_runs_on(const struct backend *be)
{
    return be->upload_side != NULL;
}

void data_source_stop(struct data_source *s)
{
    prefetch_stop(s->pf);
}

void data_source_close(struct data_source *s)
{
    prefetch_free(s->pf); /* joins the thread before the state it fills from goes */
    s->pf = NULL;
}

/* ---- positions ---- */

#define RNG_WORDS ((int)(sizeof(((struct rng *)0)->s) / sizeof(uint64_t)))

static int put_rng(uint64_t **words, size_t *n, const struct rng *r)
{
    uint64_t *w = malloc(RNG_WORDS * sizeof *w);
    if (!w)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    for (int i = 0; i < RNG_WORDS; i++)
        w[i] = r->s[i];
    free(*words);
    *words = w;
    *n = RNG_WORDS;
    return CREMA_OK;
}

static int get_rng(const struct layer *l, const char *field, const uint64_t *words, size_t n, struct rng *r)
{
    if (n == 0)
        return CREMA_OK;
    if (n != (size_t)RNG_WORDS)
        return err_set(CREMA_ERR_INVALID, "layer %s: crema_data_position.%s has %zu values, expected %d", l->name,
                       field, n, RNG_WORDS);
    for (int i = 0; i < RNG_WORDS; i++)
        r->s[i] = words[i];
    return CREMA_OK;
}

/* Where the batch the next forward returns begins, however far the
 * prefetch thread has read ahead (s->at is the thread's while it runs). */
static void consumer_cursor(struct data_source *s, struct data_cursor *at)
{
    if (s->pf)
        prefetch_position(s->pf, at);
    else
        *at = s->at;
}

int data_source_cursor_position(struct layer *l, Caffe__CremaDataPosition *pos)
{
    struct data_source *s = source_of(l);
    struct data_cursor at;
    consumer_cursor(s, &at);
    pos->has_record = true;
    pos->record = at.record;
    if (s->saves & DATA_SAVES_EPOCH) {
        pos->has_epoch = true;
        pos->epoch = at.epoch;
    }
    int rc = CREMA_OK;
    if (s->saves & DATA_SAVES_RNG)
        rc = put_rng(&pos->rng_state, &pos->n_rng_state, &at.rng);
    if (!rc && (s->saves & DATA_SAVES_PASS_RNG))
        rc = put_rng(&pos->shuffle_rng_state, &pos->n_shuffle_rng_state, &at.pass_rng);
    return rc;
}

int data_source_read_position(const struct layer *l, struct data_source *s, const Caffe__CremaDataPosition *pos,
                              struct data_cursor *at)
{
    consumer_cursor(s, at);
    at->record = (size_t)pos->record;
    if (s->saves & DATA_SAVES_EPOCH)
        at->epoch = pos->epoch;
    if ((s->saves & DATA_SAVES_PASS_RNG) && pos->n_shuffle_rng_state == 0)
        return err_set(CREMA_ERR_INVALID,
                       "layer %s: crema_data_position.shuffle_rng_state is missing, and shuffle is on (a position "
                       "written by a run without shuffle cannot say this pass's order)", l->name);
    int rc = CREMA_OK;
    if (s->saves & DATA_SAVES_RNG)
        rc = get_rng(l, "rng_state", pos->rng_state, pos->n_rng_state, &at->rng);
    if (!rc && (s->saves & DATA_SAVES_PASS_RNG))
        rc = get_rng(l, "shuffle_rng_state", pos->shuffle_rng_state, pos->n_shuffle_rng_state, &at->pass_rng);
    return rc;
}
