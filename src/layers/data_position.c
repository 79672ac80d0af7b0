/* Helpers for the data layers' reading positions (get_position and
 * set_position in the layer contract): the generator state part. */
#include "layers/layer.h"

#include <stdlib.h>

#define RNG_WORDS ((int)(sizeof(((struct rng *)0)->s) / sizeof(uint64_t)))

int layer_position_put_rng(Caffe__CremaDataPosition *pos, const struct rng *r)
{
    uint64_t *s = malloc(RNG_WORDS * sizeof *s);
    if (!s)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    for (int i = 0; i < RNG_WORDS; i++)
        s[i] = r->s[i];
    free(pos->rng_state);
    pos->rng_state = s;
    pos->n_rng_state = RNG_WORDS;
    return CREMA_OK;
}

int layer_position_get_rng(const struct layer *l, const Caffe__CremaDataPosition *pos, struct rng *r)
{
    if (pos->n_rng_state == 0)
        return CREMA_OK;
    if (pos->n_rng_state != (size_t)RNG_WORDS)
        return err_set(CREMA_ERR_INVALID, "layer %s: crema_data_position.rng_state has %zu values, expected %d",
                       l->name, pos->n_rng_state, RNG_WORDS);
    for (int i = 0; i < RNG_WORDS; i++)
        r->s[i] = pos->rng_state[i];
    return CREMA_OK;
}
