/* buf.h -- a growable byte buffer, the one owner of every variable-length byte run. */
#ifndef CSVSTREAM_BUF_H
#define CSVSTREAM_BUF_H

#include <stddef.h>

typedef struct cs_buf {
  char *data; /* owned; NULL until the first append */
  size_t len;
  size_t cap;
} cs_buf;

void cs_buf_init(cs_buf *b);
void cs_buf_free(cs_buf *b);  /* accepts a zeroed buffer */
void cs_buf_reset(cs_buf *b); /* len = 0, keeps the memory */
/* Make room for `extra` more bytes. Returns 0 or CS_ENOMEM. */
int cs_buf_reserve(cs_buf *b, size_t extra);
/* Append bytes. Returns 0 or CS_ENOMEM (the buffer is then unchanged). */
int cs_buf_append(cs_buf *b, const void *data, size_t len);
int cs_buf_append_byte(cs_buf *b, char c);
/* Drop the first n bytes (n <= len), moving the rest to the front. */
void cs_buf_consume(cs_buf *b, size_t n);

#endif
