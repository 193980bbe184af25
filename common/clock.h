/* clock.h -- time: wall clock for send/receive stamps, monotonic clock for pacing. */
#ifndef CSVSTREAM_CLOCK_H
#define CSVSTREAM_CLOCK_H

#include <stddef.h>
#include <stdint.h>

uint64_t clock_wall_us(void); /* CLOCK_REALTIME, microseconds since the Unix epoch */
uint64_t clock_mono_us(void); /* CLOCK_MONOTONIC, microseconds */
/* Sleep until the monotonic clock reaches t_us (returns at once if it has). EINTR is retried
 * unless *stop becomes non-zero (stop may be NULL). */
void clock_sleep_until(uint64_t t_us, volatile int *stop);
/* "2026-11-29 20:41:07.123" (local time) into buf. Returns buf. */
char *clock_format(uint64_t wall_us, char *buf, size_t len);

#endif
