/* pacer.h -- when each record is due: random 1-3 s gaps, a fixed gap, N per second, or unpaced. */
#ifndef PRODUCER_PACER_H
#define PRODUCER_PACER_H

#include <stdint.h>

#include "rng.h"

enum pacer_mode {
  PACER_UNPACED = 0, /* every record is due at once */
  PACER_INTERVAL,    /* gaps uniform in [min_s, max_s] (fixed when equal) */
  PACER_RATE,        /* rate records a second, evenly, on absolute deadlines */
  PACER_CLOCK        /* the file's own clock: each gap given by the caller (pacer_take_after) */
};

typedef struct pacer {
  int mode;
  double min_s, max_s;
  double rate;
  rng rng;
  uint64_t start_us; /* monotonic time of the first record */
  uint64_t next_us;  /* deadline of the next record (already drawn) */
  uint64_t n;        /* records handed out so far */
} pacer;

/* Configure: interval [min_s, max_s] (0-0 is unpaced) unless rate > 0. */
void pacer_init(pacer *p, double min_s, double max_s, double rate, uint64_t seed);
/* Configure for the file's own clock (--timestamps): deadlines from pacer_take_after. */
void pacer_init_clock(pacer *p);
/* Clock mode: the deadline of the next record, gap_us after the previous one's (the first
 * record is due at the start). Deadlines add up from the start, so time spent sending never
 * makes the replay drift; a late record is sent at once and the next keeps its own time. */
uint64_t pacer_take_after(pacer *p, uint64_t gap_us);
/* Start the schedule at monotonic time now_us: the first record is due at once. */
void pacer_start(pacer *p, uint64_t now_us);
/* Deadline (monotonic µs) of the next record without consuming it; 0 when unpaced, and in
 * clock mode, where it is not known before the record is read (0 lets the sender gather; it
 * writes what it holds before any wait). */
uint64_t pacer_peek(const pacer *p);
/* Deadline of the next record, and move on to the one after it. */
uint64_t pacer_take(pacer *p);
/* Records at least this far apart on average are logged one by one; faster, the producer logs a
 * progress line every second instead. */
#define PACER_SLOW_GAP_S 0.1
/* 1 when the pace is slow enough to log each record: an average gap of PACER_SLOW_GAP_S or
 * more (--interval MIN-MAX with (MIN+MAX)/2 >= 0.1, --rate N with N <= 10); never unpaced. */
int pacer_is_slow(const pacer *p);

#endif
