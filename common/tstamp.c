/* tstamp.c -- ISO 8601 date-times and epoch numbers read into microseconds since the epoch. */
#include "tstamp.h"

#include <string.h>

#include "error.h"

/* s[0..len) without the spaces and tabs around it. */
static void tstamp_trim(const char **s, size_t *len) {
  while (*len > 0 && (**s == ' ' || **s == '\t')) {
    (*s)++;
    (*len)--;
  }
  while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t')) {
    (*len)--;
  }
}

/* Exactly n digits at s[*i], as a number; advances *i. Returns 0, or -1 if they are not. */
static int tstamp_digits(const char *s, size_t len, size_t *i, int n, int *out) {
  int v = 0;
  if (*i + (size_t)n > len) {
    return -1;
  }
  for (int k = 0; k < n; k++) {
    char c = s[*i + (size_t)k];
    if (c < '0' || c > '9') {
      return -1;
    }
    v = v * 10 + (c - '0');
  }
  *i += (size_t)n;
  *out = v;
  return 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (Hinnant's algorithm). */
static int64_t tstamp_days(int y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static int tstamp_month_days(int y, int m) {
  static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : days[m - 1];
}

/* YYYY-MM-DD[(T| )HH:MM[:SS[(.|,)frac]][Z|(+|-)HH[[:]MM]]]. */
static int tstamp_parse_iso(const char *s, size_t len, int64_t *us) {
  size_t i = 0;
  int y, mo, d, h = 0, mi = 0, sec = 0;
  int64_t frac_us = 0, zone_s = 0;
  if (tstamp_digits(s, len, &i, 4, &y) || i >= len || s[i++] != '-' ||
      tstamp_digits(s, len, &i, 2, &mo) || i >= len || s[i++] != '-' ||
      tstamp_digits(s, len, &i, 2, &d)) {
    return CS_EINVAL;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > tstamp_month_days(y, mo)) {
    return CS_EINVAL;
  }
  if (i < len) {
    if (s[i] != 'T' && s[i] != 't' && s[i] != ' ') {
      return CS_EINVAL;
    }
    i++;
    if (tstamp_digits(s, len, &i, 2, &h) || i >= len || s[i++] != ':' ||
        tstamp_digits(s, len, &i, 2, &mi)) {
      return CS_EINVAL;
    }
    if (i < len && s[i] == ':') {
      i++;
      if (tstamp_digits(s, len, &i, 2, &sec)) {
        return CS_EINVAL;
      }
      if (i < len && (s[i] == '.' || s[i] == ',')) {
        int64_t scale = 100000;
        i++;
        if (i >= len || s[i] < '0' || s[i] > '9') {
          return CS_EINVAL;
        }
        while (i < len && s[i] >= '0' && s[i] <= '9') {
          frac_us += (s[i] - '0') * scale; /* digits past microseconds are dropped */
          scale /= 10;
          i++;
        }
      }
    }
    if (h > 24 || mi > 59 || sec > 60 || (h == 24 && (mi != 0 || sec != 0 || frac_us != 0))) {
      return CS_EINVAL; /* 24:00 is the day's end; :60 a leap second */
    }
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
      i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
      int sign = s[i++] == '-' ? -1 : 1, zh, zm = 0;
      if (tstamp_digits(s, len, &i, 2, &zh)) {
        return CS_EINVAL;
      }
      if (i < len && s[i] == ':') {
        i++;
      }
      if (i < len && tstamp_digits(s, len, &i, 2, &zm)) {
        return CS_EINVAL;
      }
      if (zh > 23 || zm > 59) {
        return CS_EINVAL;
      }
      zone_s = sign * (zh * 3600 + zm * 60);
    }
  }
  if (i != len) {
    return CS_EINVAL;
  }
  int64_t secs = tstamp_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - zone_s;
  *us = secs * 1000000 + frac_us;
  return 0;
}

/* Digits before a decimal point (and whether the rest is digits), or -1 when s is not a plain
 * non-negative decimal number. */
static int tstamp_int_digits(const char *s, size_t len) {
  size_t i = 0;
  int n = 0, point = 0, after = 0;
  for (; i < len; i++) {
    if (s[i] >= '0' && s[i] <= '9') {
      if (point) {
        after++;
      } else {
        n++;
      }
    } else if (s[i] == '.' && !point) {
      point = 1;
    } else {
      return -1;
    }
  }
  if (n == 0 || (point && after == 0)) {
    return -1;
  }
  return n;
}

/* An epoch number in units of `unit` microseconds (1, 1000, 1000000), fraction allowed. */
static int tstamp_parse_epoch(const char *s, size_t len, int64_t unit, int min_digits,
                              int max_digits, int64_t *us) {
  int n = tstamp_int_digits(s, len);
  int64_t whole = 0, frac = 0, scale = unit / 10;
  size_t i = 0;
  if (n < min_digits || n > max_digits) {
    return CS_EINVAL;
  }
  for (; i < len && s[i] != '.'; i++) {
    whole = whole * 10 + (s[i] - '0');
  }
  for (i++; i < len; i++) {
    frac += (s[i] - '0') * scale;
    scale /= 10;
  }
  *us = whole * unit + frac;
  return 0;
}

int tstamp_parse(int f, const char *s, size_t len, int64_t *us) {
  tstamp_trim(&s, &len);
  switch (f) {
  case TSTAMP_ISO:
    return tstamp_parse_iso(s, len, us);
  case TSTAMP_EPOCH_S:
    return tstamp_parse_epoch(s, len, 1000000, 1, 11, us);
  case TSTAMP_EPOCH_MS:
    return tstamp_parse_epoch(s, len, 1000, 12, 14, us);
  case TSTAMP_EPOCH_US:
    return tstamp_parse_epoch(s, len, 1, 15, 17, us);
  default:
    return CS_EINVAL;
  }
}

int tstamp_detect(const char *s, size_t len) {
  int64_t us;
  int n;
  tstamp_trim(&s, &len);
  if (tstamp_parse_iso(s, len, &us) == 0) {
    return TSTAMP_ISO;
  }
  n = tstamp_int_digits(s, len);
  if (n >= 1 && n <= 11) {
    return TSTAMP_EPOCH_S;
  }
  if (n >= 12 && n <= 14) {
    return TSTAMP_EPOCH_MS;
  }
  if (n >= 15 && n <= 17) {
    return TSTAMP_EPOCH_US;
  }
  return TSTAMP_UNKNOWN;
}

const char *tstamp_format_name(int f) {
  switch (f) {
  case TSTAMP_ISO:
    return "ISO 8601 date-times";
  case TSTAMP_EPOCH_S:
    return "epoch seconds";
  case TSTAMP_EPOCH_MS:
    return "epoch milliseconds";
  case TSTAMP_EPOCH_US:
    return "epoch microseconds";
  default:
    return "unknown";
  }
}
