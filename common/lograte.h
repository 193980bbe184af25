/* lograte.h -- a token bucket for log lines about frequent events (records, connections): a
 * burst of lines, then a steady few a second, and a count of the lines held back. */
#ifndef CSVSTREAM_LOGRATE_H
#define CSVSTREAM_LOGRATE_H

#include <stdint.h>

typedef struct lograte {
  uint64_t tokens_x1m;           /* tokens in millionths (integer arithmetic, no drift) */
  uint64_t last_us;              /* time of the last refill, 0 before the first */
  unsigned long long suppressed; /* lines held back since the last one logged */
  unsigned burst, per_s;
} lograte;

/* Up to burst lines at once, refilled at per_s lines a second (both at least 1). */
void lograte_init(lograte *r, unsigned burst, unsigned per_s);

/* Take one token (now_us: monotonic, or the wall clock, whose steps back refill the bucket and
 * whose steps forward refill it at most to the burst). Returns 1 when a line may be logged,
 * else counts it in r->suppressed and returns 0. Cheap when now_us is the same as last time
 * and the bucket is empty. */
int lograte_allow(lograte *r, uint64_t now_us);

/* The lines held back since the last call, and clear the count: for "(N more ...)". */
unsigned long long lograte_take_suppressed(lograte *r);

#endif
