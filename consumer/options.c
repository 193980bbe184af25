/* options.c -- the consumer's command line: getopt_long, defaults, range-checked values. */
#include "options.h"

#include <getopt.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "error.h"
#include "opt.h"

enum {
  OPT_TCP = 1000,
  OPT_UDP,
  OPT_HOST,
  OPT_PORT,
  OPT_OUT,
  OPT_DB,
  OPT_STATS,
  OPT_STATS_JSON,
  OPT_MAX_RECORDS,
  OPT_RCVBUF,
  OPT_QUIET,
  OPT_HELP,
  OPT_VERSION
};

/* Print the --help text to stdout. */
void consumer_options_usage(void) {
  fputs("Usage: consumer [--tcp | --udp] [--host HOST] [--port PORT] [--out FILE] [--db FILE]\n"
        "                [--stats SECONDS] [--stats-json FILE] [--max-records N]\n"
        "                [--rcvbuf BYTES] [--quiet]\n"
        "\n"
        "Receive CSV records from csvstream producers over TCP and UDP, append them to a CSV\n"
        "file and, with --db, insert them into SQLite.\n"
        "\n"
        "  --tcp               listen on TCP only (default: TCP and UDP)\n"
        "  --udp               listen on UDP only\n"
        "  --host HOST         address to listen on: name, IPv4 or IPv6 (default 127.0.0.1)\n"
        "  --port PORT         port for both protocols, 1-65535 (default 9999)\n"
        "  --out FILE          CSV file records are appended to (default out9.txt); streams\n"
        "                      whose header differs go to FILE-base.STREAM.ext next to it\n"
        "  --db FILE           also insert every record into this SQLite database\n"
        "  --stats SECONDS     a live statistics line every SECONDS (0: off; default 5 when\n"
        "                      stderr is a terminal, off otherwise)\n"
        "  --stats-json FILE   write the final statistics to FILE as JSON on exit\n"
        "  --max-records N     stop after N distinct records\n"
        "  --rcvbuf BYTES      UDP socket receive buffer (default: ask for 4 MiB)\n"
        "  --quiet             print only warnings, errors and the summary\n"
        "  --help              this text\n"
        "  --version           versions of the program and its libraries, OS, CPUs\n"
        "\n"
        "Stops on SIGINT or SIGTERM: drains, flushes the file, commits the database, prints a\n"
        "summary. Exit codes: 0 success, 1 runtime failure, 2 usage error.\n",
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
      {"help", no_argument, NULL, OPT_HELP},
      {"version", no_argument, NULL, OPT_VERSION},
      {NULL, 0, NULL, 0}};
  int want_tcp = 0, want_udp = 0, stats_given = 0;
  long long v;
  int c;

  memset(o, 0, sizeof(*o));
  o->host = "127.0.0.1";
  o->port = 9999;
  o->out_path = "out9.txt";
  o->stats_interval = stderr_is_tty ? 5.0 : 0.0;
  err[0] = '\0';

  opterr = 0; /* we write our own messages, naming the flag */
  optind = 1;
  while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
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
    case OPT_HELP:
      consumer_options_usage();
      return CONSUMER_OPTIONS_DONE;
    case OPT_VERSION: {
      const opt_version_lib libs[] = {{"libuv", uv_version_string()},
                                      {"SQLite", sqlite3_libversion()}};
      opt_print_version("consumer", libs, sizeof libs / sizeof libs[0]);
      return CONSUMER_OPTIONS_DONE;
    }
    case ':':
      snprintf(err, errlen, "%s: needs a value", argv[optind - 1]);
      return CONSUMER_OPTIONS_USAGE;
    default:
      snprintf(err, errlen, "%s: unknown option (see consumer --help)", argv[optind - 1]);
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
