/* tstamp.h -- time stamps as CSV files write them (ISO 8601 date-times, "YYYY-MM-DD HH:MM:SS",
 * epoch seconds, milliseconds or microseconds), read into microseconds, for replay on the
 * file's own clock. */
#ifndef CSVSTREAM_TSTAMP_H
#define CSVSTREAM_TSTAMP_H

#include <stddef.h>
#include <stdint.h>

enum tstamp_format {
  TSTAMP_UNKNOWN = 0,
  TSTAMP_ISO,      /* 2026-12-01T20:41:07.123+01:00, 2026-12-01 20:41:07, 2026-12-01 */
  TSTAMP_EPOCH_S,  /* 1764621667 or 1764621667.25: up to 11 digits before any point */
  TSTAMP_EPOCH_MS, /* 1764621667123: 12 to 14 digits */
  TSTAMP_EPOCH_US  /* 1764621667123456: 15 to 17 digits */
};

/* The format of a first value (spaces around it ignored), or TSTAMP_UNKNOWN when it is none. */
int tstamp_detect(const char *s, size_t len);

/* Parse s in format f into microseconds since 1970-01-01 00:00 UTC. A date-time with a zone
 * (Z, +01:00, -0500, +01) is converted to UTC; one without is read as if in UTC: only the
 * differences between values matter, and a file without zones has no way to say its DST
 * changes. Returns 0, or CS_EINVAL when s is not a value of that format. */
int tstamp_parse(int f, const char *s, size_t len, int64_t *us);

/* For the log: "ISO 8601 date-times", "epoch seconds", ... */
const char *tstamp_format_name(int f);

#endif
