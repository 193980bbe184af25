/* options.h -- the producer's command line: flags, defaults, range checks, --help text. */
#ifndef PRODUCER_OPTIONS_H
#define PRODUCER_OPTIONS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "impair.h"

typedef struct prod_options {
  int udp;                           /* 0: TCP (default), 1: UDP */
  const char *host;                  /* default 127.0.0.1 */
  int port;                          /* default 9999 */
  double interval_min, interval_max; /* seconds; 0-0 is unpaced; default 1-3 */
  double rate;                       /* records a second; 0 unless --rate */
  uint64_t count;                    /* stop after this many sequence numbers; 0: no limit */
  int loop;
  int have_seed;
  uint64_t seed;
  const char *stream; /* --stream, or NULL for the file's base name */
  int no_header;
  int quiet;
  const char *stats_json; /* NULL unless --stats-json */
  int impair_on;
  impair_params impair;
  const char *path; /* FILE.csv or "-" */
} prod_options;

enum options_result {
  OPTIONS_RUN = 0, /* go on and stream */
  OPTIONS_EXIT = 1 /* --help or --version was printed: exit 0 */
};

/* Parse argv into o (argv must outlive o). Returns OPTIONS_RUN, OPTIONS_EXIT, or CS_EINVAL
 * with a message naming the flag in err (the caller prints it and exits 2). */
int options_parse(prod_options *o, int argc, char **argv, char *err, size_t errlen);

/* The --help text. */
void options_usage(FILE *f);

#endif
