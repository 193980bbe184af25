/* test_wire.c -- unit tests of the wire codec: exact bytes, every segmentation, bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "error.h"
#include "wire.h"

/* Collects what the decoder delivers: each message re-encoded (the encoding is a deterministic
 * function of every field, so equal bytes mean equal messages) plus a few per-message facts. */
typedef struct collector {
  cs_buf reencoded;
  size_t count;
  int stop_after;              /* return 99 from the callback after this many messages (0: never) */
  const char *first_field_ptr; /* where the first message's first field pointed */
  uint32_t last_frame_len;
} collector;

static void collector_init(collector *c) {
  memset(c, 0, sizeof *c);
  cs_buf_init(&c->reencoded);
}

static int collect_cb(const wire_msg *m, void *arg) {
  collector *c = arg;
  if (c->count == 0 && m->nfields > 0) {
    c->first_field_ptr = m->fields[0].data;
  }
  c->count++;
  c->last_frame_len = m->frame_len;
  assert_int_equal(m->frame_len, wire_encoded_size(m));
  assert_int_equal(wire_encode(m, &c->reencoded), 0);
  if (c->stop_after != 0 && c->count == (size_t)c->stop_after) {
    return 99;
  }
  return 0;
}

/* The message set of the segmentation tests. */
typedef struct msg_set {
  cs_buf bytes; /* all messages encoded back to back */
  size_t count;
  cs_field *many; /* 10,000 fields */
  char *big;      /* one field near the payload limit */
} msg_set;

static void encode_one(msg_set *s, int type, uint64_t seq, uint64_t line, const char *stream,
                       const cs_field *fields, uint32_t n) {
  wire_msg m;
  memset(&m, 0, sizeof m);
  m.type = type;
  m.producer_id = 0x0123456789abcdefULL;
  m.seq = seq;
  m.sent_us = 1764448867123456ULL + seq;
  m.line = line;
  m.stream.data = stream;
  m.stream.len = strlen(stream);
  m.nfields = n;
  m.fields = fields;
  assert_int_equal(wire_encode(&m, &s->bytes), 0);
  s->count++;
}

#define F(s)                                                                                       \
  { s, sizeof(s) - 1 }

/* Small messages only (every split point of these is tested), or also the 10,000-field record
 * and the near-limit field when `large`. */
static void msg_set_build(msg_set *s, int large) {
  static const cs_field header[] = {F("name"), F("value, with comma"), F("")};
  static const cs_field nasty[] = {
      F("a,b"), F("say \"hi\""), {"nul\0byte", 8}, F("line\r\nbreak"), F("\xca\xa4 utf8")};
  static const cs_field empties[] = {F(""), F(""), F("")};
  memset(s, 0, sizeof *s);
  cs_buf_init(&s->bytes);
  encode_one(s, WIRE_HELLO, 0, 0, "temps", header, 3);
  encode_one(s, WIRE_RECORD, 1, 2, "temps", nasty, 5);
  encode_one(s, WIRE_RECORD, 2, 3, "temps", empties, 3);
  encode_one(s, WIRE_HELLO, 3, 4, "temps", NULL, 0); /* zero fields: a --no-header HELLO */
  if (large) {
    s->many = calloc(10000, sizeof *s->many);
    assert_non_null(s->many);
    for (size_t i = 0; i < 10000; i++) {
      s->many[i].data = (i % 3 == 0) ? "x" : "field";
      s->many[i].len = (i % 3 == 0) ? 1 : 5;
    }
    encode_one(s, WIRE_RECORD, 4, 5, "temps", s->many, 10000);
    /* Largest single field that fits: payload = fixed part + stream + 4 + len. */
    size_t len = WIRE_MAX_PAYLOAD - (8 * 4 + 1 + 5 + 4) - 4;
    s->big = malloc(len);
    assert_non_null(s->big);
    for (size_t i = 0; i < len; i++) {
      s->big[i] = (char)('a' + i % 26);
    }
    cs_field f = {s->big, len};
    encode_one(s, WIRE_RECORD, 5, 6, "temps", &f, 1);
  }
  encode_one(s, WIRE_END, large ? 5 : 3, 0, "temps", NULL, 0);
}

static void msg_set_free(msg_set *s) {
  cs_buf_free(&s->bytes);
  free(s->many);
  free(s->big);
}

/* Feed bytes in the given pieces and check the messages come back identical. */
static void check_feed(const msg_set *s, const size_t *cuts, size_t ncuts) {
  wire_decoder d;
  collector c;
  wire_decoder_init(&d, WIRE_MAX_PAYLOAD);
  collector_init(&c);
  size_t pos = 0;
  for (size_t i = 0; i <= ncuts; i++) {
    size_t end = i < ncuts ? cuts[i] : s->bytes.len;
    assert_int_equal(wire_decoder_feed(&d, s->bytes.data + pos, end - pos, collect_cb, &c), 0);
    pos = end;
  }
  assert_int_equal(wire_decoder_pending(&d), 0);
  assert_int_equal(c.count, s->count);
  assert_int_equal(c.reencoded.len, s->bytes.len);
  assert_memory_equal(c.reencoded.data, s->bytes.data, s->bytes.len);
  cs_buf_free(&c.reencoded);
  wire_decoder_free(&d);
}

/* The encoder writes exactly the layout of docs/protocol.md. */
static void test_encode_exact_bytes(void **state) {
  (void)state;
  static const cs_field fields[] = {F("a,b"), F("")};
  static const unsigned char expect[] = {
      'C',  'S',  3,    2,    0,    0,    0,    50,   /* header: v3 RECORD, payload 50 */
      0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* producer_id */
      0,    0,    0,    0,    0,    0,    0,    7,    /* seq */
      0,    0,    0,    0,    0,    0,    0x01, 0x00, /* sent_us = 256 */
      0,    0,    0,    0,    0,    0,    0,    9,    /* line */
      2,    'a',  'b',                                /* stream */
      0,    0,    0,    2,                            /* nfields */
      0,    0,    0,    3,    'a',  ',',  'b',        /* field 1 */
      0,    0,    0,    0};                           /* field 2, empty */
  wire_msg m = {.type = WIRE_RECORD,
                .producer_id = 0x0102030405060708ULL,
                .seq = 7,
                .sent_us = 256,
                .line = 9,
                .stream = {"ab", 2},
                .nfields = 2,
                .fields = fields};
  cs_buf out;
  cs_buf_init(&out);
  assert_int_equal(wire_encoded_size(&m), sizeof expect);
  assert_int_equal(wire_encode(&m, &out), 0);
  assert_int_equal(out.len, sizeof expect);
  assert_memory_equal(out.data, expect, sizeof expect);
  cs_buf_free(&out);
}

/* Decoding the golden bytes gives back every field. */
static void test_decode_fields(void **state) {
  (void)state;
  static const cs_field fields[] = {F("x\"y"), {"\0", 1}};
  wire_msg m = {.type = WIRE_HELLO,
                .producer_id = 42,
                .seq = 0,
                .sent_us = 1,
                .line = 0,
                .stream = {"s", 1},
                .nfields = 2,
                .fields = fields};
  cs_buf out;
  cs_buf_init(&out);
  assert_int_equal(wire_encode(&m, &out), 0);
  wire_decoder d;
  wire_decoder_init(&d, WIRE_MAX_PAYLOAD);
  collector c;
  collector_init(&c);
  assert_int_equal(wire_decoder_feed(&d, out.data, out.len, collect_cb, &c), 0);
  assert_int_equal(c.count, 1);
  assert_int_equal(c.last_frame_len, out.len);
  assert_memory_equal(c.reencoded.data, out.data, out.len);
  /* A frame wholly inside the fed buffer is decoded in place, not copied. */
  assert_ptr_equal(c.first_field_ptr, out.data + out.len - 1 - 4 - 3);
  cs_buf_free(&c.reencoded);
  cs_buf_free(&out);
  wire_decoder_free(&d);
}

/* All small messages, split into two pieces at every possible point. */
static void test_split_at_every_point(void **state) {
  (void)state;
  msg_set s;
  msg_set_build(&s, 0);
  for (size_t cut = 0; cut <= s.bytes.len; cut++) {
    check_feed(&s, &cut, 1);
  }
  msg_set_free(&s);
}

/* Every message, the 10,000-field record and the near-limit field included, one byte at a
 * time; the decoder never holds more than the frame in progress. */
static void test_one_byte_at_a_time(void **state) {
  (void)state;
  msg_set s;
  msg_set_build(&s, 1);
  wire_decoder d;
  collector c;
  wire_decoder_init(&d, WIRE_MAX_PAYLOAD);
  collector_init(&c);
  size_t max_pending = 0;
  for (size_t i = 0; i < s.bytes.len; i++) {
    assert_int_equal(wire_decoder_feed(&d, s.bytes.data + i, 1, collect_cb, &c), 0);
    if (wire_decoder_pending(&d) > max_pending) {
      max_pending = wire_decoder_pending(&d);
    }
  }
  assert_int_equal(wire_decoder_pending(&d), 0);
  assert_true(max_pending < WIRE_HEADER_LEN + WIRE_MAX_PAYLOAD);
  /* The near-limit frame's reassembly memory was released once it was decoded. */
  assert_true(d.pending.cap <= 64 * 1024);
  assert_int_equal(c.count, s.count);
  assert_int_equal(c.reencoded.len, s.bytes.len);
  assert_memory_equal(c.reencoded.data, s.bytes.data, s.bytes.len);
  cs_buf_free(&c.reencoded);
  wire_decoder_free(&d);
  msg_set_free(&s);
}

/* The large set split at sampled points (every 4,093 bytes plus around every frame edge). */
static void test_large_split_points(void **state) {
  (void)state;
  msg_set s;
  msg_set_build(&s, 1);
  size_t edges[64];
  size_t nedges = 0;
  for (size_t pos = 0; pos < s.bytes.len && nedges < 64;) {
    edges[nedges++] = pos;
    uint32_t plen = (uint32_t)(unsigned char)s.bytes.data[pos + 4] << 24 |
                    (uint32_t)(unsigned char)s.bytes.data[pos + 5] << 16 |
                    (uint32_t)(unsigned char)s.bytes.data[pos + 6] << 8 |
                    (uint32_t)(unsigned char)s.bytes.data[pos + 7];
    pos += WIRE_HEADER_LEN + plen;
  }
  for (size_t cut = 1; cut < s.bytes.len; cut += 4093) {
    check_feed(&s, &cut, 1);
  }
  for (size_t e = 0; e < nedges; e++) {
    for (size_t delta = 0; delta <= 2 * WIRE_HEADER_LEN; delta++) {
      size_t cuts[2] = {edges[e] > delta ? edges[e] - delta : 0, edges[e] + delta};
      if (cuts[1] > s.bytes.len) {
        cuts[1] = s.bytes.len;
      }
      check_feed(&s, cuts, 2);
    }
  }
  msg_set_free(&s);
}

/* A bad frame: bytes and the code the decoders must give. */
typedef struct bad_case {
  const char *name;
  unsigned char bytes[64];
  size_t len;
  int expect;       /* from the stream decoder */
  int expect_dgram; /* from the datagram decoder */
} bad_case;

/* A valid RECORD frame with stream "s" and one field "v", for mutating. */
#define GOOD_PAYLOAD                                                                               \
  0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1,  \
      1, 's', 0, 0, 0, 1, 0, 0, 0, 1, 'v'
#define GOOD_LEN 43

static const bad_case bad_cases[] = {
    {"bad magic",
     {'X', 'S', 1, 2, 0, 0, 0, GOOD_LEN, GOOD_PAYLOAD},
     8 + GOOD_LEN,
     CS_EBADMAGIC,
     CS_EBADMAGIC},
    {"bad second magic byte",
     {'C', 's', 1, 2, 0, 0, 0, GOOD_LEN, GOOD_PAYLOAD},
     8 + GOOD_LEN,
     CS_EBADMAGIC,
     CS_EBADMAGIC},
    {"bad version",
     {'C', 'S', 4, 2, 0, 0, 0, GOOD_LEN, GOOD_PAYLOAD},
     8 + GOOD_LEN,
     CS_EVERSION,
     CS_EVERSION},
    {"version 0",
     {'C', 'S', 0, 2, 0, 0, 0, GOOD_LEN, GOOD_PAYLOAD},
     8 + GOOD_LEN,
     CS_EVERSION,
     CS_EVERSION},
    {"an ack in a version 1 frame",
     {'C', 'S', 1, 4, 0, 0, 0, GOOD_LEN, GOOD_PAYLOAD},
     8 + GOOD_LEN,
     CS_ETYPE,
     CS_ETYPE},
    {"a refuse without its reason",
     {'C', 'S', 2, 5, 0, 0, 0, 38, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,   0, 0, 0, 0,
      1,   0,   0, 0, 0, 0, 0, 0,  1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 's', 0, 0, 0, 0},
     8 + 38,
     CS_EMALFORMED,
     CS_EMALFORMED},
    {"unknown type 9",
     {'C', 'S', 1, 9, 0, 0, 0, GOOD_LEN, GOOD_PAYLOAD},
     8 + GOOD_LEN,
     CS_ETYPE,
     CS_ETYPE},
    {"type 0", {'C', 'S', 1, 0, 0, 0, 0, GOOD_LEN, GOOD_PAYLOAD}, 8 + GOOD_LEN, CS_ETYPE, CS_ETYPE},
    {"length over 1 MiB", {'C', 'S', 1, 2, 0, 0x10, 0, 1}, 8, CS_ETOOBIG, CS_ETOOBIG},
    {"length 4 GiB", {'C', 'S', 1, 2, 0xff, 0xff, 0xff, 0xff}, 8, CS_ETOOBIG, CS_ETOOBIG},
    {"payload shorter than the fixed part",
     {'C', 'S', 1, 2, 0, 0, 0, 4, 0, 0, 0, 0},
     12,
     CS_EMALFORMED,
     CS_EMALFORMED},
    {"empty stream name",
     {'C', 'S', 1, 2, 0, 0, 0, 37, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
      1,   0,   0, 0, 0, 0, 0, 0,  1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0},
     45,
     CS_EMALFORMED,
     CS_EMALFORMED},
    {"field runs past the payload",
     {'C', 'S', 1, 2, 0, 0, 0, GOOD_LEN, 0, 0, 0, 0, 0, 0, 0, 1,   0, 0, 0, 0, 0, 0, 0, 1, 0,  0,
      0,   0,   0, 0, 0, 1, 0, 0,        0, 0, 0, 0, 0, 1, 1, 's', 0, 0, 0, 1, 0, 0, 0, 2, 'v'},
     8 + GOOD_LEN,
     CS_EMALFORMED,
     CS_EMALFORMED},
    {"more fields than the payload holds",
     {'C', 'S', 1, 2, 0, 0, 0, GOOD_LEN, 0,    0,    0,    0,    0, 0, 0, 1, 0,
      0,   0,   0, 0, 0, 0, 1, 0,        0,    0,    0,    0,    0, 0, 1, 0, 0,
      0,   0,   0, 0, 0, 1, 1, 's',      0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 'v'},
     8 + GOOD_LEN,
     CS_EMALFORMED,
     CS_EMALFORMED},
    {"record with no fields",
     {'C', 'S', 1, 2, 0, 0, 0, 38, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,   0, 0, 0, 0,
      1,   0,   0, 0, 0, 0, 0, 0,  1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 's', 0, 0, 0, 0},
     46,
     CS_EMALFORMED,
     CS_EMALFORMED},
    {"trailing bytes in the payload",
     {'C', 'S', 1, 2, 0, 0, 0, GOOD_LEN + 1, GOOD_PAYLOAD, 'x'},
     8 + GOOD_LEN + 1,
     CS_EMALFORMED,
     CS_EMALFORMED},
    {"payload cut short",
     {'C', 'S', 1, 2, 0, 0, 0, GOOD_LEN, GOOD_PAYLOAD},
     8 + GOOD_LEN - 1,
     0,
     CS_ETRUNCATED},
    {"header cut short", {'C', 'S', 1, 2, 0}, 5, 0, CS_ETRUNCATED},
};

/* Each bad frame, after a good one: the good message is delivered, the bad one gives its code,
 * and the stream decoder stays failed. */
static void test_bad_frames(void **state) {
  (void)state;
  static const unsigned char good[] = {'C', 'S', 1, 2, 0, 0, 0, GOOD_LEN, GOOD_PAYLOAD};
  for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
    const bad_case *bc = &bad_cases[i];
    unsigned char buf[sizeof good + 64];
    memcpy(buf, good, sizeof good);
    memcpy(buf + sizeof good, bc->bytes, bc->len);
    print_message("case: %s\n", bc->name);

    wire_decoder d;
    collector c;
    wire_decoder_init(&d, WIRE_MAX_PAYLOAD);
    collector_init(&c);
    int rc = wire_decoder_feed(&d, (const char *)buf, sizeof good + bc->len, collect_cb, &c);
    assert_int_equal(rc, bc->expect);
    assert_int_equal(c.count, 1);
    if (bc->expect != 0) {
      /* Failed for good: even a valid frame is refused now. */
      assert_int_equal(wire_decoder_feed(&d, (const char *)good, sizeof good, collect_cb, &c),
                       bc->expect);
      assert_int_equal(c.count, 1);
      assert_int_equal(wire_decoder_pending(&d), 0);
    } else {
      assert_int_equal(wire_decoder_pending(&d), bc->len);
    }
    wire_decoder_free(&d);
    cs_buf_free(&c.reencoded);

    wire_decoder_init(&d, WIRE_MAX_PAYLOAD);
    collector_init(&c);
    rc = wire_decode_datagram(&d, (const char *)buf, sizeof good + bc->len, collect_cb, &c);
    assert_int_equal(rc, bc->expect_dgram);
    assert_int_equal(c.count, 1);
    wire_decoder_free(&d);
    cs_buf_free(&c.reencoded);
  }
}

/* A header error is seen on its first byte, before the rest of the frame arrives. */
static void test_bad_magic_detected_early(void **state) {
  (void)state;
  wire_decoder d;
  collector c;
  wire_decoder_init(&d, WIRE_MAX_PAYLOAD);
  collector_init(&c);
  assert_int_equal(wire_decoder_feed(&d, "G", 1, collect_cb, &c), CS_EBADMAGIC);
  assert_int_equal(c.count, 0);
  wire_decoder_free(&d);
}

/* A decoder's own max_payload bounds what it accepts. */
static void test_decoder_limit(void **state) {
  (void)state;
  static const unsigned char good[] = {'C', 'S', 1, 2, 0, 0, 0, GOOD_LEN, GOOD_PAYLOAD};
  wire_decoder d;
  collector c;
  wire_decoder_init(&d, GOOD_LEN - 1);
  collector_init(&c);
  assert_int_equal(wire_decoder_feed(&d, (const char *)good, 8, collect_cb, &c), CS_ETOOBIG);
  wire_decoder_free(&d);
  wire_decoder_init(&d, GOOD_LEN);
  assert_int_equal(wire_decoder_feed(&d, (const char *)good, sizeof good, collect_cb, &c), 0);
  assert_int_equal(c.count, 1);
  wire_decoder_free(&d);
  cs_buf_free(&c.reencoded);
}

/* A datagram of two frames (HELLO + RECORD, as the producer sends) gives both. */
static void test_datagram_two_frames(void **state) {
  (void)state;
  msg_set s;
  msg_set_build(&s, 0);
  size_t first = WIRE_HEADER_LEN +
                 ((size_t)(unsigned char)s.bytes.data[6] << 8 | (unsigned char)s.bytes.data[7]);
  size_t second = WIRE_HEADER_LEN + ((size_t)(unsigned char)s.bytes.data[first + 6] << 8 |
                                     (unsigned char)s.bytes.data[first + 7]);
  wire_decoder d;
  collector c;
  wire_decoder_init(&d, WIRE_MAX_PAYLOAD);
  collector_init(&c);
  assert_int_equal(wire_decode_datagram(&d, s.bytes.data, first + second, collect_cb, &c), 0);
  assert_int_equal(c.count, 2);
  assert_int_equal(c.reencoded.len, first + second);
  assert_memory_equal(c.reencoded.data, s.bytes.data, first + second);
  assert_int_equal(wire_decoder_pending(&d), 0);
  /* The datagram ends one byte into a third frame. */
  assert_int_equal(wire_decode_datagram(&d, s.bytes.data, first + second + 1, collect_cb, &c),
                   CS_ETRUNCATED);
  assert_int_equal(c.count, 4);
  assert_int_equal(wire_decode_datagram(&d, s.bytes.data, 0, collect_cb, &c), CS_ETRUNCATED);
  wire_decoder_free(&d);
  cs_buf_free(&c.reencoded);
  msg_set_free(&s);
}

/* A non-zero callback value stops decoding and is returned. */
static void test_callback_stops(void **state) {
  (void)state;
  msg_set s;
  msg_set_build(&s, 0);
  wire_decoder d;
  collector c;
  wire_decoder_init(&d, WIRE_MAX_PAYLOAD);
  collector_init(&c);
  c.stop_after = 2;
  assert_int_equal(wire_decoder_feed(&d, s.bytes.data, s.bytes.len, collect_cb, &c), 99);
  assert_int_equal(c.count, 2);
  wire_decoder_free(&d);
  cs_buf_free(&c.reencoded);
  collector_init(&c);
  c.stop_after = 1;
  assert_int_equal(wire_decode_datagram(&d, s.bytes.data, s.bytes.len, collect_cb, &c), 99);
  assert_int_equal(c.count, 1);
  wire_decoder_free(&d);
  cs_buf_free(&c.reencoded);
  msg_set_free(&s);
}

/* The encoder refuses what the protocol cannot carry, and appends nothing. */
static void test_encode_limits(void **state) {
  (void)state;
  char name[300];
  memset(name, 'n', sizeof name);
  cs_buf out;
  cs_buf_init(&out);
  assert_int_equal(cs_buf_append(&out, "keep", 4), 0);
  static const cs_field one_field = {"v", 1};
  wire_msg m = {.type = WIRE_RECORD, .stream = {name, 0}, .nfields = 1, .fields = &one_field};
  assert_int_equal(wire_encode(&m, &out), CS_ETOOBIG);
  m.stream.len = 256;
  assert_int_equal(wire_encode(&m, &out), CS_ETOOBIG);
  m.stream.len = 255;
  assert_int_equal(wire_encode(&m, &out), 0);
  out.len = 4;
  char *big = calloc(1, WIRE_MAX_PAYLOAD);
  assert_non_null(big);
  cs_field f = {big, WIRE_MAX_PAYLOAD - 8 * 4 - 1 - 1 - 4 - 4 + 1};
  m.stream.len = 1;
  m.nfields = 1;
  m.fields = &f;
  assert_int_equal(wire_encode(&m, &out), CS_ETOOBIG);
  assert_int_equal(out.len, 4);
  f.len--;
  assert_int_equal(wire_encode(&m, &out), 0);
  assert_int_equal(out.len, 4 + WIRE_HEADER_LEN + WIRE_MAX_PAYLOAD);
  free(big);
  cs_buf_free(&out);
}

static void test_type_names(void **state) {
  (void)state;
  assert_string_equal(wire_type_name(WIRE_HELLO), "hello");
  assert_string_equal(wire_type_name(WIRE_RECORD), "record");
  assert_string_equal(wire_type_name(WIRE_END), "end");
  assert_string_equal(wire_type_name(7), "unknown");
}

/* What test_v3_session_key keeps of each message. */
typedef struct key_seen {
  int n;
  int has[4], version[4];
  unsigned char key[4][WIRE_KEY_LEN];
} key_seen;

static int key_cb(const wire_msg *m, void *arg) {
  key_seen *k = arg;
  if (k->n < 4) {
    k->has[k->n] = m->key != NULL;
    k->version[k->n] = m->version;
    if (m->key != NULL) {
      memcpy(k->key[k->n], m->key, WIRE_KEY_LEN);
    }
  }
  k->n++;
  return 0;
}

/* What test_v2_ack_refuse_and_v1_frames keeps of each message. */
typedef struct kept {
  int n;
  int type[4], version[4];
  uint64_t seq[4];
  uint32_t nfields[4];
} kept;

static int keep_cb(const wire_msg *m, void *arg) {
  kept *k = arg;
  if (k->n < 4) {
    k->type[k->n] = m->type;
    k->version[k->n] = m->version;
    k->seq[k->n] = m->seq;
    k->nfields[k->n] = m->nfields;
  }
  k->n++;
  return 0;
}

/* Version 2 adds ACK and REFUSE; the decoder reads version 1 frames too and says which. */
static void test_v2_ack_refuse_and_v1_frames(void **state) {
  static const cs_field why[] = {F("stream table full")};
  static const unsigned char v1_end[] = {'C', 'S', 1, 3, 0, 0, 0, GOOD_LEN, GOOD_PAYLOAD};
  wire_msg ack = {.type = WIRE_ACK, .producer_id = 9, .seq = 41, .stream = {"s", 1}};
  wire_msg refuse = {
      .type = WIRE_REFUSE, .producer_id = 9, .stream = {"s", 1}, .nfields = 1, .fields = why};
  wire_msg bare = {.type = WIRE_REFUSE, .producer_id = 9, .stream = {"s", 1}};
  cs_buf out;
  wire_decoder d;
  kept k;
  (void)state;
  memset(&k, 0, sizeof k);
  cs_buf_init(&out);
  assert_int_equal(wire_encode(&ack, &out), 0);
  assert_int_equal(wire_encode(&refuse, &out), 0);
  assert_int_equal(wire_encode(&bare, &out), CS_EMALFORMED);
  assert_int_equal(cs_buf_append(&out, v1_end, sizeof v1_end), 0);
  wire_decoder_init(&d, WIRE_MAX_PAYLOAD);
  assert_int_equal(wire_decoder_feed(&d, out.data, out.len, keep_cb, &k), 0);
  assert_int_equal(k.n, 3);
  assert_int_equal(k.type[0], WIRE_ACK);
  assert_int_equal(k.seq[0], 41);
  assert_int_equal(k.version[0], WIRE_VERSION);
  assert_int_equal(k.type[1], WIRE_REFUSE);
  assert_int_equal(k.nfields[1], 1);
  assert_int_equal(k.type[2], WIRE_END);
  assert_int_equal(k.version[2], 1);
  assert_string_equal(wire_type_name(WIRE_ACK), "ack");
  assert_string_equal(wire_type_name(WIRE_REFUSE), "refuse");
  assert_true(wire_type_known(WIRE_END, 1));
  assert_false(wire_type_known(WIRE_ACK, 1));
  wire_decoder_free(&d);
  cs_buf_free(&out);
}

/* Version 3: HELLO and END carry the session key after the stream name (NULL writes zeros);
 * RECORD does not; the decoder hands it back, and gives NULL for older frames. */
static void test_v3_session_key(void **state) {
  static const unsigned char key[WIRE_KEY_LEN] = {1, 2,  3,  4,  5,  6,  7,  8,
                                                  9, 10, 11, 12, 13, 14, 15, 16};
  static const unsigned char zeros[WIRE_KEY_LEN] = {0};
  static const cs_field cols[] = {F("a")};
  static const unsigned char v2_hello[] = {'C', 'S', 2, 1, 0, 0, 0, GOOD_LEN, GOOD_PAYLOAD};
  wire_msg hello = {.type = WIRE_HELLO,
                    .producer_id = 5,
                    .stream = {"s", 1},
                    .key = key,
                    .nfields = 1,
                    .fields = cols};
  wire_msg rec = {.type = WIRE_RECORD,
                  .producer_id = 5,
                  .seq = 1,
                  .stream = {"s", 1},
                  .key = key,
                  .nfields = 1,
                  .fields = cols};
  wire_msg end = {.type = WIRE_END, .producer_id = 5, .seq = 1, .stream = {"s", 1}};
  key_seen seen;
  cs_buf out;
  wire_decoder d;
  (void)state;
  memset(&seen, 0, sizeof seen);
  cs_buf_init(&out);
  assert_int_equal(wire_encode(&hello, &out), 0);
  /* header 8, fixed 37, stream 1, key 16, one field 4 + 1 */
  assert_int_equal(out.len, 8 + 37 + 1 + WIRE_KEY_LEN + 5);
  assert_memory_equal(out.data + 8 + 33 + 1, key, WIRE_KEY_LEN);
  assert_int_equal(wire_encoded_size(&hello), out.len);
  size_t rec_at = out.len;
  assert_int_equal(wire_encode(&rec, &out), 0);
  assert_int_equal(out.len - rec_at, 8 + 37 + 1 + 5); /* no key in a RECORD */
  assert_int_equal(wire_encode(&end, &out), 0);
  assert_int_equal(cs_buf_append(&out, v2_hello, sizeof v2_hello), 0);
  wire_decoder_init(&d, WIRE_MAX_PAYLOAD);
  assert_int_equal(wire_decoder_feed(&d, out.data, out.len, key_cb, &seen), 0);
  assert_int_equal(seen.n, 4);
  assert_int_equal(seen.has[0], 1);
  assert_memory_equal(seen.key[0], key, WIRE_KEY_LEN);
  assert_int_equal(seen.has[1], 0);
  assert_int_equal(seen.has[2], 1);
  assert_memory_equal(seen.key[2], zeros, WIRE_KEY_LEN);
  assert_int_equal(seen.has[3], 0);
  assert_int_equal(seen.version[3], 2);
  wire_decoder_free(&d);
  /* A version 3 HELLO too short to hold its key is malformed. */
  cs_buf_reset(&out);
  assert_int_equal(wire_encode(&end, &out), 0);
  out.data[7] = (char)(out.data[7] - 10);
  wire_decoder_init(&d, WIRE_MAX_PAYLOAD);
  assert_int_equal(wire_decode_datagram(&d, out.data, out.len - 10, key_cb, &seen), CS_EMALFORMED);
  wire_decoder_free(&d);
  cs_buf_free(&out);
}

/* The frame as docs/protocol.md lays it out, built a byte at a time: the oracle of the
 * encoder's fast copies. A RECORD of version 3 (no key). */
static void reference_record(const wire_msg *m, cs_buf *out) {
  size_t payload = 8 * 4 + 1 + m->stream.len + 4, i;
  unsigned char b[8];
  for (i = 0; i < m->nfields; i++) {
    payload += 4 + m->fields[i].len;
  }
  assert_int_equal(cs_buf_append(out, "CS", 2), 0);
  assert_int_equal(cs_buf_append_byte(out, 3), 0);
  assert_int_equal(cs_buf_append_byte(out, WIRE_RECORD), 0);
  for (i = 0; i < 4; i++) {
    b[i] = (unsigned char)(payload >> (24 - 8 * i));
  }
  assert_int_equal(cs_buf_append(out, b, 4), 0);
  const uint64_t fixed[4] = {m->producer_id, m->seq, m->sent_us, m->line};
  for (size_t k = 0; k < 4; k++) {
    for (i = 0; i < 8; i++) {
      b[i] = (unsigned char)(fixed[k] >> (56 - 8 * i));
    }
    assert_int_equal(cs_buf_append(out, b, 8), 0);
  }
  assert_int_equal(cs_buf_append_byte(out, (char)m->stream.len), 0);
  for (i = 0; i < m->stream.len; i++) {
    assert_int_equal(cs_buf_append_byte(out, m->stream.data[i]), 0);
  }
  for (i = 0; i < 4; i++) {
    b[i] = (unsigned char)(m->nfields >> (24 - 8 * i));
  }
  assert_int_equal(cs_buf_append(out, b, 4), 0);
  for (uint32_t f = 0; f < m->nfields; f++) {
    for (i = 0; i < 4; i++) {
      b[i] = (unsigned char)(m->fields[f].len >> (24 - 8 * i));
    }
    assert_int_equal(cs_buf_append(out, b, 4), 0);
    for (i = 0; i < m->fields[f].len; i++) {
      assert_int_equal(cs_buf_append_byte(out, m->fields[f].data[i]), 0);
    }
  }
}

/* Every short length the copies treat apart (0-3, 4-7, 8-15, 16-32, longer), in fields and
 * stream names, behind buffers filled to every offset around the encoder's reserve: the same
 * bytes as the reference, and nothing before the frame touched. Each field lives in a heap
 * block of exactly its size, so a sanitizer build sees any read past it. */
static void test_encode_every_short_length(void **state) {
  (void)state;
  enum { MAXLEN = 80, FIELDS = 3 };
  cs_field fields[FIELDS];
  char *blocks[FIELDS];
  char stream[255];
  cs_buf got, want;
  cs_buf_init(&got);
  cs_buf_init(&want);
  memset(stream, 's', sizeof stream);
  for (size_t len = 0; len <= MAXLEN; len++) {
    for (int f = 0; f < FIELDS; f++) {
      size_t flen = f == 1 ? MAXLEN - len : len; /* lengths that differ within one record */
      blocks[f] = malloc(flen > 0 ? flen : 1);
      assert_non_null(blocks[f]);
      for (size_t i = 0; i < flen; i++) {
        blocks[f][i] = (char)(i * 7 + (size_t)f + len);
      }
      fields[f].data = blocks[f];
      fields[f].len = flen;
    }
    for (size_t stream_len = 1; stream_len <= 255; stream_len += 37) {
      wire_msg m = {.type = WIRE_RECORD,
                    .producer_id = 0x8877665544332211ULL,
                    .seq = len,
                    .sent_us = 1764448867123456ULL,
                    .line = len * 3,
                    .stream = {stream, stream_len},
                    .nfields = FIELDS,
                    .fields = fields};
      for (size_t before = 0; before < 700; before += 61) {
        cs_buf_free(&got);
        cs_buf_reset(&want);
        for (size_t i = 0; i < before; i++) {
          assert_int_equal(cs_buf_append_byte(&got, 'x'), 0);
          assert_int_equal(cs_buf_append_byte(&want, 'x'), 0);
        }
        reference_record(&m, &want);
        assert_int_equal(wire_encode(&m, &got), 0);
        assert_int_equal(got.len, want.len);
        assert_memory_equal(got.data, want.data, want.len);
        assert_int_equal(wire_encoded_size(&m), want.len - before);
      }
    }
    for (int f = 0; f < FIELDS; f++) {
      free(blocks[f]);
    }
  }
  cs_buf_free(&got);
  cs_buf_free(&want);
}

/* A record whose fields outgrow the space reserved ahead of the frame grows the buffer part
 * way, and still comes out as the reference; past the limit, nothing is appended. */
static void test_encode_grows_part_way(void **state) {
  (void)state;
  static const size_t lens[] = {5, 0, 3000, 17, 100000, 2};
  cs_field fields[6];
  char *data = malloc(200000);
  cs_buf got, want;
  assert_non_null(data);
  for (size_t i = 0; i < 200000; i++) {
    data[i] = (char)(i % 251);
  }
  for (size_t f = 0, off = 0; f < 6; off += lens[f], f++) {
    fields[f].data = data + off;
    fields[f].len = lens[f];
  }
  wire_msg m = {.type = WIRE_RECORD,
                .producer_id = 1,
                .seq = 2,
                .sent_us = 3,
                .line = 4,
                .stream = {"grow", 4},
                .nfields = 6,
                .fields = fields};
  cs_buf_init(&got);
  cs_buf_init(&want);
  assert_int_equal(cs_buf_append(&got, "ab", 2), 0);
  assert_int_equal(cs_buf_append(&want, "ab", 2), 0);
  reference_record(&m, &want);
  assert_int_equal(wire_encode(&m, &got), 0);
  assert_int_equal(got.len, want.len);
  assert_memory_equal(got.data, want.data, want.len);
  /* Over the limit in the last field: CS_ETOOBIG and the buffer as it was. */
  cs_field over[2] = {{data, 200000}, {data, WIRE_MAX_PAYLOAD - 200000}};
  m.fields = over;
  m.nfields = 2;
  size_t len_before = got.len;
  assert_int_equal(wire_encode(&m, &got), CS_ETOOBIG);
  assert_int_equal(got.len, len_before);
  assert_memory_equal(got.data, want.data, want.len);
  assert_int_equal(wire_encoded_size(&m) - WIRE_HEADER_LEN > WIRE_MAX_PAYLOAD, 1);
  free(data);
  cs_buf_free(&got);
  cs_buf_free(&want);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_encode_exact_bytes),
      cmocka_unit_test(test_decode_fields),
      cmocka_unit_test(test_split_at_every_point),
      cmocka_unit_test(test_one_byte_at_a_time),
      cmocka_unit_test(test_large_split_points),
      cmocka_unit_test(test_bad_frames),
      cmocka_unit_test(test_bad_magic_detected_early),
      cmocka_unit_test(test_decoder_limit),
      cmocka_unit_test(test_datagram_two_frames),
      cmocka_unit_test(test_callback_stops),
      cmocka_unit_test(test_encode_limits),
      cmocka_unit_test(test_type_names),
      cmocka_unit_test(test_v2_ack_refuse_and_v1_frames),
      cmocka_unit_test(test_v3_session_key),
      cmocka_unit_test(test_encode_every_short_length),
      cmocka_unit_test(test_encode_grows_part_way),
  };
  return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
