/* pg.c -- multiple_processes postgres mode: the same processes, tasks inside their transactions,
 * but into PostgreSQL, where writers lock rows, not the database: nobody waits, nobody fails. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mp.h"
#include "words.h"

#ifndef CSVSTREAM_HAVE_LIBPQ

int mp_pg_run(mp_ctx *ctx) {
  (void)ctx;
  fprintf(stderr, "multiple_processes: --mode postgres: this build has no PostgreSQL (libpq); "
                  "install libpq-dev and build again\n");
  return 1;
}

#else

#include <libpq-fe.h>

/* The table postgres mode writes: the same columns as naive and safe. */
#define MP_PG_TABLE "direct_readings"

/* The first line of a libpq message into buf. */
static const char *mp_pg_message(const char *msg, char *buf, size_t len) {
  size_t n = strcspn(msg, "\n");
  snprintf(buf, len, "%.*s", (int)n, msg);
  return buf;
}

/* Run one statement without results. Returns 0, or -1 with the server's message in err. */
static int mp_pg_exec(PGconn *c, const char *sql, char *err, size_t len) {
  PGresult *r = PQexec(c, sql);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  if (!ok) {
    mp_pg_message(PQresultErrorMessage(r), err, len);
  }
  PQclear(r);
  return ok ? 0 : -1;
}

/* INSERT one reading in the open transaction. Returns 0 or -1 (err set). */
static int mp_pg_insert(PGconn *c, const mp_ctx *ctx, int p, int r, char *err, size_t len) {
  mp_reading rd;
  char run[32], proc[16], rec[16];
  mp_reading_make(&rd, p, r);
  snprintf(run, sizeof run, "%" PRIu64, ctx->run_id);
  snprintf(proc, sizeof proc, "%d", p);
  snprintf(rec, sizeof rec, "%d", r);
  const char *values[6] = {run, proc, rec, rd.sensor, rd.celsius, rd.taken_at};
  PGresult *res = PQexecParams(c,
                               "INSERT INTO " MP_PG_TABLE
                               " (run, process, record, sensor, celsius, taken_at) VALUES ($1, $2, "
                               "$3, $4, $5, $6)",
                               6, NULL, values, NULL, NULL, 0);
  int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
  if (!ok) {
    mp_pg_message(PQresultErrorMessage(res), err, len);
  }
  PQclear(res);
  return ok ? 0 : -1;
}

/* One process: each of its records in its own transaction on its own connection, all open at
 * once (BEGIN; INSERT), then the task (the sleep) while they are open, then COMMIT each. Rows
 * of different transactions never lock each other, so no process waits for another. */
static int mp_pg_child(const mp_ctx *ctx, int p, int fd) {
  PGconn **conns = calloc((size_t)ctx->records, sizeof *conns);
  int *open = calloc((size_t)ctx->records, sizeof *open);
  int failures = 0;
  char err[112];
  if (conns == NULL || open == NULL) {
    for (int r = 1; r <= ctx->records; r++) {
      mp_report(fd, p, r, "out of memory");
    }
    free(conns);
    free(open);
    return 1;
  }
  for (int r = 1; r <= ctx->records; r++) {
    PGconn *c = PQconnectdb(ctx->db);
    conns[r - 1] = c;
    const char *step = "connect";
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
      mp_pg_message(c ? PQerrorMessage(c) : "out of memory", err, sizeof err);
    } else if ((step = "BEGIN", mp_pg_exec(c, "BEGIN", err, sizeof err)) == 0 &&
               (step = "INSERT", mp_pg_insert(c, ctx, p, r, err, sizeof err)) == 0) {
      open[r - 1] = 1;
      if (ctx->task_duration > 0) {
        mp_log("process %d record %d: in the transaction, working for %g s", p, r,
               ctx->task_duration);
      }
      continue;
    }
    mp_log("process %d record %d: FAILED: %s (at %s)", p, r, err, step);
    mp_report(fd, p, r, err);
    failures++;
  }
  mp_sleep(ctx->task_duration);
  for (int r = 1; r <= ctx->records; r++) {
    if (!open[r - 1]) {
      continue;
    }
    if (mp_pg_exec(conns[r - 1], "COMMIT", err, sizeof err) == 0) {
      mp_log("process %d record %d: inserted", p, r);
      mp_report(fd, p, r, NULL);
    } else {
      mp_log("process %d record %d: FAILED: %s (at COMMIT)", p, r, err);
      mp_report(fd, p, r, err);
      failures++;
    }
  }
  for (int r = 1; r <= ctx->records; r++) {
    PQfinish(conns[r - 1]);
  }
  free(conns);
  free(open);
  return failures ? 1 : 0;
}

/* The table, made by the parent before the processes start. Returns 0 or -1 (printed). */
static int mp_pg_setup(const mp_ctx *ctx, int *server_version) {
  char err[256];
  PGconn *c = PQconnectdb(ctx->db);
  int rc = -1;
  if (c == NULL || PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr,
            "multiple_processes: cannot connect to the database: %s (check --db; the password "
            "goes in PGPASSWORD or ~/.pgpass)\n",
            mp_pg_message(c ? PQerrorMessage(c) : "out of memory", err, sizeof err));
  } else if (mp_pg_exec(c,
                        "SET client_min_messages = warning; CREATE TABLE IF NOT EXISTS " MP_PG_TABLE
                        " (run bigint, process integer, record integer, sensor text, celsius "
                        "text, taken_at text)",
                        err, sizeof err) != 0) {
    fprintf(stderr, "multiple_processes: creating the table " MP_PG_TABLE ": %s\n", err);
  } else {
    *server_version = PQserverVersion(c);
    rc = 0;
  }
  PQfinish(c);
  return rc;
}

/* Rows of this run in the table, by the parent's own query, or -1 (printed). */
static long mp_pg_count(const mp_ctx *ctx) {
  char run[32], err[256];
  const char *values[1] = {run};
  long n = -1;
  PGconn *c = PQconnectdb(ctx->db);
  snprintf(run, sizeof run, "%" PRIu64, ctx->run_id);
  if (c == NULL || PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "multiple_processes: cannot count the rows: %s\n",
            mp_pg_message(c ? PQerrorMessage(c) : "out of memory", err, sizeof err));
    PQfinish(c);
    return -1;
  }
  PGresult *r = PQexecParams(c, "SELECT count(*) FROM " MP_PG_TABLE " WHERE run = $1", 1, NULL,
                             values, NULL, NULL, 0);
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
    n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
  } else {
    fprintf(stderr, "multiple_processes: cannot count the rows: %s\n",
            mp_pg_message(PQresultErrorMessage(r), err, sizeof err));
  }
  PQclear(r);
  PQfinish(c);
  return n;
}

int mp_pg_run(mp_ctx *ctx) {
  long ok = 0, failed = 0, expected = (long)ctx->processes * ctx->records;
  char failures[512], procs[WORDS_BUF], recs[WORDS_BUF];
  int version = 0;
  if (mp_pg_setup(ctx, &version) != 0) {
    return 1;
  }
  mp_log("postgres: %s x %s into PostgreSQL %d, task duration %g s; each record in its own "
         "transaction on its own connection (BEGIN; INSERT; task; COMMIT), a process's "
         "transactions open at once",
         words_count_of(procs, sizeof procs, (uint64_t)ctx->processes, "process", "processes"),
         words_count_of(recs, sizeof recs, (uint64_t)ctx->records, "record", "records"),
         version / 10000, ctx->task_duration);
  if (mp_run_children(ctx, mp_pg_child, &ok, &failed, failures, sizeof failures) != 0) {
    return 1;
  }
  long inserted = mp_pg_count(ctx);
  if (inserted < 0) {
    return 1;
  }
  if (inserted != ok) {
    mp_log("note: the processes reported %ld inserted, the database holds %ld", ok, inserted);
  }
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
    return 1;
  }
  mp_log("inserted %s of %s; none failed", words_count(landed, sizeof landed, (uint64_t)inserted),
         words_count_of(total, sizeof total, (uint64_t)expected, "record", "records"));
  return 0;
}

#endif
