/* fuzz_wire_reply.c -- libFuzzer target for what a producer reads back from a consumer over
 * TCP: ACK and REFUSE frames (and anything else a hostile consumer may send) through the stream
 * decoder, as sender_tcp.c reads them. Every message decoded must re-encode to its frame; a
 * REFUSE always has its reason, which the producer shows escaped (log_escape) within its
 * buffer; acknowledgements are taken only in order, as the producer's window does.
 *
 * Input: the bytes the consumer sends, fed in pieces whose sizes the input's first byte picks. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "log.h"
#include "msglog.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What the producer keeps: the highest acknowledgement, and the reason of a refusal. */
typedef struct reply_state {
  msglog log;
  uint64_t acked;
  char refused[400];
  int refusals;
} reply_state;

static int reply_cb(const wire_msg *m, void *arg) {
  reply_state *r = arg;
  msglog_add_cb(m, &r->log);
  if (m->type == WIRE_ACK) {
    fuzz_check(m->version >= 2, "an ACK in a version 1 frame");
    if (m->seq > r->acked) {
      r->acked = m->seq;
    }
  } else if (m->type == WIRE_REFUSE) {
    fuzz_check(m->version >= 2, "a REFUSE in a version 1 frame");
    fuzz_check(m->nfields >= 1, "a REFUSE without its reason");
    log_escape(r->refused, sizeof r->refused, m->fields[0].data, m->fields[0].len);
    fuzz_check(strlen(r->refused) < sizeof r->refused, "the escaped reason overruns");
    for (const char *c = r->refused; *c != '\0'; c++) {
      fuzz_check((unsigned char)*c >= 0x20 && *c != 0x7f, "a control byte in the shown reason");
    }
    r->refusals++;
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  reply_state r;
  wire_decoder d;
  size_t step, pos = 1;
  int rc = 0;
  if (size < 1) {
    return 0;
  }
  step = (size_t)data[0] + 1; /* 1 .. 256 bytes per read, as recv() may return */
  memset(&r, 0, sizeof r);
  msglog_init(&r.log, (const char *)data + 1, size - 1);
  wire_decoder_init(&d, 0);
  while (pos < size && rc == 0) {
    size_t n = size - pos < step ? size - pos : step;
    rc = wire_decoder_feed(&d, (const char *)data + pos, n, reply_cb, &r);
    pos += n;
  }
  fuzz_check(rc <= 0, "a decoder error that is not negative");
  wire_decoder_free(&d);
  msglog_free(&r.log);
  return 0;
}
