/* sender.c -- what every sender shares: the plain send, the record log line, the paced wait. */
#include "sender.h"

#include <string.h>

#include "clock.h"
#include "log.h"

/* Fill the common part; see sender.h. */
void sender_base_init(sender *s, const sender_ops *ops, const volatile sig_atomic_t *stop,
                      int log_records) {
  memset(s, 0, sizeof *s);
  s->ops = ops;
  s->stop = stop;
  s->log_records = log_records;
}

/* Log a record at slow pace; note is appended ("" for none). */
void sender_log_record(const sender *s, const wire_msg *m, size_t bytes, const char *note) {
  if (s->log_records) {
    log_info("sent #%llu (line %llu, %u fields, %zu bytes) over %s to %s%s",
             (unsigned long long)m->seq, (unsigned long long)m->line, (unsigned)m->nfields, bytes,
             s->ops->name, s->peer, note);
  }
}

/* Add, log, push; see sender.h. */
int sender_send_plain(sender *s, const wire_msg *m, uint64_t next_due_us, char *err,
                      size_t errlen) {
  int rc = s->ops->add(s, m, 0, err, errlen);
  if (rc != 0) {
    return rc;
  }
  sender_log_record(s, m, s->ops->wire_size(s, m), "");
  return s->ops->push(s, next_due_us, err, errlen);
}

/* Sleep to the deadline while the sender keeps working; see sender.h. */
int sender_wait_until(sender *s, uint64_t deadline_us, char *err, size_t errlen) {
  for (;;) {
    uint64_t now = clock_mono_us();
    uint64_t target = deadline_us;
    uint64_t due;
    int rc;
    /* Already due: no flush here, so records due together leave in one batch or write. */
    if (now >= deadline_us) {
      return *s->stop ? 1 : 0;
    }
    rc = s->ops->flush_due(s, now, err, errlen);
    if (rc != 0) {
      return rc;
    }
    due = s->ops->next_due(s);
    if (due < target) {
      target = due;
    }
    if (*s->stop) {
      return 1;
    }
    rc = s->ops->wait(s, target, err, errlen);
    if (rc != 0) {
      return rc;
    }
  }
}
