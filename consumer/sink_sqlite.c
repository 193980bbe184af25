/* sink_sqlite.c -- the SQLite sink: rows queued and committed by store.c, paced here (a commit
 * at most every 50 ms), backed off with jitter while another process holds the lock, and
 * drained at the stop (waiting up to 10 s for such a lock; what is left is saved as CSV). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clock.h"
#include "error.h"
#include "log.h"
#include "sink.h"
#include "store.h"
#include "words.h"

#define SQLITE_COMMIT_PACE_US 50000  /* commit at most every 50 ms: no record waits ~100 ms */
#define SQLITE_FLUSH_BUDGET_US 20000 /* commit work per loop turn before others get a go */
#define SQLITE_BACKOFF_FIRST_MS 10
#define SQLITE_BACKOFF_MAX_MS 500
#define SQLITE_DRAIN_TIMEOUT_US 10000000 /* at the stop, retry a locked database this long */
#define SQLITE_DROP_LOG_INTERVAL_US 1000000
#define SQLITE_CHECK_US 1000000 /* how often the database file is looked at */
/* TCP reads pause when this much waits for its commit, and go on at half of it. A full batch
 * (STORE_BATCH_ROWS) of ordinary rows is well under 1 MiB, so even the resume level keeps
 * many batches ready and the database never waits for the network; more is only memory (8
 * producers of 1,000,000 rows at once into one database: consumer RSS 142 MiB with the old
 * level, 128 MiB, and 26 MiB with this one, in 17.5 s instead of 20.1 s). UDP, which cannot
 * pause, still has the queue's whole bound, STORE_MAX_PENDING_BYTES. */
#define SQLITE_PAUSE_BYTES (16u << 20)

typedef struct sink_sqlite {
  store *db;
  const char *path; /* --db, as given (points into argv) */
  sink_env env;
  uint64_t dropped; /* records the database could not take (reported, never silent) */
  uint64_t last_commit_us;
  uint64_t busy_since_us; /* 0 when not locked out */
  uint64_t busy_retries;
  uint64_t busy_backoff_ms;
  uint64_t busy_next_us;
  uint64_t committed_at_busy; /* store_committed() when the lock was first met */
  uint64_t catchup_since_us;  /* lock released: log when the queue is empty again */
  uint64_t rng;               /* backoff jitter */
  int failed;                 /* a database error stopped the consumer: the drain only saves */
  dev_t dev;                  /* the database file as opened, to notice it deleted or replaced */
  ino_t ino;
  int gone;            /* the path no longer leads to that file (logged once) */
  uint64_t checked_us; /* monotonic time of the last look */
  log_limiter drop_log;
  /* The stop's drain, one step per sink_ops.drain call. */
  int drain_started;
  int drain_warned;
  uint64_t drain_deadline_us;
  uint64_t drain_backoff_ms;
  uint64_t drain_wait_since_us;
  uint64_t drain_committed_at_wait;
} sink_sqlite;

/* A small xorshift generator for backoff jitter (state in the sink, no globals). */
static uint64_t sink_sqlite_random(sink_sqlite *q) {
  uint64_t x = q->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  q->rng = x;
  return x;
}

/* Open --db, or SINK_OFF without it. */
static int sink_sqlite_open(void **self, const consumer_options *opt, const sink_env *env) {
  sink_sqlite *q;
  char err[512];
  int rc;
  *self = NULL;
  if (opt->db_path == NULL || consumer_options_db_is_postgres(opt->db_path)) {
    return SINK_OFF; /* no --db, or a PostgreSQL one (sink_pg.c) */
  }
  q = calloc(1, sizeof(*q));
  if (q == NULL) {
    log_error("--db: out of memory");
    return CS_ENOMEM;
  }
  rc = store_open(&q->db, opt->db_path, env->slot, err, sizeof(err));
  if (rc != 0) {
    log_error("--db: %s", err);
    free(q);
    return rc;
  }
  q->path = opt->db_path;
  q->env = *env;
  if (opt->fsync && store_set_synchronous_full(q->db) != 0) {
    log_error("--db: %s", store_error(q->db));
    store_close(q->db);
    free(q);
    return CS_ESQLITE;
  }
  {
    struct stat sb;
    if (stat(q->path, &sb) == 0) {
      q->dev = sb.st_dev;
      q->ino = sb.st_ino;
    }
  }
  q->rng = clock_wall_us() | 1;
  *self = q;
  return 0;
}

/* Queue one row. A row too wide for a table, or one the full queue cannot take (only UDP
 * gets here: TCP reads pause at half the bound), is counted and logged, and the others go on:
 * it is in the CSV file. */
static int sink_sqlite_add(void *self, const sink_record *r) {
  sink_sqlite *q = self;
  char where[4200];
  int rc = store_add(q->db, r);
  if (rc == 0) {
    return 0;
  }
  if (r->stream->acked && (rc == CS_ETOOBIG || rc == CS_ENOMEM)) {
    /* Nothing is acknowledged that is not stored: the stream is refused (the producer is told
     * why and keeps the record). */
    log_error("%s: stream %s refused", rc == CS_ETOOBIG ? store_error(q->db) : "queue full",
              r->stream->label);
    return CS_EREFUSED;
  }
  if (rc == CS_ETOOBIG) {
    q->dropped++;
    if (log_limiter_allow(&q->drop_log, clock_mono_us(), SQLITE_DROP_LOG_INTERVAL_US)) {
      char n[WORDS_BUF];
      log_error("%s (%s not stored so far; it is in %s)", store_error(q->db),
                words_count(n, sizeof n, q->dropped),
                q->env.copy_where(q->env.arg, r->stream, where, sizeof where));
    }
    return 0;
  }
  if (rc == CS_ENOMEM) {
    q->dropped++;
    if (log_limiter_allow(&q->drop_log, clock_mono_us(), SQLITE_DROP_LOG_INTERVAL_US)) {
      char mib[WORDS_BUF], n[WORDS_BUF];
      log_error("database %s: queue full (%s MiB waiting): %s record %s #%" PRIu64
                " not stored in the database (%s so far; it is in %s)",
                q->path, words_count(mib, sizeof mib, store_pending_bytes(q->db) >> 20),
                r->stream->protocol, r->stream->label, r->seq, words_count(n, sizeof n, q->dropped),
                q->env.copy_where(q->env.arg, r->stream, where, sizeof where));
    }
    return 0;
  }
  log_error("%s; stopping", store_error(q->db));
  q->failed = 1;
  return rc;
}

/* A header-only stream: its table, empty, at the next commit. */
static int sink_sqlite_ended_empty(void *self, sink_stream *st) {
  sink_sqlite *q = self;
  if (store_add_empty(q->db, st) != 0) {
    log_error("%s; stopping", store_error(q->db));
    q->failed = 1;
    return CS_ENOMEM;
  }
  return 0;
}

/* An acknowledged stream resumes where the progress table says it stood. */
static void sink_sqlite_resume(void *self, sink_stream *st) {
  sink_sqlite *q = self;
  st->durable[q->env.slot] = store_progress(q->db, st);
}

/* A stream leaves the table: the store forgets it (remembering its acknowledged number). */
static void sink_sqlite_forget(void *self, sink_stream *st) {
  sink_sqlite *q = self;
  store_forget(q->db, st);
}

/* Another process's lock met (now: monotonic µs): counts the retry and, at the first, notes
 * when the lock-out began and what was committed by then. Returns 1 if it began just now. */
static int sink_sqlite_note_busy(sink_sqlite *q, uint64_t now) {
  q->busy_retries++;
  if (q->busy_since_us != 0) {
    return 0;
  }
  q->busy_since_us = now;
  q->committed_at_busy = store_committed(q->db);
  return 1;
}

/* A batch committed: a lock-out in progress is over; sink_sqlite_note_caught_up logs it once
 * the queue is empty. */
static void sink_sqlite_note_committed(sink_sqlite *q) {
  if (q->busy_since_us != 0) {
    q->catchup_since_us = q->busy_since_us;
    q->busy_since_us = 0;
  }
}

/* Log the end of a lock-out once the queue is empty again. */
static void sink_sqlite_note_caught_up(sink_sqlite *q) {
  if (q->catchup_since_us == 0 || store_pending(q->db) > 0) {
    return;
  }
  char rows[WORDS_BUF];
  log_info("database unlocked: caught up %s after %.1f s",
           words_count_of(rows, sizeof rows, store_committed(q->db) - q->committed_at_busy, "row",
                          "rows"),
           (double)(clock_mono_us() - q->catchup_since_us) / 1e6);
  q->catchup_since_us = 0;
}

/* The lock is held by another process: back off (10 ms doubling to 500 ms, jittered) and say
 * when to try again. */
static uint64_t sink_sqlite_backoff(sink_sqlite *q, uint64_t now) {
  uint64_t delay;
  if (sink_sqlite_note_busy(q, now)) {
    q->busy_backoff_ms = SQLITE_BACKOFF_FIRST_MS;
    if (q->catchup_since_us == 0) {
      char rows[WORDS_BUF];
      log_warn("database %s is locked by another process; holding %s in memory and retrying",
               q->path, words_count_of(rows, sizeof rows, store_pending(q->db), "row", "rows"));
    }
    q->catchup_since_us = 0;
  } else if (q->busy_backoff_ms < SQLITE_BACKOFF_MAX_MS) {
    q->busy_backoff_ms *= 2;
    if (q->busy_backoff_ms > SQLITE_BACKOFF_MAX_MS) {
      q->busy_backoff_ms = SQLITE_BACKOFF_MAX_MS;
    }
  }
  /* Jitter: 75% to 125% of the backoff, so retries do not fall into step with the other
   * process's transactions. */
  delay = q->busy_backoff_ms * 3 / 4 + sink_sqlite_random(q) % (q->busy_backoff_ms / 2 + 1);
  q->busy_next_us = now + delay * 1000;
  return q->busy_next_us;
}

/* Is the database file still at its path? Deleted or replaced, the rows committed to it are not
 * in the file a person will open: say so once, naming the file. */
static void sink_sqlite_check(sink_sqlite *q) {
  struct stat sb;
  int e = stat(q->path, &sb) == 0 ? 0 : errno;
  if (q->gone || (e == 0 && sb.st_dev == q->dev && sb.st_ino == q->ino)) {
    return;
  }
  q->gone = 1;
  log_error("database %s was %s while the consumer writes it: the %" PRIu64 " rows committed "
            "since it was opened are not in the file at that path (they are in the CSV files; "
            "restart the consumer to write a new database)",
            q->path,
            e == ENOENT ? "deleted"
            : e != 0    ? "made unreadable"
                        : "replaced",
            store_committed(q->db));
}

/* Commit what is queued if the pace allows, within a time budget; on a lock held by another
 * process, back off and keep the rows queued. */
static int sink_sqlite_flush(void *self, uint64_t now, uint64_t *next_us) {
  sink_sqlite *q = self;
  uint64_t budget_end;
  int rc;
  *next_us = 0;
  if (now - q->checked_us >= SQLITE_CHECK_US) {
    sink_sqlite_check(q);
    q->checked_us = now;
  }
  if (store_pending(q->db) == 0 && !store_tables_waiting(q->db)) {
    return 0;
  }
  if (q->busy_since_us != 0 && now < q->busy_next_us) {
    *next_us = q->busy_next_us;
    return 0;
  }
  /* The pace gathers rows into fewer commits while they trickle in; a full batch waiting is
   * committed at once (acknowledgements wait for the commit, so pacing a backlog would only
   * hold producers back), and so is the end of a stream (its producer waits for the last
   * acknowledgement, and nothing follows to gather). Other processes still get the lock
   * between the bursts. */
  if (q->busy_since_us == 0 && store_pending(q->db) < STORE_BATCH_ROWS &&
      now - q->last_commit_us < SQLITE_COMMIT_PACE_US && !store_pending_ended(q->db)) {
    *next_us = q->last_commit_us + SQLITE_COMMIT_PACE_US + 1000;
    return 0;
  }
  budget_end = now + SQLITE_FLUSH_BUDGET_US;
  do {
    rc = store_flush(q->db);
    if (rc == CS_EBUSY) {
      *next_us = sink_sqlite_backoff(q, now);
      return 0;
    }
    if (rc != 0) {
      char rows[WORDS_BUF];
      log_error("%s; stopping (rows not yet committed: %s)", store_error(q->db),
                words_count(rows, sizeof rows, store_pending(q->db)));
      q->failed = 1;
      return rc;
    }
    q->last_commit_us = clock_mono_us();
    sink_sqlite_note_committed(q);
  } while (store_pending(q->db) > 0 && clock_mono_us() < budget_end);
  sink_sqlite_note_caught_up(q);
  if (store_pending(q->db) > 0) {
    /* More to commit: come back in the next loop turn, after the others had theirs (a timer
     * due now makes libuv poll without waiting), not a millisecond later: with TCP reads
     * paused nothing else would wake the loop, and that millisecond was 5% of the time. */
    *next_us = clock_mono_us();
  }
  return 0;
}

/* Pause the peers that can wait at SQLITE_PAUSE_BYTES queued, let them go on at half that. */
static int sink_sqlite_pressure(void *self, int paused, char *why, size_t len) {
  sink_sqlite *q = self;
  size_t bytes = store_pending_bytes(q->db);
  char rows[WORDS_BUF], mib[WORDS_BUF];
  /* Asked after every read and loop turn: the words only when there is something to say. */
  if (!paused && bytes > SQLITE_PAUSE_BYTES) {
    words_count_of(rows, sizeof rows, store_pending(q->db), "row", "rows");
    snprintf(why, len, "database %s is behind (%s, %s MiB queued)", q->path, rows,
             words_count(mib, sizeof mib, bytes >> 20));
    return SINK_PRESSURE_HIGH;
  }
  if (paused && bytes < SQLITE_PAUSE_BYTES / 2) {
    words_count_of(rows, sizeof rows, store_pending(q->db), "row", "rows");
    snprintf(why, len, "database %s caught up (%s queued)", q->path, rows);
    return SINK_PRESSURE_LOW;
  }
  return SINK_PRESSURE_KEEP;
}

/* At the stop, for rows that will not be committed: save them with their metadata to
 * DB.uncommitted.csv next to the database (in out9.txt they cannot be told apart from the
 * committed ones) and log one error saying why (reason) and where they are. */
static void sink_sqlite_give_up(sink_sqlite *q, const char *reason) {
  char path[4096], err[512], where[4200], rows[WORDS_BUF];
  size_t n = store_pending(q->db), saved = 0;
  const char *csv;
  if (n == 0) {
    return;
  }
  words_count_of(rows, sizeof rows, n, "row", "rows");
  csv = q->env.copy_where(q->env.arg, NULL, where, sizeof where);
  if ((size_t)snprintf(path, sizeof path, "%s.uncommitted.csv", q->path) >= sizeof path) {
    log_error("database %s: %s not committed (%s); they are in %s (the path is too long to "
              "save them next to the database)",
              q->path, rows, reason, csv);
    return;
  }
  if (store_save_pending(q->db, path, &saved, err, sizeof err) != 0) {
    log_error("database %s: %s not committed (%s); they are in %s, but could not be saved "
              "apart: %s",
              q->path, rows, reason, csv, err);
    return;
  }
  log_error("database %s: %s not committed: saved to %s (%s; they are in %s too)", q->path, rows,
            path, reason, csv);
}

/* The lock met during the drain: give up (a second signal, or after 10 s) or wait. Returns 1
 * (given up) or SINK_AGAIN with *next_us. */
static int sink_sqlite_drain_busy(sink_sqlite *q, int give_up, uint64_t *next_us) {
  char reason[640], where[4200], rows[WORDS_BUF];
  uint64_t now = clock_mono_us();
  sink_sqlite_note_busy(q, now);
  if (give_up) {
    sink_sqlite_give_up(q, "locked by another process, and the wait was stopped");
    return 1;
  }
  if (!q->drain_warned) {
    /* Said at once, even if the lock was reported while running: the stop now waits. */
    q->drain_warned = 1;
    q->drain_wait_since_us = now;
    q->drain_committed_at_wait = store_committed(q->db);
    log_warn("database %s is locked by another process: waiting up to %d s to commit %s "
             "(Ctrl-C again to stop waiting; those rows are in %s)",
             q->path, SQLITE_DRAIN_TIMEOUT_US / 1000000,
             words_count_of(rows, sizeof rows, store_pending(q->db), "row", "rows"),
             q->env.copy_where(q->env.arg, NULL, where, sizeof where));
  }
  if (now >= q->drain_deadline_us) {
    snprintf(reason, sizeof reason, "still locked by another process after %d s",
             SQLITE_DRAIN_TIMEOUT_US / 1000000);
    sink_sqlite_give_up(q, reason);
    return 1;
  }
  *next_us = now + q->drain_backoff_ms * 1000;
  q->drain_backoff_ms = q->drain_backoff_ms * 2 > SQLITE_BACKOFF_MAX_MS ? SQLITE_BACKOFF_MAX_MS
                                                                        : q->drain_backoff_ms * 2;
  return SINK_AGAIN;
}

/* After the last commit: 1 (exit code 1, said why) when rows are not where the summary says:
 * the file was deleted or replaced, or records were not stored at all. */
static int sink_sqlite_drain_verdict(sink_sqlite *q) {
  char where[4200];
  sink_sqlite_check(q);
  if (q->dropped > 0) {
    char nrec[WORDS_BUF];
    log_error("database %s: %s not stored in it (see the errors above); they are in %s", q->path,
              words_count_of(nrec, sizeof nrec, q->dropped, "record was", "records were"),
              q->env.copy_where(q->env.arg, NULL, where, sizeof where));
  }
  return q->gone || q->dropped > 0 ? 1 : 0;
}

/* At the stop: commit every queued row, retrying a locked database for up to 10 s (a second
 * SIGINT/SIGTERM, give_up, ends the wait). */
static int sink_sqlite_drain(void *self, uint64_t now_us, int give_up, uint64_t *next_us) {
  sink_sqlite *q = self;
  char reason[640];
  int rc;
  if (!q->drain_started) {
    q->drain_started = 1;
    q->drain_deadline_us = now_us + SQLITE_DRAIN_TIMEOUT_US;
    q->drain_backoff_ms = SQLITE_BACKOFF_FIRST_MS;
  }
  if (q->failed) {
    sink_sqlite_give_up(q, "see the error above");
    return 1;
  }
  while (store_pending(q->db) > 0 || store_tables_waiting(q->db)) {
    rc = store_flush(q->db);
    if (rc == 0) {
      sink_sqlite_note_committed(q);
      continue;
    }
    if (rc != CS_EBUSY) {
      snprintf(reason, sizeof reason, "%s", store_error(q->db));
      sink_sqlite_give_up(q, reason);
      return 1;
    }
    return sink_sqlite_drain_busy(q, give_up, next_us);
  }
  if (q->drain_warned) {
    /* The wait announced above ended: say so, with the rows it was waiting for. */
    char rows[WORDS_BUF];
    log_info("database unlocked: committed %s after waiting %.1f s",
             words_count_of(rows, sizeof rows, store_committed(q->db) - q->drain_committed_at_wait,
                            "row", "rows"),
             (double)(clock_mono_us() - q->drain_wait_since_us) / 1e6);
    q->catchup_since_us = 0;
  }
  sink_sqlite_note_caught_up(q);
  return sink_sqlite_drain_verdict(q);
}

/* Rows a drain would wait for. */
static int sink_sqlite_waiting(void *self, char *what, size_t len) {
  sink_sqlite *q = self;
  if (store_pending(q->db) == 0) {
    return 0;
  }
  snprintf(what, len, "database %s", q->path);
  return 1;
}

/* The database line of the summary. */
static void sink_sqlite_report_text(void *self, FILE *out) {
  sink_sqlite *q = self;
  char rows[WORDS_BUF], pending[WORDS_BUF], retries[WORDS_BUF], dropped[WORDS_BUF];
  fprintf(
      out,
      "database %s: %s committed, %s pending, %s while another process held the lock, %s "
      "not stored (queue full, or more fields than a table takes)\n",
      q->path, words_count_of(rows, sizeof rows, store_committed(q->db), "row", "rows"),
      words_count(pending, sizeof pending, store_pending(q->db)),
      words_count_of(retries, sizeof retries, q->busy_retries, "commit retry", "commit retries"),
      words_count(dropped, sizeof dropped, q->dropped));
}

/* "db": path (null without --db), rows committed and pending, lock retries, rows dropped. */
static void sink_sqlite_report_json(void *self, json_out *j) {
  sink_sqlite *q = self;
  json_object_begin(j, "db");
  json_string(j, "path", q != NULL ? q->path : NULL);
  json_uint(j, "committed", q != NULL ? store_committed(q->db) : 0);
  json_uint(j, "pending", q != NULL ? store_pending(q->db) : 0);
  json_uint(j, "busy_retries", q != NULL ? q->busy_retries : 0);
  json_uint(j, "dropped", q != NULL ? q->dropped : 0);
  json_object_end(j);
}

/* Close the database (the drain committed or saved what it could). */
static int sink_sqlite_close(void *self, int discard) {
  sink_sqlite *q = self;
  (void)discard; /* a database this start created holds no rows; it is kept, as before */
  if (q == NULL) {
    return 0;
  }
  if (store_close(q->db) != 0) {
    log_error("database %s: closing failed", q->path);
  }
  free(q);
  return 0;
}

const sink_ops sink_sqlite_ops = {
    .name = "sqlite",
    .open = sink_sqlite_open,
    .add = sink_sqlite_add,
    .ended_empty = sink_sqlite_ended_empty,
    .resume = sink_sqlite_resume,
    .forget = sink_sqlite_forget,
    .flush = sink_sqlite_flush,
    .pressure = sink_sqlite_pressure,
    .drain = sink_sqlite_drain,
    .waiting = sink_sqlite_waiting,
    .summary = sink_sqlite_report_text,
    .json = sink_sqlite_report_json,
    .close = sink_sqlite_close,
};
