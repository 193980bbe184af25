/* producer_options.c -- getopt_long parsing of the producer's flags, every value range-checked. */
#include "producer_options.h"

#include <getopt.h>
#include <sqlite3.h>
#include <string.h>
#include <uv.h>

#include "error.h"
#include "opt.h"
#include "textenc.h"

/* Options with a short form use its letter as their value (the same letter means the same thing
 * in all three programs: README); the others count from 256, past every letter. */
enum {
  OPT_TCP = 't',
  OPT_UDP = 'u',
  OPT_HOST = 'H',
  OPT_PORT = 'p',
  OPT_INTERVAL = 'i',
  OPT_RATE = 'r',
  OPT_COUNT = 'c',
  OPT_LOOP = 'l',
  OPT_QUIET = 'q',
  OPT_HELP = 'h',
  OPT_VERSION = 'V',
  OPT_SEED = 256,
  OPT_STREAM,
  OPT_NO_HEADER,
  OPT_STATS_JSON,
  OPT_IMPAIR,
  OPT_RETRY,
  OPT_WINDOW,
  OPT_RESUME,
  OPT_ID,
  OPT_DELIMITER,
  OPT_ENCODING,
  OPT_SKIP_LINES,
  OPT_COMMENT,
  OPT_TIMESTAMPS,
  OPT_SPEED,
  OPT_MAX_GAP,
  OPT_FORMAT
};

/* The short options; ':' first so that a missing value is told apart from an unknown option. */
static const char producer_shortopts[] = ":tuH:p:i:r:c:lqhV";

/* Print the usage text: every flag, its default, and the exit codes. */
void producer_options_usage(FILE *f) {
  fputs(
      "Usage: producer [-t | -u] [-H HOST] [-p PORT]\n"
      "                [-i SECONDS | -i MIN-MAX | -r N] [-c N] [-l | --loop=N] [--seed N]\n"
      "                [--stream NAME] [--no-header] [-q] [--stats-json FILE]\n"
      "                [--impair loss=P,dup=P,reorder=P[,delay=MS][,seed=N]]\n"
      "                [--retry SECONDS] [--window N] [--resume] [--id NAME]\n"
      "                [--delimiter CHAR|auto] [--encoding NAME|auto] [--skip-lines N]\n"
      "                [--comment CHAR] [--timestamps COLUMN [--speed X] [--max-gap S]]\n"
      "                [--format csvstream|csv] FILE.csv|-\n"
      "\n"
      "Read a CSV file (RFC 4180, UTF-8 BOM stripped; - is standard input) and stream its\n"
      "records to a consumer over TCP or UDP, one record every 1-3 s by default. It logs a\n"
      "line per record when records are at least 0.1 s apart on average (--interval MIN-MAX\n"
      "with (MIN+MAX)/2 >= 0.1, --rate 10 or less), otherwise progress: records sent, per\n"
      "cent of the file read, rate and time left, on a terminal one line kept up to date,\n"
      "else a line every 3 s.\n"
      "\n"
      "  -t, --tcp               send over TCP (default)\n"
      "  -u, --udp               send over UDP: the header frame in every datagram, then the\n"
      "                          records due together (at most 1,472 bytes a datagram)\n"
      "  -H, --host HOST         consumer host name or address (default 127.0.0.1); TCP tries\n"
      "                          every address the name resolves to, in order, UDP the first\n"
      "  -p, --port PORT         consumer port, 1-65535 (default 9999)\n"
      "  -i, --interval SECONDS  fixed gap between records; 0 sends as fast as the network takes\n"
      "  -i, --interval MIN-MAX  gap uniformly random in [MIN, MAX] seconds (default 1-3)\n"
      "  -r, --rate N            N records a second, evenly spaced (excludes --interval)\n"
      "  -c, --count N           stop after N records\n"
      "  -l, --loop[=N]          start the file over at its end (not for standard input);\n"
      "                          --loop=N reads it N times, a bare --loop (or -l) for ever;\n"
      "                          -l takes no value (-l3 is refused: write --loop=3)\n"
      "      --seed N            seed for the random pace (default: from the OS)\n"
      "      --stream NAME       stream name, 1-255 bytes (default: the file's base name without\n"
      "                          its extension; \"stdin\" for -)\n"
      "      --no-header         the first row is data, not column names\n"
      "  -q, --quiet             only warnings, errors and the summary (no per-record or\n"
      "                          progress lines)\n"
      "      --stats-json FILE   write the totals as one JSON object to FILE on exit (- is\n"
      "                          standard output; the summary then goes to stderr)\n"
      "      --impair SPEC       UDP only: drop (loss), duplicate (dup) and hold back (reorder)\n"
      "                          records with the given probabilities 0-1, delay every datagram\n"
      "                          by MS milliseconds; seed=N makes it repeatable (default: --seed)\n"
      "      --retry SECONDS     TCP: when the consumer cannot be reached, keep reconnecting\n"
      "                          this long without progress, then resend what it did not\n"
      "                          acknowledge (default 30; 0 fails at once; inf: for ever); a\n"
      "                          connected consumer that holds its acknowledgements is waited\n"
      "                          for (said every 5 s)\n"
      "      --window N          TCP: records sent and not yet acknowledged, at most (default\n"
      "                          262144, and 64 MiB); beyond that the producer waits\n"
      "      --resume            TCP: go on after the last record the consumer has of this\n"
      "                          stream (a producer restarted after a crash or Ctrl-C); the\n"
      "                          producer's identity is then stable: --id, else the host\n"
      "                          name and the stream name\n"
      "      --id NAME           a stable producer identity (for --resume)\n"
      "      --format FMT        csvstream (default: the framed, acknowledged protocol) or\n"
      "                          csv: plain CSV text for any listener (nc -l, socat, Vector,\n"
      "                          Fluent Bit, consumer --plain-port): over TCP a line\n"
      "                          '#stream NAME' when --stream gives one, the header line, then\n"
      "                          one record a line, over UDP one record a datagram (no\n"
      "                          header); nothing is acknowledged or counted by the receiver\n"
      "\n"
      "Reading other CSV files (what is sent, and out9.txt, is always UTF-8 with commas):\n"
      "      --delimiter CHAR    the field separator: , (default) ; | : tab (or \\t), any one\n"
      "                          byte; auto guesses it from the first lines and says which\n"
      "      --encoding NAME     the file's encoding (default utf-8; any name iconv knows:\n"
      "                          latin1, windows-1252, utf-16 ...); auto: a byte-order mark,\n"
      "                          else UTF-8 if the file is valid UTF-8, else windows-1252\n"
      "      --skip-lines N      skip N lines at the start, before the header (titles)\n"
      "      --comment CHAR      skip lines that start with CHAR (counted in the summary)\n"
      "\n"
      "Replay on the file's own clock:\n"
      "      --timestamps COLUMN pace records by the differences between the values of\n"
      "                          COLUMN (a header name or a number from 1): ISO 8601\n"
      "                          date-times with or without a zone, YYYY-MM-DD HH:MM:SS,\n"
      "                          epoch seconds, milliseconds or microseconds (detected from\n"
      "                          the first value)\n"
      "      --speed X           play X times faster (default 1; 60: an hour in a minute;\n"
      "                          0: unpaced)\n"
      "      --max-gap SECONDS   wait at most this long between two records (after --speed)\n"
      "  -h, --help              show this text and exit\n"
      "  -V, --version           show the program and library versions and exit\n"
      "\n"
      "Exit status: 0 every record was sent and, over TCP, acknowledged by the consumer; 1 a\n"
      "runtime failure (file unreadable, CSV error, the consumer unreachable for --retry\n"
      "seconds, the stream refused, a record too large to send: not every record was sent or\n"
      "acknowledged); 2 a usage error (also a --stats-json FILE that cannot be created,\n"
      "checked before anything is sent); 130 stopped by SIGINT, 143 by SIGTERM (END is still\n"
      "sent and the summary printed).\n",
      f);
}

/* Set the defaults the issue names. */
static void producer_options_defaults(producer_options *o) {
  memset(o, 0, sizeof *o);
  o->host = "127.0.0.1";
  o->retry_s = PRODUCER_RETRY_DEFAULT_S;
  o->window = PRODUCER_WINDOW_DEFAULT;
  o->port = 9999;
  o->interval_min = 1.0;
  o->interval_max = 3.0;
  o->speed = 1.0;
}

/* Parse --rate: a positive number of records a second. The floor (one record every 10,000 s)
 * keeps the pacer's gap in microseconds far from overflowing. */
static int producer_options_rate(const char *s, double *rate, char *err, size_t errlen) {
  if (opt_double("--rate", s, 0.0, 10000000.0, rate, err, errlen) != 0) {
    return CS_EINVAL;
  }
  if (*rate <= 0.0) {
    snprintf(err, errlen, "--rate: '%s' must be > 0 (records a second)", s);
    return CS_EINVAL;
  }
  if (*rate < 0.0001) {
    snprintf(err, errlen, "--rate: '%s' is too slow (at least 0.0001: one record every 10,000 s)",
             s);
    return CS_EINVAL;
  }
  return 0;
}

/* "-l3" is -l, then 3 as an unknown option: the short form takes no value, since an optional
 * one would swallow the next letter of a bundle ("-lq"). When the digit getopt refused
 * (bad_opt) follows an l in the short-option word it is reading (argv[next] or, when the digit
 * ended the word, argv[next - 1]), say what to type instead. Returns 1 with the message in
 * err, else 0. */
static int producer_options_loop_hint(char **argv, int argc, int next, int bad_opt, char *err,
                                      size_t errlen) {
  int i;
  if (bad_opt < '0' || bad_opt > '9') {
    return 0;
  }
  for (i = next - 1; i <= next && i < argc; i++) {
    const char *word = i >= 1 ? argv[i] : NULL;
    const char *l = word != NULL && word[0] == '-' && word[1] != '-' ? strchr(word, 'l') : NULL;
    if (l != NULL && l[1] == bad_opt) {
      int digits = (int)strspn(l + 1, "0123456789");
      snprintf(err, errlen,
               "%s: -l takes no value; to read the file %.*s times write --loop=%.*s (-l alone "
               "starts it over for ever)",
               word, digits, l + 1, digits, l + 1);
      return 1;
    }
  }
  return 0;
}

/* One byte given as CHAR: "tab" or "\t" is a tab; else exactly one byte that is not a quote,
 * a line break or NUL. Returns 0, or CS_EINVAL with err naming flag. */
static int producer_options_char(const char *flag, const char *s, char *out, char *err,
                                 size_t errlen) {
  if (strcmp(s, "tab") == 0 || strcmp(s, "\\t") == 0 || strcmp(s, "\t") == 0) {
    *out = '\t';
    return 0;
  }
  if (strlen(s) != 1 || s[0] == '"' || s[0] == '\r' || s[0] == '\n') {
    snprintf(err, errlen,
             "--%s: '%s' is not one character (give one byte such as ; | : #, or tab; not a "
             "quote or a line break)",
             flag, s);
    return CS_EINVAL;
  }
  *out = s[0];
  return 0;
}

/* The options about reading the input and its clock; c is the option, s its value. */
static int producer_options_input(producer_options *o, int c, const char *s, char *err,
                                  size_t errlen) {
  long long v;
  textenc *probe = NULL;
  switch (c) {
  case OPT_DELIMITER:
    o->delimiter_auto = strcmp(s, "auto") == 0;
    if (o->delimiter_auto) {
      o->delimiter = 0;
      return 0;
    }
    return producer_options_char("delimiter", s, &o->delimiter, err, errlen);
  case OPT_COMMENT:
    return producer_options_char("comment", s, &o->comment, err, errlen);
  case OPT_ENCODING:
    if (strcmp(s, "auto") != 0 && !textenc_is_utf8(s)) {
      /* Known to iconv now, so that a typo is a usage error before anything is sent. */
      if (textenc_open(&probe, s, err, errlen) != 0) {
        return CS_EINVAL;
      }
      textenc_close(probe);
    }
    o->encoding = s;
    return 0;
  case OPT_SKIP_LINES:
    if (opt_long("--skip-lines", s, 0, 0x7fffffffffffffffLL, &v, err, errlen) != 0) {
      return CS_EINVAL;
    }
    o->skip_lines = (uint64_t)v;
    return 0;
  case OPT_TIMESTAMPS:
    if (s[0] == '\0') {
      snprintf(err, errlen, "--timestamps: empty column name");
      return CS_EINVAL;
    }
    o->timestamps = s;
    return 0;
  case OPT_SPEED:
    return opt_double("--speed", s, 0, 1e9, &o->speed, err, errlen);
  default: /* OPT_MAX_GAP */
    if (opt_double("--max-gap", s, 0, 1e6, &o->max_gap_s, err, errlen) != 0) {
      return CS_EINVAL;
    }
    if (o->max_gap_s <= 0) {
      snprintf(err, errlen, "--max-gap: '%s' must be > 0 (seconds)", s);
      return CS_EINVAL;
    }
    return 0;
  }
}

/* The whole command line; see producer_options.h. Longer than most functions on purpose: one
 * switch over the option table, a few lines per option, then the checks between options. */
int producer_options_parse(producer_options *o, int argc, char **argv, char *err, size_t errlen) {
  static const struct option longopts[] = {{"tcp", no_argument, NULL, OPT_TCP},
                                           {"udp", no_argument, NULL, OPT_UDP},
                                           {"host", required_argument, NULL, OPT_HOST},
                                           {"port", required_argument, NULL, OPT_PORT},
                                           {"interval", required_argument, NULL, OPT_INTERVAL},
                                           {"rate", required_argument, NULL, OPT_RATE},
                                           {"count", required_argument, NULL, OPT_COUNT},
                                           {"loop", optional_argument, NULL, OPT_LOOP},
                                           {"seed", required_argument, NULL, OPT_SEED},
                                           {"stream", required_argument, NULL, OPT_STREAM},
                                           {"no-header", no_argument, NULL, OPT_NO_HEADER},
                                           {"quiet", no_argument, NULL, OPT_QUIET},
                                           {"stats-json", required_argument, NULL, OPT_STATS_JSON},
                                           {"impair", required_argument, NULL, OPT_IMPAIR},
                                           {"retry", required_argument, NULL, OPT_RETRY},
                                           {"window", required_argument, NULL, OPT_WINDOW},
                                           {"resume", no_argument, NULL, OPT_RESUME},
                                           {"id", required_argument, NULL, OPT_ID},
                                           {"delimiter", required_argument, NULL, OPT_DELIMITER},
                                           {"encoding", required_argument, NULL, OPT_ENCODING},
                                           {"skip-lines", required_argument, NULL, OPT_SKIP_LINES},
                                           {"comment", required_argument, NULL, OPT_COMMENT},
                                           {"timestamps", required_argument, NULL, OPT_TIMESTAMPS},
                                           {"speed", required_argument, NULL, OPT_SPEED},
                                           {"max-gap", required_argument, NULL, OPT_MAX_GAP},
                                           {"format", required_argument, NULL, OPT_FORMAT},
                                           {"help", no_argument, NULL, OPT_HELP},
                                           {"version", no_argument, NULL, OPT_VERSION},
                                           {NULL, 0, NULL, 0}};
  int have_tcp = 0, have_udp = 0, have_interval = 0, have_rate = 0, have_speed = 0;
  char name[8];
  long long v;
  int c;

  producer_options_defaults(o);
  opterr = 0; /* we word the messages ourselves */
  optind = 0; /* 0, not 1: glibc then also forgets a bundle of short options left half read */
  while ((c = getopt_long(argc, argv, producer_shortopts, longopts, NULL)) != -1) {
    switch (c) {
    case OPT_TCP:
      have_tcp = 1;
      o->udp = 0;
      break;
    case OPT_UDP:
      have_udp = 1;
      o->udp = 1;
      break;
    case OPT_HOST:
      if (optarg[0] == '\0') {
        snprintf(err, errlen, "--host: empty host name");
        return CS_EINVAL;
      }
      o->host = optarg;
      break;
    case OPT_PORT:
      if (opt_long("--port", optarg, 1, 65535, &v, err, errlen) != 0) {
        return CS_EINVAL;
      }
      o->port = (int)v;
      break;
    case OPT_INTERVAL:
      if (opt_interval("--interval", optarg, &o->interval_min, &o->interval_max, err, errlen) !=
          0) {
        return CS_EINVAL;
      }
      have_interval = 1;
      break;
    case OPT_RATE:
      if (producer_options_rate(optarg, &o->rate, err, errlen) != 0) {
        return CS_EINVAL;
      }
      have_rate = 1;
      break;
    case OPT_COUNT:
      if (opt_long("--count", optarg, 1, 0x7fffffffffffffffLL, &v, err, errlen) != 0) {
        return CS_EINVAL;
      }
      o->count = (uint64_t)v;
      break;
    case OPT_LOOP:
      o->loop = 1;
      o->loop_passes = 0;
      if (optarg != NULL) {
        if (opt_long("--loop", optarg, 1, 0x7fffffffffffffffLL, &v, err, errlen) != 0) {
          return CS_EINVAL;
        }
        o->loop_passes = (uint64_t)v;
      }
      break;
    case OPT_DELIMITER:
    case OPT_COMMENT:
    case OPT_ENCODING:
    case OPT_SKIP_LINES:
    case OPT_TIMESTAMPS:
    case OPT_SPEED:
    case OPT_MAX_GAP:
      if (producer_options_input(o, c, optarg, err, errlen) != 0) {
        return CS_EINVAL;
      }
      have_speed = have_speed || c == OPT_SPEED || c == OPT_MAX_GAP;
      break;
    case OPT_RETRY:
      if (strcmp(optarg, "inf") == 0) {
        o->retry_s = PRODUCER_RETRY_FOREVER;
      } else if (opt_double("--retry", optarg, 0, 1e9, &o->retry_s, err, errlen) != 0) {
        return CS_EINVAL;
      }
      break;
    case OPT_FORMAT:
      if (strcmp(optarg, "csv") == 0) {
        o->format_csv = 1;
      } else if (strcmp(optarg, "csvstream") == 0) {
        o->format_csv = 0;
      } else {
        snprintf(err, errlen, "--format: '%s' is not a format (csvstream or csv)", optarg);
        return CS_EINVAL;
      }
      break;
    case OPT_RESUME:
      o->resume = 1;
      break;
    case OPT_ID:
      if (optarg[0] == '\0' || strlen(optarg) > 255) {
        snprintf(err, errlen, "--id: the name must be 1-255 bytes");
        return CS_EINVAL;
      }
      o->id = optarg;
      break;
    case OPT_WINDOW:
      if (opt_long("--window", optarg, 1, 100000000, &v, err, errlen) != 0) {
        return CS_EINVAL;
      }
      o->window = (uint64_t)v;
      break;
    case OPT_SEED:
      if (opt_long("--seed", optarg, 0, 0x7fffffffffffffffLL, &v, err, errlen) != 0) {
        return CS_EINVAL;
      }
      o->seed = (uint64_t)v;
      o->have_seed = 1;
      break;
    case OPT_STREAM: {
      size_t len = strlen(optarg);
      if (len == 0 || len > 255) {
        snprintf(err, errlen, "--stream: the name must be 1-255 bytes (got %zu)", len);
        return CS_EINVAL;
      }
      o->stream = optarg;
      break;
    }
    case OPT_NO_HEADER:
      o->no_header = 1;
      break;
    case OPT_QUIET:
      o->quiet = 1;
      break;
    case OPT_STATS_JSON:
      if (optarg[0] == '\0') {
        snprintf(err, errlen, "--stats-json: empty file name");
        return CS_EINVAL;
      }
      o->stats_json = optarg;
      break;
    case OPT_IMPAIR:
      if (impair_parse(optarg, &o->impair, err, errlen) != 0) {
        return CS_EINVAL;
      }
      o->impair_on = 1;
      break;
    case OPT_HELP:
      producer_options_usage(stdout);
      return PRODUCER_OPTIONS_EXIT;
    case OPT_VERSION: {
      /* The producer uses neither libuv nor SQLite, but --version is the course's environment
       * check and names every library of the suite (README), so their lines stay. */
      const opt_version_lib libs[] = {{"libuv", uv_version_string()},
                                      {"SQLite", sqlite3_libversion()}};
      opt_print_version("producer", libs, sizeof libs / sizeof libs[0]);
      return PRODUCER_OPTIONS_EXIT;
    }
    case ':':
      snprintf(err, errlen, "%s: needs a value",
               opt_offender(c, argv, optind, optopt, producer_shortopts, name, sizeof name));
      return CS_EINVAL;
    default:
      if (c == '?' && producer_options_loop_hint(argv, argc, optind, optopt, err, errlen)) {
        return CS_EINVAL;
      }
      snprintf(err, errlen, "%s: unknown option",
               opt_offender(c, argv, optind, optopt, producer_shortopts, name, sizeof name));
      return CS_EINVAL;
    }
  }
  if (have_tcp && have_udp) {
    snprintf(err, errlen, "--tcp and --udp: pick one protocol");
    return CS_EINVAL;
  }
  if (have_interval && have_rate) {
    snprintf(err, errlen, "--rate and --interval: pick one way to pace");
    return CS_EINVAL;
  }
  if (o->timestamps != NULL && (have_interval || have_rate)) {
    snprintf(err, errlen, "--timestamps and --%s: pick one way to pace",
             have_rate ? "rate" : "interval");
    return CS_EINVAL;
  }
  if (have_speed && o->timestamps == NULL) {
    snprintf(err, errlen,
             "--speed and --max-gap work with --timestamps COLUMN (the file's own "
             "clock); to pace by rate, use --rate or --interval");
    return CS_EINVAL;
  }
  if (o->comment != 0 && !o->delimiter_auto &&
      o->comment == (o->delimiter != 0 ? o->delimiter : ',')) {
    snprintf(err, errlen, "--comment and --delimiter: '%c' cannot be both", o->comment);
    return CS_EINVAL;
  }
  if (o->impair_on && !o->udp) {
    snprintf(err, errlen,
             "--impair works only with --udp: TCP retransmits lost segments and restores "
             "order, so the loss would never show (that difference is the lesson)");
    return CS_EINVAL;
  }
  if (o->resume && o->udp) {
    snprintf(err, errlen,
             "--resume works only over TCP: a UDP consumer does not say what it has (that is "
             "the lesson)");
    return CS_EINVAL;
  }
  if (o->format_csv && (o->resume || o->impair_on)) {
    snprintf(err, errlen,
             "--format csv: %s needs the csvstream protocol (plain CSV carries no "
             "sequence numbers and nobody acknowledges it)",
             o->resume ? "--resume" : "--impair");
    return CS_EINVAL;
  }
  if (o->format_csv && o->stream != NULL && strpbrk(o->stream, "\r\n") != NULL) {
    snprintf(err, errlen,
             "--stream: with --format csv the name goes in a '#stream NAME' line, so it cannot "
             "hold a line break");
    return CS_EINVAL;
  }
  if (optind >= argc) {
    snprintf(err, errlen, "missing FILE.csv (or - for standard input)");
    return CS_EINVAL;
  }
  if (optind + 1 < argc) {
    snprintf(err, errlen, "'%s': only one FILE.csv may be given", argv[optind + 1]);
    return CS_EINVAL;
  }
  o->path = argv[optind];
  if (o->path[0] == '\0') {
    snprintf(err, errlen, "FILE.csv: empty file name");
    return CS_EINVAL;
  }
  if (o->loop && strcmp(o->path, "-") == 0) {
    snprintf(err, errlen, "--loop: standard input cannot be read again; give a file");
    return CS_EINVAL;
  }
  return PRODUCER_OPTIONS_RUN;
}
