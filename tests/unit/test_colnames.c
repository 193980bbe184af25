/* test_colnames.c -- the value column names the two database sinks make of a CSV header, pinned
 * byte for byte: a table users already have is adopted by its column names, so a name that
 * changes is a broken upgrade. The SQLite sink (consumer/store.c) is driven through real files,
 * the PostgreSQL sink (consumer/sink_pg.c) through sink_pg_names.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "error.h"
#include "log.h"
#include "store.h"
#ifdef CSVSTREAM_HAVE_LIBPQ
#include "sink_pg_names.h"
#endif

/* A header field from a literal, which may hold NUL bytes. */
#define F(lit)                                                                                     \
  { lit, sizeof(lit) - 1 }
/* Runs of one character: R10("a") is ten a's, R60("a") sixty. */
#define R10(c) c c c c c c c c c c
#define R60(c) R10(c) R10(c) R10(c) R10(c) R10(c) R10(c)
/* Two-, three- and four-byte characters: e acute, the euro sign, U+1F600. */
#define E_ACUTE "\xc3\xa9"
#define EURO "\xe2\x82\xac"
#define GRIN "\xf0\x9f\x98\x80"
#define REPLACEMENT "\xef\xbf\xbd"

#define MAX_FIELDS 10

/* One header, the row width the table must hold (0: the header's), and the value column names
 * each sink gives it (NULL-terminated). */
typedef struct names_case {
  const char *what; /* also the stream's name */
  cs_field header[MAX_FIELDS];
  size_t nheader;
  size_t width;
  const char *sqlite[MAX_FIELDS + 1];
  const char *pg[MAX_FIELDS + 1];
} names_case;

static const names_case cases[] = {
    {"empty",
     {F(""), F("a"), F(""), F("column_3"), F("")},
     5,
     0,
     {"column_1", "a", "column_3", "column_3_2", "column_5"},
     {"column_1", "a", "column_3", "column_3_2", "column_5"}},
    {"case",
     {F("Name"), F("name"), F("NAME"), F("name_2")},
     4,
     0,
     {"Name", "name_2", "NAME_3", "name_2_2"},
     {"Name", "name", "NAME", "name_2"}},
    {"metadata",
     {F("_seq"), F("_SEQ"), F("_Peer"), F("_seq_2"), F("_producer"), F("_seq\0")},
     6,
     0,
     {"_seq_2", "_SEQ_3", "_Peer_2", "_seq_2_2", "_producer_2", "_seq_"},
     {"_seq_2", "_SEQ", "_Peer", "_seq_2_2", "_producer_2", "_seq_"}},
    {"system",
     {F("ctid"), F("xmin"), F("XMIN"), F("tableoid"), F("cmin"), F("cmax"), F("xmax"), F("oid"),
      F("ctid_2")},
     9,
     0,
     {"ctid", "xmin", "XMIN_2", "tableoid", "cmin", "cmax", "xmax", "oid", "ctid_2"},
     {"ctid_2", "xmin_2", "XMIN", "tableoid_2", "cmin_2", "cmax_2", "xmax_2", "oid", "ctid_2_2"}},
    /* 63, 64 and 70 bytes; 64 bytes with a two-, three- or four-byte character across byte 63;
     * 63 bytes ending in a two-byte character. */
    {"long",
     {F(R60("a") "aaa"), F(R60("b") "bbbb"), F(R60("c") R10("c")), F(R60("d") "dd" E_ACUTE),
      F(R60("e") "e" EURO), F(R60("f") GRIN), F(R60("g") "g" E_ACUTE)},
     7,
     0,
     {R60("a") "aaa", R60("b") "bbbb", R60("c") R10("c"), R60("d") "dd" E_ACUTE, R60("e") "e" EURO,
      R60("f") GRIN, R60("g") "g" E_ACUTE},
     {R60("a") "aaa", R60("b") "bbb", R60("c") "ccc", R60("d") "dd", R60("e") "e", R60("f"),
      R60("g") "g" E_ACUTE}},
    /* Names equal in their first 63 bytes, and a suffix that leaves no room for a character. */
    {"cut collisions",
     {F(R60("z") R10("z")), F(R60("z") R10("z") "q"), F(R60("z") "zzz"), F(R60("z") "zz" E_ACUTE),
      F(R60("w") "w" E_ACUTE), F(R60("w") "w" E_ACUTE), F(R60("v") E_ACUTE "a"),
      F(R60("v") E_ACUTE "a")},
     8,
     0,
     {R60("z") R10("z"), R60("z") R10("z") "q", R60("z") "zzz", R60("z") "zz" E_ACUTE,
      R60("w") "w" E_ACUTE, R60("w") "w" E_ACUTE "_2", R60("v") E_ACUTE "a",
      R60("v") E_ACUTE "a_2"},
     {R60("z") "zzz", R60("z") "z_2", R60("z") "z_3", R60("z") "zz", R60("w") "w" E_ACUTE,
      R60("w") "w_2", R60("v") E_ACUTE "a", R60("v") "_2"}},
    {"nul",
     {F("a\0b"), F("a_b"), F("\0"), F("\0\0x")},
     4,
     0,
     {"a_b", "a_b_2", "_", "__x"},
     {"a_b", "a_b_2", "_", "__x"}},
    /* Latin-1, a C1 byte, a cut character, an overlong form, a surrogate, the bytes Windows-1252
     * leaves undefined, past U+10FFFF, an invalid byte beside a NUL. */
    {"not utf-8",
     {F("caf\xe9"), F("\x80"), F("\xff\xfe"), F("ab\xe2\x82"), F("\xc0\xaf"), F("\xed\xa0\x80"),
      F("\x81\x8d\x8f\x90\x9d"), F("\xf4\x90\x80\x80"), F("\xe9\0")},
     9,
     0,
     {"caf" E_ACUTE, EURO, "\xc3\xbf\xc3\xbe", "ab\xc3\xa2\xe2\x80\x9a", "\xc3\x80\xc2\xaf",
      "\xc3\xad\xc2\xa0" EURO, REPLACEMENT REPLACEMENT REPLACEMENT REPLACEMENT REPLACEMENT,
      "\xc3\xb4" REPLACEMENT EURO EURO, E_ACUTE "_"},
     {"caf_", "_", "__", "ab__", "___2", "___", "_____", "____", "___3"}},
    {"latin-1 collisions",
     {F("caf" E_ACUTE), F("caf\xe9"), F("caf_")},
     3,
     0,
     {"caf" E_ACUTE, "caf" E_ACUTE "_2", "caf_"},
     {"caf" E_ACUTE, "caf_", "caf__2"}},
    {"latin-1 long",
     {F(R60("h") "hh\xe9"
                 "z"),
      F(R60("i") "i\xe9")},
     2,
     0,
     {R60("h") "hh" E_ACUTE "z", R60("i") "i" E_ACUTE},
     {R60("h") "hh_", R60("i") "i_"}},
    {"extras",
     {F("a"), F("extra_1")},
     2,
     4,
     {"a", "extra_1", "extra_1_2", "extra_2"},
     {"a", "extra_1", "extra_1_2", "extra_2"}},
    {"extras case",
     {F("EXTRA_2"), F("")},
     2,
     4,
     {"EXTRA_2", "column_2", "extra_1", "extra_2_2"},
     {"EXTRA_2", "column_2", "extra_1", "extra_2"}},
    {"no header",
     {{NULL, 0}},
     0,
     3,
     {"column_1", "column_2", "column_3"},
     {"column_1", "column_2", "column_3"}},
};

#define NCASES (sizeof cases / sizeof cases[0])
#define META "|_producer|_protocol|_seq|_sent_us|_received_us|_peer"

static char dir[64];
static char path[128];

static int dir_setup(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "/tmp/test_colnames.XXXXXX");
  if (mkdtemp(dir) == NULL) {
    return -1;
  }
  snprintf(path, sizeof path, "%s/out.db", dir);
  return 0;
}

static int dir_teardown(void **state) {
  char p[160];
  const char *suffixes[] = {"", "-wal", "-shm", "-journal"};
  (void)state;
  for (size_t i = 0; i < 4; i++) {
    snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
    unlink(p);
  }
  rmdir(dir);
  return 0;
}

/* Append s to out (of size len), with '|' first when out is not empty. */
static void join(char *out, size_t len, const char *s) {
  if (out[0]) {
    strncat(out, "|", len - strlen(out) - 1);
  }
  strncat(out, s, len - strlen(out) - 1);
}

/* The names of table's columns in the file, in order, joined with '|'. */
static void sqlite_columns(const char *table, char *out, size_t len) {
  sqlite3 *db = NULL;
  sqlite3_stmt *q = NULL;
  out[0] = '\0';
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info(?1)", -1, &q, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_bind_text(q, 1, table, -1, SQLITE_STATIC), SQLITE_OK);
  while (sqlite3_step(q) == SQLITE_ROW) {
    join(out, len, (const char *)sqlite3_column_text(q, 0));
  }
  sqlite3_finalize(q);
  sqlite3_close(db);
}

/* A stream of this name and header. */
static sink_stream stream_of(const char *name, const cs_field *header, size_t n) {
  sink_stream st;
  memset(&st, 0, sizeof st);
  st.producer_id = 1;
  st.name = name;
  st.protocol = "tcp";
  st.peer = "127.0.0.1:40000";
  st.ncolumns = n;
  st.columns = n ? header : NULL;
  return st;
}

/* Store one row of width values "v1", "v2" ... for st and commit it. */
static void store_row(store *s, sink_stream *st, size_t width) {
  cs_field v[MAX_FIELDS];
  char text[MAX_FIELDS][8];
  assert_true(width <= MAX_FIELDS);
  for (size_t i = 0; i < width; i++) {
    snprintf(text[i], sizeof text[i], "v%zu", i + 1);
    v[i].data = text[i];
    v[i].len = strlen(text[i]);
  }
  sink_record r = {st, 1, 1000, 2000, width, v};
  assert_int_equal(store_add(s, &r), 0);
  while (store_pending(s) > 0) {
    assert_int_equal(store_flush(s), 0);
  }
}

static void test_sqlite_names(void **state) {
  store *s = NULL;
  char err[256], got[4096], want[4096];
  (void)state;
  assert_int_equal(store_open(&s, path, 0, err, sizeof err), 0);
  for (size_t i = 0; i < NCASES; i++) {
    const names_case *c = &cases[i];
    sink_stream st = stream_of(c->what, c->header, c->nheader);
    store_row(s, &st, c->width ? c->width : c->nheader);
    assert_string_equal(store_table_name(s, &st), c->what);
    sqlite_columns(c->what, got, sizeof got);
    want[0] = '\0';
    for (size_t k = 0; c->sqlite[k] != NULL; k++) {
      join(want, sizeof want, c->sqlite[k]);
    }
    strncat(want, META, sizeof want - strlen(want) - 1);
    assert_string_equal(got, want);
  }
  assert_int_equal(store_close(s), 0);
}

/* A table already in the file keeps its extra columns' names as they are (even bytes that are
 * not UTF-8), and the columns added beside them are made unique against them. */
static void test_sqlite_adopted_names_kept(void **state) {
  store *s = NULL;
  sqlite3 *db = NULL;
  char err[256], got[1024];
  const cs_field header[] = {F("a")};
  (void)state;
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_exec(db,
                                "CREATE TABLE adopt (a, \"extra_\xe9\", EXTRA_3, _producer TEXT, "
                                "_protocol TEXT, _seq INTEGER, _sent_us INTEGER, _received_us "
                                "INTEGER, _peer TEXT)",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);
  assert_int_equal(store_open(&s, path, 0, err, sizeof err), 0);
  sink_stream st = stream_of("adopt", header, 1);
  store_row(s, &st, 5);
  assert_string_equal(store_table_name(s, &st), "adopt");
  assert_int_equal(store_close(s), 0);
  sqlite_columns("adopt", got, sizeof got);
  assert_string_equal(got, "a|extra_\xe9|EXTRA_3" META "|extra_3_2|extra_4");
}

/* A stream name that is not UTF-8 names its table read as Windows-1252. */
static void test_sqlite_table_name_repaired(void **state) {
  store *s = NULL;
  char err[256];
  const cs_field header[] = {F("x")};
  (void)state;
  assert_int_equal(store_open(&s, path, 0, err, sizeof err), 0);
  sink_stream a = stream_of("caf\xe9", header, 1);
  sink_stream b = stream_of("sqlite_\xe9", header, 1);
  store_row(s, &a, 1);
  store_row(s, &b, 1);
  assert_string_equal(store_table_name(s, &a), "caf" E_ACUTE);
  assert_string_equal(store_table_name(s, &b), "stream_sqlite_" E_ACUTE);
  assert_int_equal(store_close(s), 0);
}

#ifdef CSVSTREAM_HAVE_LIBPQ
/* The PostgreSQL sink's names for header[0..n), then adopted[0..nadopted), up to width,
 * joined with '|'. */
static void pg_names(const cs_field *header, size_t n, const char *const *adopted, size_t nadopted,
                     size_t width, char *out, size_t len) {
  char **names = NULL;
  size_t count = 0;
  out[0] = '\0';
  assert_int_equal(sink_pg_column_names(header, n, adopted, nadopted, width, &names, &count), 0);
  for (size_t i = 0; i < count; i++) {
    join(out, len, names[i]);
    free(names[i]);
  }
  free(names);
}

static void test_pg_names(void **state) {
  char got[4096], want[4096];
  (void)state;
  for (size_t i = 0; i < NCASES; i++) {
    const names_case *c = &cases[i];
    pg_names(c->header, c->nheader, NULL, 0, c->width, got, sizeof got);
    want[0] = '\0';
    for (size_t k = 0; c->pg[k] != NULL; k++) {
      join(want, sizeof want, c->pg[k]);
    }
    assert_string_equal(got, want);
  }
}

/* Extra columns of a table in the database go through the same repair and cut as a header's
 * names (a name with bytes that are not UTF-8, which a SQL_ASCII database could hold, comes out
 * with '_': pinned as it is), and the columns added beside them are made unique against them. */
static void test_pg_adopted_names(void **state) {
  char got[1024];
  const cs_field header[] = {F("a")};
  const char *const adopted[] = {"extra_1", "extra_3", "extra_caf\xe9"};
  (void)state;
  pg_names(header, 1, adopted, 2, 4, got, sizeof got);
  assert_string_equal(got, "a|extra_1|extra_3|extra_3_2");
  pg_names(header, 1, adopted, 3, 5, got, sizeof got);
  assert_string_equal(got, "a|extra_1|extra_3|extra_caf_|extra_4");
}

/* The table names tried for a stream: cut to 63 bytes on a character boundary with room for
 * the suffix, bytes that are not UTF-8 as '_'. */
static void test_pg_table_candidates(void **state) {
  static const struct {
    const char *stream;
    unsigned long k;
    const char *want;
  } t[] = {
      {"s", 1, "s"},
      {"s", 2, "s_2"},
      {R60("z") R10("z"), 1, R60("z") "zzz"},
      {R60("z") R10("z"), 10, R60("z") "_10"},
      {"caf\xe9", 1, "caf_"},
      {"caf\xe9", 2, "caf__2"},
      {R60("w") "w" E_ACUTE, 1, R60("w") "w" E_ACUTE},
      {R60("w") "w" E_ACUTE, 2, R60("w") "w_2"},
      {R60("v") E_ACUTE "a", 2, R60("v") "_2"},
  };
  (void)state;
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    char *got = sink_pg_table_candidate(t[i].stream, t[i].k);
    assert_non_null(got);
    assert_string_equal(got, t[i].want);
    free(got);
  }
}
#endif

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_sqlite_names, dir_setup, dir_teardown),
      cmocka_unit_test_setup_teardown(test_sqlite_adopted_names_kept, dir_setup, dir_teardown),
      cmocka_unit_test_setup_teardown(test_sqlite_table_name_repaired, dir_setup, dir_teardown),
#ifdef CSVSTREAM_HAVE_LIBPQ
      cmocka_unit_test(test_pg_names),
      cmocka_unit_test(test_pg_adopted_names),
      cmocka_unit_test(test_pg_table_candidates),
#endif
  };
  log_init("test_colnames", LOG_ERROR); /* the sinks' warnings of repaired names are not tested */
  return cmocka_run_group_tests(tests, NULL, NULL);
}
