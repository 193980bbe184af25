/* options.c -- the consumer's command line: getopt_long, defaults, range-checked values. */
#include "options.h"

#include <getopt.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>
#ifdef CSVSTREAM_HAVE_LIBPQ
#include <libpq-fe.h>
#endif

#include "error.h"
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
  OPT_FSYNC
};

/* The short options; ':' first so that a missing value is told apart from an unknown option. */
static const char consumer_shortopts[] = ":tuH:p:o:d:qhV";

/* Print the --help text to stdout. */
void consumer_options_usage(void) {
  fputs("Usage: consumer [-t | -u] [-H HOST] [-p PORT] [-o FILE] [-d FILE]\n"
        "                [--stats SECONDS] [--stats-json FILE] [--max-records N]\n"
        "                [--rcvbuf BYTES] [-q]\n"
        "\n"
        "Receive CSV records from csvstream producers over TCP and UDP, append them to a CSV\n"
        "file and, with --db, insert them into SQLite.\n"
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
        "      --fsync           acknowledge TCP records only once they would survive a power\n"
        "                        loss (fdatasync of the CSV files, SQLite synchronous=FULL,\n"
        "                        PostgreSQL synchronous_commit=on); without it an ack means\n"
        "                        they survive a crash of the consumer\n"
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
    case OPT_HELP:
      consumer_options_usage();
      return CONSUMER_OPTIONS_DONE;
    case OPT_VERSION: {
#ifdef CSVSTREAM_HAVE_LIBPQ
      char pq[32];
      snprintf(pq, sizeof pq, "%d.%d", PQlibVersion() / 10000, PQlibVersion() % 10000);
      const opt_version_lib libs[] = {
          {"libuv", uv_version_string()}, {"SQLite", sqlite3_libversion()}, {"libpq", pq}};
#else
      const opt_version_lib libs[] = {{"libuv", uv_version_string()},
                                      {"SQLite", sqlite3_libversion()}};
#endif
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
  return CONSUMER_OPTIONS_RUN;
}

/* A PostgreSQL target for --db; see options.h. */
int consumer_options_db_is_postgres(const char *db) {
  return db != NULL && (strncmp(db, "postgresql://", 13) == 0 ||
                        strncmp(db, "postgres://", 11) == 0 || strchr(db, '=') != NULL);
}
