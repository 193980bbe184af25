/* options.c -- the consumer's command line: getopt_long, defaults, range-checked values. */
#include "options.h"

#include <getopt.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>
#ifdef CSVSTREAM_HAVE_LIBPQ
#include <libpq-fe.h>
#endif

#include "error.h"
#include "http.h"
#include "opt.h"

/* Options with a short form use its letter as their value (the same letter means the same thing
 * in all three programs: README); the others count from 1000, past every letter. */
enum {
  OPT_TCP = 't',
  OPT_UDP = 'u',
  OPT_HOST = 'H',
  OPT_PORT = 'p',
  OPT_OUT = 'o',
  OPT_DB = 'd',
  OPT_QUIET = 'q',
  OPT_HELP = 'h',
  OPT_VERSION = 'V',
  OPT_STATS = 1000,
  OPT_STATS_JSON,
  OPT_MAX_RECORDS,
  OPT_RCVBUF,
  OPT_FSYNC,
  OPT_MAX_MEMORY,
  OPT_STREAM_IDLE,
  OPT_PLAIN_PORT,
  OPT_PLAIN_NO_HEADER,
  OPT_HTTP,
  OPT_STATS_FORMAT
};

/* The short options; ':' first so that a missing value is told apart from an unknown option. */
static const char consumer_shortopts[] = ":tuH:p:o:d:qhV";

/* Print the --help text to stdout. */
void consumer_options_usage(void) {
  fputs("Usage: consumer [-t | -u] [-H HOST] [-p PORT] [-o FILE] [-d FILE]\n"
        "                [--stats SECONDS] [--stats-json FILE] [--max-records N]\n"
        "                [--rcvbuf BYTES] [--max-memory BYTES] [--stream-idle SECONDS] [-q]\n"
        "                [--plain-port PORT [--plain-no-header]] [--http [HOST:]PORT]\n"
        "                [--stats-format text|json]\n"
        "\n"
        "Receive CSV records from csvstream producers over TCP and UDP, append them to a CSV\n"
        "file and, with --db, insert them into SQLite or PostgreSQL.\n"
        "\n"
        "  -t, --tcp             listen on TCP only (default: TCP and UDP)\n"
        "  -u, --udp             listen on UDP only\n"
        "  -H, --host HOST       address to listen on: name, IPv4 or IPv6 (default 127.0.0.1)\n"
        "  -p, --port PORT       port for both protocols, 1-65535 (default 9999)\n"
        "  -o, --out FILE        CSV file records are appended to (default out9.txt); streams\n"
        "                        whose header differs go to FILE-base.STREAM.ext next to it;\n"
        "                        - is standard output (one header; other headers refused, and\n"
        "                        the summary goes to stderr)\n"
        "  -d, --db FILE         also insert every record into this SQLite database\n"
        "  -d, --db URI          or into PostgreSQL: a libpq URI (postgresql://, postgres://)\n"
        "                        or keyword string (host=... dbname=...; it contains '=')\n"
        "      --stats SECONDS   a live statistics line every SECONDS (0: off; default 5 when\n"
        "                        stderr is a terminal, off otherwise)\n"
        "      --stats-json FILE write the final statistics to FILE as JSON on exit (- is\n"
        "                        standard output; the summary then goes to stderr)\n"
        "      --max-records N   stop after N distinct records\n"
        "      --rcvbuf BYTES    UDP socket receive buffer (default: ask for 4 MiB)\n"
        "      --max-memory BYTES  what peers may make the consumer hold: streams, their\n"
        "                        sequence windows, incomplete frames (default 64 MiB, at least\n"
        "                        1 MiB; K, M, G suffixes); past it new streams are refused\n"
        "      --stream-idle SECONDS  retire a stream without frames for this long (default\n"
        "                        60; an ended stream after at most 10 s); its counts stay\n"
        "                        in the totals\n"
        "      --fsync           acknowledge TCP records only once they would survive a power\n"
        "                        loss (fdatasync of the CSV files, SQLite synchronous=FULL,\n"
        "                        PostgreSQL synchronous_commit=on); without it an ack means\n"
        "                        they survive a crash of the consumer\n"
        "      --plain-port PORT also take plain CSV text (no framing) on PORT, TCP and UDP:\n"
        "                        a TCP connection is one stream (first record the header; a\n"
        "                        first line '#stream NAME' names it), a UDP datagram holds\n"
        "                        whole records (columns column_1..N), one stream per sender;\n"
        "                        unsequenced: received, bytes and garbage are counted\n"
        "      --plain-no-header the first record of a plain TCP stream is data too\n"
        "      --http [HOST:]PORT serve GET /metrics (Prometheus), /stats.json and / (a live\n"
        "                        page) on HOST:PORT (HOST default 127.0.0.1; off by default)\n"
        "      --stats-format FMT text (default) or json: each --stats tick is one JSON object\n"
        "                        on stdout (the --stats-json keys plus the interval's deltas)\n"
        "  -q, --quiet           print only warnings, errors and the summary\n"
        "  -h, --help            this text\n"
        "  -V, --version         versions of the program and its libraries, OS, CPUs\n"
        "\n"
        "Stops on SIGINT or SIGTERM: drains, flushes the file, commits the database, prints a\n"
        "summary to stdout (the log goes to stderr). SIGHUP reopens the CSV files (logrotate).\n"
        "A signal is how a server is told to finish, so the exit status after it says how the\n"
        "finish went. Exit codes: 0 success (a clean stop by SIGINT or SIGTERM included), 1\n"
        "runtime failure (rows that could not be committed are in DB.uncommitted.csv; records\n"
        "written to a file that was deleted; records not stored in the database), 2 usage\n"
        "error.\n",
        stdout);
}

/* A byte count with an optional K, M or G (binary) suffix, in [min, max]. Returns 0, or -1
 * with err naming the flag. */
static int consumer_options_bytes(const char *flag, const char *s, long long min, long long max,
                                  long long *out, char *err, size_t errlen) {
  char num[32];
  size_t len = strlen(s);
  int shift = 0;
  if (len > 0 && len < sizeof num) {
    char last = s[len - 1];
    shift = last == 'K' || last == 'k'   ? 10
            : last == 'M' || last == 'm' ? 20
            : last == 'G' || last == 'g' ? 30
                                         : 0;
  }
  if (shift == 0 || len >= sizeof num) {
    return opt_long(flag, s, min, max, out, err, errlen);
  }
  memcpy(num, s, len - 1);
  num[len - 1] = '\0';
  if (opt_long(flag, num, (min >> shift) > 0 ? min >> shift : 1, max >> shift, out, err, errlen) !=
      0) {
    snprintf(err, errlen,
             "%s: '%s' is not a size from %lld bytes to %lld GiB (a number, "
             "optionally followed by K, M or G)",
             flag, s, min, max >> 30);
    return -1;
  }
  *out <<= shift;
  return 0;
}

/* --http [HOST:]PORT into o (HOST 127.0.0.1 when only a port is given; [::1]:PORT for IPv6).
 * Returns 0, or -1 with err naming the flag. */
static int consumer_options_http(consumer_options *o, const char *arg, char *err, size_t errlen) {
  const char *colon = strrchr(arg, ':'), *port = arg;
  long long v;
  size_t hostlen = 0;
  if (colon != NULL) {
    port = colon + 1;
    hostlen = (size_t)(colon - arg);
    if (hostlen >= 2 && arg[0] == '[' && arg[hostlen - 1] == ']') {
      arg++; /* [::1]:8080 */
      hostlen -= 2;
    }
    if (hostlen == 0 || hostlen >= sizeof(o->http_host)) {
      snprintf(err, errlen, "--http: '%s' has no host before the ':' (give PORT or HOST:PORT)",
               arg);
      return -1;
    }
  }
  if (opt_long("--http", port, 1, 65535, &v, err, errlen) != 0) {
    return -1;
  }
  if (hostlen > 0) {
    memcpy(o->http_host, arg, hostlen);
    o->http_host[hostlen] = '\0';
  } else {
    snprintf(o->http_host, sizeof(o->http_host), "127.0.0.1");
  }
  o->http_port = (int)v;
  return 0;
}

/* path in a form two names of one file share (when its folder exists): the folder's real
 * path, then the last name. Returns out, or NULL when it does not fit. */
static char *consumer_options_file_key(const char *path, char *out, size_t len) {
  char dir[PATH_MAX], real[PATH_MAX];
  const char *slash = strrchr(path, '/');
  const char *base = slash != NULL ? slash + 1 : path;
  size_t dlen = slash == NULL ? 1 : slash == path ? 1 : (size_t)(slash - path);
  if (dlen >= sizeof dir) {
    return NULL;
  }
  memcpy(dir, slash == NULL ? "." : path, dlen);
  dir[dlen] = '\0';
  if (realpath(dir, real) == NULL) {
    snprintf(real, sizeof real, "%s", dir); /* a folder that is not there: the name as given */
  }
  if ((size_t)snprintf(out, len, "%s/%s", real, base) >= len) {
    return NULL;
  }
  return out;
}

/* Do a and b name one file (the same file now, or the same name in the same folder)? */
static int consumer_options_same_file(const char *a, const char *b) {
  struct stat sa, sb;
  char ka[PATH_MAX + 256], kb[PATH_MAX + 256];
  if (stat(a, &sa) == 0 && stat(b, &sb) == 0) {
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  }
  return consumer_options_file_key(a, ka, sizeof ka) != NULL &&
         consumer_options_file_key(b, kb, sizeof kb) != NULL && strcmp(ka, kb) == 0;
}

/* The files the consumer writes (--out and its progress file, an SQLite --db and its journal
 * files, --stats-json) must be distinct: one written over another destroys both (a database
 * cut back as if it were out9.txt, a CSV file replaced by the JSON). Returns 0, or -1 with the
 * message in err. */
static int consumer_options_check_files(const consumer_options *o, char *err, size_t errlen) {
  static const char *const db_suffixes[] = {"", "-wal", "-shm", "-journal"};
  char names[9][PATH_MAX + 32];
  const char *what[9];
  size_t n = 0;
  if (strcmp(o->out_path, "-") != 0) {
    snprintf(names[n], sizeof names[n], "%s", o->out_path);
    what[n++] = "--out";
    snprintf(names[n], sizeof names[n], "%s.progress", o->out_path);
    what[n++] = "--out's progress file";
    snprintf(names[n], sizeof names[n], "%s.progress.tmp", o->out_path);
    what[n++] = "--out's progress file";
  }
  if (o->db_path != NULL && !consumer_options_db_is_postgres(o->db_path)) {
    for (size_t i = 0; i < sizeof db_suffixes / sizeof db_suffixes[0]; i++) {
      snprintf(names[n], sizeof names[n], "%s%s", o->db_path, db_suffixes[i]);
      what[n++] = i == 0 ? "--db" : "--db's journal";
    }
  }
  if (o->stats_json != NULL && strcmp(o->stats_json, "-") != 0) {
    snprintf(names[n], sizeof names[n], "%s", o->stats_json);
    what[n++] = "--stats-json";
  }
  for (size_t i = 0; i < n; i++) {
    for (size_t j = i + 1; j < n; j++) {
      if (strcmp(what[i], what[j]) != 0 && consumer_options_same_file(names[i], names[j])) {
        snprintf(err, errlen,
                 "%s and %s are the same file (%s): each needs a file of its own, or one "
                 "would be written over the other",
                 what[i], what[j], names[j]);
        return -1;
      }
    }
  }
  return 0;
}

/* The extra ports must not be the records' port: two listeners cannot share one. Returns 0 or
 * -1 with err set. */
static int consumer_options_check_ports(const consumer_options *o, char *err, size_t errlen) {
  if (o->plain_port != 0 && o->plain_port == o->port) {
    snprintf(err, errlen, "--plain-port %d: the same port as --port (pick another one)",
             o->plain_port);
    return -1;
  }
  if (o->plain_no_header && o->plain_port == 0) {
    snprintf(err, errlen, "--plain-no-header: needs --plain-port");
    return -1;
  }
  if (o->http_port != 0 && o->tcp && o->http_port == o->port) {
    snprintf(err, errlen, "--http: port %d is already the records' TCP port (--port)",
             o->http_port);
    return -1;
  }
  if (o->http_port != 0 && o->tcp && o->http_port == o->plain_port) {
    snprintf(err, errlen, "--http: port %d is already --plain-port", o->http_port);
    return -1;
  }
  return 0;
}

/* Parse argv into o; see options.h. */
int consumer_options_parse(consumer_options *o, int argc, char **argv, int stderr_is_tty, char *err,
                           size_t errlen) {
  static const struct option longopts[] = {
      {"tcp", no_argument, NULL, OPT_TCP},
      {"udp", no_argument, NULL, OPT_UDP},
      {"host", required_argument, NULL, OPT_HOST},
      {"port", required_argument, NULL, OPT_PORT},
      {"out", required_argument, NULL, OPT_OUT},
      {"db", required_argument, NULL, OPT_DB},
      {"stats", required_argument, NULL, OPT_STATS},
      {"stats-json", required_argument, NULL, OPT_STATS_JSON},
      {"max-records", required_argument, NULL, OPT_MAX_RECORDS},
      {"rcvbuf", required_argument, NULL, OPT_RCVBUF},
      {"quiet", no_argument, NULL, OPT_QUIET},
      {"fsync", no_argument, NULL, OPT_FSYNC},
      {"max-memory", required_argument, NULL, OPT_MAX_MEMORY},
      {"stream-idle", required_argument, NULL, OPT_STREAM_IDLE},
      {"plain-port", required_argument, NULL, OPT_PLAIN_PORT},
      {"plain-no-header", no_argument, NULL, OPT_PLAIN_NO_HEADER},
      {"http", required_argument, NULL, OPT_HTTP},
      {"stats-format", required_argument, NULL, OPT_STATS_FORMAT},
      {"help", no_argument, NULL, OPT_HELP},
      {"version", no_argument, NULL, OPT_VERSION},
      {NULL, 0, NULL, 0}};
  int want_tcp = 0, want_udp = 0, stats_given = 0;
  char name[8];
  long long v;
  int c;

  memset(o, 0, sizeof(*o));
  o->host = "127.0.0.1";
  o->port = 9999;
  o->out_path = "out9.txt";
  o->stats_interval = stderr_is_tty ? 5.0 : 0.0;
  o->max_memory = CONSUMER_MAX_MEMORY_DEFAULT;
  o->stream_idle_us = CONSUMER_STREAM_IDLE_DEFAULT_S * 1000000ull;
  err[0] = '\0';

  opterr = 0; /* we write our own messages, naming the flag */
  optind = 0; /* 0, not 1: glibc then also forgets a bundle of short options left half read */
  while ((c = getopt_long(argc, argv, consumer_shortopts, longopts, NULL)) != -1) {
    switch (c) {
    case OPT_TCP:
      want_tcp = 1;
      break;
    case OPT_UDP:
      want_udp = 1;
      break;
    case OPT_HOST:
      if (optarg[0] == '\0') {
        snprintf(err, errlen, "--host: empty host name");
        return CONSUMER_OPTIONS_USAGE;
      }
      o->host = optarg;
      break;
    case OPT_PORT:
      if (opt_long("--port", optarg, 1, 65535, &v, err, errlen) != 0) {
        return CONSUMER_OPTIONS_USAGE;
      }
      o->port = (int)v;
      break;
    case OPT_OUT:
      if (optarg[0] == '\0') {
        snprintf(err, errlen, "--out: empty file name");
        return CONSUMER_OPTIONS_USAGE;
      }
      o->out_path = optarg;
      break;
    case OPT_DB:
      if (optarg[0] == '\0') {
        snprintf(err, errlen, "--db: empty file name");
        return CONSUMER_OPTIONS_USAGE;
      }
      o->db_path = optarg;
      break;
    case OPT_STATS:
      if (opt_double("--stats", optarg, 0.0, 86400.0, &o->stats_interval, err, errlen) != 0) {
        return CONSUMER_OPTIONS_USAGE;
      }
      stats_given = 1;
      break;
    case OPT_STATS_JSON:
      if (optarg[0] == '\0') {
        snprintf(err, errlen, "--stats-json: empty file name");
        return CONSUMER_OPTIONS_USAGE;
      }
      o->stats_json = optarg;
      break;
    case OPT_MAX_RECORDS:
      if (opt_long("--max-records", optarg, 1, 1000000000000LL, &v, err, errlen) != 0) {
        return CONSUMER_OPTIONS_USAGE;
      }
      o->max_records = (uint64_t)v;
      break;
    case OPT_RCVBUF:
      if (opt_long("--rcvbuf", optarg, 1024, 1LL << 30, &v, err, errlen) != 0) {
        return CONSUMER_OPTIONS_USAGE;
      }
      o->rcvbuf = v;
      o->rcvbuf_given = 1;
      break;
    case OPT_QUIET:
      o->quiet = 1;
      break;
    case OPT_FSYNC:
      o->fsync = 1;
      break;
    case OPT_MAX_MEMORY:
      if (consumer_options_bytes("--max-memory", optarg, 1ll << 20, 1ll << 40, &v, err, errlen) !=
          0) {
        return CONSUMER_OPTIONS_USAGE;
      }
      o->max_memory = (uint64_t)v;
      break;
    case OPT_STREAM_IDLE: {
      double idle;
      if (opt_double("--stream-idle", optarg, 1.0, 604800.0, &idle, err, errlen) != 0) {
        return CONSUMER_OPTIONS_USAGE;
      }
      o->stream_idle_us = (uint64_t)(idle * 1e6);
      break;
    }
    case OPT_PLAIN_PORT:
      if (opt_long("--plain-port", optarg, 1, 65535, &v, err, errlen) != 0) {
        return CONSUMER_OPTIONS_USAGE;
      }
      o->plain_port = (int)v;
      break;
    case OPT_PLAIN_NO_HEADER:
      o->plain_no_header = 1;
      break;
    case OPT_HTTP:
      if (!http_available()) {
        snprintf(err, errlen,
                 "--http: this consumer was built without libhttp-parser (install "
                 "libhttp-parser-dev and build again)");
        return CONSUMER_OPTIONS_USAGE;
      }
      if (consumer_options_http(o, optarg, err, errlen) != 0) {
        return CONSUMER_OPTIONS_USAGE;
      }
      break;
    case OPT_STATS_FORMAT:
      if (strcmp(optarg, "json") == 0) {
        o->stats_json_lines = 1;
      } else if (strcmp(optarg, "text") == 0) {
        o->stats_json_lines = 0;
      } else {
        snprintf(err, errlen, "--stats-format: '%s' is not a format (text or json)", optarg);
        return CONSUMER_OPTIONS_USAGE;
      }
      break;
    case OPT_HELP:
      consumer_options_usage();
      return CONSUMER_OPTIONS_DONE;
    case OPT_VERSION: {
#ifdef CSVSTREAM_HAVE_LIBPQ
      char pq[32];
      snprintf(pq, sizeof pq, "%d.%d", PQlibVersion() / 10000, PQlibVersion() % 10000);
#endif
      char httpv[40];
      const opt_version_lib libs[] = {
          {"libuv", uv_version_string()},
          {"SQLite", sqlite3_libversion()},
          {"http_parser", http_version(httpv, sizeof httpv)},
#ifdef CSVSTREAM_HAVE_LIBPQ
          {"libpq", pq},
#endif
      };
      opt_print_version("consumer", libs, sizeof libs / sizeof libs[0]);
      return CONSUMER_OPTIONS_DONE;
    }
    case ':':
      snprintf(err, errlen, "%s: needs a value",
               opt_offender(c, argv, optind, optopt, consumer_shortopts, name, sizeof name));
      return CONSUMER_OPTIONS_USAGE;
    default:
      snprintf(err, errlen, "%s: unknown option (see consumer --help)",
               opt_offender(c, argv, optind, optopt, consumer_shortopts, name, sizeof name));
      return CONSUMER_OPTIONS_USAGE;
    }
  }
  if (optind < argc) {
    snprintf(err, errlen, "'%s': unexpected argument (the consumer takes only options)",
             argv[optind]);
    return CONSUMER_OPTIONS_USAGE;
  }
  if (want_tcp && want_udp) {
    snprintf(err, errlen, "--tcp and --udp: give at most one (neither listens on both)");
    return CONSUMER_OPTIONS_USAGE;
  }
  if (o->quiet && !stats_given) {
    o->stats_interval = 0.0; /* --quiet drops the default live line; an explicit --stats stays */
  }
  o->tcp = !want_udp;
  o->udp = !want_tcp;
  if (o->rcvbuf_given && !o->udp) {
    snprintf(err, errlen, "--rcvbuf: sets the UDP receive buffer, but --tcp turns UDP off");
    return CONSUMER_OPTIONS_USAGE;
  }
  if (consumer_options_check_ports(o, err, errlen) != 0) {
    return CONSUMER_OPTIONS_USAGE;
  }
  if (o->http_port != 0 && !http_available()) {
    snprintf(err, errlen,
             "--http: this consumer was built without libhttp-parser (install "
             "libhttp-parser-dev and build again)");
    return CONSUMER_OPTIONS_USAGE;
  }
  if (o->stats_json_lines && o->stats_interval <= 0.0) {
    snprintf(err, errlen, "--stats-format json: needs --stats SECONDS (the interval)");
    return CONSUMER_OPTIONS_USAGE;
  }
  if (o->stats_json_lines && strcmp(o->out_path, "-") == 0) {
    snprintf(err, errlen, "--stats-format json: writes to standard output, and so does --out -");
    return CONSUMER_OPTIONS_USAGE;
  }
  if (consumer_options_check_files(o, err, errlen) != 0) {
    return CONSUMER_OPTIONS_USAGE;
  }
  return CONSUMER_OPTIONS_RUN;
}

/* A PostgreSQL target for --db; see options.h. */
int consumer_options_db_is_postgres(const char *db) {
  return db != NULL && (strncmp(db, "postgresql://", 13) == 0 ||
                        strncmp(db, "postgres://", 11) == 0 || strchr(db, '=') != NULL);
}
