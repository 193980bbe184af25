/* csvout.c -- CSV writer: one record as one RFC 4180 line (CRLF), quoted only where needed. */
#include "csvout.h"

#include <string.h>

#include "error.h"

/* True when a field must be quoted to read back byte for byte: it holds a delimiter, quote or
 * line break, or starts or ends with a space or tab (which some readers trim). */
static int needs_quotes(const cs_field *f) {
  if (f->len == 0) {
    return 0;
  }
  for (size_t i = 0; i < f->len; i++) {
    char c = f->data[i];
    if (c == ',' || c == '"' || c == '\r' || c == '\n') {
      return 1;
    }
  }
  char first = f->data[0];
  char last = f->data[f->len - 1];
  return first == ' ' || first == '\t' || last == ' ' || last == '\t';
}

/* Append one quoted field, doubling its quotes. */
static int append_quoted(cs_buf *out, const cs_field *f) {
  int rc = cs_buf_append_byte(out, '"');
  size_t start = 0;
  for (size_t i = 0; rc == 0 && i < f->len; i++) {
    if (f->data[i] == '"') {
      /* Copy up to and including the quote, then add its double. */
      rc = cs_buf_append(out, f->data + start, i + 1 - start);
      if (rc == 0) {
        rc = cs_buf_append_byte(out, '"');
      }
      start = i + 1;
    }
  }
  if (rc == 0) {
    rc = cs_buf_append(out, f->data + start, f->len - start);
  }
  if (rc == 0) {
    rc = cs_buf_append_byte(out, '"');
  }
  return rc;
}

/* Append the record; on failure, roll back to the length it had on entry. */
int csvout_record(cs_buf *out, const cs_field *fields, size_t n) {
  size_t mark = out->len;
  int rc = 0;
  if (n == 1 && fields[0].len == 0) {
    rc = cs_buf_append(out, "\"\"", 2);
  } else {
    for (size_t i = 0; rc == 0 && i < n; i++) {
      if (i > 0) {
        rc = cs_buf_append_byte(out, ',');
      }
      if (rc == 0) {
        rc = needs_quotes(&fields[i]) ? append_quoted(out, &fields[i])
                                      : cs_buf_append(out, fields[i].data, fields[i].len);
      }
    }
  }
  if (rc == 0) {
    rc = cs_buf_append(out, "\r\n", 2);
  }
  if (rc != 0) {
    out->len = mark;
    return CS_ENOMEM;
  }
  return 0;
}
