/* buf.c -- the growable byte buffer every variable-length byte run lives in. */
#include "buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* Start with no memory; the first append allocates. */
void cs_buf_init(cs_buf *b) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

/* Release the memory and leave the buffer empty and reusable. */
void cs_buf_free(cs_buf *b) {
  if (b == NULL) {
    return;
  }
  free(b->data);
  cs_buf_init(b);
}

/* Forget the contents but keep the memory for the next use. */
void cs_buf_reset(cs_buf *b) {
  b->len = 0;
}

/* Grow the capacity (doubling, at least 64 bytes) so that `extra` more bytes fit. */
int cs_buf_reserve(cs_buf *b, size_t extra) {
  if (extra <= b->cap - b->len) {
    return 0;
  }
  /* No object can exceed PTRDIFF_MAX bytes: refuse such sizes before asking malloc. */
  if (extra > (size_t)PTRDIFF_MAX - b->len) {
    return CS_ENOMEM;
  }
  size_t need = b->len + extra;
  size_t cap = b->cap < 64 ? 64 : b->cap;
  while (cap < need) {
    if (cap > (size_t)PTRDIFF_MAX / 2) {
      cap = need;
      break;
    }
    cap *= 2;
  }
  char *p = realloc(b->data, cap);
  if (p == NULL) {
    return CS_ENOMEM;
  }
  b->data = p;
  b->cap = cap;
  return 0;
}

/* Append `len` bytes; on failure the buffer is unchanged. */
int cs_buf_append(cs_buf *b, const void *data, size_t len) {
  if (len == 0) {
    return 0;
  }
  int rc = cs_buf_reserve(b, len);
  if (rc != 0) {
    return rc;
  }
  memcpy(b->data + b->len, data, len);
  b->len += len;
  return 0;
}

/* Append one byte. */
int cs_buf_append_byte(cs_buf *b, char c) {
  return cs_buf_append(b, &c, 1);
}

/* Drop the first n bytes, keeping the rest in order at the front. */
void cs_buf_consume(cs_buf *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}
