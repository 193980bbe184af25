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

/* Whether one of the n bytes at d is a delimiter, quote or line break. Eight bytes at a time:
 * every such byte is below ',' + 1, so a word with no byte that small is passed at once (digits,
 * letters and UTF-8 are); only the others are tested byte value by byte value. */
static int csvout_has_special(const unsigned char *d, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    memcpy(&v, d + i, 8);
    if (((v - CSVOUT_ONES * (',' + 1)) & ~v & CSVOUT_HIGHS) == 0) {
      continue;
    }
    if (csvout_has(v, ',') | csvout_has(v, '"') | csvout_has(v, '\r') | csvout_has(v, '\n')) {
      return 1;
    }
  }
  for (; i < n; i++) {
    if (csvout_special[d[i]]) {
      return 1;
    }
  }
  return 0;
}

/* True when a field must be quoted to read back byte for byte: it holds a delimiter, quote or
 * line break, or starts or ends with a space or tab (which some readers trim). */
static int needs_quotes(const cs_field *f) {
  const unsigned char *d = (const unsigned char *)f->data;
  if (f->len == 0) {
    return 0;
  }
  if (d[0] == ' ' || d[0] == '\t' || d[f->len - 1] == ' ' || d[f->len - 1] == '\t') {
    return 1;
  }
  return csvout_has_special(d, f->len);
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
      if (needs_quotes(&fields[i])) {
        p = write_quoted(p, &fields[i]);
      } else if (fields[i].len > 0) {
        memcpy(p, fields[i].data, fields[i].len);
        p += fields[i].len;
      }
    }
  }
  *p++ = '\r';
  *p++ = '\n';
  out->len = (size_t)(p - out->data);
  return 0;
}
