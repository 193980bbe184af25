/* test_producer_options.c -- unit tests for producer/producer_options.c: defaults, every flag's
 * value and range check, the conflicts between flags, and messages that name the flag. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "producer_options.h"

#define MAX_ARGS 24

/* Parse a NULL-terminated argument list (the program name is added in front). getopt_long
 * permutes the pointer array, so it is copied; the strings themselves are left alone. */
static int parse(producer_options *o, const char *const *args, char *err, size_t errlen) {
  static char *argv[MAX_ARGS + 2];
  int argc = 0;
  argv[argc++] = (char *)"producer";
  for (int i = 0; args[i] != NULL; i++) {
    assert_true(i < MAX_ARGS);
    argv[argc++] = (char *)args[i];
  }
  argv[argc] = NULL;
  return producer_options_parse(o, argc, argv, err, errlen);
}

/* Only a file: the defaults the README lists. */
static void test_defaults(void **state) {
  (void)state;
  static const char *const args[] = {"data/t.csv", NULL};
  producer_options o;
  char err[512] = "";
  assert_int_equal(parse(&o, args, err, sizeof err), PRODUCER_OPTIONS_RUN);
  assert_string_equal(err, "");
  assert_int_equal(o.udp, 0);
  assert_string_equal(o.host, "127.0.0.1");
  assert_int_equal(o.port, 9999);
  assert_float_equal(o.interval_min, 1.0, 0.0);
  assert_float_equal(o.interval_max, 3.0, 0.0);
  assert_float_equal(o.rate, 0.0, 0.0);
  assert_int_equal(o.count, 0);
  assert_int_equal(o.loop, 0);
  assert_int_equal(o.have_seed, 0);
  assert_null(o.stream);
  assert_int_equal(o.no_header, 0);
  assert_int_equal(o.quiet, 0);
  assert_null(o.stats_json);
  assert_int_equal(o.impair_on, 0);
  assert_string_equal(o.path, "data/t.csv");
}

/* Every flag at once, in both spellings of a value (separate and after '='), the file first:
 * each lands in its field. */
static void test_every_flag_parsed(void **state) {
  (void)state;
  static const char *const args[] = {
      "f.csv",      "--udp",           "--host=::1",  "--port",  "10000",
      "--interval", "0.25-0.5",        "--count=7",   "--loop",  "--seed",
      "123",        "--stream=s1",     "--no-header", "--quiet", "--stats-json=o.j",
      "--impair",   "loss=0.1,seed=5", NULL};
  producer_options o;
  char err[512] = "";
  assert_int_equal(parse(&o, args, err, sizeof err), PRODUCER_OPTIONS_RUN);
  assert_string_equal(err, "");
  assert_int_equal(o.udp, 1);
  assert_string_equal(o.host, "::1");
  assert_int_equal(o.port, 10000);
  assert_float_equal(o.interval_min, 0.25, 0.0);
  assert_float_equal(o.interval_max, 0.5, 0.0);
  assert_int_equal(o.count, 7);
  assert_int_equal(o.loop, 1);
  assert_int_equal(o.have_seed, 1);
  assert_int_equal(o.seed, 123);
  assert_string_equal(o.stream, "s1");
  assert_int_equal(o.no_header, 1);
  assert_int_equal(o.quiet, 1);
  assert_string_equal(o.stats_json, "o.j");
  assert_int_equal(o.impair_on, 1);
  assert_float_equal(o.impair.loss, 0.1, 0.0);
  assert_int_equal(o.impair.seed, 5);
  assert_string_equal(o.path, "f.csv");
}

typedef struct value_case {
  const char *args[6];
  int port;
  double interval_min, interval_max, rate;
  uint64_t count, seed;
} value_case;

/* Values at the edges of each range are accepted. */
static void test_range_edges_accepted(void **state) {
  (void)state;
  static const value_case cases[] = {
      {{"--port", "1", "f", NULL}, 1, 1, 3, 0, 0, 0},
      {{"--port", "65535", "f", NULL}, 65535, 1, 3, 0, 0, 0},
      {{"--interval", "0", "f", NULL}, 9999, 0, 0, 0, 0, 0},
      {{"--interval", "3600", "f", NULL}, 9999, 3600, 3600, 0, 0, 0},
      {{"--interval", "0-3600", "f", NULL}, 9999, 0, 3600, 0, 0, 0},
      {{"--interval", "2", "f", NULL}, 9999, 2, 2, 0, 0, 0},
      {{"--rate", "0.001", "f", NULL}, 9999, 1, 3, 0.001, 0, 0},
      {{"--rate", "10000000", "f", NULL}, 9999, 1, 3, 1e7, 0, 0},
      {{"--count", "1", "f", NULL}, 9999, 1, 3, 0, 1, 0},
      {{"--count", "9223372036854775807", "f", NULL}, 9999, 1, 3, 0, 9223372036854775807ULL, 0},
      {{"--seed", "0", "f", NULL}, 9999, 1, 3, 0, 0, 0},
      {{"--seed", "9223372036854775807", "f", NULL}, 9999, 1, 3, 0, 0, 9223372036854775807ULL},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    producer_options o;
    char err[512] = "";
    print_message("%s %s\n", cases[c].args[0], cases[c].args[1]);
    assert_int_equal(parse(&o, cases[c].args, err, sizeof err), PRODUCER_OPTIONS_RUN);
    assert_string_equal(err, "");
    assert_int_equal(o.port, cases[c].port);
    assert_float_equal(o.interval_min, cases[c].interval_min, 0.0);
    assert_float_equal(o.interval_max, cases[c].interval_max, 0.0);
    assert_float_equal(o.rate, cases[c].rate, 0.0);
    assert_int_equal(o.count, cases[c].count);
    assert_int_equal(o.seed, cases[c].seed);
  }
}

typedef struct bad_case {
  const char *args[8];
  const char *message;
} bad_case;

/* Each bad value or combination is refused with CS_EINVAL and a message naming the flag (the
 * caller prints it and exits 2). */
static void test_bad_values_name_the_flag(void **state) {
  (void)state;
  static const bad_case cases[] = {
      {{"--port", "0", "f", NULL}, "--port: '0' is out of range (1-65535)"},
      {{"--port", "65536", "f", NULL}, "--port: '65536' is out of range (1-65535)"},
      {{"--port", "99x", "f", NULL}, "--port: '99x' is not a whole number"},
      {{"--port=", "f", NULL}, "--port: a value is required (1-65535)"},
      {{"f", "--port", NULL}, "--port: needs a value"},
      {{"--host", "", "f", NULL}, "--host: empty host name"},
      {{"--interval", "3-1", "f", NULL}, "--interval: '3-1': MIN is larger than MAX"},
      {{"--interval", "-1", "f", NULL}, "--interval: '-1' is out of range (0-3600)"},
      {{"--interval", "3601", "f", NULL}, "--interval: '3601' is out of range (0-3600)"},
      {{"--interval", "1-3601", "f", NULL}, "--interval: '3601' is out of range (0-3600)"},
      {{"--interval", "x", "f", NULL}, "--interval: 'x' is not a number"},
      {{"--interval", "1-x", "f", NULL}, "--interval: 'x' is not a number"},
      {{"--interval=", "f", NULL}, "--interval: a value is required (SECONDS or MIN-MAX)"},
      {{"--rate", "0", "f", NULL}, "--rate: '0' must be > 0 (records a second)"},
      {{"--rate", "1e-300", "f", NULL},
       "--rate: '1e-300' is too slow (at least 0.0001: one record every 10,000 s)"},
      {{"--rate", "-5", "f", NULL}, "--rate: '-5' is out of range (0-1e+07)"},
      {{"--rate", "1e8", "f", NULL}, "--rate: '1e8' is out of range (0-1e+07)"},
      {{"--rate", "fast", "f", NULL}, "--rate: 'fast' is not a number"},
      {{"--count", "0", "f", NULL}, "--count: '0' is out of range (1-9223372036854775807)"},
      {{"--count", "-3", "f", NULL}, "--count: '-3' is out of range (1-9223372036854775807)"},
      {{"--count", "ten", "f", NULL}, "--count: 'ten' is not a whole number"},
      {{"--seed", "-1", "f", NULL}, "--seed: '-1' is out of range (0-9223372036854775807)"},
      {{"--seed", "1.5", "f", NULL}, "--seed: '1.5' is not a whole number"},
      {{"--stream", "", "f", NULL}, "--stream: the name must be 1-255 bytes (got 0)"},
      {{"--stats-json", "", "f", NULL}, "--stats-json: empty file name"},
      {{"--udp", "--impair", "loss=2", "f", NULL}, "--impair loss: '2' is out of range (0-1)"},
      {{"--udp", "--impair", "jitter=1", "f", NULL},
       "--impair: unknown key 'jitter' (known: loss, dup, reorder, delay, seed)"},
      {{"--impair", "loss=0.1", "f", NULL},
       "--impair works only with --udp: TCP retransmits lost segments and restores order, so "
       "the loss would never show (that difference is the lesson)"},
      {{"--tcp", "--impair", "loss=0.1", "f", NULL},
       "--impair works only with --udp: TCP retransmits lost segments and restores order, so "
       "the loss would never show (that difference is the lesson)"},
      {{"--tcp", "--udp", "f", NULL}, "--tcp and --udp: pick one protocol"},
      {{"--rate", "5", "--interval", "1", "f", NULL},
       "--rate and --interval: pick one way to pace"},
      {{"--bogus", "f", NULL}, "--bogus: unknown option"},
      {{"-x", "f", NULL}, "-x: unknown option"},
      {{NULL}, "missing FILE.csv (or - for standard input)"},
      {{"--udp", NULL}, "missing FILE.csv (or - for standard input)"},
      {{"a.csv", "b.csv", NULL}, "'b.csv': only one FILE.csv may be given"},
      {{"", NULL}, "FILE.csv: empty file name"},
      {{"--loop", "-", NULL}, "--loop: standard input cannot be read again; give a file"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    producer_options o;
    char err[512] = "";
    print_message("case %zu: %s %s\n", c, cases[c].args[0] ? cases[c].args[0] : "(none)",
                  cases[c].args[0] && cases[c].args[1] ? cases[c].args[1] : "");
    assert_int_equal(parse(&o, cases[c].args, err, sizeof err), CS_EINVAL);
    assert_string_equal(err, cases[c].message);
  }
}

/* --stream takes 1-255 bytes (the wire's limit): 255 is accepted, 256 refused. */
static void test_stream_name_length(void **state) {
  (void)state;
  static char name[257];
  const char *args[] = {"--stream", name, "f", NULL};
  producer_options o;
  char err[512] = "";
  memset(name, 's', 255);
  name[255] = '\0';
  assert_int_equal(parse(&o, args, err, sizeof err), PRODUCER_OPTIONS_RUN);
  assert_int_equal(strlen(o.stream), 255);
  name[255] = 's';
  name[256] = '\0';
  assert_int_equal(parse(&o, args, err, sizeof err), CS_EINVAL);
  assert_string_equal(err, "--stream: the name must be 1-255 bytes (got 256)");
}

/* The file may come anywhere among the flags, and '-' (standard input) is a file, not a flag. */
static void test_file_anywhere_and_stdin(void **state) {
  (void)state;
  static const char *const middle[] = {"--udp", "x.csv", "--count", "3", NULL};
  static const char *const dash[] = {"--interval", "0", "-", NULL};
  producer_options o;
  char err[512] = "";
  assert_int_equal(parse(&o, middle, err, sizeof err), PRODUCER_OPTIONS_RUN);
  assert_string_equal(o.path, "x.csv");
  assert_int_equal(o.udp, 1);
  assert_int_equal(o.count, 3);
  assert_int_equal(parse(&o, dash, err, sizeof err), PRODUCER_OPTIONS_RUN);
  assert_string_equal(o.path, "-");
}

/* Run producer_options_parse with stdout going to a temporary file; return its rc and what it
 * printed. */
static int parse_capturing_stdout(const char *const *args, char *out, size_t cap) {
  char path[] = "/tmp/test_producer_options_XXXXXX";
  producer_options o;
  char err[512] = "";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  fflush(stdout);
  int saved = dup(STDOUT_FILENO);
  assert_true(saved >= 0);
  assert_true(dup2(fd, STDOUT_FILENO) >= 0);
  int rc = parse(&o, args, err, sizeof err);
  fflush(stdout);
  assert_true(dup2(saved, STDOUT_FILENO) >= 0);
  close(saved);
  assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
  ssize_t n = read(fd, out, cap - 1);
  assert_true(n >= 0);
  out[n] = '\0';
  close(fd);
  unlink(path);
  return rc;
}

/* --help prints the usage to stdout and tells the caller to exit 0, even with other flags and
 * no file; it does not exit by itself. */
static void test_help_prints_usage_and_returns(void **state) {
  (void)state;
  static const char *const args[] = {"--udp", "--help", NULL};
  static char out[16384];
  assert_int_equal(parse_capturing_stdout(args, out, sizeof out), PRODUCER_OPTIONS_EXIT);
  assert_non_null(strstr(out, "Usage: producer"));
  assert_non_null(strstr(out, "--impair SPEC"));
}

/* --version prints the versions to stdout and tells the caller to exit 0. */
static void test_version_prints_and_returns(void **state) {
  (void)state;
  static const char *const args[] = {"--version", NULL};
  static char out[16384];
  assert_int_equal(parse_capturing_stdout(args, out, sizeof out), PRODUCER_OPTIONS_EXIT);
  assert_non_null(strstr(out, "producer"));
}

/* Each short option lands in the field of its long form, bundled or apart, value attached or
 * separate. */
static void test_short_options_mean_their_long_forms(void **state) {
  (void)state;
  static const char *const args[] = {"-uq", "-H", "::1", "-p10000", "-i", "0.25-0.5",
                                     "-c",  "7",  "-l",  "f.csv",   NULL};
  static const char *const tcp_rate[] = {"-t", "-r", "20", "f.csv", NULL};
  producer_options o;
  char err[512] = "";
  assert_int_equal(parse(&o, args, err, sizeof err), PRODUCER_OPTIONS_RUN);
  assert_string_equal(err, "");
  assert_int_equal(o.udp, 1);
  assert_int_equal(o.quiet, 1);
  assert_string_equal(o.host, "::1");
  assert_int_equal(o.port, 10000);
  assert_float_equal(o.interval_min, 0.25, 0.0);
  assert_float_equal(o.interval_max, 0.5, 0.0);
  assert_int_equal(o.count, 7);
  assert_int_equal(o.loop, 1);
  assert_string_equal(o.path, "f.csv");
  assert_int_equal(parse(&o, tcp_rate, err, sizeof err), PRODUCER_OPTIONS_RUN);
  assert_int_equal(o.udp, 0);
  assert_float_equal(o.rate, 20.0, 0.0);
}

/* A usage error names the option as it was typed: the letter for a short one (even inside a
 * bundle), the word for a long one. */
static void test_short_option_errors_name_the_letter(void **state) {
  (void)state;
  static const struct {
    const char *args[4];
    const char *want;
  } cases[] = {
      {{"-x", "f.csv", NULL}, "-x: unknown option"},
      {{"-qx", "f.csv", NULL}, "-x: unknown option"},
      {{"-xq", "f.csv", NULL}, "-x: unknown option"},
      {{"--udp", "-xq", "f.csv", NULL}, "-x: unknown option"},
      {{"--quiet=1", "f.csv", NULL}, "--quiet=1: unknown option"},
      {{"--frob", "f.csv", NULL}, "--frob: unknown option"},
      {{"f.csv", "-p", NULL}, "-p: needs a value"},
      {{"f.csv", "-qp", NULL}, "-p: needs a value"},
      {{"f.csv", "--port", NULL}, "--port: needs a value"},
      {{"-p", "0", "f.csv", NULL}, "--port: '0' is out of range (1-65535)"},
      {{"-t", "-u", "f.csv", NULL}, "--tcp and --udp: pick one protocol"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    producer_options o;
    char err[512] = "";
    print_message("case %zu: %s\n", i, cases[i].want);
    assert_int_equal(parse(&o, cases[i].args, err, sizeof err), CS_EINVAL);
    if (strcmp(err, cases[i].want) != 0) {
      fail_msg("case %zu: got '%s', want '%s'", i, err, cases[i].want);
    }
  }
}

/* The input's dialect and the replay: values land in their fields; --loop takes an optional
 * N (a bare --loop is for ever, and -l stays bare). */
static void test_dialect_and_replay_flags(void **state) {
  (void)state;
  static const char *const a1[] = {
      "--delimiter", "tab",       "--encoding", "latin1",       "--skip-lines",
      "2",           "--comment", "#",          "--timestamps", "time",
      "--speed",     "600",       "--max-gap",  "1.5",          "--loop=3",
      "f.csv",       NULL};
  static const char *const a2[] = {"--delimiter=auto", "--encoding=auto", "--loop", "f.csv", NULL};
  static const char *const a3[] = {"--delimiter", "\\t", "-l", "f.csv", NULL};
  static const char *const a4[] = {"--delimiter", ";", "--timestamps", "3", "f.csv", NULL};
  producer_options o;
  char err[512] = "";
  assert_int_equal(parse(&o, a1, err, sizeof err), PRODUCER_OPTIONS_RUN);
  assert_int_equal(o.delimiter, '\t');
  assert_int_equal(o.delimiter_auto, 0);
  assert_string_equal(o.encoding, "latin1");
  assert_int_equal(o.skip_lines, 2);
  assert_int_equal(o.comment, '#');
  assert_string_equal(o.timestamps, "time");
  assert_float_equal(o.speed, 600.0, 0.0);
  assert_float_equal(o.max_gap_s, 1.5, 0.0);
  assert_int_equal(o.loop, 1);
  assert_int_equal(o.loop_passes, 3);
  assert_int_equal(parse(&o, a2, err, sizeof err), PRODUCER_OPTIONS_RUN);
  assert_int_equal(o.delimiter_auto, 1);
  assert_string_equal(o.encoding, "auto");
  assert_int_equal(o.loop, 1);
  assert_int_equal(o.loop_passes, 0);
  assert_int_equal(parse(&o, a3, err, sizeof err), PRODUCER_OPTIONS_RUN);
  assert_int_equal(o.delimiter, '\t');
  assert_int_equal(o.loop_passes, 0);
  assert_string_equal(o.path, "f.csv");
  assert_int_equal(parse(&o, a4, err, sizeof err), PRODUCER_OPTIONS_RUN);
  assert_int_equal(o.delimiter, ';');
  assert_float_equal(o.speed, 1.0, 0.0); /* the default */
}

/* Values and combinations that do not work, each named. */
static void test_dialect_and_replay_errors(void **state) {
  (void)state;
  static const struct {
    const char *args[6];
    const char *want;
  } cases[] = {
      {{"--delimiter", "\"", "f.csv"},
       "--delimiter: '\"' is not one character (give one byte such as ; | : #, or tab; not a "
       "quote or a line break)"},
      {{"--comment", "##", "f.csv"},
       "--comment: '##' is not one character (give one byte such as ; | : #, or tab; not a "
       "quote or a line break)"},
      {{"--skip-lines", "-1", "f.csv"},
       "--skip-lines: '-1' is out of range (0-9223372036854775807)"},
      {{"--max-gap", "0", "--timestamps", "t", "f.csv"}, "--max-gap: '0' must be > 0 (seconds)"},
      {{"--speed", "-1", "--timestamps", "t", "f.csv"}, "--speed: '-1' is out of range (0-1e+09)"},
      {{"--loop=x", "f.csv"}, "--loop: 'x' is not a whole number"},
      {{"--timestamps", "t", "--interval", "1", "f.csv"},
       "--timestamps and --interval: pick one way to pace"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    producer_options o;
    char err[512] = "";
    print_message("case %zu: %s\n", i, cases[i].want);
    assert_int_equal(parse(&o, cases[i].args, err, sizeof err), CS_EINVAL);
    if (strcmp(err, cases[i].want) != 0) {
      fail_msg("case %zu: got '%s', want '%s'", i, err, cases[i].want);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_every_flag_parsed),
      cmocka_unit_test(test_short_options_mean_their_long_forms),
      cmocka_unit_test(test_short_option_errors_name_the_letter),
      cmocka_unit_test(test_range_edges_accepted),
      cmocka_unit_test(test_bad_values_name_the_flag),
      cmocka_unit_test(test_stream_name_length),
      cmocka_unit_test(test_file_anywhere_and_stdin),
      cmocka_unit_test(test_help_prints_usage_and_returns),
      cmocka_unit_test(test_version_prints_and_returns),
      cmocka_unit_test(test_dialect_and_replay_flags),
      cmocka_unit_test(test_dialect_and_replay_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
