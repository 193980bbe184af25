/* test_pacer.c -- unit tests for producer/pacer.c: random, fixed, unpaced and rate schedules,
 * the first record due at once, and peeking without consuming. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>

#include "pacer.h"

/* An arbitrary monotonic start time, far from 0 so that "due at once" is not confused with 0. */
#define T0_US 5000000000ULL

/* Draws for the statistical checks; large enough that the mean's standard error is small. */
#define DRAWS 100000

/* --interval 1-3: every gap lies in [1 s, 3 s], the gaps fill that range (some near each end)
 * and the mean is near 2 s. The mean of DRAWS uniform gaps over a 2 s range has a standard error
 * of 2 / sqrt(12 * DRAWS) s, about 1826 us; 5 standard errors is the tolerance. */
static void test_interval_gaps_within_min_max_mean_near_middle(void **state) {
  (void)state;
  pacer p;
  pacer_init(&p, 1.0, 3.0, 0.0, 42);
  pacer_start(&p, T0_US);
  uint64_t prev = pacer_take(&p);
  uint64_t sum = 0;
  uint64_t smallest = UINT64_MAX;
  uint64_t largest = 0;
  for (int i = 0; i < DRAWS; i++) {
    uint64_t due = pacer_take(&p);
    uint64_t gap = due - prev;
    assert_in_range(gap, 1000000, 3000000);
    sum += gap;
    smallest = gap < smallest ? gap : smallest;
    largest = gap > largest ? gap : largest;
    prev = due;
  }
  assert_in_range(sum / DRAWS, 2000000 - 9130, 2000000 + 9130);
  /* With 100,000 uniform draws the extremes come within 1 ms of the ends (the chance that none
   * does is about e^-50). */
  assert_in_range(smallest, 1000000, 1001000);
  assert_in_range(largest, 2999000, 3000000);
}

/* --interval 1-3: each tenth of the range gets about a tenth of the gaps (uniform, not merely
 * bounded with the right mean). A bin holds DRAWS/10 +- 95 (one standard deviation); the
 * tolerance is 6 of them. */
static void test_interval_gaps_uniform_across_the_range(void **state) {
  (void)state;
  pacer p;
  uint64_t bins[10] = {0};
  pacer_init(&p, 1.0, 3.0, 0.0, 7);
  pacer_start(&p, T0_US);
  uint64_t prev = pacer_take(&p);
  for (int i = 0; i < DRAWS; i++) {
    uint64_t due = pacer_take(&p);
    uint64_t bin = (due - prev - 1000000) / 200000;
    bins[bin < 10 ? bin : 9]++;
    prev = due;
  }
  for (int b = 0; b < 10; b++) {
    print_message("bin %d: %llu gaps\n", b, (unsigned long long)bins[b]);
    assert_in_range(bins[b], DRAWS / 10 - 570, DRAWS / 10 + 570);
  }
}

/* Fill out[] with the first n deadlines of an --interval MIN-MAX pacer with this seed. */
static void interval_deadlines(uint64_t seed, uint64_t *out, int n) {
  pacer p;
  pacer_init(&p, 1.0, 3.0, 0.0, seed);
  pacer_start(&p, T0_US);
  for (int i = 0; i < n; i++) {
    out[i] = pacer_take(&p);
  }
}

/* --seed N: the same seed gives the same schedule, deadline for deadline. */
static void test_interval_same_seed_same_schedule(void **state) {
  (void)state;
  static uint64_t a[1000], b[1000];
  interval_deadlines(12345, a, 1000);
  interval_deadlines(12345, b, 1000);
  for (int i = 0; i < 1000; i++) {
    assert_int_equal(a[i], b[i]);
  }
}

/* Another seed gives another schedule: after the first record (due at once in both) nearly every
 * deadline differs. */
static void test_interval_other_seed_other_schedule(void **state) {
  (void)state;
  static uint64_t a[1000], b[1000];
  interval_deadlines(12345, a, 1000);
  interval_deadlines(12346, b, 1000);
  int differ = 0;
  for (int i = 1; i < 1000; i++) {
    differ += a[i] != b[i];
  }
  assert_int_equal(a[0], b[0]);
  assert_in_range(differ, 990, 999);
}

typedef struct fixed_case {
  double seconds;
  uint64_t gap_us;
} fixed_case;

/* --interval S: every gap is exactly S, whatever the seed. */
static void test_fixed_interval_exact_gaps(void **state) {
  (void)state;
  static const fixed_case cases[] = {
      {0.5, 500000}, {1.0, 1000000}, {2.0, 2000000}, {0.001, 1000}, {3600, 3600000000ULL}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    for (uint64_t seed = 1; seed <= 3; seed++) {
      pacer p;
      print_message("--interval %g, seed %llu\n", cases[c].seconds, (unsigned long long)seed);
      pacer_init(&p, cases[c].seconds, cases[c].seconds, 0.0, seed);
      pacer_start(&p, T0_US);
      uint64_t prev = pacer_take(&p);
      assert_int_equal(prev, T0_US);
      for (int i = 0; i < 1000; i++) {
        uint64_t due = pacer_take(&p);
        assert_int_equal(due - prev, cases[c].gap_us);
        prev = due;
      }
    }
  }
}

/* --interval 0: unpaced; every record is due at once (deadline 0, before any clock reading),
 * and the pace is never "slow" (no line per record). */
static void test_interval_zero_is_unpaced(void **state) {
  (void)state;
  pacer p;
  pacer_init(&p, 0.0, 0.0, 0.0, 42);
  assert_int_equal(p.mode, PACER_UNPACED);
  assert_int_equal(pacer_is_slow(&p), 0);
  pacer_start(&p, T0_US);
  for (int i = 0; i < 1000; i++) {
    assert_int_equal(pacer_peek(&p), 0);
    assert_int_equal(pacer_take(&p), 0);
  }
}

typedef struct rate_case {
  uint64_t num, den; /* --rate num/den records a second */
} rate_case;

/* --rate N: deadline n is start + n/N s, to the microsecond, for 100,000 records: computed from
 * the start, not by adding rounded gaps (which would drift by up to 1 us a record, 0.1 s over
 * this run at --rate 3). So consecutive deadlines are 1/N s apart, rounded either way. The
 * exact deadline is n * 1e6 * den / num us; the pacer's may round it down or up. */
static void test_rate_deadlines_exact_without_drift(void **state) {
  (void)state;
  static const rate_case cases[] = {{1, 1},     {3, 1},     {7, 1},           {10, 1}, {1000, 1},
                                    {20000, 1}, {44100, 1}, {5, 2} /* 2.5 */, {1, 8} /* 0.125 */};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    double rate = (double)cases[c].num / (double)cases[c].den;
    uint64_t gap_floor = 1000000 * cases[c].den / cases[c].num;
    uint64_t gap_ceil = (1000000 * cases[c].den + cases[c].num - 1) / cases[c].num;
    pacer p;
    print_message("--rate %g\n", rate);
    pacer_init(&p, 0.0, 0.0, rate, 99);
    assert_int_equal(p.mode, PACER_RATE);
    pacer_start(&p, T0_US);
    uint64_t prev = 0;
    for (uint64_t n = 0; n <= 100000; n++) {
      uint64_t due = pacer_take(&p);
      uint64_t exact_floor = n * 1000000 * cases[c].den / cases[c].num;
      uint64_t exact_ceil = (n * 1000000 * cases[c].den + cases[c].num - 1) / cases[c].num;
      assert_in_range(due - T0_US, exact_floor, exact_ceil);
      if (n > 0) {
        assert_in_range(due - prev, gap_floor, gap_ceil);
      }
      prev = due;
    }
  }
}

/* --rate N: the schedule hangs on the start time alone; started later, every deadline moves by
 * exactly the difference (absolute deadlines, not "now + gap" at each take). */
static void test_rate_deadlines_relative_to_start(void **state) {
  (void)state;
  pacer a, b;
  pacer_init(&a, 0.0, 0.0, 3.0, 1);
  pacer_init(&b, 0.0, 0.0, 3.0, 2);
  pacer_start(&a, T0_US);
  pacer_start(&b, T0_US + 123457);
  for (int i = 0; i < 10000; i++) {
    assert_int_equal(pacer_take(&b) - pacer_take(&a), 123457);
  }
}

typedef struct first_case {
  const char *what;
  double min_s, max_s, rate;
  uint64_t expect_first; /* T0_US, or 0 when unpaced */
} first_case;

/* Whatever the pace, the first record is due at once: at the start time (unpaced: at 0). */
static void test_first_record_due_at_once(void **state) {
  (void)state;
  static const first_case cases[] = {
      {"--interval 1-3", 1.0, 3.0, 0.0, T0_US},       {"--interval 3600", 3600, 3600, 0.0, T0_US},
      {"--interval 0.5-3600", 0.5, 3600, 0.0, T0_US}, {"--rate 0.125", 0.0, 0.0, 0.125, T0_US},
      {"--rate 20000", 0.0, 0.0, 20000, T0_US},       {"--interval 0", 0.0, 0.0, 0.0, 0},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    pacer p;
    print_message("%s\n", cases[c].what);
    pacer_init(&p, cases[c].min_s, cases[c].max_s, cases[c].rate, 42);
    pacer_start(&p, T0_US);
    assert_int_equal(pacer_peek(&p), cases[c].expect_first);
    assert_int_equal(pacer_take(&p), cases[c].expect_first);
  }
}

typedef struct peek_case {
  const char *what;
  double min_s, max_s, rate;
} peek_case;

/* pacer_peek tells the next deadline without consuming it: peeking any number of times gives the
 * deadline the next pacer_take returns, and a pacer that is peeked keeps exactly the schedule of
 * a twin (same seed) that is never peeked, so peeking draws no random numbers either. */
static void test_peek_does_not_consume(void **state) {
  (void)state;
  static const peek_case cases[] = {
      {"--interval 1-3", 1.0, 3.0, 0.0},
      {"--interval 2", 2.0, 2.0, 0.0},
      {"--rate 3", 0.0, 0.0, 3.0},
      {"--interval 0", 0.0, 0.0, 0.0},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    pacer peeked, twin;
    print_message("%s\n", cases[c].what);
    pacer_init(&peeked, cases[c].min_s, cases[c].max_s, cases[c].rate, 2024);
    pacer_init(&twin, cases[c].min_s, cases[c].max_s, cases[c].rate, 2024);
    pacer_start(&peeked, T0_US);
    pacer_start(&twin, T0_US);
    for (int i = 0; i < 1000; i++) {
      uint64_t seen = pacer_peek(&peeked);
      for (int k = 0; k < i % 4; k++) {
        assert_int_equal(pacer_peek(&peeked), seen);
      }
      assert_int_equal(pacer_take(&peeked), seen);
      assert_int_equal(seen, pacer_take(&twin));
    }
  }
}

typedef struct slow_case {
  double min_s, max_s, rate;
  int slow;
} slow_case;

/* pacer_is_slow: a line per record when the average gap is 0.1 s or more, never unpaced. */
static void test_is_slow_at_average_gap_of_a_tenth(void **state) {
  (void)state;
  static const slow_case cases[] = {
      {1.0, 3.0, 0.0, 1},  {0.1, 0.1, 0.0, 1},   {0.05, 0.15, 0.0, 1}, {0.0, 0.2, 0.0, 1},
      {0.05, 0.1, 0.0, 0}, {0.0, 0.0, 0.0, 0},   {0.0, 0.0, 10.0, 1},  {0.0, 0.0, 0.5, 1},
      {0.0, 0.0, 10.5, 0}, {0.0, 0.0, 20000, 0},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    pacer p;
    print_message("interval %g-%g rate %g\n", cases[c].min_s, cases[c].max_s, cases[c].rate);
    pacer_init(&p, cases[c].min_s, cases[c].max_s, cases[c].rate, 1);
    assert_int_equal(pacer_is_slow(&p), cases[c].slow);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_interval_gaps_within_min_max_mean_near_middle),
      cmocka_unit_test(test_interval_gaps_uniform_across_the_range),
      cmocka_unit_test(test_interval_same_seed_same_schedule),
      cmocka_unit_test(test_interval_other_seed_other_schedule),
      cmocka_unit_test(test_fixed_interval_exact_gaps),
      cmocka_unit_test(test_interval_zero_is_unpaced),
      cmocka_unit_test(test_rate_deadlines_exact_without_drift),
      cmocka_unit_test(test_rate_deadlines_relative_to_start),
      cmocka_unit_test(test_first_record_due_at_once),
      cmocka_unit_test(test_peek_does_not_consume),
      cmocka_unit_test(test_is_slow_at_average_gap_of_a_tenth),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
