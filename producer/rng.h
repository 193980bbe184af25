/* rng.h -- the producer's seedable pseudo-random numbers (pace, impairment) and OS randomness. */
#ifndef PRODUCER_RNG_H
#define PRODUCER_RNG_H

#include <stddef.h>
#include <stdint.h>

/* splitmix64: tiny, fast, and the same sequence for the same seed on every machine. */
typedef struct rng {
  uint64_t state;
} rng;

void rng_seed(rng *r, uint64_t seed);
uint64_t rng_next(rng *r);
/* Uniform in [0, 1). */
double rng_uniform(rng *r);

/* 64 random bits from the OS (getrandom). Returns 0, or a negative errno code. */
int rng_os_u64(uint64_t *out);
/* len random bytes from the OS (getrandom). Returns 0, or a negative errno code. */
int rng_os_bytes(void *out, size_t len);

#endif
