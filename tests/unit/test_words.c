/* test_words.c -- unit tests of common/words.c: thousands separators, plurals, the rate rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "stats.h"
#include "words.h"

/* Table: a count and how people read it. */
static void test_words_count_groups_by_thousands(void **state) {
  static const struct {
    uint64_t n;
    const char *want;
  } cases[] = {{0, "0"},
               {7, "7"},
               {999, "999"},
               {1000, "1,000"},
               {12345, "12,345"},
               {999999, "999,999"},
               {1000000, "1,000,000"},
               {UINT64_MAX, "18,446,744,073,709,551,615"}};
  char buf[WORDS_BUF];
  size_t i;
  (void)state;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_string_equal(words_count(buf, sizeof buf, cases[i].n), cases[i].want);
  }
}

/* A buffer too small is cut, never overrun, and stays terminated. */
static void test_words_count_cuts_a_small_buffer(void **state) {
  char buf[5];
  (void)state;
  memset(buf, 'x', sizeof buf);
  assert_string_equal(words_count(buf, sizeof buf, 1234567), "1,23");
  assert_string_equal(words_count(buf, 1, 12), "");
}

/* Singular for 1 only: "0 records", "1 record", "2 records"; irregular plurals as given. */
static void test_words_count_of_singular_only_for_one(void **state) {
  char buf[WORDS_BUF];
  (void)state;
  assert_string_equal(words_count_of(buf, sizeof buf, 0, "record", "records"), "0 records");
  assert_string_equal(words_count_of(buf, sizeof buf, 1, "record", "records"), "1 record");
  assert_string_equal(words_count_of(buf, sizeof buf, 2, "record", "records"), "2 records");
  assert_string_equal(words_count_of(buf, sizeof buf, 1000000, "connection", "connections"),
                      "1,000,000 connections");
  assert_string_equal(words_count_of(buf, sizeof buf, 1, "process", "processes"), "1 process");
  assert_string_equal(words_plural(3, "process", "processes"), "processes");
}

/* No rate under 10 ms; over it, one decimal with separators, rounded once. */
static void test_words_rate_only_over_10_ms(void **state) {
  char buf[WORDS_BUF];
  (void)state;
  assert_false(words_rate_known(0));
  assert_false(words_rate_known(WORDS_RATE_MIN_SPAN_US - 1));
  assert_true(words_rate_known(WORDS_RATE_MIN_SPAN_US));
  assert_string_equal(words_rate(buf, sizeof buf, 8, 9999), "-");
  assert_string_equal(words_rate(buf, sizeof buf, 8, 0), "-");
  assert_string_equal(words_rate(buf, sizeof buf, 1, 10000), "100.0");
  assert_string_equal(words_rate(buf, sizeof buf, 1000000, 1000000), "1,000,000.0");
  assert_string_equal(words_rate(buf, sizeof buf, 99996, 100000000), "1,000.0");
  assert_string_equal(words_rate(buf, sizeof buf, 5, 2000000), "2.5");
}

/* The producer and the consumer apply the same rule: one number. */
static void test_words_rate_rule_is_the_consumers(void **state) {
  (void)state;
  assert_int_equal(WORDS_RATE_MIN_SPAN_US, STATS_RATE_MIN_SPAN_US);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_words_count_groups_by_thousands),
      cmocka_unit_test(test_words_count_cuts_a_small_buffer),
      cmocka_unit_test(test_words_count_of_singular_only_for_one),
      cmocka_unit_test(test_words_rate_only_over_10_ms),
      cmocka_unit_test(test_words_rate_rule_is_the_consumers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
