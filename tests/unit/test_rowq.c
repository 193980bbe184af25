/* test_rowq.c -- cmocka tests of the database sinks' row queue (consumer/rowq.c): order, byte
 * accounting, rows kept until popped, and the .uncommitted.csv dump read back independently. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csvin.h"
#include "error.h"
#include "rowq.h"

/* A field from a string literal, NUL bytes inside included. */
#define LIT(s) ((cs_field){s, sizeof s - 1})

/* A temporary directory per test and the dump's path in it. */
typedef struct fixture {
  char dir[64];
  char csv[128];
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  if (f == NULL) {
    return -1;
  }
  snprintf(f->dir, sizeof f->dir, "/tmp/test_rowq.XXXXXX");
  if (mkdtemp(f->dir) == NULL) {
    free(f);
    return -1;
  }
  snprintf(f->csv, sizeof f->csv, "%s/out.db.uncommitted.csv", f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  unlink(f->csv);
  rmdir(f->dir);
  free(f);
  return 0;
}

/* A stream with the metadata the dump writes. */
static sink_stream make_stream(uint64_t pid, const char *protocol) {
  sink_stream st;
  memset(&st, 0, sizeof st);
  st.producer_id = pid;
  st.name = "temps";
  st.protocol = protocol;
  st.peer = "127.0.0.1:40000";
  return st;
}

/* Push one record of n C-string values (no NUL inside) with sequence seq. */
static void push_values(rowq *q, sink_stream *st, uint64_t seq, const char *const *v, size_t n,
                        void *tag) {
  cs_field f[16];
  assert_true(n <= 16);
  for (size_t i = 0; i < n; i++) {
    f[i].data = v[i];
    f[i].len = strlen(v[i]);
  }
  sink_record r = {st, seq, 1000 + seq, 2000 + seq, n, f};
  assert_int_equal(rowq_push(q, &r, tag), 0);
}

/* The sequence numbers of the queued rows, oldest first, as "1,2,3". */
static void seqs(const rowq *q, char *out, size_t len) {
  out[0] = '\0';
  for (const rowq_row *row = rowq_head(q); row; row = rowq_next(row)) {
    snprintf(out + strlen(out), len - strlen(out), "%s%" PRIu64, out[0] ? "," : "", row->seq);
  }
}

/* The whole file as a NUL-terminated string. Caller frees. */
static char *slurp(const char *path) {
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  assert_int_equal(fseek(fp, 0, SEEK_END), 0);
  long n = ftell(fp);
  assert_true(n >= 0);
  assert_int_equal(fseek(fp, 0, SEEK_SET), 0);
  char *text = calloc(1, (size_t)n + 1);
  assert_non_null(text);
  assert_int_equal(fread(text, 1, (size_t)n, fp), (size_t)n);
  fclose(fp);
  return text;
}

/* The dump's table name: the row's tag is the name itself; arg counts the calls. */
static const char *tag_name(const rowq_row *row, void *arg) {
  (*(size_t *)arg)++;
  return row->tag;
}

/* Rows come out in the order they went in, each with its tag, metadata and a copy of its
 * values (the caller's buffers may change after the push). */
static void test_push_pop_keep_order(void **state) {
  (void)state;
  rowq *q = NULL;
  char buf[8], got[64];
  int tags[5];
  sink_stream st = make_stream(7, "tcp");
  assert_int_equal(rowq_new(&q), 0);
  assert_null(rowq_head(q));
  for (uint64_t i = 0; i < 5; i++) {
    snprintf(buf, sizeof buf, "v%" PRIu64, i + 1);
    const char *v[] = {buf, ""};
    push_values(q, &st, i + 1, v, 2, &tags[i]);
    memset(buf, 'X', sizeof buf - 1); /* the queue holds its own copy */
  }
  assert_int_equal(rowq_count(q), 5);
  size_t i = 0;
  for (const rowq_row *row = rowq_head(q); row; row = rowq_next(row), i++) {
    char want[24];
    snprintf(want, sizeof want, "v%zu", i + 1);
    assert_ptr_equal(row->tag, &tags[i]);
    assert_ptr_equal(row->stream, &st);
    assert_int_equal(row->seq, i + 1);
    assert_int_equal(row->sent_us, 1000 + i + 1);
    assert_int_equal(row->received_us, 2000 + i + 1);
    assert_int_equal(row->nfields, 2);
    assert_int_equal(row->fields[0].len, strlen(want));
    assert_memory_equal(row->fields[0].data, want, strlen(want));
    assert_int_equal(row->fields[1].len, 0);
  }
  assert_int_equal(i, 5);
  assert_int_equal(rowq_pop(q, 2), 0);
  seqs(q, got, sizeof got);
  assert_string_equal(got, "3,4,5");
  assert_int_equal(rowq_head(q)->seq, 3);
  const char *v[] = {"six"};
  push_values(q, &st, 6, v, 1, NULL);
  seqs(q, got, sizeof got);
  assert_string_equal(got, "3,4,5,6");
  rowq_free(q);
  rowq_free(NULL);
}

/* Each row counts its values' bytes and more; popping every row brings count and bytes back
 * to 0, and the queue is usable again after it emptied. */
static void test_bytes_back_to_zero(void **state) {
  (void)state;
  rowq *q = NULL;
  sink_stream st = make_stream(7, "udp");
  size_t added[4];
  const char *v[] = {"a", "bb", "a longer value, with a comma"};
  assert_int_equal(rowq_new(&q), 0);
  assert_int_equal(rowq_bytes(q), 0);
  for (size_t i = 0; i < 4; i++) {
    size_t before = rowq_bytes(q), n = 3 - i % 3, values = 0;
    push_values(q, &st, i + 1, v, n, NULL);
    for (size_t k = 0; k < n; k++) {
      values += sizeof(cs_field) + strlen(v[k]);
    }
    added[i] = rowq_bytes(q) - before;
    assert_true(added[i] >= values);
  }
  /* Each pop takes away exactly what that row's push added. */
  for (size_t i = 0; i < 4; i++) {
    size_t before = rowq_bytes(q);
    assert_int_equal(rowq_pop(q, 1), 0);
    assert_int_equal(before - rowq_bytes(q), added[i]);
    assert_int_equal(rowq_count(q), 3 - i);
  }
  assert_int_equal(rowq_bytes(q), 0);
  assert_null(rowq_head(q));
  assert_int_equal(rowq_pop(q, 0), 0);
  /* Usable again once empty: the new row is head and tail. */
  push_values(q, &st, 9, v, 1, NULL);
  push_values(q, &st, 10, v, 1, NULL);
  assert_int_equal(rowq_count(q), 2);
  assert_int_equal(rowq_head(q)->seq, 9);
  assert_int_equal(rowq_next(rowq_head(q))->seq, 10);
  assert_null(rowq_next(rowq_next(rowq_head(q))));
  assert_int_equal(rowq_bytes(q), 2 * added[2]);
  assert_int_equal(rowq_pop(q, 2), 0);
  assert_int_equal(rowq_bytes(q), 0);
  rowq_free(q);
}

/* A sink's batch walks the first rows without removing them: when the batch fails they are
 * all still there, in order, and popping more than is queued removes nothing. */
static void test_rows_kept_until_popped(void **state) {
  (void)state;
  rowq *q = NULL;
  char got[64];
  sink_stream st = make_stream(7, "tcp");
  const char *v[] = {"x"};
  assert_int_equal(rowq_new(&q), 0);
  for (uint64_t i = 1; i <= 5; i++) {
    push_values(q, &st, i, v, 1, NULL);
  }
  size_t bytes = rowq_bytes(q);
  size_t n = 0;
  for (const rowq_row *row = rowq_head(q); row && n < 3; row = rowq_next(row)) {
    n++;
  }
  /* The batch of n rows did not commit: nothing is popped. */
  assert_int_equal(rowq_count(q), 5);
  assert_int_equal(rowq_bytes(q), bytes);
  seqs(q, got, sizeof got);
  assert_string_equal(got, "1,2,3,4,5");
  assert_int_equal(rowq_pop(q, 6), CS_ERANGE);
  assert_int_equal(rowq_count(q), 5);
  assert_int_equal(rowq_bytes(q), bytes);
  seqs(q, got, sizeof got);
  assert_string_equal(got, "1,2,3,4,5");
  /* The retry commits: exactly those n leave. */
  assert_int_equal(rowq_pop(q, n), 0);
  seqs(q, got, sizeof got);
  assert_string_equal(got, "4,5");
  rowq_free(q); /* frees the rows still queued */
}

/* Popping many rows at once, across blocks and in the middle of them, leaves exactly the
 * rows after them, and counts and bytes as one pop at a time would. */
static void test_pop_across_blocks(void **state) {
  (void)state;
  rowq *q = NULL;
  sink_stream st = make_stream(7, "tcp");
  enum { N = 20000 };
  static size_t added[N + 1];
  char value[600];
  const char *v[] = {value, "x"};
  const size_t pops[] = {1, 2, 999, 3000, 1, 4567, 2500, 8000, N};
  uint64_t next = 1;
  memset(value, 'v', sizeof value - 1);
  value[sizeof value - 1] = '\0';
  assert_int_equal(rowq_new(&q), 0);
  for (size_t i = 1; i <= N; i++) {
    size_t before = rowq_bytes(q);
    value[i % 500] = '\0'; /* rows of many sizes: blocks hold different counts */
    push_values(q, &st, i, v, 2, NULL);
    value[i % 500] = 'v';
    added[i] = rowq_bytes(q) - before;
  }
  for (size_t k = 0; k < sizeof pops / sizeof pops[0]; k++) {
    size_t n = pops[k] < rowq_count(q) ? pops[k] : rowq_count(q), gone = 0;
    for (size_t i = 0; i < n; i++) {
      gone += added[next + i];
    }
    size_t bytes = rowq_bytes(q), count = rowq_count(q);
    assert_int_equal(rowq_pop(q, n), 0);
    next += n;
    assert_int_equal(rowq_count(q), count - n);
    assert_int_equal(rowq_bytes(q), bytes - gone);
    if (next <= N) {
      assert_int_equal(rowq_head(q)->seq, next);
      assert_int_equal(rowq_head(q)->fields[1].len, 1);
      assert_int_equal(rowq_head(q)->fields[0].len, next % 500);
    } else {
      assert_null(rowq_head(q));
      assert_null(rowq_tail(q));
    }
  }
  assert_int_equal(rowq_bytes(q), 0);
  push_values(q, &st, 1, v, 2, NULL); /* usable again */
  assert_int_equal(rowq_head(q)->seq, 1);
  assert_int_equal(rowq_tail(q)->seq, 1);
  rowq_free(q);
}

/* The dump, byte for byte: the header on a new file, RFC 4180 quoting of a quote, a comma and
 * a line break, a row without values, the table name from the sink; a second dump appends
 * without a header, and a file whose last line was cut off gets a line break first. */
static void test_save_exact_bytes(void **state) {
  fixture *f = *state;
  rowq *q = NULL;
  char err[256];
  size_t saved = 99, calls = 0;
  sink_stream a = make_stream(0xaa, "tcp"), b = make_stream(0xbb, "udp");
  const char *v1[] = {"say \"hi\"", "a,b", "line1\nline2", ""};
  assert_int_equal(rowq_new(&q), 0);
  push_values(q, &a, 2, v1, 4, "temps");
  push_values(q, &b, 3, NULL, 0, "temps_2");
  assert_int_equal(rowq_save(q, f->csv, tag_name, &calls, &saved, err, sizeof err), 0);
  assert_int_equal(saved, 2);
  assert_int_equal(calls, 2);
  assert_int_equal(rowq_count(q), 2);
  const char *hdr = "table,_producer,_protocol,_seq,_sent_us,_received_us,_peer\r\n";
  const char *rows = "temps,00000000000000aa,tcp,2,1002,2002,127.0.0.1:40000,"
                     "\"say \"\"hi\"\"\",\"a,b\",\"line1\nline2\",\r\n"
                     "temps_2,00000000000000bb,udp,3,1003,2003,127.0.0.1:40000\r\n";
  char want[1024];
  snprintf(want, sizeof want, "%s%s", hdr, rows);
  char *got = slurp(f->csv);
  assert_string_equal(got, want);
  free(got);
  assert_int_equal(rowq_save(q, f->csv, tag_name, &calls, NULL, err, sizeof err), 0);
  snprintf(want, sizeof want, "%s%s%s", hdr, rows, rows);
  got = slurp(f->csv);
  assert_string_equal(got, want);
  free(got);
  /* A file cut off mid-line: the dump starts on a new line, without a header. */
  FILE *fp = fopen(f->csv, "wb");
  assert_non_null(fp);
  assert_true(fputs("temps,cut", fp) >= 0);
  assert_int_equal(fclose(fp), 0);
  assert_int_equal(rowq_save(q, f->csv, tag_name, &calls, &saved, err, sizeof err), 0);
  assert_int_equal(saved, 2);
  snprintf(want, sizeof want, "temps,cut\r\n%s", rows);
  got = slurp(f->csv);
  assert_string_equal(got, want);
  free(got);
  rowq_free(q);
}

/* An empty queue writes the header alone to a new file, and saves 0 rows. */
static void test_save_empty_queue_writes_header(void **state) {
  fixture *f = *state;
  rowq *q = NULL;
  char err[256];
  size_t saved = 99, calls = 0;
  assert_int_equal(rowq_new(&q), 0);
  assert_int_equal(rowq_save(q, f->csv, tag_name, &calls, &saved, err, sizeof err), 0);
  assert_int_equal(saved, 0);
  assert_int_equal(calls, 0);
  char *got = slurp(f->csv);
  assert_string_equal(got, "table,_producer,_protocol,_seq,_sent_us,_received_us,_peer\r\n");
  free(got);
  rowq_free(q);
}

/* Values of every awkward kind, read back with the project's CSV reader: every field of every
 * row, byte for byte, metadata included. */
static void test_save_reads_back_with_csvin(void **state) {
  fixture *f = *state;
  rowq *q = NULL;
  csvin *in = NULL;
  char err[256];
  size_t saved = 0, calls = 0;
  const cs_field values[] = {LIT("plain"),  LIT(""),         LIT(" lead"), LIT("trail\t"),
                             LIT("q\"\"q"), LIT("cr\rlf\n"), LIT("a\0b"),  LIT("\xc3\xa9t\xc3\xa9"),
                             LIT(",,,"),    LIT("\r\n")};
  const size_t nvalues = sizeof values / sizeof values[0];
  sink_stream st = make_stream(0x0123456789abcdefULL, "udp");
  assert_int_equal(rowq_new(&q), 0);
  for (size_t i = 0; i < 40; i++) {
    size_t n = i % (nvalues + 1); /* 0 .. all of them */
    cs_field row[16];
    for (size_t k = 0; k < n; k++) {
      row[k] = values[(i + k) % nvalues];
    }
    sink_record r = {&st, 100 + i, 5000000000ULL + i, 6000000000ULL + i, n, row};
    assert_int_equal(rowq_push(q, &r, i % 2 ? "odd" : "even"), 0);
  }
  assert_int_equal(rowq_save(q, f->csv, tag_name, &calls, &saved, err, sizeof err), 0);
  assert_int_equal(saved, 40);
  assert_int_equal(csvin_open(&in, f->csv, 1, err, sizeof err), 0);
  const csvin_rec *hdr = csvin_header(in);
  assert_non_null(hdr);
  assert_int_equal(hdr->nfields, 7);
  assert_memory_equal(hdr->fields[0].data, "table", 5);
  assert_memory_equal(hdr->fields[6].data, "_peer", 5);
  csvin_rec rec;
  for (size_t i = 0; i < 40; i++) {
    char want[7][32];
    size_t n = i % (nvalues + 1);
    assert_int_equal(csvin_next(in, &rec), 1);
    assert_int_equal(rec.nfields, 7 + n);
    snprintf(want[0], sizeof want[0], "%s", i % 2 ? "odd" : "even");
    snprintf(want[1], sizeof want[1], "0123456789abcdef");
    snprintf(want[2], sizeof want[2], "udp");
    snprintf(want[3], sizeof want[3], "%zu", 100 + i);
    snprintf(want[4], sizeof want[4], "%llu", 5000000000ULL + i);
    snprintf(want[5], sizeof want[5], "%llu", 6000000000ULL + i);
    snprintf(want[6], sizeof want[6], "127.0.0.1:40000");
    for (size_t k = 0; k < 7; k++) {
      assert_int_equal(rec.fields[k].len, strlen(want[k]));
      assert_memory_equal(rec.fields[k].data, want[k], strlen(want[k]));
    }
    for (size_t k = 0; k < n; k++) {
      const cs_field *v = &values[(i + k) % nvalues];
      assert_int_equal(rec.fields[7 + k].len, v->len);
      if (v->len) {
        assert_memory_equal(rec.fields[7 + k].data, v->data, v->len);
      }
    }
  }
  assert_int_equal(csvin_next(in, &rec), 0);
  csvin_close(in);
  rowq_free(q);
}

/* A file that cannot be written: CS_EIO, the message names it, nothing saved. */
static void test_save_error_names_file(void **state) {
  fixture *f = *state;
  rowq *q = NULL;
  char err[256] = "", path[160];
  size_t saved = 99, calls = 0;
  sink_stream st = make_stream(1, "tcp");
  const char *v[] = {"x"};
  assert_int_equal(rowq_new(&q), 0);
  push_values(q, &st, 1, v, 1, "t");
  snprintf(path, sizeof path, "%s/no/such/dir.csv", f->dir);
  assert_int_equal(rowq_save(q, path, tag_name, &calls, &saved, err, sizeof err), CS_EIO);
  assert_int_equal(saved, 0);
  assert_non_null(strstr(err, path));
  assert_non_null(strstr(err, "No such file or directory"));
  assert_non_null(strstr(err, "(check the directory is writable and has space)"));
  assert_int_equal(rowq_count(q), 1);
  rowq_free(q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_push_pop_keep_order),
      cmocka_unit_test(test_bytes_back_to_zero),
      cmocka_unit_test(test_rows_kept_until_popped),
      cmocka_unit_test(test_pop_across_blocks),
      cmocka_unit_test_setup_teardown(test_save_exact_bytes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_save_empty_queue_writes_header, setup, teardown),
      cmocka_unit_test_setup_teardown(test_save_reads_back_with_csvin, setup, teardown),
      cmocka_unit_test_setup_teardown(test_save_error_names_file, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
