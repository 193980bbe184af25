/* clock.c -- wall-clock stamps for the wire, monotonic time for pacing, and log timestamps. */
#include "clock.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

/* Microseconds since the Unix epoch (CLOCK_REALTIME). */
uint64_t clock_wall_us(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
    return 0;
  }
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Microseconds of CLOCK_MONOTONIC: immune to the wall clock being set. */
uint64_t clock_mono_us(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
    return 0;
  }
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Sleep until CLOCK_MONOTONIC reaches t_us. A signal interrupts the sleep; it resumes unless
 * *stop was set by the handler. */
void clock_sleep_until(uint64_t t_us, volatile int *stop) {
  struct timespec ts;
  ts.tv_sec = (time_t)(t_us / 1000000u);
  ts.tv_nsec = (long)(t_us % 1000000u) * 1000L;
  for (;;) {
    if (stop != NULL && *stop) {
      return;
    }
    int rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    if (rc != EINTR) {
      return;
    }
  }
}

/* "YYYY-MM-DD HH:MM:SS.mmm" in local time. */
char *clock_format(uint64_t wall_us, char *buf, size_t len) {
  if (len == 0) {
    return buf;
  }
  time_t secs = (time_t)(wall_us / 1000000u);
  unsigned ms = (unsigned)((wall_us % 1000000u) / 1000u);
  struct tm tm;
  char day[32];
  if (localtime_r(&secs, &tm) == NULL || strftime(day, sizeof day, "%Y-%m-%d %H:%M:%S", &tm) == 0) {
    snprintf(buf, len, "%llu.%03u", (unsigned long long)secs, ms);
    return buf;
  }
  snprintf(buf, len, "%s.%03u", day, ms);
  return buf;
}
