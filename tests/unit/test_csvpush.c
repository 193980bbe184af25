/* test_csvpush.c -- unit tests of the push CSV parser: table-driven inputs fed whole and split at
 * every byte give the same records; the last record without a line end; the record and field
 * limits; broken quoting; reset between datagrams; a callback's stop code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "csvpush.h"
#include "error.h"

/* The records seen, as text: fields joined by '|', records ended by ';'. */
typedef struct seen {
  cs_buf text;
  size_t records;
  int stop_after; /* return 99 from the callback after this many records (0: never) */
} seen;

static int seen_cb(const cs_field *fields, size_t n, size_t bytes, void *arg) {
  seen *s = arg;
  (void)bytes;
  for (size_t i = 0; i < n; i++) {
    if (i > 0) {
      assert_int_equal(cs_buf_append_byte(&s->text, '|'), 0);
    }
    assert_int_equal(cs_buf_append(&s->text, fields[i].data, fields[i].len), 0);
  }
  assert_int_equal(cs_buf_append_byte(&s->text, ';'), 0);
  s->records++;
  return s->stop_after != 0 && s->records >= (size_t)s->stop_after ? 99 : 0;
}

typedef struct push_case {
  const char *name;
  const char *input;
  const char *expect; /* the records as seen_cb writes them */
} push_case;

static const push_case push_cases[] = {
    {"LF lines", "a,b\n1,2\n", "a|b;1|2;"},
    {"CRLF lines", "a,b\r\n1,2\r\n", "a|b;1|2;"},
    {"last line without a line end", "a,b\n1,2", "a|b;1|2;"},
    {"quoted comma, quote, newline", "\"x,y\",\"say \"\"hi\"\"\",\"l1\nl2\"\n",
     "x,y|say \"hi\"|l1\nl2;"},
    {"spaces kept", "  a , b  \n", "  a | b  ;"},
    {"empty fields", ",,\n", "||;"},
    {"blank lines skipped", "a\n\n\nb\n", "a;b;"},
    {"UTF-8 passes", "caf\xc3\xa9,\xf0\x9f\x98\x80\n", "caf\xc3\xa9|\xf0\x9f\x98\x80;"},
};

/* Feed input in pieces of `step` bytes (0: whole), then finish. */
static void feed_all(csvpush *p, const char *input, size_t step, seen *s) {
  size_t len = strlen(input), off = 0;
  if (step == 0) {
    step = len > 0 ? len : 1;
  }
  while (off < len) {
    size_t n = len - off < step ? len - off : step;
    assert_int_equal(csvpush_feed(p, input + off, n, seen_cb, s), 0);
    off += n;
  }
  assert_int_equal(csvpush_finish(p, seen_cb, s), 0);
}

/* Table-driven: each input gives its records, fed whole and fed a byte at a time. */
static void test_records_whole_and_split(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof push_cases / sizeof push_cases[0]; i++) {
    for (size_t step = 0; step <= 1; step++) {
      const push_case *pc = &push_cases[i];
      csvpush *p;
      seen s;
      memset(&s, 0, sizeof s);
      cs_buf_init(&s.text);
      print_message("case: %s (%s)\n", pc->name, step ? "a byte at a time" : "whole");
      assert_int_equal(csvpush_new(&p, 1 << 20), 0);
      feed_all(p, pc->input, step, &s);
      assert_int_equal(s.text.len, strlen(pc->expect));
      assert_memory_equal(s.text.data, pc->expect, s.text.len);
      csvpush_free(p);
      cs_buf_free(&s.text);
    }
  }
}

/* A record longer than the limit is CS_ETOOBIG, and the parser refuses more until reset. */
static void test_record_limit(void **state) {
  csvpush *p;
  seen s;
  char *big = malloc(64 * 1024);
  (void)state;
  memset(&s, 0, sizeof s);
  cs_buf_init(&s.text);
  assert_non_null(big);
  memset(big, 'x', 64 * 1024);
  assert_int_equal(csvpush_new(&p, 16 * 1024), 0);
  assert_int_equal(csvpush_feed(p, "ok\n", 3, seen_cb, &s), 0);
  assert_int_equal(csvpush_feed(p, big, 64 * 1024, seen_cb, &s), CS_ETOOBIG);
  assert_string_equal(csvpush_error(p), "a record longer than the limit");
  assert_int_equal(csvpush_feed(p, "a\n", 2, seen_cb, &s), CS_EINVAL);
  assert_int_equal(s.records, 1);
  csvpush_reset(p);
  assert_int_equal(csvpush_feed(p, "a\n", 2, seen_cb, &s), 0);
  assert_int_equal(s.records, 2);
  /* Many records in one feed, each small, are no record over the limit. */
  for (int i = 0; i < 64 * 1024; i += 2) {
    big[i] = 'y';
    big[i + 1] = '\n';
  }
  assert_int_equal(csvpush_feed(p, big, 64 * 1024, seen_cb, &s), 0);
  assert_int_equal(s.records, 2 + 32 * 1024);
  assert_int_equal(csvpush_pending(p), 0);
  csvpush_free(p);
  cs_buf_free(&s.text);
  free(big);
}

/* A long record, then short ones: still parsed right after the parser gave its memory back
 * (the long field is split over many pieces, and a short record follows in the same feed). */
static void test_long_record_then_short(void **state) {
  size_t n = 512 * 1024;
  char *data = malloc(n + 16);
  csvpush *p;
  seen s;
  (void)state;
  memset(&s, 0, sizeof s);
  cs_buf_init(&s.text);
  assert_non_null(data);
  data[0] = '"';
  memset(data + 1, 'z', n);
  memcpy(data + 1 + n, "\",1\nab,c", 9);
  assert_int_equal(csvpush_new(&p, 1 << 20), 0);
  assert_int_equal(csvpush_feed(p, data, n + 9, seen_cb, &s), 0);
  assert_int_equal(csvpush_feed(p, "\nx,y\n", 5, seen_cb, &s), 0);
  assert_int_equal(csvpush_finish(p, seen_cb, &s), 0);
  assert_int_equal(s.records, 3);
  assert_int_equal(s.text.len, n + 2 + 1 + 5 + 4);
  assert_memory_equal(s.text.data + n, "|1;ab|c;x|y;", 12);
  csvpush_free(p);
  cs_buf_free(&s.text);
  free(data);
}

/* A line of commas past CSVPUSH_MAX_FIELDS is CS_ETOOBIG too. */
static void test_field_limit(void **state) {
  size_t n = CSVPUSH_MAX_FIELDS + 10;
  char *commas = malloc(n);
  csvpush *p;
  seen s;
  (void)state;
  memset(&s, 0, sizeof s);
  assert_non_null(commas);
  memset(commas, ',', n);
  assert_int_equal(csvpush_new(&p, 8u << 20), 0);
  assert_int_equal(csvpush_feed(p, commas, n, seen_cb, &s), CS_ETOOBIG);
  assert_string_equal(csvpush_error(p), "a record with more fields than the limit");
  csvpush_free(p);
  free(commas);
}

/* Broken quoting is CS_ECSV; a quote never closed is CS_ECSV at the finish. */
static void test_broken_quoting(void **state) {
  csvpush *p;
  seen s;
  (void)state;
  memset(&s, 0, sizeof s);
  cs_buf_init(&s.text);
  assert_int_equal(csvpush_new(&p, 1 << 20), 0);
  assert_int_equal(csvpush_feed(p, "a,b\nx\"y,z\n", 10, seen_cb, &s), CS_ECSV);
  assert_int_equal(s.records, 1);
  csvpush_reset(p);
  assert_int_equal(csvpush_feed(p, "\"open\n", 6, seen_cb, &s), 0);
  assert_int_equal(csvpush_finish(p, seen_cb, &s), CS_ECSV);
  assert_string_equal(csvpush_error(p), "a quoted field that never ends");
  /* finish resets: the next datagram parses on its own. */
  assert_int_equal(csvpush_feed(p, "1,2", 3, seen_cb, &s), 0);
  assert_int_equal(csvpush_finish(p, seen_cb, &s), 0);
  assert_int_equal(s.records, 2);
  csvpush_free(p);
  cs_buf_free(&s.text);
}

/* The callback's non-zero value stops the feed and is returned. */
static void test_callback_stops(void **state) {
  csvpush *p;
  seen s;
  (void)state;
  memset(&s, 0, sizeof s);
  cs_buf_init(&s.text);
  s.stop_after = 2;
  assert_int_equal(csvpush_new(&p, 1 << 20), 0);
  assert_int_equal(csvpush_feed(p, "1\n2\n3\n4\n", 8, seen_cb, &s), 99);
  assert_int_equal(s.records, 2);
  csvpush_free(p);
  cs_buf_free(&s.text);
  csvpush_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_records_whole_and_split),
      cmocka_unit_test(test_record_limit),
      cmocka_unit_test(test_field_limit),
      cmocka_unit_test(test_broken_quoting),
      cmocka_unit_test(test_callback_stops),
      cmocka_unit_test(test_long_record_then_short),
  };
  return cmocka_run_group_tests_name("csvpush", tests, NULL, NULL);
}
