/* wire.h -- the stream wire protocol, version 3 (reads 1 and 2): the one place that knows the
 * bytes. docs/protocol.md is the specification; this codec is its only implementation. */
#ifndef CSVSTREAM_WIRE_H
#define CSVSTREAM_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "record.h"

#define WIRE_VERSION 3 /* what this code writes */
#define WIRE_VERSION_MIN                                                                           \
  1                       /* the oldest it reads: 1 has no ACK or REFUSE, 1 and 2 no session key   \
                           */
#define WIRE_KEY_LEN 16   /* version 3: the session key in every HELLO and END */
#define WIRE_HEADER_LEN 8 /* magic(2) version(1) type(1) payload length(4, big-endian) */
#define WIRE_MAGIC0 'C'
#define WIRE_MAGIC1 'S'
#define WIRE_MAX_PAYLOAD (1u << 20) /* 1 MiB: the largest record a peer may send */
#define WIRE_MAX_STREAM_NAME 255
#define WIRE_UDP_MAX_DATAGRAM 65507 /* largest UDP payload over IPv4 */

enum wire_type {
  WIRE_HELLO = 1,  /* a stream's header: fields = column names (none with --no-header) */
  WIRE_RECORD = 2, /* one CSV record: fields = values */
  WIRE_END = 3,    /* end of stream: seq = last sequence number sent (0 if none) */
  WIRE_ACK = 4,    /* v2, consumer to producer over TCP: seq = every record up to it is durable */
  WIRE_REFUSE = 5  /* v2, consumer to producer over TCP: the stream is refused; fields[0] = why */
};

/* One message. Every message names its producer instance and stream, so each one can be
 * understood alone (a UDP datagram may be the only one that arrives). */
typedef struct wire_msg {
  int type;             /* enum wire_type */
  uint64_t producer_id; /* random per producer process; tells apart two producers of one stream */
  uint64_t seq;         /* RECORD: 1, 2, 3 ... per stream; END: last seq sent; HELLO: 0 */
  uint64_t sent_us;     /* send time, microseconds since the Unix epoch (CLOCK_REALTIME) */
  uint64_t line;        /* RECORD: the source line where the record starts; otherwise 0 */
  cs_field stream;      /* stream name, 1..WIRE_MAX_STREAM_NAME bytes */
  /* HELLO and END, version 3: the producer run's secret (WIRE_KEY_LEN random bytes), which
   * proves that later frames of the stream come from the run that began it. Encoding: NULL
   * writes zeros. Decoding: NULL for frames of versions 1 and 2, which have none. */
  const unsigned char *key;
  uint32_t nfields;
  const cs_field *fields;
  uint32_t frame_len; /* set by the decoder: bytes on the wire, header included */
  int version;        /* set by the decoder: the frame's protocol version (1 to 3) */
} wire_msg;

/* Bytes `m` takes on the wire, header included. */
size_t wire_encoded_size(const wire_msg *m);

/* Append `m` as one frame to `out`. Returns 0, CS_ETOOBIG if the payload would exceed
 * WIRE_MAX_PAYLOAD or the stream name is empty or too long, CS_ETYPE for a type that is not a
 * wire_type, CS_EMALFORMED for a RECORD without fields, or CS_ENOMEM (nothing is appended on
 * any error). */
int wire_encode(const wire_msg *m, cs_buf *out);

/* wire_encode, in the layout of an older version (WIRE_VERSION_MIN..WIRE_VERSION): for tests
 * and tools that speak to older peers. Also CS_EVERSION, or CS_ETYPE for a type that version
 * does not have. */
int wire_encode_as(const wire_msg *m, int version, cs_buf *out);

/* Called once per decoded message. `m` and everything it points to are valid only during the
 * call. Return 0 to go on; any other value stops the decoding and is returned by the feeder. */
typedef int (*wire_msg_cb)(const wire_msg *m, void *arg);

/* A stream decoder for one TCP connection: reassembles frames from any segmentation.
 * Memory is bounded: it never buffers more than one frame (header + max_payload). */
typedef struct wire_decoder {
  cs_buf pending;       /* bytes of an incomplete frame */
  uint32_t max_payload; /* frames announcing more are rejected with CS_ETOOBIG */
  cs_field *fields;     /* scratch for decoded field pointers */
  uint32_t fields_cap;
  int failed; /* set after an error; the decoder then refuses further input */
} wire_decoder;

void wire_decoder_init(wire_decoder *d, uint32_t max_payload);
void wire_decoder_free(wire_decoder *d);

/* Feed `len` bytes from a stream. Calls cb for every complete message, in order. Returns 0,
 * the callback's non-zero value, or a negative CS_E* code for malformed input (after which the
 * decoder stays failed: close the connection, the stream cannot be resynchronised). */
int wire_decoder_feed(wire_decoder *d, const char *buf, size_t len, wire_msg_cb cb, void *arg);

/* Bytes held for an incomplete frame (0 between frames). */
size_t wire_decoder_pending(const wire_decoder *d);

/* Decode one UDP datagram, which must hold one or more whole frames. Uses d's scratch space
 * only (d->pending is untouched, so one decoder serves all datagrams of a socket). Messages
 * before a malformed frame are still delivered. Returns as wire_decoder_feed, plus
 * CS_ETRUNCATED for a datagram that ends inside a frame. */
int wire_decode_datagram(wire_decoder *d, const char *buf, size_t len, wire_msg_cb cb, void *arg);

/* 1 if type is a message type of protocol version `version` (ACK and REFUSE came with 2). */
int wire_type_known(int type, int version);

/* Name of a message type, for logs ("hello", "record", "end", "unknown"). */
const char *wire_type_name(int type);

#endif
