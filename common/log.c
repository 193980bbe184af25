/* log.c -- timestamped log lines on stderr, one write per line, plus a rate limiter. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

/* ISO 8601 local time with milliseconds and the offset from UTC; see log.h. Falls back to
 * seconds since the epoch when the local time cannot be had. */
char *log_stamp(unsigned long long wall_us, char *buf, size_t len) {
  time_t secs = (time_t)(wall_us / 1000000u);
  unsigned ms = (unsigned)((wall_us % 1000000u) / 1000u);
  struct tm tm;
  char day[32];
  long off;
  if (len == 0) {
    return buf;
  }
  if (localtime_r(&secs, &tm) == NULL || strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
    snprintf(buf, len, "%llu.%03u", (unsigned long long)secs, ms);
    return buf;
  }
  /* strftime's %z has no colon ("+0100"); RFC 3339 and most readers want "+01:00". */
  off = tm.tm_gmtoff / 60;
  snprintf(buf, len, "%s.%03u%c%02ld:%02ld", day, ms, off < 0 ? '-' : '+',
           (off < 0 ? -off : off) / 60, (off < 0 ? -off : off) % 60);
  return buf;
}

/* The word that tells a warning or an error from the running log. */
static const char *log_level_word(int level) {
  if (level == LOG_ERROR) {
    return "error: ";
  }
  if (level == LOG_WARN) {
    return "warning: ";
  }
  return "";
}

/* Format "STAMP PROG: LEVEL: message\n" into one buffer and write it with one fwrite, so that
 * lines of concurrent processes sharing stderr do not interleave. Over-long messages are cut. */
void log_msg(int level, const char *fmt, ...) {
  if (level > log_max_level) {
    return;
  }
  char line[4096];
  char stamp[LOG_STAMP_BUF];
  log_stamp(clock_wall_us(), stamp, sizeof stamp);
  int n = snprintf(line, sizeof line, "%s %s: %s", stamp, log_prog, log_level_word(level));
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

/* Length of the valid UTF-8 sequence at s (at most n bytes) that encodes neither a C1 control
 * nor a surrogate, or 0. Overlong forms and values past U+10FFFF are invalid. */
static size_t log_utf8_len(const unsigned char *s, size_t n) {
  unsigned long cp;
  size_t len, i;
  if (s[0] >= 0xc2 && s[0] <= 0xdf) {
    len = 2;
    cp = s[0] & 0x1f;
  } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
    len = 3;
    cp = s[0] & 0x0f;
  } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
    len = 4;
    cp = s[0] & 0x07;
  } else {
    return 0;
  }
  if (len > n) {
    return 0;
  }
  for (i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) {
      return 0;
    }
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
      (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f)) {
    return 0;
  }
  return len;
}

/* The next piece of s (n bytes left): its length in bytes, and whether it is escaped. */
static size_t log_piece(const unsigned char *s, size_t n, int *escape) {
  size_t len = 1;
  *escape = 0;
  if (s[0] < 0x20 || s[0] == 0x7f) {
    *escape = 1;
  } else if (s[0] >= 0x80 && (len = log_utf8_len(s, n)) == 0) {
    *escape = 1;
    len = 1;
  }
  return len;
}

/* Escape peer text for a log line; see log.h. */
char *log_escape(char *dst, size_t dstlen, const char *src, size_t len) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *s = (const unsigned char *)src;
  size_t in = 0, out = 0, total = 0, reserve;
  int escape;
  if (dstlen == 0) {
    return dst;
  }
  while (in < len) {
    size_t n = log_piece(s + in, len - in, &escape);
    total += escape ? 4 : n;
    in += n;
  }
  /* Room for "..." only when the whole text does not fit. */
  reserve = total > dstlen - 1 ? 3 : 0;
  in = 0;
  while (in < len) {
    size_t n = log_piece(s + in, len - in, &escape), need = escape ? 4 : n;
    if (out + need + reserve > dstlen - 1) {
      size_t dots = dstlen - 1 - out < 3 ? dstlen - 1 - out : 3;
      memcpy(dst + out, "...", dots);
      out += dots;
      break;
    }
    if (escape) {
      dst[out++] = '\\';
      dst[out++] = 'x';
      dst[out++] = hex[s[in] >> 4];
      dst[out++] = hex[s[in] & 0xf];
    } else {
      memcpy(dst + out, s + in, n);
      out += n;
    }
    in += n;
  }
  dst[out] = '\0';
  return dst;
}
