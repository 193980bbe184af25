/* mplog.c -- multiple_processes: the timestamped log line, one write per line. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "clock.h"
#include "mp.h"

/* One timestamped line to stdout; see mp.h. */
void mp_log(const char *fmt, ...) {
  char line[1024];
  char stamp[40];
  clock_format(clock_wall_us(), stamp, sizeof stamp);
  int n = snprintf(line, sizeof line, "%s ", stamp);
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
  if (len > sizeof line - 2) {
    len = sizeof line - 2;
  }
  line[len++] = '\n';
  /* One write per line: a pipe (tee) receives it whole even when processes log at once. */
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(STDOUT_FILENO, line + off, len - off);
    if (w < 0 && errno == EINTR) {
      continue;
    }
    if (w <= 0) {
      return; /* stdout is gone (a closed pipe): nothing better to do with a log */
    }
    off += (size_t)w;
  }
}
