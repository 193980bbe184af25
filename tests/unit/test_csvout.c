/* test_csvout.c -- unit tests of the CSV writer: quoting rules, and a round trip of nasty values
 * through the writer and back through csvin. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "csvin.h"
#include "csvout.h"

#define F(s)                                                                                       \
  { s, sizeof(s) - 1 }

typedef struct out_case {
  const char *name;
  cs_field fields[4];
  size_t n;
  const char *expect;
} out_case;

static const out_case out_cases[] = {
    {"plain fields unquoted", {F("a"), F("b c"), F("007")}, 3, "a,b c,007\r\n"},
    {"comma quoted", {F("a,b"), F("c")}, 2, "\"a,b\",c\r\n"},
    {"quote doubled", {F("say \"hi\"")}, 1, "\"say \"\"hi\"\"\"\r\n"},
    {"lone quote", {F("\"")}, 1, "\"\"\"\"\r\n"},
    {"LF quoted", {F("1\n2")}, 1, "\"1\n2\"\r\n"},
    {"CR quoted", {F("1\r2")}, 1, "\"1\r2\"\r\n"},
    {"leading space quoted", {F(" x")}, 1, "\" x\"\r\n"},
    {"trailing tab quoted", {F("x\t")}, 1, "\"x\t\"\r\n"},
    {"inner space not quoted", {F("x y")}, 1, "x y\r\n"},
    {"empty fields", {F(""), F(""), F("")}, 3, ",,\r\n"},
    {"single empty field", {F("")}, 1, "\"\"\r\n"},
    {"zero fields", {F("")}, 0, "\r\n"},
    {"UTF-8 passes", {F("\xca\xa4"), F("caf\xc3\xa9")}, 2, "\xca\xa4,caf\xc3\xa9\r\n"},
};

/* Table-driven: each record is written exactly as expected. */
static void test_quoting_rules(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof out_cases / sizeof out_cases[0]; i++) {
    const out_case *oc = &out_cases[i];
    cs_buf out;
    cs_buf_init(&out);
    print_message("case: %s\n", oc->name);
    assert_int_equal(csvout_record(&out, oc->fields, oc->n), 0);
    assert_int_equal(out.len, strlen(oc->expect));
    assert_memory_equal(out.data, oc->expect, out.len);
    cs_buf_free(&out);
  }
}

/* Records append to what the buffer already holds. */
static void test_appends(void **state) {
  (void)state;
  cs_field f[] = {F("x")};
  cs_buf out;
  cs_buf_init(&out);
  assert_int_equal(csvout_record(&out, f, 1), 0);
  assert_int_equal(csvout_record(&out, f, 1), 0);
  assert_int_equal(out.len, 6);
  assert_memory_equal(out.data, "x\r\nx\r\n", 6);
  cs_buf_free(&out);
}

/* Nasty values written by csvout and read back by csvin come back byte for byte. */
static void test_round_trip(void **state) {
  (void)state;
  static const cs_field rows[][4] = {
      {F("name"), F("value"), F(" spaced "), F("")},
      {F("a,b"), F("\"quoted\""), F("line\nbreak"), F("crlf\r\nhere")},
      {F(" lead"), F("trail\t"), F(""), F("\"")},
      {{"nul\0in", 6}, F("\xef\xbb\xbfnot a bom"), F("caf\xc3\xa9 \xe2\x82\xac"), F("\r")},
      {F(""), F(""), F(""), F("")},
      {F("x"), F(",,,"), F("\"\"\"\""), F("\n\n")},
  };
  size_t nrows = sizeof rows / sizeof rows[0];
  cs_buf out;
  cs_buf_init(&out);
  for (size_t i = 0; i < nrows; i++) {
    assert_int_equal(csvout_record(&out, rows[i], 4), 0);
  }
  /* A record of one empty field must survive too (it would otherwise be a blank line). */
  cs_field lone = F("");
  assert_int_equal(csvout_record(&out, &lone, 1), 0);

  char path[] = "/tmp/test_csvout_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, out.data, out.len), (ssize_t)out.len);
  assert_int_equal(close(fd), 0);

  csvin *r = NULL;
  char err[256];
  assert_int_equal(csvin_open(&r, path, 1, err, sizeof err), 0);
  const csvin_rec *h = csvin_header(r);
  assert_non_null(h);
  assert_int_equal(h->nfields, 4);
  for (size_t k = 0; k < 4; k++) {
    assert_int_equal(h->fields[k].len, rows[0][k].len);
    assert_memory_equal(h->fields[k].data, rows[0][k].data, rows[0][k].len);
  }
  csvin_rec rec;
  for (size_t i = 1; i < nrows; i++) {
    assert_int_equal(csvin_next(r, &rec), 1);
    assert_int_equal(rec.nfields, 4);
    for (size_t k = 0; k < 4; k++) {
      assert_int_equal(rec.fields[k].len, rows[i][k].len);
      assert_memory_equal(rec.fields[k].data, rows[i][k].data, rows[i][k].len);
    }
  }
  assert_int_equal(csvin_next(r, &rec), 1);
  assert_int_equal(rec.nfields, 1);
  assert_int_equal(rec.fields[0].len, 0);
  assert_int_equal(csvin_next(r, &rec), 0);
  csvin_close(r);
  unlink(path);
  cs_buf_free(&out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_quoting_rules),
      cmocka_unit_test(test_appends),
      cmocka_unit_test(test_round_trip),
  };
  return cmocka_run_group_tests_name("csvout", tests, NULL, NULL);
}
