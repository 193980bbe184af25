/* test_ingest.c -- ingest without sockets: the protocol's rules, the first-copy verdict, the
 * stream cap, --max-records and sink failures, against a fake sink and the counting sink. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "error.h"
#include "ingest.h"
#include "log.h"
#include "sinks.h"
#include "streams.h"

/* ---- a fake sink: remembers what it was handed, fails on request ------------------------- */

#define FAKE_MAX 64
typedef struct fake_sink {
  size_t n;
  uint64_t seq[FAKE_MAX];
  char first_field[FAKE_MAX][32];
  const sink_stream *stream[FAKE_MAX];
  int fail_at; /* the add that fails with CS_EIO (1-based), 0: never */
  int closed;
} fake_sink;

static fake_sink fake; /* the one instance the fake sink's open hands out */

static int fake_open(void **self, const consumer_options *opt, const sink_env *env) {
  (void)opt;
  (void)env;
  *self = &fake;
  return 0;
}

static int fake_add(void *self, const sink_record *r) {
  fake_sink *k = self;
  if (k->fail_at != 0 && (int)k->n + 1 == k->fail_at) {
    return CS_EIO;
  }
  if (k->n < FAKE_MAX) {
    k->seq[k->n] = r->seq;
    snprintf(k->first_field[k->n], sizeof(k->first_field[0]), "%.*s",
             r->nfields > 0 ? (int)r->fields[0].len : 0, r->nfields > 0 ? r->fields[0].data : "");
    k->stream[k->n] = r->stream;
  }
  k->n++;
  return 0;
}

static int fake_close(void *self, int discard) {
  (void)discard;
  ((fake_sink *)self)->closed = 1;
  return 0;
}

static const sink_ops fake_ops = {
    .name = "fake", .open = fake_open, .add = fake_add, .close = fake_close};

/* ---- fixture: a table, the fake and the counting sink, ingest over them ------------------ */

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
  const sink_ops *ops[2];
  if (f == NULL) {
    return -1;
  }
  memset(&fake, 0, sizeof(fake));
  f->opt.max_records = max_records;
  f->opt.quiet = 1;
  f->opt.max_memory = 1ull << 30; /* the table's own limit comes first here */
  f->opt.stream_idle_us = CONSUMER_STREAM_IDLE_DEFAULT_S * 1000000ull;
  streams_init(&f->table);
  ops[0] = &fake_ops;
  ops[1] = sinks_find("count");
  if (ops[1] == NULL || sinks_open_these(&f->sinks, ops, 2, &f->opt) != 0) {
    free(f);
    return -1;
  }
  ingest_init(&f->in, &f->table, f->sinks, &f->opt);
  f->addr.sin_family = AF_INET;
  f->addr.sin_port = htons(40512);
  f->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ingest_peer_init(&f->tcp, STREAM_TCP, (struct sockaddr *)&f->addr);
  ingest_peer_init(&f->udp, STREAM_UDP, (struct sockaddr *)&f->addr);
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
  assert_int_equal(sinks_close(f->sinks), 0);
  assert_true(fake.closed);
  streams_free(&f->table);
  free(f);
  return 0;
}

/* A message of stream name from producer id; fields given as C strings. */
static wire_msg msg(int type, uint64_t id, const char *name, uint64_t seq, cs_field *fields,
                    size_t n) {
  wire_msg m;
  memset(&m, 0, sizeof(m));
  m.type = type;
  m.producer_id = id;
  m.seq = seq;
  m.sent_us = 1000;
  m.stream.data = name;
  m.stream.len = strlen(name);
  m.nfields = (uint32_t)n;
  m.fields = fields;
  m.frame_len = 40;
  return m;
}

static cs_field header[2] = {{"id", 2}, {"value", 5}};

static int hello(fixture *f, ingest_peer *p, uint64_t id, const char *name) {
  wire_msg m = msg(WIRE_HELLO, id, name, 0, header, 2);
  return ingest_msg(&f->in, p, &m, 2000);
}

static int record(fixture *f, ingest_peer *p, uint64_t id, const char *name, uint64_t seq) {
  char v[32];
  cs_field fields[2];
  wire_msg m;
  snprintf(v, sizeof(v), "r%llu", (unsigned long long)seq);
  fields[0].data = v;
  fields[0].len = strlen(v);
  fields[1].data = "x,\"y\"";
  fields[1].len = 5;
  m = msg(WIRE_RECORD, id, name, seq, fields, 2);
  return ingest_msg(&f->in, p, &m, 2000 + seq);
}

/* The JSON member "counted" the counting sink writes for a stream. */
static uint64_t counted(fixture *f, const stream *e) {
  json_out j;
  const char *at;
  unsigned long long n = 0;
  json_init(&j);
  json_object_begin(&j, NULL);
  sinks_report_stream_json(f->sinks, &e->sink, &j);
  json_object_end(&j);
  assert_int_equal(cs_buf_append(&j.buf, "", 1), 0);
  at = strstr(j.buf.data, "\"counted\":");
  assert_non_null(at);
  assert_int_equal(sscanf(at, "\"counted\":%llu", &n), 1);
  json_free(&j);
  return n;
}

/* ---- tests ------------------------------------------------------------------------------ */

/* A HELLO makes the stream; its records reach every sink in order, fields intact. */
static void test_records_reach_the_sinks_in_order(void **state) {
  fixture *f = *state;
  stream *e;
  assert_int_equal(hello(f, &f->tcp, 7, "s"), 0);
  assert_int_equal(record(f, &f->tcp, 7, "s", 1), 0);
  assert_int_equal(record(f, &f->tcp, 7, "s", 2), 0);
  assert_int_equal(record(f, &f->tcp, 7, "s", 3), 0);
  assert_int_equal(fake.n, 3);
  assert_int_equal(fake.seq[0], 1);
  assert_int_equal(fake.seq[2], 3);
  assert_string_equal(fake.first_field[1], "r2");
  e = streams_find(&f->table, STREAM_TCP, 7, "s", 1);
  assert_non_null(e);
  assert_ptr_equal(fake.stream[0], &e->sink);
  assert_int_equal(e->sink.ncolumns, 2);
  assert_int_equal(e->sink.columns[1].len, 5);
  assert_memory_equal(e->sink.columns[1].data, "value", 5);
  assert_string_equal(e->sink.peer, "127.0.0.1:40512");
  assert_int_equal(f->in.delivered, 3);
  assert_int_equal(f->tcp.records, 3);
  assert_int_equal(counted(f, e), 3);
}

/* A copy of a record already stored is counted, not stored again; a late first copy is. */
static void test_duplicates_are_not_stored_twice(void **state) {
  fixture *f = *state;
  stream *e;
  assert_int_equal(hello(f, &f->udp, 7, "s"), 0);
  assert_int_equal(record(f, &f->udp, 7, "s", 1), 0);
  assert_int_equal(record(f, &f->udp, 7, "s", 3), 0);
  assert_int_equal(record(f, &f->udp, 7, "s", 3), 0);
  assert_int_equal(record(f, &f->udp, 7, "s", 2), 0);
  assert_int_equal(record(f, &f->udp, 7, "s", 1), 0);
  assert_int_equal(fake.n, 3);
  assert_int_equal(fake.seq[2], 2);
  e = streams_find(&f->table, STREAM_UDP, 7, "s", 1);
  assert_non_null(e);
  assert_int_equal(e->stats.c.received, 3);
  assert_int_equal(e->stats.c.duplicates, 2);
  assert_int_equal(e->stats.c.reordered, 1);
  assert_int_equal(counted(f, e), 3);
}

/* Over TCP a record before its connection's HELLO breaks the protocol; the error says so. */
static void test_record_before_hello_is_a_protocol_error(void **state) {
  fixture *f = *state;
  ingest_peer other;
  assert_int_equal(record(f, &f->tcp, 7, "s", 1), CS_EPROTO);
  assert_string_equal(ingest_error(&f->in), "record #1 of stream s before its hello");
  /* The stream known from another connection is not enough: this one sent no HELLO. */
  ingest_peer_init(&other, STREAM_TCP, (struct sockaddr *)&f->addr);
  assert_int_equal(hello(f, &other, 7, "s"), 0);
  assert_int_equal(record(f, &f->tcp, 7, "s", 1), CS_EPROTO);
  assert_int_equal(record(f, &other, 7, "s", 1), 0);
  /* Over UDP each datagram stands alone: a known stream is enough. */
  assert_int_equal(hello(f, &f->udp, 9, "u"), 0);
  ingest_peer_init(&other, STREAM_UDP, (struct sockaddr *)&f->addr);
  assert_int_equal(record(f, &other, 9, "u", 1), 0);
  assert_int_equal(fake.n, 2);
}

/* The same stream name over TCP and over UDP, or from two producers, is four streams. */
static void test_streams_are_keyed_by_protocol_producer_and_name(void **state) {
  fixture *f = *state;
  assert_int_equal(hello(f, &f->tcp, 1, "s"), 0);
  assert_int_equal(hello(f, &f->udp, 1, "s"), 0);
  assert_int_equal(hello(f, &f->tcp, 2, "s"), 0);
  assert_int_equal(hello(f, &f->tcp, 1, "t"), 0);
  assert_int_equal(hello(f, &f->tcp, 1, "s"), 0); /* again: the same stream */
  assert_int_equal(f->table.n, 4);
  assert_int_equal(streams_of(&f->table, STREAM_TCP), 3);
  assert_int_equal(streams_of(&f->table, STREAM_UDP), 1);
}

/* A later HELLO with another header does not change the stream's header. */
static void test_another_header_mid_stream_keeps_the_first(void **state) {
  fixture *f = *state;
  cs_field other[1] = {{"zzz", 3}};
  wire_msg m = msg(WIRE_HELLO, 7, "s", 0, other, 1);
  stream *e;
  assert_int_equal(hello(f, &f->tcp, 7, "s"), 0);
  assert_int_equal(ingest_msg(&f->in, &f->tcp, &m, 3000), 0);
  e = streams_find(&f->table, STREAM_TCP, 7, "s", 1);
  assert_non_null(e);
  assert_int_equal(e->sink.ncolumns, 2);
  assert_true(e->warned_header);
}

/* An END may come first (its HELLO lost over UDP): it makes the stream and counts the loss. */
static void test_end_counts_trailing_loss(void **state) {
  fixture *f = *state;
  wire_msg end = msg(WIRE_END, 7, "s", 5, NULL, 0);
  stream *e;
  assert_int_equal(ingest_msg(&f->in, &f->udp, &end, 3000), 0);
  e = streams_find(&f->table, STREAM_UDP, 7, "s", 1);
  assert_non_null(e);
  assert_true(e->ended);
  assert_false(e->header_known);
  assert_int_equal(record(f, &f->udp, 7, "s", 1), CS_EPROTO); /* still no header */
  assert_int_equal(hello(f, &f->udp, 7, "s"), 0);
  assert_int_equal(record(f, &f->udp, 7, "s", 2), 0);
  assert_int_equal(stats_stream_lost(&e->stats), 4);
}

/* An unknown message type is a protocol error, named. */
static void test_unknown_type_is_a_protocol_error(void **state) {
  fixture *f = *state;
  wire_msg m = msg(9, 7, "s", 0, NULL, 0);
  assert_int_equal(ingest_msg(&f->in, &f->tcp, &m, 3000), CS_EPROTO);
  assert_string_equal(ingest_error(&f->in), "unknown message type 9");
}

/* At STREAMS_MAX streams a new one is refused with a reason; the old ones go on. */
static void test_stream_cap_refuses_new_streams_only(void **state) {
  fixture *f = *state;
  uint64_t id;
  for (id = 1; id <= STREAMS_MAX; id++) {
    assert_int_equal(hello(f, &f->udp, id, "s"), 0);
  }
  assert_int_equal(hello(f, &f->udp, STREAMS_MAX + 1, "s"), CS_EREFUSED);
  assert_non_null(strstr(ingest_error(&f->in), "refused: the consumer holds its limit of 16384"));
  assert_int_equal(f->in.proto[STREAM_UDP].refused, 1);
  assert_int_equal(f->table.n, STREAMS_MAX);
  assert_int_equal(record(f, &f->udp, 1, "s", 1), 0);
  assert_int_equal(record(f, &f->udp, STREAMS_MAX, "s", 1), 0);
  assert_int_equal(fake.n, 2);
}

/* --max-records: the record that reaches it is stored, then ingest says stop (exit 0). */
static void test_max_records_stops_after_the_last(void **state) {
  fixture *f = *state;
  assert_int_equal(hello(f, &f->tcp, 7, "s"), 0);
  assert_int_equal(record(f, &f->tcp, 7, "s", 1), 0);
  assert_int_equal(record(f, &f->tcp, 7, "s", 2), CS_ESTOP);
  assert_int_equal(ingest_exit_code(&f->in), 0);
  assert_int_equal(record(f, &f->tcp, 7, "s", 3), CS_ESTOP);
  assert_int_equal(hello(f, &f->tcp, 8, "t"), CS_ESTOP);
  assert_int_equal(fake.n, 2);
}

/* A sink that fails stops ingest with exit code 1; the fan-out hands it nothing more, and
 * the record it failed on goes to no later sink. */
static void test_sink_failure_stops_with_exit_1(void **state) {
  fixture *f = *state;
  stream *e;
  fake.fail_at = 2;
  assert_int_equal(hello(f, &f->tcp, 7, "s"), 0);
  assert_int_equal(record(f, &f->tcp, 7, "s", 1), 0);
  assert_int_equal(record(f, &f->tcp, 7, "s", 2), CS_ESTOP);
  assert_int_equal(ingest_exit_code(&f->in), 1);
  assert_true(sinks_failed(f->sinks));
  assert_int_equal(record(f, &f->tcp, 7, "s", 3), CS_ESTOP);
  assert_int_equal(fake.n, 1);
  assert_int_equal(f->in.delivered, 1);
  e = streams_find(&f->table, STREAM_TCP, 7, "s", 1);
  assert_int_equal(counted(f, e), 1);
}

/* Garbage is counted per protocol; the peer is named as text. */
static void test_garbage_is_counted_per_protocol(void **state) {
  fixture *f = *state;
  ingest_garbage(&f->in, &f->udp, ingest_decode_error(CS_EBADMAGIC), "ignored");
  ingest_garbage(&f->in, &f->udp, "empty datagram", "ignored");
  ingest_garbage(&f->in, &f->tcp, ingest_error(&f->in), "closing the connection");
  assert_int_equal(f->in.proto[STREAM_UDP].garbage, 2);
  assert_int_equal(f->in.proto[STREAM_TCP].garbage, 1);
  assert_string_equal(ingest_peer_name(&f->udp), "127.0.0.1:40512");
  assert_string_equal(ingest_decode_error(CS_ETOOBIG), "frame longer than the 1 MiB limit");
}

/* A record more than the window beyond the highest seen is refused and moves nothing: a
 * hostile 2^64-2 cannot make the stream's later records "too late". */
static void test_record_beyond_the_window_is_refused(void **state) {
  fixture *f = *state;
  stream *e;
  assert_int_equal(hello(f, &f->udp, 7, "s"), 0);
  assert_int_equal(record(f, &f->udp, 7, "s", UINT64_MAX - 1), CS_EPROTO);
  assert_non_null(strstr(ingest_error(&f->in), "beyond the highest sequence number seen (#0)"));
  assert_int_equal(record(f, &f->udp, 7, "s", 1), 0);
  assert_int_equal(record(f, &f->udp, 7, "s", 1 + SEQWIN_SIZE), 0); /* at the edge: taken */
  assert_int_equal(record(f, &f->udp, 7, "s", 2 + 2 * (uint64_t)SEQWIN_SIZE), CS_EPROTO);
  assert_int_equal(record(f, &f->udp, 7, "s", 2), 0);
  e = streams_find(&f->table, STREAM_UDP, 7, "s", 1);
  assert_int_equal(e->stats.c.received, 3);
  assert_int_equal(e->stats.too_late, 0);
  assert_int_equal(fake.n, 3);
  assert_int_equal(stats_stream_lost(&e->stats), SEQWIN_SIZE - 2);
}

/* An END that announces fewer records than arrived, or one far beyond them, breaks the
 * protocol and leaves the stream as it was. */
static void test_end_before_what_arrived_is_a_protocol_error(void **state) {
  fixture *f = *state;
  wire_msg early = msg(WIRE_END, 7, "s", 2, NULL, 0);
  wire_msg huge = msg(WIRE_END, 7, "s", UINT64_MAX - 1, NULL, 0);
  stream *e;
  assert_int_equal(hello(f, &f->tcp, 7, "s"), 0);
  assert_int_equal(record(f, &f->tcp, 7, "s", 1), 0);
  assert_int_equal(record(f, &f->tcp, 7, "s", 2), 0);
  assert_int_equal(record(f, &f->tcp, 7, "s", 3), 0);
  assert_int_equal(ingest_msg(&f->in, &f->tcp, &early, 3000), CS_EPROTO);
  assert_string_equal(ingest_error(&f->in), "end of stream s at #2, but record #3 arrived");
  assert_int_equal(ingest_msg(&f->in, &f->tcp, &huge, 3000), CS_EPROTO);
  e = streams_find(&f->table, STREAM_TCP, 7, "s", 1);
  assert_false(e->ended);
  assert_int_equal(stats_stream_lost(&e->stats), 0);
}

/* Totals saturate: hostile streams' extreme counts cannot wrap round and hide real loss. */
static void test_totals_saturate(void **state) {
  fixture *f = *state;
  stats_counts total;
  stream *a, *b;
  assert_int_equal(hello(f, &f->udp, 1, "a"), 0);
  assert_int_equal(hello(f, &f->udp, 2, "b"), 0);
  a = streams_find(&f->table, STREAM_UDP, 1, "a", 1);
  b = streams_find(&f->table, STREAM_UDP, 2, "b", 1);
  a->stats.announced_seq = UINT64_MAX - 1; /* as if set: the window rule now refuses this */
  b->stats.announced_seq = 10;
  streams_totals(&f->table, STREAM_UDP, &total);
  assert_int_equal(total.lost, UINT64_MAX);
  a->stats.c.bytes = UINT64_MAX;
  b->stats.c.bytes = 1;
  streams_totals(&f->table, STREAM_UDP, &total);
  assert_int_equal(total.bytes, UINT64_MAX);
}

/* A version 3 HELLO fixes the stream's key: a HELLO without it or with another is spoofed,
 * over TCP and UDP, and so are records from a peer that did not present it; the owner goes on. */
static void test_session_key_guards_the_stream(void **state) {
  fixture *f = *state;
  static const unsigned char key[WIRE_KEY_LEN] = {1, 2, 3};
  static const unsigned char other[WIRE_KEY_LEN] = {9, 9, 9};
  ingest_peer thief, dgram;
  wire_msg m = msg(WIRE_HELLO, 7, "s", 0, header, 2);
  m.version = 3;
  m.key = key;
  assert_int_equal(ingest_msg(&f->in, &f->tcp, &m, 2000), 0);
  assert_int_equal(record(f, &f->tcp, 7, "s", 1), 0);
  ingest_peer_init(&thief, STREAM_TCP, (struct sockaddr *)&f->addr);
  m.key = other;
  assert_int_equal(ingest_msg(&f->in, &thief, &m, 2000), CS_ESPOOFED);
  m.key = NULL;
  m.version = 2;
  assert_int_equal(ingest_msg(&f->in, &thief, &m, 2000), CS_ESPOOFED);
  assert_int_equal(record(f, &thief, 7, "s", 2), CS_ESPOOFED);
  assert_null(strstr(ingest_error(&f->in), "\001\002\003")); /* the key is never written */
  assert_int_equal(f->in.proto[STREAM_TCP].spoofed, 3);
  assert_int_equal(record(f, &f->tcp, 7, "s", 2), 0);
  /* The owner's connection closes: the same key over a new one goes on (a reconnect). */
  ingest_peer_close(&f->in, &f->tcp);
  ingest_peer_init(&thief, STREAM_TCP, (struct sockaddr *)&f->addr);
  m.version = 3;
  m.key = key;
  assert_int_equal(ingest_msg(&f->in, &thief, &m, 2000), 0);
  assert_int_equal(record(f, &thief, 7, "s", 3), 0);
  /* UDP: each datagram's records need the keyed HELLO in front of them. */
  ingest_peer_init(&dgram, STREAM_UDP, (struct sockaddr *)&f->addr);
  m = msg(WIRE_HELLO, 8, "u", 0, header, 2);
  m.version = 3;
  m.key = key;
  assert_int_equal(ingest_msg(&f->in, &dgram, &m, 2000), 0);
  assert_int_equal(record(f, &dgram, 8, "u", 1), 0);
  ingest_peer_init(&dgram, STREAM_UDP, (struct sockaddr *)&f->addr);
  assert_int_equal(record(f, &dgram, 8, "u", 2), CS_ESPOOFED);
  m.key = other;
  assert_int_equal(ingest_msg(&f->in, &dgram, &m, 2000), CS_ESPOOFED);
  assert_int_equal(f->in.proto[STREAM_UDP].spoofed, 2);
  assert_int_equal(fake.n, 4);
}

/* An ended stream and an idle one leave the table once nothing points to them; their counts
 * stay in the totals, and a late copy of a retired stream's record is not stored again. */
static void test_ended_and_idle_streams_are_retired(void **state) {
  fixture *f = *state;
  stats_counts total;
  wire_msg end = msg(WIRE_END, 7, "a", 2, NULL, 0);
  uint64_t s = 1000000;
  assert_int_equal(hello(f, &f->udp, 7, "a"), 0);
  assert_int_equal(record(f, &f->udp, 7, "a", 1), 0);
  assert_int_equal(record(f, &f->udp, 7, "a", 2), 0);
  assert_int_equal(ingest_msg(&f->in, &f->udp, &end, 2000), 0);
  assert_int_equal(hello(f, &f->tcp, 8, "b"), 0);
  assert_int_equal(record(f, &f->tcp, 8, "b", 1), 0);
  assert_int_equal(hello(f, &f->udp, 9, "c"), 0);
  assert_int_equal(f->table.n, 3);
  /* 10 s on: the ended one goes; the others are not idle for 60 s yet. */
  assert_int_equal(ingest_retire(&f->in, 2000 + INGEST_ENDED_KEEP_US), 1);
  assert_null(streams_find(&f->table, STREAM_UDP, 7, "a", 1));
  /* 61 s on: the UDP one goes; the TCP one's connection still points to it. */
  assert_int_equal(ingest_retire(&f->in, 2000 + 61 * s), 1);
  assert_non_null(streams_find(&f->table, STREAM_TCP, 8, "b", 1));
  ingest_peer_close(&f->in, &f->tcp);
  assert_int_equal(ingest_retire(&f->in, 2000 + 61 * s), 1);
  assert_int_equal(f->table.n, 0);
  assert_int_equal(f->table.nretired[STREAM_UDP], 2);
  assert_int_equal(f->table.nretired[STREAM_TCP], 1);
  streams_totals(&f->table, STREAM_UDP, &total);
  assert_int_equal(total.received, 2);
  assert_int_equal(total.streams, 2);
  /* A late copy of stream a's record 2, with its HELLO in front: known, not stored again. */
  ingest_peer_init(&f->udp, STREAM_UDP, (struct sockaddr *)&f->addr);
  assert_int_equal(hello(f, &f->udp, 7, "a"), 0);
  assert_int_equal(record(f, &f->udp, 7, "a", 2), 0);
  assert_int_equal(fake.n, 3);
  assert_int_equal(f->table.bytes, streams_find(&f->table, STREAM_UDP, 7, "a", 1)->bytes);
}

/* Past the memory budget new streams are refused (UDP: counted, said), flowing ones go on. */
static void test_memory_budget_refuses_new_streams(void **state) {
  fixture *f = *state;
  uint64_t id;
  int rc = 0;
  f->in.max_memory = 1u << 20;
  for (id = 1; id < 100000 && rc == 0; id++) {
    rc = hello(f, &f->udp, id, "s");
  }
  assert_int_equal(rc, CS_EREFUSED);
  assert_non_null(strstr(ingest_error(&f->in), "memory budget (--max-memory 1 MiB)"));
  assert_true(f->table.bytes <= (1u << 20));
  assert_true(f->table.n > 10);
  assert_int_equal(f->in.proto[STREAM_UDP].refused, 1);
  assert_int_equal(record(f, &f->udp, 1, "s", 1), 0);
  assert_int_equal(fake.n, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_records_reach_the_sinks_in_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_duplicates_are_not_stored_twice, setup, teardown),
      cmocka_unit_test_setup_teardown(test_record_before_hello_is_a_protocol_error, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_streams_are_keyed_by_protocol_producer_and_name, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_another_header_mid_stream_keeps_the_first, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_end_counts_trailing_loss, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unknown_type_is_a_protocol_error, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stream_cap_refuses_new_streams_only, setup, teardown),
      cmocka_unit_test_setup_teardown(test_max_records_stops_after_the_last, setup_max2, teardown),
      cmocka_unit_test_setup_teardown(test_sink_failure_stops_with_exit_1, setup, teardown),
      cmocka_unit_test_setup_teardown(test_garbage_is_counted_per_protocol, setup, teardown),
      cmocka_unit_test_setup_teardown(test_record_beyond_the_window_is_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_end_before_what_arrived_is_a_protocol_error, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_totals_saturate, setup, teardown),
      cmocka_unit_test_setup_teardown(test_session_key_guards_the_stream, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ended_and_idle_streams_are_retired, setup, teardown),
      cmocka_unit_test_setup_teardown(test_memory_budget_refuses_new_streams, setup, teardown),
  };
  log_init("test_ingest", LOG_ERROR);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
