/* mp.h -- multiple_processes: the course's shared-database lesson (naive, safe, funnel) in C. */
#ifndef CSVSTREAM_MP_H
#define CSVSTREAM_MP_H

#include <stddef.h>
#include <signal.h>
#include <stdint.h>

enum mp_mode { MP_NAIVE = 0, MP_SAFE = 1, MP_FUNNEL = 2, MP_POSTGRES = 3 };

/* The program's context: options, then what the run learns. */
typedef struct mp_ctx {
  int processes;          /* --processes */
  int records;            /* --records, per process */
  double task_duration;   /* --task-duration, seconds */
  const char *db;         /* --db */
  int mode;               /* enum mp_mode */
  const char *consumer;   /* --consumer, NULL = next to this executable */
  int port;               /* --port (funnel), 0 = pick a free one */
  uint64_t run_id;        /* tells this run's rows apart from earlier runs in the same file */
  uint64_t *producer_ids; /* funnel: one per process, owned */
} mp_ctx;

/* What one child reports to the parent for one record (written whole to a pipe: atomic). */
typedef struct mp_result {
  int process;
  int record;
  int ok;
  char error[112]; /* the failure's message when !ok */
} mp_result;

/* The made-up data: the reading a process takes for one record. */
typedef struct mp_reading {
  char sensor[32];
  char celsius[16];
  char taken_at[32];
} mp_reading;

/* Print one timestamped line to stdout ("2026-11-29 21:04:05.123 message"), written with one
 * write() so that lines of concurrent processes never interleave. */
void mp_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Sleep for the given number of seconds (EINTR is retried). */
void mp_sleep(double seconds);

/* A random 64-bit number from the OS (falls back to time and pid). */
uint64_t mp_random64(void);

/* Fill the reading process `p` takes for record `r`. */
void mp_reading_make(mp_reading *out, int p, int r);

/* Send one record's outcome (error NULL: done) from child process p to the parent over fd, in
 * one write (an mp_result is smaller than PIPE_BUF, so reports of several children never
 * interleave). A failure to report is printed to stderr. */
void mp_report(int fd, int p, int r, const char *error);

/* One child's work for process number p (1-based); results go to the fd result_fd.
 * Returns the child's exit code. */
typedef int (*mp_child_fn)(const mp_ctx *ctx, int p, int result_fd);

/* Fork ctx->processes children that start together (a pipe barrier), run fn in each, collect
 * their results and wait for them. On SIGINT or SIGTERM (mp_stop_signal) the signal is
 * forwarded to the children, which die of it, and what they reported until then is kept.
 * *reported_ok counts the records children reported as done; the failure messages are summarised
 * into failures (e.g. "database is locked" or "database is locked (2), disk I/O error (1)").
 * Returns 0, or -1 when a child could not be started or collected (message printed). */
int mp_run_children(const mp_ctx *ctx, mp_child_fn fn, long *reported_ok, long *failed,
                    char *failures, size_t failures_len);

/* Catch SIGINT and SIGTERM: the run stops, the program does not (stop.c). Returns 0, or -1
 * with the message printed. */
int mp_stop_init(void);

/* The first SIGINT or SIGTERM received, or 0. */
int mp_stop_signal(void);

/* The flag mp_stop_signal reads, for code that watches it while it waits (the producer's TCP
 * sender in a funnel process). */
const volatile sig_atomic_t *mp_stop_flag(void);

/* A descriptor that becomes readable when a signal arrives, for poll(); emptied by each call.
 * -1 before mp_stop_init. */
int mp_stop_fd(void);

/* In a forked worker: SIGINT and SIGTERM kill it again (SIG_DFL), the parent's pipe is closed. */
void mp_stop_child(void);

/* Log the summary of an interrupted run ("interrupted: inserted 2 of 6 records; ...") and return
 * the exit code, 128 + the signal (130 for SIGINT, 143 for SIGTERM). */
int mp_stop_summary(long inserted, long expected, long failed, const char *failures);

/* naive and safe: every process opens the database itself. Returns the exit code. */
int mp_direct_run(mp_ctx *ctx);

/* postgres: every process writes PostgreSQL itself (--db is a libpq URI or keyword string).
 * Returns the exit code. */
int mp_pg_run(mp_ctx *ctx);

/* funnel: every process streams to one consumer, the only writer. Returns the exit code. */
int mp_funnel_run(mp_ctx *ctx);

#endif
