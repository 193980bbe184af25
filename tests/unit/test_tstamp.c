/* test_tstamp.c -- unit tests of the time stamp reader: each format, time zones, fractions,
 * detection from a first value, and values that are not time stamps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"
#include "tstamp.h"

/* 2026-12-01T20:41:07Z in seconds since the epoch (date -u -d ... +%s). */
#define T0 1796157667LL

typedef struct parse_case {
  const char *text;
  int format; /* expected from tstamp_detect */
  int64_t us; /* expected from tstamp_parse */
} parse_case;

static const parse_case cases[] = {
    {"2026-12-01T20:41:07Z", TSTAMP_ISO, T0 * 1000000},
    {"2026-12-01T20:41:07", TSTAMP_ISO, T0 * 1000000},       /* no zone: read as UTC */
    {"2026-12-01 20:41:07", TSTAMP_ISO, T0 * 1000000},       /* the SQL form */
    {"2026-12-01T21:41:07+01:00", TSTAMP_ISO, T0 * 1000000}, /* a zone east of UTC */
    {"2026-12-01T15:41:07-0500", TSTAMP_ISO, T0 * 1000000},  /* west, no colon */
    {"2026-12-01T22:41:07+02", TSTAMP_ISO, T0 * 1000000},    /* hours only */
    {"2026-12-01T20:41:07.250Z", TSTAMP_ISO, T0 * 1000000 + 250000},
    {"2026-12-01 20:41:07,5", TSTAMP_ISO, T0 * 1000000 + 500000}, /* a decimal comma */
    {"2026-12-01T20:41:07.1234567Z", TSTAMP_ISO, T0 * 1000000 + 123456},
    {"2026-12-01T20:41", TSTAMP_ISO, (T0 - 7) * 1000000}, /* no seconds */
    {"2026-12-01", TSTAMP_ISO, (T0 - 74467) * 1000000},   /* a date alone: midnight */
    {"1970-01-01T00:00:00Z", TSTAMP_ISO, 0},
    {"2024-02-29T00:00:00Z", TSTAMP_ISO, 1709164800LL * 1000000}, /* a leap day */
    {"  2026-12-01T20:41:07Z ", TSTAMP_ISO, T0 * 1000000},        /* spaces around */
    {"1796157667", TSTAMP_EPOCH_S, T0 * 1000000},
    {"1796157667.25", TSTAMP_EPOCH_S, T0 * 1000000 + 250000},
    {"1796157667123", TSTAMP_EPOCH_MS, T0 * 1000000 + 123000},
    {"1796157667123.5", TSTAMP_EPOCH_MS, T0 * 1000000 + 123500},
    {"1796157667123456", TSTAMP_EPOCH_US, T0 * 1000000 + 123456},
    {"42", TSTAMP_EPOCH_S, 42000000}, /* seconds since some start: only gaps matter */
};

/* Table-driven: each value is detected as its format and parses to its time. */
static void test_formats(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const parse_case *c = &cases[i];
    int64_t us = -1;
    print_message("case: '%s'\n", c->text);
    assert_int_equal(tstamp_detect(c->text, strlen(c->text)), c->format);
    assert_int_equal(tstamp_parse(c->format, c->text, strlen(c->text), &us), 0);
    assert_int_equal(us, c->us);
  }
}

/* Values that are no time stamp: detection says unknown, and parsing refuses them. */
static void test_not_time_stamps(void **state) {
  static const char *const bad[] = {"",
                                    "abc",
                                    "2026-13-01",
                                    "2026-02-30",
                                    "2026-12-01T25:00",
                                    "2026-12-01T20:61:00",
                                    "2026-12-01X20:41:07",
                                    "2026-12-01T20:41:07+25:00",
                                    "12.",
                                    "-5",
                                    "2026/12/01 20:41:07",
                                    "1796157667123456789",
                                    "2026-12-01T20:41:07Zjunk"};
  (void)state;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int64_t us;
    print_message("bad: '%s'\n", bad[i]);
    assert_int_equal(tstamp_detect(bad[i], strlen(bad[i])), TSTAMP_UNKNOWN);
    assert_int_equal(tstamp_parse(TSTAMP_ISO, bad[i], strlen(bad[i]), &us), CS_EINVAL);
  }
}

/* Once the format is known, a value of another format does not parse (it is warned about and
 * sent at once by the replay, not read in the wrong unit). */
static void test_format_sticks(void **state) {
  int64_t us;
  (void)state;
  assert_int_equal(tstamp_parse(TSTAMP_EPOCH_S, "1796157667123", 13, &us), CS_EINVAL);
  assert_int_equal(tstamp_parse(TSTAMP_EPOCH_MS, "1796157667", 10, &us), CS_EINVAL);
  assert_int_equal(tstamp_parse(TSTAMP_ISO, "1796157667", 10, &us), CS_EINVAL);
  assert_int_equal(tstamp_parse(TSTAMP_EPOCH_S, "2026-12-01", 10, &us), CS_EINVAL);
  assert_string_equal(tstamp_format_name(TSTAMP_EPOCH_MS), "epoch milliseconds");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_formats),
      cmocka_unit_test(test_not_time_stamps),
      cmocka_unit_test(test_format_sticks),
  };
  return cmocka_run_group_tests_name("tstamp", tests, NULL, NULL);
}
