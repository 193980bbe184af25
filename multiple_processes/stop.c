/* stop.c -- multiple_processes: SIGINT and SIGTERM stop the run, not the program: the parent
 * notes the signal, stops its processes and prints what landed. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mp.h"
#include "words.h"

/* The one exception to "no file-level mutable state": a signal handler reaches nothing else.
 * The signal received (0: none yet), and the pipe the handler writes a byte to, so that a
 * parent waiting in poll() wakes up (a flag alone can be set just before poll blocks). */
static volatile sig_atomic_t mp_stop_signo;
static int mp_stop_pipe[2] = {-1, -1};

/* SIGINT/SIGTERM handler: remember the first signal and wake the parent. */
static void mp_stop_handler(int signo) {
  int saved = errno;
  if (mp_stop_signo == 0) {
    mp_stop_signo = signo;
  }
  if (mp_stop_pipe[1] >= 0) {
    (void)!write(mp_stop_pipe[1], "x", 1);
  }
  errno = saved;
}

int mp_stop_init(void) {
  struct sigaction sa;
  if (pipe2(mp_stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    fprintf(stderr, "multiple_processes: cannot create a pipe: %s\n", strerror(errno));
    return -1;
  }
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = mp_stop_handler;
  sigemptyset(&sa.sa_mask);
  /* No SA_RESTART: a blocking call in the parent comes back with EINTR and the loop looks. */
  sa.sa_flags = 0;
  if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) {
    fprintf(stderr, "multiple_processes: cannot catch SIGINT and SIGTERM: %s\n", strerror(errno));
    return -1;
  }
  return 0;
}

const volatile sig_atomic_t *mp_stop_flag(void) {
  return &mp_stop_signo;
}

int mp_stop_signal(void) {
  return (int)mp_stop_signo;
}

int mp_stop_fd(void) {
  char drain[64];
  /* Empty the pipe, so that poll() wakes for a new signal only. */
  while (mp_stop_pipe[0] >= 0 && read(mp_stop_pipe[0], drain, sizeof drain) > 0) {
  }
  return mp_stop_pipe[0];
}

void mp_stop_child(void) {
  /* A worker process dies of the signal the parent forwards: what it had not committed (or
   * sent) is not reported, so the parent's count stays the truth. */
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  if (mp_stop_pipe[0] >= 0) {
    close(mp_stop_pipe[0]);
  }
  if (mp_stop_pipe[1] >= 0) {
    close(mp_stop_pipe[1]);
  }
  mp_stop_pipe[0] = mp_stop_pipe[1] = -1;
}

int mp_stop_summary(long inserted, long expected, long failed, const char *failures) {
  int signo = mp_stop_signal();
  const char *name = signo == SIGTERM ? "SIGTERM" : "SIGINT";
  long not_done = expected - inserted - failed;
  char failed_part[600] = "";
  if (not_done < 0) {
    not_done = 0;
  }
  if (failed > 0) {
    char n[WORDS_BUF];
    snprintf(failed_part, sizeof failed_part, "%s failed: %s; ",
             words_count(n, sizeof n, (uint64_t)failed),
             failures && failures[0] ? failures : "unknown");
  }
  char landed[WORDS_BUF], total[WORDS_BUF], left[WORDS_BUF];
  mp_log("interrupted: inserted %s of %s; %s%s not done (%s stopped the run)",
         words_count(landed, sizeof landed, (uint64_t)inserted),
         words_count_of(total, sizeof total, (uint64_t)expected, "record", "records"), failed_part,
         words_count(left, sizeof left, (uint64_t)not_done), name);
  return 128 + (signo ? signo : SIGINT);
}
