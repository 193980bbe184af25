/* test_impair.c -- unit tests for producer/impair.c: --impair parsing and its messages, seeded
 * decisions, their frequencies, and the ground-truth counts the consumer must match. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "impair.h"

/* Decisions for the statistical checks. */
#define DECISIONS 100000

/* ---- parsing ---- */

typedef struct parse_ok_case {
  const char *spec;
  double loss, dup, reorder;
  unsigned delay_ms;
  int have_seed;
  uint64_t seed;
} parse_ok_case;

/* Valid specs: keys in any order, each optional (missing probabilities are 0, no delay, no
 * seed), the bounds 0 and 1 included. */
static void test_parse_valid_forms(void **state) {
  (void)state;
  static const parse_ok_case cases[] = {
      {"loss=0.1,dup=0.02,reorder=0.05,seed=42", 0.1, 0.02, 0.05, 0, 1, 42},
      {"seed=42,reorder=0.05,dup=0.02,loss=0.1", 0.1, 0.02, 0.05, 0, 1, 42},
      {"loss=0.1", 0.1, 0, 0, 0, 0, 0},
      {"dup=1", 0, 1, 0, 0, 0, 0},
      {"reorder=0.5", 0, 0, 0.5, 0, 0, 0},
      {"loss=0,dup=0,reorder=0", 0, 0, 0, 0, 0, 0},
      {"loss=1,dup=1,reorder=1", 1, 1, 1, 0, 0, 0},
      {"delay=250", 0, 0, 0, 250, 0, 0},
      {"delay=0", 0, 0, 0, 0, 0, 0},
      {"delay=60000", 0, 0, 0, 60000, 0, 0},
      {"seed=0", 0, 0, 0, 0, 1, 0},
      {"seed=9223372036854775807", 0, 0, 0, 0, 1, 9223372036854775807ULL},
      {"loss=0.05,delay=20,seed=7", 0.05, 0, 0, 20, 1, 7},
      {"loss=1e-3", 0.001, 0, 0, 0, 0, 0},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    impair_params p;
    char err[256] = "";
    print_message("--impair %s\n", cases[c].spec);
    memset(&p, 0xa5, sizeof p); /* impair_parse must set every field */
    assert_int_equal(impair_parse(cases[c].spec, &p, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_float_equal(p.loss, cases[c].loss, 0.0);
    assert_float_equal(p.dup, cases[c].dup, 0.0);
    assert_float_equal(p.reorder, cases[c].reorder, 0.0);
    assert_int_equal(p.delay_ms, cases[c].delay_ms);
    assert_int_equal(p.have_seed, cases[c].have_seed);
    assert_int_equal(p.seed, cases[c].seed);
  }
}

typedef struct parse_bad_case {
  const char *spec;
  const char *message;
} parse_bad_case;

/* Each bad form is refused with CS_EINVAL and a message naming --impair and the bad part. */
static void test_parse_bad_forms_name_the_part(void **state) {
  (void)state;
  static const parse_bad_case cases[] = {
      {"loss=2", "--impair loss: '2' is out of range (0-1)"},
      {"loss=-0.1", "--impair loss: '-0.1' is out of range (0-1)"},
      {"loss=x", "--impair loss: 'x' is not a number"},
      {"loss=0.1x", "--impair loss: '0.1x' is not a number"},
      {"loss=nan", "--impair loss: 'nan' is not a number"},
      {"loss=", "--impair loss: a value is required (0-1)"},
      {"dup=1.5", "--impair dup: '1.5' is out of range (0-1)"},
      {"reorder=-1", "--impair reorder: '-1' is out of range (0-1)"},
      {"reorder=often", "--impair reorder: 'often' is not a number"},
      {"jitter=0.1", "--impair: unknown key 'jitter' (known: loss, dup, reorder, delay, seed)"},
      {"Loss=0.1", "--impair: unknown key 'Loss' (known: loss, dup, reorder, delay, seed)"},
      {"loss", "--impair: 'loss' is not KEY=VALUE (expected loss=P,dup=P,reorder=P[,delay=MS]"
               "[,seed=N])"},
      {"=0.1", "--impair: '=0.1' is not KEY=VALUE (expected loss=P,dup=P,reorder=P[,delay=MS]"
               "[,seed=N])"},
      {"loss=0.1,dup", "--impair: 'dup' is not KEY=VALUE (expected loss=P,dup=P,reorder=P"
                       "[,delay=MS][,seed=N])"},
      {",", "--impair: ',' has an empty item (expected loss=P,dup=P,reorder=P[,delay=MS]"
            "[,seed=N])"},
      {"loss=0.1,", "--impair: 'loss=0.1,' has an empty item (expected loss=P,dup=P,reorder=P"
                    "[,delay=MS][,seed=N])"},
      {"loss=0.1,,dup=0.1", "--impair: 'loss=0.1,,dup=0.1' has an empty item (expected "
                            "loss=P,dup=P,reorder=P[,delay=MS][,seed=N])"},
      {"loss=0.1,loss=0.2", "--impair: 'loss' is given twice"},
      {"seed=1,dup=0.1,seed=2", "--impair: 'seed' is given twice"},
      {"delay=-1", "--impair delay: '-1' is out of range (0-60000)"},
      {"delay=60001", "--impair delay: '60001' is out of range (0-60000)"},
      {"delay=1.5", "--impair delay: '1.5' is not a whole number"},
      {"delay=", "--impair delay: a value is required (0-60000)"},
      {"seed=-1", "--impair seed: '-1' is out of range (0-9223372036854775807)"},
      {"seed=abc", "--impair seed: 'abc' is not a whole number"},
      {"seed=99999999999999999999",
       "--impair seed: '99999999999999999999' is out of range (0-9223372036854775807)"},
      {"", "--impair: empty (expected loss=P,dup=P,reorder=P[,delay=MS][,seed=N])"},
      {"loss=0.1,dup=2", "--impair dup: '2' is out of range (0-1)"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    impair_params p;
    char err[256] = "";
    print_message("--impair '%s'\n", cases[c].spec);
    assert_int_equal(impair_parse(cases[c].spec, &p, err, sizeof err), CS_EINVAL);
    assert_string_equal(err, cases[c].message);
  }
}

/* ---- decisions ---- */

/* An impairment with these probabilities and seed. */
static impair make_impair(double loss, double dup, double reorder, uint64_t seed) {
  impair im;
  impair_params p;
  memset(&p, 0, sizeof p);
  p.loss = loss;
  p.dup = dup;
  p.reorder = reorder;
  impair_init(&im, &p, seed);
  return im;
}

/* What a run of records looked like on the wire, as the producer applies the decisions. */
typedef struct wire_order {
  uint64_t *seq; /* sequence numbers in the order they were sent, copies included */
  size_t n;
  int *actions; /* the decision for each record, [0] for seq 1 */
} wire_order;

/* Apply the decisions to records 1..records as the impair sender (impair_op_send,
 * impair_release_held, impair_op_finish in impair.c) does: a dropped record is never sent; a held
 * record (with its copy, if it got one) goes right after the next record that is sent, which is
 * reported with impair_note_reordered; a record still held at the end goes last and is not
 * reported, since nothing later went before it. Only one record is held at a time. */
static wire_order run_producer_model(impair *im, uint64_t records) {
  wire_order w;
  int holding = 0;
  int held_dup = 0;
  uint64_t held_seq = 0;
  w.seq = malloc(2 * records * sizeof *w.seq);
  w.actions = malloc(records * sizeof *w.actions);
  w.n = 0;
  assert_non_null(w.seq);
  assert_non_null(w.actions);
  for (uint64_t seq = 1; seq <= records; seq++) {
    int a = impair_decide(im, holding);
    w.actions[seq - 1] = a;
    if (a & IMPAIR_DROP) {
      assert_int_equal(a, IMPAIR_DROP); /* a dropped record is neither held nor copied */
      continue;
    }
    if (a & IMPAIR_HOLD) {
      assert_int_equal(holding, 0); /* a second record is never held */
      holding = 1;
      held_seq = seq;
      held_dup = (a & IMPAIR_DUP) != 0;
      continue;
    }
    w.seq[w.n++] = seq;
    if (a & IMPAIR_DUP) {
      w.seq[w.n++] = seq;
    }
    if (holding) {
      w.seq[w.n++] = held_seq;
      if (held_dup) {
        w.seq[w.n++] = held_seq;
      }
      holding = 0;
      impair_note_reordered(im);
    }
  }
  if (holding) {
    w.seq[w.n++] = held_seq;
    if (held_dup) {
      w.seq[w.n++] = held_seq;
    }
  }
  return w;
}

static void wire_order_free(wire_order *w) {
  free(w->seq);
  free(w->actions);
}

/* What the consumer counts from the wire order (README: "reordered -- records that arrived
 * after one with a higher sequence number"; duplicates are extra copies, never reordered). */
typedef struct observed {
  uint64_t lost, duplicates, reordered;
} observed;

static observed consumer_counts(const wire_order *w, uint64_t records) {
  observed o = {0, 0, 0};
  unsigned char *seen = calloc(records + 1, 1);
  uint64_t highest = 0;
  uint64_t distinct = 0;
  assert_non_null(seen);
  for (size_t i = 0; i < w->n; i++) {
    uint64_t s = w->seq[i];
    if (seen[s]) {
      o.duplicates++;
    } else {
      seen[s] = 1;
      distinct++;
      if (s < highest) {
        o.reordered++;
      }
    }
    highest = s > highest ? s : highest;
  }
  o.lost = records - distinct;
  free(seen);
  return o;
}

/* The same seed gives the same decisions, record for record, and the same counts. */
static void test_same_seed_same_decisions(void **state) {
  (void)state;
  impair a = make_impair(0.1, 0.02, 0.05, 42);
  impair b = make_impair(0.1, 0.02, 0.05, 42);
  wire_order wa = run_producer_model(&a, 10000);
  wire_order wb = run_producer_model(&b, 10000);
  assert_int_equal(wa.n, wb.n);
  for (size_t i = 0; i < 10000; i++) {
    assert_int_equal(wa.actions[i], wb.actions[i]);
  }
  assert_int_equal(a.dropped, b.dropped);
  assert_int_equal(a.duplicated, b.duplicated);
  assert_int_equal(a.reordered, b.reordered);
  wire_order_free(&wa);
  wire_order_free(&wb);
}

/* Another seed gives other decisions: the sequences of drops differ. */
static void test_other_seed_other_decisions(void **state) {
  (void)state;
  impair a = make_impair(0.5, 0, 0, 42);
  impair b = make_impair(0.5, 0, 0, 43);
  int differ = 0;
  for (int i = 0; i < 1000; i++) {
    differ += impair_decide(&a, 0) != impair_decide(&b, 0);
  }
  /* Two independent fair coins disagree about half the time. */
  assert_in_range(differ, 400, 600);
}

/* loss=1 drops every record, whatever dup and reorder say, and counts each drop. */
static void test_loss_one_drops_everything(void **state) {
  (void)state;
  static const double others[][2] = {{0, 0}, {1, 1}, {0.5, 0.5}};
  for (size_t c = 0; c < sizeof others / sizeof others[0]; c++) {
    impair im = make_impair(1.0, others[c][0], others[c][1], 9);
    print_message("loss=1,dup=%g,reorder=%g\n", others[c][0], others[c][1]);
    for (int i = 0; i < 1000; i++) {
      assert_int_equal(impair_decide(&im, i % 2), IMPAIR_DROP);
    }
    assert_int_equal(im.dropped, 1000);
    assert_int_equal(im.duplicated, 0);
    assert_int_equal(im.reordered, 0);
  }
}

/* loss=0,dup=0,reorder=0 sends every record as it comes, holding one back or not. */
static void test_all_zero_changes_nothing(void **state) {
  (void)state;
  impair im = make_impair(0, 0, 0, 9);
  for (int i = 0; i < DECISIONS; i++) {
    assert_int_equal(impair_decide(&im, i % 2), IMPAIR_SEND);
  }
  assert_int_equal(im.dropped, 0);
  assert_int_equal(im.duplicated, 0);
  assert_int_equal(im.reordered, 0);
}

/* reorder=1 holds a record when none is held, never a second one; dup=1 copies every record,
 * held or not. */
static void test_hold_only_when_none_is_held(void **state) {
  (void)state;
  impair im = make_impair(0, 0, 1.0, 9);
  assert_int_equal(impair_decide(&im, 0), IMPAIR_HOLD);
  assert_int_equal(impair_decide(&im, 1), IMPAIR_SEND);
  impair both = make_impair(0, 1.0, 1.0, 9);
  assert_int_equal(impair_decide(&both, 0), IMPAIR_HOLD | IMPAIR_DUP);
  assert_int_equal(impair_decide(&both, 1), IMPAIR_SEND | IMPAIR_DUP);
  assert_int_equal(both.duplicated, 2);
}

typedef struct freq_case {
  const char *what;
  double loss, dup, reorder;
  uint64_t seed;
} freq_case;

/* |count - n p| must stay within 5 standard deviations of a binomial(n, p). */
static void assert_binomial(const char *what, uint64_t count, uint64_t n, double p) {
  double mean = (double)n * p;
  double sd = sqrt((double)n * p * (1 - p));
  uint64_t lo = mean - 5 * sd > 0 ? (uint64_t)floor(mean - 5 * sd) : 0;
  uint64_t hi = (uint64_t)ceil(mean + 5 * sd);
  print_message("%s: %llu of %llu (expected %.1f +- %.1f)\n", what, (unsigned long long)count,
                (unsigned long long)n, mean, sd);
  assert_in_range(count, lo, hi);
}

/* Over 100,000 decisions each kind happens with its probability: drops among all records,
 * copies and holds among the records that survive (a dropped record draws nothing more). No
 * record is held at the time of each decision, so every survivor may be held. The counters agree
 * with the decisions returned. */
static void test_frequencies_match_probabilities(void **state) {
  (void)state;
  static const freq_case cases[] = {
      {"loss only", 0.1, 0, 0, 1},        {"dup only", 0, 0.02, 0, 2},
      {"reorder only", 0, 0, 0.05, 3},    {"rare loss", 0.001, 0, 0, 4},
      {"all three", 0.1, 0.02, 0.05, 42}, {"all three, heavy", 0.5, 0.5, 0.5, 5},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    impair im = make_impair(cases[c].loss, cases[c].dup, cases[c].reorder, cases[c].seed);
    uint64_t drops = 0, dups = 0, holds = 0;
    print_message("%s\n", cases[c].what);
    for (int i = 0; i < DECISIONS; i++) {
      int a = impair_decide(&im, 0);
      drops += (a & IMPAIR_DROP) != 0;
      dups += (a & IMPAIR_DUP) != 0;
      holds += (a & IMPAIR_HOLD) != 0;
    }
    assert_binomial("dropped", drops, DECISIONS, cases[c].loss);
    assert_binomial("duplicated", dups, DECISIONS - drops, cases[c].dup);
    assert_binomial("held", holds, DECISIONS - drops, cases[c].reorder);
    assert_int_equal(im.dropped, drops);
    assert_int_equal(im.duplicated, dups);
  }
}

/* Holding a record back does not by itself count it as reordered: only the caller's report,
 * made when a later record has really gone out before it, does. */
static void test_hold_is_not_counted_as_reordered(void **state) {
  (void)state;
  impair im = make_impair(0, 0, 1.0, 9);
  assert_int_equal(impair_decide(&im, 0), IMPAIR_HOLD);
  assert_int_equal(im.reordered, 0);
  impair_note_reordered(&im);
  assert_int_equal(im.reordered, 1);
}

/* reorder=1 over 5 records: 1 held, 2 sent, then 1; 3 held, 4, 3; 5 held, and still held at the
 * end, so it goes last with nothing later before it: two records reordered, not three. */
static void test_record_held_to_the_end_is_not_reordered(void **state) {
  (void)state;
  static const uint64_t expect[] = {2, 1, 4, 3, 5};
  impair im = make_impair(0, 0, 1.0, 9);
  wire_order w = run_producer_model(&im, 5);
  assert_int_equal(w.n, 5);
  for (size_t i = 0; i < 5; i++) {
    assert_int_equal(w.seq[i], expect[i]);
  }
  assert_int_equal(im.reordered, 2);
  assert_int_equal(consumer_counts(&w, 5).reordered, 2);
  wire_order_free(&w);
}

typedef struct truth_case {
  double loss, dup, reorder;
  uint64_t records, seed;
} truth_case;

/* The ground truth equals what a consumer counts from the wire: dropped = lost, duplicated =
 * duplicates, reordered = records that arrived after a higher one. This covers a held record
 * whose next records are dropped (it waits for the next one sent), a held record that is also
 * copied, and runs that end with a record held. */
static void test_ground_truth_equals_consumer_counts(void **state) {
  (void)state;
  static const truth_case cases[] = {
      {0.1, 0.02, 0.05, DECISIONS, 42}, {0.5, 0.5, 0.5, DECISIONS, 1},
      {0.9, 0.1, 0.9, 10000, 2},        {0, 0, 1.0, 1001, 3},
      {0, 1.0, 1.0, 1000, 4},           {0.3, 0, 0.3, 7, 5},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    for (uint64_t s = 0; s < 20; s++) {
      impair im = make_impair(cases[c].loss, cases[c].dup, cases[c].reorder, cases[c].seed + s);
      wire_order w = run_producer_model(&im, cases[c].records);
      observed o = consumer_counts(&w, cases[c].records);
      print_message("loss=%g,dup=%g,reorder=%g,seed=%llu over %llu records\n", cases[c].loss,
                    cases[c].dup, cases[c].reorder, (unsigned long long)(cases[c].seed + s),
                    (unsigned long long)cases[c].records);
      assert_int_equal(im.dropped, o.lost);
      assert_int_equal(im.duplicated, o.duplicates);
      assert_int_equal(im.reordered, o.reordered);
      wire_order_free(&w);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_valid_forms),
      cmocka_unit_test(test_parse_bad_forms_name_the_part),
      cmocka_unit_test(test_same_seed_same_decisions),
      cmocka_unit_test(test_other_seed_other_decisions),
      cmocka_unit_test(test_loss_one_drops_everything),
      cmocka_unit_test(test_all_zero_changes_nothing),
      cmocka_unit_test(test_hold_only_when_none_is_held),
      cmocka_unit_test(test_frequencies_match_probabilities),
      cmocka_unit_test(test_hold_is_not_counted_as_reordered),
      cmocka_unit_test(test_record_held_to_the_end_is_not_reordered),
      cmocka_unit_test(test_ground_truth_equals_consumer_counts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
