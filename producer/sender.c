/* sender.c -- what every sender shares: opening on a host's addresses, the plain send, the record
 * log line, the paced wait. */
#include "sender.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "log.h"

/* Try the addresses in turn; see sender.h. */
int sender_open(sender *s, const net_addrs *addrs, const char *host, char *err, size_t errlen) {
  size_t tries = s->ops->every_address ? addrs->count : 1;
  char peer[sizeof s->peer];
  size_t i;
  int rc = CS_EINVAL;

  for (i = 0; i < tries; i++) {
    const struct sockaddr *addr = (const struct sockaddr *)&addrs->addr[i];
    net_format(addr, peer, sizeof peer);
    rc = s->ops->open(s, addr, addrs->len[i], peer, err, errlen);
    if (rc == 0 || *s->stop) {
      return rc;
    }
    if (i + 1 < tries) {
      char next[sizeof s->peer];
      net_format((const struct sockaddr *)&addrs->addr[i + 1], next, sizeof next);
      log_info("cannot connect to %s/%s: %s; trying the next address of '%s', %s", peer,
               s->ops->name, cs_strerror(rc), host, next);
    }
  }
  if (tries > 1) {
    size_t used = strlen(err);
    if (used < errlen) {
      snprintf(err + used, errlen - used, "; tried all %zu addresses of '%s', in order", tries,
               host);
    }
  }
  return rc;
}

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
