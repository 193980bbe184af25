/* test_stats.c -- unit tests for consumer/stats.c: sequence accounting, the latency
 * histogram, jitter, summing, the JSON members and the kernel drop counter. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "json.h"
#include "seqwin.h"
#include "stats.h"

/* A stream's accounting and its sequence window, as the consumer keeps them. The stats come
 * first, so the tests hold a stats_stream pointer and arrival() finds the window beside it. */
typedef struct stream_pair {
  stats_stream stats;
  seqwin win;
} stream_pair;

/* Set up both halves; 0, or -1 with nothing left allocated. */
static int pair_init(stream_pair *p) {
  if (stats_stream_init(&p->stats) != 0) {
    return -1;
  }
  if (seqwin_init(&p->win) != 0) {
    stats_stream_free(&p->stats);
    return -1;
  }
  return 0;
}

static void pair_free(stream_pair *p) {
  seqwin_free(&p->win);
  stats_stream_free(&p->stats);
}

/* A fresh stream per test, freed by the teardown. */
static int stream_setup(void **state) {
  stream_pair *p = malloc(sizeof *p);
  if (p == NULL || pair_init(p) != 0) {
    free(p);
    return -1;
  }
  *state = &p->stats;
  return 0;
}

static int stream_teardown(void **state) {
  stream_pair *p = (stream_pair *)*state;
  pair_free(p);
  free(p);
  return 0;
}

/* One RECORD arrival the way the consumer handles it: the window's verdict, then the stats
 * observe it. s must be the stats of a stream_pair. Returns 1 for a first copy (store it). */
static int arrival(stats_stream *s, uint64_t seq, uint64_t sent_us, uint64_t recv_us,
                   size_t frame_bytes) {
  stream_pair *p = (stream_pair *)s;
  int verdict = seqwin_mark(&p->win, seq);
  stats_stream_observe(s, verdict, seq, sent_us, recv_us, frame_bytes);
  return seqwin_is_new(verdict);
}

/* Deliver seq with a fixed 100 µs transit; returns what arrival returned. */
static int arrive(stats_stream *s, uint64_t seq) {
  uint64_t sent = 1000000 + seq * 1000;
  return arrival(s, seq, sent, sent + 100, 50);
}

static void test_in_order_counts_every_record_once(void **state) {
  stats_stream *s = *state;
  for (uint64_t seq = 1; seq <= 100; seq++) {
    assert_int_equal(arrive(s, seq), 1);
  }
  assert_int_equal(s->c.received, 100);
  assert_int_equal(stats_stream_lost(s), 0);
  assert_int_equal(s->c.duplicates, 0);
  assert_int_equal(s->c.reordered, 0);
  assert_int_equal(s->c.bytes, 100 * 50);
  assert_int_equal(s->max_seq, 100);
}

static void test_gap_counts_lost(void **state) {
  stats_stream *s = *state;
  arrive(s, 1);
  arrive(s, 2);
  arrive(s, 5);
  assert_int_equal(s->c.received, 3);
  assert_int_equal(stats_stream_lost(s), 2);
  assert_int_equal(s->c.reordered, 0);
}

static void test_trailing_loss_counted_from_end(void **state) {
  stats_stream *s = *state;
  arrive(s, 1);
  arrive(s, 2);
  arrive(s, 3);
  assert_int_equal(stats_stream_lost(s), 0);
  stats_stream_end(s, 6);
  assert_int_equal(s->c.lost, 3);
  assert_int_equal(stats_stream_lost(s), 3);
}

static void test_end_with_no_records_counts_all_lost(void **state) {
  stats_stream *s = *state;
  stats_stream_end(s, 4);
  assert_int_equal(s->c.received, 0);
  assert_int_equal(stats_stream_lost(s), 4);
}

static void test_duplicates_neither_reordered_nor_reduce_loss(void **state) {
  stats_stream *s = *state;
  assert_int_equal(arrive(s, 1), 1);
  assert_int_equal(arrive(s, 3), 1);
  assert_int_equal(arrive(s, 3), 0);
  assert_int_equal(arrive(s, 1), 0); /* an old duplicate, after a higher seq */
  assert_int_equal(s->c.received, 2);
  assert_int_equal(s->c.duplicates, 2);
  assert_int_equal(s->c.reordered, 0);
  assert_int_equal(stats_stream_lost(s), 1);
  assert_int_equal(s->c.bytes, 4 * 50); /* duplicates' bytes are counted */
}

static void test_reorder_two_one_counts_one(void **state) {
  stats_stream *s = *state;
  assert_int_equal(arrive(s, 2), 1);
  assert_int_equal(arrive(s, 1), 1);
  assert_int_equal(s->c.received, 2);
  assert_int_equal(s->c.reordered, 1);
  assert_int_equal(s->c.duplicates, 0);
  assert_int_equal(stats_stream_lost(s), 0);
}

static void test_duplicate_of_reordered_record(void **state) {
  stats_stream *s = *state;
  arrive(s, 2);
  arrive(s, 1);
  assert_int_equal(arrive(s, 1), 0);
  assert_int_equal(s->c.received, 2);
  assert_int_equal(s->c.reordered, 1);
  assert_int_equal(s->c.duplicates, 1);
  assert_int_equal(stats_stream_lost(s), 0);
}

static void test_end_repeated_counts_once(void **state) {
  stats_stream *s = *state;
  arrive(s, 1);
  arrive(s, 2);
  stats_stream_end(s, 5);
  stats_stream_end(s, 5);
  stats_stream_end(s, 5);
  assert_int_equal(stats_stream_lost(s), 3);
  assert_int_equal(s->announced_seq, 5);
  /* A stale, smaller END (say, from a delayed datagram) does not shrink the stream. */
  stats_stream_end(s, 1);
  assert_int_equal(stats_stream_lost(s), 3);
  assert_int_equal(s->c.received, 2);
}

static void test_end_below_highest_received_keeps_highest(void **state) {
  stats_stream *s = *state;
  arrive(s, 1);
  arrive(s, 4);
  stats_stream_end(s, 2);
  assert_int_equal(stats_stream_lost(s), 2);
}

/* Over more than two windows' worth of numbers, with gaps and swapped pairs throughout, the
 * counts stay exact: a bit left over from a number that slid out never looks like a
 * duplicate, and a number still inside the window is still recognised. */
static void test_window_slide_keeps_exact_counts(void **state) {
  stats_stream *s = *state;
  const uint64_t n = 2 * (uint64_t)STATS_SEQ_WINDOW + 12345;
  uint64_t skipped = 0, swapped = 0, dup_sent = 0;
  for (uint64_t seq = 1; seq <= n; seq++) {
    if (seq % 1000 == 0) {
      skipped++;
      continue;
    }
    if (seq % 777 == 0 && seq + 1 <= n && (seq + 1) % 1000 != 0) {
      assert_int_equal(arrive(s, seq + 1), 1);
      assert_int_equal(arrive(s, seq), 1);
      swapped++;
      seq++;
      continue;
    }
    assert_int_equal(arrive(s, seq), 1);
    if (seq % 4099 == 0) {
      assert_int_equal(arrive(s, seq), 0);
      dup_sent++;
    }
  }
  assert_int_equal(s->c.received, n - skipped);
  assert_int_equal(stats_stream_lost(s), skipped);
  assert_int_equal(s->c.reordered, swapped);
  assert_int_equal(s->c.duplicates, dup_sent);
  assert_int_equal(s->too_late, 0);
}

static void test_window_slide_clears_reused_bits(void **state) {
  stats_stream *s = *state;
  const uint64_t w = STATS_SEQ_WINDOW;
  assert_int_equal(arrive(s, 5), 1);
  /* 5 + w shares 5's bit; it must count as new. */
  assert_int_equal(arrive(s, 5 + w), 1);
  /* Still inside the window [6, w + 5], never seen: new and reordered. */
  assert_int_equal(arrive(s, w + 3), 1);
  assert_int_equal(arrive(s, w + 3), 0);
  /* A jump far past the whole window clears everything. */
  assert_int_equal(arrive(s, 10 * w), 1);
  assert_int_equal(arrive(s, 10 * w - 1), 1);
  assert_int_equal(s->c.received, 5);
  assert_int_equal(s->c.duplicates, 1);
  assert_int_equal(s->c.reordered, 2);
  assert_int_equal(stats_stream_lost(s), 10 * w - 5);
}

/* The bitmap starts small and grows with the highest sequence number: records seen before a
 * growth are still known afterwards, and reordering across a growth is still exact. */
static void test_bitmap_growth_keeps_exact_counts(void **state) {
  stats_stream *s = *state;
  assert_int_equal(arrive(s, 1), 1);
  assert_int_equal(arrive(s, 1000), 1);
  assert_int_equal(arrive(s, 5000), 1); /* grows past the first width */
  assert_int_equal(arrive(s, 1), 0);    /* still known: a duplicate */
  assert_int_equal(arrive(s, 1000), 0);
  assert_int_equal(arrive(s, 3), 1); /* new, below the highest: reordered, not too late */
  assert_int_equal(arrive(s, 700000), 1);
  assert_int_equal(arrive(s, 5000), 0);
  assert_int_equal(arrive(s, 4999), 1);
  for (uint64_t seq = 700002; seq <= 700000 + 3000; seq += 2) {
    assert_int_equal(arrive(s, seq), 1);
    assert_int_equal(arrive(s, seq - 1), 1);
  }
  assert_int_equal(s->c.received, 6 + 3000);
  assert_int_equal(s->c.duplicates, 3);
  assert_int_equal(s->c.reordered, 2 + 1500);
  assert_int_equal(s->too_late, 0);
}

static void test_too_late_is_neither_received_nor_duplicate(void **state) {
  stats_stream *s = *state;
  const uint64_t w = STATS_SEQ_WINDOW;
  arrive(s, 1);
  arrive(s, w + 10); /* window is now [11, w + 10] */
  assert_int_equal(arrive(s, 5), 0);
  assert_int_equal(arrive(s, 1), 0);
  assert_int_equal(s->too_late, 2);
  assert_int_equal(s->c.received, 2);
  assert_int_equal(s->c.duplicates, 0);
  assert_int_equal(s->c.reordered, 0);
  /* The lowest number still inside the window is tracked normally. */
  assert_int_equal(arrive(s, 11), 1);
  assert_int_equal(s->c.reordered, 1);
  assert_int_equal(stats_stream_lost(s), w + 10 - 3);
}

/* Compare every percentile against the nearest-rank value of a sorted copy: the histogram
 * answer is never below the truth and at most 1/16 above it. */
static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void test_hist_percentiles_within_bound_of_oracle(void **state) {
  (void)state;
  enum { N = 100000 };
  uint64_t *values = malloc(N * sizeof *values);
  stats_hist *h = calloc(1, sizeof *h);
  assert_non_null(values);
  assert_non_null(h);
  srand(12345);
  for (size_t i = 0; i < N; i++) {
    /* Spread over 1 µs .. about 17 s: a random magnitude, then a random value under it. */
    uint64_t magnitude = (uint64_t)1 << (rand() % 25);
    uint64_t v = ((uint64_t)rand() * 2654435761u) % (magnitude * 2);
    values[i] = v;
    stats_hist_add(h, v);
  }
  qsort(values, N, sizeof *values, cmp_u64);
  assert_int_equal(h->count, N);
  assert_int_equal(h->max, values[N - 1]);
  const double ps[] = {0.1, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100};
  for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
    double exact = ps[k] / 100.0 * N;
    size_t rank = (size_t)exact;
    if ((double)rank < exact) {
      rank++;
    }
    uint64_t truth = values[rank - 1];
    uint64_t got = stats_hist_percentile(h, ps[k]);
    if (got < truth || (double)(got - truth) >= (double)truth / 16.0 + (truth < 16 ? 1 : 0)) {
      fail_msg("p%g: histogram %llu, sorted array %llu", ps[k], (unsigned long long)got,
               (unsigned long long)truth);
    }
  }
  free(values);
  free(h);
}

static void test_hist_small_values_exact_and_capped_at_max(void **state) {
  (void)state;
  stats_hist h;
  memset(&h, 0, sizeof h);
  assert_int_equal(stats_hist_percentile(&h, 50), 0);
  for (uint64_t v = 0; v < 16; v++) {
    stats_hist_add(&h, v);
  }
  assert_int_equal(stats_hist_percentile(&h, 50), 7);
  assert_int_equal(stats_hist_percentile(&h, 100), 15);
  stats_hist_add(&h, 1000); /* bucket [992, 1023]: the answer is capped at 1000 */
  assert_int_equal(stats_hist_percentile(&h, 100), 1000);
  assert_int_equal(h.max, 1000);
}

static void test_hist_merge_adds_counts(void **state) {
  (void)state;
  stats_hist *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
  assert_non_null(a);
  assert_non_null(b);
  for (int i = 0; i < 99; i++) {
    stats_hist_add(a, 10);
  }
  stats_hist_add(b, 5000);
  stats_hist_merge(a, b);
  assert_int_equal(a->count, 100);
  assert_int_equal(a->max, 5000);
  assert_int_equal(stats_hist_percentile(a, 99), 10);
  assert_int_equal(stats_hist_percentile(a, 100), 5000);
  free(a);
  free(b);
}

static void test_latency_negative_clamps_to_zero(void **state) {
  stats_stream *s = *state;
  arrival(s, 1, 2000, 1000, 10); /* receive before send: clock skew */
  assert_int_equal(s->c.latency.count, 1);
  assert_int_equal(s->c.latency.max, 0);
  assert_int_equal(stats_hist_percentile(&s->c.latency, 50), 0);
}

static void test_jitter_of_constant_transit_is_zero(void **state) {
  stats_stream *s = *state;
  for (uint64_t seq = 1; seq <= 1000; seq++) {
    /* Irregular send times, always 750 µs in transit. */
    uint64_t sent = 5000000 + seq * seq * 37;
    arrival(s, seq, sent, sent + 750, 10);
  }
  assert_true(s->c.jitter_us == 0.0);
  assert_int_equal(stats_hist_percentile(&s->c.latency, 99), 750);
}

static void test_jitter_follows_rfc3550_filter(void **state) {
  stats_stream *s = *state;
  /* Transit alternates 0 and 1600 µs, so |D| = 1600 each time after the first. */
  double expect = 0;
  for (uint64_t seq = 1; seq <= 40; seq++) {
    uint64_t sent = 1000000 + seq * 10000;
    arrival(s, seq, sent, sent + (seq % 2 ? 0 : 1600), 10);
    if (seq > 1) {
      expect += (1600.0 - expect) / 16.0;
    }
  }
  assert_true(s->c.jitter_us > 1000.0);
  assert_true(s->c.jitter_us > expect - 1e-6 && s->c.jitter_us < expect + 1e-6);
  /* A duplicate does not move the jitter. */
  double before = s->c.jitter_us;
  arrival(s, 40, 0, 99999999, 10);
  assert_true(s->c.jitter_us == before);
}

static void test_jitter_survives_hostile_send_times(void **state) {
  stats_stream *s = *state;
  /* Transits of about -2^63 and +2^50 one after the other: their difference does not fit an
   * int64_t (undefined behaviour, caught by -DCSVSTREAM_UBSAN=ON). */
  uint64_t recv = 1700000000000000ull;
  arrival(s, 1, recv + (1ull << 63), recv, 10);
  arrival(s, 2, recv - (1ull << 50), recv, 10);
  assert_int_equal(s->c.received, 2);
  assert_true(s->c.jitter_us > 5e17 && s->c.jitter_us < 6e17); /* (2^63 + 2^50) / 16 */
}

static void test_counts_add_sums_and_weights_jitter(void **state) {
  (void)state;
  stream_pair pa, pb;
  stats_stream *a = &pa.stats, *b = &pb.stats;
  assert_int_equal(pair_init(&pa), 0);
  assert_int_equal(pair_init(&pb), 0);
  for (uint64_t seq = 1; seq <= 3; seq++) {
    arrival(a, seq, 100 + seq, 2000000 + seq * 1000000, 7);
  }
  arrival(b, 2, 0, 1000000, 9);
  arrival(b, 2, 0, 1500000, 9);
  a->c.jitter_us = 10.0; /* set by hand to check the weighting */
  b->c.jitter_us = 40.0;
  stats_stream_lost(a);
  stats_stream_lost(b);
  stats_counts total;
  stats_counts_init(&total);
  stats_counts_add(&total, &a->c);
  stats_counts_add(&total, &b->c);
  assert_int_equal(total.received, 4);
  assert_int_equal(total.lost, 1);
  assert_int_equal(total.duplicates, 1);
  assert_int_equal(total.bytes, 3 * 7 + 2 * 9);
  assert_int_equal(total.streams, 2);
  assert_int_equal(total.first_us, 1000000);
  assert_int_equal(total.last_us, 5000000);
  assert_int_equal(total.latency.count, 4);
  assert_true(total.jitter_us > 17.5 - 1e-9 && total.jitter_us < 17.5 + 1e-9);
  /* 4 records over 4 s: 3 intervals. */
  assert_true(stats_counts_rate(&total) > 0.75 - 1e-9 && stats_counts_rate(&total) < 0.75 + 1e-9);
  pair_free(&pa);
  pair_free(&pb);
}

static void test_rate_zero_with_fewer_than_two(void **state) {
  stats_stream *s = *state;
  assert_true(stats_counts_rate(&s->c) == 0.0);
  arrive(s, 1);
  assert_true(stats_counts_rate(&s->c) == 0.0);
  arrive(s, 2); /* 1 ms later: arrive() spaces records 1000 µs apart */
  assert_true(stats_counts_rate(&s->c) > 999.0 && stats_counts_rate(&s->c) < 1001.0);
}

static void test_counts_json_has_every_member(void **state) {
  stats_stream *s = *state;
  arrive(s, 1);
  arrive(s, 3);
  arrive(s, 3);
  stats_stream_lost(s);
  json_out j;
  json_init(&j);
  json_object_begin(&j, NULL);
  stats_counts_json(&j, &s->c);
  json_object_end(&j);
  assert_int_equal(j.failed, 0);
  assert_non_null(j.buf.data);
  char *doc = strndup(j.buf.data, j.buf.len);
  assert_non_null(doc);
  const char *expect[] = {
      "\"received\":2", "\"lost\":1",         "\"duplicates\":1", "\"reordered\":0",
      "\"bytes\":150",  "\"records_per_s\":", "\"latency_us\":{", "\"p50\":100",
      "\"p99\":100",    "\"max\":100",        "\"jitter_us\":"};
  /* Compare with whitespace removed, whatever the writer's layout. */
  char *w = doc;
  for (char *r = doc; *r; r++) {
    if (*r != ' ' && *r != '\n' && *r != '\t') {
      *w++ = *r;
    }
  }
  *w = '\0';
  for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
    if (strstr(doc, expect[i]) == NULL) {
      fail_msg("missing %s in %s", expect[i], doc);
    }
  }
  free(doc);
  json_free(&j);
}

/* A real UDP socket with a tiny receive buffer, flooded without reading: the kernel drops. */
static void test_kernel_drops_on_overflowed_socket(void **state) {
  (void)state;
  int rx = socket(AF_INET, SOCK_DGRAM, 0);
  int tx = socket(AF_INET, SOCK_DGRAM, 0);
  assert_true(rx >= 0);
  assert_true(tx >= 0);
  int small = 1024;
  assert_int_equal(setsockopt(rx, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(rx, (struct sockaddr *)&addr, sizeof addr), 0);
  socklen_t alen = sizeof addr;
  assert_int_equal(getsockname(rx, (struct sockaddr *)&addr, &alen), 0);

  uint64_t drops = 12345;
  assert_int_equal(stats_udp_kernel_drops(rx, &drops), 0);
  assert_int_equal(drops, 0);

  char payload[1000];
  memset(payload, 'x', sizeof payload);
  int sent = 0;
  for (int i = 0; i < 500; i++) {
    ssize_t n = sendto(tx, payload, sizeof payload, 0, (struct sockaddr *)&addr, sizeof addr);
    if (n == (ssize_t)sizeof payload) {
      sent++;
    }
  }
  assert_true(sent > 100);
  assert_int_equal(stats_udp_kernel_drops(rx, &drops), 0);
  if (drops == 0) {
    fail_msg("sent %d datagrams into a %d-byte buffer but the kernel reports no drops", sent,
             small);
  }
  assert_true(drops < (uint64_t)sent);
  close(rx);
  close(tx);
}

static void test_kernel_drops_refuses_non_socket(void **state) {
  (void)state;
  uint64_t drops = 0;
  assert_int_equal(stats_udp_kernel_drops(-1, &drops), -EBADF);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  assert_int_equal(stats_udp_kernel_drops(fds[0], &drops), -ENOTSOCK);
  close(fds[0]);
  close(fds[1]);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, stream_setup, stream_teardown)
  const struct CMUnitTest tests[] = {
      T(test_in_order_counts_every_record_once),
      T(test_gap_counts_lost),
      T(test_trailing_loss_counted_from_end),
      T(test_end_with_no_records_counts_all_lost),
      T(test_duplicates_neither_reordered_nor_reduce_loss),
      T(test_reorder_two_one_counts_one),
      T(test_duplicate_of_reordered_record),
      T(test_end_repeated_counts_once),
      T(test_end_below_highest_received_keeps_highest),
      T(test_window_slide_keeps_exact_counts),
      T(test_window_slide_clears_reused_bits),
      T(test_bitmap_growth_keeps_exact_counts),
      T(test_too_late_is_neither_received_nor_duplicate),
      cmocka_unit_test(test_hist_percentiles_within_bound_of_oracle),
      cmocka_unit_test(test_hist_small_values_exact_and_capped_at_max),
      cmocka_unit_test(test_hist_merge_adds_counts),
      T(test_latency_negative_clamps_to_zero),
      T(test_jitter_of_constant_transit_is_zero),
      T(test_jitter_follows_rfc3550_filter),
      T(test_jitter_survives_hostile_send_times),
      cmocka_unit_test(test_counts_add_sums_and_weights_jitter),
      T(test_rate_zero_with_fewer_than_two),
      T(test_counts_json_has_every_member),
      cmocka_unit_test(test_kernel_drops_on_overflowed_socket),
      cmocka_unit_test(test_kernel_drops_refuses_non_socket),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
