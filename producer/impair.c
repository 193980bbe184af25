/* impair.c -- the seeded decisions behind --impair, in the order the shared contract fixes, and
 * the sender wrapper that applies them (drop, duplicate, hold back, delay) to another sender. */
#include "impair.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "fields.h"
#include "log.h"
#include "opt.h"

/* Parse one "key=value" item of the --impair list into p; `seen` guards against repeats. */
static int impair_parse_item(const char *item, impair_params *p, unsigned *seen, char *err,
                             size_t errlen) {
  static const char *const keys[] = {"loss", "dup", "reorder", "delay", "seed"};
  const char *eq = strchr(item, '=');
  char flag[64];
  size_t klen;
  unsigned k;
  long long v = 0;

  if (eq == NULL || eq == item) {
    snprintf(err, errlen,
             "--impair: '%s' is not KEY=VALUE (expected loss=P,dup=P,reorder=P[,delay=MS]"
             "[,seed=N])",
             item);
    return CS_EINVAL;
  }
  klen = (size_t)(eq - item);
  for (k = 0; k < sizeof keys / sizeof keys[0]; k++) {
    if (strlen(keys[k]) == klen && memcmp(keys[k], item, klen) == 0) {
      break;
    }
  }
  if (k == sizeof keys / sizeof keys[0]) {
    snprintf(err, errlen, "--impair: unknown key '%.*s' (known: loss, dup, reorder, delay, seed)",
             (int)klen, item);
    return CS_EINVAL;
  }
  if (*seen & (1u << k)) {
    snprintf(err, errlen, "--impair: '%s' is given twice", keys[k]);
    return CS_EINVAL;
  }
  *seen |= 1u << k;
  snprintf(flag, sizeof flag, "--impair %s", keys[k]);
  switch (k) {
  case 0:
    return opt_double(flag, eq + 1, 0.0, 1.0, &p->loss, err, errlen);
  case 1:
    return opt_double(flag, eq + 1, 0.0, 1.0, &p->dup, err, errlen);
  case 2:
    return opt_double(flag, eq + 1, 0.0, 1.0, &p->reorder, err, errlen);
  case 3:
    if (opt_long(flag, eq + 1, 0, 60000, &v, err, errlen) != 0) {
      return CS_EINVAL;
    }
    p->delay_ms = (unsigned)v;
    return 0;
  default:
    if (opt_long(flag, eq + 1, 0, 0x7fffffffffffffffLL, &v, err, errlen) != 0) {
      return CS_EINVAL;
    }
    p->seed = (uint64_t)v;
    p->have_seed = 1;
    return 0;
  }
}

/* Split the comma list and parse each item. */
int impair_parse(const char *s, impair_params *p, char *err, size_t errlen) {
  char *copy = NULL;
  char *item, *save = NULL;
  unsigned seen = 0;
  int rc = 0;

  memset(p, 0, sizeof *p);
  if (s[0] == '\0') {
    snprintf(err, errlen, "--impair: empty (expected loss=P,dup=P,reorder=P[,delay=MS][,seed=N])");
    return CS_EINVAL;
  }
  /* strtok_r would skip empty items silently: "--impair ," must not turn impairment on. */
  size_t n = strlen(s);
  if (s[0] == ',' || s[n - 1] == ',' || strstr(s, ",,") != NULL) {
    snprintf(err, errlen,
             "--impair: '%s' has an empty item (expected loss=P,dup=P,reorder=P[,delay=MS]"
             "[,seed=N])",
             s);
    return CS_EINVAL;
  }
  copy = strdup(s);
  if (copy == NULL) {
    snprintf(err, errlen, "--impair: out of memory");
    return CS_ENOMEM;
  }
  for (item = strtok_r(copy, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
    rc = impair_parse_item(item, p, &seen, err, errlen);
    if (rc != 0) {
      goto done;
    }
  }
done:
  free(copy);
  return rc;
}

void impair_init(impair *im, const impair_params *p, uint64_t seed) {
  im->p = *p;
  rng_seed(&im->rng, seed);
  im->dropped = im->duplicated = im->reordered = 0;
}

/* Draw loss first; a survivor may be held back (when none is held) and, independently, get a
 * duplicate. A probability of 0 draws no number, so turning one kind of impairment off does not
 * consume draws. Returns a mix of enum impair_action flags. */
int impair_decide(impair *im, int holding) {
  int action = IMPAIR_SEND;
  if (im->p.loss > 0 && rng_uniform(&im->rng) < im->p.loss) {
    im->dropped++;
    return IMPAIR_DROP;
  }
  if (!holding && im->p.reorder > 0 && rng_uniform(&im->rng) < im->p.reorder) {
    action |= IMPAIR_HOLD;
  }
  if (im->p.dup > 0 && rng_uniform(&im->rng) < im->p.dup) {
    action |= IMPAIR_DUP;
    im->duplicated++;
  }
  return action;
}

void impair_note_reordered(impair *im) {
  im->reordered++;
}

/* ---- the impairment as a sender wrapped around another ---- */

/* The wrapper: the wrapped sender, the decisions, and the one record held back. */
typedef struct impair_sender {
  sender base;    /* first: a sender * is an impair_sender * */
  sender_ops ops; /* the wrapper's table, named after the wrapped sender */
  sender *inner;  /* owned */
  impair *im;     /* borrowed: the decisions and the ground-truth counts */
  uint64_t delay_us;
  int holding;           /* a record is held back */
  int held_dup;          /* the held record also gets a copy */
  wire_msg held;         /* the held record; its fields and stream name are copies */
  cs_field *held_fields; /* owned */
  char *held_data;       /* the field bytes; owned */
  char held_stream[WIRE_MAX_STREAM_NAME + 1]; /* the stream name */
} impair_sender;

static impair_sender *impair_of(sender *s) {
  return (impair_sender *)(void *)s;
}

static const impair_sender *impair_of_const(const sender *s) {
  return (const impair_sender *)(const void *)s;
}

/* When a datagram handed over now is due: --impair delay later, else at once. */
static uint64_t impair_due(const impair_sender *is) {
  return is->delay_us > 0 ? clock_mono_us() + is->delay_us : 0;
}

/* Hand m to the wrapped sender, twice with a duplicate, due after the delay. */
static int impair_add(impair_sender *is, const wire_msg *m, int dup, char *err, size_t errlen) {
  uint64_t due = impair_due(is);
  int rc = is->inner->ops->add(is->inner, m, due, err, errlen);
  if (rc == 0 && dup) {
    rc = is->inner->ops->add(is->inner, m, due, err, errlen);
  }
  return rc;
}

/* Keep a copy of m to send after the next record: the fields it points to belong to the CSV
 * reader and change with the next record. Returns 0 or CS_ENOMEM. */
static int impair_hold(impair_sender *is, const wire_msg *m, int dup) {
  size_t n = m->stream.len < sizeof is->held_stream ? m->stream.len : sizeof is->held_stream - 1;
  free(is->held_fields);
  free(is->held_data);
  is->held_fields = NULL;
  is->held_data = NULL;
  if (cs_fields_copy(m->fields, m->nfields, &is->held_fields, &is->held_data) != 0) {
    return CS_ENOMEM;
  }
  memcpy(is->held_stream, m->stream.data, n);
  is->held_stream[n] = '\0';
  is->held = *m;
  is->held.fields = is->held_fields;
  is->held.stream.data = is->held_stream;
  is->held.stream.len = n;
  is->holding = 1;
  is->held_dup = dup;
  return 0;
}

/* Send the held-back record, if any: right after a later record (counted as reordered) or at
 * the end of the stream (not counted: nothing later went before it). */
static int impair_release_held(impair_sender *is, int after_later, char *err, size_t errlen) {
  int rc;
  if (!is->holding) {
    return 0;
  }
  rc = impair_add(is, &is->held, is->held_dup, err, errlen);
  is->holding = 0;
  if (rc == 0 && after_later) {
    impair_note_reordered(is->im);
  }
  return rc;
}

/* One record through the impairment: dropped, held back, or handed over (with a copy, and
 * with the held record after it); then the wrapped sender writes what is due. */
static int impair_op_send(sender *s, const wire_msg *m, uint64_t next_due_us, char *err,
                          size_t errlen) {
  impair_sender *is = impair_of(s);
  int action = impair_decide(is->im, is->holding);
  int rc;
  if (action & IMPAIR_DROP) {
    if (s->log_records) {
      log_info("dropped #%llu (line %llu) on purpose (--impair loss)", (unsigned long long)m->seq,
               (unsigned long long)m->line);
    }
    return 0;
  }
  if (action & IMPAIR_HOLD) {
    rc = impair_hold(is, m, (action & IMPAIR_DUP) != 0);
    if (rc == 0 && s->log_records) {
      log_info("holding #%llu (line %llu) back to send it after the next one (--impair "
               "reorder)",
               (unsigned long long)m->seq, (unsigned long long)m->line);
    }
  } else {
    rc = impair_add(is, m, action & IMPAIR_DUP, err, errlen);
    if (rc == 0) {
      sender_log_record(is->inner, m, is->inner->ops->wire_size(is->inner, m),
                        (action & IMPAIR_DUP) ? ", twice (--impair dup)" : "");
      if (is->holding && s->log_records) {
        log_info("sent #%llu after #%llu%s (--impair reorder)", (unsigned long long)is->held.seq,
                 (unsigned long long)m->seq, is->held_dup ? ", twice" : "");
      }
      rc = impair_release_held(is, 1, err, errlen);
    }
  }
  if (rc != 0) {
    snprintf(err, errlen, "out of memory queueing record #%llu for %s/%s",
             (unsigned long long)m->seq, s->peer, s->ops->name);
    return rc;
  }
  rc = is->inner->ops->push(is->inner, next_due_us, err, errlen);
  if (is->inner->clock_stale) {
    s->clock_stale = 1; /* the run reads the wrapper's */
    is->inner->clock_stale = 0;
  }
  return rc;
}

/* The held record, then the wrapped sender's END, all after the delay. */
static int impair_op_finish(sender *s, const wire_msg *end, uint64_t start_us, char *err,
                            size_t errlen) {
  impair_sender *is = impair_of(s);
  uint64_t start = (start_us != 0 ? start_us : clock_mono_us()) + is->delay_us;
  int rc = impair_release_held(is, 0, err, errlen);
  if (rc != 0) {
    snprintf(err, errlen, "out of memory queueing END for %s/%s", s->peer, s->ops->name);
    return rc;
  }
  return is->inner->ops->finish(is->inner, end, start, err, errlen);
}

/* The rest goes straight to the wrapped sender. */
static int impair_op_open(sender *s, const struct sockaddr *addr, socklen_t addrlen,
                          const char *peer, char *err, size_t errlen) {
  snprintf(s->peer, sizeof s->peer, "%s", peer);
  return impair_of(s)->inner->ops->open(impair_of(s)->inner, addr, addrlen, peer, err, errlen);
}

static int impair_op_hello(sender *s, const wire_msg *hello, char *err, size_t errlen) {
  return impair_of(s)->inner->ops->hello(impair_of(s)->inner, hello, err, errlen);
}

static int impair_op_fits(const sender *s, const wire_msg *m, size_t size, char *why,
                          size_t whylen) {
  const sender *in = impair_of_const(s)->inner;
  return in->ops->fits == NULL || in->ops->fits(in, m, size, why, whylen);
}

static size_t impair_op_wire_size(const sender *s, const wire_msg *m) {
  const sender *in = impair_of_const(s)->inner;
  return in->ops->wire_size(in, m);
}

static int impair_op_add(sender *s, const wire_msg *m, uint64_t due_us, char *err, size_t errlen) {
  return impair_of(s)->inner->ops->add(impair_of(s)->inner, m, due_us, err, errlen);
}

static int impair_op_push(sender *s, uint64_t next_due_us, char *err, size_t errlen) {
  return impair_of(s)->inner->ops->push(impair_of(s)->inner, next_due_us, err, errlen);
}

static int impair_op_flush_due(sender *s, uint64_t now_us, char *err, size_t errlen) {
  return impair_of(s)->inner->ops->flush_due(impair_of(s)->inner, now_us, err, errlen);
}

static int impair_op_flush(sender *s, char *err, size_t errlen) {
  return impair_of(s)->inner->ops->flush(impair_of(s)->inner, err, errlen);
}

static uint64_t impair_op_next_due(const sender *s) {
  const sender *in = impair_of_const(s)->inner;
  return in->ops->next_due(in);
}

static int impair_op_wait(sender *s, uint64_t deadline_us, char *err, size_t errlen) {
  return impair_of(s)->inner->ops->wait(impair_of(s)->inner, deadline_us, err, errlen);
}

static int impair_op_connected(const sender *s) {
  const sender *in = impair_of_const(s)->inner;
  return in->ops->connected(in);
}

static void impair_op_stats(const sender *s, sender_stats *out) {
  const sender *in = impair_of_const(s)->inner;
  in->ops->stats(in, out);
}

static void impair_op_close(sender *s) {
  impair_sender *is;
  if (s == NULL) {
    return;
  }
  is = impair_of(s);
  is->inner->ops->close(is->inner);
  free(is->held_fields);
  free(is->held_data);
  free(is);
}

static const sender_ops impair_sender_ops = {
    .open = impair_op_open,
    .hello = impair_op_hello,
    .fits = impair_op_fits,
    .wire_size = impair_op_wire_size,
    .send = impair_op_send,
    .add = impair_op_add,
    .push = impair_op_push,
    .flush_due = impair_op_flush_due,
    .flush = impair_op_flush,
    .next_due = impair_op_next_due,
    .wait = impair_op_wait,
    .connected = impair_op_connected,
    .finish = impair_op_finish,
    .stats = impair_op_stats,
    .close = impair_op_close,
};

/* Wrap inner; see impair.h. */
sender *impair_sender_new(sender *inner, impair *im) {
  impair_sender *is = calloc(1, sizeof *is);
  if (is == NULL) {
    return NULL;
  }
  is->ops = impair_sender_ops;
  is->ops.name = inner->ops->name;
  is->ops.socktype = inner->ops->socktype;
  sender_base_init(&is->base, &is->ops, inner->stop, inner->log_records);
  is->inner = inner;
  is->im = im;
  is->delay_us = (uint64_t)im->p.delay_ms * 1000u;
  return &is->base;
}
