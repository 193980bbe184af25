/* children.c -- multiple_processes: the made-up readings, and forking the worker processes so
 * that they start together and report back to the parent. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "mp.h"

/* Most distinct failure messages kept for the summary. */
#define MP_MAX_REASONS 8

void mp_sleep(double seconds) {
  if (seconds <= 0) {
    return;
  }
  clock_sleep_until(clock_mono_us() + (uint64_t)(seconds * 1e6), NULL);
}

uint64_t mp_random64(void) {
  uint64_t v;
  ssize_t n;
  do {
    n = getrandom(&v, sizeof v, 0);
  } while (n < 0 && errno == EINTR);
  if (n != (ssize_t)sizeof v) {
    v = clock_wall_us() * 6364136223846793005ull ^ (uint64_t)getpid();
  }
  return v;
}

void mp_reading_make(mp_reading *out, int p, int r) {
  /* A made-up sensor per process, and a temperature that wanders with the record number. */
  snprintf(out->sensor, sizeof out->sensor, "sensor-%02d", p);
  int tenths = 180 + (p * 37 + r * 11) % 90;
  snprintf(out->celsius, sizeof out->celsius, "%d.%d", tenths / 10, tenths % 10);
  clock_format(clock_wall_us(), out->taken_at, sizeof out->taken_at);
}

void mp_report(int fd, int p, int r, const char *error) {
  mp_result res;
  memset(&res, 0, sizeof res);
  res.process = p;
  res.record = r;
  res.ok = error == NULL;
  if (error) {
    snprintf(res.error, sizeof res.error, "%s", error);
  }
  ssize_t w;
  do {
    w = write(fd, &res, sizeof res);
  } while (w < 0 && errno == EINTR);
  if (w != (ssize_t)sizeof res) {
    fprintf(stderr, "multiple_processes: process %d cannot report to the parent: %s\n", p,
            w < 0 ? strerror(errno) : "short write");
  }
}

/* Read exactly len bytes unless EOF comes first. Returns bytes read, or -1 on error. */
static ssize_t mp_read_full(int fd, void *buf, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = read(fd, (char *)buf + off, len - off);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return -1;
    }
    if (n == 0) {
      break;
    }
    off += (size_t)n;
  }
  return (ssize_t)off;
}

/* Add one failure message to the tally; past MP_MAX_REASONS - 1 distinct messages the rest are
 * counted together as "other errors". */
static void mp_tally(char reasons[][112], long *counts, int *nreasons, const char *msg) {
  int i;
  for (i = 0; i < *nreasons; i++) {
    if (strcmp(reasons[i], msg) == 0) {
      counts[i]++;
      return;
    }
  }
  if (*nreasons < MP_MAX_REASONS - 1) {
    i = (*nreasons)++;
    snprintf(reasons[i], 112, "%s", msg);
  } else {
    i = MP_MAX_REASONS - 1;
    if (*nreasons < MP_MAX_REASONS) {
      (*nreasons)++;
      snprintf(reasons[i], 112, "other errors");
    }
  }
  counts[i]++;
}

int mp_run_children(const mp_ctx *ctx, mp_child_fn fn, long *reported_ok, long *failed,
                    char *failures, size_t failures_len) {
  int barrier[2] = {-1, -1}, results[2] = {-1, -1};
  pid_t *pids = NULL;
  int started = 0, released = 0, rc = -1;
  char reasons[MP_MAX_REASONS][112];
  long counts[MP_MAX_REASONS] = {0};
  int nreasons = 0;

  *reported_ok = 0;
  *failed = 0;
  failures[0] = '\0';
  pids = calloc((size_t)ctx->processes, sizeof *pids);
  if (pids == NULL) {
    fprintf(stderr, "multiple_processes: out of memory\n");
    goto done;
  }
  if (pipe2(barrier, O_CLOEXEC) != 0 || pipe2(results, O_CLOEXEC) != 0) {
    fprintf(stderr, "multiple_processes: cannot create a pipe: %s\n", strerror(errno));
    goto done;
  }
  /* SIGINT and SIGTERM are held back while forking: a child must not run the parent's handler
   * before it has put back the default action, and the parent sees them once the loop ends. */
  sigset_t stop_set, old_set;
  sigemptyset(&stop_set);
  sigaddset(&stop_set, SIGINT);
  sigaddset(&stop_set, SIGTERM);
  sigprocmask(SIG_BLOCK, &stop_set, &old_set);
  for (int p = 1; p <= ctx->processes; p++) {
    pid_t pid = fork();
    if (pid < 0) {
      fprintf(stderr, "multiple_processes: cannot start process %d: %s\n", p, strerror(errno));
      sigprocmask(SIG_SETMASK, &old_set, NULL);
      goto done;
    }
    if (pid == 0) {
      /* Child: wait at the barrier (read returns 0 when the parent closes its end), then work. */
      char c;
      mp_stop_child();
      sigprocmask(SIG_SETMASK, &old_set, NULL);
      close(barrier[1]);
      close(results[0]);
      while (read(barrier[0], &c, 1) < 0 && errno == EINTR) {
      }
      close(barrier[0]);
      _exit(fn(ctx, p, results[1]));
    }
    pids[started++] = pid;
  }
  sigprocmask(SIG_SETMASK, &old_set, NULL);
  /* Release every child at once. */
  close(barrier[1]);
  barrier[1] = -1;
  released = 1;
  close(results[1]);
  results[1] = -1;

  /* Collect until every child has closed its end. A signal wakes the poll: it is forwarded
   * once, the children die of it, and their results pipe closes. */
  mp_result r;
  ssize_t n = 0;
  int forwarded = 0;
  for (;;) {
    struct pollfd fds[2] = {{results[0], POLLIN, 0}, {mp_stop_fd(), POLLIN, 0}};
    int signo = mp_stop_signal();
    if (signo && !forwarded) {
      forwarded = 1;
      mp_log("%s: stopping the processes", signo == SIGTERM ? "SIGTERM" : "SIGINT");
      for (int i = 0; i < started; i++) {
        kill(pids[i], signo);
      }
    }
    if (poll(fds, fds[1].fd >= 0 ? 2 : 1, -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      fprintf(stderr, "multiple_processes: waiting for results: %s\n", strerror(errno));
      break;
    }
    if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      continue;
    }
    /* A report is written whole (smaller than PIPE_BUF), so this read does not wait long. */
    if ((n = mp_read_full(results[0], &r, sizeof r)) != (ssize_t)sizeof r) {
      break;
    }
    if (r.ok) {
      (*reported_ok)++;
    } else {
      (*failed)++;
      r.error[sizeof r.error - 1] = '\0';
      mp_tally(reasons, counts, &nreasons, r.error);
    }
  }
  if (n < 0) {
    fprintf(stderr, "multiple_processes: reading results: %s\n", strerror(errno));
  }
  /* A Ctrl-C at the terminal reaches the children too: they can be gone before the loop saw
   * the parent's signal. Say it all the same. */
  if (mp_stop_signal() && !forwarded) {
    mp_log("%s: stopping the processes", mp_stop_signal() == SIGTERM ? "SIGTERM" : "SIGINT");
  }
  rc = 0;

done:
  /* Children already forked are always waited for, also on the failure path, where the ones
   * still held at the barrier are stopped before they could start. */
  if (!released) {
    for (int i = 0; i < started; i++) {
      kill(pids[i], SIGKILL);
    }
  }
  if (barrier[1] >= 0) {
    close(barrier[1]);
  }
  if (results[1] >= 0) {
    close(results[1]);
  }
  for (int i = 0; i < started; i++) {
    int status;
    while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (barrier[0] >= 0) {
    close(barrier[0]);
  }
  if (results[0] >= 0) {
    close(results[0]);
  }
  free(pids);
  size_t off = 0;
  for (int i = 0; i < nreasons && off < failures_len; i++) {
    int w;
    if (nreasons == 1) {
      w = snprintf(failures + off, failures_len - off, "%s", reasons[i]);
    } else {
      w = snprintf(failures + off, failures_len - off, "%s%s (%ld)", i ? ", " : "", reasons[i],
                   counts[i]);
    }
    if (w < 0) {
      break;
    }
    off += (size_t)w;
  }
  return rc;
}
