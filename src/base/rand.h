/*
 * A seeded pseudo-random generator (xoshiro256**, seeded through splitmix64).
 *
 * Deterministic for a given seed on every platform, so a simulation or a randomised test that
 * fails can be replayed exactly from the seed it prints. Not for anything secret.
 */
#ifndef CHRONIK_BASE_RAND_H
#define CHRONIK_BASE_RAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rng {
    uint64_t s[4];
};

void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
/* Uniform in [0, n); n > 0. Unbiased. */
uint64_t rng_below(struct rng *r, uint64_t n);
/* Uniform in [lo, hi]; lo <= hi. */
uint64_t rng_range(struct rng *r, uint64_t lo, uint64_t hi);
/* True with probability num/den. */
bool rng_chance(struct rng *r, uint64_t num, uint64_t den);
void rng_fill(struct rng *r, void *p, size_t n);

#endif
