/* main.c -- the consumer program: parse the options, build the consumer, run its loop. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "log.h"
#include "loop.h"
#include "options.h"

/* "-" is standard output for --out and --stats-json, but not for both at once (the JSON would
 * land after the CSV in one stream), and never for --db: SQLite cannot write a database to a
 * stream, and a file named "-" is what nobody means. Returns 0, or 2 with the message printed. */
static int consumer_main_check_stdout(const consumer_options *opt) {
  const char *why = NULL;
  if (opt->db_path != NULL && strcmp(opt->db_path, "-") == 0) {
    why = "--db: a database cannot be standard output (-); name a file";
  } else if (strcmp(opt->out_path, "-") == 0 && json_path_is_stdout(opt->stats_json)) {
    why = "--out - and --stats-json - cannot both write to standard output; name a file for one";
  }
  if (why != NULL) {
    fprintf(stderr, "consumer: %s\n", why);
    return 2;
  }
  return 0;
}

int main(int argc, char **argv) {
  consumer_options opt;
  consumer *c;
  char err[512];
  int rc;

  rc = consumer_options_parse(&opt, argc, argv, isatty(STDERR_FILENO), err, sizeof(err));
  if (rc == CONSUMER_OPTIONS_DONE) {
    return 0;
  }
  if (rc != CONSUMER_OPTIONS_RUN) {
    fprintf(stderr, "consumer: %s\n", err);
    return 2;
  }
  if (consumer_main_check_stdout(&opt) != 0) {
    return 2;
  }
  /* A --stats-json file that cannot be written is a usage error, found now rather than
   * after the run. */
  if (opt.stats_json != NULL && json_file_check(opt.stats_json, err, sizeof(err)) != 0) {
    fprintf(stderr, "consumer: --stats-json: %s\n", err);
    return 2;
  }
  log_init("consumer", opt.quiet ? LOG_WARN : LOG_INFO);
  signal(SIGPIPE, SIG_IGN); /* a broken connection comes back as EPIPE, not a dead process */

  rc = loop_new(&c, &opt) == 0 ? loop_run(c) : 1;
  loop_free(c);
  return rc;
}
