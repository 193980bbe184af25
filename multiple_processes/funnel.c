/* funnel.c -- multiple_processes funnel mode: the processes stream their records over TCP to one
 * consumer, which is the database's only writer, so no process ever waits on its lock. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "error.h"
#include "mp.h"
#include "net.h"
#include "sender.h"
#include "sender_tcp.h"
#include "wire.h"
#include "words.h"

#define MP_STREAM "readings"
#define MP_NCOLS 5
/* How long to wait for the consumer to listen, to commit the last rows, and to exit. */
#define MP_LISTEN_WAIT_US 10000000u
#define MP_COMMIT_WAIT_US 5000000u
#define MP_EXIT_WAIT_US 10000000u

/* 127.0.0.1:port as a socket address. */
static void mp_loopback(struct sockaddr_in *a, int port) {
  memset(a, 0, sizeof *a);
  a->sin_family = AF_INET;
  a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a->sin_port = htons((uint16_t)port);
}

/* A TCP port on 127.0.0.1 that is free right now (the kernel picks it). Returns it, or 0. */
static int mp_free_port(void) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  int port = 0;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return 0;
  }
  mp_loopback(&a, 0);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

/* Is something listening on 127.0.0.1:port/tcp? Asked by trying to bind the port rather than
 * by connecting, so that a person's consumer does not count one connection more than there are
 * processes. Returns 1 when the port is taken, 0 when it is free (or cannot be told). */
static int mp_port_taken(int port) {
  struct sockaddr_in a;
  int one = 1, taken = 0;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return 0;
  }
  mp_loopback(&a, port);
  /* SO_REUSEADDR: a connection of an earlier run in TIME_WAIT does not make the port look taken;
   * a listening socket still does. */
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno == EADDRINUSE) {
    taken = 1;
  }
  close(fd);
  return taken;
}

/* How long a funnel process keeps trying to reach the consumer, and its window: the
 * producer's own TCP sender, so a process inherits acknowledged delivery (it returns only when
 * the consumer has committed its records, resending across a consumer restart). */
#define MP_FUNNEL_RETRY_S 30.0
#define MP_FUNNEL_WINDOW 65536

/* Connect the producer's TCP sender to 127.0.0.1:port and send the stream's HELLO. Returns the
 * sender (the caller closes it), or NULL with the reason in why. */
static sender *mp_funnel_open(const mp_ctx *ctx, const wire_msg *hello, char *why, size_t len) {
  sender *s = tcp_sender_new_acked(mp_stop_flag(), 0, MP_FUNNEL_RETRY_S, MP_FUNNEL_WINDOW);
  net_addrs addrs;
  if (s == NULL) {
    snprintf(why, len, "out of memory");
    return NULL;
  }
  if (net_resolve_all("127.0.0.1", ctx->port, SOCK_STREAM, &addrs, why, len) != 0 ||
      sender_open(s, &addrs, "127.0.0.1", why, len) != 0 ||
      s->ops->hello(s, hello, why, len) != 0) {
    s->ops->close(s);
    return NULL;
  }
  return s;
}

/* One process: HELLO, then for each record the task's work (no lock held anywhere) and a
 * RECORD, then END, and the consumer's acknowledgement of every record. The consumer does the
 * inserting. */
static int mp_funnel_child(const mp_ctx *ctx, int p, int result_fd) {
  static const char *const names[MP_NCOLS] = {"process", "record", "sensor", "celsius", "taken_at"};
  cs_field cols[MP_NCOLS];
  char why[512] = "";
  int sent = 0;
  sender *s;
  for (int i = 0; i < MP_NCOLS; i++) {
    cols[i].data = names[i];
    cols[i].len = strlen(names[i]);
  }
  wire_msg m;
  uint64_t key[WIRE_KEY_LEN / 8];
  for (size_t k = 0; k < sizeof key / sizeof key[0]; k++) {
    key[k] = mp_random64(); /* this child's session key: its stream is its own */
  }
  memset(&m, 0, sizeof m);
  m.producer_id = ctx->producer_ids[p - 1];
  m.key = (const unsigned char *)key;
  m.stream.data = MP_STREAM;
  m.stream.len = strlen(MP_STREAM);
  m.type = WIRE_HELLO;
  m.sent_us = clock_wall_us();
  m.nfields = MP_NCOLS;
  m.fields = cols;
  s = mp_funnel_open(ctx, &m, why, sizeof why);
  if (s == NULL) {
    goto fail;
  }
  for (int r = 1; r <= ctx->records; r++) {
    mp_reading rd;
    char pnum[16], rnum[16];
    /* The task's work happens here, before the record is handed over: nothing is locked. */
    if (ctx->task_duration > 0) {
      mp_log("process %d record %d: working for %g s (no lock held)", p, r, ctx->task_duration);
    }
    mp_sleep(ctx->task_duration);
    mp_reading_make(&rd, p, r);
    snprintf(pnum, sizeof pnum, "%d", p);
    snprintf(rnum, sizeof rnum, "%d", r);
    cs_field vals[MP_NCOLS] = {{pnum, strlen(pnum)},
                               {rnum, strlen(rnum)},
                               {rd.sensor, strlen(rd.sensor)},
                               {rd.celsius, strlen(rd.celsius)},
                               {rd.taken_at, strlen(rd.taken_at)}};
    m.type = WIRE_RECORD;
    m.seq = (uint64_t)r;
    m.line = (uint64_t)r + 1;
    m.sent_us = clock_wall_us();
    m.fields = vals;
    /* UINT64_MAX: no other record is due, so it is written at once. */
    if (s->ops->send(s, &m, UINT64_MAX, why, sizeof why) != 0) {
      goto fail;
    }
    mp_log("process %d record %d: sent to the consumer", p, r);
    mp_report(result_fd, p, r, NULL);
    sent++;
  }
  m.type = WIRE_END;
  m.seq = (uint64_t)ctx->records;
  m.line = 0;
  m.sent_us = clock_wall_us();
  m.nfields = 0;
  m.fields = NULL;
  if (s->ops->finish(s, &m, 0, why, sizeof why) != 0) {
    goto fail;
  }
  s->ops->close(s);
  return 0;

fail:
  for (int r = sent + 1; r <= ctx->records; r++) {
    mp_log("process %d record %d: FAILED: %s", p, r, why);
    mp_report(result_fd, p, r, why);
  }
  if (s != NULL) {
    s->ops->close(s);
  }
  return 1;
}

/* Rows of this run's producers in the consumer's table(s) for the stream ("readings", or
 * "readings_2" ... when an older table of that name has other columns). -1 on error, which is
 * printed unless quiet (polling while the consumer catches up). */
static long mp_funnel_count(const mp_ctx *ctx, int quiet) {
  sqlite3 *db = NULL;
  sqlite3_stmt *tables = NULL, *q = NULL;
  long total = 0;
  int rc;
  if (sqlite3_open_v2(ctx->db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
      sqlite3_busy_timeout(db, 2000) != SQLITE_OK ||
      sqlite3_prepare_v2(db,
                         "SELECT name FROM sqlite_master WHERE type = 'table' AND (name = ?1 OR "
                         "name GLOB ?1 || '_[0-9]*')",
                         -1, &tables, NULL) != SQLITE_OK ||
      sqlite3_bind_text(tables, 1, MP_STREAM, -1, SQLITE_STATIC) != SQLITE_OK) {
    goto fail;
  }
  while ((rc = sqlite3_step(tables)) == SQLITE_ROW) {
    char *sql = sqlite3_mprintf("SELECT count(*) FROM \"%w\" WHERE _producer = ?1",
                                (const char *)sqlite3_column_text(tables, 0));
    if (sql == NULL) {
      goto fail;
    }
    int prc = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
    sqlite3_free(sql);
    if (prc != SQLITE_OK) {
      continue; /* a table of that name that is not the consumer's */
    }
    for (int p = 0; p < ctx->processes; p++) {
      char pid[17];
      snprintf(pid, sizeof pid, "%016llx", (unsigned long long)ctx->producer_ids[p]);
      if (sqlite3_bind_text(q, 1, pid, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
          sqlite3_step(q) != SQLITE_ROW) {
        goto fail;
      }
      total += (long)sqlite3_column_int64(q, 0);
      sqlite3_reset(q);
    }
    sqlite3_finalize(q);
    q = NULL;
  }
  if (rc != SQLITE_DONE) {
    goto fail;
  }
  sqlite3_finalize(tables);
  sqlite3_close(db);
  return total;
fail:
  if (!quiet) {
    fprintf(stderr, "multiple_processes: cannot count rows in %s: %s\n", ctx->db,
            db ? sqlite3_errmsg(db) : "out of memory");
  }
  sqlite3_finalize(q);
  sqlite3_finalize(tables);
  sqlite3_close(db);
  return -1;
}

/* Has the child exited? Returns 1 (status stored), 0 (still running). */
static int mp_exited(pid_t pid, int *status) {
  pid_t r;
  do {
    r = waitpid(pid, status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  return r == pid || (r < 0 && errno == ECHILD);
}

/* Copy the consumer's log file at path to stderr, from the first line that starts with
 * marker (NULL: all of it). Returns 1 when something was copied, else 0. */
static int mp_consumer_log_copy(const char *path, const char *marker) {
  char line[4096];
  int copying = marker == NULL, copied = 0;
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    return 0;
  }
  while (fgets(line, sizeof line, f)) {
    if (!copying && strncmp(line, marker, strlen(marker)) == 0) {
      copying = 1;
    }
    if (copying) {
      fputs(line, stderr);
      copied = 1;
    }
  }
  fclose(f);
  fflush(stderr);
  return copied;
}

/* Does the consumer's log file at path hold the line saying it listens on port? */
static int mp_consumer_log_listening(const char *path, int port) {
  char line[4096], needle[64];
  int found = 0;
  snprintf(needle, sizeof needle, "listening on 127.0.0.1:%d/tcp", port);
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    return 0;
  }
  while (!found && fgets(line, sizeof line, f)) {
    found = strstr(line, needle) != NULL;
  }
  fclose(f);
  return found;
}

/* Start the consumer: `consumer --tcp --db FILE --out FILE.csv --port P`, its stderr and stdout
 * going to the log file log_path (truncated), and wait until that log says "listening on
 * 127.0.0.1:P/tcp" (its database and CSV copy are open by then). A file, not a pipe: nobody
 * has to keep draining it while the processes run, and a person can read it afterwards. The
 * program never connects to find out, which the consumer would count as one more connection
 * than there are processes. Its CSV copy goes next to the database, not to an out9.txt in the
 * current directory that may be someone's. Returns its pid, or -1 with the message printed
 * (and the consumer's own log copied to stderr). */
#define MP_PORT_ATTEMPTS 5

static pid_t mp_consumer_start(const mp_ctx *ctx, const char *log_path) {
  char port[16];
  char out[4096];
  snprintf(port, sizeof port, "%d", ctx->port);
  if (snprintf(out, sizeof out, "%s.csv", ctx->db) >= (int)sizeof out) {
    fprintf(stderr, "multiple_processes: --db: path too long\n");
    return -1;
  }
  char *const argv[] = {
      (char *)ctx->consumer, "--tcp", "--db", (char *)ctx->db, "--out", out, "--port", port, NULL};
  int log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    fprintf(stderr, "multiple_processes: cannot create the consumer's log %s: %s\n", log_path,
            strerror(errno));
    return -1;
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "multiple_processes: cannot start the consumer: %s\n", strerror(errno));
    close(log_fd);
    return -1;
  }
  if (pid == 0) {
    /* Its own process group: a Ctrl-C at the terminal reaches this program and its processes,
     * not the consumer, which this program stops with one SIGTERM once the processes are gone
     * (a second signal could land after the consumer's handlers are gone and kill it). Should
     * this program die without stopping it, the kernel sends the SIGTERM instead. */
    if (setpgid(0, 0) != 0 || prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent) {
      _exit(127);
    }
    /* dup2 leaves the new descriptor without O_CLOEXEC: the consumer keeps it as stderr, and
     * as stdout, where its summary goes, so that the log file holds the summary that
     * mp_consumer_log_copy shows (this program's own stdout stays its own). */
    if (dup2(log_fd, STDERR_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0) {
      _exit(127);
    }
    execv(ctx->consumer, argv);
    fprintf(stderr, "multiple_processes: cannot run the consumer %s: %s\n", ctx->consumer,
            strerror(errno));
    _exit(127);
  }
  close(log_fd);
  uint64_t deadline = clock_mono_us() + MP_LISTEN_WAIT_US;
  while (clock_mono_us() < deadline) {
    int status;
    /* Read the log before asking whether it exited: a consumer that listened and then died
     * still fails below, when the processes cannot connect. */
    if (mp_consumer_log_listening(log_path, ctx->port)) {
      return pid;
    }
    if (mp_stop_signal()) {
      /* Ctrl-C before it listened: stop it the clean way, the caller reports. */
      kill(pid, SIGTERM);
      while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
      }
      return -1;
    }
    if (mp_exited(pid, &status)) {
      mp_consumer_log_copy(log_path, NULL);
      fprintf(stderr,
              "multiple_processes: the consumer %s exited (status %d) before listening "
              "on 127.0.0.1:%d/tcp (its log: %s)\n",
              ctx->consumer, WIFEXITED(status) ? WEXITSTATUS(status) : -1, ctx->port, log_path);
      return -1;
    }
    mp_sleep(0.02);
  }
  kill(pid, SIGKILL);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
  }
  mp_consumer_log_copy(log_path, NULL);
  fprintf(stderr,
          "multiple_processes: the consumer did not say it was listening on 127.0.0.1:%d/tcp "
          "within %u s (its log: %s)\n",
          ctx->port, MP_LISTEN_WAIT_US / 1000000u, log_path);
  return -1;
}

/* SIGTERM the consumer (it drains, commits and exits) and wait for it. Returns its exit code,
 * or -1 when it had to be killed or died of a signal. */
static int mp_consumer_stop(pid_t pid) {
  int status = 0;
  if (kill(pid, SIGTERM) != 0 && errno != ESRCH) {
    fprintf(stderr, "multiple_processes: cannot stop the consumer: %s\n", strerror(errno));
  }
  uint64_t deadline = clock_mono_us() + MP_EXIT_WAIT_US;
  while (!mp_exited(pid, &status)) {
    if (clock_mono_us() > deadline) {
      fprintf(stderr,
              "multiple_processes: the consumer did not exit within %u s of SIGTERM; "
              "killing it\n",
              MP_EXIT_WAIT_US / 1000000u);
      kill(pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return -1;
    }
    mp_sleep(0.05);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The consumer next to this executable (bin/consumer), found through /proc/self/exe. */
static int mp_default_consumer(char *out, size_t len) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    return -1;
  }
  self[n] = '\0';
  char *slash = strrchr(self, '/');
  if (slash == NULL) {
    return -1;
  }
  *slash = '\0';
  int w = snprintf(out, len, "%s/consumer", self);
  return w > 0 && (size_t)w < len ? 0 : -1;
}

/* Before the run: find or pick the consumer and its port (--port names a consumer that may
 * already be running, a person's terminal 1: it is used as it is; otherwise one of ours is
 * started, on that port or a free one), name its log file and give each process its producer
 * id. consumer is the buffer for the default consumer's path. Returns 0, or 1 after saying
 * why. */
static int mp_funnel_prepare(mp_ctx *ctx, char *consumer, size_t consumer_len, char *log_path,
                             size_t log_len, int *running) {
  *running = ctx->port != 0 && mp_port_taken(ctx->port);
  if (!*running) {
    if (ctx->consumer == NULL) {
      if (mp_default_consumer(consumer, consumer_len) != 0) {
        fprintf(stderr, "multiple_processes: cannot locate this program through /proc/self/exe; "
                        "pass --consumer PATH\n");
        return 1;
      }
      ctx->consumer = consumer;
    }
    if (access(ctx->consumer, X_OK) != 0) {
      fprintf(stderr,
              "multiple_processes: cannot run the consumer %s: %s (build it, or pass "
              "--consumer PATH)\n",
              ctx->consumer, strerror(errno));
      return 1;
    }
    if (ctx->port == 0 && (ctx->port = mp_free_port()) == 0) {
      fprintf(stderr,
              "multiple_processes: cannot find a free TCP port on 127.0.0.1; pass --port\n");
      return 1;
    }
  }
  if (snprintf(log_path, log_len, "%s.consumer.log", ctx->db) >= (int)log_len) {
    fprintf(stderr, "multiple_processes: --db: path too long\n");
    return 1;
  }
  ctx->producer_ids = calloc((size_t)ctx->processes, sizeof *ctx->producer_ids);
  if (ctx->producer_ids == NULL) {
    fprintf(stderr, "multiple_processes: out of memory\n");
    return 1;
  }
  for (int p = 0; p < ctx->processes; p++) {
    ctx->producer_ids[p] = mp_random64();
  }
  return 0;
}

/* "3 processes x 2 records" into buf: what a run is, for its first line. Returns buf. */
static char *mp_funnel_plan(const mp_ctx *ctx, char *buf, size_t len) {
  char procs[WORDS_BUF], recs[WORDS_BUF];
  snprintf(buf, len, "%s x %s",
           words_count_of(procs, sizeof procs, (uint64_t)ctx->processes, "process", "processes"),
           words_count_of(recs, sizeof recs, (uint64_t)ctx->records, "record", "records"));
  return buf;
}

/* Start our own consumer on ctx->port, trying other free ports when the one we picked was
 * taken meanwhile (port_is_ours). Returns its pid, or -1 (said why). */
static pid_t mp_funnel_start_consumer(mp_ctx *ctx, const char *log_path, int port_is_ours) {
  pid_t cpid;
  char plan[2 * WORDS_BUF + 4];
  mp_log("funnel: %s, task duration %g s; they stream to one consumer (%s on 127.0.0.1:%d/tcp), "
         "the only writer of %s",
         mp_funnel_plan(ctx, plan, sizeof plan), ctx->task_duration, ctx->consumer, ctx->port,
         ctx->db);
  cpid = mp_consumer_start(ctx, log_path);
  /* A port we picked can be taken by another program between our check and the consumer's
   * bind ("address already in use"): pick another and try again, a few times. */
  for (int attempt = 1; cpid < 0 && port_is_ours && attempt < MP_PORT_ATTEMPTS && !mp_stop_signal();
       attempt++) {
    if ((ctx->port = mp_free_port()) == 0) {
      break;
    }
    mp_log("trying the consumer on another free port, %d", ctx->port);
    cpid = mp_consumer_start(ctx, log_path);
  }
  if (cpid >= 0) {
    mp_log("consumer started (pid %ld), listening on 127.0.0.1:%d/tcp", (long)cpid, ctx->port);
  }
  return cpid;
}

/* After the processes: count what landed and say so. status: our consumer's exit status (0
 * for a running one). Returns the exit code. */
static int mp_funnel_verdict(mp_ctx *ctx, int running, long expected, long failed,
                             const char *failures, int status) {
  long inserted = mp_funnel_count(ctx, 0);
  if (inserted < 0) {
    if (running) {
      fprintf(stderr,
              "multiple_processes: is the consumer on port %d writing to %s? (start it "
              "with --db %s)\n",
              ctx->port, ctx->db, ctx->db);
    }
    return 1;
  }
  /* Ctrl-C: the processes were stopped, and our consumer committed what it had received. */
  if (mp_stop_signal()) {
    return mp_stop_summary(inserted, expected, failed, failures);
  }
  char landed[WORDS_BUF], total[WORDS_BUF], failed_n[WORDS_BUF];
  words_count(landed, sizeof landed, (uint64_t)inserted);
  words_count_of(total, sizeof total, (uint64_t)expected, "record", "records");
  if (inserted < expected) {
    mp_log("inserted %s of %s; %s failed: %s", landed, total,
           words_count(failed_n, sizeof failed_n, (uint64_t)(expected - inserted)),
           failures[0] ? failures
           : running   ? "sent but not in the database (is the running consumer writing "
                         "to this --db file?)"
                       : "sent but not in the database");
  } else {
    mp_log("inserted %s of %s; none failed, and no process waited on a lock", landed, total);
  }
  return inserted == expected && status == 0 ? 0 : 1;
}

int mp_funnel_run(mp_ctx *ctx) {
  char consumer[PATH_MAX];
  char log_path[PATH_MAX + 32];
  char failures[512];
  long ok = 0, failed = 0;
  long expected = (long)ctx->processes * ctx->records;
  int code = 1, running = 0, status = 0;
  int port_is_ours = ctx->port == 0;
  pid_t cpid = -1;

  failures[0] = '\0';
  if (mp_funnel_prepare(ctx, consumer, sizeof consumer, log_path, sizeof log_path, &running) != 0) {
    goto done;
  }
  if (running) {
    char plan[2 * WORDS_BUF + 4];
    mp_log("funnel: %s, task duration %g s; they stream to the consumer already listening on "
           "127.0.0.1:%d/tcp, which must be the only writer of %s (started with --db %s)",
           mp_funnel_plan(ctx, plan, sizeof plan), ctx->task_duration, ctx->port, ctx->db, ctx->db);
  } else if ((cpid = mp_funnel_start_consumer(ctx, log_path, port_is_ours)) < 0) {
    if (mp_stop_signal()) {
      code = mp_stop_summary(0, expected, 0, NULL);
    }
    goto done;
  }
  if (mp_run_children(ctx, mp_funnel_child, &ok, &failed, failures, sizeof failures) != 0) {
    goto done;
  }

  /* The consumer commits within about 100 ms; wait for the rows before asking it to stop, so
   * that the count below does not depend on how fast it drains at shutdown. After Ctrl-C our
   * own consumer is stopped at once (SIGTERM makes it commit what it has); a running one is
   * still waited for, as it is not ours to stop. */
  uint64_t deadline = clock_mono_us() + MP_COMMIT_WAIT_US;
  while (!(mp_stop_signal() && !running) && mp_funnel_count(ctx, 1) < ok &&
         clock_mono_us() < deadline) {
    mp_sleep(0.1);
  }
  if (!running) {
    status = mp_consumer_stop(cpid);
    cpid = -1;
    /* The consumer's own summary (what it received, the connections, the rows it committed)
     * stays in front of the person, as when it wrote to this terminal. */
    mp_consumer_log_copy(log_path, "consumer summary");
    if (status != 0) {
      fprintf(stderr, "multiple_processes: the consumer exited with status %d (its log: %s)\n",
              status, log_path);
    } else {
      mp_log("consumer stopped; its log: %s", log_path);
    }
  }
  code = mp_funnel_verdict(ctx, running, expected, failed, failures, status);

done:
  if (cpid > 0) {
    mp_consumer_stop(cpid);
  }
  free(ctx->producer_ids);
  ctx->producer_ids = NULL;
  if (ctx->consumer == consumer) {
    ctx->consumer = NULL;
  }
  return code;
}
