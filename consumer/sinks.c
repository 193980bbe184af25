/* sinks.c -- the sink registry and the fan-out: records to every sink, one error policy. */
#include "sinks.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"

/* How a registered sink is chosen: by the options (its open says SINK_OFF when they do not
 * ask for it), or only when a caller names it (sinks_open_these: tests, diagnostics). */
enum sinks_choice { SINKS_BY_OPTIONS, SINKS_ON_REQUEST };

/* The registry: a new sink is one file (sink_NAME.c, defining `const sink_ops sink_NAME_ops`)
 * and one line here. Order is the order records reach the sinks and the stop drains them: the
 * CSV file first, so that what a database cannot keep is already in it. */
#define SINKS_LIST(X)                                                                              \
  X(sink_csv_ops, SINKS_BY_OPTIONS)                                                                \
  X(sink_sqlite_ops, SINKS_BY_OPTIONS)                                                             \
  X(sink_pg_ops, SINKS_BY_OPTIONS)                                                                 \
  X(sink_count_ops, SINKS_ON_REQUEST)                                                              \
  /* one line per sink above this one, each ending in a backslash */

#define SINKS_DECLARE(ops, choice) extern const sink_ops ops;
SINKS_LIST(SINKS_DECLARE)
#define SINKS_ENTRY(ops, choice) {&ops, choice},
static const struct {
  const sink_ops *ops;
  enum sinks_choice choice;
} sinks_registry[] = {SINKS_LIST(SINKS_ENTRY)};
#define SINKS_REGISTERED (sizeof(sinks_registry) / sizeof(sinks_registry[0]))

static int sinks_close_all(sinks *s, int discard);

/* One open sink. */
typedef struct sinks_entry {
  const sink_ops *ops;
  void *self;
  int failed;  /* add or flush failed: it gets nothing more */
  int drained; /* its drain returned 0 or 1 */
} sinks_entry;

struct sinks {
  sinks_entry v[SINK_MAX];
  size_t n;
  int failed;
  int paused_by; /* index of the sink whose pressure paused reads, -1 when not paused */
};

/* The registered sink named name; see sinks.h. */
const sink_ops *sinks_find(const char *name) {
  size_t i;
  for (i = 0; i < SINKS_REGISTERED; i++) {
    if (strcmp(sinks_registry[i].ops->name, name) == 0) {
      return sinks_registry[i].ops;
    }
  }
  return NULL;
}

/* sink_env.copy_where: ask the sinks that keep CSV copies. */
static const char *sinks_copy_where(void *arg, const sink_stream *st, char *buf, size_t len) {
  sinks *s = arg;
  size_t i;
  for (i = 0; i < s->n; i++) {
    const sinks_entry *e = &s->v[i];
    if (e->ops->where != NULL) {
      const char *w = e->ops->where(e->self, st, buf, len);
      if (w != NULL) {
        return w;
      }
    }
  }
  snprintf(buf, len, "no CSV file");
  return buf;
}

/* Open one sink into the next entry. Returns 0 (opened or off) or its negative code. */
static int sinks_open_one(sinks *s, const sink_ops *ops, const consumer_options *opt, void *loop) {
  sink_env env;
  void *self = NULL;
  int rc;
  if (s->n == SINK_MAX) {
    log_error("sink %s: at most %d sinks at once", ops->name, SINK_MAX);
    return CS_EINVAL;
  }
  env.slot = s->n;
  env.copy_where = sinks_copy_where;
  env.arg = s;
  env.loop = loop;
  rc = ops->open(&self, opt, &env);
  if (rc == SINK_OFF) {
    return 0;
  }
  if (rc != 0) {
    return rc;
  }
  s->v[s->n].ops = ops;
  s->v[s->n].self = self;
  s->n++;
  return 0;
}

/* Open the given sinks on a loop (NULL: none), as sinks_open_these. */
static int sinks_open_list(sinks **out, const sink_ops *const *ops, size_t n,
                           const consumer_options *opt, void *loop) {
  sinks *s = calloc(1, sizeof(*s));
  size_t i;
  int rc = 0;
  *out = NULL;
  if (s == NULL) {
    log_error("out of memory for the sinks");
    return CS_ENOMEM;
  }
  s->paused_by = -1;
  for (i = 0; i < n && rc == 0; i++) {
    rc = sinks_open_one(s, ops[i], opt, loop);
  }
  if (rc != 0) {
    /* The consumer does not start: what the sinks opened so far is discarded (an out9.txt
     * this start created stays empty and is removed by its close). */
    sinks_close_all(s, 1);
    return rc;
  }
  *out = s;
  return 0;
}

/* Open the given sinks; see sinks.h. */
int sinks_open_these(sinks **out, const sink_ops *const *ops, size_t n,
                     const consumer_options *opt) {
  return sinks_open_list(out, ops, n, opt, NULL);
}

/* Open what the options ask for; see sinks.h. */
int sinks_open(sinks **out, const consumer_options *opt) {
  return sinks_open_on(out, opt, NULL);
}

/* Open what the options ask for, on the consumer's loop; see sinks.h. */
int sinks_open_on(sinks **out, const consumer_options *opt, void *loop) {
  const sink_ops *ops[SINKS_REGISTERED];
  size_t i, n = 0;
  for (i = 0; i < SINKS_REGISTERED; i++) {
    if (sinks_registry[i].choice == SINKS_BY_OPTIONS) {
      ops[n++] = sinks_registry[i].ops;
    }
  }
  return sinks_open_list(out, ops, n, opt, loop);
}

/* Mark a sink failed and return rc. */
static int sinks_fail(sinks *s, sinks_entry *e, int rc) {
  e->failed = 1;
  s->failed = 1;
  return rc;
}

/* Records to every sink; see sinks.h. A failure ends the fan-out for this record: the
 * consumer is stopping, and what a later sink would take now could not be told apart. */
int sinks_add(sinks *s, const sink_record *r, const char **who) {
  size_t i, took = 0;
  int rc;
  *who = NULL;
  for (i = 0; i < s->n; i++) {
    sinks_entry *e = &s->v[i];
    if (e->failed || (r->stream->acked && r->seq <= r->stream->durable[i])) {
      continue;
    }
    rc = e->ops->add(e->self, r);
    if (rc == CS_EREFUSED) {
      *who = e->ops->name;
      return rc;
    }
    if (rc < 0) {
      *who = e->ops->name;
      return sinks_fail(s, e, rc);
    }
    took++;
  }
  return took == 0 && r->stream->acked ? 1 : 0;
}

/* A stream without records; see sinks.h. */
int sinks_ended_empty(sinks *s, sink_stream *st) {
  size_t i;
  int rc;
  for (i = 0; i < s->n; i++) {
    sinks_entry *e = &s->v[i];
    if (e->failed || e->ops->ended_empty == NULL) {
      continue;
    }
    rc = e->ops->ended_empty(e->self, st);
    if (rc < 0) {
      return sinks_fail(s, e, rc);
    }
  }
  return 0;
}

/* What every sink kept of a stream; see sinks.h. */
void sinks_resume(sinks *s, sink_stream *st) {
  size_t i;
  for (i = 0; i < s->n; i++) {
    if (s->v[i].ops->resume != NULL) {
      s->v[i].ops->resume(s->v[i].self, st);
    }
  }
}

/* The ack; see sinks.h. A failed sink holds the ack where it was: nothing more is durable. */
uint64_t sinks_durable(const sinks *s, const sink_stream *st) {
  uint64_t low = UINT64_MAX;
  size_t i;
  for (i = 0; i < s->n; i++) {
    if (st->durable[i] < low) {
      low = st->durable[i];
    }
  }
  return s->n > 0 ? low : 0;
}

int sinks_hold(const sinks *s, const sink_stream *st) {
  for (size_t i = 0; i < s->n; i++) {
    if (st->held[i] > 0) {
      return 1;
    }
  }
  return 0;
}

void sinks_forget(sinks *s, sink_stream *st) {
  for (size_t i = 0; i < s->n; i++) {
    if (s->v[i].ops->forget != NULL) {
      s->v[i].ops->forget(s->v[i].self, st);
    }
  }
}

/* Flush every sink; see sinks.h. The first failure ends the round, as in sinks_add. */
int sinks_flush(sinks *s, uint64_t now_us, uint64_t *next_us) {
  size_t i;
  int rc;
  *next_us = 0;
  for (i = 0; i < s->n; i++) {
    sinks_entry *e = &s->v[i];
    uint64_t next = 0;
    if (e->failed || e->ops->flush == NULL) {
      continue;
    }
    rc = e->ops->flush(e->self, now_us, &next);
    if (rc < 0) {
      return sinks_fail(s, e, rc);
    }
    if (next != 0 && (*next_us == 0 || next < *next_us)) {
      *next_us = next;
    }
  }
  return 0;
}

/* Back-pressure verdict; see sinks.h. Reads pause when one sink is behind, and resume when
 * the one that paused them says it caught up and no other is behind. */
int sinks_pressure(sinks *s, int paused, char *why, size_t len) {
  size_t i;
  int verdict = SINK_PRESSURE_KEEP;
  for (i = 0; i < s->n; i++) {
    sinks_entry *e = &s->v[i];
    int p;
    if (e->failed || e->ops->pressure == NULL) {
      continue;
    }
    if (paused && (int)i != s->paused_by) {
      char other[8];
      if (e->ops->pressure(e->self, 0, other, sizeof(other)) == SINK_PRESSURE_HIGH) {
        return SINK_PRESSURE_KEEP; /* another sink is behind too: stay paused */
      }
      continue;
    }
    p = e->ops->pressure(e->self, paused, why, len);
    if (!paused && p == SINK_PRESSURE_HIGH) {
      s->paused_by = (int)i;
      return SINK_PRESSURE_HIGH;
    }
    if (paused && p == SINK_PRESSURE_LOW) {
      verdict = SINK_PRESSURE_LOW;
    }
  }
  if (paused && s->paused_by >= 0 && (size_t)s->paused_by < s->n && s->v[s->paused_by].failed) {
    snprintf(why, len, "sink %s failed", s->v[s->paused_by].ops->name);
    verdict = SINK_PRESSURE_LOW;
  }
  if (verdict == SINK_PRESSURE_LOW) {
    s->paused_by = -1;
  }
  return verdict;
}

/* One step of the drain; see sinks.h. */
int sinks_drain(sinks *s, uint64_t now_us, int give_up, uint64_t *next_us) {
  size_t i;
  int result = 0;
  for (i = 0; i < s->n; i++) {
    sinks_entry *e = &s->v[i];
    int rc;
    if (e->drained || e->ops->drain == NULL) {
      continue;
    }
    rc = e->ops->drain(e->self, now_us, give_up, next_us);
    if (rc == SINK_AGAIN) {
      return SINK_AGAIN; /* later sinks wait their turn: the order is the registry's */
    }
    e->drained = 1;
    if (rc != 0) {
      result = 1;
    }
  }
  return result;
}

/* Reopen every sink's files; see sinks.h. */
int sinks_reopen(sinks *s) {
  size_t i;
  int rc = 0, r;
  for (i = 0; i < s->n; i++) {
    if (!s->v[i].failed && s->v[i].ops->reopen != NULL) {
      r = s->v[i].ops->reopen(s->v[i].self);
      if (r != 0 && rc == 0) {
        rc = r;
      }
    }
  }
  return rc;
}

/* Does a sink hold records a drain waits for? See sinks.h. */
int sinks_waiting(sinks *s, char *what, size_t len) {
  size_t i;
  for (i = 0; i < s->n; i++) {
    sinks_entry *e = &s->v[i];
    if (e->ops->waiting != NULL && e->ops->waiting(e->self, what, len)) {
      return 1;
    }
  }
  return 0;
}

/* The summary's lines from every sink; see sinks.h. */
void sinks_report_text(sinks *s, FILE *out) {
  size_t i;
  for (i = 0; i < s->n; i++) {
    if (s->v[i].ops->summary != NULL) {
      s->v[i].ops->summary(s->v[i].self, out);
    }
  }
}

/* The JSON members of every registered sink: open ones report, the others write their empty
 * shape, so that the document has the same keys whatever the flags. */
void sinks_report_json(sinks *s, json_out *j) {
  size_t i, k;
  for (i = 0; i < SINKS_REGISTERED; i++) {
    const sink_ops *ops = sinks_registry[i].ops;
    void *self = NULL;
    if (ops->json == NULL) {
      continue;
    }
    for (k = 0; k < s->n; k++) {
      if (s->v[k].ops == ops) {
        self = s->v[k].self;
      }
    }
    if (self != NULL || sinks_registry[i].choice == SINKS_BY_OPTIONS) {
      ops->json(self, j);
    }
  }
}

/* One stream's JSON members from every sink; see sinks.h. */
void sinks_report_stream_json(sinks *s, const sink_stream *st, json_out *j) {
  size_t i;
  for (i = 0; i < s->n; i++) {
    if (s->v[i].ops->stream_json != NULL) {
      s->v[i].ops->stream_json(s->v[i].self, st, j);
    }
  }
}

/* See sinks.h. */
int sinks_failed(const sinks *s) {
  return s->failed;
}

/* Close every sink (discard: see sink_ops.close) and free s. Accepts NULL. */
static int sinks_close_all(sinks *s, int discard) {
  size_t i;
  int result = 0;
  if (s == NULL) {
    return 0;
  }
  for (i = 0; i < s->n; i++) {
    if (s->v[i].ops->close(s->v[i].self, discard) != 0) {
      result = 1;
    }
  }
  free(s);
  return result;
}

/* Close every sink; see sinks.h. */
int sinks_close(sinks *s) {
  return sinks_close_all(s, 0);
}
