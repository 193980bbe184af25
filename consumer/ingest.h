/* ingest.h -- what a decoded message means (no libuv): the protocol's rules, the stream it
 * belongs to, the sequence verdict (first copy, duplicate, too late), then the sinks. The
 * listeners hand every message here; this module decides and counts, and returns codes. */
#ifndef CSVSTREAM_INGEST_H
#define CSVSTREAM_INGEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "log.h"
#include "lograte.h"
#include "options.h"
#include "sinks.h"
#include "streams.h"
#include "wire.h"

#define INGEST_GARBAGE_LOG_INTERVAL_US 1000000

/* Totals per protocol that belong to no stream. The listeners count connections, datagrams
 * and kernel drops here; ingest counts garbage. */
typedef struct ingest_proto {
  uint64_t garbage;     /* malformed frames (tcp: connections closed for it) or datagrams */
  uint64_t connections; /* tcp: connections accepted */
  uint64_t timed_out;   /* tcp: closed for no HELLO in time, or an incomplete frame held too long */
  uint64_t evicted;     /* tcp: closed to keep the bytes of incomplete frames under their cap */
  uint64_t refused;     /* tcp: acknowledged streams refused, the producer told why */
  uint64_t spoofed;     /* frames for a stream another sender began, without its session key */
  uint64_t datagrams;   /* udp: datagrams received */
  uint64_t kernel_drops; /* udp: datagrams the kernel dropped (last reading) */
  int kernel_drops_known;
  log_limiter garbage_log;
  log_limiter spoofed_log;
} ingest_proto;

/* The per-record INFO lines: a burst of up to INGEST_RECORD_LOG_BURST lines, refilled at
 * INGEST_RECORD_LOG_PER_S lines a second, so that at a slow pace every record gets its own line
 * and a fast stream gets about that many a second. */
#define INGEST_RECORD_LOG_BURST 10
#define INGEST_RECORD_LOG_PER_S 10

/* Where a message came from: a TCP connection (lives as long as it) or one UDP datagram. */
typedef struct ingest_peer {
  int proto;                   /* enum stream_proto */
  const struct sockaddr *addr; /* formatted into name on first use; NULL: name is set */
  char name[64];               /* "127.0.0.1:40512", "" until formatted */
  int saw_hello;               /* tcp: this connection sent a HELLO */
  uint64_t serial;             /* given by ingest at the first message: this peer, never reused */
  uint64_t owns;               /* tcp: HELLOs accepted from this connection (streams it owns) */
  uint64_t records;            /* distinct records delivered from this peer */
  stream *hello_stream;        /* tcp: the stream of this connection's last HELLO */
  int ack_due;                 /* tcp: a HELLO came: acknowledge at once (its resume point) */
} ingest_peer;

typedef struct ingest {
  streams *table;
  sinks *sinks;
  uint64_t max_records; /* 0: no limit */
  int quiet;
  uint64_t delivered; /* distinct records handed to the sinks */
  int stopped;        /* CS_ESTOP was returned: every later message gets it too */
  int exit_code;      /* why: 0 (--max-records reached) or 1 (a fatal error, logged) */
  int warned_v1;      /* a TCP producer of protocol version 1 was reported */
  /* The memory budget (--max-memory): the stream table's bytes plus frame_bytes, the bytes of
   * incomplete frames and plain records that the TCP listeners hold (each adds and takes away
   * its own). */
  uint64_t max_memory;
  size_t frame_bytes;
  uint64_t idle_us; /* --stream-idle */
  /* The JSON object a stream about to be retired leaves in the final document (malloc'ed,
   * NUL-terminated; NULL: none), set by the loop from the report module. */
  char *(*describe)(void *arg, stream *e);
  void *describe_arg;
  log_limiter budget_log;
  uint64_t serials; /* peers numbered so far (ingest_peer.serial) */
  ingest_proto proto[STREAM_NPROTO];
  lograte record_log;
  lograte stream_log; /* the new-stream lines: a flood of new streams is not a flood of lines */
  char err[512];      /* why the last CS_EPROTO, CS_EREFUSED or CS_ESPOOFED */
  /* The stream of the last CS_EREFUSED, for the REFUSE frame. */
  uint64_t refused_id;
  char refused_stream[WIRE_MAX_STREAM_NAME];
  size_t refused_len;
} ingest;

/* Set up in over a stream table and the sinks (both owned by the caller). */
void ingest_init(ingest *in, streams *table, sinks *fanout, const consumer_options *opt);

/* A peer for a message from proto (addr: see ingest_peer). */
void ingest_peer_init(ingest_peer *p, int proto, const struct sockaddr *addr);

/* A TCP connection closes: the streams it owned have no live owner any more, so that a
 * restarted producer (a new session key, --resume) may take them over. */
void ingest_peer_close(ingest *in, ingest_peer *p);

/* The peer's address as text, formatted on first use. */
const char *ingest_peer_name(ingest_peer *p);

/* One decoded message, received at now_us (wall clock, µs since the epoch). Returns 0;
 * CS_EPROTO for a well-formed frame that breaks the protocol (ingest_error says how; the
 * caller counts it as garbage and closes the connection or drops the datagram's rest);
 * CS_EREFUSED for an acknowledged stream the consumer cannot take (ingest_error says why: the
 * caller tells the producer with a REFUSE frame and closes; over UDP a new stream refused for
 * the budget or the table's limit, counted and logged here: the caller ignores the rest of the
 * datagram); CS_ESPOOFED for a frame of a
 * stream that another sender began, without its session key (counted as spoofed and logged
 * here; the caller ignores the rest of the datagram, or refuses and closes the connection like
 * CS_EREFUSED without counting it again); or CS_ESTOP: stop the consumer
 * with ingest_exit_code (--max-records reached and logged, or a fatal error logged). */
int ingest_msg(ingest *in, ingest_peer *p, const wire_msg *m, uint64_t now_us);

/* Why the last CS_EPROTO. */
const char *ingest_error(const ingest *in);

/* 0 or 1, once ingest_msg returned CS_ESTOP. */
int ingest_exit_code(const ingest *in);

/* Words for a decoder error (wire_decoder_feed, wire_decode_datagram), for the garbage line. */
const char *ingest_decode_error(int rc);

/* Count garbage from p and log it, at most once a second per protocol; action says what was
 * done ("closing the connection"). */
void ingest_garbage(ingest *in, ingest_peer *p, const char *reason, const char *action);

/* Ended streams are retired this long after their last frame (or after --stream-idle, if
 * shorter): long enough for the repeated ENDs and late copies of a UDP stream. */
#define INGEST_ENDED_KEEP_US (10 * 1000000ull)

/* Retire the streams that ended or went idle (no frame for --stream-idle) and that nothing
 * points to any more: no open connection, no record a sink still holds. Their counts stay in
 * the totals. now_us: wall clock. Returns how many. Called about once a second. */
size_t ingest_retire(ingest *in, uint64_t now_us);

/* The most the listeners may hold in incomplete frames now: half the budget, or what it leaves
 * beside the stream table if less, but at least room for two of the largest frames. New
 * streams get what frames and streams leave, so neither can take all of it. */
size_t ingest_frame_cap(const ingest *in);

/* ---- Unsequenced streams: plain CSV text (--plain-port), no framing, no sequence numbers ----
 * The plain listeners parse the text and call these instead of ingest_msg: the stream table
 * and the sinks are the same, the accounting is received, bytes and garbage only. */

/* The unsequenced stream (protocol STREAM_PLAIN_TCP or STREAM_PLAIN_UDP, p->proto) keyed by id
 * and name (len bytes), made when new with header columns (n may be 0: the sinks then name
 * the columns column_1..N). Returns 0 with *out set; CS_EREFUSED when the stream table is full
 * (ingest_error says so: the caller counts garbage and drops or closes); CS_ESTOP. */
int ingest_plain_stream(ingest *in, ingest_peer *p, uint64_t id, const char *name, size_t len,
                        const cs_field *columns, size_t n, stream **out);

/* One record of an unsequenced stream, received at now_us (wall clock): counted, numbered in
 * arrival order and handed to the sinks. bytes: what it held on the wire. Returns 0 or
 * CS_ESTOP (as ingest_msg). */
int ingest_plain_record(ingest *in, ingest_peer *p, stream *e, const cs_field *fields, size_t n,
                        size_t bytes, uint64_t now_us);

/* The unsequenced stream's connection closed (TCP): the stream is complete. */
void ingest_plain_end(ingest *in, ingest_peer *p, stream *e);

/* At the stop: say how many records were not logged one by one. */
void ingest_finish(ingest *in);

#endif
