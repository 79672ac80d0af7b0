/* A seedable random number generator (xoshiro256**), one per owner, so that
 * runs repeat from the solver's random_seed. Not Caffe's boost::mt19937:
 * random draws are not meant to equal Caffe's. */
#ifndef CREMA_UTIL_RNG_H
#define CREMA_UTIL_RNG_H

#include <stdint.h>

struct rng {
    uint64_t s[4];
};

void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
uint32_t rng_u32(struct rng *r);
/* Uniform in [0, n) for n > 0. */
uint32_t rng_below(struct rng *r, uint32_t n);
/* Uniform float in [a, b). */
float rng_uniform(struct rng *r, float a, float b);
float rng_gaussian(struct rng *r, float mean, float stddev);
int rng_bernoulli(struct rng *r, float p);

#endif
