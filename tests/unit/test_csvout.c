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

/* The writer's rules the slow way, byte by byte: the oracle for the tests below. */
static void oracle_record(cs_buf *out, const cs_field *fields, size_t n) {
  if (n == 1 && fields[0].len == 0) {
    assert_int_equal(cs_buf_append(out, "\"\"", 2), 0);
  }
  for (size_t i = 0; i < n && !(n == 1 && fields[0].len == 0); i++) {
    const char *d = fields[i].data;
    size_t len = fields[i].len, k;
    int quote = len > 0 && (d[0] == ' ' || d[0] == '\t' || d[len - 1] == ' ' || d[len - 1] == '\t');
    for (k = 0; k < len; k++) {
      quote |= d[k] == ',' || d[k] == '"' || d[k] == '\r' || d[k] == '\n';
    }
    if (i > 0) {
      assert_int_equal(cs_buf_append_byte(out, ','), 0);
    }
    if (quote) {
      assert_int_equal(cs_buf_append_byte(out, '"'), 0);
    }
    for (k = 0; k < len; k++) {
      assert_int_equal(cs_buf_append_byte(out, d[k]), 0);
      if (quote && d[k] == '"') {
        assert_int_equal(cs_buf_append_byte(out, '"'), 0);
      }
    }
    if (quote) {
      assert_int_equal(cs_buf_append_byte(out, '"'), 0);
    }
  }
  assert_int_equal(cs_buf_append(out, "\r\n", 2), 0);
}

/* One record through the writer and the oracle: the same bytes. */
static void check_like_oracle(const cs_field *fields, size_t n) {
  cs_buf got, want;
  cs_buf_init(&got);
  cs_buf_init(&want);
  assert_int_equal(csvout_record(&got, fields, n), 0);
  oracle_record(&want, fields, n);
  if (got.len != want.len || memcmp(got.data, want.data, got.len) != 0) {
    print_error("writer:  %.*s\noracle:  %.*s\n", (int)got.len, got.data, (int)want.len, want.data);
    fail();
  }
  cs_buf_free(&got);
  cs_buf_free(&want);
}

/* Every field length from 0 to 70 (the writer reads 1-3, 4-7, 8-16 and longer fields each
 * their own way), with each byte that matters at each position: the same bytes as the oracle.
 * Each field ends where its malloc'ed block ends, so a read past it shows under
 * AddressSanitizer. */
static void test_every_length_and_position(void **state) {
  static const char bytes[] = {',', '"', '\r', '\n', ' ', '\t', 'a', '-', (char)0x80, '\0', '+'};
  (void)state;
  for (size_t len = 0; len <= 70; len++) {
    for (size_t at = 0; at < (len > 0 ? len : 1); at++) {
      for (size_t b = 0; b < sizeof bytes; b++) {
        char *d = malloc(len > 0 ? len : 1);
        assert_non_null(d);
        memset(d, 'x', len);
        if (len > 0) {
          d[at] = bytes[b];
        }
        cs_field f[3] = {{d, len}, {"y", 1}, {d, len}};
        check_like_oracle(f, 1);
        check_like_oracle(f, 3);
        free(d);
      }
    }
  }
}

/* Random records of random fields over the bytes that matter: the same bytes as the oracle. */
static void test_random_records(void **state) {
  static const char alphabet[] = ",\"\r\n \tab0-";
  uint64_t x = 0x9e3779b97f4a7c15ull;
  (void)state;
  for (int r = 0; r < 20000; r++) {
    cs_field f[6];
    char *data[6];
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    size_t n = 1 + (size_t)(x % 6);
    for (size_t i = 0; i < n; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      size_t len = (size_t)(x % 40);
      data[i] = malloc(len > 0 ? len : 1);
      assert_non_null(data[i]);
      for (size_t k = 0; k < len; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        /* Mostly plain bytes, so that whole fields go unquoted too. */
        data[i][k] = x % 8 == 0 ? alphabet[(x >> 8) % (sizeof alphabet - 1)] : 'p';
      }
      f[i].data = data[i];
      f[i].len = len;
    }
    check_like_oracle(f, n);
    for (size_t i = 0; i < n; i++) {
      free(data[i]);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_quoting_rules),  cmocka_unit_test(test_appends),
      cmocka_unit_test(test_round_trip),     cmocka_unit_test(test_every_length_and_position),
      cmocka_unit_test(test_random_records),
  };
  return cmocka_run_group_tests_name("csvout", tests, NULL, NULL);
}
