/* log.h -- timestamped log lines on stderr:
 * "2026-11-29T20:41:07.123+01:00 consumer: warning: message" (INFO lines carry no level word). */
#ifndef CSVSTREAM_LOG_H
#define CSVSTREAM_LOG_H

#include <stddef.h>

/* LOG_ASKED is a line the user asked for (the consumer's --stats line): printed whatever the
 * level, like an INFO line (no level word). ERROR and WARN lines say "error: " and
 * "warning: " after the program name. */
enum log_level { LOG_ASKED = -1, LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Program name shown in each line, and the most verbose level printed (default LOG_INFO;
 * --quiet sets LOG_WARN). */
void log_init(const char *prog, int max_level);
/* One line to stderr: "STAMP PROG: [LEVEL: ]message", STAMP as log_stamp writes it. */
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The time of a log line, ISO 8601 in local time with milliseconds and the UTC offset:
 * "2026-11-29T20:41:07.123+01:00" ("+00:00" in UTC) into buf (LOG_STAMP_BUF bytes is enough).
 * wall_us is microseconds since the Unix epoch. Returns buf. */
#define LOG_STAMP_BUF 40
char *log_stamp(unsigned long long wall_us, char *buf, size_t len);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* Text from peers (stream names, header names) for a log line: bytes below 0x20, 0x7f, and
 * bytes that are not valid UTF-8 or encode a C1 control (U+0080..U+009F) become \xNN, so a
 * name cannot break the line or steer the terminal; valid UTF-8 stays as it is. Reads len
 * bytes of src (NUL included), writes at most dstlen - 1 characters and a NUL to dst, ending
 * in "..." when it had to cut. Returns dst. LOG_ESCAPE_BUF is a good dst size. */
#define LOG_ESCAPE_BUF 128
char *log_escape(char *dst, size_t dstlen, const char *src, size_t len);

/* A rate limiter for messages about repeated events (garbage from a peer, say): returns 1 when
 * the caller should log now (the first event, then at most once per interval_us), and counts
 * the events it suppressed in *suppressed, which the caller reports and clears. */
typedef struct log_limiter {
  unsigned long long last_us;
  unsigned long long suppressed;
} log_limiter;
int log_limiter_allow(log_limiter *l, unsigned long long now_us, unsigned long long interval_us);

#endif
