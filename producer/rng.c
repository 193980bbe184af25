/* rng.c -- splitmix64 for reproducible pace and impairment decisions; getrandom for ids/seeds. */
#include "rng.h"

#include <errno.h>
#include <sys/random.h>

/* Seed the generator; the same seed always gives the same sequence. */
void rng_seed(rng *r, uint64_t seed) {
  r->state = seed;
}

/* Next 64 pseudo-random bits (splitmix64 by Steele, Lea and Flood). */
uint64_t rng_next(rng *r) {
  uint64_t z = (r->state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* Uniform double in [0, 1) from the top 53 bits. */
double rng_uniform(rng *r) {
  return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* Fill *out from getrandom(2); see rng_os_bytes. */
int rng_os_u64(uint64_t *out) {
  return rng_os_bytes(out, sizeof *out);
}

/* Fill out[0..len) from getrandom(2), retrying EINTR and short reads. */
int rng_os_bytes(void *out, size_t len) {
  unsigned char *p = out;
  size_t got = 0;
  while (got < len) {
    ssize_t n = getrandom(p + got, len - got, 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return -errno;
    }
    got += (size_t)n;
  }
  return 0;
}
