/* csvout.c -- CSV writer: one record as one RFC 4180 line (CRLF), quoted only where needed. */
#include "csvout.h"

#include <stdint.h>
#include <string.h>
#if defined(__SSE2__) && !defined(CSVOUT_PORTABLE)
#define CSVOUT_SSE2 1
#include <emmintrin.h>
#endif

#include "error.h"

/* What a byte means for quoting: CSVOUT_ANYWHERE makes a field need quotes wherever it stands
 * (delimiter, quote, line breaks), CSVOUT_AT_EDGE as a field's first or last byte (space and
 * tab, which some readers trim). */
enum { CSVOUT_ANYWHERE = 1, CSVOUT_AT_EDGE = 2 };
static const unsigned char csvout_class[256] = {
    ['\r'] = CSVOUT_ANYWHERE, ['\n'] = CSVOUT_ANYWHERE, ['"'] = CSVOUT_ANYWHERE,
    [','] = CSVOUT_ANYWHERE,  [' '] = CSVOUT_AT_EDGE,   ['\t'] = CSVOUT_AT_EDGE};

/* Bytes the writer may store past a field's end (whole words, overwritten by what follows):
 * the room it makes for a field is its worst case plus these. */
#define CSVOUT_SLACK 16

#define CSVOUT_ONES 0x0101010101010101ull
#define CSVOUT_HIGHS 0x8080808080808080ull
#define CSVOUT_LOW7 0x7f7f7f7f7f7f7f7full

/* 8 bytes as a word whose lowest byte is the first, and back, whatever the machine's order. */
static inline uint64_t csvout_load64(const unsigned char *d) {
  uint64_t v;
  memcpy(&v, d, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

static inline uint64_t csvout_load32(const unsigned char *d) {
  uint32_t v;
  memcpy(&v, d, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap32(v);
#endif
  return v;
}

static inline void csvout_store64(char *p, uint64_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  memcpy(p, &v, 8);
}

#ifndef CSVOUT_SSE2
/* Nonzero when one of the 8 bytes of v equals c (exact as a truth value). */
static inline uint64_t csvout_has(uint64_t v, unsigned char c) {
  uint64_t x = v ^ (CSVOUT_ONES * c);
  return (x - CSVOUT_ONES) & ~x & CSVOUT_HIGHS;
}

/* Nonzero when one of the 8 bytes of v needs quotes anywhere (whatever the byte order). */
static inline uint64_t csvout_special8(uint64_t v) {
  return csvout_has(v, ',') | csvout_has(v, '"') | csvout_has(v, '\r') | csvout_has(v, '\n');
}
#endif

/* The top bit of each byte of v that is a double quote, and no other bit. */
static inline uint64_t csvout_quotes8(uint64_t v) {
  uint64_t x = v ^ (CSVOUT_ONES * '"');
  return ~(((x & CSVOUT_LOW7) + CSVOUT_LOW7) | x) & CSVOUT_HIGHS;
}

#ifdef CSVOUT_SSE2
/* Nonzero when one of the 16 bytes of v needs quotes anywhere. */
static inline int csvout_special16(__m128i v) {
  __m128i m = _mm_or_si128(
      _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(',')), _mm_cmpeq_epi8(v, _mm_set1_epi8('"'))),
      _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\r')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\n'))));
  return _mm_movemask_epi8(m);
}
#endif

/* Nonzero when one of the 16 bytes in lo and hi needs quotes anywhere. */
static inline int csvout_special_pair(uint64_t lo, uint64_t hi) {
#ifdef CSVOUT_SSE2
  return csvout_special16(_mm_set_epi64x((long long)hi, (long long)lo));
#else
  return (csvout_special8(lo) | csvout_special8(hi)) != 0;
#endif
}

/* The n bytes (1 to 16) of a field in the low bytes of lo and hi, the first one lowest, zeros
 * above them. No byte outside d[0 .. n-1] is read: 1 to 3 bytes as the first, middle and
 * last, longer fields as two words that overlap, the overlap shifted out. */
static inline void csvout_gather(const unsigned char *d, size_t n, uint64_t *lo, uint64_t *hi) {
  if (n < 4) {
    *lo = d[0] | (uint64_t)d[n / 2] << (8 * (n / 2)) | (uint64_t)d[n - 1] << (8 * (n - 1));
    *hi = 0;
  } else if (n < 8) {
    *lo = csvout_load32(d) | (csvout_load32(d + n - 4) >> (8 * (8 - n))) << 32;
    *hi = 0;
  } else {
    *lo = csvout_load64(d);
    *hi = n > 8 ? csvout_load64(d + n - 8) >> (8 * (16 - n)) : 0;
  }
}

/* Store the 16 bytes of lo and hi from byte s on (0 <= s <= 16) at p, zeros after them. */
static inline void csvout_store_from(char *p, uint64_t lo, uint64_t hi, size_t s) {
  if (s == 0) {
    csvout_store64(p, lo);
    csvout_store64(p + 8, hi);
  } else if (s < 8) {
    csvout_store64(p, lo >> (8 * s) | hi << (64 - 8 * s));
    csvout_store64(p + 8, hi >> (8 * s));
  } else {
    csvout_store64(p, s < 16 ? hi >> (8 * (s - 8)) : 0);
    csvout_store64(p + 8, 0);
  }
}

/* Write a field of 1 to 16 bytes at p, quoted when it needs to be (its quotes doubled), and
 * return the end. Whole words are stored: the caller's room holds CSVOUT_SLACK bytes more
 * than the field's worst case. */
static char *csvout_short(char *p, const unsigned char *d, size_t n) {
  uint64_t lo, hi;
  csvout_gather(d, n, &lo, &hi);
  if (!csvout_special_pair(lo, hi)) {
    if ((csvout_class[d[0]] | csvout_class[d[n - 1]]) == 0) {
      csvout_store64(p, lo);
      csvout_store64(p + 8, hi);
      return p + n;
    }
  } else {
    uint64_t quotes[2] = {csvout_quotes8(lo), csvout_quotes8(hi)};
    if ((quotes[0] | quotes[1]) != 0) {
      /* Each run up to and with a quote, then the quote's double; then the rest. */
      size_t s = 0;
      *p++ = '"';
      for (size_t w = 0; w < 2; w++) {
        while (quotes[w] != 0) {
          size_t q = 8 * w + (size_t)__builtin_ctzll(quotes[w]) / 8;
          quotes[w] &= quotes[w] - 1;
          csvout_store_from(p, lo, hi, s);
          p += q + 1 - s;
          *p++ = '"';
          s = q + 1;
        }
      }
      csvout_store_from(p, lo, hi, s);
      p += n - s;
      *p++ = '"';
      return p;
    }
  }
  /* Quotes around it, none inside. */
  p[0] = '"';
  csvout_store64(p + 1, lo);
  csvout_store64(p + 9, hi);
  p[n + 1] = '"';
  return p + n + 2;
}

/* Copy the n bytes (more than 16) of a field that needs no quotes to p and return the end, or
 * return NULL (having maybe written scratch bytes at p, within the field's room) when the
 * field needs quotes. 16 (or 8) bytes at a time, the last block overlapping the one before:
 * no byte outside d[0 .. n-1] is read. */
static char *csvout_copy_plain(char *p, const unsigned char *d, size_t n) {
  if ((csvout_class[d[0]] | csvout_class[d[n - 1]]) != 0) {
    return NULL;
  }
#ifdef CSVOUT_SSE2
  for (size_t i = 0; i + 16 < n; i += 16) {
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(d + i));
    if (csvout_special16(v)) {
      return NULL;
    }
    _mm_storeu_si128((__m128i *)(void *)(p + i), v);
  }
  __m128i last = _mm_loadu_si128((const __m128i *)(const void *)(d + n - 16));
  if (csvout_special16(last)) {
    return NULL;
  }
  _mm_storeu_si128((__m128i *)(void *)(p + n - 16), last);
#else
  for (size_t i = 0; i + 8 < n; i += 8) {
    uint64_t v;
    memcpy(&v, d + i, 8);
    if (csvout_special8(v)) {
      return NULL;
    }
    memcpy(p + i, &v, 8);
  }
  uint64_t last;
  memcpy(&last, d + n - 8, 8);
  if (csvout_special8(last)) {
    return NULL;
  }
  memcpy(p + n - 8, &last, 8);
#endif
  return p + n;
}

/* Write one quoted field at p, its quotes doubled, and return the end. Room for 2 * len + 2
 * bytes is the caller's. Runs between quotes are copied whole. */
static char *write_quoted(char *p, const cs_field *f) {
  const char *s = f->data;
  const char *end = f->data + f->len;
  *p++ = '"';
  while (s < end) {
    const char *q = memchr(s, '"', (size_t)(end - s));
    size_t run = (q == NULL ? end : q + 1) - s;
    memcpy(p, s, run);
    p += run;
    s += run;
    if (q != NULL) {
      *p++ = '"'; /* the double of the quote just copied */
    }
  }
  *p++ = '"';
  return p;
}

/* The room a field of len bytes asks for at worst: every byte a quote (2 * len + 2), its
 * comma, the record's CRLF, and the slack. */
#define CSVOUT_ROOM_FIXED (5 + CSVOUT_SLACK)

/* Make that room at p: grow the buffer. Returns the (maybe moved) write position, or NULL
 * when the room would pass PTRDIFF_MAX, the most any object holds, or memory is short
 * (out->len is unchanged). */
static char *csvout_room(cs_buf *out, char *p, size_t len) {
  size_t at = (size_t)(p - out->data);
  if (at > (size_t)PTRDIFF_MAX - CSVOUT_ROOM_FIXED ||
      len > ((size_t)PTRDIFF_MAX - CSVOUT_ROOM_FIXED - at) / 2 ||
      cs_buf_reserve(out, at - out->len + 2 * len + CSVOUT_ROOM_FIXED) != 0) {
    return NULL;
  }
  return out->data + at;
}

/* Append the record: each field is written straight into the buffer, which grows only when
 * the room left is short of a field's worst case. On failure out->len is unchanged. */
int csvout_record(cs_buf *out, const cs_field *fields, size_t n) {
  const cs_field *f, *fend = fields + n;
  char *p, *lim;
  if (cs_buf_reserve(out, 4) != 0) {
    return CS_ENOMEM;
  }
  p = out->data + out->len;
  lim = out->data + out->cap; /* in a local: the bytes stored through p could alias out */
  if (n == 1 && fields[0].len == 0) {
    *p++ = '"';
    *p++ = '"';
  } else {
    for (f = fields; f < fend; f++) {
      size_t len = f->len, left = (size_t)(lim - p);
      const unsigned char *d = (const unsigned char *)f->data;
      if (left < CSVOUT_ROOM_FIXED || (left - CSVOUT_ROOM_FIXED) / 2 < len) {
        p = csvout_room(out, p, len);
        if (p == NULL) {
          return CS_ENOMEM;
        }
        lim = out->data + out->cap;
      }
      if (f > fields) {
        *p++ = ',';
      }
      if (len == 0) {
        continue;
      }
      if (len <= 16) {
        p = csvout_short(p, d, len);
      } else {
        char *end = csvout_copy_plain(p, d, len);
        p = end != NULL ? end : write_quoted(p, f);
      }
    }
  }
  *p++ = '\r';
  *p++ = '\n';
  out->len = (size_t)(p - out->data);
  return 0;
}
