/* Helpers for the data layers' reading positions (get_position and
 * set_position in the layer contract): the generator state part. */
#include "layers/layer.h"

#include <stdlib.h>

#define RNG_WORDS ((int)(sizeof(((struct rng *)0)->s) / sizeof(uint64_t)))

static int put_words(uint64_t **words, size_t *n, const struct rng *r)
{
    uint64_t *s = malloc(RNG_WORDS * sizeof *s);
    if (!s)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    for (int i = 0; i < RNG_WORDS; i++)
        s[i] = r->s[i];
    free(*words);
    *words = s;
    *n = RNG_WORDS;
    return CREMA_OK;
}

static int get_words(const struct layer *l, const char *field, const uint64_t *words, size_t n, struct rng *r)
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

int layer_position_put_rng(Caffe__CremaDataPosition *pos, const struct rng *r)
{
    return put_words(&pos->rng_state, &pos->n_rng_state, r);
}

int layer_position_get_rng(const struct layer *l, const Caffe__CremaDataPosition *pos, struct rng *r)
{
    return get_words(l, "rng_state", pos->rng_state, pos->n_rng_state, r);
}

int layer_position_put_shuffle_rng(Caffe__CremaDataPosition *pos, const struct rng *r)
{
    return put_words(&pos->shuffle_rng_state, &pos->n_shuffle_rng_state, r);
}

int layer_position_get_shuffle_rng(const struct layer *l, const Caffe__CremaDataPosition *pos, struct rng *r)
{
    return get_words(l, "shuffle_rng_state", pos->shuffle_rng_state, pos->n_shuffle_rng_state, r);
}
