/* csvout.c -- CSV writer: one record as one RFC 4180 line (CRLF), quoted only where needed. */
#include "csvout.h"

#include <stdint.h>
#include <string.h>

#include "error.h"

/* The bytes that make a field need quotes wherever they stand: delimiter, quote, line breaks. */
static const unsigned char csvout_special[256] = {['\r'] = 1, ['\n'] = 1, ['"'] = 1, [','] = 1};

#define CSVOUT_ONES 0x0101010101010101ull
#define CSVOUT_HIGHS 0x8080808080808080ull

/* Nonzero when one of the 8 bytes of v equals c (the high bit of each such byte set). */
static uint64_t csvout_has(uint64_t v, unsigned char c) {
  uint64_t x = v ^ (CSVOUT_ONES * c);
  return (x - CSVOUT_ONES) & ~x & CSVOUT_HIGHS;
}

/* Copy the n bytes of a field that needs no quotes to p and return the end, or return NULL
 * (having written scratch bytes at p) when the field needs quotes: it holds a delimiter, quote
 * or line break, or starts or ends with a space or tab (which some readers trim). One pass,
 * eight bytes at a time: every special byte is below ',' + 1, so a word with no byte that small
 * (digits, letters, UTF-8) is stored at once; only the others are tested value by value. */
static char *csvout_copy_plain(char *p, const unsigned char *d, size_t n) {
  size_t i = 0;
  if (n == 0) {
    return p;
  }
  if (d[0] == ' ' || d[0] == '\t' || d[n - 1] == ' ' || d[n - 1] == '\t') {
    return NULL;
  }
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    memcpy(&v, d + i, 8);
    if (((v - CSVOUT_ONES * (',' + 1)) & ~v & CSVOUT_HIGHS) != 0 &&
        (csvout_has(v, ',') | csvout_has(v, '"') | csvout_has(v, '\r') | csvout_has(v, '\n'))) {
      return NULL;
    }
    memcpy(p + i, &v, 8);
  }
  for (; i < n; i++) {
    if (csvout_special[d[i]]) {
      return NULL;
    }
    p[i] = (char)d[i];
  }
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

/* Append the record: room for its worst case (every byte a quote) is reserved once, then the
 * fields are written straight into the buffer. On failure the buffer is unchanged. */
int csvout_record(cs_buf *out, const cs_field *fields, size_t n) {
  size_t worst = 2; /* CRLF */
  size_t i;
  char *p;
  for (i = 0; i < n; i++) {
    /* A field's worst case is 2 * len + 3 (quotes, doubled quotes, the comma); no object
     * exceeds PTRDIFF_MAX bytes, and worst stays below it. */
    size_t room = (size_t)PTRDIFF_MAX - worst;
    if (room < 3 || fields[i].len > (room - 3) / 2) {
      return CS_ENOMEM;
    }
    worst += 2 * fields[i].len + 3;
  }
  if (cs_buf_reserve(out, worst) != 0) {
    return CS_ENOMEM;
  }
  p = out->data + out->len;
  if (n == 1 && fields[0].len == 0) {
    *p++ = '"';
    *p++ = '"';
  } else {
    for (i = 0; i < n; i++) {
      if (i > 0) {
        *p++ = ',';
      }
      char *end = csvout_copy_plain(p, (const unsigned char *)fields[i].data, fields[i].len);
      p = end != NULL ? end : write_quoted(p, &fields[i]);
    }
  }
  *p++ = '\r';
  *p++ = '\n';
  out->len = (size_t)(p - out->data);
  return 0;
}
