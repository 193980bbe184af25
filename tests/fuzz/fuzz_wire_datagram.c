/* fuzz_wire_datagram.c -- libFuzzer target for the UDP datagram decoder
 * (wire_decode_datagram): every message must re-encode to its own frame, and the datagram
 * must decode to what the stream decoder makes of the same bytes (a datagram that ends inside
 * a frame is CS_ETRUNCATED where the stream decoder waits for more).
 *
 * Input: one datagram. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "msglog.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libFuzzer's entry: the datagram decoded, then the same bytes as a stream, compared. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *buf = (const char *)data;
  wire_decoder d;
  msglog dgram, stream;
  wire_decoder_init(&d, 0);
  msglog_init(&dgram, buf, size);
  int rc = wire_decode_datagram(&d, buf, size, msglog_add_cb, &dgram);
  fuzz_check(wire_decoder_pending(&d) == 0, "the datagram decoder kept bytes");
  wire_decoder_free(&d);

  wire_decoder_init(&d, 0);
  msglog_init(&stream, NULL, size);
  int stream_rc = wire_decoder_feed(&d, buf, size, msglog_add_cb, &stream);
  size_t pending = wire_decoder_pending(&d);
  wire_decoder_free(&d);

  msglog_assert_equal(&dgram, "datagram", &stream, "stream");
  int agree;
  if (rc == 0) {
    agree = size > 0 && stream_rc == 0 && pending == 0;
  } else if (rc == CS_ETRUNCATED) {
    agree = stream_rc == 0 && (pending > 0 || size == 0);
  } else {
    agree = stream_rc == rc;
  }
  if (!agree) {
    fprintf(stderr, "fuzz check failed: datagram %d, stream %d with %zu pending\n", rc, stream_rc,
            pending);
    abort();
  }
  msglog_free(&dgram);
  msglog_free(&stream);
  return 0;
}
