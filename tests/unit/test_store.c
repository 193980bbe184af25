/* test_store.c -- cmocka tests of the SQLite sink (consumer/store.c) against real database
 * files in a temporary directory, checked through a second, independent connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "error.h"
#include "log.h"
#include "store.h"

/* Per-test fixture: a fresh directory and database path. */
typedef struct fixture {
  char dir[64];
  char path[128];
} fixture;

static int fixture_setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  if (f == NULL) {
    return -1;
  }
  snprintf(f->dir, sizeof f->dir, "/tmp/test_store.XXXXXX");
  if (mkdtemp(f->dir) == NULL) {
    free(f);
    return -1;
  }
  snprintf(f->path, sizeof f->path, "%s/out.db", f->dir);
  *state = f;
  return 0;
}

static int fixture_teardown(void **state) {
  fixture *f = *state;
  char p[160];
  const char *suffixes[] = {"", "-wal", "-shm", "-journal"};
  for (size_t i = 0; i < 4; i++) {
    snprintf(p, sizeof p, "%s%s", f->path, suffixes[i]);
    unlink(p);
  }
  rmdir(f->dir);
  free(f);
  return 0;
}

/* Fields from C strings (no NUL inside). */
static void fields_from(cs_field *out, const char *const *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    out[i].data = v[i];
    out[i].len = strlen(v[i]);
  }
}

/* A stream of the given name and header (header may be NULL for --no-header). */
static sink_stream make_stream(const char *name, uint64_t pid, const cs_field *cols, size_t n) {
  sink_stream st;
  memset(&st, 0, sizeof st);
  st.producer_id = pid;
  st.name = name;
  st.protocol = "tcp";
  st.peer = "127.0.0.1:40000";
  st.ncolumns = n;
  st.columns = cols;
  return st;
}

/* Queue one record of C-string values. */
static void add_values(store *s, sink_stream *st, uint64_t seq, const char *const *v, size_t n) {
  cs_field f[32];
  assert_true(n <= 32);
  fields_from(f, v, n);
  sink_record r = {st, seq, 1000 + seq, 2000 + seq, n, f};
  assert_int_equal(store_add(s, &r), 0);
}

/* Open a second, independent connection to the file. */
static sqlite3 *peek_open(const char *path) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_busy_timeout(db, 2000), SQLITE_OK);
  return db;
}

/* One integer from a query (-1 when the query fails, e.g. no such table yet). */
static long long peek_int(sqlite3 *db, const char *sql) {
  sqlite3_stmt *q = NULL;
  long long v = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW) {
    v = sqlite3_column_int64(q, 0);
  }
  sqlite3_finalize(q);
  return v;
}

/* Column names of a table, joined with '|'. */
static void peek_columns(sqlite3 *db, const char *table, char *out, size_t len) {
  sqlite3_stmt *q = NULL;
  out[0] = '\0';
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info(?1)", -1, &q, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_bind_text(q, 1, table, -1, SQLITE_STATIC), SQLITE_OK);
  while (sqlite3_step(q) == SQLITE_ROW) {
    if (out[0]) {
      strncat(out, "|", len - strlen(out) - 1);
    }
    strncat(out, (const char *)sqlite3_column_text(q, 0), len - strlen(out) - 1);
  }
  sqlite3_finalize(q);
}

/* Flush until nothing is pending, asserting each batch commits. */
static void flush_all(store *s) {
  while (store_pending(s) > 0) {
    assert_int_equal(store_flush(s), 0);
  }
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void test_open_bad_path_names_file(void **state) {
  (void)state;
  store *s = (store *)1;
  char err[256] = "";
  assert_int_not_equal(store_open(&s, "/nonexistent-dir/x/out.db", 0, err, sizeof err), 0);
  assert_null(s);
  assert_non_null(strstr(err, "cannot open database /nonexistent-dir/x/out.db"));
  assert_non_null(strstr(err, "unable to open database file"));
  assert_non_null(strstr(err, "(check the directory exists and is writable"));
}

static void test_open_non_database_says_so(void **state) {
  fixture *f = *state;
  store *s = (store *)1;
  char err[512] = "";
  FILE *fp = fopen(f->path, "wb");
  assert_non_null(fp);
  assert_int_equal(fputs("id,name\n1,not a database, but a CSV file\n", fp) >= 0, 1);
  assert_int_equal(fclose(fp), 0);
  assert_int_not_equal(store_open(&s, f->path, 0, err, sizeof err), 0);
  assert_null(s);
  assert_non_null(strstr(err, f->path));
  assert_non_null(strstr(err, "is it an SQLite database?"));
}

static void test_open_uses_wal(void **state) {
  fixture *f = *state;
  store *s = NULL;
  char err[256];
  assert_int_equal(store_open(&s, f->path, 0, err, sizeof err), 0);
  sqlite3 *db = peek_open(f->path);
  sqlite3_stmt *q = NULL;
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(q), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
  sqlite3_finalize(q);
  sqlite3_close(db);
  assert_int_equal(store_close(s), 0);
}

static void test_nasty_header_columns(void **state) {
  fixture *f = *state;
  store *s = NULL;
  char err[256], cols[1024];
  const char *hdr[] = {"first name", "select", "order", "a", "a", "", "say \"hi\"", "_seq", "A"};
  cs_field h[9];
  fields_from(h, hdr, 9);
  sink_stream st = make_stream("we\"ird table", 0x1234, h, 9);
  assert_int_equal(store_open(&s, f->path, 0, err, sizeof err), 0);
  const char *v[] = {"1", "2", "3", "4", "5", "6", "7", "8", "9"};
  add_values(s, &st, 1, v, 9);
  flush_all(s);
  assert_string_equal(store_table_name(s, &st), "we\"ird table");
  sqlite3 *db = peek_open(f->path);
  peek_columns(db, "we\"ird table", cols, sizeof cols);
  assert_string_equal(cols, "first name|select|order|a|a_2|column_6|say \"hi\"|_seq_2|A_3|"
                            "_producer|_protocol|_seq|_sent_us|_received_us|_peer");
  assert_int_equal(peek_int(db, "SELECT \"select\" + 10 * \"A_3\" FROM \"we\"\"ird table\""), 92);
  assert_int_equal(peek_int(db, "SELECT \"_seq_2\" FROM \"we\"\"ird table\""), 8);
  assert_int_equal(peek_int(db, "SELECT _seq FROM \"we\"\"ird table\""), 1);
  assert_int_equal(
      peek_int(db, "SELECT _producer = '0000000000001234' AND _protocol = 'tcp' AND _sent_us = "
                   "1001 AND _received_us = 2001 AND _peer = '127.0.0.1:40000' FROM "
                   "\"we\"\"ird table\""),
      1);
  sqlite3_close(db);
  assert_int_equal(store_close(s), 0);
}

static void test_text_keeps_leading_zeros(void **state) {
  fixture *f = *state;
  store *s = NULL;
  char err[256];
  const char *hdr[] = {"code", "n", "empty"};
  cs_field h[3];
  fields_from(h, hdr, 3);
  sink_stream st = make_stream("codes", 1, h, 3);
  assert_int_equal(store_open(&s, f->path, 0, err, sizeof err), 0);
  const char *v[] = {"007", " 1.50 ", ""};
  add_values(s, &st, 1, v, 3);
  flush_all(s);
  sqlite3 *db = peek_open(f->path);
  assert_int_equal(peek_int(db, "SELECT typeof(code) = 'text' AND code = '007' FROM codes"), 1);
  assert_int_equal(peek_int(db, "SELECT typeof(n) = 'text' AND n = ' 1.50 ' FROM codes"), 1);
  /* An empty field is the empty text, not NULL. */
  assert_int_equal(peek_int(db, "SELECT typeof(empty) = 'text' AND empty = '' FROM codes"), 1);
  sqlite3_close(db);
  assert_int_equal(store_close(s), 0);
}

static void test_same_name_other_header_gets_new_table(void **state) {
  fixture *f = *state;
  store *s = NULL;
  char err[256];
  const char *h1[] = {"x", "y"}, *h2[] = {"x", "z"};
  cs_field c1[2], c2[2];
  fields_from(c1, h1, 2);
  fields_from(c2, h2, 2);
  sink_stream a = make_stream("s", 1, c1, 2), b = make_stream("s", 2, c2, 2);
  sink_stream a2 = make_stream("s", 3, c1, 2); /* another producer, same header */
  assert_int_equal(store_open(&s, f->path, 0, err, sizeof err), 0);
  const char *v[] = {"1", "2"};
  add_values(s, &a, 1, v, 2);
  add_values(s, &b, 1, v, 2);
  add_values(s, &a2, 1, v, 2);
  add_values(s, &a2, 2, v, 2);
  /* Tables are named by the first flush, inside its transaction (never a schema read that
   * could meet a lock in store_add): in arrival order, as before. */
  assert_null(store_table_name(s, &a));
  flush_all(s);
  assert_string_equal(store_table_name(s, &a), "s");
  assert_string_equal(store_table_name(s, &b), "s_2");
  assert_string_equal(store_table_name(s, &a2), "s");
  sqlite3 *db = peek_open(f->path);
  assert_int_equal(peek_int(db, "SELECT count(*) FROM s"), 3);
  assert_int_equal(peek_int(db, "SELECT count(*) FROM s WHERE _producer = '0000000000000003'"), 2);
  assert_int_equal(peek_int(db, "SELECT count(*) FROM s_2 WHERE z = '2'"), 1);
  sqlite3_close(db);
  assert_int_equal(store_close(s), 0);
}

static void test_rerun_appends_or_renames(void **state) {
  fixture *f = *state;
  store *s = NULL;
  char err[256];
  const char *h1[] = {"x", "y"}, *h2[] = {"y", "x"};
  cs_field c1[2], c2[2];
  fields_from(c1, h1, 2);
  fields_from(c2, h2, 2);
  const char *v[] = {"1", "2", "3"};
  for (int run = 0; run < 2; run++) {
    sink_stream a = make_stream("t", 10 + run, c1, 2);
    assert_int_equal(store_open(&s, f->path, 0, err, sizeof err), 0);
    add_values(s, &a, 1, v, 3); /* one extra value: column extra_1 */
    flush_all(s);
    assert_string_equal(store_table_name(s, &a), "t");
    assert_int_equal(store_close(s), 0);
  }
  sink_stream b = make_stream("t", 20, c2, 2);
  assert_int_equal(store_open(&s, f->path, 0, err, sizeof err), 0);
  add_values(s, &b, 1, v, 2);
  flush_all(s);
  assert_string_equal(store_table_name(s, &b), "t_2");
  assert_int_equal(store_close(s), 0);
  sqlite3 *db = peek_open(f->path);
  assert_int_equal(peek_int(db, "SELECT count(*) FROM t WHERE extra_1 = '3'"), 2);
  assert_int_equal(peek_int(db, "SELECT count(*) FROM t_2"), 1);
  sqlite3_close(db);
}

static void test_rows_queued_before_naming_adopt_the_file_extras(void **state) {
  fixture *f = *state;
  store *s = NULL;
  char err[256], cols[1024];
  const char *h[] = {"x", "y"};
  cs_field c[2];
  fields_from(c, h, 2);
  const char *v3[] = {"1", "2", "3"}, *v4[] = {"1", "2", "3", "4"};
  sink_stream a = make_stream("t", 1, c, 2);
  assert_int_equal(store_open(&s, f->path, 0, err, sizeof err), 0);
  add_values(s, &a, 1, v3, 3); /* extra_1 */
  flush_all(s);
  assert_int_equal(store_close(s), 0);
  /* A second run queues a wider row before its table is named (and adopts t, extra_1). */
  sink_stream b = make_stream("t", 2, c, 2);
  assert_int_equal(store_open(&s, f->path, 0, err, sizeof err), 0);
  add_values(s, &b, 1, v4, 4);
  add_values(s, &b, 2, v3, 3);
  flush_all(s);
  assert_string_equal(store_table_name(s, &b), "t");
  assert_int_equal(store_close(s), 0);
  sqlite3 *db = peek_open(f->path);
  peek_columns(db, "t", cols, sizeof cols);
  assert_string_equal(cols, "x|y|extra_1|_producer|_protocol|_seq|_sent_us|_received_us|_peer|"
                            "extra_2");
  assert_int_equal(peek_int(db, "SELECT count(*) FROM t WHERE extra_1 = '3'"), 3);
  assert_int_equal(peek_int(db, "SELECT count(*) FROM t WHERE extra_2 = '4'"), 1);
  sqlite3_close(db);
}

static void test_schema_locked_at_add_is_retried_by_flush(void **state) {
  fixture *f = *state;
  store *s = NULL;
  char err[256];
  const char *h[] = {"a"};
  cs_field c[1];
  fields_from(c, h, 1);
  sink_stream st = make_stream("schema", 1, c, 1);
  assert_int_equal(store_open(&s, f->path, 0, err, sizeof err), 0);
  /* Another process keeps even readers out (exclusive locking mode: no shared memory, the
   * lock stays after its write), so reading the schema meets SQLITE_BUSY. */
  sqlite3 *other = peek_open(f->path);
  assert_int_equal(sqlite3_exec(other,
                                "PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE; "
                                "CREATE TABLE other_table (v); COMMIT",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  const char *v[] = {"x"};
  add_values(s, &st, 1, v, 1); /* asserts 0: the record is queued, not refused */
  assert_int_equal(store_flush(s), CS_EBUSY);
  assert_int_equal(store_pending(s), 1);
  sqlite3_close(other); /* the lock goes with the connection */
  flush_all(s);
  assert_int_equal(store_committed(s), 1);
  assert_string_equal(store_table_name(s, &st), "schema");
  assert_int_equal(store_close(s), 0);
  sqlite3 *db = peek_open(f->path);
  assert_int_equal(peek_int(db, "SELECT count(*) FROM schema WHERE a = 'x'"), 1);
  sqlite3_close(db);
}

static void test_ragged_rows_keep_every_value(void **state) {
  fixture *f = *state;
  store *s = NULL;
  char err[256], cols[512];
  const char *h[] = {"a", "extra_1"};
  cs_field c[2];
  fields_from(c, h, 2);
  sink_stream st = make_stream("r", 1, c, 2);
  sink_stream nh = make_stream("nh", 2, NULL, 0);
  assert_int_equal(store_open(&s, f->path, 0, err, sizeof err), 0);
  const char *v[] = {"1", "2", "3", "4"};
  add_values(s, &st, 1, v, 1); /* short */
  add_values(s, &nh, 1, v, 2);
  flush_all(s);
  add_values(s, &st, 2, v, 4); /* long: two more columns, added by ALTER TABLE */
  add_values(s, &nh, 2, v, 3);
  flush_all(s);
  sqlite3 *db = peek_open(f->path);
  peek_columns(db, "r", cols, sizeof cols);
  assert_string_equal(cols, "a|extra_1|_producer|_protocol|_seq|_sent_us|_received_us|_peer|"
                            "extra_1_2|extra_2");
  assert_int_equal(peek_int(db, "SELECT extra_1 IS NULL FROM r WHERE _seq = 1"), 1);
  assert_int_equal(peek_int(db, "SELECT extra_1_2 || extra_2 FROM r WHERE _seq = 2"), 34);
  peek_columns(db, "nh", cols, sizeof cols);
  assert_string_equal(cols, "column_1|column_2|_producer|_protocol|_seq|_sent_us|_received_us|"
                            "_peer|column_3");
  assert_int_equal(peek_int(db, "SELECT column_3 IS NULL FROM nh WHERE _seq = 1"), 1);
  assert_int_equal(peek_int(db, "SELECT column_3 FROM nh WHERE _seq = 2"), 3);
  sqlite3_close(db);
  assert_int_equal(store_close(s), 0);
}

static void test_rows_commit_only_on_flush(void **state) {
  fixture *f = *state;
  store *s = NULL;
  char err[256];
  const char *h[] = {"a"};
  cs_field c[1];
  fields_from(c, h, 1);
  sink_stream st = make_stream("q", 1, c, 1);
  assert_int_equal(store_open(&s, f->path, 0, err, sizeof err), 0);
  const char *v[] = {"x"};
  for (uint64_t i = 1; i <= 5; i++) {
    add_values(s, &st, i, v, 1);
  }
  assert_int_equal(store_pending(s), 5);
  assert_true(store_pending_bytes(s) > 0);
  sqlite3 *db = peek_open(f->path);
  assert_int_equal(peek_int(db, "SELECT count(*) FROM q"), -1); /* not even created yet */
  assert_int_equal(store_flush(s), 0);
  assert_int_equal(peek_int(db, "SELECT count(*) FROM q"), 5);
  assert_int_equal(store_pending(s), 0);
  assert_int_equal(store_pending_bytes(s), 0);
  assert_int_equal(store_committed(s), 5);
  sqlite3_close(db);
  assert_int_equal(store_close(s), 0);
}

static void test_locked_database_returns_busy_then_commits_once(void **state) {
  fixture *f = *state;
  store *s = NULL;
  char err[256];
  const char *h[] = {"a"};
  cs_field c[1];
  fields_from(c, h, 1);
  sink_stream st = make_stream("locked", 1, c, 1);
  assert_int_equal(store_open(&s, f->path, 0, err, sizeof err), 0);
  const char *v[] = {"x"};
  add_values(s, &st, 1, v, 1);
  flush_all(s); /* the table exists before the lock is taken */

  sqlite3 *other = peek_open(f->path);
  assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
  for (uint64_t i = 2; i <= 101; i++) {
    add_values(s, &st, i, v, 1);
  }
  double t0 = now_ms();
  assert_int_equal(store_flush(s), CS_EBUSY);
  double took = now_ms() - t0;
  print_message("store_flush under a held lock returned CS_EBUSY after %.1f ms\n", took);
  assert_true(took < 100.0);
  assert_non_null(strstr(store_error(s), f->path));
  assert_int_equal(store_pending(s), 100);
  assert_int_equal(store_flush(s), CS_EBUSY); /* still held: still queued */
  assert_int_equal(store_pending(s), 100);
  assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);

  flush_all(s);
  assert_int_equal(store_committed(s), 101);
  assert_int_equal(peek_int(other, "SELECT count(*) FROM locked"), 101);
  assert_int_equal(peek_int(other, "SELECT count(DISTINCT _seq) FROM locked"), 101);
  sqlite3_close(other);
  assert_int_equal(store_close(s), 0);
}

static void test_locked_before_table_exists_then_creates(void **state) {
  fixture *f = *state;
  store *s = NULL;
  char err[256];
  const char *h[] = {"a"};
  cs_field c[1];
  fields_from(c, h, 1);
  sink_stream st = make_stream("late", 1, c, 1);
  assert_int_equal(store_open(&s, f->path, 0, err, sizeof err), 0);
  sqlite3 *other = peek_open(f->path);
  assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
  const char *v[] = {"x", "y"};
  add_values(s, &st, 1, v, 2);
  assert_int_equal(store_flush(s), CS_EBUSY);
  assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  flush_all(s);
  assert_int_equal(peek_int(other, "SELECT count(*) FROM late WHERE extra_1 = 'y'"), 1);
  sqlite3_close(other);
  assert_int_equal(store_close(s), 0);
}

static void test_many_rows_commit_in_batches(void **state) {
  fixture *f = *state;
  store *s = NULL;
  char err[256], num[32];
  const char *h[] = {"n", "text"};
  cs_field c[2];
  fields_from(c, h, 2);
  sink_stream st = make_stream("big", 7, c, 2);
  assert_int_equal(store_open(&s, f->path, 0, err, sizeof err), 0);
  for (uint64_t i = 1; i <= 20000; i++) {
    snprintf(num, sizeof num, "%llu", (unsigned long long)i);
    const char *v[] = {num, "some, \"quoted\" text"};
    add_values(s, &st, i, v, 2);
  }
  assert_int_equal(store_pending(s), 20000);
  int batches = 0;
  while (store_pending(s) > 0) {
    assert_int_equal(store_flush(s), 0);
    batches++;
    assert_true(store_pending(s) == 20000 - (size_t)batches * STORE_BATCH_ROWS);
  }
  assert_int_equal(batches, 20000 / STORE_BATCH_ROWS);
  assert_int_equal(store_committed(s), 20000);
  sqlite3 *db = peek_open(f->path);
  assert_int_equal(peek_int(db, "SELECT count(*) FROM big"), 20000);
  assert_int_equal(peek_int(db, "SELECT sum(CAST(n AS INTEGER)) FROM big"), 20000LL * 20001 / 2);
  assert_int_equal(peek_int(db, "SELECT count(*) FROM big WHERE CAST(n AS INTEGER) <> _seq"), 0);
  sqlite3_close(db);
  assert_int_equal(store_close(s), 0);
}

static void test_binary_and_utf8_values_survive(void **state) {
  fixture *f = *state;
  store *s = NULL;
  char err[256];
  const char *h[] = {"v"};
  cs_field c[1];
  fields_from(c, h, 1);
  sink_stream st = make_stream("bytes", 1, c, 1);
  static const char nul[] = {'a', '\0', 'b', '\0'};
  const cs_field values[] = {
      {nul, 4},
      {"line1\r\nline2\n", 13},
      {"Gr\xc3\xbc\xc3\x9f"
       "e \xe2\x82\xac \xf0\x9f\x98\x80",
       17},
      {"\"quoted\", comma", 15},
  };
  assert_int_equal(store_open(&s, f->path, 0, err, sizeof err), 0);
  for (size_t i = 0; i < 4; i++) {
    sink_record r = {&st, i + 1, 1, 2, 1, &values[i]};
    assert_int_equal(store_add(s, &r), 0);
  }
  flush_all(s);
  sqlite3 *db = peek_open(f->path);
  sqlite3_stmt *q = NULL;
  assert_int_equal(
      sqlite3_prepare_v2(db, "SELECT v, typeof(v) FROM bytes ORDER BY _seq", -1, &q, NULL),
      SQLITE_OK);
  for (size_t i = 0; i < 4; i++) {
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 1), "text");
    const void *got = sqlite3_column_blob(q, 0);
    assert_int_equal(sqlite3_column_bytes(q, 0), values[i].len);
    assert_memory_equal(got, values[i].data, values[i].len);
  }
  assert_int_equal(sqlite3_step(q), SQLITE_DONE);
  sqlite3_finalize(q);
  sqlite3_close(db);
  assert_int_equal(store_close(s), 0);
}

static void test_reserved_stream_name_prefixed(void **state) {
  fixture *f = *state;
  store *s = NULL;
  char err[256];
  const char *h[] = {"a"};
  cs_field c[1];
  fields_from(c, h, 1);
  sink_stream st = make_stream("sqlite_master", 1, c, 1);
  assert_int_equal(store_open(&s, f->path, 0, err, sizeof err), 0);
  const char *v[] = {"x"};
  add_values(s, &st, 1, v, 1);
  flush_all(s);
  assert_string_equal(store_table_name(s, &st), "stream_sqlite_master");
  assert_int_equal(store_close(s), 0);
}

static void test_queue_bound_refuses_with_enomem(void **state) {
  fixture *f = *state;
  store *s = NULL;
  char err[256];
  const char *h[] = {"blob"};
  cs_field c[1];
  fields_from(c, h, 1);
  sink_stream st = make_stream("full", 1, c, 1);
  size_t len = 1u << 20;
  char *big = malloc(len);
  assert_non_null(big);
  memset(big, 'x', len);
  cs_field v = {big, len};
  assert_int_equal(store_open(&s, f->path, 0, err, sizeof err), 0);
  size_t added = 0;
  int rc;
  for (;;) {
    sink_record r = {&st, added + 1, 1, 2, 1, &v};
    rc = store_add(s, &r);
    if (rc != 0) {
      break;
    }
    added++;
    assert_true(added <= STORE_MAX_PENDING_BYTES / len + 1);
  }
  assert_int_equal(rc, CS_ENOMEM);
  assert_int_equal(store_pending(s), added);
  assert_true(store_pending_bytes(s) >= STORE_MAX_PENDING_BYTES);
  assert_true(store_pending_bytes(s) < STORE_MAX_PENDING_BYTES + 2 * len);
  assert_true(added >= STORE_MAX_PENDING_BYTES / (len + 4096));
  free(big);
  assert_int_equal(store_close(s), 0); /* frees the queued rows unwritten */
}

/* A record wider than a table can be (a hostile datagram, say) is refused alone: the rows
 * around it, of the same stream, still commit. */
static void test_too_wide_record_refused_alone(void **state) {
  fixture *f = *state;
  store *s = NULL;
  char err[512];
  const char *h[] = {"a"};
  cs_field c[1];
  fields_from(c, h, 1);
  sink_stream st = make_stream("wide", 1, c, 1);
  size_t n = 3000;
  cs_field *wide = calloc(n, sizeof *wide);
  assert_non_null(wide);
  for (size_t i = 0; i < n; i++) {
    wide[i].data = "";
  }
  assert_int_equal(store_open(&s, f->path, 0, err, sizeof err), 0);
  const char *v1[] = {"one"}, *v3[] = {"three", "extra"};
  add_values(s, &st, 1, v1, 1);
  sink_record r = {&st, 2, 1, 2, n, wide};
  assert_int_equal(store_add(s, &r), CS_ETOOBIG);
  assert_non_null(strstr(store_error(s), f->path));
  assert_non_null(strstr(store_error(s), "3000 fields"));
  add_values(s, &st, 3, v3, 2);
  assert_int_equal(store_pending(s), 2);
  assert_int_equal(store_flush(s), 0);
  assert_int_equal(store_close(s), 0);
  free(wide);
  sqlite3 *db = peek_open(f->path);
  assert_int_equal(peek_int(db, "SELECT count(*) FROM wide"), 2);
  assert_int_equal(peek_int(db, "SELECT count(*) FROM pragma_table_info('wide')"), 2 + 6);
  sqlite3_close(db);
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

/* store_save_pending writes the rows not committed, with their metadata and table (or the
 * stream's name before its table is named), as RFC 4180; a second save appends without a
 * second header; the queue stays as it was. */
static void test_save_pending_writes_rows_and_appends(void **state) {
  fixture *f = *state;
  store *s = NULL;
  char err[256], csv[160];
  const char *h1[] = {"Year", "TempF"}, *h2[] = {"when"};
  cs_field c1[2], c2[1];
  fields_from(c1, h1, 2);
  fields_from(c2, h2, 1);
  sink_stream a = make_stream("temps", 0xaa, c1, 2);
  sink_stream b = make_stream("temps", 0xbb, c2, 1);
  sink_stream fresh = make_stream("fresh", 0xcc, NULL, 0);
  b.protocol = "udp";
  assert_int_equal(store_open(&s, f->path, 0, err, sizeof err), 0);
  const char *v1[] = {"2026", "60"}, *v2[] = {"2026", "61,5\nx"}, *w[] = {"noon"},
             *w2[] = {"a", "b"}, *x[] = {"v"};
  add_values(s, &a, 1, v1, 2);
  add_values(s, &b, 1, w, 1);
  flush_all(s); /* tables temps and temps_2 are named */
  add_values(s, &a, 2, v2, 2);
  add_values(s, &b, 3, w2, 2); /* a long row: every value */
  add_values(s, &fresh, 1, x, 1);
  snprintf(csv, sizeof csv, "%s.uncommitted.csv", f->path);
  size_t saved = 0;
  assert_int_equal(store_save_pending(s, csv, &saved, err, sizeof err), 0);
  assert_int_equal(saved, 3);
  assert_int_equal(store_pending(s), 3);
  const char *rows = "temps,00000000000000aa,tcp,2,1002,2002,127.0.0.1:40000,2026,\"61,5\nx\"\r\n"
                     "temps_2,00000000000000bb,udp,3,1003,2003,127.0.0.1:40000,a,b\r\n"
                     "fresh,00000000000000cc,tcp,1,1001,2001,127.0.0.1:40000,v\r\n";
  const char *hdr = "table,_producer,_protocol,_seq,_sent_us,_received_us,_peer\r\n";
  char want[1024];
  snprintf(want, sizeof want, "%s%s", hdr, rows);
  char *got = slurp(csv);
  assert_string_equal(got, want);
  free(got);
  assert_int_equal(store_save_pending(s, csv, NULL, err, sizeof err), 0);
  snprintf(want, sizeof want, "%s%s%s", hdr, rows, rows);
  got = slurp(csv);
  assert_string_equal(got, want);
  free(got);
  unlink(csv);
  /* A file that cannot be written is named in the message. */
  snprintf(csv, sizeof csv, "%s/no/such/dir.csv", f->dir);
  assert_int_not_equal(store_save_pending(s, csv, NULL, err, sizeof err), 0);
  assert_non_null(strstr(err, csv));
  flush_all(s);
  assert_int_equal(store_close(s), 0);
}

/* SQLite's own allocator, wrapped so that a test can make one of its allocations fail (the
 * allocator callbacks take no user pointer, hence the file-level state). oom_countdown is the
 * number of allocations still granted before the one that fails; negative: none fails. */
static sqlite3_mem_methods oom_default;
static long oom_countdown = -1;
static int oom_failed;

/* 1 if the allocation asked for now is the one that fails. */
static int oom_fail_now(void) {
  if (oom_countdown < 0) {
    return 0;
  }
  if (oom_countdown-- > 0) {
    return 0;
  }
  oom_failed = 1;
  return 1;
}

static void *oom_malloc(int n) {
  return oom_fail_now() ? NULL : oom_default.xMalloc(n);
}

static void *oom_realloc(void *p, int n) {
  return oom_fail_now() ? NULL : oom_default.xRealloc(p, n);
}

/* sqlite3_config may only change the allocator while the library is shut down (every
 * connection closed), so the fixture shuts it down, swaps the allocator and starts it again. */
static int oom_setup(void **state) {
  sqlite3_mem_methods wrapped;
  if (fixture_setup(state) != 0 || sqlite3_shutdown() != SQLITE_OK ||
      sqlite3_config(SQLITE_CONFIG_GETMALLOC, &oom_default) != SQLITE_OK) {
    return -1;
  }
  wrapped = oom_default;
  wrapped.xMalloc = oom_malloc;
  wrapped.xRealloc = oom_realloc;
  if (sqlite3_config(SQLITE_CONFIG_MALLOC, &wrapped) != SQLITE_OK ||
      sqlite3_initialize() != SQLITE_OK) {
    return -1;
  }
  return 0;
}

static int oom_teardown(void **state) {
  oom_countdown = -1;
  if (sqlite3_shutdown() != SQLITE_OK ||
      sqlite3_config(SQLITE_CONFIG_MALLOC, &oom_default) != SQLITE_OK ||
      sqlite3_initialize() != SQLITE_OK) {
    return -1;
  }
  return fixture_teardown(state);
}

/* The first record of a stream builds its table's column names with SQLite's allocator: when
 * any one of those allocations fails, store_add says CS_ENOMEM, queues nothing and keeps no
 * half-built table, and the same record is queued and committed once memory is back. Every
 * allocation is failed in turn, the later columns' too. */
static void test_table_out_of_memory_refused_then_retried(void **state) {
  fixture *f = *state;
  store *s = NULL;
  char err[256];
  const char *h[] = {"a", "b", "c"}, *v[] = {"1", "2", "3"};
  cs_field c[3], vf[3];
  fields_from(c, h, 3);
  fields_from(vf, v, 3);
  long n;
  for (n = 0;; n++) {
    sink_stream st = make_stream("oom", 1, c, 3);
    sink_record r = {&st, 1, 1001, 2001, 3, vf};
    assert_int_equal(store_open(&s, f->path, 0, err, sizeof err), 0);
    oom_failed = 0;
    oom_countdown = n;
    int rc = store_add(s, &r);
    oom_countdown = -1;
    if (!oom_failed) {
      /* Past the last allocation store_add makes: it succeeds. */
      assert_int_equal(rc, 0);
      flush_all(s);
      assert_int_equal(store_close(s), 0);
      break;
    }
    assert_int_equal(rc, CS_ENOMEM);
    assert_int_equal(store_pending(s), 0);
    assert_non_null(strstr(store_error(s), "out of memory"));
    assert_int_equal(store_add(s, &r), 0);
    flush_all(s);
    assert_string_equal(store_table_name(s, &st), "oom");
    assert_int_equal(store_close(s), 0);
  }
  /* Two allocations a column: the failures reached the third column. */
  assert_true(n >= 6);
  sqlite3 *db = peek_open(f->path);
  char cols[256];
  peek_columns(db, "oom", cols, sizeof cols);
  assert_string_equal(cols, "a|b|c|_producer|_protocol|_seq|_sent_us|_received_us|_peer");
  assert_int_equal(peek_int(db, "SELECT count(*) FROM oom WHERE a = '1' AND c = '3'"), n + 1);
  assert_int_equal(peek_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"), 1);
  sqlite3_close(db);
}

/* Rows go several to an INSERT statement when a run of one table's rows is long enough, one by
 * one otherwise: runs of 40, 3, 70 and 33 rows of two tables, a short row among them, all land
 * once, in order, value for value, with their metadata. */
static void test_runs_of_rows_insert_each_row_once_in_order(void **state) {
  fixture *f = *state;
  store *s = NULL;
  char err[256];
  const char *h[] = {"k", "v"};
  cs_field c[2];
  fields_from(c, h, 2);
  sink_stream a = make_stream("a", 1, c, 2);
  sink_stream b = make_stream("b", 2, c, 2);
  const size_t runs[] = {40, 3, 70, 33};
  uint64_t seq_a = 0, seq_b = 0;
  long long sum_a = 0, sum_b = 0;
  assert_int_equal(store_open(&s, f->path, 0, err, sizeof err), 0);
  for (size_t r = 0; r < 4; r++) {
    for (size_t i = 0; i < runs[r]; i++) {
      sink_stream *st = r % 2 == 0 ? &a : &b;
      uint64_t seq = r % 2 == 0 ? ++seq_a : ++seq_b;
      char k[24], v[24];
      snprintf(k, sizeof k, "%llu", (unsigned long long)seq);
      snprintf(v, sizeof v, "x%llu", (unsigned long long)(seq * 7));
      const char *vals[] = {k, v};
      /* Row 50 of a is short: its v is NULL. */
      add_values(s, st, seq, vals, st == &a && seq == 50 ? 1 : 2);
      if (st == &a) {
        sum_a += (long long)seq;
      } else {
        sum_b += (long long)seq;
      }
    }
  }
  /* A second producer's stream of the same name and header, in runs between a's rows: it
   * shares a's table, and each row keeps its own stream's metadata. */
  sink_stream a2 = make_stream("a", 3, c, 2);
  for (uint64_t seq = 1; seq <= 70; seq++) {
    char k[24], v[24];
    snprintf(k, sizeof k, "%llu", (unsigned long long)seq);
    snprintf(v, sizeof v, "x%llu", (unsigned long long)(seq * 7));
    const char *vals[] = {k, v};
    add_values(s, seq <= 35 || seq > 45 ? &a2 : &a, seq <= 35 || seq > 45 ? seq : 1000 + seq, vals,
               2);
  }
  flush_all(s);
  assert_string_equal(store_table_name(s, &a2), store_table_name(s, &a));
  sqlite3 *db = peek_open(f->path);
  assert_int_equal(peek_int(db, "SELECT count(*) FROM a WHERE _producer = '0000000000000003' AND "
                                "k = _seq AND v = 'x' || (_seq * 7)"),
                   60);
  assert_int_equal(peek_int(db, "SELECT count(*) FROM a WHERE _seq > 1000 AND _producer = "
                                "'0000000000000001' AND k + 1000 = _seq"),
                   10);
  assert_int_equal(peek_int(db, "DELETE FROM a WHERE _seq > 1000 OR _producer = "
                                "'0000000000000003' RETURNING 1"),
                   1);
  assert_int_equal(peek_int(db, "SELECT count(*) FROM a"), 110);
  assert_int_equal(peek_int(db, "SELECT count(*) FROM b"), 36);
  assert_int_equal(peek_int(db, "SELECT count(DISTINCT _seq) FROM a"), 110);
  assert_int_equal(peek_int(db, "SELECT sum(k) FROM a"), sum_a);
  assert_int_equal(peek_int(db, "SELECT sum(k) FROM b"), sum_b);
  /* Every row's key is its sequence number, its value 'x' and 7 times it, in rowid order. */
  assert_int_equal(peek_int(db, "SELECT count(*) FROM a WHERE k != _seq OR (v IS NOT NULL AND "
                                "v != 'x' || (_seq * 7)) OR _sent_us != 1000 + _seq"),
                   0);
  assert_int_equal(peek_int(db, "SELECT count(*) FROM b WHERE k != _seq OR v != 'x' || (_seq * 7)"
                                " OR _received_us != 2000 + _seq OR _producer != "
                                "'0000000000000002'"),
                   0);
  assert_int_equal(peek_int(db, "SELECT count(*) FROM a x JOIN a y ON y.rowid = x.rowid + 1 "
                                "WHERE y._seq != x._seq + 1"),
                   0);
  assert_int_equal(peek_int(db, "SELECT v IS NULL FROM a WHERE _seq = 50"), 1);
  sqlite3_close(db);
  assert_int_equal(store_close(s), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_open_bad_path_names_file),
      cmocka_unit_test_setup_teardown(test_open_non_database_says_so, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_too_wide_record_refused_alone, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_open_uses_wal, fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_runs_of_rows_insert_each_row_once_in_order,
                                      fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_nasty_header_columns, fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_text_keeps_leading_zeros, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_same_name_other_header_gets_new_table, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_rerun_appends_or_renames, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_rows_queued_before_naming_adopt_the_file_extras,
                                      fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_schema_locked_at_add_is_retried_by_flush, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_ragged_rows_keep_every_value, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_rows_commit_only_on_flush, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_locked_database_returns_busy_then_commits_once,
                                      fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_locked_before_table_exists_then_creates, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_many_rows_commit_in_batches, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_binary_and_utf8_values_survive, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_reserved_stream_name_prefixed, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_queue_bound_refuses_with_enomem, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_save_pending_writes_rows_and_appends, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_table_out_of_memory_refused_then_retried, oom_setup,
                                      oom_teardown),
  };
  log_init("test_store", LOG_WARN); /* the sink's INFO lines (tables created) are not tested here */
  return cmocka_run_group_tests(tests, NULL, NULL);
}
