/* test_colnames_many.c -- colnames_add against a plain oracle (every numbered name tried from
 * the first, against every name before it): the same names for headers of many equal, nearly
 * equal and case-folded names, under a byte-for-byte and a case-folding policy, cut or not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "colnames.h"

static int fold_compare(const char *a, const char *b) {
  for (;; a++, b++) {
    int x = *a >= 'A' && *a <= 'Z' ? *a + 32 : (unsigned char)*a;
    int y = *b >= 'A' && *b <= 'Z' ? *b + 32 : (unsigned char)*b;
    if (x != y || x == 0) {
      return x - y;
    }
  }
}

static void *plain_realloc(void *p, size_t n) {
  return realloc(p, n);
}

static const char *const reserved[] = {"_seq", "_peer", "ctid"};

/* The oracle: is cand reserved or among names[0..n)? */
static int oracle_taken(const colnames_policy *p, char *const *names, size_t n, const char *cand) {
  for (size_t i = 0; i < p->nreserved; i++) {
    if (p->compare(cand, p->reserved[i]) == 0) {
      return 1;
    }
  }
  for (size_t i = 0; i < n; i++) {
    if (p->compare(cand, names[i]) == 0) {
      return 1;
    }
  }
  return 0;
}

/* Add bases[0..n) both ways and compare every name. */
static void check_same(const colnames_policy *p, char **bases, size_t n) {
  colnames c;
  char **want = calloc(n, sizeof *want);
  assert_non_null(want);
  colnames_init(&c, p);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(0, colnames_add(&c, bases[i]));
    for (unsigned long k = 1;; k++) {
      char *cand = colnames_numbered(p, bases[i], k);
      assert_non_null(cand);
      if (!oracle_taken(p, want, i, cand)) {
        want[i] = cand;
        break;
      }
      free(cand);
    }
  }
  assert_int_equal(n, c.n);
  for (size_t i = 0; i < n; i++) {
    if (strcmp(want[i], c.names[i]) != 0) {
      fail_msg("name %zu of base '%s': want '%s', got '%s'", i, bases[i], want[i], c.names[i]);
    }
    free(want[i]);
  }
  free(want);
  colnames_free(&c);
}

static void run_policies(char **bases, size_t n) {
  int (*compares[])(const char *, const char *) = {strcmp, fold_compare};
  size_t limits[] = {0, 12};
  for (size_t a = 0; a < 2; a++) {
    for (size_t b = 0; b < 2; b++) {
      colnames_policy p = {compares[a],   limits[b], reserved, 3, COLNAMES_REPAIR_UNDERSCORE,
                           plain_realloc, free};
      check_same(&p, bases, n);
    }
  }
}

/* Thousands of one name (and of the reserved ones), then their numbered forms taken ahead. */
static void test_many_equal_names(void **state) {
  (void)state;
  enum { N = 600 };
  static const char *const pool[] = {"x", "X", "_seq", "x_2", "x_10", "ctid", "_SEQ_3"};
  char **bases = calloc(N, sizeof *bases);
  assert_non_null(bases);
  for (size_t i = 0; i < N; i++) {
    bases[i] = strdup(i < N / 2 ? "x" : pool[i % 7]);
    assert_non_null(bases[i]);
  }
  run_policies(bases, N);
  for (size_t i = 0; i < N; i++) {
    free(bases[i]);
  }
  free(bases);
}

/* Random headers from a small alphabet: short names, long names that the limit cuts to one,
 * names that look numbered. */
static void test_random_headers_match_the_oracle(void **state) {
  (void)state;
  static const char *const parts[] = {"a", "A", "b", "_2", "_3", "_", "longname", "LONGNAME"};
  uint64_t rng = 0x9e3779b97f4a7c15ull;
  for (int round = 0; round < 200; round++) {
    size_t n = 1 + round % 60;
    char **bases = calloc(n, sizeof *bases);
    assert_non_null(bases);
    for (size_t i = 0; i < n; i++) {
      char buf[64] = "";
      rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
      for (int k = 0; k < 1 + (int)(rng % 4); k++) {
        strcat(buf, parts[(rng >> (8 + 3 * k)) % 8]);
      }
      bases[i] = strdup(buf);
      assert_non_null(bases[i]);
    }
    run_policies(bases, n);
    for (size_t i = 0; i < n; i++) {
      free(bases[i]);
    }
    free(bases);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_many_equal_names),
      cmocka_unit_test(test_random_headers_match_the_oracle),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
