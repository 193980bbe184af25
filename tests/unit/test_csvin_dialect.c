/* test_csvin_dialect.c -- unit tests of the CSV reader's dialects and encodings: delimiters
 * (given and sniffed), Latin-1, Windows-1252's euro and quotes, UTF-16LE/BE with a byte-order
 * mark, warnings for text that is not UTF-8, errors for bytes an encoding does not have,
 * skipped title lines and comments, and rewinding all of them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "csvin.h"
#include "error.h"

/* Write len bytes to a fresh temporary file; returns its path (one static slot). */
static const char *temp_csv(const void *data, size_t len) {
  static char path[64];
  snprintf(path, sizeof path, "/tmp/test_csvin_dialect_XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, len), (ssize_t)len);
  assert_int_equal(close(fd), 0);
  return path;
}

#define TEMP(lit) temp_csv(lit, sizeof(lit) - 1)

/* Warnings the reader made, one per line of text. */
typedef struct warnings {
  char text[4096];
  int n;
} warnings;

static void collect_warning(void *arg, const char *msg) {
  warnings *w = arg;
  size_t len = strlen(w->text);
  snprintf(w->text + len, sizeof w->text - len, "%s\n", msg);
  w->n++;
}

/* Everything read: the header and records flattened ("a|b\n"), the final code, the error. */
typedef struct read_result {
  char text[8192];
  size_t len;
  int rc;
  char err[1024];
  char choices[400];
  uint64_t skipped, comments, bad_utf8;
  warnings warn;
} read_result;

static void flatten(read_result *res, const csvin_rec *rec) {
  for (size_t i = 0; i < rec->nfields; i++) {
    assert_true(res->len + rec->fields[i].len + 3 < sizeof res->text);
    if (i > 0) {
      res->text[res->len++] = '|';
    }
    memcpy(res->text + res->len, rec->fields[i].data, rec->fields[i].len);
    res->len += rec->fields[i].len;
  }
  res->text[res->len++] = '\n';
  res->text[res->len] = '\0';
}

/* Open path with d (its warnings collected), read it whole; returns the open's code. */
static int read_with(const char *path, int has_header, csvin_dialect *d, read_result *res) {
  csvin *r = NULL;
  csvin_rec rec;
  memset(res, 0, sizeof *res);
  d->warn_cb = collect_warning;
  d->warn_arg = &res->warn;
  int rc = csvin_open_dialect(&r, path, has_header, d, res->err, sizeof res->err);
  if (rc != 0) {
    return rc;
  }
  if (csvin_header(r) != NULL) {
    flatten(res, csvin_header(r));
  }
  while ((res->rc = csvin_next(r, &rec)) == 1) {
    flatten(res, &rec);
  }
  snprintf(res->err, sizeof res->err, "%s", csvin_error(r));
  snprintf(res->choices, sizeof res->choices, "%s", csvin_choices(r));
  res->skipped = csvin_skipped_lines(r);
  res->comments = csvin_comment_lines(r);
  res->bad_utf8 = csvin_invalid_utf8_lines(r);
  csvin_close(r);
  return 0;
}

/* A ';'-separated Latin-1 file with a title line: UTF-8 fields, the title not a record. */
static void test_latin1_semicolon_title(void **state) {
  (void)state;
  const char *path =
      TEMP("Tabelle 1: Caf\xe9s\r\nname;prix\r\nCaf\xe9;\"3,50\"\r\nM\xfcnchen;4\r\n");
  csvin_dialect d = {.delimiter = ';', .encoding = "latin1", .skip_lines = 1};
  read_result res;
  assert_int_equal(read_with(path, 1, &d, &res), 0);
  unlink(path);
  assert_int_equal(res.rc, 0);
  assert_string_equal(res.text, "name|prix\nCaf\xc3\xa9|3,50\nM\xc3\xbcnchen|4\n");
  assert_int_equal(res.skipped, 1);
  assert_int_equal(res.warn.n, 0);
}

/* Windows-1252's euro sign and curly quotes, which Latin-1 does not have. */
static void test_windows_1252_euro_and_quotes(void **state) {
  (void)state;
  const char *path = TEMP("item,price\n\x93"
                          "Caf\xe9\x94,\x80 3\n");
  csvin_dialect d = {.encoding = "windows-1252"};
  read_result res;
  assert_int_equal(read_with(path, 1, &d, &res), 0);
  unlink(path);
  assert_int_equal(res.rc, 0);
  assert_string_equal(res.text, "item|price\n\xe2\x80\x9c"
                                "Caf\xc3\xa9\xe2\x80\x9d|\xe2\x82\xac 3\n");
}

/* UTF-16 with a byte-order mark, either byte order, read by --encoding auto. */
static void test_utf16_bom_auto(void **state) {
  (void)state;
  static const char le[] = "\xff\xfe"
                           "a\0,\0b\0\r\0\n\0\xe9\0,\0\xac\x20\r\0\n\0";
  static const char be[] = "\xfe\xff"
                           "\0a\0,\0b\0\n\0\xe9\0,\x20\xac\0\n";
  const struct {
    const char *bytes;
    size_t len;
    const char *name;
  } cases[] = {{le, sizeof le - 1, "UTF-16LE"}, {be, sizeof be - 1, "UTF-16BE"}};
  for (size_t i = 0; i < 2; i++) {
    const char *path = temp_csv(cases[i].bytes, cases[i].len);
    csvin_dialect d = {.encoding = "auto"};
    read_result res;
    assert_int_equal(read_with(path, 1, &d, &res), 0);
    unlink(path);
    assert_int_equal(res.rc, 0);
    assert_string_equal(res.text, "a|b\n\xc3\xa9|\xe2\x82\xac\n");
    assert_non_null(strstr(res.choices, cases[i].name));
    assert_non_null(strstr(res.choices, "byte-order mark"));
  }
}

/* A UTF-16 byte-order mark in a file read as UTF-8 (the default) is an error that says what to
 * do, not garbage sent with exit 0. */
static void test_utf16_bom_as_utf8_refused(void **state) {
  (void)state;
  const char *path = TEMP("\xff\xfe"
                          "a\0,\0b\0\n\0");
  csvin *r = NULL;
  char err[512];
  assert_int_equal(csvin_open(&r, path, 1, err, sizeof err), CS_ECSV);
  unlink(path);
  assert_null(r);
  assert_non_null(strstr(err, "UTF-16LE byte-order mark"));
  assert_non_null(strstr(err, "--encoding auto"));
}

/* auto without a byte-order mark: UTF-8 when the whole file is, else windows-1252. */
static void test_auto_utf8_or_windows_1252(void **state) {
  (void)state;
  const char *path = TEMP("a,b\ncaf\xc3\xa9,1\n");
  csvin_dialect d = {.encoding = "auto"};
  read_result res;
  assert_int_equal(read_with(path, 1, &d, &res), 0);
  unlink(path);
  assert_string_equal(res.text, "a|b\ncaf\xc3\xa9|1\n");
  assert_non_null(strstr(res.choices, "encoding UTF-8"));

  path = TEMP("a,b\nok,1\ncaf\xe9,\x80\n");
  csvin_dialect d2 = {.encoding = "auto"};
  assert_int_equal(read_with(path, 1, &d2, &res), 0);
  unlink(path);
  assert_string_equal(res.text, "a|b\nok|1\ncaf\xc3\xa9|\xe2\x82\xac\n");
  assert_non_null(strstr(res.choices, "encoding windows-1252"));
  assert_non_null(strstr(res.choices, "byte 0xE9 at offset 12"));
}

/* The default reads bytes as they are: one warning for each line that is not valid UTF-8,
 * naming the line and the offset; the bytes come through unchanged. */
static void test_invalid_utf8_warned_per_line(void **state) {
  (void)state;
  const char *path = TEMP("a,b\ncaf\xe9,na\xefve\nfine,ok\n\"two\nli\xe9nes\",x\n");
  csvin_dialect d = {0};
  read_result res;
  assert_int_equal(read_with(path, 1, &d, &res), 0);
  unlink(path);
  assert_int_equal(res.rc, 0);
  assert_string_equal(res.text, "a|b\ncaf\xe9|na\xefve\nfine|ok\ntwo\nli\xe9nes|x\n");
  assert_int_equal(res.warn.n, 2);
  assert_int_equal(res.bad_utf8, 2);
  assert_non_null(strstr(res.warn.text, ":2: not valid UTF-8 at byte 4 of the line (offset 7 in"));
  assert_non_null(strstr(res.warn.text, ":5: not valid UTF-8 at byte 3 of the line (offset 30 in"));
}

/* A byte the named encoding does not have is an error with its line and offset, after every
 * record before it. */
static void test_byte_not_in_encoding(void **state) {
  (void)state;
  const char *path = TEMP("a\nx\ny\x81z\n");
  csvin_dialect d = {.encoding = "windows-1252"};
  read_result res;
  assert_int_equal(read_with(path, 1, &d, &res), 0);
  unlink(path);
  assert_int_equal(res.rc, CS_ECSV);
  assert_string_equal(res.text, "a\nx\n");
  assert_non_null(strstr(res.err, ":3: byte 0x81 at offset 5 is not valid windows-1252"));
}

/* Comments are skipped where a record could start (not inside a quoted field) and counted. */
static void test_comments_and_skip_lines(void **state) {
  (void)state;
  const char *path = TEMP("title\r\nsubtitle\r\n# c1\r\nh1,h2\r\n#c2\r\n1,\"x\r\n#not\"\r\n#c3");
  csvin_dialect d = {.skip_lines = 2, .comment = '#'};
  read_result res;
  assert_int_equal(read_with(path, 1, &d, &res), 0);
  unlink(path);
  assert_int_equal(res.rc, 0);
  assert_string_equal(res.text, "h1|h2\n1|x\r\n#not\n");
  assert_int_equal(res.skipped, 2);
  assert_int_equal(res.comments, 3);
}

/* A given tab delimiter, and a sniffed one that the choices line names. */
static void test_delimiters(void **state) {
  (void)state;
  const char *path = TEMP("a\tb,c\n1\t2,3\n");
  csvin_dialect d = {.delimiter = '\t'};
  read_result res;
  assert_int_equal(read_with(path, 1, &d, &res), 0);
  unlink(path);
  assert_string_equal(res.text, "a|b,c\n1|2,3\n");

  path = TEMP("Report\nx|y|z\n1|2|3\n4|5|6\n");
  csvin_dialect d2 = {.delimiter_auto = 1, .skip_lines = 1};
  assert_int_equal(read_with(path, 1, &d2, &res), 0);
  unlink(path);
  assert_string_equal(res.text, "x|y|z\n1|2|3\n4|5|6\n");
  assert_non_null(strstr(res.choices, "delimiter '|'"));
}

/* Text after a closing quote: named with its field and byte, and the hint names the ';' the
 * line has instead of commas. */
static void test_quote_error_details(void **state) {
  (void)state;
  const char *path = TEMP("a;b;c\n1;\"x\"y;3\n");
  csvin_dialect d = {.delimiter = ';'};
  read_result res;
  assert_int_equal(read_with(path, 1, &d, &res), 0);
  unlink(path);
  assert_int_equal(res.rc, CS_ECSV);
  assert_non_null(strstr(res.err, ":2: malformed quoting in field 2 (byte 6 of the line): text "
                                  "after the closing quote"));
  assert_non_null(strstr(res.err, "near '1;\"x\"y;3'"));
  assert_null(strstr(res.err, "--delimiter")); /* it is ';'-separated already */

  path = TEMP("a;b\n1;x\"y\x01\n");
  csvin_dialect d2 = {0};
  assert_int_equal(read_with(path, 1, &d2, &res), 0);
  unlink(path);
  assert_non_null(strstr(res.err, "field 1 (byte 4 of the line): a quote inside a field"));
  assert_non_null(strstr(res.err, "near '1;x\"y\\x01'"));
  assert_non_null(strstr(res.err, "give --delimiter ';'"));
}

/* --loop over a decoded file with skipped lines: every pass gives the same records. */
static void test_rewind_decoded_and_skipped(void **state) {
  (void)state;
  static const char le[] = "\xff\xfe"
                           "T\0\n\0h\0\n\0\xe9\0\n\0x\0\n\0";
  for (int has_header = 0; has_header <= 1; has_header++) {
    const char *path = temp_csv(le, sizeof le - 1);
    csvin_dialect d = {.encoding = "auto", .skip_lines = 1};
    csvin *r = NULL;
    char err[512];
    assert_int_equal(csvin_open_dialect(&r, path, has_header, &d, err, sizeof err), 0);
    for (int pass = 0; pass < 3; pass++) {
      read_result res;
      csvin_rec rec;
      memset(&res, 0, sizeof res);
      while ((res.rc = csvin_next(r, &rec)) == 1) {
        flatten(&res, &rec);
      }
      assert_int_equal(res.rc, 0);
      assert_string_equal(res.text, has_header ? "\xc3\xa9\nx\n" : "h\n\xc3\xa9\nx\n");
      assert_int_equal(csvin_rewind(r), 0);
    }
    csvin_close(r);
    unlink(path);
  }
}

/* A Latin-1 file of many blocks decodes whole (characters at block boundaries, the decoded text
 * larger than the raw). */
static void test_large_latin1(void **state) {
  (void)state;
  const size_t rows = 60000;
  char *data = malloc(rows * 8 + 8);
  size_t len = 0;
  assert_non_null(data);
  len += (size_t)sprintf(data, "k,v\n");
  for (size_t i = 0; i < rows; i++) {
    memcpy(data + len, "\xe9\xe8\xe0,\xfc\xf6\n", 7);
    len += 7;
  }
  const char *path = temp_csv(data, len);
  free(data);
  csvin_dialect d = {.encoding = "iso-8859-1"};
  csvin *r = NULL;
  char err[512];
  csvin_rec rec;
  size_t n = 0;
  int rc;
  assert_int_equal(csvin_open_dialect(&r, path, 1, &d, err, sizeof err), 0);
  while ((rc = csvin_next(r, &rec)) == 1) {
    assert_int_equal(rec.nfields, 2);
    assert_memory_equal(rec.fields[0].data, "\xc3\xa9\xc3\xa8\xc3\xa0", 6);
    assert_memory_equal(rec.fields[1].data, "\xc3\xbc\xc3\xb6", 4);
    assert_int_equal(rec.line, n + 2);
    n++;
  }
  assert_int_equal(rc, 0);
  assert_int_equal(n, rows);
  csvin_close(r);
  unlink(path);
}

/* An encoding iconv does not know is refused at open, naming the flag. */
static void test_unknown_encoding(void **state) {
  (void)state;
  const char *path = TEMP("a\n1\n");
  csvin_dialect d = {.encoding = "no-such-encoding"};
  csvin *r = NULL;
  char err[512];
  assert_int_equal(csvin_open_dialect(&r, path, 1, &d, err, sizeof err), CS_EINVAL);
  unlink(path);
  assert_non_null(strstr(err, "--encoding: 'no-such-encoding'"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_latin1_semicolon_title),
      cmocka_unit_test(test_windows_1252_euro_and_quotes),
      cmocka_unit_test(test_utf16_bom_auto),
      cmocka_unit_test(test_utf16_bom_as_utf8_refused),
      cmocka_unit_test(test_auto_utf8_or_windows_1252),
      cmocka_unit_test(test_invalid_utf8_warned_per_line),
      cmocka_unit_test(test_byte_not_in_encoding),
      cmocka_unit_test(test_comments_and_skip_lines),
      cmocka_unit_test(test_delimiters),
      cmocka_unit_test(test_quote_error_details),
      cmocka_unit_test(test_rewind_decoded_and_skipped),
      cmocka_unit_test(test_large_latin1),
      cmocka_unit_test(test_unknown_encoding),
  };
  return cmocka_run_group_tests_name("csvin_dialect", tests, NULL, NULL);
}
