/* xoshiro256** seeded through splitmix64; Gaussian by Box-Muller. */
#include "util/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rng_seed(struct rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t rng_u32(struct rng *r) { return (uint32_t)(rng_next(r) >> 32); }

uint32_t rng_below(struct rng *r, uint32_t n)
{
    /* Lemire's multiply-shift; the tiny bias is irrelevant here. */
    return (uint32_t)(((uint64_t)rng_u32(r) * n) >> 32);
}

float rng_uniform(struct rng *r, float a, float b)
{
    double u = (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    float v = (float)(a + (b - a) * u);
    return v >= b ? a : v;
}

float rng_gaussian(struct rng *r, float mean, float stddev)
{
    double u1, u2;
    do {
        u1 = (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    } while (u1 <= 0.0);
    u2 = (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(mean + stddev * sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

int rng_bernoulli(struct rng *r, float p)
{
    return rng_uniform(r, 0.f, 1.f) < p;
}
