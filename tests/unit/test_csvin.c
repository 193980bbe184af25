/* test_csvin.c -- unit tests of the streaming CSV reader: RFC 4180 details, line numbers,
 * errors, rewind, the project's own conformance cases (tests/data/conformance) and, run as
 * `test_csvin --spectrum`, the external csv-spectrum suite when it is there. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "csvin.h"
#include "error.h"

/* Write `len` bytes to a fresh temporary file; returns its path (static storage per slot). */
static const char *temp_csv(const char *data, size_t len) {
  static char path[64];
  snprintf(path, sizeof path, "/tmp/test_csvin_XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, len), (ssize_t)len);
  assert_int_equal(close(fd), 0);
  return path;
}

#define TEMP(lit) temp_csv(lit, sizeof(lit) - 1)

/* Records read back, flattened: "field|field|...\n" with the start line, for easy comparison. */
typedef struct read_result {
  char text[8192];
  size_t text_len;
  uint64_t lines[64];
  size_t nrecs;
  int rc; /* csvin_next's final return */
  char err[512];
  char header[512];
  size_t header_len;
} read_result;

static void flatten(char *out, size_t *len, size_t cap, const csvin_rec *rec) {
  size_t n = *len;
  for (size_t i = 0; i < rec->nfields; i++) {
    assert_true(n + 1 + rec->fields[i].len + 2 < cap);
    if (i > 0) {
      out[n++] = '|';
    }
    memcpy(out + n, rec->fields[i].data, rec->fields[i].len);
    n += rec->fields[i].len;
  }
  out[n++] = '\n';
  out[n] = '\0';
  *len = n;
}

/* Open path, read every record, close. */
static void read_all(const char *path, int has_header, read_result *res) {
  csvin *r = NULL;
  char err[512];
  memset(res, 0, sizeof *res);
  assert_int_equal(csvin_open(&r, path, has_header, err, sizeof err), 0);
  const csvin_rec *h = csvin_header(r);
  if (h != NULL) {
    flatten(res->header, &res->header_len, sizeof res->header, h);
  }
  csvin_rec rec;
  while ((res->rc = csvin_next(r, &rec)) == 1) {
    if (res->nrecs < 64) {
      res->lines[res->nrecs] = rec.line;
    }
    res->nrecs++;
    flatten(res->text, &res->text_len, sizeof res->text, &rec);
  }
  snprintf(res->err, sizeof res->err, "%s", csvin_error(r));
  csvin_close(r);
}

/* One table row: input bytes, header wanted, expected header, records and their lines. */
typedef struct parse_case {
  const char *name;
  const char *input;
  size_t len;
  int has_header;
  const char *header;
  const char *records;
  size_t records_len;
  uint64_t lines[8];
} parse_case;

#define IN(lit) lit, sizeof(lit) - 1

static const parse_case parse_cases[] = {
    {"BOM stripped",
     IN("\xEF\xBB\xBFYear,TempF\n2020,51\n"),
     1,
     "Year|TempF\n",
     IN("2020|51\n"),
     {2}},
    {"BOM only", IN("\xEF\xBB\xBF"), 1, "", IN(""), {0}},
    {"LF line ends", IN("a,b\n1,2\n3,4\n"), 1, "a|b\n", IN("1|2\n3|4\n"), {2, 3}},
    {"CRLF line ends", IN("a,b\r\n1,2\r\n3,4\r\n"), 1, "a|b\n", IN("1|2\n3|4\n"), {2, 3}},
    {"CR-only line ends", IN("a,b\r1,2\r3,4"), 1, "a|b\n", IN("1|2\n3|4\n"), {2, 3}},
    {"a CR line end, then LF ones",
     IN("a\r1\n2\n3\r\n4\n"),
     1,
     "a\n",
     IN("1\n2\n3\n4\n"),
     {2, 3, 4, 5}},
    {"no final newline", IN("a\nlast"), 1, "a\n", IN("last\n"), {2}},
    {"quoted comma and quotes",
     IN("a,b\n\"x,y\",\"say \"\"hi\"\"\"\n"),
     1,
     "a|b\n",
     IN("x,y|say \"hi\"\n"),
     {2}},
    {"quoted CR and LF",
     IN("a,b\n\"1\r\n2\",\"3\r4\"\n5,6\n"),
     1,
     "a|b\n",
     IN("1\r\n2|3\r4\n5|6\n"),
     {2, 5}}, /* the lone CR inside "3\r4" ends line 3 */
    {"spaces around unquoted fields kept",
     IN("a,b\n  x , \ty\t\n"),
     1,
     "a|b\n",
     IN("  x | \ty\t\n"),
     {2}},
    {"empty lines skipped", IN("a,b\n\n1,x\n\r\n\n2,y\n"), 1, "a|b\n", IN("1|x\n2|y\n"), {3, 6}},
    {"one column: an empty line is an empty value",
     IN("a\n\n1\n\r\n\n2\n"),
     1,
     "a\n",
     IN("\n1\n\n\n2\n"),
     {2, 3, 4, 5, 6}},
    {"one column without a header: the same", IN("1\r\n\r\n2\n"), 0, "", IN("1\n\n2\n"), {1, 2, 3}},
    {"records spanning lines",
     IN("h\n\"a\nb\nc\"\n\"d\r\ne\"\nf\n"),
     1,
     "h\n",
     IN("a\nb\nc\nd\r\ne\nf\n"),
     {2, 5, 7}},
    {"empty fields", IN("a,b,c\n,,\n"), 1, "a|b|c\n", IN("||\n"), {2}},
    {"single empty quoted field", IN("a\n\"\"\n"), 1, "a\n", IN("\n"), {2}},
    {"no header", IN("1,2\n3,4\n"), 0, "", IN("1|2\n3|4\n"), {1, 2}},
    {"no header with BOM",
     IN("\xEF\xBB\xBF"
        "1\n"),
     0,
     "",
     IN("1\n"),
     {1}},
    {"empty file", IN(""), 1, "", IN(""), {0}},
    {"ragged rows returned as they are",
     IN("a,b\n1\n1,2,3\n"),
     1,
     "a|b\n",
     IN("1\n1|2|3\n"),
     {2, 3}},
    {"NUL byte in a field", IN("a\nx\0y\n"), 1, "a\n", IN("x\0y\n"), {2}},
    {"BOM not at the start is data",
     IN("a\n\xEF\xBB\xBFx\n"),
     1,
     "a\n",
     IN("\xEF\xBB\xBFx\n"),
     {2}},
};

/* Table-driven: each input parses to the expected header, records and start lines. */
static void test_parse_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
    const parse_case *pc = &parse_cases[i];
    print_message("case: %s\n", pc->name);
    const char *path = temp_csv(pc->input, pc->len);
    read_result res;
    read_all(path, pc->has_header, &res);
    unlink(path);
    assert_int_equal(res.rc, 0);
    assert_string_equal(res.header, pc->header);
    assert_int_equal(res.text_len, pc->records_len);
    assert_memory_equal(res.text, pc->records, pc->records_len);
    for (size_t k = 0; k < res.nrecs && k < 8; k++) {
      assert_int_equal(res.lines[k], pc->lines[k]);
    }
  }
}

/* An input with no data lines has no header and no records. */
static void test_empty_file_has_no_header(void **state) {
  (void)state;
  const char *path = TEMP("");
  csvin *r = NULL;
  char err[256];
  assert_int_equal(csvin_open(&r, path, 1, err, sizeof err), 0);
  assert_null(csvin_header(r));
  csvin_rec rec;
  assert_int_equal(csvin_next(r, &rec), 0);
  csvin_close(r);
  unlink(path);
}

/* A field longer than 100 KiB, crossing the 64 KiB read blocks, comes back whole. */
static void test_long_field(void **state) {
  (void)state;
  size_t flen = 150 * 1024;
  char *data = malloc(flen + 64);
  assert_non_null(data);
  size_t n = 0;
  memcpy(data, "h1,h2\n\"", 7);
  n = 7;
  for (size_t i = 0; i < flen; i++) {
    data[n++] = (i % 1000 == 999) ? '\n' : (char)('a' + i % 26);
  }
  memcpy(data + n, "\",end\nz,z\n", 10);
  n += 10;
  const char *path = temp_csv(data, n);
  csvin *r = NULL;
  char err[256];
  assert_int_equal(csvin_open(&r, path, 1, err, sizeof err), 0);
  csvin_rec rec;
  assert_int_equal(csvin_next(r, &rec), 1);
  assert_int_equal(rec.nfields, 2);
  assert_int_equal(rec.fields[0].len, flen);
  assert_memory_equal(rec.fields[0].data, data + 7, flen);
  assert_int_equal(rec.line, 2);
  assert_int_equal(csvin_next(r, &rec), 1);
  assert_int_equal(rec.line, 2 + flen / 1000 + 1);
  assert_int_equal(csvin_next(r, &rec), 0);
  csvin_close(r);
  unlink(path);
  free(data);
}

/* Unterminated quote: the records before it are returned, then the error names the line
 * where the quoted field starts; the error is sticky. */
static void test_unterminated_quote(void **state) {
  (void)state;
  const char *path = TEMP("a,b\n1,2\n3,\"4\n5\n6,7\n");
  char expect[256];
  snprintf(expect, sizeof expect,
           "%s:3: unterminated quote (the quoted field that starts on this line never ends)", path);
  csvin *r = NULL;
  char err[256];
  assert_int_equal(csvin_open(&r, path, 1, err, sizeof err), 0);
  csvin_rec rec;
  assert_int_equal(csvin_next(r, &rec), 1);
  assert_int_equal(rec.line, 2);
  assert_int_equal(csvin_next(r, &rec), CS_ECSV);
  assert_string_equal(csvin_error(r), expect);
  assert_int_equal(csvin_next(r, &rec), CS_ECSV);
  csvin_close(r);
  unlink(path);
}

/* A quoted field that closes and a second one that opens on the same line: the error names the
 * line of the second. */
static void test_unterminated_quote_line_of_second_field(void **state) {
  (void)state;
  const char *path = TEMP("a,b\n\"x\ny\",\"open\nmore\n");
  read_result res;
  read_all(path, 1, &res);
  char expect[256];
  snprintf(expect, sizeof expect,
           "%s:3: unterminated quote (the quoted field that starts on this line never ends)", path);
  assert_int_equal(res.rc, CS_ECSV);
  assert_int_equal(res.nrecs, 0);
  assert_string_equal(res.err, expect);
  unlink(path);
}

/* A stray quote inside an unquoted field is malformed quoting, named with its line. */
static void test_malformed_quoting(void **state) {
  (void)state;
  const char *path = TEMP("a,b\n1,2\n3,x\"y\n5,6\n");
  read_result res;
  read_all(path, 1, &res);
  char expect[256];
  snprintf(expect, sizeof expect,
           "%s:3: malformed quoting in field 2 (byte 4 of the line): a quote inside a field that "
           "does not start with one (a field with quotes is quoted whole, its quotes doubled: "
           "\"x\"\"y\"); near '3,x\"y'",
           path);
  assert_int_equal(res.rc, CS_ECSV);
  assert_int_equal(res.nrecs, 1);
  assert_string_equal(res.text, "1|2\n");
  assert_string_equal(res.err, expect);
  unlink(path);
}

/* A header that cannot be parsed makes open fail with the message. */
static void test_bad_header_fails_open(void **state) {
  (void)state;
  const char *path = TEMP("\"a,b\n");
  csvin *r = NULL;
  char err[256];
  char expect[256];
  snprintf(expect, sizeof expect,
           "%s:1: unterminated quote (the quoted field that starts on this line never ends)", path);
  assert_int_equal(csvin_open(&r, path, 1, err, sizeof err), CS_ECSV);
  assert_null(r);
  assert_string_equal(err, expect);
  unlink(path);
}

/* A missing file is named with the system's reason. */
static void test_missing_file(void **state) {
  (void)state;
  csvin *r = NULL;
  char err[256];
  assert_true(csvin_open(&r, "/nonexistent/x.csv", 1, err, sizeof err) < 0);
  assert_null(r);
  assert_string_equal(err, "/nonexistent/x.csv: No such file or directory");
  assert_true(csvin_open(&r, "/tmp", 1, err, sizeof err) < 0);
  assert_string_equal(err, "/tmp: Is a directory");
}

/* Rewind starts over at the first data record, with the same line numbers, header kept. */
static void test_rewind(void **state) {
  (void)state;
  const char *path = TEMP("\xEF\xBB\xBFh,i\r\n\r\n\"a\nb\",1\r\nc,2\r\n");
  csvin *r = NULL;
  char err[256];
  assert_int_equal(csvin_open(&r, path, 1, err, sizeof err), 0);
  for (int pass = 0; pass < 3; pass++) {
    char text[128] = "";
    size_t text_len = 0;
    uint64_t lines[4] = {0};
    size_t n = 0;
    csvin_rec rec;
    int rc;
    while ((rc = csvin_next(r, &rec)) == 1) {
      lines[n++ % 4] = rec.line;
      flatten(text, &text_len, sizeof text, &rec);
    }
    assert_int_equal(rc, 0);
    assert_string_equal(text, "a\nb|1\nc|2\n");
    assert_int_equal(n, 2);
    assert_int_equal(lines[0], 3);
    assert_int_equal(lines[1], 5);
    assert_non_null(csvin_header(r));
    assert_int_equal(csvin_header(r)->fields[0].len, 1);
    assert_int_equal(csvin_rewind(r), 0);
  }
  csvin_close(r);
  unlink(path);
}

/* Rewind in --no-header mode goes back to the first byte after the BOM; mid-file too. */
static void test_rewind_no_header_midway(void **state) {
  (void)state;
  const char *path = TEMP("\xEF\xBB\xBF"
                          "1\n2\n3\n");
  csvin *r = NULL;
  char err[256];
  assert_int_equal(csvin_open(&r, path, 0, err, sizeof err), 0);
  csvin_rec rec;
  assert_int_equal(csvin_next(r, &rec), 1);
  assert_int_equal(csvin_next(r, &rec), 1);
  assert_int_equal(csvin_rewind(r), 0);
  assert_int_equal(csvin_next(r, &rec), 1);
  assert_int_equal(rec.line, 1);
  assert_int_equal(rec.fields[0].len, 1);
  assert_memory_equal(rec.fields[0].data, "1", 1);
  csvin_close(r);
  unlink(path);
}

/* An input that holds only a BOM (or only blank lines) has no header and no records, and a
 * rewind finds none either: the BOM is not read again as data (found by fuzz_csvin). */
static void test_rewind_bom_only_has_no_records(void **state) {
  (void)state;
  static const char *inputs[] = {"\xEF\xBB\xBF", "\xEF\xBB\xBF\n\n", "\n"};
  for (size_t k = 0; k < sizeof inputs / sizeof inputs[0]; k++) {
    const char *path = temp_csv(inputs[k], strlen(inputs[k]));
    csvin *r = NULL;
    char err[256];
    assert_int_equal(csvin_open(&r, path, 1, err, sizeof err), 0);
    assert_null(csvin_header(r));
    csvin_rec rec;
    assert_int_equal(csvin_next(r, &rec), 0);
    assert_int_equal(csvin_rewind(r), 0);
    assert_int_equal(csvin_next(r, &rec), 0);
    csvin_close(r);
    unlink(path);
  }
}

/* Standard input cannot be rewound, and is shown as <stdin>. */
static void test_stdin(void **state) {
  (void)state;
  int fds[2];
  int saved = dup(STDIN_FILENO);
  assert_int_equal(pipe(fds), 0);
  assert_int_equal(write(fds[1], "\xEF\xBB\xBFk\nv\n", 7), 7);
  close(fds[1]);
  assert_true(dup2(fds[0], STDIN_FILENO) >= 0);
  close(fds[0]);
  csvin *r = NULL;
  char err[256];
  assert_int_equal(csvin_open(&r, "-", 1, err, sizeof err), 0);
  assert_string_equal(csvin_path(r), "<stdin>");
  csvin_rec rec;
  assert_int_equal(csvin_next(r, &rec), 1);
  assert_memory_equal(rec.fields[0].data, "v", 1);
  assert_int_equal(csvin_next(r, &rec), 0);
  assert_int_equal(csvin_rewind(r), CS_EINVAL);
  csvin_close(r);
  assert_true(dup2(saved, STDIN_FILENO) >= 0);
  close(saved);
}

/* A pipe: csvin_would_block is 0 while a whole record is buffered, parses a partial one before
 * it answers, is 1 only when a read would wait, and 0 again once the writer has gone. */
static void test_would_block_on_pipe(void **state) {
  (void)state;
  int fds[2];
  int saved = dup(STDIN_FILENO);
  assert_int_equal(pipe(fds), 0);
  assert_int_equal(write(fds[1], "k,v\n1,a\n2,", 10), 10);
  assert_true(dup2(fds[0], STDIN_FILENO) >= 0);
  close(fds[0]);
  csvin *r = NULL;
  char err[256];
  csvin_rec rec;
  assert_int_equal(csvin_open(&r, "-", 1, err, sizeof err), 0);
  assert_int_equal(csvin_fd(r), STDIN_FILENO);
  assert_int_equal(csvin_would_block(r), 0); /* "1,a" is buffered */
  assert_int_equal(csvin_next(r, &rec), 1);
  assert_memory_equal(rec.fields[1].data, "a", 1);
  assert_int_equal(csvin_would_block(r), 1); /* "2," alone is no record, and the pipe is dry */
  assert_int_equal(write(fds[1], "b\n", 2), 2);
  assert_int_equal(csvin_would_block(r), 0);
  assert_int_equal(csvin_next(r, &rec), 1);
  assert_int_equal(rec.nfields, 2);
  assert_memory_equal(rec.fields[0].data, "2", 1);
  assert_memory_equal(rec.fields[1].data, "b", 1);
  assert_int_equal(rec.line, 3);
  assert_int_equal(csvin_would_block(r), 1);
  close(fds[1]);
  assert_int_equal(csvin_would_block(r), 0); /* end of input: the read returns at once */
  assert_int_equal(csvin_next(r, &rec), 0);
  assert_int_equal(csvin_would_block(r), 0);
  csvin_close(r);
  assert_true(dup2(saved, STDIN_FILENO) >= 0);
  close(saved);
}

/* A regular file never blocks, not even at its end or inside an unfinished record. */
static void test_would_block_never_on_regular_file(void **state) {
  (void)state;
  const char *path = TEMP("k\n1\n\"open");
  csvin *r = NULL;
  char err[256];
  csvin_rec rec;
  assert_int_equal(csvin_open(&r, path, 1, err, sizeof err), 0);
  assert_int_equal(csvin_would_block(r), 0);
  assert_int_equal(csvin_next(r, &rec), 1);
  assert_int_equal(csvin_would_block(r), 0);
  assert_int_equal(csvin_next(r, &rec), CS_ECSV);
  assert_int_equal(csvin_would_block(r), 0);
  csvin_close(r);
  unlink(path);
}

/* Memory stays flat: after 200,000 records the reader's field store has not grown with them
 * (checked indirectly: records keep coming back correct and in order). */
static void test_many_records_in_order(void **state) {
  (void)state;
  char path[] = "/tmp/test_csvin_many_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w");
  assert_non_null(f);
  fprintf(f, "n,text\n");
  for (int i = 1; i <= 200000; i++) {
    fprintf(f, "%d,\"row %d, \"\"quoted\"\"\"\n", i, i);
  }
  assert_int_equal(fclose(f), 0);
  csvin *r = NULL;
  char err[256];
  assert_int_equal(csvin_open(&r, path, 1, err, sizeof err), 0);
  csvin_rec rec;
  int rc;
  long expect = 1;
  while ((rc = csvin_next(r, &rec)) == 1) {
    char want[64];
    int w = snprintf(want, sizeof want, "row %ld, \"quoted\"", expect);
    assert_int_equal(strtol(rec.fields[0].data, NULL, 10), expect);
    assert_int_equal(rec.fields[1].len, (size_t)w);
    assert_memory_equal(rec.fields[1].data, want, (size_t)w);
    assert_int_equal(rec.line, (uint64_t)expect + 1);
    expect++;
  }
  assert_int_equal(rc, 0);
  assert_int_equal(expect, 200001);
  csvin_close(r);
  unlink(path);
}

/* An escaped quote ("") whose two halves fall on either side of a 64 KiB read block, inside a
 * quoted field that started lines earlier and never ends: the error still names the line where
 * the field starts (libcsv is between its two quote states at the block's end). */
static void test_unterminated_quote_line_across_block_split_escape(void **state) {
  (void)state;
  size_t n = 65536 + 16;
  char *data = malloc(n);
  assert_non_null(data);
  size_t k = 0;
  data[k++] = '"';
  memset(data + k, 'a', 10);
  k += 10;
  data[k++] = '\n'; /* the open field goes on over line 2 */
  while (k < 65535) {
    data[k++] = 'b';
  }
  data[k++] = '"'; /* the last byte of the first block */
  data[k++] = '"'; /* the first byte of the second */
  memcpy(data + k, "c\nd\ne\n", 6);
  k += 6;
  const char *path = temp_csv(data, k);
  free(data);
  read_result res;
  read_all(path, 0, &res);
  char expect[256];
  snprintf(expect, sizeof expect,
           "%s:1: unterminated quote (the quoted field that starts on this line never ends)", path);
  assert_int_equal(res.rc, CS_ECSV);
  assert_string_equal(res.err, expect);
  unlink(path);
}

/* A pipe that delivers the byte order mark alone, then (a moment later) the records: the BOM
 * is stripped and the records that follow are read, not taken for the end of the input. */
static void test_pipe_bom_alone_then_data(void **state) {
  (void)state;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    if (write(fds[1], "\xEF\xBB\xBF", 3) != 3) {
      _exit(1);
    }
    usleep(200 * 1000);
    if (write(fds[1], "k,v\n1,a\n", 8) != 8) {
      _exit(1);
    }
    _exit(0);
  }
  close(fds[1]);
  char path[64];
  snprintf(path, sizeof path, "/dev/fd/%d", fds[0]);
  read_result res;
  read_all(path, 1, &res);
  close(fds[0]);
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_int_equal(res.rc, 0);
  assert_string_equal(res.header, "k|v\n");
  assert_int_equal(res.nrecs, 1);
  assert_string_equal(res.text, "1|a\n");
}

/* A pipe that delivers a first record shorter than a BOM and then stays open: the reader hands
 * the record out without waiting for a third byte. */
static void test_pipe_short_first_record_not_held(void **state) {
  (void)state;
  int fds[2];
  int saved = dup(STDIN_FILENO);
  assert_int_equal(pipe(fds), 0);
  assert_int_equal(write(fds[1], "k\n", 2), 2);
  assert_true(dup2(fds[0], STDIN_FILENO) >= 0);
  close(fds[0]);
  /* Without the fix the open below would wait for a third byte forever: bound it. */
  alarm(10);
  csvin *r = NULL;
  char err[256];
  assert_int_equal(csvin_open(&r, "-", 1, err, sizeof err), 0);
  alarm(0);
  assert_non_null(csvin_header(r));
  assert_int_equal(csvin_header(r)->nfields, 1);
  assert_int_equal(write(fds[1], "1\n", 2), 2);
  close(fds[1]);
  csvin_rec rec;
  assert_int_equal(csvin_next(r, &rec), 1);
  assert_memory_equal(rec.fields[0].data, "1", 1);
  assert_int_equal(csvin_next(r, &rec), 0);
  csvin_close(r);
  assert_true(dup2(saved, STDIN_FILENO) >= 0);
  close(saved);
}

/* A first record of empty fields only, with no header (",\n"), comes back as two empty fields
 * that point at real memory: the reader's byte store was never allocated then, and a NULL base
 * (NULL + 0 is undefined behaviour; UBSan reported it) must not reach the caller, who may pass
 * the pointer to memcpy. */
static void test_first_record_of_empty_fields(void **state) {
  (void)state;
  static const char *inputs[] = {",\n", ",", "\n,\n", "\"\",\n"};
  for (size_t k = 0; k < sizeof inputs / sizeof inputs[0]; k++) {
    const char *path = temp_csv(inputs[k], strlen(inputs[k]));
    csvin *r = NULL;
    char err[256];
    assert_int_equal(csvin_open(&r, path, 0, err, sizeof err), 0);
    csvin_rec rec;
    assert_int_equal(csvin_next(r, &rec), 1);
    assert_int_equal(rec.nfields, 2);
    for (size_t i = 0; i < rec.nfields; i++) {
      assert_non_null(rec.fields[i].data);
      assert_int_equal(rec.fields[i].len, 0);
    }
    assert_int_equal(csvin_next(r, &rec), 0);
    csvin_close(r);
    unlink(path);
  }
}

/* A record of millions of empty fields (a line of commas) holds almost no field bytes but one
 * descriptor per field: it is refused at the field limit, naming its line, instead of taking
 * gigabytes. */
static void test_too_many_fields_refused(void **state) {
  (void)state;
  char path[] = "/tmp/test_csvin_commas_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w");
  assert_non_null(f);
  fprintf(f, "a\n1\n");
  static char commas[4096];
  memset(commas, ',', sizeof commas);
  for (size_t written = 0; written <= CSVIN_MAX_FIELDS; written += sizeof commas) {
    assert_int_equal(fwrite(commas, 1, sizeof commas, f), sizeof commas);
  }
  fprintf(f, "\n2\n");
  assert_int_equal(fclose(f), 0);
  read_result res;
  read_all(path, 1, &res);
  char expect[256];
  snprintf(expect, sizeof expect, "%s:3: record of more than %u fields", path,
           (unsigned)CSVIN_MAX_FIELDS);
  assert_int_equal(res.rc, CS_ECSV);
  assert_int_equal(res.nrecs, 1);
  assert_true(strncmp(res.err, expect, strlen(expect)) == 0);
  unlink(path);
}

/* Compile common/csvin.c against a csv.h that reports libcsv 3.0.MINOR.RELEASE (the real header
 * with its version macros replaced) into dir; returns the compiler's exit status, its messages
 * in out. */
static int compile_csvin_against(const char *dir, int minor, int release, char *out, size_t cap) {
  char path[512];
  snprintf(path, sizeof path, "%s/csv.h", dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fprintf(f,
          "#include_next <csv.h>\n#undef CSV_MINOR\n#define CSV_MINOR %d\n"
          "#undef CSV_RELEASE\n#define CSV_RELEASE %d\n",
          minor, release);
  assert_int_equal(fclose(f), 0);
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "cc -std=gnu11 -D_GNU_SOURCE -fsyntax-only -I%s -I%s/common "
           "%s/common/csvin.c 2>&1",
           dir, SOURCE_DIR, SOURCE_DIR);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t n = fread(out, 1, cap - 1, p);
  out[n] = '\0';
  int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* csvin.c reads libcsv 3.0.3's parser internals: against any other libcsv version the build
 * stops with a message that says so (and against 3.0.3 it compiles). */
static void test_other_libcsv_version_fails_to_build(void **state) {
  (void)state;
  char dir[] = "/tmp/test_csvin_hdr_XXXXXX";
  assert_non_null(mkdtemp(dir));
  static char out[16384];
  assert_int_equal(compile_csvin_against(dir, 0, 3, out, sizeof out), 0);
  assert_int_not_equal(compile_csvin_against(dir, 0, 4, out, sizeof out), 0);
  assert_non_null(strstr(out, "libcsv 3.0.3's parser internals"));
  assert_int_not_equal(compile_csvin_against(dir, 1, 0, out, sizeof out), 0);
  assert_non_null(strstr(out, "libcsv 3.0.3's parser internals"));
  char path[512];
  snprintf(path, sizeof path, "%s/csv.h", dir);
  unlink(path);
  rmdir(dir);
}

/* A quote left open in a large file stops at the record limit instead of taking the whole file
 * into memory, and names the line where the quoted field starts. */
static void test_open_quote_memory_bounded(void **state) {
  (void)state;
  char path[] = "/tmp/test_csvin_big_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w");
  assert_non_null(f);
  fprintf(f, "a,b\n1,2\n3,\"open\n");
  static char line[1024];
  memset(line, 'x', sizeof line - 1);
  line[sizeof line - 1] = '\n';
  for (size_t written = 0; written <= CSVIN_MAX_RECORD + sizeof line; written += sizeof line) {
    assert_int_equal(fwrite(line, 1, sizeof line, f), sizeof line);
  }
  assert_int_equal(fclose(f), 0);
  read_result res;
  read_all(path, 1, &res);
  char expect[256];
  snprintf(expect, sizeof expect,
           "%s:3: record longer than 64 MiB starting on this line (a quoted field that never "
           "ends?)",
           path);
  assert_int_equal(res.rc, CS_ECSV);
  assert_int_equal(res.nrecs, 1);
  assert_string_equal(res.err, expect);
  unlink(path);
}

/* ---- a test-only JSON reader for the expected values of the conformance suites ---- */

/* Exit status of `test_csvin --spectrum` when the suite is not there: ctest's SKIP_RETURN_CODE
 * for unit.test_csvin_spectrum (tests/CMakeLists.txt), so ctest shows the test as skipped. */
#define SPECTRUM_SKIP_CODE 77

/* The conformance cases of this project, always there (tests/data/conformance, README.md). */
#define CONFORMANCE_DIR SOURCE_DIR "/tests/data/conformance"
/* Pairs in CONFORMANCE_DIR when this was written: fewer means files went missing. */
#define CONFORMANCE_MIN_CASES 24

/* Append code point v to out as UTF-8; returns the bytes written. */
static size_t utf8_put(unsigned v, char *out, size_t cap) {
  size_t n = v < 0x80 ? 1 : v < 0x800 ? 2 : v < 0x10000 ? 3 : 4;
  assert_true(v <= 0x10FFFF);
  assert_true(n < cap);
  if (n == 1) {
    out[0] = (char)v;
  } else if (n == 2) {
    out[0] = (char)(0xC0 | (v >> 6));
    out[1] = (char)(0x80 | (v & 0x3F));
  } else if (n == 3) {
    out[0] = (char)(0xE0 | (v >> 12));
    out[1] = (char)(0x80 | ((v >> 6) & 0x3F));
    out[2] = (char)(0x80 | (v & 0x3F));
  } else {
    out[0] = (char)(0xF0 | (v >> 18));
    out[1] = (char)(0x80 | ((v >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((v >> 6) & 0x3F));
    out[3] = (char)(0x80 | (v & 0x3F));
  }
  return n;
}

/* The four hex digits of a \u escape at *s; advances *s past them. */
static unsigned parse_hex4(const char **s) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = *(*s)++;
    unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                 : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                 : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                        : 16;
    assert_true(d < 16);
    v = v * 16 + d;
  }
  return v;
}

/* Parse a JSON string at *p (which points at the opening quote) into out, NUL-terminated; its
 * length goes to *len when len is not NULL (the string itself may hold NUL: \u0000). */
static void parse_json_string(const char **p, char *out, size_t cap, size_t *len) {
  const char *s = *p;
  size_t n = 0;
  assert_int_equal(*s, '"');
  s++;
  while (*s != '"') {
    assert_true(*s != '\0');
    char c = *s++;
    if (c == '\\') {
      char e = *s++;
      switch (e) {
      case 'n':
        c = '\n';
        break;
      case 'r':
        c = '\r';
        break;
      case 't':
        c = '\t';
        break;
      case 'b':
        c = '\b';
        break;
      case 'f':
        c = '\f';
        break;
      case 'u': {
        unsigned v = parse_hex4(&s);
        if (v >= 0xD800 && v < 0xDC00) {
          /* A high surrogate: the low one must follow, together they make one code point. */
          assert_true(s[0] == '\\' && s[1] == 'u');
          s += 2;
          unsigned low = parse_hex4(&s);
          assert_true(low >= 0xDC00 && low < 0xE000);
          v = 0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00);
        }
        n += utf8_put(v, out + n, cap - n);
        continue;
      }
      default:
        c = e;
        break;
      }
    }
    assert_true(n + 1 < cap);
    out[n++] = c;
  }
  out[n] = '\0';
  if (len != NULL) {
    *len = n;
  }
  *p = s + 1;
}

static void skip_ws(const char **p) {
  while (**p == ' ' || **p == '\n' || **p == '\r' || **p == '\t') {
    (*p)++;
  }
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    print_error("cannot open %s\n", path);
  }
  assert_non_null(f);
  static char buf[65536];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  assert_true(n < sizeof buf - 1);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

/* ---- the project's own conformance cases: NAME.json is an array of arrays of strings ---- */

/* One expected field: bytes and length (it may hold NUL). */
typedef struct json_field {
  char data[256];
  size_t len;
} json_field;

/* The expected records of one case, the header first. */
typedef struct json_table {
  json_field cells[32][16]; /* [record][field] */
  size_t nfields[32];
  size_t nrows;
} json_table;

static void parse_json_table(const char *text, json_table *out) {
  const char *p = text;
  memset(out, 0, sizeof *out);
  skip_ws(&p);
  assert_int_equal(*p++, '[');
  skip_ws(&p);
  while (*p == '[') {
    p++;
    assert_true(out->nrows < 32);
    size_t col = 0;
    skip_ws(&p);
    while (*p == '"') {
      assert_true(col < 16);
      json_field *f = &out->cells[out->nrows][col++];
      parse_json_string(&p, f->data, sizeof f->data, &f->len);
      skip_ws(&p);
      if (*p == ',') {
        p++;
        skip_ws(&p);
      }
    }
    assert_int_equal(*p++, ']');
    out->nfields[out->nrows++] = col;
    skip_ws(&p);
    if (*p == ',') {
      p++;
      skip_ws(&p);
    }
  }
  assert_int_equal(*p++, ']');
  skip_ws(&p);
  assert_int_equal(*p, '\0');
}

/* Print len bytes with every byte that is not printable ASCII (and the backslash) as \xNN. */
static void print_escaped(const char *label, const char *data, size_t len) {
  char text[1200];
  size_t n = 0;
  for (size_t i = 0; i < len && n + 5 < sizeof text; i++) {
    unsigned char c = (unsigned char)data[i];
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      text[n++] = (char)c;
    } else {
      n += (size_t)snprintf(text + n, sizeof text - n, "\\x%02X", c);
    }
  }
  text[n] = '\0';
  print_error("  %s \"%s\" (%zu bytes)\n", label, text, len);
}

/* Fail, showing both records, unless rec holds exactly the fields of want's record row. */
static void assert_record_equal(const char *name, size_t row, const csvin_rec *rec,
                                const json_table *want) {
  int same = rec->nfields == want->nfields[row];
  for (size_t k = 0; same && k < rec->nfields; k++) {
    const json_field *w = &want->cells[row][k];
    same = rec->fields[k].len == w->len && memcmp(rec->fields[k].data, w->data, w->len) == 0;
  }
  if (same) {
    return;
  }
  print_error("%s: record %zu (%s) differs: %zu fields expected, %zu read\n", name, row,
              row == 0 ? "the header" : "0 is the header", want->nfields[row], rec->nfields);
  for (size_t k = 0; k < want->nfields[row]; k++) {
    print_escaped("expected", want->cells[row][k].data, want->cells[row][k].len);
  }
  for (size_t k = 0; k < rec->nfields; k++) {
    print_escaped("read    ", rec->fields[k].data, rec->fields[k].len);
  }
  fail_msg("%s: record %zu differs", name, row);
}

/* One case: the reader, with a header, returns exactly the records of its JSON. */
static void check_conformance_case(const char *name, const char *csv_path, const char *json_path) {
  static json_table want;
  parse_json_table(slurp(json_path), &want);
  csvin *r = NULL;
  char err[512];
  int rc = csvin_open(&r, csv_path, 1, err, sizeof err);
  if (rc != 0) {
    fail_msg("%s: %s", name, err);
  }
  const csvin_rec *h = csvin_header(r);
  if (want.nrows == 0 && h != NULL) {
    fail_msg("%s: a header was read, none expected", name);
  }
  if (want.nrows > 0) {
    if (h == NULL) {
      fail_msg("%s: no header read (the file holds no record)", name);
    }
    assert_record_equal(name, 0, h, &want);
  }
  csvin_rec rec;
  size_t row = 1;
  while ((rc = csvin_next(r, &rec)) == 1) {
    if (row >= want.nrows) {
      fail_msg("%s: more records than the %zu expected (the next starts on line %llu)", name,
               want.nrows, (unsigned long long)rec.line);
    }
    assert_record_equal(name, row, &rec, &want);
    row++;
  }
  if (rc != 0) {
    fail_msg("%s: %s", name, csvin_error(r));
  }
  if (want.nrows > 0 && row != want.nrows) {
    fail_msg("%s: %zu records read after the header, %zu expected", name, row - 1, want.nrows - 1);
  }
  csvin_close(r);
}

/* Every case in tests/data/conformance parses to exactly its JSON, and every JSON has its CSV. */
static void test_conformance_cases(void **state) {
  (void)state;
  DIR *d = opendir(CONFORMANCE_DIR);
  if (d == NULL) {
    fail_msg("cannot open %s (the project's own conformance cases)", CONFORMANCE_DIR);
  }
  size_t checked = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t nlen = strlen(e->d_name);
    char csv_path[2048];
    char json_path[2048];
    if (nlen > 5 && strcmp(e->d_name + nlen - 5, ".json") == 0) {
      snprintf(csv_path, sizeof csv_path, "%s/%.*s.csv", CONFORMANCE_DIR, (int)(nlen - 5),
               e->d_name);
      if (access(csv_path, R_OK) != 0) {
        fail_msg("%s/%s has no %s beside it", CONFORMANCE_DIR, e->d_name, csv_path);
      }
      continue;
    }
    if (nlen < 5 || strcmp(e->d_name + nlen - 4, ".csv") != 0) {
      continue;
    }
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(nlen - 4), e->d_name);
    snprintf(csv_path, sizeof csv_path, "%s/%s", CONFORMANCE_DIR, e->d_name);
    snprintf(json_path, sizeof json_path, "%s/%s.json", CONFORMANCE_DIR, name);
    print_message("conformance: %s\n", name);
    check_conformance_case(name, csv_path, json_path);
    checked++;
  }
  closedir(d);
  assert_true(checked >= CONFORMANCE_MIN_CASES);
}

/* ---- csv-spectrum (optional, external): arrays of flat objects of strings ---- */

typedef struct json_rows {
  char keys[16][64];
  size_t nkeys;
  char values[16][16][256]; /* [row][column] */
  size_t nrows;
} json_rows;

static void parse_json_rows(const char *text, json_rows *out) {
  const char *p = text;
  memset(out, 0, sizeof *out);
  skip_ws(&p);
  assert_int_equal(*p++, '[');
  skip_ws(&p);
  while (*p == '{') {
    p++;
    size_t col = 0;
    skip_ws(&p);
    while (*p == '"') {
      char key[64];
      parse_json_string(&p, key, sizeof key, NULL);
      if (out->nrows == 0) {
        assert_true(out->nkeys < 16);
        snprintf(out->keys[out->nkeys++], 64, "%s", key);
      } else {
        assert_string_equal(key, out->keys[col]);
      }
      skip_ws(&p);
      assert_int_equal(*p++, ':');
      skip_ws(&p);
      assert_true(out->nrows < 16 && col < 16);
      parse_json_string(&p, out->values[out->nrows][col], 256, NULL);
      col++;
      skip_ws(&p);
      if (*p == ',') {
        p++;
        skip_ws(&p);
      }
    }
    assert_int_equal(*p++, '}');
    out->nrows++;
    skip_ws(&p);
    if (*p == ',') {
      p++;
      skip_ws(&p);
    }
  }
  assert_int_equal(*p, ']');
}

/* Every csv-spectrum file parses to exactly its JSON: the header row's names as keys. The
 * suite's folder comes in *state. */
static void test_csv_spectrum(void **state) {
  const char *root = *state;
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/csvs", root);
  DIR *d = opendir(dir);
  assert_non_null(d);
  size_t checked = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t nlen = strlen(e->d_name);
    if (nlen < 5 || strcmp(e->d_name + nlen - 4, ".csv") != 0) {
      continue;
    }
    char csv_path[2048];
    char json_path[2048];
    snprintf(csv_path, sizeof csv_path, "%s/%s", dir, e->d_name);
    snprintf(json_path, sizeof json_path, "%s/json/%.*s.json", root, (int)(nlen - 4), e->d_name);
    print_message("csv-spectrum: %s\n", e->d_name);
    json_rows want;
    parse_json_rows(slurp(json_path), &want);

    csvin *r = NULL;
    char err[512];
    assert_int_equal(csvin_open(&r, csv_path, 1, err, sizeof err), 0);
    const csvin_rec *h = csvin_header(r);
    assert_non_null(h);
    assert_int_equal(h->nfields, want.nkeys);
    for (size_t k = 0; k < want.nkeys; k++) {
      assert_int_equal(h->fields[k].len, strlen(want.keys[k]));
      assert_memory_equal(h->fields[k].data, want.keys[k], h->fields[k].len);
    }
    csvin_rec rec;
    size_t row = 0;
    int rc;
    while ((rc = csvin_next(r, &rec)) == 1) {
      assert_true(row < want.nrows);
      assert_int_equal(rec.nfields, want.nkeys);
      for (size_t k = 0; k < rec.nfields; k++) {
        char got[256];
        snprintf(got, sizeof got, "%.*s", (int)rec.fields[k].len, rec.fields[k].data);
        assert_string_equal(got, want.values[row][k]);
      }
      row++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(row, want.nrows);
    csvin_close(r);
    checked++;
  }
  closedir(d);
  assert_true(checked >= 11);
}

/* `test_csvin --spectrum`: the csv-spectrum suite alone, from CSV_SPECTRUM_DIR in the
 * environment or else the folder the build was configured with. When it is not there, one line
 * says so and how to provide it, and the exit status is SPECTRUM_SKIP_CODE. */
static int run_spectrum(void) {
  const char *root = getenv("CSV_SPECTRUM_DIR");
  if (root == NULL || root[0] == '\0') {
    root = CSV_SPECTRUM_DIR;
  }
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/csvs", root);
  DIR *d = opendir(dir);
  if (d == NULL) {
    printf("skipped: no csv-spectrum suite at %s (the public CSV conformance suite: set "
           "CSV_SPECTRUM_DIR to a copy of it, at test time or as a CMake cache variable; the "
           "project's own cases in tests/data/conformance ran in unit.test_csvin)\n",
           root);
    return SPECTRUM_SKIP_CODE;
  }
  closedir(d);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_prestate(test_csv_spectrum, (void *)root),
  };
  return cmocka_run_group_tests_name("csvin_spectrum", tests, NULL, NULL);
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--spectrum") == 0) {
    return run_spectrum();
  }
  if (argc != 1) {
    fprintf(stderr, "usage: %s [--spectrum]\n", argv[0]);
    return 2;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_table),
      cmocka_unit_test(test_empty_file_has_no_header),
      cmocka_unit_test(test_long_field),
      cmocka_unit_test(test_unterminated_quote),
      cmocka_unit_test(test_unterminated_quote_line_of_second_field),
      cmocka_unit_test(test_malformed_quoting),
      cmocka_unit_test(test_bad_header_fails_open),
      cmocka_unit_test(test_missing_file),
      cmocka_unit_test(test_rewind),
      cmocka_unit_test(test_rewind_no_header_midway),
      cmocka_unit_test(test_rewind_bom_only_has_no_records),
      cmocka_unit_test(test_stdin),
      cmocka_unit_test(test_would_block_on_pipe),
      cmocka_unit_test(test_would_block_never_on_regular_file),
      cmocka_unit_test(test_many_records_in_order),
      cmocka_unit_test(test_open_quote_memory_bounded),
      cmocka_unit_test(test_unterminated_quote_line_across_block_split_escape),
      cmocka_unit_test(test_pipe_bom_alone_then_data),
      cmocka_unit_test(test_pipe_short_first_record_not_held),
      cmocka_unit_test(test_too_many_fields_refused),
      cmocka_unit_test(test_first_record_of_empty_fields),
      cmocka_unit_test(test_other_libcsv_version_fails_to_build),
      cmocka_unit_test(test_conformance_cases),
  };
  return cmocka_run_group_tests_name("csvin", tests, NULL, NULL);
}
