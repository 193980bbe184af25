/* main.c -- multiple_processes: parse the options and run the chosen mode of the course's
 * shared-database lesson (naive, safe or funnel). */
#include <getopt.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "mp.h"
#include "opt.h"

/* Print the help text to f. */
static void mp_usage(FILE *f) {
  fputs("Usage: multiple_processes [--processes N] [--records N] [--task-duration SECONDS]\n"
        "                          [-d FILE] [-m naive|safe|funnel|postgres]\n"
        "                          [--consumer PATH] [-p PORT]\n"
        "\n"
        "Several processes insert made-up sensor readings into one SQLite database at once\n"
        "(or, with --mode postgres, into one PostgreSQL database).\n"
        "\n"
        "      --processes N           processes started together (default 3, 1-200)\n"
        "      --records N             records per process (default 2, 1-100000)\n"
        "      --task-duration SECONDS time each record's work takes (default 0, 0-3600);\n"
        "                              naive and safe keep their transaction open meanwhile,\n"
        "                              funnel does the work before sending\n"
        "  -d, --db FILE               the shared database (default shared.db)\n"
        "  -m, --mode naive            each process: own connection, SQLite's defaults, BEGIN;\n"
        "                              INSERT; sleep; COMMIT; failures (\"database is locked\")\n"
        "                              are logged and the process moves on (default)\n"
        "  -m, --mode safe             WAL, BEGIN IMMEDIATE, busy timeout, bounded jittered\n"
        "                              retries\n"
        "  -m, --mode funnel           processes stream to one consumer, the only writer\n"
        "                              (it also keeps a CSV copy in FILE.csv)\n"
        "  -m, --mode postgres         each process writes PostgreSQL itself: -d is a libpq URI\n"
        "                              (postgresql://...) or keyword string; every record in its\n"
        "                              own transaction, a process's transactions open at once\n"
        "      --consumer PATH         funnel only: the consumer binary (default: next to this\n"
        "                              program)\n"
        "  -p, --port PORT             funnel only: use the consumer already listening on this\n"
        "                              port of 127.0.0.1 (it must write to --db FILE), or start\n"
        "                              one there (default: start one on a free port)\n"
        "  -h, --help                  this text\n"
        "  -V, --version               versions of this program and its libraries\n"
        "\n"
        "The log goes to stdout, one timestamped line per event, then a summary such as\n"
        "\"inserted 4 of 6 records; 2 failed: database is locked\".\n"
        "SIGINT (Ctrl-C) or SIGTERM stops the processes (and funnel's own consumer, which\n"
        "commits what it received) and prints \"interrupted: inserted 2 of 6 records; ...\".\n"
        "Exit status: 0 done (naive: even when records failed, which is the lesson), 1 a\n"
        "runtime failure (safe or funnel: not every record landed), 2 a usage error,\n"
        "130 interrupted by SIGINT, 143 by SIGTERM.\n",
        f);
}

/* Whether --db names a PostgreSQL database, by the consumer's rule: a libpq URI
 * (postgresql://, postgres://) or a keyword string, which holds '=' ("host=... dbname=..."). */
static int mp_db_is_postgres(const char *db) {
  return strncmp(db, "postgresql://", 13) == 0 || strncmp(db, "postgres://", 11) == 0 ||
         strchr(db, '=') != NULL;
}

/* Parse argv into ctx. Returns 0, 1 when --help or --version was handled, or 2 on a usage
 * error (message printed). Longer than most functions on purpose: one switch over the option
 * table, a few lines per option, in the order --help lists them. */
static int mp_parse(int argc, char **argv, mp_ctx *ctx) {
  /* Options with a short form use its letter as their value (the same letter means the same
   * thing in all three programs: README); the others count from 256, past every letter. */
  enum { MP_OPT_PROCESSES = 256, MP_OPT_RECORDS, MP_OPT_TASK_DURATION, MP_OPT_CONSUMER };
  static const char shortopts[] = ":d:m:p:hV";
  static const struct option longopts[] = {
      {"processes", required_argument, NULL, MP_OPT_PROCESSES},
      {"records", required_argument, NULL, MP_OPT_RECORDS},
      {"task-duration", required_argument, NULL, MP_OPT_TASK_DURATION},
      {"db", required_argument, NULL, 'd'},
      {"mode", required_argument, NULL, 'm'},
      {"consumer", required_argument, NULL, MP_OPT_CONSUMER},
      {"port", required_argument, NULL, 'p'},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0}};
  char err[256];
  char name[8];
  long long v;
  int c;

  opterr = 0;
  while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
    switch (c) {
    case MP_OPT_PROCESSES:
      if (opt_long("--processes", optarg, 1, 200, &v, err, sizeof err) != 0) {
        goto usage;
      }
      ctx->processes = (int)v;
      break;
    case MP_OPT_RECORDS:
      if (opt_long("--records", optarg, 1, 100000, &v, err, sizeof err) != 0) {
        goto usage;
      }
      ctx->records = (int)v;
      break;
    case MP_OPT_TASK_DURATION:
      if (opt_double("--task-duration", optarg, 0, 3600, &ctx->task_duration, err, sizeof err) !=
          0) {
        goto usage;
      }
      break;
    case 'd':
      if (optarg[0] == '\0') {
        snprintf(err, sizeof err, "--db: the file name is empty");
        goto usage;
      }
      ctx->db = optarg;
      break;
    case 'm':
      if (strcmp(optarg, "naive") == 0) {
        ctx->mode = MP_NAIVE;
      } else if (strcmp(optarg, "safe") == 0) {
        ctx->mode = MP_SAFE;
      } else if (strcmp(optarg, "funnel") == 0) {
        ctx->mode = MP_FUNNEL;
      } else if (strcmp(optarg, "postgres") == 0) {
        ctx->mode = MP_POSTGRES;
      } else {
        snprintf(err, sizeof err, "--mode: '%s' is not one of naive, safe, funnel, postgres",
                 optarg);
        goto usage;
      }
      break;
    case MP_OPT_CONSUMER:
      ctx->consumer = optarg;
      break;
    case 'p':
      if (opt_long("--port", optarg, 1, 65535, &v, err, sizeof err) != 0) {
        goto usage;
      }
      ctx->port = (int)v;
      break;
    case 'h':
      mp_usage(stdout);
      return 1;
    case 'V': {
      /* libuv is not used here; its line stays because --version is the suite's environment
       * check (README). */
      const opt_version_lib libs[] = {{"libuv", uv_version_string()},
                                      {"SQLite", sqlite3_libversion()}};
      opt_print_version("multiple_processes", libs, sizeof libs / sizeof libs[0]);
      return 1;
    }
    case ':':
      snprintf(err, sizeof err, "%s: a value is required",
               opt_offender(c, argv, optind, optopt, shortopts, name, sizeof name));
      goto usage;
    default:
      snprintf(err, sizeof err, "%s: unknown option",
               opt_offender(c, argv, optind, optopt, shortopts, name, sizeof name));
      goto usage;
    }
  }
  if (optind < argc) {
    snprintf(err, sizeof err, "'%s': unexpected argument (this program takes no files)",
             argv[optind]);
    goto usage;
  }
  /* naive and safe never talk to a consumer: accepting these there would let a person believe
   * they changed something. Checked after the loop so that the order of the flags is free. */
  if (ctx->mode != MP_FUNNEL && (ctx->consumer || ctx->port)) {
    snprintf(err, sizeof err, "%s: only with --mode funnel",
             ctx->consumer ? "--consumer" : "--port");
    goto usage;
  }
  if (ctx->mode == MP_POSTGRES && !mp_db_is_postgres(ctx->db)) {
    snprintf(err, sizeof err,
             "--mode postgres: --db must name a PostgreSQL database (postgresql://USER@HOST/DB "
             "or 'host=... dbname=...'), not '%s'",
             ctx->db);
    goto usage;
  }
  /* The other modes open --db as an SQLite file (funnel's consumer too, and its count): a
   * PostgreSQL URI there would fail later as "unable to open database file". */
  if (ctx->mode != MP_POSTGRES && mp_db_is_postgres(ctx->db)) {
    snprintf(err, sizeof err,
             "--mode %s: --db is an SQLite file here, and '%.120s' names a PostgreSQL "
             "database; use --mode postgres to write PostgreSQL",
             ctx->mode == MP_NAIVE  ? "naive"
             : ctx->mode == MP_SAFE ? "safe"
                                    : "funnel",
             ctx->db);
    goto usage;
  }
  return 0;
usage:
  fprintf(stderr, "multiple_processes: %s\n(see multiple_processes --help)\n", err);
  return 2;
}

int main(int argc, char **argv) {
  mp_ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  ctx.processes = 3;
  ctx.records = 2;
  ctx.db = "shared.db";
  ctx.mode = MP_NAIVE;

  int rc = mp_parse(argc, argv, &ctx);
  if (rc == 1) {
    return fflush(stdout) == 0 ? 0 : 1;
  }
  if (rc != 0) {
    return 2;
  }
  /* A consumer that goes away must come back as EPIPE, not kill the program. */
  signal(SIGPIPE, SIG_IGN);
  /* Ctrl-C stops the processes and still prints what landed. */
  if (mp_stop_init() != 0) {
    return 1;
  }
  ctx.run_id = mp_random64() >> 1; /* fits SQLite's signed 64-bit integers */
  if (ctx.mode == MP_POSTGRES) {
    return mp_pg_run(&ctx);
  }
  return ctx.mode == MP_FUNNEL ? mp_funnel_run(&ctx) : mp_direct_run(&ctx);
}
