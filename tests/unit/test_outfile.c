/* test_outfile.c -- the consumer's out9.txt sink: one header per file, records byte-exact as
 * RFC 4180 CSV, side files for other headers, nothing on disk before a flush. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "outfile.h"

/* A temporary directory per test, removed with its files at the end. */
typedef struct fixture {
  char dir[64];
  char main_path[128];
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  if (f == NULL) {
    return -1;
  }
  snprintf(f->dir, sizeof(f->dir), "/tmp/test_outfile.XXXXXX");
  if (mkdtemp(f->dir) == NULL) {
    free(f);
    return -1;
  }
  snprintf(f->main_path, sizeof(f->main_path), "%s/out9.txt", f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
  if (system(cmd) != 0) {
    fprintf(stderr, "could not remove %s\n", f->dir);
  }
  free(f);
  return 0;
}

/* The whole file as a NUL-terminated string ("" when missing). Caller frees. */
static char *slurp(const char *path) {
  FILE *fp = fopen(path, "rb");
  char *s;
  long n;
  if (fp == NULL) {
    return strdup("");
  }
  fseek(fp, 0, SEEK_END);
  n = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  s = calloc(1, (size_t)n + 1);
  assert_non_null(s);
  assert_int_equal(fread(s, 1, (size_t)n, fp), (size_t)n);
  fclose(fp);
  return s;
}

static void assert_file(const char *path, const char *want) {
  char *got = slurp(path);
  assert_string_equal(got, want);
  free(got);
}

static void write_file(const char *path, const char *text) {
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fputs(text, fp) >= 0, 1);
  assert_int_equal(fclose(fp), 0);
}

/* Fields from C strings (NUL-free), for the tests' small tables. */
static void fields_from(cs_field *out, const char *const *s, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    out[i].data = s[i];
    out[i].len = strlen(s[i]);
  }
}

/* A stream with the given header. */
static void stream_make(sink_stream *st, cs_field *cols, const char *name,
                        const char *const *header, size_t n) {
  memset(st, 0, sizeof(*st));
  fields_from(cols, header, n);
  st->producer_id = 0x1234;
  st->name = name;
  st->protocol = "tcp";
  st->peer = "127.0.0.1:4000";
  st->ncolumns = n;
  st->columns = n > 0 ? cols : NULL;
}

/* Queue one record of string fields for st. */
static int add(outfile *o, sink_stream *st, uint64_t seq, const char *const *vals, size_t n) {
  cs_field f[16];
  sink_record r;
  fields_from(f, vals, n);
  memset(&r, 0, sizeof(r));
  r.stream = st;
  r.seq = seq;
  r.nfields = n;
  r.fields = f;
  return outfile_add(o, &r);
}

static const char *const temps_hdr[] = {"Year", "Month", "TempF"};
static const char *const bikes_hdr[] = {"station", "bikes"};

static void test_fresh_file_gets_header_once_then_records(void **state) {
  fixture *f = *state;
  outfile *o;
  sink_stream st;
  cs_field cols[3];
  char err[256];
  const char *r1[] = {"2026", "11", "61.0"};
  const char *r2[] = {"2026", "12", "59.5"};
  assert_int_equal(outfile_open(&o, f->main_path, 0, err, sizeof(err)), 0);
  stream_make(&st, cols, "temps", temps_hdr, 3);
  assert_int_equal(add(o, &st, 1, r1, 3), 0);
  assert_int_equal(add(o, &st, 2, r2, 3), 0);
  assert_int_equal(outfile_flush(o), 0);
  assert_int_equal(outfile_records(o), 2);
  assert_file(f->main_path, "Year,Month,TempF\r\n2026,11,61.0\r\n2026,12,59.5\r\n");
  assert_int_equal(outfile_close(o, err, sizeof(err)), 0);
}

static void test_fields_are_quoted_where_needed(void **state) {
  fixture *f = *state;
  outfile *o;
  sink_stream st;
  cs_field cols[3];
  char err[256];
  const char *r1[] = {"a, b", "say \"hi\"", "two\nlines"};
  assert_int_equal(outfile_open(&o, f->main_path, 0, err, sizeof(err)), 0);
  stream_make(&st, cols, "temps", temps_hdr, 3);
  assert_int_equal(add(o, &st, 1, r1, 3), 0);
  assert_int_equal(outfile_close(o, err, sizeof(err)), 0);
  assert_file(f->main_path, "Year,Month,TempF\r\n\"a, b\",\"say \"\"hi\"\"\",\"two\nlines\"\r\n");
}

static void test_nothing_reaches_disk_before_flush(void **state) {
  fixture *f = *state;
  outfile *o;
  sink_stream st;
  cs_field cols[3];
  char err[256];
  const char *r1[] = {"2026", "11", "61.0"};
  assert_int_equal(outfile_open(&o, f->main_path, 0, err, sizeof(err)), 0);
  stream_make(&st, cols, "temps", temps_hdr, 3);
  assert_int_equal(add(o, &st, 1, r1, 3), 0);
  assert_file(f->main_path, "");
  assert_true(outfile_pending_bytes(o) > 0);
  assert_int_equal(outfile_records(o), 0);
  assert_int_equal(outfile_flush(o), 0);
  assert_int_equal(outfile_pending_bytes(o), 0);
  assert_file(f->main_path, "Year,Month,TempF\r\n2026,11,61.0\r\n");
  assert_int_equal(outfile_close(o, err, sizeof(err)), 0);
}

static void test_two_streams_with_one_header_share_the_file(void **state) {
  fixture *f = *state;
  outfile *o;
  sink_stream a, b;
  cs_field ca[3], cb[3];
  char err[256];
  const char *r1[] = {"1", "2", "3"};
  const char *r2[] = {"4", "5", "6"};
  assert_int_equal(outfile_open(&o, f->main_path, 0, err, sizeof(err)), 0);
  stream_make(&a, ca, "temps", temps_hdr, 3);
  stream_make(&b, cb, "temps", temps_hdr, 3);
  b.producer_id = 0x9999;
  assert_int_equal(add(o, &a, 1, r1, 3), 0);
  assert_int_equal(add(o, &b, 1, r2, 3), 0);
  assert_int_equal(outfile_close(o, err, sizeof(err)), 0);
  assert_file(f->main_path, "Year,Month,TempF\r\n1,2,3\r\n4,5,6\r\n");
}

static void test_other_header_goes_to_a_sanitised_side_file(void **state) {
  fixture *f = *state;
  outfile *o;
  sink_stream a, b;
  cs_field ca[3], cb[2];
  char err[256], side[192];
  const char *r1[] = {"1", "2", "3"};
  const char *r2[] = {"ST-1", "4"};
  assert_int_equal(outfile_open(&o, f->main_path, 0, err, sizeof(err)), 0);
  stream_make(&a, ca, "temps", temps_hdr, 3);
  stream_make(&b, cb, "../bikes now", bikes_hdr, 2);
  assert_int_equal(add(o, &a, 1, r1, 3), 0);
  assert_int_equal(add(o, &b, 1, r2, 2), 0);
  assert_int_equal(outfile_close(o, err, sizeof(err)), 0);
  assert_file(f->main_path, "Year,Month,TempF\r\n1,2,3\r\n");
  snprintf(side, sizeof(side), "%s/out9._._bikes_now.txt", f->dir);
  assert_file(side, "station,bikes\r\nST-1,4\r\n");
}

/* outfile_stream_path names each stream's file: the main one, the side file a stream opened,
 * and the same side file for a later stream with that header (named after the first). */
static void test_stream_path_names_each_streams_file(void **state) {
  fixture *f = *state;
  outfile *o;
  sink_stream a, b, c;
  cs_field ca[3], cb[2], cc[2];
  char err[256], side[192];
  const char *r1[] = {"1", "2", "3"};
  const char *r2[] = {"ST-1", "4"};
  assert_int_equal(outfile_open(&o, f->main_path, 0, err, sizeof(err)), 0);
  stream_make(&a, ca, "temps", temps_hdr, 3);
  stream_make(&b, cb, "bikes", bikes_hdr, 2);
  stream_make(&c, cc, "edge", bikes_hdr, 2);
  c.producer_id = 0x5678;
  assert_null(outfile_stream_path(o, &a)); /* no record yet */
  assert_int_equal(add(o, &a, 1, r1, 3), 0);
  assert_int_equal(add(o, &b, 1, r2, 2), 0);
  assert_int_equal(add(o, &c, 1, r2, 2), 0);
  snprintf(side, sizeof(side), "%s/out9.bikes.txt", f->dir);
  assert_string_equal(outfile_stream_path(o, &a), f->main_path);
  assert_string_equal(outfile_stream_path(o, &b), side);
  assert_string_equal(outfile_stream_path(o, &c), side);
  assert_int_equal(outfile_close(o, err, sizeof(err)), 0);
  assert_file(side, "station,bikes\r\nST-1,4\r\nST-1,4\r\n");
}

static void test_records_are_counted_per_file(void **state) {
  fixture *f = *state;
  outfile *o;
  sink_stream a, b;
  cs_field ca[3], cb[2];
  char err[256];
  const char *path;
  uint64_t records;
  const char *r1[] = {"1", "2", "3"};
  const char *r2[] = {"ST-1", "4"};
  assert_int_equal(outfile_open(&o, f->main_path, 0, err, sizeof(err)), 0);
  stream_make(&a, ca, "temps", temps_hdr, 3);
  stream_make(&b, cb, "bikes", bikes_hdr, 2);
  assert_int_equal(add(o, &a, 1, r1, 3), 0);
  assert_int_equal(add(o, &b, 1, r2, 2), 0);
  assert_int_equal(add(o, &b, 2, r2, 2), 0);
  assert_int_equal(outfile_flush(o), 0);
  assert_int_equal(outfile_records(o), 3);
  assert_int_equal(outfile_files(o), 2);
  assert_int_equal(outfile_file(o, 0, &path, &records), 0);
  assert_string_equal(path, f->main_path);
  assert_int_equal(records, 1);
  assert_int_equal(outfile_file(o, 1, &path, &records), 0);
  assert_non_null(strstr(path, "/out9.bikes.txt"));
  assert_int_equal(records, 2);
  assert_int_equal(outfile_file(o, 2, &path, &records), CS_ERANGE);
  assert_int_equal(outfile_close(o, err, sizeof(err)), 0);
}

static void test_side_files_are_capped_and_the_rest_go_on(void **state) {
  fixture *f = *state;
  outfile *o;
  enum { NSTREAMS = OUTFILE_MAX_SIDE_OPEN + 2 }; /* the main file, every side file, one more */
  sink_stream *st = calloc(NSTREAMS, sizeof(*st));
  cs_field *cols = calloc(NSTREAMS, sizeof(*cols));
  char(*names)[16] = calloc(NSTREAMS, sizeof(*names));
  char err[256], path[192];
  const char *r1[] = {"v"};
  int i;
  assert_non_null(st);
  assert_non_null(cols);
  assert_non_null(names);
  assert_int_equal(outfile_open(&o, f->main_path, 0, err, sizeof(err)), 0);
  for (i = 0; i < NSTREAMS; i++) {
    const char *hdr[1];
    snprintf(names[i], sizeof(names[i]), "s%d", i);
    hdr[0] = names[i]; /* a header of its own: a file of its own */
    stream_make(&st[i], &cols[i], names[i], hdr, 1);
    assert_int_equal(add(o, &st[i], 1, r1, 1), i < NSTREAMS - 1 ? 0 : CS_ENOFILE);
  }
  /* The refused stream stays refused, counted; the others still write. */
  assert_int_equal(add(o, &st[NSTREAMS - 1], 2, r1, 1), CS_ENOFILE);
  assert_int_equal(add(o, &st[0], 2, r1, 1), 0);
  assert_int_equal(add(o, &st[1], 2, r1, 1), 0);
  assert_int_equal(outfile_flush(o), 0);
  assert_int_equal(outfile_files(o), OUTFILE_MAX_SIDE_OPEN + 1);
  assert_int_equal(outfile_records(o), NSTREAMS - 1 + 2);
  assert_int_equal(outfile_not_written(o), 2);
  assert_int_equal(outfile_close(o, err, sizeof(err)), 0);
  assert_file(f->main_path, "s0\r\nv\r\nv\r\n");
  snprintf(path, sizeof(path), "%s/out9.s1.txt", f->dir);
  assert_file(path, "s1\r\nv\r\nv\r\n");
  snprintf(path, sizeof(path), "%s/out9.s%d.txt", f->dir, NSTREAMS - 1);
  assert_int_equal(access(path, F_OK), -1);
  free(st);
  free(cols);
  free(names);
}

static void test_existing_file_keeps_its_header_and_is_appended(void **state) {
  fixture *f = *state;
  outfile *o;
  sink_stream st;
  cs_field cols[3];
  char err[256];
  const char *r1[] = {"2027", "1", "50.0"};
  write_file(f->main_path, "Year,Month,TempF\r\n2026,11,61.0\r\n");
  assert_int_equal(outfile_open(&o, f->main_path, 0, err, sizeof(err)), 0);
  stream_make(&st, cols, "temps", temps_hdr, 3);
  assert_int_equal(add(o, &st, 1, r1, 3), 0);
  assert_int_equal(outfile_close(o, err, sizeof(err)), 0);
  assert_file(f->main_path, "Year,Month,TempF\r\n2026,11,61.0\r\n2027,1,50.0\r\n");
}

static void test_existing_file_without_final_line_break_gets_one_first(void **state) {
  fixture *f = *state;
  outfile *o;
  sink_stream st;
  cs_field cols[3];
  char err[256];
  const char *r1[] = {"2027", "1", "50.0"};
  /* An earlier run interrupted mid-write: the last record has no line break. */
  write_file(f->main_path, "Year,Month,TempF\r\n2026,11,61.0");
  assert_int_equal(outfile_open(&o, f->main_path, 0, err, sizeof(err)), 0);
  stream_make(&st, cols, "temps", temps_hdr, 3);
  assert_int_equal(add(o, &st, 1, r1, 3), 0);
  assert_int_equal(outfile_flush(o), 0);
  assert_int_equal(outfile_records(o), 1);
  assert_int_equal(outfile_close(o, err, sizeof(err)), 0);
  assert_file(f->main_path, "Year,Month,TempF\r\n2026,11,61.0\r\n2027,1,50.0\r\n");
}

static void test_existing_file_ending_in_lone_cr_gets_its_lf(void **state) {
  fixture *f = *state;
  outfile *o;
  sink_stream st;
  cs_field cols[3];
  char err[256];
  const char *r1[] = {"2027", "1", "50.0"};
  write_file(f->main_path, "Year,Month,TempF\r\n2026,11,61.0\r");
  assert_int_equal(outfile_open(&o, f->main_path, 0, err, sizeof(err)), 0);
  stream_make(&st, cols, "temps", temps_hdr, 3);
  assert_int_equal(add(o, &st, 1, r1, 3), 0);
  assert_int_equal(outfile_close(o, err, sizeof(err)), 0);
  assert_file(f->main_path, "Year,Month,TempF\r\n2026,11,61.0\r\n2027,1,50.0\r\n");
}

static void test_existing_side_file_without_final_line_break_gets_one_first(void **state) {
  fixture *f = *state;
  outfile *o;
  sink_stream a, b;
  cs_field ca[3], cb[2];
  char err[256], side[192];
  const char *r1[] = {"1", "2", "3"};
  const char *r2[] = {"ST-2", "5"};
  snprintf(side, sizeof(side), "%s/out9.bikes.txt", f->dir);
  write_file(side, "station,bikes\r\nST-1,4");
  assert_int_equal(outfile_open(&o, f->main_path, 0, err, sizeof(err)), 0);
  stream_make(&a, ca, "temps", temps_hdr, 3);
  stream_make(&b, cb, "bikes", bikes_hdr, 2);
  assert_int_equal(add(o, &a, 1, r1, 3), 0);
  assert_int_equal(add(o, &b, 1, r2, 2), 0);
  assert_int_equal(outfile_close(o, err, sizeof(err)), 0);
  assert_file(side, "station,bikes\r\nST-1,4\r\nST-2,5\r\n");
}

static void test_existing_file_with_other_header_is_left_alone(void **state) {
  fixture *f = *state;
  outfile *o;
  sink_stream st;
  cs_field cols[3];
  char err[256], side[192];
  const char *r1[] = {"2027", "1", "50.0"};
  write_file(f->main_path, "a,b\nx,y\n");
  assert_int_equal(outfile_open(&o, f->main_path, 0, err, sizeof(err)), 0);
  stream_make(&st, cols, "temps", temps_hdr, 3);
  assert_int_equal(add(o, &st, 1, r1, 3), 0);
  assert_int_equal(outfile_close(o, err, sizeof(err)), 0);
  assert_file(f->main_path, "a,b\nx,y\n");
  snprintf(side, sizeof(side), "%s/out9.temps.txt", f->dir);
  assert_file(side, "Year,Month,TempF\r\n2027,1,50.0\r\n");
}

static void test_side_name_taken_by_other_header_gets_a_number(void **state) {
  fixture *f = *state;
  outfile *o;
  sink_stream main_st, b;
  cs_field cm[2], cb[3];
  char err[256], side[192], side2[192];
  const char *r0[] = {"ST-1", "4"};
  const char *r1[] = {"1", "2", "3"};
  snprintf(side, sizeof(side), "%s/out9.temps.txt", f->dir);
  snprintf(side2, sizeof(side2), "%s/out9.temps-2.txt", f->dir);
  write_file(side, "other,header\r\n");
  assert_int_equal(outfile_open(&o, f->main_path, 0, err, sizeof(err)), 0);
  stream_make(&main_st, cm, "bikes", bikes_hdr, 2);
  stream_make(&b, cb, "temps", temps_hdr, 3);
  assert_int_equal(add(o, &main_st, 1, r0, 2), 0);
  assert_int_equal(add(o, &b, 1, r1, 3), 0);
  assert_int_equal(outfile_close(o, err, sizeof(err)), 0);
  assert_file(side, "other,header\r\n");
  assert_file(side2, "Year,Month,TempF\r\n1,2,3\r\n");
}

/* A side file left by someone else that cannot be read as CSV (an unterminated quote) is an
 * opening failure like any other: that stream is refused, once, and the consumer goes on. */
static void test_unreadable_side_file_refuses_the_stream_only(void **state) {
  fixture *f = *state;
  outfile *o;
  sink_stream main_st, b;
  cs_field cm[2], cb[3];
  char err[256], side[192];
  const char *r0[] = {"ST-1", "4"};
  const char *r1[] = {"1", "2", "3"};
  snprintf(side, sizeof(side), "%s/out9.temps.txt", f->dir);
  write_file(side, "\"not,closed\r\n");
  assert_int_equal(outfile_open(&o, f->main_path, 0, err, sizeof(err)), 0);
  stream_make(&main_st, cm, "bikes", bikes_hdr, 2);
  stream_make(&b, cb, "temps", temps_hdr, 3);
  assert_int_equal(add(o, &main_st, 1, r0, 2), 0);
  assert_int_equal(add(o, &b, 1, r1, 3), CS_ENOFILE);
  assert_int_equal(add(o, &b, 2, r1, 3), CS_ENOFILE);
  assert_int_equal(add(o, &main_st, 2, r0, 2), 0);
  assert_int_equal(outfile_flush(o), 0);
  assert_int_equal(outfile_not_written(o), 2);
  assert_null(outfile_stream_path(o, &b));
  assert_int_equal(outfile_close(o, err, sizeof(err)), 0);
  assert_file(side, "\"not,closed\r\n");
  assert_file(f->main_path, "station,bikes\r\nST-1,4\r\nST-1,4\r\n");
}

/* A --no-header stream's file starts with column_1..column_N (N: its first record's fields),
 * so that a CSV reader does not take the first record for the header. */
static void test_headerless_stream_gets_a_synthetic_header(void **state) {
  fixture *f = *state;
  outfile *o;
  sink_stream st;
  char err[256];
  const char *r1[] = {"1", "x,y"};
  const char *r2[] = {"2", "z", "long row"};
  assert_int_equal(outfile_open(&o, f->main_path, 0, err, sizeof(err)), 0);
  stream_make(&st, NULL, "raw", NULL, 0);
  assert_int_equal(add(o, &st, 1, r1, 2), 0);
  assert_int_equal(add(o, &st, 2, r2, 3), 0); /* a ragged row is written as it came */
  assert_int_equal(outfile_close(o, err, sizeof(err)), 0);
  assert_file(f->main_path, "column_1,column_2\r\n1,\"x,y\"\r\n2,z,long row\r\n");
}

/* Headerless streams are routed by their synthetic header like any other: a side file when the
 * main file has another header, shared by headerless streams of the same width, and a file of
 * its own for another width. */
static void test_headerless_streams_are_routed_by_their_width(void **state) {
  fixture *f = *state;
  outfile *o;
  sink_stream main_st, a, b, c;
  cs_field cm[3];
  char err[256], side[192], side3[192];
  const char *r0[] = {"2026", "11", "61.0"};
  const char *r1[] = {"a1", "a2"};
  const char *r2[] = {"b1", "b2"};
  const char *r3[] = {"c1", "c2", "c3"};
  assert_int_equal(outfile_open(&o, f->main_path, 0, err, sizeof(err)), 0);
  stream_make(&main_st, cm, "temps", temps_hdr, 3);
  stream_make(&a, NULL, "raw", NULL, 0);
  stream_make(&b, NULL, "other", NULL, 0);
  stream_make(&c, NULL, "wide", NULL, 0);
  b.producer_id = 0x5678;
  assert_int_equal(add(o, &main_st, 1, r0, 3), 0);
  assert_int_equal(add(o, &a, 1, r1, 2), 0);
  assert_int_equal(add(o, &b, 1, r2, 2), 0);
  assert_int_equal(add(o, &c, 1, r3, 3), 0);
  assert_int_equal(outfile_close(o, err, sizeof(err)), 0);
  snprintf(side, sizeof(side), "%s/out9.raw.txt", f->dir);
  snprintf(side3, sizeof(side3), "%s/out9.wide.txt", f->dir);
  assert_file(f->main_path, "Year,Month,TempF\r\n2026,11,61.0\r\n");
  assert_file(side, "column_1,column_2\r\na1,a2\r\nb1,b2\r\n");
  assert_file(side3, "column_1,column_2,column_3\r\nc1,c2,c3\r\n");
}

static void test_unwritable_path_is_named(void **state) {
  fixture *f = *state;
  outfile *o = NULL;
  char err[256], path[192];
  (void)f;
  snprintf(path, sizeof(path), "%s/no/such/dir/out9.txt", f->dir);
  assert_int_not_equal(outfile_open(&o, path, 0, err, sizeof(err)), 0);
  assert_null(o);
  assert_non_null(strstr(err, path));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_fresh_file_gets_header_once_then_records, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_fields_are_quoted_where_needed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_nothing_reaches_disk_before_flush, setup, teardown),
      cmocka_unit_test_setup_teardown(test_two_streams_with_one_header_share_the_file, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_other_header_goes_to_a_sanitised_side_file, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_stream_path_names_each_streams_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_records_are_counted_per_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_side_files_are_capped_and_the_rest_go_on, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_existing_file_keeps_its_header_and_is_appended, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_existing_file_without_final_line_break_gets_one_first,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_existing_file_ending_in_lone_cr_gets_its_lf, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_existing_side_file_without_final_line_break_gets_one_first, setup, teardown),
      cmocka_unit_test_setup_teardown(test_existing_file_with_other_header_is_left_alone, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_side_name_taken_by_other_header_gets_a_number, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_unreadable_side_file_refuses_the_stream_only, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_headerless_stream_gets_a_synthetic_header, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_headerless_streams_are_routed_by_their_width, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_unwritable_path_is_named, setup, teardown),
  };
  log_init("test_outfile", LOG_WARN);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
