/* test_replay.c -- unit tests of replay on the file's clock: the column found by name or
 * number, gaps divided by --speed and capped by --max-gap, values that do not parse or go back,
 * the clock restarting with --loop, and the pacer's deadlines in clock mode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"
#include "pacer.h"
#include "replay.h"

/* A record of two fields: an id and a time stamp, on the given line. */
typedef struct rec2 {
  cs_field f[2];
  csvin_rec rec;
} rec2;

static const csvin_rec *make(rec2 *r, const char *ts, uint64_t line) {
  r->f[0].data = "id";
  r->f[0].len = 2;
  r->f[1].data = ts;
  r->f[1].len = strlen(ts);
  r->rec.nfields = 2;
  r->rec.fields = r->f;
  r->rec.line = line;
  return &r->rec;
}

/* The gap before each record, in µs; the note replay_gap gave in *note. */
static uint64_t gap_of(replay *rp, const char *ts, uint64_t line, int *note) {
  rec2 r;
  char msg[512];
  uint64_t gap = 99;
  *note = replay_gap(rp, make(&r, ts, line), "f.csv", &gap, msg, sizeof msg);
  return gap;
}

/* The column is found by its header name or by number; an unknown one names the columns. */
static void test_column(void **state) {
  rec2 h;
  replay rp;
  char err[512];
  (void)state;
  make(&h, "when", 1);
  assert_int_equal(replay_init(&rp, "when", 1, 0, &h.rec, "f.csv", err, sizeof err), 0);
  assert_int_equal(rp.column, 1);
  assert_int_equal(replay_init(&rp, "1", 1, 0, &h.rec, "f.csv", err, sizeof err), 0);
  assert_int_equal(rp.column, 0);
  assert_int_equal(replay_init(&rp, "2", 1, 0, NULL, "f.csv", err, sizeof err), 0);
  assert_int_equal(rp.column, 1);
  assert_int_equal(replay_init(&rp, "time", 1, 0, &h.rec, "f.csv", err, sizeof err), CS_EINVAL);
  assert_non_null(strstr(err, "f.csv has no column 'time' (its columns: id, when"));
  assert_int_equal(replay_init(&rp, "3", 1, 0, &h.rec, "f.csv", err, sizeof err), CS_EINVAL);
  assert_int_equal(replay_init(&rp, "when", 1, 0, NULL, "f.csv", err, sizeof err), CS_EINVAL);
  assert_non_null(strstr(err, "--no-header"));
}

/* Minutes apart at --speed 600: 0.1 s; the first record waits 0 and the format is said once. */
static void test_speed_divides(void **state) {
  replay rp;
  char err[256];
  int note;
  (void)state;
  assert_int_equal(replay_init(&rp, "2", 600, 0, NULL, "f.csv", err, sizeof err), 0);
  assert_int_equal(gap_of(&rp, "2026-12-01 10:00:00", 1, &note), 0);
  assert_int_equal(note, REPLAY_INFO);
  assert_int_equal(gap_of(&rp, "2026-12-01 10:01:00", 2, &note), 100000);
  assert_int_equal(note, REPLAY_QUIET);
  assert_int_equal(gap_of(&rp, "2026-12-01T10:03:00Z", 3, &note), 200000);
  assert_int_equal(rp.file_us, 180000000u);
}

/* --max-gap caps the wait after --speed; the file time still counts the whole gap. */
static void test_max_gap(void **state) {
  replay rp;
  char err[256];
  int note;
  (void)state;
  assert_int_equal(replay_init(&rp, "2", 10, 2.5, NULL, "f.csv", err, sizeof err), 0);
  gap_of(&rp, "1000", 1, &note);
  assert_int_equal(gap_of(&rp, "1010", 2, &note), 1000000);
  assert_int_equal(gap_of(&rp, "4610", 3, &note), 2500000); /* an hour, 360 s: cut to 2.5 s */
  assert_int_equal(rp.capped, 1);
  assert_int_equal(rp.file_us, 3610000000u);
}

/* A value that does not parse, or goes back, is warned about and sent at once; the next gap
 * is measured from the last good value. */
static void test_bad_and_backwards(void **state) {
  replay rp;
  char err[256];
  int note;
  (void)state;
  assert_int_equal(replay_init(&rp, "2", 1, 0, NULL, "f.csv", err, sizeof err), 0);
  gap_of(&rp, "1700000000000", 1, &note); /* milliseconds */
  assert_int_equal(gap_of(&rp, "1700000000500", 2, &note), 500000);
  assert_int_equal(gap_of(&rp, "soon", 3, &note), 0);
  assert_int_equal(note, REPLAY_WARN);
  assert_int_equal(gap_of(&rp, "1699999999000", 4, &note), 0);
  assert_int_equal(note, REPLAY_WARN);
  assert_int_equal(gap_of(&rp, "1700000001500", 5, &note), 1000000);
  assert_int_equal(note, REPLAY_QUIET);
  assert_int_equal(rp.bad, 2);

  rec2 r;
  char msg[512];
  uint64_t gap;
  make(&r, "x", 7);
  r.rec.nfields = 1; /* a short row: no value in the column */
  assert_int_equal(replay_gap(&rp, &r.rec, "f.csv", &gap, msg, sizeof msg), REPLAY_WARN);
  assert_non_null(strstr(msg, "f.csv:7: no value in column 2"));
  make(&r, "2026-01-01", 8);
  assert_int_equal(replay_gap(&rp, &r.rec, "f.csv", &gap, msg, sizeof msg), REPLAY_WARN);
  assert_non_null(strstr(msg, "f.csv:8: '2026-01-01' in column 2 is not epoch milliseconds"));
}

/* --loop: the clock starts again with the file; --speed 0 never waits. */
static void test_restart_and_unpaced(void **state) {
  replay rp;
  char err[256];
  int note;
  (void)state;
  assert_int_equal(replay_init(&rp, "2", 1, 0, NULL, "f.csv", err, sizeof err), 0);
  gap_of(&rp, "100", 1, &note);
  assert_int_equal(gap_of(&rp, "101", 2, &note), 1000000);
  replay_restart(&rp);
  assert_int_equal(gap_of(&rp, "100", 1, &note), 0); /* not "goes back" */
  assert_int_equal(note, REPLAY_QUIET);
  assert_int_equal(rp.bad, 0);
  assert_int_equal(replay_init(&rp, "2", 0, 0, NULL, "f.csv", err, sizeof err), 0);
  gap_of(&rp, "100", 1, &note);
  assert_int_equal(gap_of(&rp, "200", 2, &note), 0);
  assert_int_equal(rp.file_us, 100000000u);
}

/* Clock mode: deadlines add the gaps from the start, and peek says "due now" so the sender
 * gathers records until it has to wait. */
static void test_pacer_clock(void **state) {
  pacer p;
  (void)state;
  pacer_init_clock(&p);
  pacer_start(&p, 1000);
  assert_int_equal(pacer_take_after(&p, 777), 1000); /* the first is due at the start */
  assert_int_equal(pacer_take_after(&p, 100000), 101000);
  assert_int_equal(pacer_take_after(&p, 0), 101000);
  assert_int_equal(pacer_take_after(&p, 50), 101050);
  assert_int_equal(pacer_peek(&p), 0);
  assert_int_equal(pacer_is_slow(&p), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_column),
      cmocka_unit_test(test_speed_divides),
      cmocka_unit_test(test_max_gap),
      cmocka_unit_test(test_bad_and_backwards),
      cmocka_unit_test(test_restart_and_unpaced),
      cmocka_unit_test(test_pacer_clock),
  };
  return cmocka_run_group_tests_name("replay", tests, NULL, NULL);
}
