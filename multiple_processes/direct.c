/* direct.c -- multiple_processes naive and safe modes: every process opens the shared database
 * itself. naive does what the course's script did (SQLite's defaults) and meets "database is
 * locked"; safe uses WAL, BEGIN IMMEDIATE, a busy timeout and bounded, jittered retries. */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mp.h"
#include "words.h"

/* The table naive and safe write (the funnel's consumer names its own table "readings"). */
#define MP_DIRECT_TABLE "direct_readings"
/* safe: how long SQLite itself waits for the lock per attempt, and how many attempts. */
/* naive: process p starts (p - 1) * this many seconds after the barrier opens, as the course's
 * launcher started its processes one after another. A transaction with no task duration is
 * over long before the next process starts (so at 0 s every record lands); one that sleeps
 * seconds still holds its lock when the others arrive (so at 3 s they fail). */
#define MP_NAIVE_STAGGER_S 0.1
#define MP_SAFE_BUSY_TIMEOUT_MS 100
#define MP_SAFE_MAX_ATTEMPTS 200
#define MP_SAFE_BACKOFF_MIN_MS 50
#define MP_SAFE_BACKOFF_MAX_MS 1000

/* INSERT one reading inside the open transaction. Returns the SQLite result code. */
static int mp_insert(sqlite3 *db, const mp_ctx *ctx, int p, int r) {
  sqlite3_stmt *q = NULL;
  mp_reading rd;
  mp_reading_make(&rd, p, r);
  int rc = sqlite3_prepare_v2(db,
                              "INSERT INTO " MP_DIRECT_TABLE
                              " (run, process, record, sensor, celsius, taken_at)"
                              " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                              -1, &q, NULL);
  if (rc == SQLITE_OK) {
    rc = sqlite3_bind_int64(q, 1, (sqlite3_int64)ctx->run_id);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_bind_int(q, 2, p);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_bind_int(q, 3, r);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_bind_text(q, 4, rd.sensor, -1, SQLITE_TRANSIENT);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_bind_text(q, 5, rd.celsius, -1, SQLITE_TRANSIENT);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_bind_text(q, 6, rd.taken_at, -1, SQLITE_TRANSIENT);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(q);
    if (rc == SQLITE_DONE) {
      rc = SQLITE_OK;
    }
  }
  /* The connection's message stays readable after finalize for the caller's log. */
  sqlite3_finalize(q);
  return rc;
}

/* End a failed transaction, if one is open. */
static void mp_rollback(sqlite3 *db) {
  if (!sqlite3_get_autocommit(db)) {
    (void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  }
}

/* Open this process's own connection. Returns NULL after logging and reporting every record
 * as failed. */
static sqlite3 *mp_child_open(const mp_ctx *ctx, int p, int fd) {
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(ctx->db, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK) {
    return db;
  }
  char msg[200];
  snprintf(msg, sizeof msg, "cannot open %s: %s", ctx->db,
           db ? sqlite3_errmsg(db) : "out of memory");
  for (int r = 1; r <= ctx->records; r++) {
    mp_log("process %d record %d: FAILED: %s", p, r, msg);
    mp_report(fd, p, r, msg);
  }
  sqlite3_close(db);
  return NULL;
}

/* naive: BEGIN (deferred); INSERT; sleep; COMMIT, with SQLite's defaults (no busy timeout), as
 * the course's script did. A failure is logged and the process moves on to its next record. */
static int mp_naive_child(const mp_ctx *ctx, int p, int fd) {
  mp_sleep((p - 1) * MP_NAIVE_STAGGER_S);
  sqlite3 *db = mp_child_open(ctx, p, fd);
  if (db == NULL) {
    return 1;
  }
  for (int r = 1; r <= ctx->records; r++) {
    const char *step = "BEGIN";
    int rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    if (rc == SQLITE_OK) {
      step = "INSERT";
      rc = mp_insert(db, ctx, p, r);
    }
    if (rc == SQLITE_OK) {
      if (ctx->task_duration > 0) {
        mp_log("process %d record %d: in the transaction, working for %g s", p, r,
               ctx->task_duration);
      }
      mp_sleep(ctx->task_duration);
      step = "COMMIT";
      rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK) {
      mp_log("process %d record %d: inserted", p, r);
      mp_report(fd, p, r, NULL);
      continue;
    }
    char msg[112];
    snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(db));
    mp_rollback(db);
    mp_log("process %d record %d: FAILED: %s (at %s)", p, r, msg, step);
    mp_report(fd, p, r, msg);
  }
  sqlite3_close(db);
  return 0;
}

/* safe: BEGIN IMMEDIATE takes the write lock up front (a deferred transaction that upgrades to
 * a writer can fail at once whatever the timeout); SQLite waits up to its busy timeout, then
 * the process backs off with jitter and tries again, a bounded number of times. */
static int mp_safe_child(const mp_ctx *ctx, int p, int fd) {
  sqlite3 *db = mp_child_open(ctx, p, fd);
  int failures = 0;
  if (db == NULL) {
    return 1;
  }
  if (sqlite3_busy_timeout(db, MP_SAFE_BUSY_TIMEOUT_MS) != SQLITE_OK) {
    fprintf(stderr, "multiple_processes: process %d: busy timeout: %s\n", p, sqlite3_errmsg(db));
  }
  uint64_t rnd = mp_random64() | 1;
  for (int r = 1; r <= ctx->records; r++) {
    char msg[112] = "";
    int done = 0;
    for (int attempt = 1; attempt <= MP_SAFE_MAX_ATTEMPTS && !done; attempt++) {
      const char *step = "BEGIN IMMEDIATE";
      int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
      if (rc == SQLITE_OK) {
        step = "INSERT";
        rc = mp_insert(db, ctx, p, r);
      }
      if (rc == SQLITE_OK) {
        if (ctx->task_duration > 0) {
          mp_log("process %d record %d: holding the write lock, working for %g s", p, r,
                 ctx->task_duration);
        }
        mp_sleep(ctx->task_duration);
        step = "COMMIT";
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
      }
      if (rc == SQLITE_OK) {
        mp_log("process %d record %d: inserted%s", p, r,
               attempt > 1 ? " (after waiting for the lock)" : "");
        mp_report(fd, p, r, NULL);
        done = 1;
        break;
      }
      snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(db));
      mp_rollback(db);
      if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED) {
        mp_log("process %d record %d: FAILED: %s (at %s)", p, r, msg, step);
        break;
      }
      /* Exponential backoff with jitter (between half and all of the step), so that the
       * waiting processes do not all wake up and collide again at the same moment. */
      int shift = attempt - 1 < 5 ? attempt - 1 : 5;
      int backoff = MP_SAFE_BACKOFF_MIN_MS << shift;
      if (backoff > MP_SAFE_BACKOFF_MAX_MS) {
        backoff = MP_SAFE_BACKOFF_MAX_MS;
      }
      rnd ^= rnd << 13;
      rnd ^= rnd >> 7;
      rnd ^= rnd << 17;
      int wait_ms = backoff / 2 + (int)(rnd % (uint64_t)(backoff / 2 + 1));
      mp_log("process %d record %d: %s, waiting for the lock (attempt %d of %d, retry in %d ms)", p,
             r, msg, attempt, MP_SAFE_MAX_ATTEMPTS, wait_ms);
      mp_sleep(wait_ms / 1000.0);
    }
    if (!done) {
      char why[112];
      snprintf(why, sizeof why, "%s", msg[0] ? msg : "gave up");
      if (strstr(msg, "locked")) {
        mp_log("process %d record %d: FAILED: gave up after %d attempts: %s", p, r,
               MP_SAFE_MAX_ATTEMPTS, msg);
      }
      mp_report(fd, p, r, why);
      failures++;
    }
  }
  sqlite3_close(db);
  return failures ? 1 : 0;
}

/* Run a journal_mode pragma (a query or a change) and copy the mode it answers, in lower case,
 * into mode. Returns the SQLite result code; mode is "" unless SQLITE_OK. */
static int mp_journal_mode(sqlite3 *db, const char *sql, char *mode, size_t len) {
  sqlite3_stmt *q = NULL;
  mode[0] = '\0';
  int rc = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
      const unsigned char *text = sqlite3_column_text(q, 0);
      snprintf(mode, len, "%s", text ? (const char *)text : "");
      rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
      rc = SQLITE_ERROR; /* a journal_mode pragma always answers one row */
    }
  }
  sqlite3_finalize(q);
  return rc;
}

/* Prepare the shared file: the journal mode the mode calls for, and the table. The file's
 * journal mode before and after go into before and after (len bytes each; "wal", "delete"...).
 * A file that another connection keeps open cannot change its journal mode ("database is
 * locked"): the run goes on in the mode the file has, and after says which. Returns 0, or -1
 * with the message printed. */
static int mp_direct_setup(const mp_ctx *ctx, char *before, char *after, size_t len) {
  sqlite3 *db = NULL;
  int rc = -1;
  /* naive uses SQLite's default rollback journal; WAL is a property of the file and would stay
   * on from an earlier safe or funnel run, so naive switches it back off. */
  const char *journal =
      ctx->mode == MP_SAFE ? "PRAGMA journal_mode=WAL" : "PRAGMA journal_mode=DELETE";
  if (sqlite3_open_v2(ctx->db, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
      SQLITE_OK) {
    fprintf(stderr, "multiple_processes: cannot open database %s: %s\n", ctx->db,
            db ? sqlite3_errmsg(db) : "out of memory");
    goto done;
  }
  if (sqlite3_busy_timeout(db, 5000) != SQLITE_OK ||
      mp_journal_mode(db, "PRAGMA journal_mode", before, len) != SQLITE_OK) {
    goto fail;
  }
  /* Changing the mode needs the file to itself; wait a little, then make do with what it is. */
  if (sqlite3_busy_timeout(db, 1000) != SQLITE_OK) {
    goto fail;
  }
  int jrc = mp_journal_mode(db, journal, after, len);
  if ((jrc & 0xff) == SQLITE_BUSY || (jrc & 0xff) == SQLITE_LOCKED) {
    snprintf(after, len, "%s", before);
  } else if (jrc != SQLITE_OK) {
    goto fail;
  }
  if (sqlite3_busy_timeout(db, 5000) != SQLITE_OK ||
      sqlite3_exec(db,
                   "CREATE TABLE IF NOT EXISTS " MP_DIRECT_TABLE
                   " (run INTEGER, process INTEGER, record INTEGER, sensor TEXT, celsius TEXT,"
                   " taken_at TEXT)",
                   NULL, NULL, NULL) != SQLITE_OK) {
    goto fail;
  }
  rc = 0;
  goto done;
fail:
  fprintf(stderr, "multiple_processes: database %s: %s\n", ctx->db, sqlite3_errmsg(db));
done:
  sqlite3_close(db);
  return rc;
}

/* Rows of this run in the table, counted by the parent's own query, or -1 (message printed). */
static long mp_direct_count(const mp_ctx *ctx) {
  sqlite3 *db = NULL;
  sqlite3_stmt *q = NULL;
  long n = -1;
  if (sqlite3_open_v2(ctx->db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
      sqlite3_busy_timeout(db, 5000) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "SELECT count(*) FROM " MP_DIRECT_TABLE " WHERE run = ?1", -1, &q,
                         NULL) != SQLITE_OK ||
      sqlite3_bind_int64(q, 1, (sqlite3_int64)ctx->run_id) != SQLITE_OK ||
      sqlite3_step(q) != SQLITE_ROW) {
    fprintf(stderr, "multiple_processes: cannot count rows in %s: %s\n", ctx->db,
            db ? sqlite3_errmsg(db) : "out of memory");
  } else {
    n = (long)sqlite3_column_int64(q, 0);
  }
  sqlite3_finalize(q);
  sqlite3_close(db);
  return n;
}

int mp_direct_run(mp_ctx *ctx) {
  long ok = 0, failed = 0;
  char failures[512];
  char before[32], after[32];
  long expected = (long)ctx->processes * ctx->records;

  if (mp_direct_setup(ctx, before, after, sizeof before) != 0) {
    return 1;
  }
  char plan[2 * WORDS_BUF + 4], procs[WORDS_BUF], recs[WORDS_BUF];
  snprintf(plan, sizeof plan, "%s x %s",
           words_count_of(procs, sizeof procs, (uint64_t)ctx->processes, "process", "processes"),
           words_count_of(recs, sizeof recs, (uint64_t)ctx->records, "record", "records"));
  /* Say what the file's journal really is: naive's lesson is about SQLite's defaults, and a
   * file left in WAL by an earlier safe or funnel run is switched back (or, when another
   * connection holds it open, stays in WAL; one writer at a time all the same). */
  if (ctx->mode == MP_NAIVE && strcmp(after, "delete") == 0 && strcmp(before, "delete") != 0) {
    mp_log("naive: %s into %s, task duration %g s; switched %s back from "
           "%s to the rollback journal (SQLite's default); each process opens its own "
           "connection with SQLite's defaults (no busy timeout, deferred BEGIN)",
           plan, ctx->db, ctx->task_duration, ctx->db, strcmp(before, "wal") == 0 ? "WAL" : before);
  } else if (ctx->mode == MP_NAIVE && strcmp(after, "delete") == 0) {
    mp_log("naive: %s into %s, task duration %g s; each process opens "
           "its own connection with SQLite's defaults (rollback journal, no busy timeout, "
           "deferred BEGIN)",
           plan, ctx->db, ctx->task_duration);
  } else if (ctx->mode == MP_NAIVE) {
    mp_log("naive: %s into %s, task duration %g s; %s stays in %s mode "
           "(another connection has it open, so it could not be switched back to the rollback "
           "journal); each process opens its own connection with no busy timeout and a "
           "deferred BEGIN",
           plan, ctx->db, ctx->task_duration, ctx->db, strcmp(after, "wal") == 0 ? "WAL" : after);
  } else if (strcmp(after, "wal") == 0) {
    mp_log("safe: %s into %s, task duration %g s; WAL, BEGIN IMMEDIATE, "
           "busy timeout %d ms, up to %d attempts with jittered backoff",
           plan, ctx->db, ctx->task_duration, MP_SAFE_BUSY_TIMEOUT_MS, MP_SAFE_MAX_ATTEMPTS);
  } else {
    mp_log("safe: %s into %s, task duration %g s; %s stays in %s mode "
           "(another connection has it open, so it could not be switched to WAL), BEGIN "
           "IMMEDIATE, busy timeout %d ms, up to %d attempts with jittered backoff",
           plan, ctx->db, ctx->task_duration, ctx->db,
           strcmp(after, "delete") == 0 ? "rollback journal" : after, MP_SAFE_BUSY_TIMEOUT_MS,
           MP_SAFE_MAX_ATTEMPTS);
  }
  if (mp_run_children(ctx, ctx->mode == MP_NAIVE ? mp_naive_child : mp_safe_child, &ok, &failed,
                      failures, sizeof failures) != 0) {
    return 1;
  }
  long inserted = mp_direct_count(ctx);
  if (inserted < 0) {
    return 1;
  }
  if (inserted != ok) {
    mp_log("note: the processes reported %ld inserted, the database holds %ld", ok, inserted);
  }
  /* Ctrl-C: the processes were stopped; say what landed before they were. */
  if (mp_stop_signal()) {
    return mp_stop_summary(inserted, expected, failed, failures);
  }
  char landed[WORDS_BUF], total[WORDS_BUF], failed_n[WORDS_BUF];
  if (expected - inserted > 0) {
    mp_log("inserted %s of %s; %s failed: %s",
           words_count(landed, sizeof landed, (uint64_t)inserted),
           words_count_of(total, sizeof total, (uint64_t)expected, "record", "records"),
           words_count(failed_n, sizeof failed_n, (uint64_t)(expected - inserted)),
           failures[0] ? failures : "unknown");
  } else {
    mp_log("inserted %s of %s; none failed", words_count(landed, sizeof landed, (uint64_t)inserted),
           words_count_of(total, sizeof total, (uint64_t)expected, "record", "records"));
  }
  /* naive exits 0 even when records were lost: the failure is the lesson, not a malfunction.
   * safe promises every record, so a missing one is a runtime failure. */
  if (ctx->mode == MP_SAFE && inserted != expected) {
    return 1;
  }
  return 0;
}
