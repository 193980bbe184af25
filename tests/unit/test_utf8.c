/* test_utf8.c -- unit tests of UTF-8 checking (whole runs and a stream split anywhere) and of
 * the repair that reads invalid bytes as Windows-1252. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "utf8.h"

typedef struct check_case {
  const char *s;
  size_t len;
  int valid;
  size_t invalid_at; /* utf8_invalid_at */
} check_case;

#define C(lit, valid, at)                                                                          \
  { lit, sizeof(lit) - 1, valid, at }

static const check_case checks[] = {
    C("", 1, 0),
    C("plain ASCII, longer than eight bytes", 1, 36),
    C("caf\xC3\xA9", 1, 5),
    C("\xE2\x82\xAC 5", 1, 5),   /* the euro sign */
    C("\xF0\x9F\x98\x80", 1, 4), /* U+1F600 */
    C("caf\xE9", 0, 3),          /* Latin-1 e acute */
    C("caf\xE9s", 0, 3),         /* a lead byte followed by ASCII */
    C("\xC0\xAF", 0, 0),         /* overlong '/' */
    C("\xE0\x80\xAF", 0, 0),     /* overlong, three bytes */
    C("\xED\xA0\x80", 0, 0),     /* a surrogate */
    C("\xF4\x90\x80\x80", 0, 0), /* past U+10FFFF */
    C("ok\x80", 0, 2),           /* a lone continuation byte */
    C("cut \xE2\x82", 0, 4),     /* a character cut at the end */
    C("\xFF\xFE", 0, 0),         /* a UTF-16 byte-order mark */
    C("12345678\xC3\xA9"
      "12345678\xE9",
      0, 18), /* past the 8-byte fast path */
};

/* Table-driven: validity and the first invalid offset. */
static void test_check_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
    print_message("case %zu\n", i);
    assert_int_equal(utf8_valid(checks[i].s, checks[i].len), checks[i].valid);
    assert_int_equal(utf8_invalid_at(checks[i].s, checks[i].len), checks[i].invalid_at);
  }
}

/* A stream split at every byte gives the same verdict as the whole: the state carries a
 * character cut between two pieces. */
static void test_scan_split_anywhere(void **state) {
  const char text[] = "a\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 z";
  (void)state;
  for (size_t cut = 0; cut <= sizeof text - 1; cut++) {
    utf8_scan st = {0, 0x80, 0xBF};
    assert_int_equal(utf8_scan_feed(&st, text, cut), cut);
    assert_int_equal(utf8_scan_feed(&st, text + cut, sizeof text - 1 - cut), sizeof text - 1 - cut);
    assert_int_equal(st.need, 0);
  }
  utf8_scan st = {0, 0x80, 0xBF};
  assert_int_equal(utf8_scan_feed(&st, "ab\xE2\x82", 4), 4);
  assert_int_equal(st.need, 1);                     /* inside the euro sign */
  assert_int_equal(utf8_scan_feed(&st, "x", 1), 0); /* not its last byte */
}

/* Repair: Latin-1 and Windows-1252 bytes become their characters; valid UTF-8 is kept. */
static void test_repair(void **state) {
  static const struct {
    const char *in;
    const char *out;
    size_t replaced;
  } cases[] = {
      {"caf\xE9", "caf\xC3\xA9", 1},
      {"\x80 5", "\xE2\x82\xAC 5", 1},                               /* cp1252's euro */
      {"\x93quoted\x94", "\xE2\x80\x9Cquoted\xE2\x80\x9D", 2},       /* cp1252's quotes */
      {"\x81", "\xEF\xBF\xBD", 1},                                   /* undefined there */
      {"mixed \xC3\xA9 and \xE9", "mixed \xC3\xA9 and \xC3\xA9", 1}, /* valid kept */
      {"already fine", "already fine", 0},
  };
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cs_buf out;
    size_t n = 99;
    cs_buf_init(&out);
    assert_int_equal(utf8_repair(cases[i].in, strlen(cases[i].in), &out, &n), 0);
    assert_int_equal(out.len, strlen(cases[i].out));
    assert_memory_equal(out.data, cases[i].out, out.len);
    assert_int_equal(n, cases[i].replaced);
    assert_true(utf8_valid(out.data, out.len));
    cs_buf_free(&out);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_check_table),
      cmocka_unit_test(test_scan_split_anywhere),
      cmocka_unit_test(test_repair),
  };
  return cmocka_run_group_tests_name("utf8", tests, NULL, NULL);
}
