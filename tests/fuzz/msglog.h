/* msglog.h -- the fuzz targets' record of decoded wire messages: every member of each message
 * copied byte for byte into one buffer, so two decodings compare with memcmp. */
#ifndef CSVSTREAM_FUZZ_MSGLOG_H
#define CSVSTREAM_FUZZ_MSGLOG_H

#include <stddef.h>

#include "buf.h"
#include "wire.h"

/* A log of messages; `frames`, when not NULL, is the input the messages were decoded from, and
 * each message is then also checked to re-encode to exactly its frame in it. */
typedef struct msglog {
  cs_buf bytes;         /* owned: the messages, one after another */
  size_t count;         /* messages logged */
  const char *frames;   /* borrowed: the input, or NULL */
  size_t frames_len;    /* bytes in frames */
  size_t frames_offset; /* where the next message's frame starts in frames */
  cs_buf scratch;       /* owned: the re-encoding */
} msglog;

void msglog_init(msglog *log, const char *frames, size_t frames_len);
void msglog_free(msglog *log);

/* wire_msg_cb: append m to the log (arg is the msglog); aborts when memory runs out or when m
 * does not re-encode to its own frame. Returns 0. */
int msglog_add_cb(const wire_msg *m, void *arg);

/* Abort with both sides named when a and b differ (messages or their count). */
void msglog_assert_equal(const msglog *a, const char *a_name, const msglog *b, const char *b_name);

/* Abort with `what` when cond is false: libFuzzer reports the abort and keeps the input. */
void fuzz_check(int cond, const char *what);

#endif
