/* main.c -- the producer program: parse options, set up signals, run, report, exit. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "log.h"
#include "producer_options.h"
#include "producer.h"
#include "summary.h"

/* The first of SIGINT/SIGTERM that came (its number; 0: none). The only file-level mutable
 * state, since a handler needs it. */
static volatile sig_atomic_t stop_requested;

/* Remember which signal asked for the stop; a second one changes nothing. */
static void on_stop_signal(int sig) {
  if (stop_requested == 0) {
    stop_requested = sig;
  }
}

/* producer_run returns 130 when a signal stopped it (producer.h); the shell's convention
 * is 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM. */
static int exit_code_for(int code) {
  if (code == 130 && stop_requested != 0) {
    return 128 + stop_requested;
  }
  return code;
}

/* SIGINT/SIGTERM set the stop flag without SA_RESTART, so sleeps and polls wake at once;
 * SIGPIPE is ignored so a broken connection comes back as EPIPE. */
static int install_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) {
    return -1;
  }
  sa.sa_handler = SIG_IGN;
  return sigaction(SIGPIPE, &sa, NULL);
}

/* The summary: a result, so to standard output, unless --stats-json - puts the JSON there;
 * then to standard error. Nothing to sum up when the file or the connection failed at once
 * (the caller checks): that error says it. Returns 0, or 1 when it could not be written (a
 * closed stdout). */
static int producer_main_summary(const producer *p) {
  FILE *out = json_path_is_stdout(p->opt->stats_json) ? stderr : stdout;
  if (summary_print(p, out) != 0) {
    log_error("cannot write the summary to %s: %s",
              out == stdout ? "standard output" : "standard error", strerror(errno));
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  producer_options opt;
  producer p;
  char err[512];
  int rc, code;

  rc = producer_options_parse(&opt, argc, argv, err, sizeof err);
  if (rc == PRODUCER_OPTIONS_EXIT) {
    return 0;
  }
  if (rc != PRODUCER_OPTIONS_RUN) {
    fprintf(stderr, "producer: %s\nTry 'producer --help' for more information.\n", err);
    return 2;
  }
  /* A --stats-json path that cannot be written is found now, before anything is sent, not
   * after the whole run. */
  if (opt.stats_json != NULL && json_file_check(opt.stats_json, err, sizeof err) != 0) {
    fprintf(stderr, "producer: --stats-json: %s\n", err);
    return 2;
  }
  log_init("producer", opt.quiet ? LOG_WARN : LOG_INFO);
  if (install_signals() != 0) {
    log_error("cannot install the signal handlers");
    return 1;
  }
  if (producer_init(&p, &opt, &stop_requested, err, sizeof err) != 0) {
    log_error("%s", err);
    producer_free(&p);
    return 1;
  }
  code = producer_run(&p);
  if (p.sender_open && producer_main_summary(&p) != 0 && code == 0) {
    code = 1;
  }
  if (opt.stats_json != NULL && summary_write_json(&p, opt.stats_json, err, sizeof err) != 0) {
    log_error("--stats-json: %s", err);
    if (code == 0) {
      code = 1;
    }
  }
  producer_free(&p);
  return exit_code_for(code);
}
