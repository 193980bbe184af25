/* test_seqwin.c -- unit tests for consumer/seqwin.c: the verdict for every kind of arrival,
 * the bitmap's growth, the ring's slide and wrap, the too-late edge, seq 0 and huge jumps. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seqwin.h"

#define W ((uint64_t)SEQWIN_SIZE)
#define MAX_STEPS 16

/* One arrival and the verdict it must get. */
typedef struct step {
  uint64_t seq;
  int verdict;
} step;

/* A named run of arrivals into a fresh window, and the highest number at the end. */
typedef struct verdict_case {
  const char *name;
  step steps[MAX_STEPS];
  size_t nsteps;
  uint64_t max_after;
} verdict_case;

#define F SEQWIN_FIRST
#define R SEQWIN_REORDERED
#define D SEQWIN_DUPLICATE
#define L SEQWIN_TOO_LATE

static const verdict_case cases[] = {
    {"in order: every one first", {{1, F}, {2, F}, {3, F}}, 3, 3},
    {"gaps are allowed: still first", {{1, F}, {5, F}, {100, F}}, 3, 100},
    {"a repeat of the highest is a duplicate", {{1, F}, {1, D}, {2, F}, {2, D}, {2, D}}, 5, 2},
    {"two then one: one is reordered", {{2, F}, {1, R}}, 2, 2},
    {"a duplicate of a reordered record", {{2, F}, {1, R}, {1, D}}, 3, 2},
    {"an old duplicate after a higher seq", {{1, F}, {3, F}, {3, D}, {1, D}}, 4, 3},
    {"a gap filled in any order", {{1, F}, {5, F}, {3, R}, {4, R}, {2, R}, {3, D}}, 6, 5},
    {"seq 0 is never a record's: too late, never marked", {{0, L}, {0, L}}, 2, 0},
    {"seq 0 after records: too late", {{1, F}, {0, L}, {2, F}, {0, L}}, 4, 2},
    {"the first arrival may start anywhere", {{1000000, F}, {999999, R}, {1, R}}, 3, 1000000},
    /* The bitmap grows from 1024 bits; numbers marked before a growth are still known. */
    {"growth keeps what was seen",
     {{1, F}, {1000, F}, {5000, F}, {1, D}, {1000, D}, {3, R}, {700000, F}, {5000, D}, {4999, R}},
     9,
     700000},
    {"growth at exactly the first width",
     {{1023, F}, {1024, F}, {1023, D}, {1, R}, {2048, F}, {1024, D}, {2, R}},
     7,
     2048},
    {"growth to the full window in one jump",
     {{1, F}, {W - 1, F}, {1, D}, {2, R}, {W - 1, D}, {W, F}, {1, D}, {W + 1, F}, {1, L}, {2, D}},
     10,
     W + 1},
    /* [max - W + 1, max] is tracked; max - W and below are too late. */
    {"too late: one below the window's bottom",
     {{1, F}, {W + 10, F}, {10, L}, {11, R}, {11, D}, {5, L}, {1, L}, {12, R}},
     8,
     W + 10},
    {"too late even for a number that was seen", {{1, F}, {W + 1, F}, {1, L}, {2, R}}, 4, W + 1},
    /* 5 + W shares 5's bit: it must not look like a duplicate. */
    {"the slide clears a reused bit",
     {{5, F}, {5 + W, F}, {W + 3, R}, {W + 3, D}, {5, L}, {6, R}, {5 + W, D}},
     7,
     W + 5},
    /* From W - 3 to W + 20 the bits cleared run over the ring's end (unaligned at both). */
    {"the slide wraps around the ring",
     {{1, F},
      {W - 3, F},
      {W + 20, F},
      {W - 3, D},
      {1, L},
      {W - 2, R},
      {W - 1, R},
      {W, R},
      {W + 1, R},
      {W + 5, R},
      {W + 20, D},
      {21, R},
      {20, L}},
     13,
     W + 20},
    /* 7's bit (position 7) is outside the cleared run and belongs to W + 7 next; 5's is not. */
    {"a bit left over from a number that slid out",
     {{1, F}, {5, F}, {7, F}, {W + 6, F}, {W + 5, R}, {W + 7, F}, {W + 7, D}, {7, L}, {8, R}},
     9,
     W + 7},
    {"a jump past the whole window clears everything",
     {{1, F},
      {2, F},
      {10 * W, F},
      {10 * W - 1, R},
      {2, L},
      {9 * W + 1, R},
      {9 * W, L},
      {10 * W, D}},
     8,
     10 * W},
    {"the largest sequence number",
     {{1, F},
      {UINT64_MAX, F},
      {UINT64_MAX, D},
      {UINT64_MAX - 1, R},
      {UINT64_MAX - W + 1, R},
      {UINT64_MAX - W, L},
      {1, L},
      {0, L}},
     8,
     UINT64_MAX},
    {"the largest sequence number first", {{UINT64_MAX, F}, {UINT64_MAX - 1, R}}, 2, UINT64_MAX},
};

static const char *verdict_name(int v) {
  static const char *names[] = {"FIRST", "REORDERED", "DUPLICATE", "TOO_LATE"};
  return v >= 0 && v < 4 ? names[v] : "?";
}

/* Each case in a fresh window: every step's verdict, then the highest number. */
static void test_verdict_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const verdict_case *c = &cases[i];
    seqwin w;
    assert_int_equal(seqwin_init(&w), 0);
    for (size_t k = 0; k < c->nsteps; k++) {
      int got = seqwin_mark(&w, c->steps[k].seq);
      if (got != c->steps[k].verdict) {
        fail_msg("%s: step %zu, seq %llu: got %s, want %s", c->name, k,
                 (unsigned long long)c->steps[k].seq, verdict_name(got),
                 verdict_name(c->steps[k].verdict));
      }
    }
    if (seqwin_max(&w) != c->max_after) {
      fail_msg("%s: max %llu, want %llu", c->name, (unsigned long long)seqwin_max(&w),
               (unsigned long long)c->max_after);
    }
    seqwin_free(&w);
  }
}

/* The case table's step counts match the steps written out (a typo would skip some). */
static void test_verdict_table_counts_are_exact(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const verdict_case *c = &cases[i];
    assert_true(c->nsteps > 0 && c->nsteps <= MAX_STEPS);
    for (size_t k = c->nsteps; k < MAX_STEPS; k++) {
      if (c->steps[k].seq != 0 || c->steps[k].verdict != 0) {
        fail_msg("%s: a step after nsteps (%zu)", c->name, c->nsteps);
      }
    }
    if (c->steps[c->nsteps - 1].seq == 0 && c->steps[c->nsteps - 1].verdict == 0) {
      fail_msg("%s: nsteps (%zu) beyond the last step", c->name, c->nsteps);
    }
  }
}

/* Three windows' worth in order, each checked: still first after every growth and wrap, and
 * a repeat of any number inside the window is a duplicate, one just below it too late. */
static void test_long_run_through_growth_and_wrap(void **state) {
  (void)state;
  seqwin w;
  assert_int_equal(seqwin_init(&w), 0);
  for (uint64_t seq = 1; seq <= 3 * W; seq++) {
    int v = seqwin_mark(&w, seq);
    if (v != SEQWIN_FIRST) {
      fail_msg("seq %llu: got %s, want FIRST", (unsigned long long)seq, verdict_name(v));
    }
    if (seq % 65521 == 0) {
      assert_int_equal(seqwin_mark(&w, seq), SEQWIN_DUPLICATE);
      assert_int_equal(seqwin_mark(&w, seq / 2 + 1),
                       seq / 2 + 1 + W > seq ? SEQWIN_DUPLICATE : SEQWIN_TOO_LATE);
    }
  }
  assert_int_equal(seqwin_max(&w), 3 * W);
  assert_int_equal(seqwin_mark(&w, 2 * W + 1), SEQWIN_DUPLICATE);
  assert_int_equal(seqwin_mark(&w, 2 * W), SEQWIN_TOO_LATE);
  seqwin_free(&w);
}

/* Random arrivals, mostly the next number (the window's fast path), some after a gap, some
 * copies and late ones of any age: each verdict as a plain set of every number seen says,
 * with the bitmap's width at the time (read from the window) for the too-late edge. */
static void test_random_arrivals_against_a_set(void **state) {
  (void)state;
  const uint64_t top = 3 * W;
  unsigned char *seen = calloc(top + 2, 1);
  uint64_t x = 0x2545f4914f6cdd1dull, max = 0;
  seqwin w;
  assert_non_null(seen);
  assert_int_equal(seqwin_init(&w), 0);
  while (max < top) {
    uint64_t seq;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    if (x % 16 < 12) {
      seq = max + 1;
    } else if (x % 16 < 13) {
      seq = max + 1 + (x >> 8) % 3000;
    } else {
      seq = max > 0 ? 1 + (x >> 8) % (x % 16 == 13 ? (max < 2000 ? max : 2000) : max) : 1;
      if (x % 16 == 13) {
        seq = max + 1 - seq; /* a recent one */
      }
    }
    if (seq > top) {
      seq = top;
    }
    int want;
    if (seq > max) {
      want = SEQWIN_FIRST;
    } else if (max >= w.seen_bits && seq <= max - w.seen_bits) {
      want = SEQWIN_TOO_LATE;
    } else {
      want = seen[seq] ? SEQWIN_DUPLICATE : SEQWIN_REORDERED;
    }
    int got = seqwin_mark(&w, seq);
    if (got != want) {
      fail_msg("seq %llu (max %llu): got %s, want %s", (unsigned long long)seq,
               (unsigned long long)max, verdict_name(got), verdict_name(want));
    }
    if (want != SEQWIN_TOO_LATE) {
      seen[seq] = 1;
    }
    if (seq > max) {
      max = seq;
    }
  }
  seqwin_free(&w);
  free(seen);
}

static void test_is_new_only_for_first_and_reordered(void **state) {
  (void)state;
  assert_int_equal(seqwin_is_new(SEQWIN_FIRST), 1);
  assert_int_equal(seqwin_is_new(SEQWIN_REORDERED), 1);
  assert_int_equal(seqwin_is_new(SEQWIN_DUPLICATE), 0);
  assert_int_equal(seqwin_is_new(SEQWIN_TOO_LATE), 0);
  assert_int_equal(seqwin_is_new(-1), 0);
  assert_int_equal(seqwin_is_new(4), 0);
}

/* The highest number only goes up: reordered, duplicate and too-late arrivals leave it. */
static void test_max_only_rises(void **state) {
  (void)state;
  seqwin w;
  assert_int_equal(seqwin_init(&w), 0);
  assert_int_equal(seqwin_max(&w), 0);
  seqwin_mark(&w, 0);
  assert_int_equal(seqwin_max(&w), 0);
  seqwin_mark(&w, 10);
  assert_int_equal(seqwin_max(&w), 10);
  seqwin_mark(&w, 4);
  seqwin_mark(&w, 10);
  assert_int_equal(seqwin_max(&w), 10);
  seqwin_mark(&w, W + 20);
  seqwin_mark(&w, 3);
  assert_int_equal(seqwin_max(&w), W + 20);
  seqwin_free(&w);
}

/* Free accepts NULL, a zeroed window and one freed already. */
static void test_free_is_safe_on_zeroed_and_freed(void **state) {
  (void)state;
  seqwin w;
  memset(&w, 0, sizeof w);
  seqwin_free(&w);
  seqwin_free(NULL);
  assert_int_equal(seqwin_init(&w), 0);
  assert_non_null(w.seen);
  seqwin_free(&w);
  assert_null(w.seen);
  seqwin_free(&w);
}

/* A short stream keeps the 1024-bit bitmap; a long one stops at SEQWIN_SIZE bits. */
static void test_bitmap_starts_small_and_stops_at_the_window(void **state) {
  (void)state;
  seqwin w;
  assert_int_equal(seqwin_init(&w), 0);
  assert_int_equal(w.seen_bits, 1024);
  seqwin_mark(&w, 1023);
  assert_int_equal(w.seen_bits, 1024);
  seqwin_mark(&w, 1024);
  assert_int_equal(w.seen_bits, 2048);
  seqwin_mark(&w, 100000);
  assert_int_equal(w.seen_bits, 131072);
  seqwin_mark(&w, 50 * W);
  assert_int_equal(w.seen_bits, SEQWIN_SIZE);
  seqwin_free(&w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_verdict_table),
      cmocka_unit_test(test_verdict_table_counts_are_exact),
      cmocka_unit_test(test_long_run_through_growth_and_wrap),
      cmocka_unit_test(test_random_arrivals_against_a_set),
      cmocka_unit_test(test_is_new_only_for_first_and_reordered),
      cmocka_unit_test(test_max_only_rises),
      cmocka_unit_test(test_free_is_safe_on_zeroed_and_freed),
      cmocka_unit_test(test_bitmap_starts_small_and_stops_at_the_window),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
