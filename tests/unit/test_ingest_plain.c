/* test_ingest_plain.c -- ingest's entry points for plain CSV (unsequenced streams) without
 * sockets: a stream made with its header, records numbered in arrival order and counted as
 * received and bytes only, the protocols kept apart, --max-records, a failing sink, the stream
 * cap, the end of a stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "ingest.h"
#include "sinks.h"
#include "streams.h"

/* A sink that keeps the sequence numbers it was handed and fails on request. */
typedef struct plain_fake {
  size_t n;
  uint64_t seq[16];
  uint64_t sent_us[16];
  int fail_at; /* the add that fails (1-based), 0: never */
} plain_fake;

static plain_fake fake;

static int fake_open(void **self, const consumer_options *opt, const sink_env *env) {
  (void)opt;
  (void)env;
  *self = &fake;
  return 0;
}

static int fake_add(void *self, const sink_record *r) {
  plain_fake *k = self;
  if (k->fail_at != 0 && (int)k->n + 1 == k->fail_at) {
    return CS_EIO;
  }
  if (k->n < 16) {
    k->seq[k->n] = r->seq;
    k->sent_us[k->n] = r->sent_us;
  }
  k->n++;
  return 0;
}

static int fake_close(void *self, int discard) {
  (void)self;
  (void)discard;
  return 0;
}

static const sink_ops fake_ops = {
    .name = "fake", .open = fake_open, .add = fake_add, .close = fake_close};

typedef struct fixture {
  consumer_options opt;
  streams table;
  sinks *sinks;
  ingest in;
  struct sockaddr_in addr;
  ingest_peer tcp, udp;
} fixture;

static int setup_with(void **state, uint64_t max_records) {
  fixture *f = calloc(1, sizeof(*f));
  const sink_ops *ops[1] = {&fake_ops};
  if (f == NULL) {
    return -1;
  }
  memset(&fake, 0, sizeof(fake));
  f->opt.max_records = max_records;
  f->opt.quiet = 1;
  f->opt.max_memory = 1ull << 30; /* the table's own limit comes first here */
  streams_init(&f->table);
  if (sinks_open_these(&f->sinks, ops, 1, &f->opt) != 0) {
    free(f);
    return -1;
  }
  ingest_init(&f->in, &f->table, f->sinks, &f->opt);
  f->addr.sin_family = AF_INET;
  f->addr.sin_port = htons(40512);
  f->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ingest_peer_init(&f->tcp, STREAM_PLAIN_TCP, (struct sockaddr *)&f->addr);
  ingest_peer_init(&f->udp, STREAM_PLAIN_UDP, (struct sockaddr *)&f->addr);
  *state = f;
  return 0;
}

static int setup(void **state) {
  return setup_with(state, 0);
}

static int setup_max2(void **state) {
  return setup_with(state, 2);
}

static int teardown(void **state) {
  fixture *f = *state;
  sinks_close(f->sinks);
  streams_free(&f->table);
  free(f);
  return 0;
}

#define F(s)                                                                                       \
  { s, sizeof(s) - 1 }

/* A stream with a header; three records numbered 1, 2, 3 with no send time; received and
 * bytes counted, nothing lost. */
static void test_records_numbered_in_arrival_order(void **state) {
  fixture *f = *state;
  cs_field header[2] = {F("a"), F("b")}, rec[2] = {F("1"), F("22")};
  stream *e;
  stats_counts t;
  assert_int_equal(ingest_plain_stream(&f->in, &f->tcp, 1, "s", 1, header, 2, &e), 0);
  assert_non_null(e);
  assert_int_equal(e->sink.ncolumns, 2);
  assert_string_equal(e->sink.protocol, "plain-tcp");
  for (int i = 0; i < 3; i++) {
    assert_int_equal(ingest_plain_record(&f->in, &f->tcp, e, rec, 2, 5, 1000 + i), 0);
  }
  assert_int_equal(fake.n, 3);
  assert_int_equal(fake.seq[0], 1);
  assert_int_equal(fake.seq[2], 3);
  assert_int_equal(fake.sent_us[1], 0);
  assert_int_equal(e->stats.c.received, 3);
  assert_int_equal(e->stats.c.bytes, 15);
  assert_int_equal(stats_stream_lost(&e->stats), 0);
  assert_int_equal(e->stats.c.latency.count, 0);
  streams_totals(&f->table, STREAM_PLAIN_TCP, &t);
  assert_int_equal(t.received, 3);
  assert_int_equal(streams_of(&f->table, STREAM_TCP), 0);
  assert_false(stream_proto_sequenced(STREAM_PLAIN_TCP));
  assert_true(stream_proto_sequenced(STREAM_UDP));
  assert_int_equal(f->in.delivered, 3);
}

/* The same key finds the same stream; another protocol or id is another stream. */
static void test_streams_kept_apart(void **state) {
  fixture *f = *state;
  stream *a, *b, *c, *d;
  assert_int_equal(ingest_plain_stream(&f->in, &f->udp, 0, "p", 1, NULL, 0, &a), 0);
  assert_int_equal(ingest_plain_stream(&f->in, &f->udp, 0, "p", 1, NULL, 0, &b), 0);
  assert_ptr_equal(a, b);
  assert_int_equal(a->sink.ncolumns, 0);
  assert_int_equal(ingest_plain_stream(&f->in, &f->tcp, 0, "p", 1, NULL, 0, &c), 0);
  assert_int_equal(ingest_plain_stream(&f->in, &f->tcp, 7, "p", 1, NULL, 0, &d), 0);
  assert_ptr_not_equal(a, c);
  assert_ptr_not_equal(c, d);
  assert_int_equal(streams_of(&f->table, STREAM_PLAIN_UDP), 1);
  assert_int_equal(streams_of(&f->table, STREAM_PLAIN_TCP), 2);
  ingest_plain_end(&f->in, &f->tcp, c);
  assert_true(c->ended);
  assert_true(c->sink.ended);
  ingest_plain_end(&f->in, &f->tcp, NULL); /* a connection that never made its stream */
}

/* --max-records 2: the second record stops, the third is not taken. */
static void test_max_records(void **state) {
  fixture *f = *state;
  cs_field rec[1] = {F("x")};
  stream *e;
  assert_int_equal(ingest_plain_stream(&f->in, &f->udp, 0, "m", 1, NULL, 0, &e), 0);
  assert_int_equal(ingest_plain_record(&f->in, &f->udp, e, rec, 1, 2, 1), 0);
  assert_int_equal(ingest_plain_record(&f->in, &f->udp, e, rec, 1, 2, 2), CS_ESTOP);
  assert_int_equal(ingest_exit_code(&f->in), 0);
  assert_int_equal(ingest_plain_record(&f->in, &f->udp, e, rec, 1, 2, 3), CS_ESTOP);
  assert_int_equal(fake.n, 2);
}

/* A sink that fails stops the consumer with exit code 1. */
static void test_sink_failure_stops(void **state) {
  fixture *f = *state;
  cs_field rec[1] = {F("x")};
  stream *e;
  fake.fail_at = 2;
  assert_int_equal(ingest_plain_stream(&f->in, &f->udp, 0, "f", 1, NULL, 0, &e), 0);
  assert_int_equal(ingest_plain_record(&f->in, &f->udp, e, rec, 1, 2, 1), 0);
  assert_int_equal(ingest_plain_record(&f->in, &f->udp, e, rec, 1, 2, 2), CS_ESTOP);
  assert_int_equal(ingest_exit_code(&f->in), 1);
  stream *g;
  assert_int_equal(ingest_plain_stream(&f->in, &f->udp, 0, "g", 1, NULL, 0, &g), CS_ESTOP);
}

/* The stream table's cap refuses a new plain stream with a reason, and so does the memory
 * budget, whichever comes first. */
static void test_stream_cap(void **state) {
  fixture *f = *state;
  char name[16];
  stream *e;
  for (int i = 0; i < STREAMS_MAX; i++) {
    snprintf(name, sizeof name, "s%d", i);
    assert_int_equal(
        ingest_plain_stream(&f->in, &f->tcp, (uint64_t)i, name, strlen(name), NULL, 0, &e), 0);
  }
  assert_int_equal(ingest_plain_stream(&f->in, &f->tcp, 99999, "more", 4, NULL, 0, &e),
                   CS_EREFUSED);
  assert_null(e);
  assert_non_null(strstr(ingest_error(&f->in), "limit of 16384 streams"));
  f->in.max_memory = f->table.bytes; /* now full: the budget says so */
  f->table.n--;                      /* (as if one had been retired) */
  assert_int_equal(ingest_plain_stream(&f->in, &f->tcp, 99999, "more", 4, NULL, 0, &e),
                   CS_EREFUSED);
  assert_non_null(strstr(ingest_error(&f->in), "memory budget"));
  f->table.n++;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_records_numbered_in_arrival_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_streams_kept_apart, setup, teardown),
      cmocka_unit_test_setup_teardown(test_max_records, setup_max2, teardown),
      cmocka_unit_test_setup_teardown(test_sink_failure_stops, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stream_cap, setup, teardown),
  };
  return cmocka_run_group_tests_name("ingest_plain", tests, NULL, NULL);
}
