/* producer_options.h -- the producer's command line: flags, defaults, range checks, --help text. */
#ifndef PRODUCER_PRODUCER_OPTIONS_H
#define PRODUCER_PRODUCER_OPTIONS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "impair.h"

typedef struct producer_options {
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
  /* Acknowledged delivery (TCP): how long to keep reconnecting without progress (seconds; 0:
   * fail at once; PRODUCER_RETRY_FOREVER), and how many records may wait for their ack. */
  double retry_s;
  uint64_t window;
  /* --resume: a stable producer identity (from --id, else the host name and the stream name),
   * and the stream goes on after the last record the consumer has. */
  int resume;
  const char *id; /* --id NAME, or NULL */
  /* --loop=N: N passes over the file (loop is then 1); 0 with a bare --loop: for ever. */
  uint64_t loop_passes;
  /* The input's dialect and encoding (csvin_dialect): --delimiter (',' by default; auto:
   * sniffed), --encoding (NULL: UTF-8 as it is; "auto"; an iconv name), --skip-lines N,
   * --comment CHAR (0: none). */
  char delimiter;
  int delimiter_auto;
  const char *encoding;
  uint64_t skip_lines;
  char comment;
  /* Replay on the file's clock: --timestamps COLUMN (a name of the header, or a 1-based
   * number), --speed X (gaps divided by X; 0: unpaced; default 1), --max-gap SECONDS (the
   * longest wait between two records after --speed; 0: no cap). */
  const char *timestamps;
  double speed;
  double max_gap_s;
  /* --format csv: plain CSV text (a header line, then RFC 4180 records; over UDP one record a
   * datagram) for any listener, instead of the csvstream protocol: no acks, no accounting. */
  int format_csv;
} producer_options;

#define PRODUCER_RETRY_DEFAULT_S 30.0
#define PRODUCER_RETRY_FOREVER (-1.0)
/* Records sent and not yet acknowledged, at most (and PRODUCER_WINDOW_BYTES of them): the
 * producer waits for acks beyond that. */
#define PRODUCER_WINDOW_DEFAULT 262144
#define PRODUCER_WINDOW_BYTES (64u << 20)

enum producer_options_result {
  PRODUCER_OPTIONS_RUN = 0, /* go on and stream */
  PRODUCER_OPTIONS_EXIT = 1 /* --help or --version was printed: exit 0 */
};

/* Parse argv into o (argv must outlive o). Returns PRODUCER_OPTIONS_RUN, PRODUCER_OPTIONS_EXIT, or
 * CS_EINVAL with a message naming the flag in err (the caller prints it and exits 2). */
int producer_options_parse(producer_options *o, int argc, char **argv, char *err, size_t errlen);

/* The --help text. */
void producer_options_usage(FILE *f);

#endif
