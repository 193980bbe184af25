/* log.c -- timestamped log lines on stderr, one write per line, plus a rate limiter. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"

/* The logger's settings. log.h's interface (log_init once, log_msg anywhere) needs process-wide
 * state; it is written once at start-up and only read afterwards. */
static char log_prog[64] = "csvstream";
static int log_max_level = LOG_INFO;

/* Set the program name shown in each line and the most verbose level printed. */
void log_init(const char *prog, int max_level) {
  snprintf(log_prog, sizeof log_prog, "%s", prog != NULL ? prog : "csvstream");
  log_max_level = max_level;
}

/* Format "TIMESTAMP PROG: message\n" into one buffer and write it with one fwrite, so that
 * lines of concurrent processes sharing stderr do not interleave. Over-long messages are cut. */
void log_msg(int level, const char *fmt, ...) {
  if (level > log_max_level) {
    return;
  }
  char line[4096];
  char stamp[40];
  clock_format(clock_wall_us(), stamp, sizeof stamp);
  int n = snprintf(line, sizeof line, "%s %s: ", stamp, log_prog);
  if (n < 0) {
    return;
  }
  size_t used = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + used, sizeof line - used, fmt, ap);
  va_end(ap);
  if (m < 0) {
    return;
  }
  used += (size_t)m < sizeof line - used ? (size_t)m : sizeof line - used - 1;
  /* Keep room for the newline even when the message was cut. */
  if (used > sizeof line - 2) {
    used = sizeof line - 2;
  }
  line[used++] = '\n';
  /* Nothing sensible can be done if stderr itself fails. */
  (void)fwrite(line, 1, used, stderr);
}

/* Allow the first event, then at most one per interval; count the rest in l->suppressed. */
int log_limiter_allow(log_limiter *l, unsigned long long now_us, unsigned long long interval_us) {
  if (l->last_us == 0 || now_us < l->last_us || now_us - l->last_us >= interval_us) {
    l->last_us = now_us == 0 ? 1 : now_us;
    return 1;
  }
  l->suppressed++;
  return 0;
}
