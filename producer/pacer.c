/* pacer.c -- record deadlines on the monotonic clock, so pace never drifts with send time. */
#include "pacer.h"

/* Set the mode from the options; the seed makes random gaps repeatable. */
void pacer_init(pacer *p, double min_s, double max_s, double rate, uint64_t seed) {
  p->min_s = min_s;
  p->max_s = max_s;
  p->rate = rate;
  if (rate > 0) {
    p->mode = PACER_RATE;
  } else if (max_s <= 0) {
    p->mode = PACER_UNPACED;
  } else {
    p->mode = PACER_INTERVAL;
  }
  rng_seed(&p->rng, seed);
  p->start_us = 0;
  p->next_us = 0;
  p->n = 0;
}

void pacer_init_clock(pacer *p) {
  pacer_init(p, 0, 0, 0, 0);
  p->mode = PACER_CLOCK;
}

uint64_t pacer_take_after(pacer *p, uint64_t gap_us) {
  uint64_t due = p->n == 0 ? p->start_us : p->next_us + gap_us;
  p->n++;
  p->next_us = due;
  return due;
}

/* The first record is due at now_us. */
void pacer_start(pacer *p, uint64_t now_us) {
  p->start_us = now_us;
  p->next_us = p->mode == PACER_UNPACED ? 0 : now_us;
  p->n = 0;
}

uint64_t pacer_peek(const pacer *p) {
  return p->mode == PACER_CLOCK ? 0 : p->next_us;
}

/* Hand out the current deadline and draw the next one. Rate deadlines are computed from the
 * start time (start + n / rate) rather than added up, so rounding never accumulates. */
uint64_t pacer_take(pacer *p) {
  uint64_t due = p->next_us;
  p->n++;
  switch (p->mode) {
  case PACER_RATE:
    p->next_us = p->start_us + (uint64_t)((double)p->n * 1e6 / p->rate);
    break;
  case PACER_INTERVAL: {
    double gap = p->min_s;
    if (p->max_s > p->min_s) {
      gap += (p->max_s - p->min_s) * rng_uniform(&p->rng);
    }
    p->next_us = due + (uint64_t)(gap * 1e6);
    break;
  }
  default:
    p->next_us = 0;
    break;
  }
  return due;
}

/* One rule for every mode: the average gap is at least PACER_SLOW_GAP_S (a tolerance keeps
 * "--interval 0.05-0.15" on the slow side despite rounding). */
int pacer_is_slow(const pacer *p) {
  const double eps = 1e-9;
  if (p->mode == PACER_RATE) {
    return 1.0 / p->rate >= PACER_SLOW_GAP_S - eps;
  }
  return p->mode == PACER_INTERVAL && (p->min_s + p->max_s) / 2.0 >= PACER_SLOW_GAP_S - eps;
}
