/* msglog.c -- the fuzz targets' record of decoded wire messages (see msglog.h). */
#include "msglog.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Abort with the reason: libFuzzer reports the abort as a finding and keeps the input. */
void fuzz_check(int cond, const char *what) {
  if (!cond) {
    fprintf(stderr, "fuzz check failed: %s\n", what);
    abort();
  }
}

/* An empty log; frames (may be NULL) is borrowed for the re-encoding check. */
void msglog_init(msglog *log, const char *frames, size_t frames_len) {
  memset(log, 0, sizeof *log);
  cs_buf_init(&log->bytes);
  cs_buf_init(&log->scratch);
  log->frames = frames;
  log->frames_len = frames_len;
}

/* Release what the log owns. */
void msglog_free(msglog *log) {
  cs_buf_free(&log->bytes);
  cs_buf_free(&log->scratch);
}

/* Append a 64-bit value in host order (both sides of a comparison are this process). */
static void put_u64(msglog *log, uint64_t v) {
  fuzz_check(cs_buf_append(&log->bytes, &v, sizeof v) == 0, "out of memory");
}

/* Append a byte run as its length, then its bytes. */
static void put_run(msglog *log, const char *data, size_t len) {
  put_u64(log, len);
  fuzz_check(cs_buf_append(&log->bytes, data, len) == 0, "out of memory");
}

/* A decoded message is one the encoder would send: encoding it again gives back its frame,
 * byte for byte, at the place the decoder has reached in the input. */
static void check_reencodes(msglog *log, const wire_msg *m) {
  cs_buf_reset(&log->scratch);
  fuzz_check(m->version >= WIRE_VERSION_MIN && m->version <= WIRE_VERSION, "decoded version");
  fuzz_check(wire_encode_as(m, m->version, &log->scratch) == 0,
             "a decoded message does not encode");
  fuzz_check(log->scratch.len == m->frame_len, "re-encoded frame length differs");
  fuzz_check(log->frames_offset + m->frame_len <= log->frames_len, "frame beyond the input");
  fuzz_check(memcmp(log->scratch.data, log->frames + log->frames_offset, m->frame_len) == 0,
             "re-encoded frame differs from the bytes decoded");
  log->frames_offset += m->frame_len;
}

/* Check m's members, log them in order and, with frames, check that m re-encodes to them. */
int msglog_add_cb(const wire_msg *m, void *arg) {
  msglog *log = arg;
  fuzz_check(wire_type_known(m->type, m->version), "decoded an unknown type");
  fuzz_check(m->stream.len >= 1 && m->stream.len <= WIRE_MAX_STREAM_NAME, "stream name length");
  fuzz_check(m->nfields == 0 || m->fields != NULL, "fields missing");
  put_u64(log, (uint64_t)m->type);
  put_u64(log, (uint64_t)m->version);
  put_u64(log, m->producer_id);
  put_u64(log, m->seq);
  put_u64(log, m->sent_us);
  put_u64(log, m->line);
  put_u64(log, m->frame_len);
  put_run(log, m->stream.data, m->stream.len);
  fuzz_check((m->key != NULL) ==
                 (m->version >= 3 && (m->type == WIRE_HELLO || m->type == WIRE_END)),
             "a session key where the version and type have none, or none where they have one");
  if (m->key != NULL) {
    put_run(log, (const char *)m->key, WIRE_KEY_LEN);
  }
  put_u64(log, m->nfields);
  for (uint32_t i = 0; i < m->nfields; i++) {
    put_run(log, m->fields[i].data, m->fields[i].len);
  }
  log->count++;
  if (log->frames != NULL) {
    check_reencodes(log, m);
  }
  return 0;
}

/* Compare two logs byte for byte; on a difference name both sides and abort. */
void msglog_assert_equal(const msglog *a, const char *a_name, const msglog *b, const char *b_name) {
  if (a->count == b->count && a->bytes.len == b->bytes.len &&
      (a->bytes.len == 0 || memcmp(a->bytes.data, b->bytes.data, a->bytes.len) == 0)) {
    return;
  }
  fprintf(stderr, "fuzz check failed: %s gave %zu messages (%zu bytes logged), %s gave %zu (%zu)\n",
          a_name, a->count, a->bytes.len, b_name, b->count, b->bytes.len);
  abort();
}
