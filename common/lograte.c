/* lograte.c -- a token bucket for log lines about frequent events. */
#include "lograte.h"

void lograte_init(lograte *r, unsigned burst, unsigned per_s) {
  r->tokens_x1m = 0;
  r->last_us = 0;
  r->suppressed = 0;
  r->burst = burst > 0 ? burst : 1;
  r->per_s = per_s > 0 ? per_s : 1;
}

/* Refill by the time since the last call, then take a token; see lograte.h. */
int lograte_allow(lograte *r, uint64_t now_us) {
  const uint64_t full = (uint64_t)r->burst * 1000000u;
  if (now_us == r->last_us && r->tokens_x1m < 1000000u) {
    /* Empty, and no time has passed (a caller that reads the clock once for many events). */
    r->suppressed++;
    return 0;
  }
  if (r->last_us == 0 || now_us < r->last_us) {
    r->tokens_x1m = full;
  } else {
    /* Elapsed time is capped so that the product cannot overflow after a long quiet spell. */
    uint64_t elapsed = now_us - r->last_us;
    if (elapsed > 1000000u * (uint64_t)r->burst) {
      elapsed = 1000000u * (uint64_t)r->burst;
    }
    r->tokens_x1m += elapsed * r->per_s;
    if (r->tokens_x1m > full) {
      r->tokens_x1m = full;
    }
  }
  r->last_us = now_us == 0 ? 1 : now_us;
  if (r->tokens_x1m < 1000000u) {
    r->suppressed++;
    return 0;
  }
  r->tokens_x1m -= 1000000u;
  return 1;
}

unsigned long long lograte_take_suppressed(lograte *r) {
  unsigned long long n = r->suppressed;
  r->suppressed = 0;
  return n;
}
