/* utf8.c -- strict UTF-8 checking, word at a time over ASCII, and repair of invalid bytes as
 * Windows-1252 text. */
#include "utf8.h"

#include <string.h>

#include "error.h"

/* Start a character at lead byte c: sets the continuation count and the range of the byte
 * after c (RFC 3629's table). Returns 0 for a byte that cannot start one. */
static int utf8_lead(utf8_scan *st, unsigned char c) {
  st->lo = 0x80;
  st->hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    st->need = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    st->need = 2;
    if (c == 0xE0) {
      st->lo = 0xA0; /* overlong below U+0800 */
    } else if (c == 0xED) {
      st->hi = 0x9F; /* the surrogates U+D800-DFFF */
    }
  } else if (c >= 0xF0 && c <= 0xF4) {
    st->need = 3;
    if (c == 0xF0) {
      st->lo = 0x90; /* overlong below U+10000 */
    } else if (c == 0xF4) {
      st->hi = 0x8F; /* past U+10FFFF */
    }
  } else {
    st->need = 0;
    return 0;
  }
  return 1;
}

/* 8 bytes at p are all ASCII. */
static int utf8_ascii8(const char *p) {
  uint64_t w;
  memcpy(&w, p, sizeof w);
  return (w & 0x8080808080808080ULL) == 0;
}

size_t utf8_scan_feed(utf8_scan *st, const char *s, size_t len) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  while (i < len) {
    if (st->need == 0) {
      while (i + 8 <= len && utf8_ascii8(s + i)) {
        i += 8;
      }
      if (i == len) {
        break;
      }
      if (u[i] < 0x80) {
        i++;
        continue;
      }
      if (!utf8_lead(st, u[i])) {
        return i;
      }
      i++;
      continue;
    }
    if (u[i] < st->lo || u[i] > st->hi) {
      st->need = 0;
      return i;
    }
    st->need--;
    st->lo = 0x80;
    st->hi = 0xBF;
    i++;
  }
  return len;
}

int utf8_valid(const char *s, size_t len) {
  utf8_scan st = {0, 0x80, 0xBF};
  return utf8_scan_feed(&st, s, len) == len && st.need == 0;
}

/* Windows-1252's characters for 0x80-0x9F (0 where it defines none). */
static const uint16_t utf8_cp1252_high[32] = {
    0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,      0x017D, 0,      0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178};

/* Append code point cp (below U+10000) as UTF-8. */
static int utf8_put(cs_buf *out, unsigned cp) {
  char b[3];
  size_t n;
  if (cp < 0x80) {
    b[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    b[0] = (char)(0xC0 | (cp >> 6));
    b[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else {
    b[0] = (char)(0xE0 | (cp >> 12));
    b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    b[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  }
  return cs_buf_append(out, b, n);
}

/* Length of the valid character that starts at s[0] (1-4), or 0 when none does. */
static size_t utf8_char_len(const unsigned char *s, size_t len) {
  utf8_scan st;
  size_t n;
  if (s[0] < 0x80) {
    return 1;
  }
  if (!utf8_lead(&st, s[0])) {
    return 0;
  }
  n = st.need + 1;
  if (n > len) {
    return 0;
  }
  for (size_t i = 1; i < n; i++) {
    if (s[i] < st.lo || s[i] > st.hi) {
      return 0;
    }
    st.lo = 0x80;
    st.hi = 0xBF;
  }
  return n;
}

size_t utf8_invalid_at(const char *s, size_t len) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  while (i < len) {
    size_t n = utf8_char_len(u + i, len - i);
    if (n == 0) {
      return i;
    }
    i += n;
  }
  return len;
}

/* Valid runs are copied whole; each byte that starts no valid character is replaced alone. */
int utf8_repair(const char *s, size_t len, cs_buf *out, size_t *replaced) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, run = 0, bad = 0;
  while (i < len) {
    size_t n = utf8_char_len(u + i, len - i);
    if (n > 0) {
      i += n;
      continue;
    }
    if (cs_buf_append(out, s + run, i - run) != 0) {
      return CS_ENOMEM;
    }
    unsigned cp = u[i] >= 0xA0 ? u[i] : utf8_cp1252_high[u[i] - 0x80];
    if (utf8_put(out, cp == 0 ? 0xFFFD : cp) != 0) {
      return CS_ENOMEM;
    }
    bad++;
    i++;
    run = i;
  }
  if (cs_buf_append(out, s + run, len - run) != 0) {
    return CS_ENOMEM;
  }
  if (replaced != NULL) {
    *replaced = bad;
  }
  return 0;
}
