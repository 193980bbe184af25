/* fuzz_wire_stream.c -- libFuzzer target for the TCP stream decoder (wire_decoder_feed): the
 * input fed whole, split in two and one byte at a time must give the same messages, field for
 * field, and the same result; every message must re-encode to its own frame.
 *
 * Input: two bytes (big-endian) that choose the split point, modulo the stream's length + 1,
 * then the stream's bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "msglog.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What one way of feeding the stream ended with. */
typedef struct feed_result {
  msglog log;
  int rc;         /* the first non-zero return of wire_decoder_feed, or 0 */
  size_t pending; /* wire_decoder_pending at the end */
} feed_result;

/* Feed buf in pieces: [0, split) then [split, len) when step is 0, else step bytes at a time.
 * A feed after a failure must repeat the failure. */
static void feed(feed_result *out, const char *buf, size_t len, size_t split, size_t step,
                 int check_frames) {
  wire_decoder d;
  wire_decoder_init(&d, 0);
  msglog_init(&out->log, check_frames ? buf : NULL, len);
  out->rc = 0;
  size_t pos = 0;
  while (pos < len) {
    size_t n = step > 0 ? step : (pos < split ? split - pos : len - pos);
    if (n > len - pos) {
      n = len - pos;
    }
    int rc = wire_decoder_feed(&d, buf + pos, n, msglog_add_cb, &out->log);
    if (out->rc != 0) {
      fuzz_check(rc == out->rc, "a failed decoder returned another code");
    } else {
      out->rc = rc;
    }
    fuzz_check(wire_decoder_pending(&d) <= WIRE_HEADER_LEN + (size_t)WIRE_MAX_PAYLOAD,
               "the decoder holds more than one frame");
    pos += n;
  }
  out->pending = wire_decoder_pending(&d);
  fuzz_check(out->rc == 0 || out->pending == 0, "a failed decoder keeps bytes");
  wire_decoder_free(&d);
}

/* Abort unless a and b ended alike. */
static void check_same(const feed_result *a, const char *a_name, const feed_result *b,
                       const char *b_name) {
  msglog_assert_equal(&a->log, a_name, &b->log, b_name);
  if (a->rc != b->rc || a->pending != b->pending) {
    fprintf(stderr, "fuzz check failed: %s ended with %d (%zu pending), %s with %d (%zu)\n", a_name,
            a->rc, a->pending, b_name, b->rc, b->pending);
    abort();
  }
}

/* libFuzzer's entry: the split point from the first two bytes, then the three feeds compared. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) {
    return 0;
  }
  size_t split_seed = (size_t)data[0] << 8 | data[1];
  const char *stream = (const char *)data + 2;
  size_t len = size - 2;
  size_t split = split_seed % (len + 1);
  feed_result whole, halves, bytes;
  feed(&whole, stream, len, len, 0, 1);
  feed(&halves, stream, len, split, 0, 0);
  feed(&bytes, stream, len, 0, 1, 0);
  check_same(&whole, "whole", &halves, "split");
  check_same(&whole, "whole", &bytes, "byte by byte");
  msglog_free(&whole.log);
  msglog_free(&halves.log);
  msglog_free(&bytes.log);
  return 0;
}
