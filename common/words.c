/* words.c -- counts with thousands separators, singular or plural nouns, rates for people. */
#include "words.h"

#include <stdio.h>

/* Thousands separators; see words.h. */
char *words_count(char *buf, size_t len, uint64_t n) {
  char digits[24];
  size_t nd, out = 0, i;
  if (len == 0) {
    return buf;
  }
  nd = (size_t)snprintf(digits, sizeof digits, "%llu", (unsigned long long)n);
  for (i = 0; i < nd && out + 1 < len; i++) {
    if (i > 0 && (nd - i) % 3 == 0) {
      buf[out++] = ',';
      if (out + 1 >= len) {
        break;
      }
    }
    buf[out++] = digits[i];
  }
  buf[out] = '\0';
  return buf;
}

/* Singular for 1; see words.h. */
const char *words_plural(uint64_t n, const char *one, const char *many) {
  return n == 1 ? one : many;
}

/* "2 records"; see words.h. */
char *words_count_of(char *buf, size_t len, uint64_t n, const char *one, const char *many) {
  char count[32];
  if (len > 0) {
    snprintf(buf, len, "%s %s", words_count(count, sizeof count, n), words_plural(n, one, many));
  }
  return buf;
}

/* The span rule; see words.h. */
int words_rate_known(uint64_t span_us) {
  return span_us >= WORDS_RATE_MIN_SPAN_US;
}

/* A rate or "-"; see words.h. */
char *words_rate(char *buf, size_t len, uint64_t n, uint64_t span_us) {
  char whole[32];
  double rate;
  uint64_t tenths;
  if (len == 0) {
    return buf;
  }
  if (!words_rate_known(span_us)) {
    snprintf(buf, len, "-");
    return buf;
  }
  rate = (double)n * 1e6 / (double)span_us;
  /* Rounded to tenths once, so that 999.96 becomes "1,000.0" and not "999.10". */
  tenths = (uint64_t)(rate * 10.0 + 0.5);
  snprintf(buf, len, "%s.%u", words_count(whole, sizeof whole, tenths / 10),
           (unsigned)(tenths % 10));
  return buf;
}

/* A size in binary units; see words.h. */
char *words_bytes(char *buf, size_t len, uint64_t n) {
  static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = (double)n;
  size_t u = 0;
  if (n < 1024) {
    snprintf(buf, len, "%llu %s", (unsigned long long)n, n == 1 ? "byte" : "bytes");
    return buf;
  }
  v /= 1024.0;
  while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
    v /= 1024.0;
    u++;
  }
  if (v == (double)(uint64_t)v) {
    snprintf(buf, len, "%llu %s", (unsigned long long)v, units[u]);
  } else {
    snprintf(buf, len, "%.1f %s", v, units[u]);
  }
  return buf;
}
