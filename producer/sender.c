/* sender.c -- what every sender shares: opening on a host's addresses, the plain send, the record
 * log line, the paced wait. */
#include "sender.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "log.h"
#include "words.h"

/* One pass over the addresses, in turn; see sender_open. */
static int sender_open_once(sender *s, const net_addrs *addrs, const char *host, char *err,
                            size_t errlen) {
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

/* Open; see sender.h. A consumer not there yet is waited for, up to s->retry_s. */
int sender_open(sender *s, const net_addrs *addrs, const char *host, char *err, size_t errlen) {
  uint64_t start = clock_mono_us(), backoff_ms = SENDER_BACKOFF_FIRST_MS, logged = 0;
  int rc;
  for (;;) {
    rc = sender_open_once(s, addrs, host, err, errlen);
    if (rc == 0 || *s->stop || s->retry_s == 0 ||
        (s->retry_s > 0 && clock_mono_us() - start >= (uint64_t)(s->retry_s * 1e6))) {
      return rc;
    }
    backoff_ms = sender_backoff(s, backoff_ms, cs_strerror(rc), 0, &logged);
  }
}

/* Wait before the next try (backoff_ms, jittered 75-125%), saying why at most once a second
 * (logged: when it last did); waiting records are named. Returns the next backoff. */
uint64_t sender_backoff(sender *s, uint64_t backoff_ms, const char *why, uint64_t waiting,
                        uint64_t *logged) {
  uint64_t now = clock_mono_us(), delay_ms, next;
  char n[WORDS_BUF];
  /* A cheap jitter source: the clock's low bits. */
  delay_ms = backoff_ms * 3 / 4 + (now / 7) % (backoff_ms / 2 + 1);
  if (*logged == 0 || now - *logged >= 1000000) {
    log_warn("consumer unreachable (%s), retrying in %.1f s; %s waiting", why,
             (double)delay_ms / 1000.0, words_count_of(n, sizeof n, waiting, "record", "records"));
    *logged = now;
  }
  clock_sleep_until(now + delay_ms * 1000, (volatile int *)s->stop);
  s->retry_wait_us += clock_mono_us() - now;
  next = backoff_ms * 2;
  return next > SENDER_BACKOFF_MAX_MS ? SENDER_BACKOFF_MAX_MS : next;
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
  if (s->log_records) {
    /* The frame's size is worked out only for the log line (a walk over the fields). */
    sender_log_record(s, m, s->ops->wire_size(s, m), "");
  }
  return s->ops->push(s, next_due_us, err, errlen);
}

/* Sleep to the deadline while the sender keeps working; see sender.h. */
int sender_wait_until(sender *s, uint64_t deadline_us, char *err, size_t errlen) {
  if (deadline_us == 0) {
    return *s->stop ? 1 : 0; /* unpaced: due at once, without reading the clock */
  }
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
    s->clock_stale = 1;
    if (rc != 0) {
      return rc;
    }
  }
}
