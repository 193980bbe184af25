/* options.h -- the consumer's command line: flags, defaults and their range checks. */
#ifndef CSVSTREAM_CONSUMER_OPTIONS_H
#define CSVSTREAM_CONSUMER_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#define CONSUMER_MAX_MEMORY_DEFAULT (64ull << 20)
#define CONSUMER_STREAM_IDLE_DEFAULT_S 60

typedef struct consumer_options {
  int tcp;                /* listen on TCP */
  int udp;                /* listen on UDP */
  const char *host;       /* address to bind, default 127.0.0.1 */
  int port;               /* default 9999 */
  const char *out_path;   /* default out9.txt */
  const char *db_path;    /* NULL: no database */
  double stats_interval;  /* seconds between live lines; 0: off */
  const char *stats_json; /* NULL: none */
  uint64_t max_records;   /* 0: no limit */
  long long rcvbuf;       /* UDP receive buffer wanted; 0: the default request */
  int rcvbuf_given;       /* --rcvbuf was given (warn when the kernel caps it) */
  int quiet;
  uint64_t max_memory;     /* --max-memory: what peers may make the consumer hold, bytes */
  uint64_t stream_idle_us; /* --stream-idle: a stream without frames this long is retired */
  int fsync; /* --fsync: acknowledge only what survives a power loss (fdatasync, synchronous=FULL)
              */
  int plain_port;       /* --plain-port: plain CSV text on this port too (TCP and UDP); 0: off */
  int plain_no_header;  /* --plain-no-header: a plain TCP stream's first record is data */
  int http_port;        /* --http [HOST:]PORT: metrics and the live page; 0: off */
  char http_host[256];  /* its address (127.0.0.1 when only a port is given) */
  int stats_json_lines; /* --stats-format json: the --stats line is one JSON object */
} consumer_options;

/* What consumer_options_parse asks the caller to do next. */
enum consumer_options_result {
  CONSUMER_OPTIONS_RUN = 0,  /* options are valid: run the consumer */
  CONSUMER_OPTIONS_DONE = 1, /* --help or --version was printed: exit 0 */
  CONSUMER_OPTIONS_USAGE = 2 /* a usage error, described in err: exit 2 */
};

/* Parse argv into o (the strings point into argv). stderr_is_tty picks the --stats default.
 * Returns an enum consumer_options_result; on CONSUMER_OPTIONS_USAGE err names the flag and
 * what is wrong. */
int consumer_options_parse(consumer_options *o, int argc, char **argv, int stderr_is_tty, char *err,
                           size_t errlen);

/* 1 if a --db value names a PostgreSQL database (a libpq URI starting with postgresql:// or
 * postgres://, or a keyword string: it contains '='), 0 if it is an SQLite file. */
int consumer_options_db_is_postgres(const char *db);

/* Print the --help text to stdout. */
void consumer_options_usage(void);

#endif
